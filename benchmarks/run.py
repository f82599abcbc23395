"""Benchmark every clustering method on the data available offline.

Protocol (../shared/BENCHMARKS.md): the same seeds for every method; the deep
methods of one seed share one pretrained autoencoder through the pretraining
cache, so their differences come from the clustering stage; ACC (Hungarian),
NMI, ARI, fit wall time and peak memory; mean +- std over seeds.

Examples
--------
Quick look on the bundled digits (about two minutes on 2 cores)::

    python benchmarks/run.py --quick

The full run behind the README table (about an hour on 2 cores)::

    python benchmarks/run.py --datasets digits mnist5k --seeds 0 1 2 3 4

Results go to ``benchmarks/results/``: ``<name>.json`` (every run with
versions, device, seeds and settings), ``<name>.md`` (the table) and
``<name>.png`` (accuracy per method).
"""

import argparse
import json
import os
import platform
import sys
import threading
import time
import warnings

import numpy as np
import psutil
import sklearn
import torch
from sklearn.cluster import KMeans, SpectralClustering
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import minmax_scale

import skdeepcluster
from skdeepcluster import AutoEncoder, DeepKMeans
from skdeepcluster._core.autoencoder import WEIGHT_INITS
from skdeepcluster.datasets import load_digits_scaled, load_fashion_mnist, load_mnist_5k, make_dcn_synthetic

from _records import scores  # a sibling module: benchmarks/ is on the path

HERE = os.path.dirname(os.path.abspath(__file__))


def _synthetic(latent="elongated", scaled=False):
    X, y, _ = make_dcn_synthetic(latent=latent, random_state=0)
    if scaled:
        # DAMIC's sec. 3.4: "All datasets were normalized between 0 and 1";
        # a quarter of sigmoid(Wv)^2's features span less than 0.89 of it
        X = minmax_scale(X).astype(np.float32)
    return X, y


def _imbalanced(load, largest_to_smallest=10.0):
    """The classes of ``load()`` cut to sizes falling geometrically from the
    largest class's full size to 1/largest_to_smallest of it (class 0
    keeps most, the last class least), by a fixed draw: the DeepGMM paper's
    imbalanced case, where DEC-style targets are said to fail."""
    X, y = load()
    classes = np.unique(y)
    largest = min(np.sum(y == c) for c in classes)
    rng = np.random.RandomState(0)
    keep = []
    for rank, c in enumerate(classes):
        size = int(round(largest * largest_to_smallest ** (-rank / (len(classes) - 1))))
        keep.append(rng.permutation(np.flatnonzero(y == c))[:size])
    keep = np.sort(np.concatenate(keep))
    return X[keep], y[keep]


DATASETS = {
    "digits": load_digits_scaled,
    "mnist5k": load_mnist_5k,
    "mnist5k-imbalanced": lambda: _imbalanced(load_mnist_5k),
    # Debian's dataset-fashion-mnist (70,000 images); absent until that package is installed
    "fashion-mnist": load_fashion_mnist,
    "synthetic": _synthetic,
    # the latent layout of the DCN authors' generator script (round, separated clusters)
    "synthetic-round": lambda: _synthetic("round"),
    # the pinned layout with every feature min-max scaled to [0, 1], as DAMIC's paper does to all its data
    "synthetic-scaled": lambda: _synthetic(scaled=True),
}

#: Run settings. "full" keeps every estimator's defaults (the papers');
#: "quick" shortens training for a first look.
SETTINGS = {
    "full": {"pretrain_epochs": 400, "dkm_epochs": 100, "dkm_annealing_epochs": 200, "deep_max_epochs": None},
    "quick": {"pretrain_epochs": 40, "dkm_epochs": 30, "dkm_annealing_epochs": 60, "deep_max_epochs": 30},
}


#: Autoencoder shape per dataset where the default d-500-500-2000-10 is not
#: the papers': DAMIC's paper pretrains 100-50-10-2 on its synthetic data.
_DAMIC_SYNTHETIC_SHAPE = {"hidden_dims": (100, 50, 10), "embedding_dim": 2}
AUTOENCODER_SHAPES = {
    "synthetic": _DAMIC_SYNTHETIC_SHAPE,
    "synthetic-round": _DAMIC_SYNTHETIC_SHAPE,
    "synthetic-scaled": _DAMIC_SYNTHETIC_SHAPE,
}


