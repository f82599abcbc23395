"""Deep clustering estimators for scikit-learn, on PyTorch."""

from ._admm import ADMMCluster
from ._autoencoder import AutoEncoder
from ._damic import DAMIC
from ._deep_gmm import DeepGMM
from ._deep_kmeans import DeepKMeans
from ._idec import DEC, IDEC
from .base import BaseDeepClusterer

__version__ = "0.1.0.dev0"

#: Every clustering estimator imported above, so that a new method joins
#: with its file and one import line; the common tests run over this tuple.
CLUSTERERS = tuple(
    obj
    for obj in dict(globals()).values()
    if isinstance(obj, type) and issubclass(obj, BaseDeepClusterer) and obj is not BaseDeepClusterer
)

__all__ = ["AutoEncoder", "BaseDeepClusterer", *(cls.__name__ for cls in CLUSTERERS), "CLUSTERERS", "__version__"]
