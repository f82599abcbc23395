"""Sample weights: their validation, and weighted draws of training rows.

A weight makes its row count as that many copies. Whole-data updates
(k-means, mixture and target-distribution steps) weigh each row exactly.
Mini-batch training draws the rows of each epoch with replacement, each
with probability proportional to its weight, and averages the batch's
losses plainly: each drawn row is distributed as a row drawn from the data
with the rows repeated (batch norm included), and a heavy row is seen more
often rather than with a larger step (with the default SGD at learning rate 1.0,
five rows of weight 100 in 1,797 made loss weighting diverge).
"""

import numbers

import numpy as np
import torch

from .data import from_tensor


def check_sample_weight(sample_weight, n_samples):
    """Validate ``sample_weight`` for ``n_samples`` rows.

    Parameters
    ----------
    sample_weight : array-like of shape (n_samples,), float or None
        A float weighs every row alike.
    n_samples : int

    Returns
    -------
    weights : ndarray of shape (n_samples,), float64 (a new array), or None

    Raises
    ------
    TypeError
        For non-numeric weights.
    ValueError
        For a wrong shape, non-finite or negative weights, or all zero.
    """
    if sample_weight is None:
        return None
    sample_weight = from_tensor(sample_weight, "sample_weight")
    if isinstance(sample_weight, np.ndarray) and sample_weight.ndim == 0:
        sample_weight = sample_weight.item()  # a 0-d array or tensor is one number, as a float is
    if isinstance(sample_weight, numbers.Real) and not isinstance(sample_weight, (bool, np.bool_)):
        sample_weight = np.full(n_samples, sample_weight)  # as sklearn's KMeans: one weight for every row
    weights = np.asarray(sample_weight)
    if weights.dtype == bool or weights.dtype.kind not in "iuf":
        raise TypeError(f"sample_weight must hold real numbers; got dtype {weights.dtype}.")
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must have shape (n_samples,) = ({n_samples},), one weight per row of X; "
            f"got shape {weights.shape}."
        )
    weights = weights.astype(np.float64)  # a copy: the caller's array is never changed
    if not np.isfinite(weights).all():
        raise ValueError("sample_weight must be finite; it holds NaN or infinity.")
    if (weights < 0).any():
        raise ValueError(f"sample_weight must be >= 0; its smallest weight is {weights.min()}.")
    if not (weights > 0).any():
        raise ValueError("sample_weight: every weight is zero; at least one row needs a positive weight.")
    return weights


def training_weights(weights):
    """Checked ``weights`` as training uses them: scaled to mean 1, or
    ``None`` when none were given or all are equal in float32, the precision
    training holds them in (the unweighted fit is then exactly the same fit;
    weights equal up to rounding, normalised or computed, do not switch
    training to weighted draws)."""
    if weights is None:
        return None
    weights = weights / weights.max()  # first: the mean of huge finite weights overflows
    weights = weights / weights.mean()
    as_float32 = weights.astype(np.float32)
    return None if (as_float32 == as_float32[0]).all() else weights


def weighted_draws(weights, n_draws, generator, cumulative=None):
    """``n_draws`` row indices drawn with replacement, row ``i`` with
    probability ``weights[i] / weights.sum()``; a row of weight 0 is never
    drawn. ``weights`` and ``generator`` on the CPU; returns a CPU int64
    tensor. ``cumulative`` may pass ``weights.double().cumsum(0)`` computed
    once for repeated draws.

    Inverse-CDF sampling, as ``torch.multinomial`` takes at most 2**24 rows.
    """
    cdf = torch.cumsum(weights.double(), dim=0) if cumulative is None else cumulative
    uniform = torch.rand(n_draws, generator=generator, dtype=torch.float64) * cdf[-1]
    return torch.searchsorted(cdf, uniform, right=True).clamp_max(len(weights) - 1)


def weighted_average(values, sample_weight):
    """Mean of per-row ``values`` (numpy) weighted by the checked
    ``sample_weight`` (plain mean when None): the ``score`` of a model
    whose score is a mean over rows."""
    return float(np.average(values, weights=check_sample_weight(sample_weight, len(values))))
