"""Weighted rows against repeated rows, with mini-batches, on digits.

``sample_weight`` promises that an integer weight acts as copies of its row:
exactly in the whole-data steps, in expectation over mini-batches. This
measures the mini-batch case on real data. The weights depend on the class
(3 for digits 0-4, 1 for 5-9), so that the repeated data is imbalanced and
differs from the plain data. Each method (the quick benchmark's settings)
is fitted three ways per seed:

- ``plain``: on the 1,797 rows, unweighted, batch 256;
- ``weighted``: on the 1,797 rows with the weights, batch 128 (the mean
  weight is 2, so a step covers as much weight as a repeated batch of 256
  and an epoch has as many steps);
- ``repeated``: on the 3,594 rows of the repeated data, batch 256.

Scores are over the repeated rows (each row's label counted weight times),
the objective the weighted and repeated fits share. One JSON line per fit.

Examples
--------
::

    for s in 0 1; do python benchmarks/sample_weight.py $s --device cpu --out sample_weight.jsonl & done; wait
    python benchmarks/sample_weight.py --summary sample_weight.jsonl
"""

import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits

import skdeepcluster
from _records import append_record, current_commit, grouped_records, markdown_table, mean_of, run_experiment, scores

SETTINGS = dict(pretrain_epochs=40, max_epochs=30)
METHODS = {
    "DKM^p": lambda: skdeepcluster.DeepKMeans(10, embedding_dim=10, **SETTINGS),
    "DEC": lambda: skdeepcluster.DEC(10, **SETTINGS),
    "IDEC": lambda: skdeepcluster.IDEC(10, **SETTINGS),
    "DAMIC": lambda: skdeepcluster.DAMIC(10, max_epochs=SETTINGS["max_epochs"]),
    "DC-Kmeans": lambda: skdeepcluster.ADMMCluster(10, clustering="kmeans", **SETTINGS),
    "DC-GMM": lambda: skdeepcluster.ADMMCluster(10, clustering="gmm", **SETTINGS),
    "DeepGMM": lambda: skdeepcluster.DeepGMM(10, **SETTINGS),
}
WAYS = ("plain", "weighted", "repeated")


def run(args):
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    weights = np.where(y < 5, 3, 1)
    X_repeated, y_repeated = np.repeat(X, weights, axis=0), np.repeat(y, weights)
    batch_size = {"plain": 256, "weighted": int(round(256 / weights.mean())), "repeated": 256}
    for name, make in METHODS.items():
        for way in WAYS:
            est = make().set_params(random_state=args.seed, device=args.device, batch_size=batch_size[way])
            began = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if way == "weighted":
                    est.fit(X, sample_weight=weights)
                else:
                    est.fit(X_repeated if way == "repeated" else X)
            seconds = time.perf_counter() - began
            labels = est.predict(X)
            append_record(args.out, {
                "seed": args.seed, "method": name, "way": way, "batch_size": batch_size[way],
                **scores(y_repeated, np.repeat(labels, weights)),
                "plain_scores": scores(y, labels), "n_iter": int(est.n_iter_), "seconds": seconds,
                "device": str(est.device_), "torch": torch.__version__, "commit": current_commit(),
            })


def summary(paths):
    groups = grouped_records(paths, key=lambda r: (r["method"], r["way"]))
    header = ["method"] + [f"{measure} {way}" for measure in ("ACC", "NMI") for way in WAYS] + [
        f"fit s {way}" for way in WAYS
    ] + ["seeds"]
    rows = []
    for name in METHODS:
        runs = [groups.get((name, way), []) for way in WAYS]
        if not all(runs):
            continue
        rows.append(
            [name]
            + [f"{mean_of(records, field):.3f}" for field in ("acc", "nmi") for records in runs]
            + [f"{mean_of(records, 'seconds'):.1f}" for records in runs]
            + [",".join(str(r["seed"]) for r in runs[0])]
        )
    return markdown_table(header, rows)


if __name__ == "__main__":
    run_experiment(__doc__, "benchmarks/results/sample_weight.jsonl", run, summary, default_device="cpu")