def _autoencoder(ctx):
    shape = AUTOENCODER_SHAPES.get(ctx["dataset"], {})
    if ctx.get("weight_init") is not None:
        shape = dict(shape, weight_init=ctx["weight_init"])
    return AutoEncoder(max_epochs=ctx["pretrain_epochs"], **shape, **ctx["common"])


def _deep(cls, ctx, **params):
    """A deep method sharing the seed's pretrained autoencoder (same settings, same cache)."""
    if ctx["deep_max_epochs"] is not None and "max_epochs" not in params:
        params["max_epochs"] = ctx["deep_max_epochs"]
    if ctx.get("weight_init") is not None:
        # a non-default autoencoder: hand it over, the methods' own pretraining would not match it
        params["autoencoder"] = _autoencoder(ctx)
    return cls(ctx["n_clusters"], pretrain_epochs=ctx["pretrain_epochs"], **ctx["common"], **params)


def _methods():
    """Name -> factory(ctx). Methods not yet in the package are left out."""
    methods = {
        "KMeans": lambda c: KMeans(c["n_clusters"], n_init=10, random_state=c["seed"]),
        "GMM": lambda c: GaussianMixture(c["n_clusters"], covariance_type="diag", random_state=c["seed"]),
        "AE+KMeans": lambda c: make_pipeline(_autoencoder(c), KMeans(c["n_clusters"], n_init=20, random_state=c["seed"])),
        "AE+GMM": lambda c: make_pipeline(_autoencoder(c), GaussianMixture(c["n_clusters"], random_state=c["seed"])),
        "DKM^p": lambda c: _deep(DeepKMeans, c, embedding_dim=10, max_epochs=c["dkm_epochs"]),
        "DKM^a": lambda c: DeepKMeans(
            c["n_clusters"], alpha="annealing", pretrain_epochs=0, embedding_dim=10,
            max_epochs=c["dkm_annealing_epochs"], **c["common"],
        ),
    }
    for weight in DKM_LAMBDA_SWEEP:  # the paper's line search over lambda, in small
        methods[f"DKM^p lambda={weight}"] = lambda c, weight=weight: _deep(
            DeepKMeans, c, embedding_dim=10, max_epochs=c["dkm_epochs"], clustering_weight=weight
        )
    if hasattr(skdeepcluster, "IDEC"):
        methods["DEC"] = lambda c: _deep(skdeepcluster.DEC, c)
        methods["IDEC"] = lambda c: _deep(skdeepcluster.IDEC, c)
        for gamma in GAMMA_SWEEP:  # the IDEC paper's Figure 4, in small
            methods[f"IDEC gamma={gamma}"] = lambda c, gamma=gamma: _deep(skdeepcluster.IDEC, c, gamma=gamma)
    if hasattr(skdeepcluster, "DAMIC"):
        def damic(c, **params):
            if c["deep_max_epochs"] is not None:
                params["max_epochs"] = c["deep_max_epochs"]
            return skdeepcluster.DAMIC(c["n_clusters"], **c["common"], **params)

        # DAMIC pretrains its own autoencoder (batch norm, sigmoid output, BCE), as its paper
        methods["DAMIC"] = lambda c: damic(c)
        # the benchmark protocol's variant: k-means on the seed's shared autoencoder
        # gives the initial partition, so DAMIC compares with AE+KMeans on one start
        methods["DAMIC (shared AE)"] = lambda c: damic(c, autoencoder=_autoencoder(c))
        # the initial partition from a full-covariance Gaussian mixture instead of k-means
        methods["DAMIC (GMM start)"] = lambda c: damic(c, init="gmm")
        methods["DAMIC (GMM start, shared AE)"] = lambda c: damic(c, init="gmm", autoencoder=_autoencoder(c))
    if hasattr(skdeepcluster, "ADMMCluster"):
        methods["DC-Kmeans"] = lambda c: _deep(skdeepcluster.ADMMCluster, c, clustering="kmeans")
        methods["DC-GMM"] = lambda c: _deep(skdeepcluster.ADMMCluster, c, clustering="gmm")
        for clustering, name in (("kmeans", "DC-Kmeans"), ("gmm", "DC-GMM")):
            # the paper's AdaDelta instead of Adam; all 200 iterations instead of stopping on tol
            methods[f"{name} (AdaDelta)"] = lambda c, clustering=clustering: _deep(
                skdeepcluster.ADMMCluster, c, clustering=clustering, optimizer="adadelta"
            )
            methods[f"{name} (200 iterations)"] = lambda c, clustering=clustering: _deep(
                skdeepcluster.ADMMCluster, c, clustering=clustering, tol=0.0
            )
            for rho in RHO_SWEEP[clustering]:  # the paper's Fig. 7, in small
                methods[f"{name} rho={rho:g}"] = lambda c, clustering=clustering, rho=rho: _deep(
                    skdeepcluster.ADMMCluster, c, clustering=clustering, rho=rho
                )
    if hasattr(skdeepcluster, "DeepGMM"):
        methods["DeepGMM"] = lambda c: _deep(skdeepcluster.DeepGMM, c)
        # the mixture fitted by EM on the shared embedding, before any joint training
        methods["DeepGMM (start)"] = lambda c: _deep(skdeepcluster.DeepGMM, c, max_epochs=0)
        # the paper's diagonal covariances, trained and at the start
        methods["DeepGMM (diag)"] = lambda c: _deep(skdeepcluster.DeepGMM, c, covariance_type="diag")
        methods["DeepGMM (diag, start)"] = lambda c: _deep(skdeepcluster.DeepGMM, c, covariance_type="diag", max_epochs=0)
        # the paper's optimizer: SGD at 0.01 (momentum 0.9)
        methods["DeepGMM (SGD)"] = lambda c: _deep(skdeepcluster.DeepGMM, c, optimizer="sgd")
        # the paper's stage 3 as written: encoder and mixture only, no decoder
        methods["DeepGMM (no reconstruction)"] = lambda c: _deep(skdeepcluster.DeepGMM, c, reconstruction_weight=0.0)
        for weight in RECONSTRUCTION_SWEEP:
            methods[f"DeepGMM reconstruction_weight={weight:g}"] = lambda c, weight=weight: _deep(
                skdeepcluster.DeepGMM, c, reconstruction_weight=weight
            )
        for eta in ETA_SWEEP:  # eta=0 is the paper's "DeepGMM" ablation
            methods[f"DeepGMM eta={eta:g}"] = lambda c, eta=eta: _deep(skdeepcluster.DeepGMM, c, separation_weight=eta)
    methods["Spectral"] = lambda c: SpectralClustering(
        c["n_clusters"], affinity="nearest_neighbors", n_neighbors=10, random_state=c["seed"]
    )
    return methods


