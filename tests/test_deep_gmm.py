"""DeepGMM: the mixture's densities, posterior and gradients against their
definitions (eqs. 2, 5, 8-12), the separation term, and the estimator."""

import numpy as np
import pytest
import torch
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import parametrize_with_checks

from conftest import fast
from skdeepcluster import AutoEncoder, DeepGMM
from skdeepcluster._core.gaussians import diagonal_gaussian_log_densities
from skdeepcluster._deep_gmm import mixture_log_joint, neighbour_separation
from skdeepcluster.base import seed_from
from test_common import expected_failed_checks


def _mixture(n, K, D, seed):
    g = torch.Generator().manual_seed(seed)
    Z = torch.randn(n, D, generator=g)
    means = 2 * torch.randn(K, D, generator=g)
    variances = 0.2 + torch.rand(K, D, generator=g)
    logits = torch.randn(K, generator=g)
    return Z, means, variances, logits


@pytest.mark.usefixtures("float64")
def test_log_densities_and_posterior_match_scipy_and_sklearn():
    Z, means, variances, logits = _mixture(30, 4, 3, seed=0)
    log_g = diagonal_gaussian_log_densities(Z, means, variances)
    for k in range(4):
        expected = multivariate_normal(means[k].numpy(), np.diag(variances[k].numpy())).logpdf(Z.numpy())
        np.testing.assert_allclose(log_g[:, k].numpy(), expected, rtol=1e-10)
    weights = torch.softmax(logits, dim=0).numpy()
    gmm = GaussianMixture(4, covariance_type="diag")
    gmm.means_, gmm.covariances_, gmm.weights_ = means.numpy(), variances.numpy(), weights
    gmm.precisions_cholesky_ = 1 / np.sqrt(variances.numpy())
    log_joint = mixture_log_joint(Z, means, variances, logits)
    np.testing.assert_allclose(torch.softmax(log_joint, dim=1).numpy(), gmm.predict_proba(Z.numpy()), rtol=1e-8)
    np.testing.assert_allclose(torch.logsumexp(log_joint, dim=1).numpy(), gmm.score_samples(Z.numpy()), rtol=1e-10)


