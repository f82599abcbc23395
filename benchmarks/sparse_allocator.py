"""Peak memory of a fit on wide sparse input, with glibc's default allocator
settings and with a fixed mmap threshold.

Each mini-batch of a sparse ``X`` is densified on its own (256 rows), and
the forward and backward passes make temporaries of the same size. glibc
serves blocks above its mmap threshold with ``mmap`` and returns them when
freed, but it raises that threshold to the size of a freed block, up to
32 MiB; densified batches below that then come from the heap, and the
heap fragments. ``MALLOC_MMAP_THRESHOLD_`` fixes the threshold (and turns
the raising off). This runs ``wide_sparse.py``'s measurement (IDEC, 10,000
rows, 50 entries per row, 1 pretraining + 1 clustering epoch, one thread)
at 10,000 to 50,000 columns (10.2 to 51.2 MB batches), each in its own
process, without and with ``MALLOC_MMAP_THRESHOLD_=4194304``.

Run: ``python benchmarks/sparse_allocator.py`` (writes
``results/sparse_allocator.json`` and ``.md``).
"""

import argparse
import os

from _records import current_commit, measure_in_new_process, write_measurements

HERE = os.path.dirname(os.path.abspath(__file__))
COLUMNS = (10_000, 20_000, 30_000, 50_000)
ALLOCATORS = {"glibc default": None, "MALLOC_MMAP_THRESHOLD_=4194304": {"MALLOC_MMAP_THRESHOLD_": "4194304"}}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    script = os.path.join(HERE, "wide_sparse.py")
    records = [
        {
            "columns": columns,
            "allocator": name,
            **measure_in_new_process(script, "--measure", "None", "--columns", str(columns), env=env),
        }
        for columns in COLUMNS
        for name, env in ALLOCATORS.items()
    ]
    commit = current_commit()
    lines = [
        f"## Wide sparse input and glibc's allocator (benchmarks/sparse_allocator.py, commit {commit}, one CPU thread, "
        f"torch {records[0]['torch']})",
        "",
        "IDEC, 10,000 rows of CSR with 50 entries per row, batch 256, 1 pretraining + 1 clustering epoch; "
        "peak resident memory of the whole process (data included). The dense float32 matrix would take "
        "0.4 GB per 10,000 columns.",
        "",
        "| columns | densified batch (MB) | allocator | fit (s) | peak memory (GB) | probabilities checksum |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        lines.append(
            f"| {r['columns']:,} | {256 * r['columns'] * 4 / 1e6:.1f} | {r['allocator']} | {r['fit_seconds']:.1f} "
            f"| {r['peak_rss_gb']:.2f} | {r['proba_checksum']:.6f} |"
        )
    write_measurements(args.out, "sparse_allocator", commit, records, lines)


if __name__ == "__main__":
    main()
