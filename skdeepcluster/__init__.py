"""Deep clustering estimators for scikit-learn, on PyTorch."""

from ._admm import ADMMCluster
from ._autoencoder import AutoEncoder
from ._damic import DAMIC
from ._deep_gmm import DeepGMM
from ._deep_kmeans import DeepKMeans
from ._idec import DEC, IDEC
from .base import BaseDeepClusterer

__version__ = "0.1.0.dev0"

#: Every public clustering estimator; the common tests run over this tuple.
CLUSTERERS = (DeepKMeans, IDEC, DEC, DAMIC, ADMMCluster, DeepGMM)

__all__ = [
    "AutoEncoder",
    "BaseDeepClusterer",
    "DeepKMeans",
    "IDEC",
    "DEC",
    "DAMIC",
    "ADMMCluster",
    "DeepGMM",
    "CLUSTERERS",
    "__version__",
]