GAMMA_SWEEP = (0.01, 0.05, 0.1, 0.2, 0.5, 1.0)
#: ADMMCluster's rho a decade either side of the authors' (1 and 1000).
RHO_SWEEP = {"kmeans": (0.1, 10.0), "gmm": (100.0, 10000.0)}
#: DeepGMM's eta: the paper's ablation (0) and its grid {0.1, 0.01, 0.001, 0.0001}.
ETA_SWEEP = (0.0, 0.1, 0.01, 0.001, 0.0001)
#: DeepGMM's reconstruction_weight besides the default 10 and the paper's 0.
RECONSTRUCTION_SWEEP = (0.1, 1.0, 100.0)
#: DeepKMeans' lambda besides the default 0.01 ("DKM^p").
DKM_LAMBDA_SWEEP = (0.001, 0.1, 1.0)

#: Methods that start from the seed's shared pretrained autoencoder.
SHARED_AUTOENCODER = (
    {"AE+KMeans", "AE+GMM", "DKM^p", "DEC", "IDEC", "DAMIC (shared AE)", "DAMIC (GMM start, shared AE)"}
    | {"DC-Kmeans", "DC-GMM"}
    | {f"{n} ({v})" for n in ("DC-Kmeans", "DC-GMM") for v in ("AdaDelta", "200 iterations")}
    | {f"DC-Kmeans rho={r:g}" for r in RHO_SWEEP["kmeans"]}
    | {f"DC-GMM rho={r:g}" for r in RHO_SWEEP["gmm"]}
    | {f"IDEC gamma={g}" for g in GAMMA_SWEEP}
    | {f"DKM^p lambda={w}" for w in DKM_LAMBDA_SWEEP}
    | {"DeepGMM", "DeepGMM (start)", "DeepGMM (no reconstruction)", "DeepGMM (diag)", "DeepGMM (diag, start)"}
    | {"DeepGMM (SGD)"}
    | {f"DeepGMM reconstruction_weight={w:g}" for w in RECONSTRUCTION_SWEEP}
    | {f"DeepGMM eta={e:g}" for e in ETA_SWEEP}
)

