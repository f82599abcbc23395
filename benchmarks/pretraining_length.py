"""Longer default pretraining and DeepKMeans settings on MNIST-5k.

One process per (seed, pretraining epochs): fit ``AutoEncoder(max_epochs=E)``
(the default recipe otherwise), then k-means (n_init=20) and a Gaussian
mixture on its embedding, and DeepKMeans (DKM^p) in several settings, each
starting from that same autoencoder through the pretraining cache. One JSON
line per result goes to ``--out``.

Examples
--------
Ten processes side by side on one GPU (about five minutes on an H100)::

    for e in 800 1200; do for s in 0 1 2 3 4; do
        python benchmarks/pretraining_length.py $s $e --device cuda --out results.jsonl &
    done; done; wait
    python benchmarks/pretraining_length.py --summary results.jsonl
"""

import argparse
import collections
import json
import sys
import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture

from skdeepcluster import AutoEncoder, DeepKMeans
from skdeepcluster.datasets import load_mnist_5k
from skdeepcluster.metrics import clustering_accuracy

#: DKM^p settings tried on each autoencoder (name -> DeepKMeans parameters).
DKM_VARIANTS = {
    "DKM^p": {},
    "DKM^p lr1e-3 lam1": {"learning_rate": 1e-3, "clustering_weight": 1.0},
    "DKM^p lam1 300ep": {"clustering_weight": 1.0, "max_epochs": 300},
    "DKM^p lr3e-4 lam0.1 200ep": {"learning_rate": 3e-4, "clustering_weight": 0.1, "max_epochs": 200},
}


def run(seed, epochs, out, device, cache):
    X, y = load_mnist_5k()
    common = {"device": device, "memory": cache, "random_state": seed}

    def log(method, labels, seconds, **extra):
        record = {
            "seed": seed, "ae_epochs": epochs, "method": method,
            "acc": clustering_accuracy(y, labels), "nmi": normalized_mutual_info_score(y, labels),
            "ari": adjusted_rand_score(y, labels), "seconds": seconds, **extra,
        }
        with open(out, "a") as handle:
            handle.write(json.dumps(record) + "\n")

    start = time.perf_counter()
    ae = AutoEncoder(max_epochs=epochs, **common).fit(X)
    Z = ae.transform(X)
    log("AE", np.zeros(len(X), int), time.perf_counter() - start, final_loss=ae.history_[-1]["loss"])
    log("AE+KMeans", KMeans(10, n_init=20, random_state=seed).fit_predict(Z), 0)
    log("AE+GMM", GaussianMixture(10, random_state=seed).fit(Z).predict(Z), 0)
    for name, params in DKM_VARIANTS.items():
        start = time.perf_counter()
        dkm = DeepKMeans(10, embedding_dim=10, pretrain_epochs=epochs, **{**common, **params})
        labels = dkm.fit_predict(X)
        log(name, labels, time.perf_counter() - start, sizes=np.bincount(labels, minlength=10).tolist())


def summary(paths):
    """Markdown table: accuracy and NMI per (pretraining epochs, method)."""
    groups = collections.defaultdict(list)
    for path in paths:
        with open(path) as handle:
            for line in handle:
                r = json.loads(line)
                if r["method"] != "AE":
                    groups[(r["ae_epochs"], r["method"])].append((r["seed"], r["acc"], r["nmi"]))
    lines = ["| AE epochs | method | ACC | NMI | ACC per seed | seeds |", "|---|---|---|---|---|---|"]
    for (epochs, method), rows in sorted(groups.items()):
        rows.sort()
        acc = np.array([r[1] for r in rows])
        nmi = np.array([r[2] for r in rows])
        per_seed = ", ".join(f"{a:.3f}" for a in acc)
        lines.append(
            f"| {epochs} | {method} | {acc.mean():.3f} ± {acc.std():.3f} | {nmi.mean():.3f} | {per_seed} | {len(rows)} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seed", type=int, nargs="?")
    parser.add_argument("epochs", type=int, nargs="?")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--cache", default="/tmp/cache")
    parser.add_argument("--out", default="pretraining_length.jsonl")
    parser.add_argument("--summary", nargs="+", metavar="JSONL", help="only print the table of saved results")
    args = parser.parse_args(argv)
    if args.summary:
        sys.stdout.write(summary(args.summary))
        return
    if args.seed is None or args.epochs is None:
        parser.error("give a seed and a number of pretraining epochs, or --summary")
    run(args.seed, args.epochs, args.out, args.device, args.cache)


if __name__ == "__main__":
    main()
