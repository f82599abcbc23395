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

import time

import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.mixture import GaussianMixture

from _records import append_record, run_experiment, grouped_records, markdown_table, mean_of
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
        append_record(out, record)

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
    groups = grouped_records(paths, key=lambda r: (r["ae_epochs"], r["method"]), keep=lambda r: r["method"] != "AE")
    rows = []
    for (epochs, method), records in sorted(groups.items()):
        acc = np.array([r["acc"] for r in records])
        per_seed = ", ".join(f"{a:.3f}" for a in acc)
        rows.append((epochs, method, f"{acc.mean():.3f} ± {acc.std():.3f}", f"{mean_of(records, 'nmi'):.3f}", per_seed, len(records)))
    return markdown_table(("AE epochs", "method", "ACC", "NMI", "ACC per seed", "seeds"), rows)


def main(argv=None):
    run_experiment(
        __doc__, "pretraining_length.jsonl", lambda args: run(args.seed, args.epochs, args.out, args.device, args.cache),
        summary, argv, positionals=("seed", "epochs"), default_device="cuda", options={"--cache": {"default": "/tmp/cache"}},
    )


if __name__ == "__main__":
    main()
