"""How well the synthetic data's clusters can be told apart at all.

Clusters the *true* 2-D latent points ``V`` of
:func:`~skdeepcluster.datasets.make_dcn_synthetic` (which a clustering of
``X`` never sees) three ways: k-means (``n_init=10``), a full-covariance
Gaussian mixture (``n_init=10``), and, for the elongated layout, the
Bayes-optimal rule of the generator's own Gaussians and equal priors. These
bound what any method on ``X = sigmoid(W V) ** 2`` can reach, and put the
DAMIC paper's NMI 0.94 / ARI 0.96 in context. Seconds on one core.

Run: ``python benchmarks/latent_ceiling.py`` (writes
``results/latent_ceiling.json`` and ``.md``; data seed 0 is the pinned data).
"""

import argparse
import json
import os

import numpy as np
from scipy.stats import multivariate_normal
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

from skdeepcluster.datasets import (
    DCN_LATENTS,
    ELONGATED_ANGLES,
    ELONGATED_CENTERS,
    ELONGATED_STDS,
    make_dcn_synthetic,
)

from _records import scores  # a sibling module: benchmarks/ is on the path

HERE = os.path.dirname(os.path.abspath(__file__))


def bayes_labels(V):
    """Most probable cluster of each latent point under the elongated layout's Gaussians."""
    log_densities = []
    for center, angle in zip(ELONGATED_CENTERS, ELONGATED_ANGLES):
        rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
        covariance = rotation @ np.diag(ELONGATED_STDS**2) @ rotation.T
        log_densities.append(multivariate_normal(center, covariance).logpdf(V))
    return np.argmax(np.stack(log_densities, axis=1), axis=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    args = parser.parse_args()
    records = []
    for latent in DCN_LATENTS:
        for data_seed in args.data_seeds:
            _, y, V = make_dcn_synthetic(latent=latent, random_state=data_seed)
            rules = {
                "KMeans on V": KMeans(4, n_init=10, random_state=0).fit_predict(V),
                "GMM on V": GaussianMixture(4, n_init=10, random_state=0).fit(V).predict(V),
            }
            if latent == "elongated":
                rules["Bayes-optimal on V"] = bayes_labels(V)
            for rule, labels in rules.items():
                record = {"latent": latent, "data_seed": data_seed, "rule": rule}
                record.update(scores(y, labels))
                records.append(record)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "latent_ceiling.json"), "w") as f:
        json.dump(records, f, indent=1)
    lines = [
        "## Clustering the true latent of the synthetic data (benchmarks/latent_ceiling.py)",
        "",
        "| layout | rule | " + " | ".join(f"data seed {s} NMI / ARI" for s in args.data_seeds) + " |",
        "|---|---|" + "---|" * len(args.data_seeds),
    ]
    for latent in DCN_LATENTS:
        for rule in dict.fromkeys(r["rule"] for r in records if r["latent"] == latent):
            cells = [
                f"{r['nmi']:.3f} / {r['ari']:.3f}"
                for r in records
                if r["latent"] == latent and r["rule"] == rule
            ]
            lines.append(f"| {latent} | {rule} | " + " | ".join(cells) + " |")
    lines += ["", "Data seed 0 is the pinned data of every synthetic benchmark; the other seeds are other draws."]
    with open(os.path.join(args.out, "latent_ceiling.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
