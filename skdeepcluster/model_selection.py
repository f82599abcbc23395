"""Hyperparameter search for clustering with a few validation labels.

The Deep k-Means paper's protocol: train every candidate on *all* rows,
choose by clustering accuracy on a labelled 10 % validation subset, report on
the other 90 %. :class:`sklearn.model_selection.PredefinedSplit` does not fit
here: its training fold leaves the validation rows out.

Examples
--------
>>> import numpy as np
>>> from sklearn.cluster import KMeans
>>> from sklearn.datasets import make_blobs
>>> from sklearn.model_selection import GridSearchCV
>>> from skdeepcluster.metrics import accuracy_scorer
>>> from skdeepcluster.model_selection import FitAllScoreLabelled, validation_labels
>>> X, y = make_blobs(200, centers=3, random_state=0)
>>> y_search, validation, test = validation_labels(y, 0.1, random_state=0)
>>> search = GridSearchCV(KMeans(n_init=3, random_state=0),
...                       {"n_clusters": [2, 3, 4]},
...                       cv=FitAllScoreLabelled(), scoring=accuracy_scorer)
>>> search.fit(X, y_search).best_params_
{'n_clusters': 3}
"""

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_consistent_length, column_or_1d

UNLABELLED = -1


def validation_labels(y, validation_fraction=0.1, random_state=None, stratify=False):
    """Hide all labels but a random validation subset.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        True labels, one for every row (no NaN, None or NA): numbers other
        than ``-1`` (the unlabelled marker), or strings.
    validation_fraction : float in (0, 1), default=0.1
        Share of rows whose label stays visible.
    random_state : int, RandomState instance or None, default=None
    stratify : bool, default=False
        Draw the validation rows class by class: one of each class, the
        rest in proportion to the classes' sizes, so that even a small
        validation set holds every class. The DKM paper's protocol draws
        them at random (False), which can leave a small class out.

    Returns
    -------
    y_search : ndarray of int64, shape (n_samples,)
        On the validation rows, the code of each row's label (its position
        in ``np.unique(y)``, so 0, 1, ... whatever ``y``'s values); ``-1``
        elsewhere. Pass it to ``GridSearchCV.fit`` with
        ``cv=FitAllScoreLabelled()``; the clustering scores do not depend
        on the label values, only on which rows share one.
    validation : ndarray of int
        Indices of the validation rows (sorted).
    test : ndarray of int
        Indices of the other rows, on which to report (sorted).

    Raises
    ------
    ValueError
        If ``y`` holds a missing label (NaN, None or NA) or the unlabelled
        marker ``-1``, or ``validation_fraction`` is not in (0, 1) or leaves
        no test row.
    """
    y = column_or_1d(y)
    if _missing(y).any():
        raise ValueError(
            "y holds a missing label (NaN, None or NA); validation_labels needs the true label of every "
            "row (it hides all but the validation rows itself)."
        )
    if not 0 < validation_fraction < 1:
        raise ValueError(
            f"validation_fraction must be in (0, 1); got {validation_fraction!r}."
        )
    if np.issubdtype(y.dtype, np.number) and np.any(y == UNLABELLED):
        raise ValueError(
            "y already contains the unlabelled marker -1; pass the true labels, not a y_search. "
            "If -1 is one of your classes, pass y.astype(str): any label values work, the codes "
            "returned are 0, 1, ..."
        )
    n = y.shape[0]
    n_validation = max(1, int(round(n * validation_fraction)))
    if n_validation >= n:
        raise ValueError(f"validation_fraction={validation_fraction} leaves no test rows out of {n}.")
    rng = check_random_state(random_state)
    codes = np.unique(y, return_inverse=True)[1]
    if stratify:
        validation = _stratified_rows(codes, n_validation, rng)
    else:
        validation = np.sort(rng.choice(n, n_validation, replace=False))
    test = np.setdiff1d(np.arange(n), validation)
    y_search = np.full(n, UNLABELLED, dtype=np.int64)
    y_search[validation] = codes[validation]
    return y_search, validation, test


def _missing(values):
    """Where ``values`` (a 1-d array) hold NaN, None or pandas' NA."""
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind != "O":
        return np.zeros(values.shape, dtype=bool)
    return np.array(
        [
            value is None
            or (isinstance(value, (float, np.floating)) and np.isnan(value))
            or type(value).__name__ == "NAType"
            for value in values
        ],
        dtype=bool,
    )