DEFAULT_METHODS = {
    "digits": ["KMeans", "GMM", "AE+KMeans", "AE+GMM", "DKM^p", "DKM^a", "DEC", "IDEC", "DAMIC", "DC-Kmeans", "DC-GMM", "DeepGMM"],
    "mnist5k": ["KMeans", "GMM", "AE+KMeans", "AE+GMM", "DKM^p", "DKM^a", "DEC", "IDEC", "DAMIC", "DC-Kmeans", "DC-GMM", "DeepGMM"],
    "mnist5k-imbalanced": ["KMeans", "AE+KMeans", "AE+GMM", "DKM^p", "DEC", "IDEC", "DeepGMM"],
    # the DeepGMM paper's largest data set; 14x MNIST-5k, so its run shortens epochs (--pretrain-epochs, --max-epochs)
    "fashion-mnist": ["KMeans", "AE+KMeans", "AE+GMM", "DEC", "IDEC", "DeepGMM (start)", "DeepGMM", "DeepGMM eta=0"],
    "synthetic": ["KMeans", "Spectral", "AE+KMeans", "AE+GMM", "DAMIC", "DAMIC (GMM start)", "DAMIC (GMM start, shared AE)"],
    "synthetic-round": ["KMeans", "Spectral", "AE+KMeans", "AE+GMM", "DAMIC", "DAMIC (GMM start)", "DAMIC (GMM start, shared AE)"],
    "synthetic-scaled": ["KMeans", "Spectral", "AE+KMeans", "AE+GMM", "DAMIC", "DAMIC (GMM start)", "DAMIC (GMM start, shared AE)"],
}


class PeakMemory:
    """Peak resident memory of this process above its level at entry (MB)."""

    def __init__(self, interval=0.05):
        self.interval = interval
        self.process = psutil.Process()

    def __enter__(self):
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def _watch(self):
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.megabytes = (self.peak - self.start) / 2**20


