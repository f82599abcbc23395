"""Gaussian log-densities shared by the mixture-based methods, and a
Gaussian mixture fitted with sample weights."""

import math

import numpy as np
import torch
from sklearn.cluster import KMeans


def floored_cholesky(covariances, floor):
    """Lower Cholesky factors of ``Sigma_k + floor I``, shape (K, D, D).

    A factorisation that fails means the mixture's parameters have become
    non-finite: it is raised as the ``FloatingPointError`` of a diverged
    training, not as torch's ``LinAlgError``. The factor is checked as well
    as torch's status: on CUDA a NaN matrix factorises without an error,
    into NaN (one device sync, as ``torch.linalg.cholesky``'s own check).
    """
    eye = torch.eye(covariances.shape[-1], dtype=covariances.dtype, device=covariances.device)
    factor, info = torch.linalg.cholesky_ex(covariances + floor * eye)
    if bool((info != 0).any() | ~torch.isfinite(factor).all()):
        raise FloatingPointError(
            "A Gaussian component's covariance is not positive definite even with its floor: "
            "the mixture's parameters have become non-finite, so training diverged. Lower "
            "learning_rate or scale the input features (e.g. to [0, 1])."
        )
    return factor


def gaussian_log_densities(Y, means, covariances, floor):
    """``log N(y_i; mu_k, Sigma_k + floor I)`` for every row and component, shape (n, K).

    ``covariances`` are full, shape (K, D, D).
    """
    D = Y.shape[1]
    cholesky = floored_cholesky(covariances, floor)
    # one triangular solve per component over all rows, (K, D, n): the factor
    # is not repeated per row
    diff = (Y.unsqueeze(0) - means.unsqueeze(1)).transpose(1, 2)
    whitened = torch.linalg.solve_triangular(cholesky, diff, upper=False)
    log_det = 2 * torch.log(torch.diagonal(cholesky, dim1=1, dim2=2)).sum(dim=1)
    return -0.5 * (whitened.pow(2).sum(dim=1).T + log_det + D * math.log(2 * math.pi))


def diagonal_gaussian_log_densities(Y, means, variances):
    """``log N(y_i; mu_k, diag(sigma_k^2))`` for every row and component, shape (n, K).

    ``variances`` are the diagonals, shape (K, D).
    """
    D = Y.shape[1]
    mahalanobis = ((Y.unsqueeze(1) - means.unsqueeze(0)).pow(2) / variances.unsqueeze(0)).sum(dim=2)
    return -0.5 * (mahalanobis + torch.log(variances).sum(dim=1) + D * math.log(2 * math.pi))


def _positive_definite(covariances, covariance_type):
    if not np.isfinite(covariances).all():
        return False
    if covariance_type == "diag":
        return bool((covariances > 0).all())
    try:
        np.linalg.cholesky(covariances)
    except np.linalg.LinAlgError:
        return False
    return True


class WeightedGaussianMixture:
    """A Gaussian mixture fitted by EM with sample weights.

    :class:`sklearn.mixture.GaussianMixture` takes no ``sample_weight``;
    this follows its defaults (k-means start, ``reg_covar=1e-6``,
    ``tol=1e-3`` on the mean log-likelihood, ``max_iter=100``, the best of
    ``n_init`` starts), with every row's responsibilities times its weight
    in the M-step, so that an integer weight acts as copies of the row.
    The estimators use it only when given non-uniform weights; unweighted
    fits keep sklearn's.

    Parameters
    ----------
    n_components : int
    covariance_type : {"full", "diag"}
    n_init : int
    random_state : int
    reg_covar, tol : float
    max_iter : int

    Attributes
    ----------
    means_, covariances_, weights_ : ndarray
        As :class:`~sklearn.mixture.GaussianMixture`'s (covariances of
        shape (K, D, D) for "full", (K, D) for "diag", ``reg_covar`` included).
    """

    def __init__(self, n_components, covariance_type="full", n_init=1, random_state=0,
                 reg_covar=1e-6, tol=1e-3, max_iter=100):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.n_init = n_init
        self.random_state = random_state
        self.reg_covar = reg_covar
        self.tol = tol
        self.max_iter = max_iter

    def fit_predict(self, Z, sample_weight):
        """Fit on the rows of ``Z`` (float64 array) with ``sample_weight``; return the labels."""
        Z = np.asarray(Z, dtype=np.float64)
        weight = np.asarray(sample_weight, dtype=np.float64)
        seeds = np.random.RandomState(self.random_state).randint(np.iinfo(np.int32).max, size=self.n_init)
        best = None
        for seed in seeds:
            labels = KMeans(self.n_components, n_init=1, random_state=seed).fit_predict(Z, sample_weight=weight)
            parameters = self._m_step(Z, weight, np.eye(self.n_components)[labels])
            log_likelihood = -np.inf
            for _ in range(self.max_iter):
                log_resp, mean_log_likelihood = self._e_step(Z, weight, parameters)
                parameters = self._m_step(Z, weight, np.exp(log_resp))
                change = mean_log_likelihood - log_likelihood
                log_likelihood = mean_log_likelihood
                if abs(change) < self.tol:
                    break
            if best is None or log_likelihood > best[0]:
                best = (log_likelihood, parameters)
        self.means_, self.covariances_, self.weights_ = best[1]
        return self._e_step(Z, weight, best[1])[0].argmax(axis=1)

    def _m_step(self, Z, weight, resp):
        resp = resp * weight[:, None]
        mass = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
        means = resp.T @ Z / mass[:, None]
        if self.covariance_type == "diag":
            covariances = (resp.T @ Z**2) / mass[:, None] - means**2 + self.reg_covar
        else:
            covariances = np.empty((len(means), Z.shape[1], Z.shape[1]))
            for k, mean in enumerate(means):
                centred = Z - mean
                covariances[k] = (resp[:, k, None] * centred).T @ centred / mass[k]
                covariances[k].flat[:: Z.shape[1] + 1] += self.reg_covar
        if not _positive_definite(covariances, self.covariance_type):
            # sklearn's GaussianMixture stops here too
            raise ValueError(
                "The weighted Gaussian mixture on the pretrained embedding has an ill-defined covariance "
                "(a component collapsed onto too few distinct points, or the embedding has a constant or "
                "huge dimension): try fewer clusters or scale the input features (e.g. to [0, 1])."
            )
        return means, covariances, mass / mass.sum()

    def _e_step(self, Z, weight, parameters):
        means, covariances, mixing = parameters
        Zt, means_t = torch.from_numpy(Z), torch.from_numpy(means)
        if self.covariance_type == "diag":
            log_density = diagonal_gaussian_log_densities(Zt, means_t, torch.from_numpy(covariances))
        else:
            log_density = gaussian_log_densities(Zt, means_t, torch.from_numpy(covariances), 0.0)
        log_joint = log_density.numpy() + np.log(mixing)
        log_norm = np.logaddexp.reduce(log_joint, axis=1)
        return log_joint - log_norm[:, None], float(np.average(log_norm, weights=weight))
