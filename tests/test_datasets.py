import gzip
import struct

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.metrics import normalized_mutual_info_score

from skdeepcluster.datasets import load_fashion_mnist, load_mnist_5k, load_mnist_idx, make_dcn_synthetic, read_idx


@pytest.mark.parametrize("latent", ["elongated", "round"])
def test_dcn_synthetic_shapes_and_determinism(latent):
    X, y, V = make_dcn_synthetic(n_samples=400, n_features=30, latent=latent, random_state=3)
    assert X.shape == (400, 30) and X.dtype == np.float32
    assert V.shape == (400, 2)
    assert set(np.unique(y)) == {0, 1, 2, 3}
    assert X.min() >= 0 and X.max() <= 1  # x = sigmoid(W v) ** 2
    X2, y2, V2 = make_dcn_synthetic(n_samples=400, n_features=30, latent=latent, random_state=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)


def test_dcn_synthetic_latent_layouts_differ_in_separation():
    # round: the DCN script's separated clusters; elongated: overlapping ones
    scores = {}
    for latent in ("elongated", "round"):
        _, y, V = make_dcn_synthetic(n_samples=2000, latent=latent, random_state=0)
        labels = KMeans(4, n_init=5, random_state=0).fit_predict(V)
        scores[latent] = normalized_mutual_info_score(y, labels)
    assert scores["round"] > 0.95
    assert scores["elongated"] < 0.9


def test_dcn_synthetic_round_is_balanced():
    _, y, _ = make_dcn_synthetic(n_samples=402, latent="round")
    assert np.bincount(y).tolist() == [101, 101, 100, 100]


def test_dcn_synthetic_rejects_unknown_latent():
    with pytest.raises(ValueError, match="latent must be one of"):
        make_dcn_synthetic(latent="square")


@pytest.mark.parametrize(
    "params, match",
    [
        ({"n_samples": 3}, r"n_samples must be an int >= 4; got 3"),
        ({"n_samples": -5}, "n_samples must be an int >= 4"),
        ({"n_samples": 40.0}, "n_samples must be an int >= 4; got 40.0"),
        ({"n_features": 0}, "n_features must be an int >= 1"),
        ({"n_features": True}, "n_features must be an int >= 1"),
    ],
)
def test_dcn_synthetic_rejects_bad_sizes(params, match):
    with pytest.raises(ValueError, match=match):
        make_dcn_synthetic(**params)


@pytest.mark.parametrize("scale", [0, -1, np.inf, np.nan, "1/255", True])
def test_loaders_reject_a_bad_scale(tmp_path, scale):
    with pytest.raises(ValueError, match="scale must be a float > 0; got"):
        load_mnist_5k(scale=scale)
    with pytest.raises(ValueError, match="scale must be a float > 0; got"):
        load_mnist_idx(str(tmp_path), scale=scale)


def _write_idx(path, array):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_load_mnist_idx_concatenates_train_and_test(tmp_path):
    rng = np.random.RandomState(0)
    train = rng.randint(0, 256, size=(5, 4, 4))
    test = rng.randint(0, 256, size=(3, 4, 4))
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", train)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(5))
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", test)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(3))
    X, y = load_mnist_idx(str(tmp_path))
    assert X.shape == (8, 16) and X.dtype == np.float32
    np.testing.assert_allclose(X[:5], train.reshape(5, -1) / 255, rtol=1e-6)
    np.testing.assert_array_equal(y, [0, 1, 2, 3, 4, 0, 1, 2])


@pytest.mark.parametrize("labels", [np.arange(4), np.arange(6).reshape(3, 2)], ids=["one-too-many", "2-d"])
def test_load_mnist_idx_refuses_labels_that_do_not_match_the_images(tmp_path, labels):
    images = np.zeros((3, 4, 4))
    for part in ("train", "t10k"):
        _write_idx(tmp_path / f"{part}-images-idx3-ubyte", images)
        _write_idx(tmp_path / f"{part}-labels-idx1-ubyte", labels if part == "t10k" else np.arange(3))
    expected = r"t10k-images-idx3-ubyte and .*t10k-labels-idx1-ubyte do not match: images of shape \(3, 4, 4\)"
    with pytest.raises(ValueError, match=expected):
        load_mnist_idx(str(tmp_path))


def test_read_idx_rejects_truncated_file(tmp_path):
    path = tmp_path / "bad-idx"
    with open(path, "wb") as handle:
        handle.write(struct.pack(">HBB", 0, 0x08, 1) + struct.pack(">I", 10) + bytes(4))
    with pytest.raises(ValueError, match="header says shape"):
        read_idx(str(path))


@pytest.mark.parametrize("content", [b"", b"\x00\x00", struct.pack(">HBB", 0, 0x08, 3) + bytes(5)])
def test_read_idx_rejects_a_file_that_ends_inside_its_header(tmp_path, content):
    path = tmp_path / "short-idx"
    path.write_bytes(content)
    with pytest.raises(ValueError, match="short-idx ends inside its IDX header"):
        read_idx(str(path))


def test_load_mnist_idx_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images"):
        load_mnist_idx(str(tmp_path))


def test_load_fashion_mnist_names_the_package_when_files_are_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images.*dataset-fashion-mnist"):
        load_fashion_mnist(str(tmp_path))
