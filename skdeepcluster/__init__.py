"""Deep clustering estimators for scikit-learn, on PyTorch."""

from ._autoencoder import AutoEncoder
from ._deep_kmeans import DeepKMeans
from .base import BaseDeepClusterer

__version__ = "0.1.0.dev0"

#: Every public clustering estimator; the common tests run over this tuple.
CLUSTERERS = (DeepKMeans,)

__all__ = ["AutoEncoder", "BaseDeepClusterer", "DeepKMeans", "CLUSTERERS", "__version__"]
