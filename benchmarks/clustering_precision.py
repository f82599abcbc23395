"""The clustering stage in float32 against bfloat16 autocast on MNIST-5k.

One process per seed pretrains one default ``AutoEncoder`` (400 epochs, in
bfloat16 to halve its cost; cached under ``--cache``) and starts every
method from it twice, with ``precision="float32"`` and
``precision="bfloat16"`` (the order alternating with the seed, so that
neither always runs first beside another process). Only the clustering
stage differs between the two fits. One JSON line per fit goes to
``--out``: fit seconds, the median epoch time, the epochs run and the
scores.

Examples
--------
Two processes on two CPU cores, one torch thread each::

    for s in 0 1; do python benchmarks/clustering_precision.py $s --device cpu --out cp.jsonl & done; wait
    python benchmarks/clustering_precision.py --summary cp.jsonl
"""

import os
import time

import numpy as np
import torch

from _records import append_record, current_commit, grouped_records, markdown_table, run_experiment, scores
from skdeepcluster import DAMIC, DEC, IDEC, ADMMCluster, AutoEncoder, DeepGMM, DeepKMeans
from skdeepcluster._core.device import PRECISIONS
from skdeepcluster.datasets import load_mnist_5k


#: Name -> estimator factory(autoencoder, precision, seed, device), as benchmarks/run.py's full settings.
METHODS = {
    "DKM^p": lambda ae, p, s, d: DeepKMeans(10, embedding_dim=10, max_epochs=100, autoencoder=ae, precision=p, random_state=s, device=d),
    "DEC": lambda ae, p, s, d: DEC(10, autoencoder=ae, precision=p, random_state=s, device=d),
    "IDEC": lambda ae, p, s, d: IDEC(10, autoencoder=ae, precision=p, random_state=s, device=d),
    "DC-Kmeans": lambda ae, p, s, d: ADMMCluster(10, clustering="kmeans", autoencoder=ae, precision=p, random_state=s, device=d),
    "DC-GMM": lambda ae, p, s, d: ADMMCluster(10, clustering="gmm", autoencoder=ae, precision=p, random_state=s, device=d),
    "DeepGMM": lambda ae, p, s, d: DeepGMM(10, autoencoder=ae, precision=p, random_state=s, device=d),
    "DAMIC (shared AE)": lambda ae, p, s, d: DAMIC(10, autoencoder=ae, precision=p, random_state=s, device=d),
}

HERE = os.path.dirname(os.path.abspath(__file__))


def run(seed, out, device, threads, cache, methods):
    torch.set_num_threads(threads)
    X, y = load_mnist_5k()
    autoencoder = AutoEncoder(precision="bfloat16", memory=cache, device=device, random_state=seed).fit(X)
    order = PRECISIONS if seed % 2 == 0 else PRECISIONS[::-1]
    for method in methods:
        make = METHODS[method]
        for precision in order:
            estimator = make(autoencoder, precision, seed, device)
            began = time.perf_counter()
            labels = estimator.fit_predict(X)
            seconds = time.perf_counter() - began
            append_record(out, {
                "seed": seed, "method": method, "precision": precision, "seconds": seconds,
                "epoch_seconds": float(np.median([record["time"] for record in estimator.history_])),
                "n_iter": estimator.n_iter_, "clusters_used": int(np.unique(labels).size),
                **scores(y, labels),
                "device": str(estimator.device_), "threads": threads, "torch": torch.__version__,
                "commit": current_commit(),
            })


def summary(paths):
    """Markdown table: per method and precision, scores, fit and epoch seconds, and the speed-up."""
    groups = grouped_records(paths, key=lambda r: (r["method"], r["precision"]))
    rows = []
    for method in METHODS:
        for precision in PRECISIONS:
            records = groups.get((method, precision), [])
            if not records:
                continue
            acc = np.array([r["acc"] for r in records])
            full = {r["seed"]: r for r in groups.get((method, "float32"), [])}
            ratios = [full[r["seed"]]["epoch_seconds"] / r["epoch_seconds"] for r in records if r["seed"] in full]
            rows.append((
                method, precision,
                f"{acc.mean():.3f} ± {acc.std():.3f}",
                f"{np.mean([r['nmi'] for r in records]):.3f}",
                f"{np.mean([r['ari'] for r in records]):.3f}",
                f"{np.mean([r['seconds'] for r in records]):.0f}",
                f"{np.mean([r['epoch_seconds'] for r in records]):.2f}",
                f"{np.mean(ratios):.2f}" if precision != "float32" and ratios else "",
                f"{np.mean([r['n_iter'] for r in records]):.0f}",
                ", ".join(f"{a:.3f}" for a in acc),
                len(records),
            ))
    return markdown_table(
        ("method", "precision", "ACC", "NMI", "ARI", "fit s", "epoch s", "epoch speed-up", "epochs", "ACC per seed", "seeds"),
        rows,
    )


def main(argv=None):
    run_experiment(
        __doc__, "clustering_precision.jsonl",
        lambda args: run(args.seed, args.out, args.device, args.threads, args.cache, args.methods),
        summary, argv, default_device="cpu",
        options={
            "--threads": {"type": int, "default": 1},
            "--cache": {"default": os.path.join(HERE, "cache")},
            "--methods": {"nargs": "+", "choices": list(METHODS), "default": list(METHODS)},
        },
    )


if __name__ == "__main__":
    main()
