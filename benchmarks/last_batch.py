"""The default pretraining with a few-row last batch in every epoch, on digits.

1,797 = 7 x 256 + 5: at ``batch_size=256`` each epoch of the default
AutoEncoder (SGD, learning rate 1.0, momentum 0.9) ends with a step on 5
rows. ``batch_size=257`` has 7 batches, the last of 255 rows (280 steps in
40 epochs against 320). This fits both (40 epochs, the quick benchmark's) per
seed and records the reconstruction error and AE + KMeans scores. One JSON
line per fit.

Examples
--------
::

    python benchmarks/last_batch.py 0 --out last_batch.jsonl
    python benchmarks/last_batch.py --summary last_batch.jsonl
"""

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits

from _records import append_record, current_commit, grouped_records, markdown_table, mean_of, run_experiment, scores
from skdeepcluster import AutoEncoder

BATCH_SIZES = (256, 257)


def run(args):
    torch.set_num_threads(1)
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    for batch_size in BATCH_SIZES:
        ae = AutoEncoder(max_epochs=40, batch_size=batch_size, device=args.device, random_state=args.seed).fit(X)
        Z = ae.transform(X)
        append_record(args.out, {
            "seed": args.seed, "batch_size": batch_size, "last_batch_rows": len(X) % batch_size,
            "n_steps": len(ae.history_) * -(-len(X) // batch_size),
            "reconstruction_mse": float(((ae.inverse_transform(Z) - X) ** 2).mean()),
            "final_loss": ae.history_[-1]["loss"],
            **scores(y, KMeans(10, n_init=20, random_state=args.seed).fit_predict(Z)),
            "device": str(ae.device_), "torch": torch.__version__, "commit": current_commit(),
        })


def summary(paths):
    groups = grouped_records(paths, key=lambda r: r["batch_size"])
    rows = []
    for batch_size in BATCH_SIZES:
        records = groups.get(batch_size, [])
        if records:
            rows.append([
                batch_size, records[0]["last_batch_rows"], records[0]["n_steps"],
                *(f"{mean_of(records, field):.4f} ± {np.std([r[field] for r in records]):.4f}"
                  for field in ("reconstruction_mse", "acc", "nmi")),
                ",".join(str(r["seed"]) for r in records),
            ])
    header = ["batch_size", "last batch rows", "steps", "reconstruction MSE", "AE+KMeans ACC", "AE+KMeans NMI", "seeds"]
    return markdown_table(header, rows)


if __name__ == "__main__":
    run_experiment(__doc__, "benchmarks/results/last_batch.jsonl", run, summary, default_device="cpu")
