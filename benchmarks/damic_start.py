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

import time

import torch

from _records import append_record, damic_fit_record, run_experiment, grouped_records, markdown_table, mean_of
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
            mean_log_likelihood = float(est.score(X))
            record = damic_fit_record(est, X, y, seed, began)
            record.update(start=start, expert_bottleneck=bottleneck or 4, mean_log_likelihood=mean_log_likelihood, tol=est.tol)
            append_record(out, record)


def summary(paths):
    groups = grouped_records(paths, key=lambda r: (r["expert_bottleneck"], r["start"], r["tol"]))
    header = ("expert bottleneck", "start", "tol", "start NMI / ARI", "final NMI / ARI", "final NMI per seed", "epochs", "seeds")
    rows = [
        (
            bottleneck, start, f"{tol:g}",
            f"{mean_of(rs, 'start_nmi'):.3f} / {mean_of(rs, 'start_ari'):.3f}",
            f"{mean_of(rs, 'nmi'):.3f} / {mean_of(rs, 'ari'):.3f}",
            " ".join(f"{r['nmi']:.3f}" for r in rs), f"{mean_of(rs, 'n_iter'):.1f}", len(rs),
        )
        for (bottleneck, start, tol), rs in sorted(groups.items(), key=lambda kv: (-kv[0][2], -kv[0][0], STARTS.index(kv[0][1])))
    ]
    return markdown_table(header, rows)


def main(argv=None):
    tol = {"type": float, "help": "DAMIC's tol (default: its own); 0 runs every epoch"}
    run_experiment(
        __doc__, "damic_start.jsonl", lambda args: run(args.seed, args.device, args.out, args.tol), summary, argv,
        options={"--tol": tol},
    )


if __name__ == "__main__":
    main()