@pytest.mark.usefixtures("float64")
def test_gradients_of_the_log_likelihood_are_the_papers_eqs_8_to_12():
    Z, means, variances, logits = _mixture(1, 3, 4, seed=1)
    y = Z[0].clone().requires_grad_()
    means.requires_grad_()
    log_variances = variances.log().requires_grad_()
    logits.requires_grad_()
    log_joint = mixture_log_joint(y[None], means, log_variances.exp(), logits)[0]
    grads = torch.autograd.grad(torch.logsumexp(log_joint, dim=0), (y, means, log_variances, logits))
    p = torch.softmax(log_joint, dim=0).detach()
    y, means, logits = y.detach(), means.detach(), logits.detach()
    eq8 = (p[:, None] * (means - y) / variances).sum(dim=0)
    eq10 = p[:, None] * (y - means) / variances  # without the separation term
    eq11 = p[:, None] * ((y - means).pow(2) / variances - 1)  # per variance; per log-variance: halved
    eq12 = p - torch.softmax(logits, dim=0)  # per weight logit
    for got, expected in zip(grads, (eq8, eq10, eq11 / 2, eq12)):
        np.testing.assert_allclose(got.numpy(), expected.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.usefixtures("float64")
@pytest.mark.parametrize("n_neighbors", [0, 1, 2, 4])
def test_separation_sums_squared_distances_to_the_nearest_centres(n_neighbors):
    means = torch.randn(5, 3, generator=torch.Generator().manual_seed(2)).requires_grad_()
    S = neighbour_separation(means, n_neighbors)
    M = means.detach().numpy()
    distances = ((M[:, None] - M[None]) ** 2).sum(axis=2)
    np.fill_diagonal(distances, np.inf)
    neighbours = np.argsort(distances, axis=1)[:, :n_neighbors]
    assert S.item() == pytest.approx(sum(distances[k, j] for k in range(5) for j in neighbours[k]))
    # eq. (10)'s separation part, from both ends of every (k, j) pair
    expected = np.zeros_like(M)
    for k in range(5):
        for j in neighbours[k]:
            expected[k] += 2 * (M[k] - M[j])
            expected[j] += 2 * (M[j] - M[k])
    if n_neighbors:
        (grad,) = torch.autograd.grad(S, means)
        np.testing.assert_allclose(grad.numpy(), expected, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_batch_loss_is_minus_eq_5_plus_the_reconstruction(blobs, covariance_type):
    X, _ = blobs
    est = fast(DeepGMM, n_clusters=3, separation_weight=0.3, n_neighbors=1, covariance_type=covariance_type,
               reconstruction_weight=0.5).fit(X)
    module = est.module_
    x = torch.as_tensor(X[:50], device=est.device_)
    with torch.no_grad():
        parts = est._batch_loss(x, torch.arange(50))
        Z, X_hat = (t.double().cpu().numpy() for t in module(x))
    log_likelihood = _sklearn_mixture(est).score_samples(Z).mean()
    C = est.cluster_centers_
    distances = ((C[:, None] - C[None]) ** 2).sum(axis=2) + np.diag([np.inf] * 3)
    separation = distances.min(axis=1).sum()
    reconstruction = ((X[:50] - X_hat) ** 2).sum(axis=1).mean()
    assert parts["log_likelihood"].item() == pytest.approx(log_likelihood, rel=1e-4)
    assert parts["separation"].item() == pytest.approx(separation, rel=1e-4)
    assert parts["reconstruction"].item() == pytest.approx(reconstruction, rel=1e-4)
    expected = -log_likelihood - 0.3 * separation + 0.5 * reconstruction
    assert parts["loss"].item() == pytest.approx(expected, rel=1e-4)


def _sklearn_mixture(est):
    """A sklearn GaussianMixture holding ``est``'s fitted mixture."""
    gmm = GaussianMixture(est.n_clusters, covariance_type=est.covariance_type)
    gmm.means_, gmm.covariances_, gmm.weights_ = est.cluster_centers_, est.covariances_, est.weights_
    if est.covariance_type == "diag":
        gmm.precisions_cholesky_ = 1 / np.sqrt(est.covariances_)
    else:
        gmm.precisions_cholesky_ = np.stack(
            [np.linalg.inv(np.linalg.cholesky(c)).T for c in est.covariances_]
        )
    return gmm


@pytest.mark.parametrize("reg_covar", [1e-6, 0.05])
@pytest.mark.parametrize("covariance_type", ["diag", "full"])
def test_starts_from_em_and_predicts_with_the_fitted_mixture(blobs, covariance_type, reg_covar):
    X, _ = blobs
    autoencoder = AutoEncoder(hidden_dims=(32,), embedding_dim=3, max_epochs=15, batch_size=32,
                              optimizer="adam", learning_rate=0.01, device="cpu", random_state=0).fit(X)
    params = dict(n_clusters=3, autoencoder=autoencoder, covariance_type=covariance_type, reg_covar=reg_covar,
                  device="cpu", pretrain_epochs=15)
    start = fast(DeepGMM, max_epochs=0, **params).fit(X)
    # the EM with the same floor, which the trained covariances add once more
    em = GaussianMixture(3, covariance_type=covariance_type, reg_covar=reg_covar, n_init=10, random_state=seed_from(0))
    em.fit(autoencoder.transform(X))
    floor = start.reg_covar * (1 if covariance_type == "diag" else np.eye(3))
    np.testing.assert_allclose(start.cluster_centers_, em.means_, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(start.weights_, em.weights_, rtol=1e-3)
    np.testing.assert_allclose(start.covariances_, em.covariances_ + floor, rtol=1e-3, atol=1e-6)
    est = fast(DeepGMM, **params).fit(X)
    # the public attributes are the mixture that predicts
    gmm = _sklearn_mixture(est)
    np.testing.assert_allclose(est.predict_proba(X), gmm.predict_proba(est.transform(X)), atol=1e-8)
    np.testing.assert_array_equal(est.labels_, gmm.predict(est.transform(X)))
    # score: the mixture's mean log-likelihood, as GaussianMixture's
    assert est.score(X) == pytest.approx(gmm.score(est.transform(X)), rel=1e-8)
    assert est.weights_.sum() == pytest.approx(1.0)
    variances = est.covariances_ if covariance_type == "diag" else np.linalg.eigvalsh(est.covariances_)
    assert np.all(variances >= est.reg_covar * (1 - 1e-6))


def test_separation_weight_pushes_centres_apart(blobs):
    X, _ = blobs
    spread = {}
    for weight in (0.0, 0.5):
        est = fast(DeepGMM, n_clusters=3, separation_weight=weight, max_epochs=10, learning_rate=0.01).fit(X)
        spread[weight] = [h["separation"] for h in est.history_]
    assert spread[0.5][-1] > spread[0.0][-1]
    assert spread[0.5][-1] > spread[0.5][0]


def test_reconstruction_weight_trains_the_decoder_only_when_positive(blobs):
    X, _ = blobs
    autoencoder = AutoEncoder(hidden_dims=(32,), embedding_dim=3, max_epochs=5, batch_size=32,
                              optimizer="adam", learning_rate=0.01, device="cpu", random_state=0).fit(X)
    before = [p.detach().clone() for p in autoencoder.module_.decoder.parameters()]
    for weight, changes in ((0.0, False), (1.0, True)):
        est = fast(DeepGMM, n_clusters=3, autoencoder=autoencoder, reconstruction_weight=weight, device="cpu",
                   pretrain_epochs=5)
        est.fit(X)
        after = [p.detach().cpu() for p in est.module_.decoder.parameters()]
        assert any(not torch.equal(b, a) for b, a in zip(before, after)) is changes
        assert ("reconstruction" in est.history_[-1]) is changes


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(n_neighbors=3), "n_neighbors=3 must be < n_clusters=3"),
        (dict(n_neighbors=-1), "'n_neighbors' parameter of DeepGMM must be an int >= 0 or None"),
        (dict(separation_weight=-0.1), "'separation_weight' parameter of DeepGMM must be a float >= 0"),
        (dict(reg_covar=0.0), "'reg_covar' parameter of DeepGMM must be a float > 0"),
        (dict(optimizer="adamw"), "'optimizer' parameter of DeepGMM must be one of 'adam', 'sgd'"),
        (dict(covariance_type="spherical"), "'covariance_type' parameter of DeepGMM must be one of 'diag', 'full'"),
    ],
)
def test_bad_parameters_are_named(blobs, params, message):
    X, _ = blobs
    with pytest.raises(ValueError, match=message):
        fast(DeepGMM, n_clusters=3, **params).fit(X)


