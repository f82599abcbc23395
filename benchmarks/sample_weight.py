"""Weighted rows against repeated rows, on digits.

``sample_weight`` promises that an integer weight acts as copies of its row:
whole-data steps weigh rows exactly, and each training epoch draws its rows
in proportion to the weights. This measures whole fits on real data. The
weights depend on the class (3 for digits 0-4, 1 for 5-9), so that the
repeated data (3,594 rows) is imbalanced and differs from the plain data.
Each method is fitted three ways per seed, batch size 257 (see below):

- ``plain``: on the 1,797 rows, unweighted;
- ``weighted``: on the 1,797 rows with the weights, every epoch count
  (pretraining, DAMIC's gate and experts, clustering) doubled: its epochs
  draw 1,797 rows, so it then takes as many steps of the same size as
- ``repeated``: on the 3,594 rows of the repeated data.

The weighted fit's once-per-epoch updates (ADMM's, the ``tol`` checks) come
twice as often as the repeated fit's. Scores are over the repeated rows
(each row's label counted weight times), the objective the weighted and
repeated fits share. Batch size 257, not 256: 1,797 = 7 x 256 + 5, and a
5-row batch at the end of every epoch cost the default pretraining (SGD,
learning rate 1.0) more than the weights did (see the session notes).
One JSON line per fit.

Examples
--------
::

    for s in 0 1; do python benchmarks/sample_weight.py $s --device cpu --out sample_weight.jsonl & done; wait
    python benchmarks/sample_weight.py --summary sample_weight.jsonl

``--ways weighted`` fits only the weighted way (as when the weighted
``tol`` rule changed; the other two ways are unweighted).
"""

import time
import warnings

import numpy as np
import torch
from sklearn.datasets import load_digits

import skdeepcluster
from _records import append_record, current_commit, grouped_records, markdown_table, mean_of, run_experiment, scores

BATCH_SIZE = 257
EPOCHS = dict(pretrain_epochs=40, max_epochs=30)
DAMIC_EPOCHS = dict(max_epochs=30, pretrain_epochs=50, gate_pretrain_epochs=20, expert_pretrain_epochs=20)
METHODS = {
    "DKM^p": lambda factor: skdeepcluster.DeepKMeans(10, embedding_dim=10, **_times(EPOCHS, factor)),
    "IDEC": lambda factor: skdeepcluster.IDEC(10, **_times(EPOCHS, factor)),
    "DC-Kmeans": lambda factor: skdeepcluster.ADMMCluster(10, clustering="kmeans", **_times(EPOCHS, factor)),
    "DAMIC": lambda factor: skdeepcluster.DAMIC(10, **_times(DAMIC_EPOCHS, factor)),
}
WAYS = ("plain", "weighted", "repeated")


def _times(epochs, factor):
    return {name: value * factor for name, value in epochs.items()}


def run(args):
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    weights = np.where(y < 5, 3, 1)
    X_repeated, y_repeated = np.repeat(X, weights, axis=0), np.repeat(y, weights)
    for name, make in METHODS.items():
        for way in args.ways:
            est = make(2 if way == "weighted" else 1)
            est.set_params(random_state=args.seed, device=args.device, batch_size=BATCH_SIZE)
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
                "seed": args.seed, "method": name, "way": way, "batch_size": BATCH_SIZE,
                "max_epochs": est.max_epochs, **scores(y_repeated, np.repeat(labels, weights)),
                "plain_scores": scores(y, labels), "n_iter": int(est.n_iter_), "n_steps": int(est.n_steps_),
                "seconds": seconds, "device": str(est.device_), "torch": torch.__version__,
                "commit": current_commit(),
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
            + [
                f"{mean_of(records, field):.3f} ± {np.std([r[field] for r in records]):.3f}"
                for field in ("acc", "nmi")
                for records in runs
            ]
            + [f"{mean_of(records, 'seconds'):.1f}" for records in runs]
            + [",".join(str(r["seed"]) for r in runs[0])]
        )
    return markdown_table(header, rows)


if __name__ == "__main__":
    run_experiment(
        __doc__, "benchmarks/results/sample_weight.jsonl", run, summary, default_device="cpu",
        options={"--ways": {"nargs": "+", "choices": WAYS, "default": list(WAYS)}},
    )
