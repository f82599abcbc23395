"""DAMIC's K autoencoders: one batched computation vs a loop over K modules.

Times one training step (forward, loss, backward) of the K experts on one
batch, in the two forms: :class:`skdeepcluster._damic.StackedMLP` (weights
stacked as (K, in, out), one ``torch.baddbmm`` per layer) and a Python loop
over K ``nn.Sequential`` experts of the same shape (batch norm, ReLU,
sigmoid output). Median over repeats after a warm-up; on CUDA the device is
synchronised before each clock read.

Examples
--------
::

    python benchmarks/experts_speed.py --device cpu
    python benchmarks/experts_speed.py --device cuda

Writes ``benchmarks/results/experts_speed_<device type>.json`` and prints it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from skdeepcluster._core.autoencoder import mlp
from skdeepcluster._damic import PAPER_EXPERT_HIDDEN, StackedMLP, half_squared_errors

HERE = os.path.dirname(os.path.abspath(__file__))

#: name -> (input width, hidden widths) of the experts d-e1-..-K-..-e1-d
SHAPES = {
    "paper MNIST experts": (784, PAPER_EXPERT_HIDDEN),
    "small experts": (12, (192, 192)),
}


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _step_seconds(step, device, repeats, warmup=3):
    for _ in range(warmup):
        step()
    _sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        _sync(device)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def compare(n_features, hidden, n_models, device, batch_size=256, repeats=20):
    """Seconds per training step of the stacked and the looped experts."""
    torch.manual_seed(0)
    sizes = (n_features, *hidden, n_models, *hidden[::-1], n_features)
    x = torch.rand(batch_size, n_features, device=device)
    stacked = StackedMLP(n_models, sizes, "relu", "sigmoid", batch_norm=True).to(device)
    looped = torch.nn.ModuleList(
        [mlp(sizes, "relu", "sigmoid", batch_norm=True) for _ in range(n_models)]
    ).to(device)

    def stacked_step():
        stacked.zero_grad(set_to_none=True)
        half_squared_errors(x, stacked(x)).sum().backward()

    def looped_step():
        looped.zero_grad(set_to_none=True)
        reconstructions = torch.stack([expert(x) for expert in looped])
        half_squared_errors(x, reconstructions).sum().backward()

    return {
        "stacked_seconds": _step_seconds(stacked_step, device, repeats),
        "looped_seconds": _step_seconds(looped_step, device, repeats),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    rows = []
    for name, (n_features, hidden) in SHAPES.items():
        for n_models in (10, 20):
            row = {"experts": name, "sizes": [n_features, *hidden], "K": n_models}
            row.update(compare(n_features, hidden, n_models, device, repeats=args.repeats))
            row["speed_up"] = row["looped_seconds"] / row["stacked_seconds"]
            rows.append(row)
    result = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "batch_size": 256,
        "rows": rows,
    }
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"experts_speed_{device.type}.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    sys.stdout.write(json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    main()