def test_defaults_resolve_to_the_papers_settings(blobs):
    X, _ = blobs
    est = fast(DeepGMM, n_clusters=3, max_epochs=1).fit(X)
    assert est.n_neighbors_ == 1  # n_clusters // 2
    est = fast(DeepGMM, n_clusters=3, max_epochs=2, optimizer="sgd", learning_rate=1e-4).fit(X)
    assert np.isfinite(est.history_[-1]["loss"])
    default = DeepGMM()
    assert default.tol == 0.0 and default.max_epochs == 100 and default.separation_weight == 0.01
    assert default.covariance_type == "full" and default.reconstruction_weight == 10.0
    parameter = [torch.zeros(1, requires_grad=True)]
    sgd = DeepGMM(optimizer="sgd")._make_optimizer(parameter)
    adam = DeepGMM()._make_optimizer(parameter)
    assert isinstance(sgd, torch.optim.SGD) and sgd.defaults["lr"] == 0.01 and sgd.defaults["momentum"] == 0.9
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["lr"] == 1e-4


@parametrize_with_checks([fast(DeepGMM, covariance_type="diag")], expected_failed_checks=expected_failed_checks)
def test_diagonal_variant_passes_sklearns_checks(estimator, check):
    check(estimator)


def test_a_diverging_mixture_stops_with_a_clear_error():
    means = torch.zeros(2, 3, dtype=torch.float64)
    covariances = torch.full((2, 3, 3), float("nan"), dtype=torch.float64)
    with pytest.raises(FloatingPointError, match="training diverged. Lower learning_rate"):
        mixture_log_joint(torch.zeros(4, 3, dtype=torch.float64), means, covariances, torch.zeros(2), floor=1e-6)
