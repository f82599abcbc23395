"""The BENCHMARKS.md prototype's autoencoder recipe, rebuilt without the package.

``../shared/BENCHMARKS.md`` reports a plain-PyTorch prototype on MNIST-5k
(SGD rate 1.0, momentum 0.9, 20 % masking noise, 300 epochs, bfloat16
autocast) at AE + k-means accuracy 0.684 / 0.705 on two seeds, while
``AutoEncoder`` with the same recipe and Glorot weights gave 0.664 on five.
This script trains that recipe in a bare loop with three switches, to find
which difference matters:

* ``init``: ``torch`` keeps ``torch.nn.Linear``'s own initialisation (what a
  plain PyTorch prototype gets: weights and biases uniform in
  +-1/sqrt(fan_in)), ``glorot`` draws Glorot-uniform weights and zero biases
  (``AutoEncoder(weight_init="glorot")``), ``torch_zero_bias`` keeps torch's
  weights with zero biases (``AutoEncoder``'s default), ``glorot_torch_bias``
  draws Glorot-uniform weights and keeps torch's biases;
* ``precision``: ``fp32`` or ``bf16`` (autocast of the forward pass).
* the SGD learning rate (optional fifth argument, default 1.0).

Network d-500-500-2000-10 (ReLU, linear embedding and output), batch 256,
per-element squared error, k-means with ``n_init=20`` on the embedding.
Only the package's data loader and accuracy metric are used. One JSON line
per (variant, seed, checkpoint epoch) goes to standard output.

Examples
--------
Two single-thread processes on two cores (about 4 minutes per bf16 run and 8
per fp32 run of 300 epochs here)::

    for v in "torch bf16" "glorot bf16"; do for s in 0 1 2 3 4; do echo "$v $s"; done; done |
        OMP_NUM_THREADS=1 xargs -P 2 -L 1 sh -c \\
        'python benchmarks/init_replication.py $0 $1 $2 300 >> results/init_replication.jsonl'
    python benchmarks/init_replication.py --summary results/init_replication.jsonl
"""

import collections
import json
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from skdeepcluster.datasets import load_mnist_5k
from skdeepcluster.metrics import clustering_accuracy

SIZES = [784, 500, 500, 2000, 10]
INITS = ("torch", "glorot", "torch_zero_bias", "glorot_torch_bias")


def _mlp(sizes):
    layers = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:  # linear last layer: embedding / reconstruction
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


def run(init, precision, seed, epochs, learning_rate=1.0):
    checkpoints = {e for e in (100, 200, 300, 400) if e <= epochs} | {epochs}
    torch.set_num_threads(1)
    X, y = load_mnist_5k()
    data = torch.from_numpy(X)
    torch.manual_seed(seed)
    encoder, decoder = _mlp(SIZES), _mlp(SIZES[::-1])
    model = nn.Sequential(encoder, decoder)
    for layer in model.modules():
        if isinstance(layer, nn.Linear) and init in ("glorot", "glorot_torch_bias"):
            nn.init.xavier_uniform_(layer.weight)
        if isinstance(layer, nn.Linear) and init in ("glorot", "torch_zero_bias"):
            nn.init.zeros_(layer.bias)
    optimizer = torch.optim.SGD(model.parameters(), lr=learning_rate, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    n = len(data)
    start = time.time()
    for epoch in range(1, epochs + 1):
        order = torch.randperm(n, generator=generator)
        for b in range(0, n, 256):
            x = data[order[b : b + 256]]
            noisy = x * (torch.rand(x.shape, generator=generator) >= 0.2)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
                x_hat = model(noisy)
            loss = ((x_hat.float() - x) ** 2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch in checkpoints:
            with torch.no_grad():
                Z = encoder(data).numpy().astype(np.float64)
                reconstruction = float(((model(data) - data) ** 2).mean())
            labels = KMeans(10, n_init=20, random_state=seed).fit_predict(Z)
            record = dict(
                init=init, precision=precision, seed=seed, epoch=epoch, lr=learning_rate,
                acc=float(clustering_accuracy(y, labels)),
                nmi=float(normalized_mutual_info_score(y, labels)),
                recon=reconstruction, seconds=time.time() - start,
            )
            print(json.dumps(record), flush=True)


def summary(path):
    """Mean and std of accuracy per (init, precision, learning rate, epoch)."""
    groups = collections.defaultdict(list)
    with open(path) as lines:
        for line in lines:
            if line.strip() and not line.startswith("#"):
                r = json.loads(line)
                groups[r["init"], r["precision"], r.get("lr", 1.0), r["epoch"]].append(r)
    rows = [
        "| init | precision | SGD rate | epochs | ACC | NMI | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for (init, precision, rate, epoch), records in sorted(groups.items()):
        acc = np.array([r["acc"] for r in records])
        nmi = np.array([r["nmi"] for r in records])
        seeds = ", ".join(str(r["seed"]) for r in sorted(records, key=lambda r: r["seed"]))
        rows.append(
            f"| {init} | {precision} | {rate:g} | {epoch} | {acc.mean():.3f} ± {acc.std():.3f} "
            f"| {nmi.mean():.3f} ± {nmi.std():.3f} | {seeds} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    if sys.argv[1] == "--summary":
        sys.stdout.write(summary(sys.argv[2]) + "\n")
    else:
        init, precision, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
        if init not in INITS or precision not in ("fp32", "bf16"):
            raise SystemExit(
                f"usage: init_replication.py {{{','.join(INITS)}}} {{fp32,bf16}} SEED [EPOCHS] | --summary FILE"
            )
        epochs = int(sys.argv[4]) if len(sys.argv) > 4 else 300
        run(init, precision, seed, epochs, float(sys.argv[5]) if len(sys.argv) > 5 else 1.0)
