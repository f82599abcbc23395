"""Embedding-like input: which scaling and pretraining recipe to advise.

Real-valued features of either sign (a network's embeddings) are not
pixels. This takes digits through ``PCA(32)`` as such "embeddings" (their
variance falls off across the 32 columns, as a network's features' often
do) and prepares them two ways, each followed by the recipe the README
pairs with it:

* ``minmax-sgd``: ``MinMaxScaler`` then the default AutoEncoder (SGD at
  learning rate 1.0, the recipe for features in [0, 1]);
* ``standard-adam``: ``StandardScaler`` then ``AutoEncoder(optimizer="adam")``.

Per seed and way it records KMeans on the prepared features (10 restarts)
and KMeans on the autoencoder's embedding (AE + KMeans), with the
reconstruction error against the prepared features' mean variance (1 would
be the mean predicted). One JSON line per fit.

Examples
--------
::

    python benchmarks/embeddings.py 0 --out embeddings.jsonl
    python benchmarks/embeddings.py --summary embeddings.jsonl
"""

import time

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits
from sklearn.decomposition import PCA
from sklearn.preprocessing import MinMaxScaler, StandardScaler

from _records import append_record, current_commit, grouped_records, markdown_table, mean_of, run_experiment, scores
from skdeepcluster import AutoEncoder

WAYS = {
    "minmax-sgd": (MinMaxScaler, {}),
    "standard-adam": (StandardScaler, {"optimizer": "adam"}),
}


def run(args):
    torch.set_num_threads(1)
    digits, y = load_digits(return_X_y=True)
    embeddings = PCA(32, random_state=0).fit_transform(digits)
    for way in args.ways:
        scaler, recipe = WAYS[way]
        X = scaler().fit_transform(embeddings)
        start = time.perf_counter()
        ae = AutoEncoder(max_epochs=args.epochs, device=args.device, random_state=args.seed, **recipe).fit(X)
        seconds = time.perf_counter() - start
        Z = ae.transform(X)
        append_record(args.out, {
            "seed": args.seed, "way": way, "epochs": args.epochs,
            "relative_reconstruction_error": float(((ae.inverse_transform(Z) - X) ** 2).mean() / X.var(axis=0).mean()),
            "kmeans": scores(y, KMeans(10, n_init=10, random_state=args.seed).fit_predict(X)),
            **scores(y, KMeans(10, n_init=10, random_state=args.seed).fit_predict(Z)),
            "pretraining_seconds": seconds,
            "device": str(ae.device_), "torch": torch.__version__, "commit": current_commit(),
        })


def summary(paths):
    groups = grouped_records(paths, key=lambda r: (r["way"], r["epochs"]))
    rows = []
    for (way, epochs), records in sorted(groups.items()):
        rows.append([
            way, epochs,
            f"{np.mean([r['kmeans']['ari'] for r in records]):.3f}",
            *(f"{mean_of(records, field):.3f} ± {np.std([r[field] for r in records]):.3f}"
              for field in ("ari", "nmi", "acc", "relative_reconstruction_error")),
            f"{mean_of(records, 'pretraining_seconds'):.0f}",
            ",".join(str(r["seed"]) for r in records),
            ",".join(sorted({r["commit"] for r in records})),
        ])
    header = ["way", "epochs", "KMeans ARI", "AE+KMeans ARI", "AE+KMeans NMI", "AE+KMeans ACC",
              "reconstruction error / variance", "pretraining (s)", "seeds", "commit"]
    return markdown_table(header, rows)


if __name__ == "__main__":
    run_experiment(
        __doc__, "benchmarks/results/embeddings.jsonl", run, summary, default_device="cpu",
        options={
            "--epochs": {"type": int, "default": 400},
            "--ways": {"nargs": "+", "choices": list(WAYS), "default": list(WAYS)},
        },
    )
