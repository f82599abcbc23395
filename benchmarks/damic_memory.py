"""Memory and time of DAMIC's whole-data passes through its K autoencoders.

``reconstruction_errors`` and ``posterior_proba`` run all K experts on each
chunk of rows, so their activations are K times a single network's: 4,096
rows x 20 experts x 1,024 units is 84 million float64 entries per layer.
In eval mode ``DAMICNetwork.distances`` runs a chunk in row blocks of at
most ``skdeepcluster._core.data.MAX_CHUNK_ENTRIES`` stacked entries. This
compares that cap with no cap (whole 4,096-row chunks, the behaviour
before it) on MNIST-shaped data (8,192 x 784, uniform noise: the memory
and time do not depend on the values). One model per K is fitted first
(1,024 rows, one epoch per phase) and pickled; each setting then loads it
in its own process, so that the peak resident memory is its own.

Run: ``python benchmarks/damic_memory.py`` (one CPU thread; writes
``results/damic_memory.json`` and ``.md``).
"""

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time

from _records import current_commit, measure_in_new_process, write_measurements

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {"default cap": None, "no cap": 2**62}
N_CLUSTERS = (10, 20)
N_SAMPLES, N_FEATURES = 8192, 784


def _data(n_samples, seed):
    import numpy as np

    return np.random.RandomState(seed).rand(n_samples, N_FEATURES).astype(np.float32)


def fit(n_clusters, path):
    import torch

    from skdeepcluster import DAMIC

    torch.set_num_threads(1)
    est = DAMIC(
        n_clusters=n_clusters, pretrain_epochs=1, gate_pretrain_epochs=1, expert_pretrain_epochs=1,
        max_epochs=1, device="cpu", random_state=0,
    ).fit(_data(1024, 0))
    with open(path, "wb") as f:
        pickle.dump(est, f)


def measure(path, max_chunk_entries):
    import numpy as np
    import torch

    import skdeepcluster._core.data as data_module

    torch.set_num_threads(1)
    if max_chunk_entries is not None:
        data_module.MAX_CHUNK_ENTRIES = max_chunk_entries
    X = _data(N_SAMPLES, 1)
    with open(path, "rb") as f:
        est = pickle.load(f)
    loaded = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KB on Linux
    began = time.perf_counter()
    errors = est.reconstruction_errors(X)
    middle = time.perf_counter()
    posterior = est.posterior_proba(X)
    ended = time.perf_counter()
    return {
        "loaded_rss_gb": loaded,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "reconstruction_errors_seconds": middle - began,
        "posterior_proba_seconds": ended - middle,
        "errors_checksum": float(errors.sum()),
        "posterior_checksum": float(posterior.sum(axis=0) @ np.arange(1, posterior.shape[1] + 1)),
        "torch": torch.__version__,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fit", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    if args.fit is not None:
        fit(int(args.fit[0]), args.fit[1])
        return
    if args.measure is not None:
        cap = None if args.measure[1] == "None" else int(args.measure[1])
        print(json.dumps(measure(args.measure[0], cap)))
        return
    records = []
    with tempfile.TemporaryDirectory() as scratch:
        for n_clusters in N_CLUSTERS:
            path = os.path.join(scratch, f"damic_{n_clusters}.pkl")
            subprocess.run([sys.executable, __file__, "--fit", str(n_clusters), path], check=True)
            for name, cap in SETTINGS.items():
                record = measure_in_new_process(__file__, "--measure", path, str(cap))
                records.append({"n_clusters": n_clusters, "setting": name, **record})
    commit = current_commit()
    lines = [
        f"## DAMIC's expert passes (benchmarks/damic_memory.py, commit {commit}, one CPU thread, torch {records[0]['torch']})",
        "",
        f"{N_SAMPLES:,} x {N_FEATURES} dense input, default architecture (experts d-1024-256-K-256-1024-d).",
        "Memory: peak resident memory of the process after loading the model, and after both calls.",
        "",
        "| K | expert row blocks | loaded (GB) | peak (GB) | reconstruction_errors (s) | posterior_proba (s) | same output |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        reference = next(q for q in records if q["n_clusters"] == r["n_clusters"] and q["setting"] == "no cap")
        same = all(
            abs(r[key] - reference[key]) <= 1e-9 * max(1.0, abs(reference[key]))
            for key in ("errors_checksum", "posterior_checksum")
        )
        lines.append(
            f"| {r['n_clusters']} | {r['setting']} | {r['loaded_rss_gb']:.2f} | {r['peak_rss_gb']:.2f} "
            f"| {r['reconstruction_errors_seconds']:.1f} | {r['posterior_proba_seconds']:.1f} | {'yes' if same else 'no'} |"
        )
    write_measurements(args.out, "damic_memory", commit, records, lines)


if __name__ == "__main__":
    main()