def _fit_labels(estimator, X):
    """Labels of ``fit_predict`` and the messages of the warnings it raised."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        labels = np.asarray(estimator.fit_predict(X))
    return labels, sorted({str(w.message) for w in caught})


def _extra(estimator):
    """Facts worth keeping from a fitted deep estimator."""
    final = estimator[-1] if hasattr(estimator, "steps") else estimator
    info = {}
    for name in ("n_iter_", "converged_", "n_active_clusters_"):
        if hasattr(final, name):
            value = getattr(final, name)
            info[name.rstrip("_")] = value.item() if hasattr(value, "item") else value
    if hasattr(final, "labels_"):
        info["cluster_sizes"] = np.bincount(final.labels_, minlength=getattr(final, "n_clusters", 0)).tolist()
    return info


def _start_scores(y, estimator):
    """Scores of the partition the clustering stage started from, where the estimator keeps it."""
    final = estimator[-1] if hasattr(estimator, "steps") else estimator
    start = getattr(final, "initial_labels_", None)
    return {} if start is None else {f"start_{name}": value for name, value in scores(y, start).items()}


def bare_pretraining_speed(X, epochs, batch_size=256, noise=0.2, lr=1.0, momentum=0.9, seed=0, device="cpu"):
    """Samples/second of a plain PyTorch loop with AutoEncoder's default recipe.

    Written without the package: the same d-500-500-2000-10 ReLU network,
    Glorot init, masking noise, per-element MSE, SGD with momentum, random
    batches sliced from a tensor on ``device``. Median over epochs.
    """
    device = torch.device(device)
    torch.manual_seed(seed)
    d = X.shape[1]
    sizes = [d, 500, 500, 2000, 10, 2000, 500, 500, d]
    layers = []
    for i in range(len(sizes) - 1):
        layers.append(torch.nn.Linear(sizes[i], sizes[i + 1]))
        if i not in (3, len(sizes) - 2):  # linear embedding and output
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers).to(device)
    for layer in net:
        if isinstance(layer, torch.nn.Linear):
            torch.nn.init.xavier_uniform_(layer.weight)
            torch.nn.init.zeros_(layer.bias)
    data = torch.from_numpy(np.ascontiguousarray(X, dtype=np.float32)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
    n = data.shape[0]
    rates = []
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(n, device=device)
        for b in range(0, n, batch_size):
            x = data[order[b : b + batch_size]]
            noisy = x * (torch.rand(x.shape, device=device) >= noise)
            loss = torch.nn.functional.mse_loss(net(noisy), x)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        loss.item()  # waits for the device
        rates.append(n / (time.perf_counter() - start))
    return float(np.median(rates))


def measure_pretraining_speed(X, epochs=6, rounds=2, device="cpu"):
    """Ours vs the bare loop, interleaved so that machine load hits both alike."""
    ours, bare = [], []
    for r in range(rounds):
        ae = AutoEncoder(max_epochs=epochs, device=device, random_state=r).fit(X)
        ours.append(float(np.median([h["samples_per_second"] for h in ae.history_])))
        bare.append(bare_pretraining_speed(X, epochs, seed=r, device=device))
    ours_rate, bare_rate = float(np.median(ours)), float(np.median(bare))
    return {
        "device": str(device),
        "epochs_per_round": epochs,
        "rounds": rounds,
        "skdeepcluster_samples_per_second": ours_rate,
        "bare_pytorch_samples_per_second": bare_rate,
        "ratio": ours_rate / bare_rate,
    }


def environment(device):
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "skdeepcluster": skdeepcluster.__version__,
        "device": device,
    }
    try:
        import subprocess

        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=HERE, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=HERE, capture_output=True, text=True).stdout.strip()
        info["git_commit"] = commit + (" (with uncommitted changes)" if dirty else "")
    except OSError:
        pass
    if device.startswith("cuda") and torch.cuda.is_available():
        info["device_name"] = torch.cuda.get_device_name(torch.device(device))
    return info


def summarise(records, methods):
    """Markdown table: mean +- std over seeds per method."""
    lines = [
        "| method | ACC | NMI | ARI | fit time (s) | peak memory (MB) | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for method in methods:
        rows = [r for r in records if r["method"] == method and "error" not in r]
        if not rows:
            continue
        cells = []
        for key in ("acc", "nmi", "ari", "fit_seconds", "peak_memory_mb"):
            values = np.array([r[key] for r in rows], dtype=float)
            digits = 3 if key in ("acc", "nmi", "ari") else 1
            cells.append(f"{values.mean():.{digits}f} ± {values.std():.{digits}f}")
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {len(rows)} |")
    return "\n".join(lines)


def plot(records, methods, title, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names, means, stds = [], [], []
    for method in methods:
        values = [r["acc"] for r in records if r["method"] == method and "error" not in r]
        if values:
            names.append(method)
            means.append(np.mean(values))
            stds.append(np.std(values))
    fig, ax = plt.subplots(figsize=(1.1 * len(names) + 2, 3.6))
    ax.bar(names, means, yerr=stds, capsize=4, color="#4c72b0")
    ax.set_ylabel("clustering accuracy")
    ax.set_ylim(0, 1)
    ax.set_title(title)
    for i, m in enumerate(means):
        ax.text(i, m + 0.02, f"{m:.3f}", ha="center", fontsize=8)
    plt.xticks(rotation=30, ha="right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_dataset(name, seeds, methods, settings, device, cache, log, save=lambda records: None):
    X, y = DATASETS[name]()
    n_clusters = len(np.unique(y))
    available = _methods()
    methods = [m for m in methods if m in available]
    records, pretraining = [], []
    for seed in seeds:
        ctx = dict(settings, n_clusters=n_clusters, seed=seed, dataset=name)
        ctx["common"] = dict(device=device, memory=cache, random_state=seed)
        if SHARED_AUTOENCODER.intersection(methods):
            # Pretrain the shared autoencoder first, so that every deep method's
            # fit time below is its clustering stage plus a cache read.
            start = time.perf_counter()
            ae = _autoencoder(ctx).fit(X)
            pretraining.append({"seed": seed, "seconds": time.perf_counter() - start, "from_cache": ae.from_cache_})
        for method in methods:
            estimator = available[method](ctx)
            record = {"dataset": name, "method": method, "seed": seed}
            try:
                with PeakMemory() as memory:
                    start = time.perf_counter()
                    labels, messages = _fit_labels(estimator, X)
                    record["fit_seconds"] = time.perf_counter() - start
                if messages:
                    record["warnings"] = messages
                record["peak_memory_mb"] = memory.megabytes
                record.update(scores(y, labels))
                record.update(_extra(estimator))
                record.update(_start_scores(y, estimator))
            except Exception as exc:  # a failing method is reported, not hidden
                record["error"] = f"{type(exc).__name__}: {exc}"
            records.append(record)
            save(records)
            log(json.dumps({k: v for k, v in record.items() if k != "cluster_sizes"}, default=str))
    return records, pretraining, methods


def merge(json_paths):
    """One result from several runs (e.g. seeds or methods run in parallel processes)."""
    results = []
    for path in json_paths:
        with open(path) as handle:
            results.append(json.load(handle))
    merged = dict(results[0], datasets={}, parts=list(json_paths))
    for result in results:
        for dataset, entry in result["datasets"].items():
            target = merged["datasets"].setdefault(dataset, {"records": [], "pretraining": [], "methods": []})
            target["records"] += entry.get("records", [])
            target["pretraining"] += entry.get("pretraining", [])
            target["methods"] += [m for m in entry.get("methods", []) if m not in target["methods"]]
            if "pretraining_speed" in entry:
                target["pretraining_speed"] = entry["pretraining_speed"]
    merged["seeds"] = sorted({seed for result in results for seed in result.get("seeds", [])})
    if not all(r.get("finished") for r in results):
        merged.pop("finished", None)
    return merged


def report(json_paths, name=None):
    """Table and plots of saved runs; a run cut short reports what it finished."""
    if isinstance(json_paths, str):
        json_paths = [json_paths]
    result = merge(json_paths)
    out = os.path.dirname(json_paths[0])
    name = name or os.path.splitext(os.path.basename(json_paths[0]))[0]
    if len(json_paths) > 1:
        with open(os.path.join(out, f"{name}.json"), "w") as handle:
            json.dump(result, handle, indent=1, default=str)
    tables = []
    for dataset, entry in result["datasets"].items():
        records = entry["records"]
        order = [m for ms in DEFAULT_METHODS.values() for m in ms]
        found = list(dict.fromkeys(r["method"] for r in records))
        methods = sorted(found, key=lambda m: order.index(m) if m in order else len(order))
        seeds = sorted({r["seed"] for r in records})
        header = f"### {dataset} (seeds {seeds}, {result['environment']['device']})"
        notes = []
        pre = [p["seconds"] for p in entry.get("pretraining", []) if not p["from_cache"]]
        if pre:
            notes.append(
                f"Shared autoencoder pretraining: {np.mean(pre):.1f} s per seed, not included in the "
                "deep methods' fit time (DKM^a and DAMIC pretrain on their own and include it)."
            )
        if "pretraining_speed" in entry:
            s = entry["pretraining_speed"]
            notes.append(
                f"Pretraining speed: {s['skdeepcluster_samples_per_second']:.0f} samples/s with "
                f"AutoEncoder vs {s['bare_pytorch_samples_per_second']:.0f} with a bare PyTorch loop "
                f"(ratio {s['ratio']:.2f})."
            )
        notes += [f"Failed: {r['method']} seed {r['seed']}: {r['error']}" for r in records if "error" in r]
        tables.append("\n\n".join([header, summarise(records, methods)] + notes))
        plot(records, methods, f"{dataset}: accuracy, seeds {seeds}", os.path.join(out, f"{name}_{dataset}.png"))
    env = result["environment"]
    machine = f"{env['cpu_count']} CPU cores, torch {env['torch']}, {env.get('device_name', env['device'])}"
    status = result.get("finished") or "unfinished run, " + result["started"]
    markdown = f"## Benchmark `{name}` ({status}, {machine})\n\n" + "\n\n".join(tables) + "\n"
    with open(os.path.join(out, f"{name}.md"), "w") as handle:
        handle.write(markdown)
    sys.stdout.write(markdown)
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=None, choices=sorted(DATASETS))
    parser.add_argument("--methods", nargs="+", default=None)
    parser.add_argument("--seeds", nargs="+", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="short training, digits, one seed")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--cache", default=os.path.join(HERE, "cache"))
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--name", default=None, help="file name stem of the results")
    parser.add_argument("--dkm-epochs", type=int, default=None, help="clustering epochs of DKM^p (default: the paper's 100)")
    parser.add_argument(
        "--pretrain-epochs", type=int, default=None,
        help="epochs of the shared autoencoder (default: 400, 40 with --quick)",
    )
    parser.add_argument(
        "--max-epochs", type=int, default=None,
        help="max_epochs of every deep method that sets none of its own (default: each estimator's, 30 with --quick)",
    )
    parser.add_argument(
        "--weight-init", choices=WEIGHT_INITS, default=None,
        help="weight_init of the shared autoencoder (default: AutoEncoder's); DKM^a and DAMIC's own pretraining keep theirs",
    )
    parser.add_argument("--speed", action="store_true", help="also compare pretraining speed with a bare PyTorch loop")
    parser.add_argument(
        "--report", nargs="+", metavar="JSON",
        help="only rebuild the table and plots of saved (possibly partial) runs, merged under --name",
    )
    parser.add_argument("--speed-only", metavar="DATASET", help="only compare pretraining speed with a bare PyTorch loop")
    parser.add_argument("--speed-epochs", type=int, default=6, help="epochs per round of the speed comparison")
    args = parser.parse_args(argv)
    if args.speed_only:
        X, _ = DATASETS[args.speed_only]()
        speed = dict(
            measure_pretraining_speed(X, epochs=args.speed_epochs, device=args.device),
            dataset=args.speed_only, environment=environment(args.device),
        )
        os.makedirs(args.out, exist_ok=True)
        suffix = "" if args.device == "cpu" else "_" + args.device.replace(":", "")
        with open(os.path.join(args.out, f"speed_{args.speed_only}{suffix}.json"), "w") as handle:
            json.dump(speed, handle, indent=1)
        sys.stdout.write(json.dumps(speed, indent=1) + "\n")
        return speed
    if args.report:
        return report(args.report, args.name)

    settings = dict(SETTINGS["quick" if args.quick else "full"])
    if args.dkm_epochs is not None:
        settings["dkm_epochs"] = args.dkm_epochs
    if args.pretrain_epochs is not None:
        settings["pretrain_epochs"] = args.pretrain_epochs
    if args.max_epochs is not None:
        settings["deep_max_epochs"] = args.max_epochs
    if args.weight_init is not None:
        settings["weight_init"] = args.weight_init
    datasets = args.datasets or (["digits"] if args.quick else ["digits", "mnist5k"])
    seeds = args.seeds or ([0] if args.quick else [0, 1, 2, 3, 4])
    name = args.name or ("quick" if args.quick else "_".join(datasets))
    os.makedirs(args.out, exist_ok=True)

    def log(line):
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    result = {
        "environment": environment(args.device),
        "settings": settings,
        "seeds": seeds,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "datasets": {},
    }
    json_path = os.path.join(args.out, f"{name}.json")

    def save(dataset, records):
        """Write what is done so far: a long run that stops early keeps its results."""
        result["datasets"].setdefault(dataset, {})["records"] = records
        with open(json_path, "w") as handle:
            json.dump(result, handle, indent=1, default=str)

    for dataset in datasets:
        methods = args.methods or DEFAULT_METHODS[dataset]
        records, pretraining, methods = run_dataset(
            dataset, seeds, methods, settings, args.device, args.cache, log,
            save=lambda records, dataset=dataset: save(dataset, records),
        )
        entry = result["datasets"][dataset]
        entry.update(records=records, pretraining=pretraining, methods=methods)
        if args.speed and dataset != "synthetic":
            X, _ = DATASETS[dataset]()
            entry["pretraining_speed"] = measure_pretraining_speed(X, device=args.device)
            log(json.dumps(entry["pretraining_speed"]))
        save(dataset, records)

    result["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    save(datasets[-1], result["datasets"][datasets[-1]]["records"])
    return report(json_path)


if __name__ == "__main__":
    main()
