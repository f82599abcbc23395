"""``fit(X, sample_weight=...)``: every estimator, as KMeans takes it.

An integer weight must act as that many copies of its row. The whole-data
steps weigh rows exactly; each training epoch draws its rows in proportion
to the weights, which matches the repeated rows only in distribution
(sklearn's repetition check is an expected failure in test_common.py). So
the tests here replace the draws by the very order a fit on the repeated
rows takes: the two fits then see the same batches, and must agree in
everything (pretraining, initial k-means or mixture, losses, whole-data
updates, batch norm), while the draws themselves are tested apart.
"""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.datasets import make_blobs
from sklearn.mixture import GaussianMixture
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

import skdeepcluster
from conftest import CLUSTERERS, fast, fast_autoencoder
from skdeepcluster._admm import cluster_means, gmm_m_step
from skdeepcluster._core import training
from skdeepcluster._core.data import DeviceData
from skdeepcluster._core.gaussians import WeightedGaussianMixture
from skdeepcluster._core.weights import check_sample_weight, training_weights, weighted_draws
from skdeepcluster._idec import target_distribution

#: Each method, and its variants whose whole-data steps differ.
VARIANTS = [(cls, {}) for cls in CLUSTERERS] + [
    (skdeepcluster.ADMMCluster, {"clustering": "gmm"}),
    (skdeepcluster.DeepGMM, {"covariance_type": "diag"}),
]
# Not DAMIC(init="gmm"): its gate's output units follow the initial labels'
# numbering, and the weighted EM numbers the same components in another order.
VARIANT_IDS = [cls.__name__ + "".join(f"-{v}" for v in params.values()) for cls, params in VARIANTS]


