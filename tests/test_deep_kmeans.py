"""Deep k-Means mathematics and variants."""

import re
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import MinMaxScaler

from conftest import fast
from skdeepcluster import DeepKMeans
from skdeepcluster._deep_kmeans import annealing_alphas, soft_kmeans_weights, squared_distances


def test_annealing_schedule_matches_the_authors_code():
    alphas = annealing_alphas()
    assert len(alphas) == 40
    np.testing.assert_allclose(alphas[:5], [0.1, 0.4232, 0.7516, 1.0780, 1.4087], atol=1e-4)
    np.testing.assert_allclose(alphas[-1], 28.13, atol=0.01)
    assert np.all(np.diff(alphas) > 0)


def test_soft_weights_are_the_softmax_of_minus_alpha_distances():
    rng = np.random.RandomState(0)
    Z, R = rng.randn(6, 3), rng.randn(4, 3)
    d = ((Z[:, None] - R[None]) ** 2).sum(-1)
    expected = np.exp(-2.5 * d) / np.exp(-2.5 * d).sum(1, keepdims=True)
    got = soft_kmeans_weights(squared_distances(torch.tensor(Z), torch.tensor(R)), 2.5)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10)
    # large alpha: the row-minimum shift keeps it finite and one-hot
    hard = soft_kmeans_weights(squared_distances(torch.tensor(Z), torch.tensor(R)), 1e6)
    assert torch.isfinite(hard).all()
    np.testing.assert_array_equal(hard.argmax(1).numpy(), d.argmin(1))


def test_gradient_flows_through_the_softmax():
    torch.manual_seed(0)
    z = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    r = torch.randn(3, 2, dtype=torch.float64)
    d = squared_distances(z, r)
    (soft_kmeans_weights(d, 0.7) * d).sum().backward()
    full = z.grad.clone()
    z.grad = None
    d = squared_distances(z, r)
    (soft_kmeans_weights(d, 0.7).detach() * d).sum().backward()
    assert not torch.allclose(full, z.grad), "the softmax weights must carry gradient"


def test_batch_loss_is_reconstruction_plus_lambda_kmeans(blobs):
    X, _ = blobs
    est = fast(DeepKMeans, n_clusters=3, clustering_weight=0.5, max_epochs=1).fit(X)
    rec = [h["reconstruction"] for h in est.history_][0]
    km = [h["kmeans"] for h in est.history_][0]
    assert est.history_[0]["loss"] == pytest.approx(rec + 0.5 * km, rel=1e-5)


def test_pretrained_variant_uses_constant_alpha_and_kmeans_init(blobs):
    X, y = blobs
    X = MinMaxScaler().fit_transform(X)
    est = fast(DeepKMeans, n_clusters=3, max_epochs=0).fit(X)
    assert est.alpha_ == 1000.0
    assert est.cluster_centers_.shape == (3, 3)
    # with no clustering epoch the centres are k-means on the pretrained embedding
    assert adjusted_rand_score(y, est.labels_) > 0.9


def test_annealed_variant_without_pretraining(blobs):
    X, y = blobs
    X = MinMaxScaler().fit_transform(X)
    est = fast(DeepKMeans, n_clusters=3, alpha="annealing", autoencoder=None, pretrain_epochs=0, max_epochs=40).fit(X)
    assert est.autoencoder_ is None
    alphas = [h["alpha"] for h in est.history_]
    np.testing.assert_allclose(alphas, annealing_alphas(), rtol=1e-6)
    assert est.alpha_ == pytest.approx(annealing_alphas()[-1])
    assert adjusted_rand_score(y, est.labels_) > 0.8


@pytest.mark.parametrize("n_rows", [240, 193])  # 193 = 6 * 32 + 1: the last row joins batch 6
def test_alpha_sequence_is_spread_over_epochs(blobs, n_rows):
    X, _ = blobs
    est = fast(DeepKMeans, n_clusters=3, alpha=[1.0, 10.0], max_epochs=4).fit(X[:n_rows])
    assert [h["alpha"] for h in est.history_] == [1.0, 1.0, 10.0, 10.0]
    assert est.alpha_ == est.history_[-1]["alpha"]


