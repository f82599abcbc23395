import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV

from skdeepcluster.metrics import SCORERS, accuracy_scorer, clustering_accuracy, purity_score
from skdeepcluster.model_selection import FitAllScoreLabelled, validation_labels


def test_accuracy_is_permutation_invariant():
    y = np.array([0, 0, 1, 1, 2, 2])
    assert clustering_accuracy(y, [2, 2, 0, 0, 1, 1]) == 1.0
    assert clustering_accuracy(y, [0, 0, 0, 0, 1, 1]) == pytest.approx(4 / 6)
    # more clusters than classes: unmatched clusters count as errors
    assert clustering_accuracy([0, 0, 1, 1], [0, 1, 2, 3]) == 0.5


def test_accuracy_against_brute_force():
    from itertools import permutations

    rng = np.random.RandomState(0)
    y, p = rng.randint(0, 4, 60), rng.randint(0, 4, 60)
    best = max(np.mean(np.array(perm)[p] == y) for perm in permutations(range(4)))
    assert clustering_accuracy(y, p) == pytest.approx(best)


def test_purity():
    assert purity_score([0, 0, 1, 1], [0, 0, 0, 0]) == 0.5
    assert purity_score([0, 0, 1, 1], [0, 1, 2, 3]) == 1.0


def test_errors():
    with pytest.raises(ValueError):
        clustering_accuracy([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="empty"):
        clustering_accuracy([], [])
    # each NaN would be a class of its own (NaN equals nothing): 1.0 here
    with pytest.raises(ValueError, match="labels_true contains NaN"):
        clustering_accuracy([0.0, np.nan], [0, 1])
    with pytest.raises(ValueError, match="labels_pred contains NaN"):
        purity_score([0, 1], [0.0, np.nan])


def test_validation_labels_protocol():
    y = np.repeat(np.arange(5), 40)
    y_search, validation, test = validation_labels(y, 0.1, random_state=0)
    assert len(validation) == 20 and len(test) == 180
    assert np.intersect1d(validation, test).size == 0
    assert np.all(y_search[test] == -1) and np.all(y_search[validation] >= 0)
    with pytest.raises(ValueError, match="validation_fraction"):
        validation_labels(y, 1.5)
    with pytest.raises(ValueError, match="-1"):
        validation_labels(y_search)
    # -1 as a true class: the advice in the message works, with the same rows and codes
    with pytest.raises(ValueError, match=r"pass y\.astype\(str\)"):
        validation_labels(y - 1)
    as_text, same_validation, _ = validation_labels((y - 1).astype(str), 0.1, random_state=0)
    np.testing.assert_array_equal(same_validation, validation)
    np.testing.assert_array_equal(as_text, y_search)


def test_stratified_validation_labels_hold_every_class():
    y = np.repeat(np.arange(5), [40, 40, 40, 40, 6])
    random_misses = [
        np.unique(y[validation_labels(y, 0.05, random_state=seed)[1]]).size < 5 for seed in range(20)
    ]
    assert any(random_misses)  # the paper's random draw can leave a class out
    for seed in range(20):
        y_search, validation, test = validation_labels(y, 0.05, random_state=seed, stratify=True)
        assert np.unique(y[validation]).size == 5 and len(validation) == 8
        assert np.intersect1d(validation, test).size == 0 and len(test) == len(y) - 8
        assert np.all(y_search[test] == -1)
    # proportional beyond the first row of each class
    _, validation, _ = validation_labels(y, 0.25, random_state=0, stratify=True)
    assert np.bincount(y[validation]).tolist() == [10, 10, 10, 10, 2]
    with pytest.raises(ValueError, match="a validation row per class: 2 validation rows for 5 classes"):
        validation_labels(y, 0.01, stratify=True)


def test_fit_all_score_labelled_split():
    y = np.array([-1, 3, -1, 0, -1])
    ((train, score),) = list(FitAllScoreLabelled().split(np.zeros((5, 1)), y))
    np.testing.assert_array_equal(train, np.arange(5))
    np.testing.assert_array_equal(score, [1, 3])
    with pytest.raises(ValueError, match="no labelled row"):
        list(FitAllScoreLabelled().split(None, np.full(3, -1)))
    with pytest.raises(ValueError, match="needs y"):
        list(FitAllScoreLabelled().split(None))
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        list(FitAllScoreLabelled().split(np.zeros((6, 1)), y))


@pytest.mark.parametrize(
    "y",
    [
        np.array([np.nan, 3, np.nan, 0, np.nan]),
        np.array([np.nan, "b", np.nan, "a", np.nan], dtype=object),
        np.array([None, "b", np.nan, "a", None], dtype=object),
    ],
)
def test_nan_marks_unlabelled_rows(y):
    """NaN equals nothing, so ``y != nan`` would score every row."""
    ((train, score),) = list(FitAllScoreLabelled(unlabelled=np.nan).split(np.zeros((5, 1)), y))
    np.testing.assert_array_equal(train, np.arange(5))
    np.testing.assert_array_equal(score, [1, 3])


def test_a_string_marker_with_a_numeric_unlabelled_is_refused():
    """-1 never equals "-1": every row would be scored, the marker a class."""
    y = np.array(["cat", "-1", "dog", "-1"])
    with pytest.raises(ValueError, match=r"y holds the string '-1' but unlabelled=-1 .*unlabelled='-1'"):
        list(FitAllScoreLabelled().split(None, y))
    ((_, score),) = list(FitAllScoreLabelled(unlabelled="-1").split(None, y))
    np.testing.assert_array_equal(score, [0, 2])
    # strings without the marker: every row is labelled
    ((_, score),) = list(FitAllScoreLabelled().split(None, np.array(["cat", "dog"])))
    np.testing.assert_array_equal(score, [0, 1])


@pytest.mark.parametrize(
    "y, match",
    [
        (np.array([0.0, np.nan, 1.0]), r"y holds NaN, None or NA but unlabelled=-1, .*unlabelled=np.nan"),
        (np.array(["a", None, "b"], dtype=object), "y holds NaN, None or NA"),
        (np.array(["a", "", "b"]), r"y holds empty strings but unlabelled=-1, .*unlabelled=''"),
        # NaN beside the marker: those rows would still be scored
        (np.array([0.0, np.nan, 1.0, -1.0]), "y holds NaN, None or NA but unlabelled=-1"),
    ],
    ids=["nan", "none", "empty-string", "nan-beside-the-marker"],
)
def test_another_marker_than_unlabelled_is_refused(y, match):
    """Scored as labels, they would give every candidate a NaN score, or
    count the marker as a class."""
    with pytest.raises(ValueError, match=match):
        list(FitAllScoreLabelled().split(None, y))
    # the marker named: no complaint
    if y.dtype.kind != "U":
        ((_, score),) = list(FitAllScoreLabelled(unlabelled=np.nan).split(None, y))
        np.testing.assert_array_equal(score, [0, 2, 3][: len(y) - 1])
    else:
        ((_, score),) = list(FitAllScoreLabelled(unlabelled="").split(None, y))
        np.testing.assert_array_equal(score, [0, 2])


def test_pandas_string_labels_with_na():
    pd = pytest.importorskip("pandas")
    y = pd.Series(["a", pd.NA, "b"], dtype="string")
    with pytest.raises(ValueError, match="y holds NaN, None or NA but unlabelled=-1"):
        list(FitAllScoreLabelled().split(None, y))
    ((_, score),) = list(FitAllScoreLabelled(unlabelled=np.nan).split(None, y))
    np.testing.assert_array_equal(score, [0, 2])


@pytest.mark.parametrize(
    "y",
    [
        np.array([0.0, 1.0, np.nan, 1.0]),
        np.array([0, 1, np.nan, 1], dtype=object),  # np.unique would not even merge the zeros
        np.array(["a", None, "b", "a"], dtype=object),
    ],
    ids=["float-nan", "object-nan", "none"],
)
def test_validation_labels_refuses_missing_labels(y):
    with pytest.raises(ValueError, match=r"y holds a missing label \(NaN, None or NA\)"):
        validation_labels(y, 0.5, random_state=0)


def test_validation_labels_refuses_pandas_na():
    pd = pytest.importorskip("pandas")
    with pytest.raises(ValueError, match="y holds a missing label"):
        validation_labels(pd.Series(["a", pd.NA, "b", "a"], dtype="string"), 0.5, random_state=0)


@pytest.mark.parametrize("scoring", [accuracy_scorer, SCORERS["purity"], "adjusted_rand_score"])
def test_grid_search_with_two_jobs(scoring):
    X, y = make_blobs(300, centers=4, random_state=0)
    y_search, validation, test = validation_labels(y, 0.1, random_state=0)
    search = GridSearchCV(
        KMeans(n_init=3, random_state=0), {"n_clusters": [2, 3, 4, 6]},
        cv=FitAllScoreLabelled(), scoring=scoring, n_jobs=2,
    ).fit(X, y_search)
    assert search.best_params_["n_clusters"] in (4, 6) if scoring is SCORERS["purity"] else search.best_params_ == {"n_clusters": 4}
    assert clustering_accuracy(y[test], search.best_estimator_.labels_[test]) > 0.9
