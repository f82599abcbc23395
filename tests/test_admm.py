"""ADMMCluster: the closed-form ADMM updates against their definitions, and the estimator."""

import warnings

import numpy as np
import pytest
import torch
from scipy.special import softmax
from scipy.stats import multivariate_normal
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import fast, undocumented_attributes
from skdeepcluster import ADMMCluster
from skdeepcluster._admm import (
    cluster_means,
    gmm_log_posterior,
    gmm_m_step,
    gmm_y_update,
    kmeans_y_update,
)
from skdeepcluster._core.gaussians import gaussian_log_densities
from test_common import expected_failed_checks


def _spd(K, D, generator):
    A = torch.randn(K, D, D, generator=generator)
    return A @ A.transpose(1, 2) / D + 0.1 * torch.eye(D)


@pytest.mark.usefixtures("float64")
def test_kmeans_y_update_minimises_its_augmented_lagrangian():
    g = torch.Generator().manual_seed(0)
    F, U, C = torch.randn(50, 4, generator=g), torch.randn(50, 4, generator=g), torch.randn(3, 4, generator=g)
    labels = torch.randint(0, 3, (50,), generator=g)
    lam, rho = 0.7, 2.5
    Y = kmeans_y_update(F, U, C, labels, lam, rho).requires_grad_()
    objective = lam / 2 * (Y - C[labels]).pow(2).sum() + rho / 2 * (Y - F + U).pow(2).sum()
    (grad,) = torch.autograd.grad(objective, Y)
    assert grad.abs().max() < 1e-10


@pytest.mark.usefixtures("float64")
def test_gmm_y_update_minimises_eq_14s_objective():
    g = torch.Generator().manual_seed(1)
    n, K, D = 40, 3, 5
    F, U = torch.randn(n, D, generator=g), 0.1 * torch.randn(n, D, generator=g)
    means, covariances = torch.randn(K, D, generator=g), _spd(K, D, g)
    gamma = torch.softmax(torch.randn(n, K, generator=g), dim=1)
    lam, rho, floor = 1.3, 4.0, 1e-3
    Y = gmm_y_update(F, U, gamma, means, covariances, floor, lam, rho).requires_grad_()
    precisions = torch.linalg.inv(covariances + floor * torch.eye(D))
    diff = Y[:, None, :] - means[None]
    mahalanobis = torch.einsum("nkd,kde,nke->nk", diff, precisions, diff)
    objective = lam / 2 * (gamma * mahalanobis).sum() + rho / 2 * (Y - F + U).pow(2).sum()
    (grad,) = torch.autograd.grad(objective, Y)
    assert grad.abs().max() < 1e-9


def test_gmm_y_update_raises_divergence_on_non_finite_covariances():
    # the update factorises the covariances itself: a NaN there is the
    # diverged training's FloatingPointError, not torch's LinAlgError
    n, K, D = 6, 2, 3
    covariances = torch.eye(D).repeat(K, 1, 1)
    covariances[1, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="not positive definite"):
        gmm_y_update(torch.zeros(n, D), torch.zeros(n, D), torch.full((n, K), 0.5), torch.zeros(K, D),
                     covariances, 1e-5, 1.0, 1.0)


@pytest.mark.usefixtures("float64")
def test_gaussian_log_densities_and_posterior_match_scipy_and_sklearn():
    rng = np.random.RandomState(0)
    Z = np.concatenate([rng.randn(60, 3) @ rng.randn(3, 3) + 4 * k for k in range(3)])
    gmm = GaussianMixture(3, covariance_type="full", random_state=0).fit(Z)
    means, covariances = torch.as_tensor(gmm.means_), torch.as_tensor(gmm.covariances_)
    log_densities = gaussian_log_densities(torch.as_tensor(Z), means, covariances, floor=0.0).numpy()
    expected = np.stack([multivariate_normal(m, c).logpdf(Z) for m, c in zip(gmm.means_, gmm.covariances_)], axis=1)
    np.testing.assert_allclose(log_densities, expected, rtol=1e-10)
    log_gamma = gmm_log_posterior(torch.as_tensor(Z), means, covariances, torch.log(torch.as_tensor(gmm.weights_)), 0.0)
    np.testing.assert_allclose(log_gamma.exp().numpy(), gmm.predict_proba(Z), atol=1e-10)


