"""AutoEncoder pretraining in float32 against bfloat16 autocast on MNIST-5k.

One process per seed fits the default ``AutoEncoder`` (400 epochs) twice,
with ``precision="float32"`` and ``precision="bfloat16"`` (the order
alternating with the seed, so that neither always runs first beside another
process), then k-means (n_init=20) and a Gaussian mixture on each embedding.
One JSON line per fit goes to ``--out``: fit seconds, the final training
loss (as the training computed it: from bfloat16 outputs under
``"bfloat16"``) and the scores.

Examples
--------
Two processes on two CPU cores, one torch thread each::

    for s in 0 1; do python benchmarks/precision.py $s --device cpu --out precision.jsonl & done; wait
    python benchmarks/precision.py --summary precision.jsonl
"""

import time

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from _records import append_record, current_commit, grouped_records, markdown_table, mean_of, run_experiment, scores
from skdeepcluster import AutoEncoder
from skdeepcluster._core.device import PRECISIONS
from skdeepcluster.datasets import load_mnist_5k



def run(seed, out, device, threads, epochs):
    torch.set_num_threads(threads)
    X, y = load_mnist_5k()
    order = PRECISIONS if seed % 2 == 0 else PRECISIONS[::-1]
    for precision in order:
        began = time.perf_counter()
        ae = AutoEncoder(max_epochs=epochs, precision=precision, device=device, random_state=seed).fit(X)
        seconds = time.perf_counter() - began
        Z = ae.transform(X)
        kmeans = scores(y, KMeans(10, n_init=20, random_state=seed).fit_predict(Z))
        mixture = scores(y, GaussianMixture(10, random_state=seed).fit(Z).predict(Z))
        append_record(out, {
            "seed": seed, "precision": precision, "epochs": epochs, "seconds": seconds,
            "final_loss": ae.history_[-1]["loss"],
            **{f"kmeans_{name}": value for name, value in kmeans.items()},
            **{f"gmm_{name}": value for name, value in mixture.items()},
            "device": str(ae.device_), "threads": threads, "torch": torch.__version__, "commit": current_commit(),
        })


def summary(paths):
    """Markdown table: time, loss and AE + k-means / AE + GMM scores per precision."""
    groups = grouped_records(paths, key=lambda r: r["precision"])
    rows = []
    for precision in PRECISIONS:
        records = groups.get(precision, [])
        if not records:
            continue
        acc = np.array([r["kmeans_acc"] for r in records])
        rows.append((
            precision,
            f"{mean_of(records, 'seconds'):.0f}",
            f"{mean_of(records, 'final_loss'):.5f}",
            f"{acc.mean():.3f} ± {acc.std():.3f}",
            f"{mean_of(records, 'kmeans_nmi'):.3f}",
            f"{mean_of(records, 'gmm_acc'):.3f}",
            f"{mean_of(records, 'gmm_nmi'):.3f}",
            ", ".join(f"{a:.3f}" for a in acc),
            len(records),
        ))
    table = markdown_table(
        ("precision", "fit s", "final training loss", "AE+KMeans ACC", "NMI", "AE+GMM ACC", "NMI", "AE+KMeans ACC per seed", "seeds"),
        rows,
    )
    full, lower = (groups.get(p, []) for p in PRECISIONS)
    by_seed = {r["seed"]: r["seconds"] for r in full}
    ratios = [by_seed[r["seed"]] / r["seconds"] for r in lower if r["seed"] in by_seed]
    if ratios:
        table += f"\nfloat32 time / bfloat16 time per seed: {', '.join(f'{q:.2f}' for q in ratios)}\n"
    for precision in PRECISIONS:
        if groups.get(precision):
            per_seed = ", ".join(f"{r['gmm_acc']:.3f}" for r in groups[precision])
            table += f"\nAE+GMM ACC per seed, {precision}: {per_seed}\n"
    return table


def main(argv=None):
    run_experiment(
        __doc__, "precision.jsonl", lambda args: run(args.seed, args.out, args.device, args.threads, args.epochs),
        summary, argv, default_device="cpu",
        options={"--threads": {"type": int, "default": 1}, "--epochs": {"type": int, "default": 400}},
    )


if __name__ == "__main__":
    main()
