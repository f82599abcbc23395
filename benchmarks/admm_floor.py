"""DC-GMM on digits with the authors' covariance floor (1e-5) against ours (clustering_weight / rho).

One seed's shared autoencoder (from the benchmark cache when ``run.py`` made
it), then ``ADMMCluster(clustering="gmm", tol=0, max_epochs=60)`` with each
floor and each optimizer. One JSON line per fit on standard output.

Example::

    python benchmarks/admm_floor.py 0 >> benchmarks/results/admm_floor.jsonl
"""

import json
import os
import sys

import torch

from skdeepcluster import ADMMCluster, AutoEncoder
from skdeepcluster.datasets import load_digits_scaled
from skdeepcluster.metrics import clustering_accuracy

HERE = os.path.dirname(os.path.abspath(__file__))


class FixedFloorADMMCluster(ADMMCluster):
    """ADMMCluster with the covariance floor set by hand (experiment only)."""

    floor = None

    def _init_clusters(self, Z, data, seed):
        labels = super()._init_clusters(Z, data, seed)
        if self.floor is not None:
            self.module_.covariance_floor = torch.tensor(self.floor, dtype=torch.float64, device=Z.device)
        return labels


def main(seed):
    X, y = load_digits_scaled()
    cache = os.path.join(HERE, "cache")
    autoencoder = AutoEncoder(max_epochs=400, device="cpu", memory=cache, random_state=seed).fit(X)
    for floor in (1e-5, None):
        for optimizer in ("adam", "adadelta"):
            cls = type("FixedFloorADMMCluster", (FixedFloorADMMCluster,), {"floor": floor})
            est = cls(10, clustering="gmm", autoencoder=autoencoder, tol=0, max_epochs=60, optimizer=optimizer,
                      device="cpu", random_state=seed).fit(X)
            constraint = [h["constraint"] for h in est.history_]
            record = {
                "seed": seed, "floor": est.covariance_floor_, "optimizer": optimizer,
                "acc": clustering_accuracy(y, est.labels_), "constraint_first": constraint[0],
                "constraint_max": max(constraint), "constraint_last": constraint[-1], "torch": torch.__version__,
            }
            sys.stdout.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main(int(sys.argv[1]))