@pytest.mark.usefixtures("float64")
def test_m_step_is_the_weighted_mean_covariance_and_mass():
    g = torch.Generator().manual_seed(2)
    n, K, D = 80, 3, 4
    Y = torch.randn(n, D, generator=g)
    gamma = torch.softmax(torch.randn(n, K, generator=g), dim=1)
    means, covariances, log_weights = gmm_m_step(Y, gamma, torch.zeros(K, D), torch.zeros(K, D, D), torch.zeros(K))
    y, w = Y.numpy(), gamma.numpy()
    for k in range(K):
        mean = np.average(y, axis=0, weights=w[:, k])
        np.testing.assert_allclose(means[k].numpy(), mean, rtol=1e-10)
        np.testing.assert_allclose(covariances[k].numpy(), np.cov(y.T, aweights=w[:, k], bias=True), rtol=1e-10)
    np.testing.assert_allclose(log_weights.exp().numpy(), w.mean(axis=0), rtol=1e-12)


@pytest.mark.usefixtures("float64")
def test_an_empty_cluster_or_dead_component_keeps_its_parameters():
    Y = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    previous = torch.tensor([[5.0, 5.0], [9.0, 9.0]])
    centres = cluster_means(Y, torch.tensor([0, 0, 0]), previous)
    np.testing.assert_allclose(centres.numpy(), [[1.0, 1.0], [9.0, 9.0]])
    gamma = torch.tensor([[1.0, 0.0]] * 3)
    old_covariances = torch.stack([torch.eye(2), 7 * torch.eye(2)])
    means, covariances, log_weights = gmm_m_step(Y, gamma, previous, old_covariances, torch.zeros(2))
    assert torch.isfinite(means).all() and torch.isfinite(covariances).all()
    np.testing.assert_allclose(means[1].numpy(), [9.0, 9.0])
    np.testing.assert_allclose(covariances[1].numpy(), 7 * np.eye(2))
    assert log_weights[1] < -600  # its weight underflows instead of becoming NaN


@pytest.mark.parametrize(
    "clustering, rho, weight, floor", [("kmeans", 1.0, 1.0, None), ("gmm", 1000.0, 0.01, 1e-3)]
)
def test_none_resolves_to_the_authors_settings(blobs, clustering, rho, weight, floor):
    X, _ = blobs
    est = fast(ADMMCluster, n_clusters=3, clustering=clustering, max_epochs=2).fit(X)
    assert (est.rho_, est.constraint_weight_) == (rho, weight)
    assert getattr(est, "covariance_floor_", None) == floor
    est = fast(ADMMCluster, n_clusters=3, clustering=clustering, rho=50.0, constraint_weight=0.5, max_epochs=2).fit(X)
    assert (est.rho_, est.constraint_weight_) == (50.0, 0.5)


def test_gmm_variant_learns_blobs_and_exposes_the_mixture(blobs):
    X, y = blobs
    est = fast(ADMMCluster, n_clusters=3, clustering="gmm").fit(X)
    assert adjusted_rand_score(y, est.labels_) > 0.95
    assert est.covariances_.shape == (3, 3, 3) and est.cluster_centers_.shape == (3, 3)
    np.testing.assert_allclose(est.weights_.sum(), 1.0)
    np.testing.assert_allclose(est.weights_, np.bincount(est.labels_) / len(X), atol=0.05)
    assert np.isfinite([h["constraint"] for h in est.history_]).all()


