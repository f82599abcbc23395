"""Clustering metrics that need a matching between clusters and classes.

Both metrics are permutation invariant: cluster 3 may stand for class 7.
Use them with a few labels to tune a clusterer (see
:mod:`skdeepcluster.model_selection`); the ready scorers work in
``GridSearchCV(..., scoring=accuracy_scorer, n_jobs=2)``.
"""

import numpy as np
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import make_scorer
from sklearn.metrics.cluster import contingency_matrix
from sklearn.utils.validation import check_array, check_consistent_length, column_or_1d


def _contingency(labels_true, labels_pred):
    # NaN equals nothing, so each NaN would count as a class of its own
    labels_true, labels_pred = (
        column_or_1d(check_array(labels, ensure_2d=False, ensure_min_samples=0, dtype=None, input_name=name))
        for labels, name in ((labels_true, "labels_true"), (labels_pred, "labels_pred"))
    )
    check_consistent_length(labels_true, labels_pred)
    if labels_true.shape[0] == 0:
        raise ValueError("labels_true and labels_pred are empty: nothing to score.")
    return contingency_matrix(labels_true, labels_pred)


def clustering_accuracy(labels_true, labels_pred):
    """Accuracy under the best one-to-one matching of clusters to classes.

    The matching maximises the number of agreements (Hungarian algorithm on
    the contingency matrix). With more clusters than classes the unmatched
    clusters count as errors.

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
    labels_pred : array-like of shape (n_samples,)

    Returns
    -------
    accuracy : float in [0, 1]

    Examples
    --------
    >>> from skdeepcluster.metrics import clustering_accuracy
    >>> clustering_accuracy([0, 0, 1, 1], [1, 1, 0, 0])
    1.0
    >>> clustering_accuracy([0, 0, 1, 1], [0, 0, 0, 1])
    0.75
    """
    counts = _contingency(labels_true, labels_pred)
    rows, cols = linear_sum_assignment(counts, maximize=True)
    return float(counts[rows, cols].sum() / counts.sum())


def purity_score(labels_true, labels_pred):
    """Fraction of samples that belong to their cluster's majority class.

    Parameters
    ----------
    labels_true : array-like of shape (n_samples,)
    labels_pred : array-like of shape (n_samples,)

    Returns
    -------
    purity : float in [0, 1]

    Examples
    --------
    >>> from skdeepcluster.metrics import purity_score
    >>> purity_score([0, 0, 1, 1], [0, 0, 0, 1])
    0.75
    """
    counts = _contingency(labels_true, labels_pred)
    return float(np.max(counts, axis=0).sum() / counts.sum())


#: Scorer for ``GridSearchCV(scoring=...)``: clustering accuracy of
#: ``predict`` on the scoring rows.
accuracy_scorer = make_scorer(clustering_accuracy)

#: Scorer for ``GridSearchCV(scoring=...)``: purity of ``predict``.
purity_scorer = make_scorer(purity_score)

#: Scorers by name, for ``scoring={...}`` with several metrics.
SCORERS = {
    "clustering_accuracy": accuracy_scorer,
    "purity": purity_scorer,
    "nmi": "normalized_mutual_info_score",
    "ari": "adjusted_rand_score",
}
