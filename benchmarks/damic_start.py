"""DAMIC on the pinned synthetic data: where the joint training ends from each start.

For one seed, fit DAMIC (its own pretraining, every other setting at its
default) from three initial partitions: k-means on the pretrained bottleneck
(the paper), a full-covariance Gaussian mixture there (``init="gmm"``), and
the true labels. The last shows where eq. (3) takes a run that starts at the
answer, so it bounds what a better start can give. Each start also runs with
an expert bottleneck of 1 and 2 units instead of the paper's K: experts that
can only follow a curve or a sheet might favour the elongated clusters over
compact pieces of them. ``--tol 0`` runs every joint epoch instead of
stopping on DAMIC's ``tol``. One JSON line per fit goes to ``--out``.

Examples
--------
Five seeds, both stopping rules, side by side on one GPU::

    for s in 0 1 2 3 4; do
        python benchmarks/damic_start.py $s --device cuda --out results.jsonl &
        python benchmarks/damic_start.py $s --device cuda --out results.jsonl --tol 0 &
    done; wait
    python benchmarks/damic_start.py --summary results.jsonl
"""

import argparse
import collections
import json
import sys
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from skdeepcluster import DAMIC
from skdeepcluster._damic import StackedMLP
from skdeepcluster.datasets import make_dcn_synthetic

STARTS = ("kmeans", "gmm", "true")
BOTTLENECKS = (None, 1, 2)


class _VariantDAMIC(DAMIC):
    """DAMIC with another expert bottleneck and, optionally, the true labels as its start.

    Experiment-only: the class attributes are set per variant by ``variant``.
    """

    expert_bottleneck = None
    start_labels = None

    def _build_module(self, n_features, autoencoder, seed):
        module = super()._build_module(n_features, autoencoder, seed)
        if self.expert_bottleneck is not None:
            widths = self._expert_widths()
            sizes = (n_features, *widths, self.expert_bottleneck, *widths[::-1], n_features)
            module.experts = StackedMLP(self.n_clusters, sizes, "relu", self.output_activation, batch_norm=True)
        return module

    def _kmeans(self, Z, seed, n_init=10):
        if self.start_labels is not None:
            return None, torch.as_tensor(self.start_labels, device=Z.device)
        return super()._kmeans(Z, seed, n_init)


def variant(start, bottleneck, y, seed, device, tol):
    attributes = {"expert_bottleneck": bottleneck, "start_labels": y if start == "true" else None}
    cls = type("VariantDAMIC", (_VariantDAMIC,), attributes)
    est = cls(4, init="gmm" if start == "gmm" else "kmeans", device=device, random_state=seed)
    return est if tol is None else est.set_params(tol=tol)


def run(seed, device, out, tol=None):
    X, y, _ = make_dcn_synthetic(random_state=0)
    for bottleneck in BOTTLENECKS:
        for start in STARTS:
            began = time.perf_counter()
            est = variant(start, bottleneck, y, seed, device, tol).fit(X)
            record = {
                "seed": seed,
                "start": start,
                "expert_bottleneck": bottleneck or 4,
                "nmi": normalized_mutual_info_score(y, est.labels_),
                "ari": adjusted_rand_score(y, est.labels_),
                "start_nmi": normalized_mutual_info_score(y, est.initial_labels_),
                "start_ari": adjusted_rand_score(y, est.initial_labels_),
                "mean_log_likelihood": float(est.score(X)),
                "n_active_clusters": int(est.n_active_clusters_),
                "tol": est.tol,
                "n_iter": int(est.n_iter_),
                "seconds": time.perf_counter() - began,
                "device": str(est.device_),
                "torch": torch.__version__,
            }
            with open(out, "a") as handle:
                handle.write(json.dumps(record) + "\n")


def summary(path):
    records = [json.loads(line) for line in open(path)]
    groups = collections.defaultdict(list)
    for r in records:
        groups[(r["expert_bottleneck"], r["start"], r["tol"])].append(r)
    lines = [
        "| expert bottleneck | start | tol | start NMI / ARI | final NMI / ARI | final NMI per seed | epochs | seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (bottleneck, start, tol), rs in sorted(groups.items(), key=lambda kv: (-kv[0][2], -kv[0][0], STARTS.index(kv[0][1]))):
        rs = sorted(rs, key=lambda r: r["seed"])
        mean = lambda key: np.mean([r[key] for r in rs])
        per_seed = " ".join(f"{r['nmi']:.3f}" for r in rs)
        lines.append(
            f"| {bottleneck} | {start} | {tol:g} | {mean('start_nmi'):.3f} / {mean('start_ari'):.3f} "
            f"| {mean('nmi'):.3f} / {mean('ari'):.3f} | {per_seed} | {mean('n_iter'):.1f} | {len(rs)} |"
        )
    sys.stdout.write("\n".join(lines) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("seed", type=int, nargs="?")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", default="damic_start.jsonl")
    parser.add_argument("--tol", type=float, help="DAMIC's tol (default: its own); 0 runs every epoch")
    parser.add_argument("--summary", metavar="JSONL", help="only print the table of saved results")
    args = parser.parse_args(argv)
    if args.summary:
        return summary(args.summary)
    if args.seed is None:
        parser.error("give a seed, or --summary JSONL")
    run(args.seed, args.device, args.out, args.tol)


if __name__ == "__main__":
    main()
