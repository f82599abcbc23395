"""What the experiment scripts share: JSON lines on disk, grouped back into a table.

Each experiment script runs one seed per process (so several run side by
side), appends one JSON object per fit to ``--out``, and prints a markdown
table of saved results with ``--summary``. The memory scripts run each
setting in a process of its own (:func:`measure_in_new_process`) and write
one result (:func:`write_measurements`). The scripts import this module as
a sibling (``python benchmarks/<script>.py`` puts ``benchmarks/`` on the
path).
"""

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
import torch
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from skdeepcluster.metrics import clustering_accuracy


def append_record(path, record):
    """Append one JSON line to ``path``; a line at a time, so parallel runs interleave whole records."""
    with open(path, "a") as handle:
        handle.write(json.dumps(record) + "\n")


def grouped_records(paths, key, keep=None):
    """Records of the JSON-lines files ``paths`` grouped by ``key(record)``, each group sorted by seed."""
    groups = collections.defaultdict(list)
    for path in [paths] if isinstance(paths, str) else paths:
        with open(path) as handle:
            for line in handle:
                record = json.loads(line)
                if keep is None or keep(record):
                    groups[key(record)].append(record)
    return {name: sorted(records, key=lambda r: r["seed"]) for name, records in groups.items()}


def measure_in_new_process(script, *args, env=None):
    """Run ``python script *args`` in a fresh process, so that its peak
    memory is its own (with ``env`` added to its environment); the JSON
    object its last line of output holds."""
    environment = None if env is None else {**os.environ, **env}
    output = subprocess.run(
        [sys.executable, script, *args], check=True, capture_output=True, text=True, env=environment
    ).stdout
    return json.loads(output.strip().splitlines()[-1])


def _git(*args):
    """git's output in this checkout; empty where git or the repository is missing."""
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def _commit_of_this_process():
    """HEAD when this process started, ``+modified`` if the package or the
    benchmarks differed from it then: the code the process runs, which later
    commits in the same checkout do not change."""
    commit = _git("rev-parse", "--short", "HEAD")
    # ":/": paths from the repository root, not from benchmarks/
    if _git("status", "--porcelain", "--untracked-files=no", "--", ":/skdeepcluster", ":/benchmarks/*.py"):
        commit += "+modified"
    return commit


_COMMIT = _commit_of_this_process()


def current_commit():
    """The short hash of the code this process runs (HEAD when it started;
    ``+modified`` if the package or the scripts had uncommitted changes)."""
    return _COMMIT


def write_measurements(out, name, commit, records, markdown_lines):
    """Write ``out/name.json`` (machine, commit, records) and ``out/name.md``."""
    os.makedirs(out, exist_ok=True)
    result = {"machine": platform.processor() or platform.machine(), "commit": commit, "records": records}
    with open(os.path.join(out, f"{name}.json"), "w") as handle:
        json.dump(result, handle, indent=1)
    with open(os.path.join(out, f"{name}.md"), "w") as handle:
        handle.write("\n".join(markdown_lines) + "\n")


def mean_of(records, field):
    return np.mean([r[field] for r in records])


def markdown_table(header, rows):
    """A markdown table of the column names ``header`` and the cell lists ``rows``."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def scores(y, labels):
    """ACC (Hungarian matching), NMI and ARI of ``labels`` against ``y``."""
    return {
        "acc": clustering_accuracy(y, labels),
        "nmi": normalized_mutual_info_score(y, labels),
        "ari": adjusted_rand_score(y, labels),
    }


def damic_fit_record(est, X, y, seed, began):
    """The fields every DAMIC experiment records for a fitted estimator.

    ``seconds`` runs from ``began`` to this call, so it covers whatever the
    caller computed on the fitted estimator before.
    """
    return {
        "seed": seed,
        "nmi": normalized_mutual_info_score(y, est.labels_),
        "ari": adjusted_rand_score(y, est.labels_),
        "start_nmi": normalized_mutual_info_score(y, est.initial_labels_),
        "start_ari": adjusted_rand_score(y, est.initial_labels_),
        "n_active_clusters": int(est.n_active_clusters_),
        "n_iter": int(est.n_iter_),
        "seconds": time.perf_counter() - began,
        "device": str(est.device_),
        "torch": torch.__version__,
    }


def run_experiment(doc, default_out, run, summary, argv=None, positionals=("seed",), default_device="auto", options=None):
    """An experiment's command line: positional integers, ``--device``, ``--out``, ``--summary``.

    With ``--summary JSONL ...`` prints ``summary(paths)`` (a string);
    otherwise every positional must be given and ``run(args)`` runs.
    ``options`` maps the script's own option names to the keyword arguments
    of ``add_argument``.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    for name in positionals:
        parser.add_argument(name, type=int, nargs="?")
    parser.add_argument("--device", default=default_device)
    parser.add_argument("--out", default=default_out)
    parser.add_argument("--summary", nargs="+", metavar="JSONL", help="only print the table of saved results")
    for name, settings in (options or {}).items():
        parser.add_argument(name, **settings)
    args = parser.parse_args(argv)
    if args.summary:
        sys.stdout.write(summary(args.summary))
        return
    if any(getattr(args, name) is None for name in positionals):
        parser.error(f"give {' and '.join(positionals)}, or --summary JSONL")
    run(args)
