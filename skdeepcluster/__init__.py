"""Deep clustering estimators for scikit-learn, on PyTorch."""

from ._admm import ADMMCluster
from ._autoencoder import AutoEncoder
from ._damic import DAMIC
from ._deep_kmeans import DeepKMeans
from ._idec import DEC, IDEC
from .base import BaseDeepClusterer

__version__ = "0.1.0.dev0"

#: Every public clustering estimator; the common tests run over this tuple.
CLUSTERERS = (DeepKMeans, IDEC, DEC, DAMIC, ADMMCluster)

__all__ = [
    "AutoEncoder",
    "BaseDeepClusterer",
    "DeepKMeans",
    "IDEC",
    "DEC",
    "DAMIC",
    "ADMMCluster",
    "CLUSTERERS",
    "__version__",
]
