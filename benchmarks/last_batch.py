"""The default pretraining with a few-row last batch in every epoch, on digits.

1,797 = 7 x 256 + 5: at ``batch_size=256`` each epoch of the default
AutoEncoder (SGD, learning rate 1.0, momentum 0.9) ends with a step on 5
rows. Three ways of cutting an epoch, per seed:

* ``256``: a last batch kept unless it has one row (the library's batches
  until ``batch_bounds`` changed after commit 5cf89c3; patched back into
  the training loop for this variant since);
* ``256-merged``: any last batch under half ``batch_size`` joined to the
  one before (7 batches, the last of 261 rows): the library's batches
  since that change (patched in for this variant before it);
* ``257``: 7 batches, the last of 255 rows.

The last two take 7 steps per epoch against 8. Each fit runs ``--epochs``
epochs (40, the quick benchmark's, by default; 400 is the default
pretraining's) and records the reconstruction error and AE + KMeans scores.
One JSON line per fit.

Examples
--------
::

    python benchmarks/last_batch.py 0 --out last_batch.jsonl
    python benchmarks/last_batch.py 0 --epochs 400 --variants 256 256-merged --out last_batch.jsonl
    python benchmarks/last_batch.py --summary last_batch.jsonl
"""

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits

import skdeepcluster._core.training as training
from _records import append_record, current_commit, grouped_records, markdown_table, mean_of, run_experiment, scores
from skdeepcluster import AutoEncoder

VARIANTS = ("256", "256-merged", "257")
_library_bounds = training.batch_bounds


def _kept_bounds(n_samples, batch_size):
    """The batches before the change: only a one-row last batch joins."""
    bounds = [min(b * batch_size, n_samples) for b in range(-(-n_samples // batch_size) + 1)]
    if len(bounds) > 2 and bounds[-1] - bounds[-2] == 1:
        bounds = bounds[:-2] + [n_samples]
    return bounds


def run(args):
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    for variant in args.variants:
        batch_size = int(variant.split("-")[0])
        bounds_of = _library_bounds if variant.endswith("-merged") else _kept_bounds
        training.batch_bounds = bounds_of
        try:
            ae = AutoEncoder(max_epochs=args.epochs, batch_size=batch_size, device=args.device, random_state=args.seed)
            ae.fit(X)
        finally:
            training.batch_bounds = _library_bounds
        bounds = bounds_of(len(X), batch_size)
        Z = ae.transform(X)
        append_record(args.out, {
            "seed": args.seed, "variant": variant, "batch_size": batch_size, "epochs": args.epochs,
            "last_batch_rows": bounds[-1] - bounds[-2],
            "n_steps": len(ae.history_) * (len(bounds) - 1),
            "reconstruction_mse": float(((ae.inverse_transform(Z) - X) ** 2).mean()),
            "final_loss": ae.history_[-1]["loss"],
            **scores(y, KMeans(10, n_init=20, random_state=args.seed).fit_predict(Z)),
            "device": str(ae.device_), "torch": torch.__version__, "commit": current_commit(),
        })


def summary(paths):
    # records written before the variants and --epochs: 40 epochs, named by batch size
    groups = grouped_records(paths, key=lambda r: (r.get("epochs", 40), r.get("variant", str(r["batch_size"]))))
    rows = []
    for (epochs, variant), records in sorted(groups.items(), key=lambda item: (item[0][0], VARIANTS.index(item[0][1]))):
        rows.append([
            epochs, variant, records[0]["last_batch_rows"], records[0]["n_steps"],
            *(f"{mean_of(records, field):.4f} ± {np.std([r[field] for r in records]):.4f}"
              for field in ("reconstruction_mse", "acc", "nmi")),
            ",".join(str(r["seed"]) for r in records),
            ",".join(sorted({r["commit"] for r in records})),
        ])
    header = ["epochs", "batches", "last batch rows", "steps", "reconstruction MSE", "AE+KMeans ACC",
              "AE+KMeans NMI", "seeds", "commit"]
    return markdown_table(header, rows)


if __name__ == "__main__":
    run_experiment(
        __doc__, "benchmarks/results/last_batch.jsonl", run, summary, default_device="cpu",
        options={
            "--epochs": {"type": int, "default": 40},
            "--variants": {"nargs": "+", "choices": VARIANTS, "default": list(VARIANTS)},
        },
    )