def _stratified_rows(codes, n_rows, rng):
    """``n_rows`` sorted row indices drawn class by class: one of each class,
    the rest in proportion to the classes' sizes (largest remainders)."""
    sizes = np.bincount(codes)
    if n_rows < sizes.size:
        raise ValueError(
            f"stratify=True needs a validation row per class: {n_rows} validation rows for {sizes.size} classes."
        )
    share = (n_rows - sizes.size) * (sizes - 1) / max(1, (sizes - 1).sum())
    counts = 1 + np.floor(share).astype(int)
    for k in np.argsort(-(share - np.floor(share)), kind="stable")[: n_rows - counts.sum()]:
        counts[k] += 1
    rows = [rng.choice(np.flatnonzero(codes == k), counts[k], replace=False) for k in range(sizes.size)]
    return np.sort(np.concatenate(rows))


class FitAllScoreLabelled:
    """One split: fit on every row, score on the rows that carry a label.

    Rows whose label is ``unlabelled`` (``-1`` by default) are fitted on but
    never scored. Use it as ``cv=`` of ``GridSearchCV`` /
    ``RandomizedSearchCV`` together with :func:`validation_labels`, and
    give the search a ``scoring`` (e.g. ``skdeepcluster.metrics.accuracy_scorer``):
    without one it ranks by the estimator's own ``score``, which ignores the
    labels. Keep ``return_train_score=False``: the training fold is every
    row, and a scorer would count the ``-1`` rows as a class.

    Parameters
    ----------
    unlabelled : int, float, str or NaN, default=-1
        Label value of rows without a known class; ``np.nan`` marks them in a
        float ``y`` (compared with ``np.isnan``, as NaN equals nothing), and
        NaN, None or pandas' NA in an object ``y``.
    """

    def __init__(self, unlabelled=UNLABELLED):
        self.unlabelled = unlabelled

    def get_n_splits(self, X=None, y=None, groups=None):
        return 1

    def split(self, X, y=None, groups=None):
        """Yield ``(all row indices, labelled row indices)`` once.

        Raises
        ------
        ValueError
            If ``y`` is missing, has no labelled row or not one label per
            row of ``X``, holds the marker as a string while ``unlabelled``
            is a number, holds NaN, None or NA while ``unlabelled`` is not
            NaN, or has no row marked ``unlabelled`` but holds empty
            strings (another marker, it seems).
        """
        if y is None:
            raise ValueError(f"FitAllScoreLabelled needs y, with {self.unlabelled!r} on unlabelled rows.")
        y = column_or_1d(y)
        if X is not None:
            check_consistent_length(X, y)
        marker = self.unlabelled
        missing = _missing(y)
        marker_is_nan = isinstance(marker, (float, np.floating)) and np.isnan(marker)
        if missing.any() and not marker_is_nan:
            # scored as labels, they would make every candidate's score NaN
            raise ValueError(
                f"y holds NaN, None or NA but unlabelled={marker!r}, so those rows would be scored as "
                "labels; pass FitAllScoreLabelled(unlabelled=np.nan) if they mark unlabelled rows."
            )
        # NaN equals nothing: with a NaN marker, NaN, None and NA mark the rows
        unlabelled = missing if marker_is_nan else np.asarray(y == marker, dtype=bool)
        if not unlabelled.any() and not isinstance(marker, str) and y.dtype.kind in "OUS":
            # -1 never equals "-1": every row would be scored, the marker a class
            if np.any(np.asarray(y, dtype=str) == str(marker)):
                raise ValueError(
                    f"y holds the string {str(marker)!r} but unlabelled={marker!r} is not a string, so no row "
                    f"counts as unlabelled; pass FitAllScoreLabelled(unlabelled={str(marker)!r})."
                )
        if not unlabelled.any() and y.dtype.kind in "OU" and np.any(np.asarray(y, dtype=str) == ""):
            # another marker, it seems, which would be scored as a class
            raise ValueError(
                f"y holds empty strings but unlabelled={marker!r}, so they would be scored as a class; "
                "pass FitAllScoreLabelled(unlabelled='') if they mark unlabelled rows."
            )
        labelled = np.flatnonzero(~unlabelled)
        if labelled.size == 0:
            raise ValueError(
                f"y has no labelled row (every value is {self.unlabelled}); "
                "there is nothing to score on."
            )
        yield np.arange(y.shape[0]), labelled

    def __repr__(self):
        return f"FitAllScoreLabelled(unlabelled={self.unlabelled!r})"
