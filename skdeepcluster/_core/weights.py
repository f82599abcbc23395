"""Sample weights: their validation, and the weighted mean of a batch's rows.

A weight scales its row's whole term in every objective, so that an
integer weight acts as that many copies of the row in each whole-data
update (k-means, mixture and target-distribution steps). Mini-batch
training cannot match repetition exactly (a row of weight 2 sits in one
batch, its two copies in two), so it matches in expectation: weights are
scaled to mean 1 over the training rows and a batch's loss is the mean of
``weight * loss`` over its rows, an unbiased estimate of the weighted mean
over the data whatever rows the batch holds (a batch of zero-weight rows
contributes nothing rather than dividing by zero).
"""

import numbers

import numpy as np


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
    ``None`` when none were given or all are equal (the unweighted fit is
    then exactly the same fit)."""
    if weights is None or (weights == weights[0]).all():
        return None
    weights = weights / weights.max()  # first: the mean of huge finite weights overflows
    return weights / weights.mean()


def batch_mean(values, weights):
    """Mean of a batch's per-row ``values``, each times its row's weight
    (``weights`` of the same shape, mean 1 over the data: see the module
    docstring) when ``weights`` is not None."""
    if weights is None:
        return values.mean()
    return (values * weights).mean()


def weighted_average(values, sample_weight):
    """Mean of per-row ``values`` (numpy) weighted by the checked
    ``sample_weight`` (plain mean when None): the ``score`` of a model
    whose score is a mean over rows."""
    return float(np.average(values, weights=check_sample_weight(sample_weight, len(values))))