@pytest.mark.parametrize(
    "alpha, max_epochs, expected",
    [
        ([1.0, 2.0, 3.0, 4.0], 2, [1.0, 4.0]),
        ([1.0, 2.0, 3.0, 4.0], 3, [1.0, 3.0, 4.0]),
        ("annealing", 4, annealing_alphas()[[0, 13, 26, 39]]),
        ([1.0, 2.0, 3.0], 1, [1.0]),
    ],
)
def test_fewer_epochs_than_alphas_still_end_on_the_last(blobs, alpha, max_epochs, expected):
    """The annealing ends where its schedule does, and ``alpha_`` (which
    ``predict_proba`` uses) with it."""
    est = fast(DeepKMeans, n_clusters=3, alpha=alpha, max_epochs=max_epochs).fit(blobs[0])
    np.testing.assert_allclose([h["alpha"] for h in est.history_], expected, rtol=1e-6)
    assert est.alpha_ == pytest.approx(expected[-1])


@pytest.mark.parametrize("alpha", [0.0, -1.0, "anneal", [], [1.0, -2.0], [1.0, 1e39], [10**400]])
def test_bad_alpha(blobs, alpha):
    allowed = "a float > 0 or 'annealing' or a non-empty sequence of positive floats up to 3.4e+38; got"
    with pytest.raises(ValueError, match=re.escape(f"'alpha' parameter of DeepKMeans must be {allowed}")):
        fast(DeepKMeans, n_clusters=3, alpha=alpha).fit(blobs[0])


def test_embedding_dim_defaults_to_n_clusters(blobs):
    X, _ = blobs
    est = fast(DeepKMeans, n_clusters=4, embedding_dim=None, autoencoder=None, pretrain_epochs=2, max_epochs=1)
    est.fit(MinMaxScaler().fit_transform(X))
    assert est.transform(X[:2]).shape == (2, 4)


def test_empty_cluster_is_reseeded(blobs):
    X, _ = blobs
    est = fast(DeepKMeans, n_clusters=3, max_epochs=1).fit(X)
    # move one representative far away: it owns no point, and the next
    # checkpoint must give it the point farthest from its representative
    from skdeepcluster._core.data import DeviceData

    est._fit_state = {"n_batches": 1, "alpha": 1000.0}
    est.n_reseeded_ = []
    with torch.no_grad():
        est.module_.centers[2] = 1e6
    labels = est._on_checkpoint(0, DeviceData(X, est.device_))
    del est._fit_state
    assert torch.bincount(labels, minlength=3).min() >= 1
    assert torch.all(est.module_.centers.abs() < 1e5)
    assert est.n_reseeded_ == [1]


def test_reseeding_is_recorded_per_epoch(blobs):
    """Random representatives on 3 blobs, 8 clusters: some start empty. The
    history counts clusters after re-seeding; n_reseeded_ shows the collapse."""
    X, _ = blobs
    est = fast(DeepKMeans, n_clusters=8, autoencoder=None, pretrain_epochs=0, alpha="annealing", max_epochs=4, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # clusters may end empty
        est.fit(X)
    assert est.n_reseeded_.shape == (est.n_iter_,) and est.n_reseeded_.dtype == np.int64
    assert est.n_reseeded_[0] > 0
    assert [h["n_clusters_used"] for h in est.history_] == [8] * est.n_iter_


def test_score_is_minus_inertia(blobs):
    X, _ = blobs
    est = fast(DeepKMeans, n_clusters=3).fit(X)
    assert est.score(X) == pytest.approx(-est.inertia_)
    Z = est.transform(X)
    d = ((Z[:, None] - est.cluster_centers_[None]) ** 2).sum(-1)
    assert est.inertia_ == pytest.approx(d.min(1).sum())


def test_tol_stops_when_labels_settle(blobs):
    X, _ = blobs
    est = fast(DeepKMeans, n_clusters=3, max_epochs=50, tol=0.01).fit(MinMaxScaler().fit_transform(X))
    assert est.converged_
    assert est.n_iter_ < 50
    assert est.history_[-1]["delta_label"] < 0.01
