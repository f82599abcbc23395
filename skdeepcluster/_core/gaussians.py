"""Gaussian log-densities shared by the mixture-based methods."""

import math

import torch


def gaussian_log_densities(Y, means, covariances, floor):
    """``log N(y_i; mu_k, Sigma_k + floor I)`` for every row and component, shape (n, K).

    ``covariances`` are full, shape (K, D, D).
    """
    D = Y.shape[1]
    eye = torch.eye(D, dtype=Y.dtype, device=Y.device)
    try:
        cholesky = torch.linalg.cholesky(covariances + floor * eye)
    except torch.linalg.LinAlgError as error:
        raise FloatingPointError(
            "A Gaussian component's covariance is not positive definite even with its floor: "
            "the mixture's parameters have become non-finite, so training diverged. Lower "
            "learning_rate or scale the input features (e.g. to [0, 1])."
        ) from error
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