@pytest.fixture(scope="module")
def separated():
    """Well-separated blobs in [0, 1], integer weights (a third of them 0)
    summing to the number of rows, and the data with each row repeated by
    its weight: as many rows, so the same batches per epoch."""
    X, _ = make_blobs(90, n_features=6, centers=3, cluster_std=0.3, random_state=0)
    X = MinMaxScaler().fit_transform(X)
    weights = np.random.RandomState(1).permutation(np.tile([0, 1, 2], len(X) // 3))
    assert weights.sum() == len(X)
    return X, weights, np.repeat(X, weights, axis=0)


@pytest.fixture
def repeated_rows_order(separated, monkeypatch):
    """Make a weighted fit's epochs take the rows the repeated-rows fit takes:
    the permutation it draws, mapped back to the rows it repeats."""
    _, weights, _ = separated
    source_row = torch.as_tensor(np.repeat(np.arange(len(weights)), weights))

    def epoch_order(n_samples, sample_weight, generator):
        order = torch.randperm(n_samples, generator=generator)
        if sample_weight is None:
            return order
        # the weights the loop was given are these (up to scale)
        torch.testing.assert_close(sample_weight.double() / sample_weight.sum(), torch.as_tensor(weights / weights.sum()))
        return source_row[order]

    monkeypatch.setattr(training, "epoch_order", epoch_order)


def _fit_quietly(est, X, y=None, **fit_params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, **fit_params)


@pytest.mark.parametrize("cls, params", VARIANTS, ids=VARIANT_IDS)
def test_integer_weights_fit_as_repeated_rows(cls, params, separated, repeated_rows_order):
    X, weights, X_repeated = separated
    if cls is skdeepcluster.DAMIC:
        # the experts' per-cluster draws are tested in test_damic.py
        params = dict(params, expert_pretrain_epochs=0)
    est = fast(cls, n_clusters=3, batch_size=16, max_epochs=3, tol=0.0, **params)
    weighted = _fit_quietly(clone(est), X, sample_weight=weights)
    repeated = _fit_quietly(clone(est), X_repeated)
    histories = [(weighted.autoencoder_.history_, repeated.autoencoder_.history_)]
    histories += [(weighted.history_, repeated.history_)]
    if hasattr(weighted, "init_history_"):
        histories += [(weighted.init_history_["gate"], repeated.init_history_["gate"])]
    for with_weights, with_copies in histories:
        assert len(with_weights) == len(with_copies) > 0
        for mine, theirs in zip(with_weights, with_copies):
            for name in mine:
                if name in ("time", "samples_per_second"):
                    continue
                if mine[name] is None:  # the first checkpoint's delta_label
                    assert theirs[name] is None, name
                else:  # delta_label and n_clusters_used too: rows count by weight
                    np.testing.assert_allclose(mine[name], theirs[name], rtol=1e-4, atol=1e-6, err_msg=name)
    # the same model, up to the clusters' order
    proba_weighted, proba_repeated = weighted.predict_proba(X), repeated.predict_proba(X)
    order = [int(np.argmax(proba_repeated[weighted.labels_ == k].sum(axis=0))) for k in range(3)]
    np.testing.assert_allclose(proba_weighted, proba_repeated[:, order], atol=1e-3)
    np.testing.assert_allclose(weighted.transform(X), repeated.transform(X), rtol=1e-3, atol=1e-4)
    # inertia_, ADMMCluster's variance_, ...
    scalars = [name for name, value in vars(weighted).items() if name.endswith("_") and isinstance(value, float)]
    for name in scalars:
        np.testing.assert_allclose(getattr(weighted, name), getattr(repeated, name), rtol=1e-3, err_msg=name)


def test_autoencoder_weights_act_as_repeated_rows(separated, repeated_rows_order):
    X, weights, X_repeated = separated
    ae = fast_autoencoder(max_epochs=5, batch_size=16)  # with its masking noise
    weighted = clone(ae).fit(X, sample_weight=weights)
    repeated = clone(ae).fit(X_repeated)
    np.testing.assert_allclose(
        [h["loss"] for h in weighted.history_], [h["loss"] for h in repeated.history_], rtol=1e-5
    )
    np.testing.assert_allclose(weighted.transform(X), repeated.transform(X), rtol=1e-4, atol=1e-6)


def test_epochs_draw_rows_in_proportion_to_their_weights():
    weights = torch.tensor([0.0, 1.0, 2.0, 0.0, 5.0, 2.0])
    draws = weighted_draws(weights, 200_000, torch.Generator().manual_seed(0))
    frequencies = torch.bincount(draws, minlength=6).double() / len(draws)
    torch.testing.assert_close(frequencies, (weights / weights.sum()).double(), atol=4e-3, rtol=0)
    assert frequencies[0] == frequencies[3] == 0
    order = training.epoch_order(6, weights, torch.Generator().manual_seed(1))
    assert order.shape == (6,) and order.dtype == torch.int64
    torch.testing.assert_close(order, training.epoch_order(6, weights, torch.Generator().manual_seed(1)))
    assert sorted(training.epoch_order(6, None, torch.Generator().manual_seed(1)).tolist()) == list(range(6))


def test_heavy_rows_do_not_make_the_default_pretraining_diverge():
    """Five rows of weight 100: drawn more often, not stepped larger (loss
    weighting diverged here with the default SGD at learning rate 1.0)."""
    from sklearn.datasets import load_digits

    X = load_digits().data / 16
    weights = np.ones(len(X))
    weights[:5] = 100
    ae = skdeepcluster.AutoEncoder(hidden_dims=(64,), embedding_dim=10, max_epochs=15, random_state=0)
    ae.fit(X, sample_weight=weights)
    assert np.isfinite(ae.history_[-1]["loss"])


@pytest.mark.parametrize("cls", CLUSTERERS, ids=lambda c: c.__name__)
@pytest.mark.parametrize(
    "uniform",
    [np.ones, lambda n: [3] * n, lambda n: np.full(n, 0.1), lambda n: 2.5, lambda n: np.diff(np.linspace(0, 1, n + 1)) * n],
    ids=["ones", "list-of-3", "0.1", "scalar", "equal-up-to-rounding"],
)
def test_uniform_weights_give_exactly_the_unweighted_fit(cls, uniform, blobs):
    X, _ = blobs
    est = fast(cls, n_clusters=3)
    plain = _fit_quietly(clone(est), X)
    weighted = _fit_quietly(clone(est), X, sample_weight=uniform(len(X)))
    np.testing.assert_array_equal(plain.labels_, weighted.labels_)
    np.testing.assert_array_equal(plain.predict_proba(X), weighted.predict_proba(X))
    assert [h["loss"] for h in plain.history_] == [h["loss"] for h in weighted.history_]


@pytest.mark.parametrize("cls", CLUSTERERS, ids=lambda c: c.__name__)
def test_weights_reach_the_fit(cls, separated):
    """A fit with uneven weights is another fit (the weights are not dropped on the way)."""
    X, weights, _ = separated
    est = fast(cls, n_clusters=3)
    plain = _fit_quietly(clone(est), X)
    weighted = _fit_quietly(clone(est), X, sample_weight=weights)
    assert [h["loss"] for h in plain.history_] != [h["loss"] for h in weighted.history_]


@pytest.mark.parametrize(
    "sample_weight, error, match",
    [
        (lambda n: -np.ones(n), ValueError, r"sample_weight must be >= 0; its smallest weight is -1\.0"),
        (lambda n: np.r_[np.nan, np.ones(n - 1)], ValueError, "sample_weight must be finite"),
        (lambda n: np.r_[np.inf, np.ones(n - 1)], ValueError, "sample_weight must be finite"),
        (lambda n: np.zeros(n), ValueError, "every weight is zero"),
        (lambda n: np.ones(n + 1), ValueError, r"shape \(n_samples,\) = \((\d+),\).*got shape \((?!\1,)\d+,\)"),
        (lambda n: np.ones((n, 2)), ValueError, r"got shape \(\d+, 2\)"),
        (lambda n: np.array(["a"] * n), TypeError, "sample_weight must hold real numbers"),
        (lambda n: np.ones(n, dtype=bool), TypeError, "sample_weight must hold real numbers"),
        (lambda n: True, TypeError, "sample_weight must hold real numbers"),
        (lambda n: -2.0, ValueError, "sample_weight must be >= 0"),
        (lambda n: 0, ValueError, "every weight is zero"),
        (
            lambda n: np.r_[np.ones(2), np.zeros(n - 2)],
            ValueError,
            r"n_clusters=3 must be <= the number of rows with a positive sample_weight \(2\)",
        ),
        (  # weights that training's float32 holds as 0 beside the others count as 0
            lambda n: np.r_[np.ones(2), np.full(n - 2, 1e-50)],
            ValueError,
            r"n_clusters=3 must be <= the number of rows with a positive sample_weight \(2\); "
            r"\d+ more positive weights are below float32's range beside the largest and count as 0",
        ),
    ],
    ids=[
        "negative", "nan", "inf", "all-zero", "too-long", "2-d", "strings", "bools", "bool-scalar",
        "negative-scalar", "zero-scalar", "too-few-positive", "too-few-positive-in-float32",
    ],
)
@pytest.mark.parametrize("cls", CLUSTERERS, ids=lambda c: c.__name__)
def test_bad_weights_are_refused(cls, sample_weight, error, match, blobs):
    X, _ = blobs
    with pytest.raises(error, match=match):
        fast(cls, n_clusters=3).fit(X, sample_weight=sample_weight(len(X)))


def test_autoencoder_refuses_bad_weights(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="sample_weight must be >= 0"):
        fast_autoencoder().fit(X, sample_weight=-np.ones(len(X)))


def test_the_callers_weights_are_not_changed():
    weights = np.array([1.0, 2.0, 0.0])
    checked = check_sample_weight(weights, 3)
    checked *= 10
    np.testing.assert_array_equal(weights, [1.0, 2.0, 0.0])


def test_training_weights_have_mean_one_and_uniform_ones_are_none():
    np.testing.assert_allclose(training_weights(np.array([1.0, 2.0, 3.0])), [0.5, 1.0, 1.5])
    assert training_weights(np.full(4, 7.0)) is None
    # equal up to rounding (diff of a linspace: 1 +- 1e-14): still the unweighted fit
    assert training_weights(np.diff(np.linspace(0, 1, 121)) * 120) is None
    assert training_weights(np.array([1.0, 1.0 + 1e-6])) is not None
    assert training_weights(None) is None
    # huge finite weights: their plain mean overflows
    np.testing.assert_allclose(training_weights(np.array([1e308, 1.5e308, 0.5e308])), [1.0, 1.5, 0.5])


def _repeat(rows, counts):
    return torch.repeat_interleave(rows, torch.as_tensor(counts), dim=0)


def test_target_distribution_weights_count_rows_as_copies():
    generator = torch.Generator().manual_seed(0)
    Q = torch.softmax(torch.randn(8, 3, generator=generator, dtype=torch.float64), dim=1)
    counts = np.array([0, 1, 2, 3, 1, 0, 2, 1])
    weighted = target_distribution(Q, torch.as_tensor(counts, dtype=torch.float64))
    repeated = target_distribution(_repeat(Q, counts))
    torch.testing.assert_close(_repeat(weighted, counts), repeated)


def test_admm_cluster_updates_weights_count_rows_as_copies():
    generator = torch.Generator().manual_seed(0)
    Y = torch.randn(10, 2, generator=generator, dtype=torch.float64)
    labels = torch.tensor([0, 0, 1, 1, 1, 2, 2, 0, 1, 2])
    counts = np.array([1, 0, 3, 1, 2, 1, 1, 2, 0, 4])
    row_weights = torch.as_tensor(counts, dtype=torch.float64)
    previous = torch.zeros(3, 2, dtype=torch.float64)
    torch.testing.assert_close(
        cluster_means(Y, labels, previous, row_weights), cluster_means(_repeat(Y, counts), _repeat(labels, counts), previous)
    )
    gamma = torch.softmax(torch.randn(10, 3, generator=generator, dtype=torch.float64), dim=1)
    covariances = torch.eye(2, dtype=torch.float64).repeat(3, 1, 1)
    log_weights = torch.full((3,), -np.log(3.0), dtype=torch.float64)
    weighted = gmm_m_step(Y, gamma, previous, covariances, log_weights, row_weights)
    repeated = gmm_m_step(_repeat(Y, counts), _repeat(gamma, counts), previous, covariances, log_weights)
    for mine, theirs in zip(weighted, repeated):
        torch.testing.assert_close(mine, theirs)


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_weighted_gaussian_mixture_fits_as_sklearns_on_repeated_rows(covariance_type):
    X, _ = make_blobs(120, n_features=2, centers=3, cluster_std=[0.3, 0.6, 1.0], random_state=0)
    counts = np.random.RandomState(0).randint(0, 4, len(X))
    mine = WeightedGaussianMixture(3, covariance_type, n_init=3, random_state=0)
    labels = mine.fit_predict(X, counts.astype(float))
    theirs = GaussianMixture(3, covariance_type=covariance_type, n_init=3, random_state=0).fit(np.repeat(X, counts, axis=0))
    order = [int(np.argmin(((theirs.means_ - m) ** 2).sum(axis=1))) for m in mine.means_]
    assert sorted(order) == [0, 1, 2]
    np.testing.assert_allclose(mine.means_, theirs.means_[order], atol=1e-3)
    np.testing.assert_allclose(mine.covariances_, theirs.covariances_[order], atol=1e-3)
    np.testing.assert_allclose(mine.weights_, theirs.weights_[order], atol=1e-3)
    np.testing.assert_array_equal(np.asarray(order)[labels], theirs.predict(X))


@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_weighted_gaussian_mixture_refuses_an_ill_defined_covariance(covariance_type):
    """As sklearn's GaussianMixture: an error that says why, not NaN."""
    rng = np.random.RandomState(0)
    if covariance_type == "diag":  # a dimension of huge values: float64 loses their spread
        X = np.r_[np.c_[np.full(50, 1e9 + 0.1), rng.randn(50)], np.c_[np.full(50, 1e9 + 0.3), rng.randn(50) + 10]]
    else:  # a component on a line, at a scale where reg_covar is nothing
        t = rng.rand(50)
        X = np.r_[np.c_[t, 2 * t] * 1e6, rng.randn(50, 2) + 5e6]
    with pytest.raises(ValueError, match="ill-defined covariance"):
        WeightedGaussianMixture(2, covariance_type, random_state=0).fit_predict(X, rng.rand(100) + 0.5)


def test_inertia_and_score_are_weighted_as_kmeans(blobs):
    X, _ = blobs
    weights = np.random.RandomState(0).rand(len(X)) * 3
    est = _fit_quietly(fast(skdeepcluster.DeepKMeans, n_clusters=3), X, sample_weight=weights)
    Z = est.transform(X)
    squared = ((Z[:, None, :] - est.cluster_centers_[None]) ** 2).sum(axis=2).min(axis=1)
    np.testing.assert_allclose(est.inertia_, (weights * squared).sum())
    np.testing.assert_allclose(est.score(X, sample_weight=weights), -(weights * squared).sum())
    np.testing.assert_allclose(est.score(X), -squared.sum())


def test_deep_kmeans_reseeds_a_cluster_of_zero_weight_rows():
    """A cluster owning only rows of weight 0 is empty on the repeated rows,
    so it is re-seeded, on a row of positive weight."""
    est = skdeepcluster.DeepKMeans(n_clusters=3)
    est.module_ = torch.nn.Module()
    est.module_.centers = torch.nn.Parameter(torch.tensor([[0.0], [0.1], [10.0]]))
    Z = torch.tensor([[0.0], [0.1], [0.3], [10.0], [11.0]])
    est._fit_state = {"weights": torch.tensor([1.0, 1.0, 3.0, 0.0, 0.0])}
    est.n_reseeded_ = []
    distances = (Z - est.module_.centers.detach().T) ** 2
    labels = distances.argmin(dim=1)
    assert labels.tolist() == [0, 1, 1, 2, 2]
    est._reseed_empty(Z, distances, labels)
    # row 2, the positive-weight row farthest from its centre (row 4, of weight 0, is farther)
    assert labels.tolist() == [0, 1, 2, 2, 2] and est.n_reseeded_ == [1]
    assert est.module_.centers[2].item() == pytest.approx(0.3)


@pytest.mark.parametrize("cls", [skdeepcluster.DeepGMM, skdeepcluster.DAMIC], ids=lambda c: c.__name__)
def test_mean_scores_are_weighted_means(cls, blobs):
    X, _ = blobs
    weights = np.random.RandomState(0).rand(len(X))
    est = _fit_quietly(fast(cls, n_clusters=3), X)
    per_row = np.array([est.score(X[i : i + 1]) for i in range(len(X))])
    np.testing.assert_allclose(est.score(X), per_row.mean())
    np.testing.assert_allclose(est.score(X, sample_weight=weights), np.average(per_row, weights=weights))


def test_pipeline_routes_weights_to_the_clusterer(blobs):
    X, _ = blobs
    weights = np.random.RandomState(0).randint(0, 3, len(X)).astype(float)
    pipe = make_pipeline(MinMaxScaler(), fast(skdeepcluster.IDEC, n_clusters=3))
    _fit_quietly(pipe, X, idec__sample_weight=weights)
    direct = _fit_quietly(fast(skdeepcluster.IDEC, n_clusters=3), MinMaxScaler().fit_transform(X), sample_weight=weights)
    np.testing.assert_array_equal(pipe[-1].labels_, direct.labels_)
    np.testing.assert_array_equal(
        pipe.fit_predict(X, idec__sample_weight=weights), direct.labels_
    )


def test_weighted_pretraining_has_its_own_cache_entry(blobs, tmp_path):
    X, _ = blobs
    weights = np.random.RandomState(0).randint(1, 3, len(X)).astype(float)
    ae = fast_autoencoder(memory=tmp_path)
    assert not clone(ae).fit(X).from_cache_
    assert not clone(ae).fit(X, sample_weight=weights).from_cache_
    assert clone(ae).fit(X, sample_weight=weights).from_cache_
    # equal weights are no weights: the unweighted entry
    assert clone(ae).fit(X, sample_weight=np.full(len(X), 2.0)).from_cache_


def test_grid_search_passes_weights_to_every_fit(blobs):
    from sklearn.model_selection import GridSearchCV

    from skdeepcluster.metrics import accuracy_scorer
    from skdeepcluster.model_selection import FitAllScoreLabelled, validation_labels

    X, y = blobs
    weights = np.random.RandomState(0).randint(0, 3, len(X)).astype(float)
    y_search, _, _ = validation_labels(y, 0.2, random_state=0)
    est = fast(skdeepcluster.DeepKMeans, n_clusters=3)
    grid = [0.1, 1.0]
    search = GridSearchCV(est, {"clustering_weight": grid}, cv=FitAllScoreLabelled(), scoring=accuracy_scorer)
    _fit_quietly(search, X, y_search, sample_weight=weights)
    for weight, score in zip(grid, search.cv_results_["mean_test_score"]):
        direct = _fit_quietly(clone(est).set_params(clustering_weight=weight), X, sample_weight=weights)
        labelled = y_search >= 0
        assert score == accuracy_scorer(direct, X[labelled], y_search[labelled])
    direct = _fit_quietly(clone(est).set_params(**search.best_params_), X, sample_weight=weights)
    np.testing.assert_array_equal(search.best_estimator_.labels_, direct.labels_)


def test_label_counts_weigh_rows_as_copies():
    labels, previous = torch.tensor([0, 1, 1, 2]), torch.tensor([0, 0, 1, 1])
    weights = torch.tensor([1.0, 0.0, 3.0, 2.0])  # rows 1 and 3 changed: weight 2 of 6
    assert training.label_change(labels, previous) == 0.5
    assert training.label_change(labels, previous, weights) == pytest.approx(1 / 3)
    assert training.label_change(labels, None, weights) is None
    assert training.clusters_used(labels) == 3
    assert training.clusters_used(labels, weights) == 3
    assert training.clusters_used(labels, torch.tensor([1.0, 2.0, 0.0, 0.0])) == 2  # cluster 2 holds weight 0
    torch.testing.assert_close(
        training.cluster_weights(labels, 4, weights), torch.tensor([1.0, 3.0, 2.0, 0.0], dtype=torch.float64)
    )
    torch.testing.assert_close(training.cluster_weights(labels, 4), torch.tensor([1, 2, 1, 0]))


@pytest.mark.parametrize("weighted, stops", [(True, True), (False, False)])
def test_tol_weighs_the_changed_rows(weighted, stops):
    """A change of half the rows that carries a third of the weight stops a
    run at tol=0.4 when weighted, not when unweighted; the history and a
    final checkpoint count the same way."""
    X = torch.linspace(0, 1, 8).reshape(4, 2)
    w = torch.nn.Parameter(torch.zeros(2))
    weights = torch.tensor([1.0, 0.0, 3.0, 2.0]) if weighted else None
    scripted = [torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 1, 2])]

    def checkpoint(step):  # the same rows move at every checkpoint
        return scripted[step % 2]

    result = training.train(
        data=DeviceData(X.numpy(), "cpu"), batch_loss=lambda x, index: {"loss": (x @ w).pow(2).mean()},
        optimizer=torch.optim.SGD([w], lr=0.1), n_epochs=3, batch_size=4, generator=torch.Generator().manual_seed(0),
        sample_weight=weights, checkpoint=checkpoint, initial_labels=scripted[1], tol=0.4,
    )
    assert result.converged is stops and result.n_epochs == (1 if stops else 3)
    assert result.history[0]["delta_label"] == (pytest.approx(1 / 3) if weighted else 0.5)
    final = result.labels.clone()
    final[0] = 3  # row 0: weight 1 of 6
    result.record_final_checkpoint(final, tol=0.4)
    assert result.history[-1]["delta_label"] == (pytest.approx(1 / 6) if weighted else 0.25)


def test_a_cluster_of_zero_weight_rows_counts_as_empty():
    """Repeated rows would leave it empty: the fit warns as it would there."""
    est = skdeepcluster.IDEC(n_clusters=3)
    est.labels_ = np.array([0, 0, 1, 2])
    with pytest.warns(ConvergenceWarning, match=r"1 of 3 clusters are empty after fit \(clusters \[2\]\)"):
        est._warn_empty_clusters(np.array([1.0, 1.0, 2.0, 0.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        est._warn_empty_clusters(np.array([1.0, 1.0, 2.0, 0.5]))
        est._warn_empty_clusters()