def test_kmeans_predict_proba_is_the_spherical_posterior(blobs):
    X, _ = blobs
    est = fast(ADMMCluster, n_clusters=3).fit(X)
    Z = est.transform(X)
    distances = ((Z[:, None, :] - est.cluster_centers_[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(est.predict_proba(X), softmax(-distances / (2 * est.variance_), axis=1), atol=1e-10)
    assert est.variance_ > 0


def test_the_papers_adadelta_runs_and_bad_options_are_named(blobs):
    X, y = blobs
    est = fast(ADMMCluster, n_clusters=3, optimizer="adadelta").fit(X)
    assert adjusted_rand_score(y, est.labels_) > 0.9
    with pytest.raises(ValueError, match="optimizer.*'adam'.*'adadelta'"):
        fast(ADMMCluster, optimizer="sgd").fit(X)
    with pytest.raises(ValueError, match="clustering.*'kmeans'.*'gmm'"):
        fast(ADMMCluster, clustering="spectral").fit(X)
    with pytest.raises(ValueError, match="rho"):
        fast(ADMMCluster, rho=0.0).fit(X)


class _RecordingADMMCluster(ADMMCluster):
    """Keeps the state before and after every ADMM update."""

    def _init_clusters(self, Z, data, seed):
        self.updates_ = []
        return super()._init_clusters(Z, data, seed)

    def _on_checkpoint(self, step, data):
        state, module = self._fit_state, self.module_
        before = {
            "F": self._embed_all(data).double(),
            "Y": state["Y"].double().clone(),
            "U": state["U"].double().clone(),
            "labels": state["labels"].clone(),
            "centers": module.centers.clone(),
        }
        if self.clustering == "gmm":
            before.update(
                gamma=state["log_gamma"].exp(), covariances=module.covariances.clone(),
                log_weights=module.log_weights.clone(), floor=module.covariance_floor.clone(),
            )
        returned = super()._on_checkpoint(step, data)
        after = {"Y": state["Y"].double(), "U": state["U"].double(), "centers": module.centers.clone()}
        if self.clustering == "gmm":
            after.update(covariances=module.covariances.clone(), log_weights=module.log_weights.clone())
        self.updates_.append((step, before, after, returned))
        return returned


@pytest.fixture
def overlapping_blobs():
    """Overlapping clusters: the partitions of Y and of f(X) can differ."""
    X, y = make_blobs(n_samples=240, n_features=12, centers=3, cluster_std=4.0, random_state=0)
    return X.astype(np.float32), y


@pytest.mark.parametrize("clustering", ["kmeans", "gmm"])
def test_one_admm_update_follows_the_algorithm(overlapping_blobs, clustering):
    X, _ = overlapping_blobs
    est = fast(_RecordingADMMCluster, n_clusters=3, clustering=clustering, rho=0.2, max_epochs=8, tol=0).fit(X)
    steps = [step for step, *_ in est.updates_]
    # the warm start, then one update after every epoch, the last included
    assert steps[0] == 0 and len(steps) == est.n_iter_ + 1 and not est.converged_
    for step, before, after, returned in est.updates_[1:]:
        F, U = before["F"], before["U"]
        lam, rho = est.clustering_weight, est.rho_
        if clustering == "gmm":
            expected_Y = gmm_y_update(
                F, U, before["gamma"], before["centers"], before["covariances"], before["floor"], lam, rho
            )
            means, covariances, log_weights = gmm_m_step(
                expected_Y, before["gamma"], before["centers"], before["covariances"], before["log_weights"]
            )
            torch.testing.assert_close(after["covariances"], covariances)
            torch.testing.assert_close(after["log_weights"], log_weights)
            expected_labels = gmm_log_posterior(F, means, covariances, log_weights, before["floor"]).argmax(dim=1)
        else:
            expected_Y = kmeans_y_update(F, U, before["centers"], before["labels"], lam, rho)
            means = cluster_means(expected_Y, before["labels"], before["centers"])
            expected_labels = ((F[:, None, :] - means[None]) ** 2).sum(dim=2).argmin(dim=1)
        torch.testing.assert_close(after["Y"], expected_Y, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after["U"], U + expected_Y - F, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(after["centers"], means)
        # tol compares the partition of f(X), the one predict gives
        assert torch.equal(returned, expected_labels)
    if clustering == "gmm":
        # here the partitions of Y and of f(X) differ at some update, so the
        # check above tells them apart (k-means' coincide on this data)
        Y_partitions = [before["gamma"].argmax(dim=1) for _, before, *_ in est.updates_[1:]]
        F_partitions = [returned for *_, returned in est.updates_[:-1]]
        assert any(not torch.equal(a, b) for a, b in zip(Y_partitions, F_partitions))


def test_tol_compares_successive_partitions_of_the_embedding(blobs):
    X, _ = blobs
    est = fast(_RecordingADMMCluster, n_clusters=3, max_epochs=6, tol=0).fit(X)
    partitions = [returned for *_, returned in est.updates_]
    for epoch in range(1, est.n_iter_):
        changed = (partitions[epoch] != partitions[epoch - 1]).double().mean().item()
        assert est.history_[epoch]["delta_label"] == pytest.approx(changed)
    est = fast(ADMMCluster, n_clusters=3, max_epochs=50, tol=0.01).fit(X)
    assert est.converged_ and est.n_iter_ < 50 and est.history_[-1]["delta_label"] < 0.01


@pytest.mark.parametrize("max_epochs, tol", [(5, 0.0), (50, 0.01)])
def test_every_epoch_is_followed_by_an_update(blobs, max_epochs, tol):
    X, _ = blobs
    est = fast(_RecordingADMMCluster, n_clusters=3, max_epochs=max_epochs, tol=tol).fit(X)
    assert est.converged_ == (tol > 0) and est.n_iter_ <= max_epochs
    n_updates = sum(step > 0 for step, *_ in est.updates_)
    assert n_updates == est.n_iter_
    # the fitted centres are those of the last update
    torch.testing.assert_close(torch.as_tensor(est.cluster_centers_), est.updates_[-1][2]["centers"].cpu())


def test_the_last_update_enters_the_history(overlapping_blobs):
    X, _ = overlapping_blobs
    est = fast(_RecordingADMMCluster, n_clusters=4, clustering="gmm", max_epochs=6, tol=0).fit(X)
    partitions = [returned for *_, returned in est.updates_]
    changes = [(b != a).double().mean().item() for a, b in zip(partitions, partitions[1:])]
    # on the CPU the last update here moves labels and the one before does
    # not, so the record tells the last change from the earlier one
    assert len(est.history_) == est.n_iter_ == 6
    assert est.history_[-1]["delta_label"] == pytest.approx(changes[-1])
    assert est.history_[-1]["n_clusters_used"] == torch.unique(partitions[-1]).numel()
    assert not est.converged_


def test_a_refit_keeps_no_attribute_of_the_earlier_model(blobs):
    X, _ = blobs
    est = fast(ADMMCluster, n_clusters=3, clustering="gmm", max_epochs=2).fit(X)
    assert hasattr(est, "covariances_")
    est.set_params(clustering="kmeans").fit(X)
    assert hasattr(est, "variance_")
    for name in ("covariances_", "weights_", "covariance_floor_"):
        assert not hasattr(est, name), name


def test_an_overflowing_embedding_is_reported(blobs):
    X, _ = blobs
    # one step of Adam at 1e20 leaves finite weights whose embedding overflows;
    # the loss, taken before that step, is finite
    with pytest.raises(FloatingPointError, match="diverged"):
        fast(ADMMCluster, n_clusters=3, learning_rate=1e20, max_epochs=1, batch_size=len(X)).fit(X)


def test_no_update_without_an_epoch(blobs):
    X, _ = blobs
    est = fast(_RecordingADMMCluster, n_clusters=3, max_epochs=0).fit(X)
    assert est.n_iter_ == 0 and est.updates_ == []


@parametrize_with_checks([fast(ADMMCluster, clustering="gmm")], expected_failed_checks=expected_failed_checks)
def test_gmm_variant_passes_sklearns_checks(estimator, check):
    check(estimator)


@pytest.mark.parametrize("fitted_with, set_to", [("kmeans", "gmm"), ("gmm", "kmeans")])
def test_predictions_follow_the_fitted_model_not_a_later_clustering(blobs, fitted_with, set_to):
    X, _ = blobs
    est = fast(ADMMCluster, n_clusters=3, clustering=fitted_with).fit(X)
    proba = est.predict_proba(X)
    est.set_params(clustering=set_to)
    np.testing.assert_array_equal(est.predict_proba(X), proba)
    np.testing.assert_array_equal(est.predict(X), est.labels_)


def test_gmm_attributes_are_documented(blobs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = fast(ADMMCluster, n_clusters=3, clustering="gmm", max_epochs=2).fit(blobs[0])
    assert not undocumented_attributes(est)
