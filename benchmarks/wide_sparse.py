"""Memory and time of a fit and a prediction on wide sparse input.

A TF-IDF-like CSR matrix (10,000 rows, 50,000 columns, 50 entries per row,
6 MB of values) through ``IDEC`` with a small network. Whole-data passes
(the embedding for k-means, target distributions, prediction) densify the
rows chunk by chunk; this compares the default cap on a chunk's entries
(``skdeepcluster._core.data.MAX_CHUNK_ENTRIES``) with 4,096-row chunks
whatever the width, the behaviour before that cap. Each setting runs in its
own process, so that its peak resident memory is its own.

Run: ``python benchmarks/wide_sparse.py`` (one CPU thread; writes
``results/wide_sparse.json`` and ``.md``).
"""

import argparse
import json
import os
import resource
import time

from _records import current_commit, measure_in_new_process, write_measurements

HERE = os.path.dirname(os.path.abspath(__file__))
SETTINGS = {"default cap": None, "4,096 rows at any width": 2**62}


def measure(max_chunk_entries, n_columns=50_000):
    import numpy as np
    import scipy.sparse as sp
    import torch

    import skdeepcluster._core.data as data_module
    from skdeepcluster import IDEC

    torch.set_num_threads(1)
    if max_chunk_entries is not None:
        data_module.MAX_CHUNK_ENTRIES = max_chunk_entries
    rng = np.random.RandomState(0)
    n, d, per_row = 10_000, n_columns, 50
    indptr = np.arange(0, n * per_row + 1, per_row)
    X = sp.csr_matrix(
        (rng.rand(n * per_row).astype(np.float32), rng.randint(0, d, size=n * per_row), indptr), shape=(n, d)
    )
    est = IDEC(
        n_clusters=5, hidden_dims=(64,), embedding_dim=5, pretrain_epochs=1, max_epochs=1,
        batch_size=256, device="cpu", random_state=0,
    )
    began = time.perf_counter()
    est.fit(X)
    fitted = time.perf_counter()
    proba = est.predict_proba(X)
    return {
        "fit_seconds": fitted - began,
        "predict_proba_seconds": time.perf_counter() - fitted,
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,  # KB on Linux
        "proba_checksum": float(proba.sum(axis=0) @ np.arange(1, 6)),
        "torch": torch.__version__,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    parser.add_argument("--columns", type=int, default=50_000, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    if args.measure is not None:
        cap = None if args.measure == "None" else int(args.measure)
        print(json.dumps(measure(cap, args.columns)))
        return
    records = [
        {"setting": name, **measure_in_new_process(__file__, "--measure", str(cap))} for name, cap in SETTINGS.items()
    ]
    commit = current_commit()
    lines = [
        f"## Wide sparse input (benchmarks/wide_sparse.py, commit {commit}, one CPU thread, torch {records[0]['torch']})",
        "",
        "IDEC, 10,000 x 50,000 CSR with 50 entries per row, 1 pretraining + 1 clustering epoch.",
        "",
        "| chunks of whole-data passes | fit (s) | predict_proba (s) | peak memory (GB) |",
        "|---|---|---|---|",
    ]
    for r in records:
        lines.append(f"| {r['setting']} | {r['fit_seconds']:.1f} | {r['predict_proba_seconds']:.1f} | {r['peak_rss_gb']:.2f} |")
    write_measurements(args.out, "wide_sparse", commit, records, lines)


if __name__ == "__main__":
    main()
