"""ADMMCluster runs that use up ``max_epochs``: the partition before and after the last epoch's ADMM update.

Until the base gained ``_on_training_end``, a run that did not stop on
``tol`` ended on a network epoch with no ADMM update after it
(``max_epochs - 1`` updates); a ``tol`` stop always followed an update. This
records both partitions of one run, so old and new behaviour are compared
on the same trajectory: ``before`` is what the earlier code returned.

Digits, the seed's shared 400-epoch autoencoder (from the benchmark cache
when ``run.py`` made it), DC-Kmeans and DC-GMM with ``tol=0`` and the
default 200 epochs, on the CPU.

Example::

    python benchmarks/admm_last_update.py 0
    python benchmarks/admm_last_update.py --summary benchmarks/results/admm_last_update.jsonl
"""

import os
import time

import numpy as np
import torch

from _records import append_record, grouped_records, markdown_table, mean_of, run_experiment, scores
from skdeepcluster import ADMMCluster, AutoEncoder
from skdeepcluster.base import _INFERENCE_CHUNK
from skdeepcluster.datasets import load_digits_scaled

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "results", "admm_last_update.jsonl")


class _LastUpdateADMMCluster(ADMMCluster):
    """Keeps the labels ``predict`` gave just before the last ADMM update."""

    def _on_training_end(self, step, data):
        module = self._inference_copy(self.module_)
        self.labels_before_last_update_ = torch.cat(
            [self._hard_assign(module, x.double()).cpu() for x in data.chunks(_INFERENCE_CHUNK)]
        ).numpy()
        return super()._on_training_end(step, data)


def run(args):
    X, y = load_digits_scaled()
    device = args.device
    autoencoder = AutoEncoder(max_epochs=400, device=device, memory=os.path.join(HERE, "cache"), random_state=args.seed)
    autoencoder.fit(X)
    for clustering in ("kmeans", "gmm"):
        began = time.perf_counter()
        est = _LastUpdateADMMCluster(
            10, clustering=clustering, autoencoder=autoencoder, tol=0, device=device, random_state=args.seed
        ).fit(X)
        before = scores(y, est.labels_before_last_update_)
        after = scores(y, est.labels_)
        record = {
            "seed": args.seed,
            "clustering": clustering,
            "n_iter": int(est.n_iter_),
            "changed": float(np.mean(est.labels_before_last_update_ != est.labels_)),
            **{f"before_{k}": v for k, v in before.items()},
            **{f"after_{k}": v for k, v in after.items()},
            "seconds": time.perf_counter() - began,
            "device": str(est.device_),
            "torch": torch.__version__,
        }
        append_record(args.out, record)


def summary(paths):
    groups = grouped_records(paths, key=lambda r: r["clustering"])
    rows = []
    for clustering, records in sorted(groups.items()):
        rows.append(
            [
                {"kmeans": "DC-Kmeans", "gmm": "DC-GMM"}[clustering],
                f"{mean_of(records, 'before_acc'):.4f} / {mean_of(records, 'before_nmi'):.4f}",
                f"{mean_of(records, 'after_acc'):.4f} / {mean_of(records, 'after_nmi'):.4f}",
                " ".join(f"{r['seed']}: {r['after_acc'] - r['before_acc']:+.4f}" for r in records),
                f"{100 * mean_of(records, 'changed'):.2f} %",
                len(records),
            ]
        )
    header = ["method", "before the last update ACC / NMI", "after ACC / NMI", "ACC change per seed", "labels changed", "seeds"]
    return markdown_table(header, rows)


if __name__ == "__main__":
    run_experiment(__doc__, OUT, run, summary, default_device="cpu")
