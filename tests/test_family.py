"""Behaviour every clustering estimator shares, run over skdeepcluster.CLUSTERERS."""

import pickle
import re
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.base import clone
from torch.overrides import TorchFunctionMode
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler

from conftest import CLUSTERERS, CUDA, Untouchable, fast, fast_autoencoder, needs_bfloat16, undocumented_attributes

pytestmark = pytest.mark.parametrize("cls", CLUSTERERS, ids=lambda c: c.__name__)


@pytest.fixture
def fitted(cls, blobs):
    X, _ = blobs
    return fast(cls, n_clusters=3).fit(X), X


def test_labels_equal_predict_on_training_data(cls, fitted):
    est, X = fitted
    np.testing.assert_array_equal(est.labels_, est.predict(X))
    assert est.labels_.dtype == np.int64
    assert set(np.unique(est.labels_)) <= set(range(3))


def test_predict_proba_rows_sum_to_one_and_argmax_is_predict(cls, fitted):
    est, X = fitted
    proba = est.predict_proba(X)
    assert proba.shape == (X.shape[0], 3)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-10)
    np.testing.assert_array_equal(proba.argmax(axis=1), est.predict(X))


def test_transform_and_feature_names(cls, fitted):
    est, X = fitted
    Z = est.transform(X)
    assert Z.shape[0] == X.shape[0] and Z.ndim == 2
    assert np.isfinite(Z).all()
    names = est.get_feature_names_out()
    assert len(names) == Z.shape[1]
    assert names[0].startswith(cls.__name__.lower())


def test_history_and_iterations(cls, fitted):
    est, _ = fitted
    assert 1 <= est.n_iter_ <= est.max_epochs
    assert len(est.history_) == est.n_iter_
    for record in est.history_:
        assert {"epoch", "loss", "delta_label", "time"} <= set(record)
        assert np.isfinite(record["loss"])


def test_learns_separated_blobs(cls, blobs):
    from sklearn.metrics import adjusted_rand_score

    X, y = blobs
    est = fast(cls, n_clusters=3).fit(MinMaxScaler().fit_transform(X))
    assert adjusted_rand_score(y, est.labels_) > 0.9


def test_a_float64_default_dtype_changes_nothing(cls, blobs):
    """Some users set torch's default dtype to float64; the networks stay
    float32, as the data are stored, drawn as in float32."""
    X = MinMaxScaler().fit_transform(blobs[0])
    expected = fast(cls, n_clusters=3).fit(X)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        est = fast(cls, n_clusters=3).fit(X)
        proba = est.predict_proba(X)
    finally:
        torch.set_default_dtype(previous)
    assert {p.dtype for p in est.module_.parameters()} == {torch.float32}
    assert [r["loss"] for r in est.history_] == [r["loss"] for r in expected.history_]
    np.testing.assert_array_equal(proba, expected.predict_proba(X))


# -- precision ------------------------------------------------------------------

#: The layers' products: what bfloat16 autocast runs in bfloat16.
_MATRIX_PRODUCTS = {
    torch.nn.functional.linear, torch.matmul, torch.mm, torch.bmm, torch.addmm, torch.baddbmm,
    torch.Tensor.__matmul__, torch.einsum,
}


class _TrainingProductDtypes(TorchFunctionMode):
    """Records the dtypes of the float32-or-lower matrix products computed
    with gradients on: those of the training steps, not of checkpoints or
    prediction (float64 products, a method's float64 state, are its own)."""

    def __init__(self):
        super().__init__()
        self.dtypes = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        output = func(*args, **(kwargs or {}))
        if func in _MATRIX_PRODUCTS and torch.is_grad_enabled() and output.dtype != torch.float64:
            self.dtypes.add(output.dtype)
        return output


def _training_product_dtypes(estimator, X):
    with _TrainingProductDtypes() as recorder:
        estimator.fit(X)
    return recorder.dtypes


@needs_bfloat16
def test_bfloat16_runs_every_training_step_in_bfloat16(cls, blobs):
    """The default pretraining, a method's own phases and the clustering
    stage; the labels as good as in float32, and float32 weights."""
    from sklearn.metrics import adjusted_rand_score

    X, y = blobs
    X = MinMaxScaler().fit_transform(X)
    est = fast(cls, n_clusters=3, autoencoder=None, precision="bfloat16")
    assert _training_product_dtypes(est, X) == {torch.bfloat16}
    assert est.autoencoder_.precision == "bfloat16"
    assert all(p.dtype != torch.bfloat16 for p in est.module_.parameters())
    assert adjusted_rand_score(y, est.labels_) > 0.9
    assert all(np.isfinite(record["loss"]) for record in est.history_)
    # the first epoch's loss near float32's: a forward on stale casts of the
    # weights (autocast's weight cache) is off by factors
    full = fast(cls, n_clusters=3, autoencoder=None).fit(X)
    assert est.history_[0]["loss"] == pytest.approx(full.history_[0]["loss"], rel=0.2)


def test_float32_trains_in_float32(cls, blobs):
    X, _ = blobs
    est = fast(cls, n_clusters=3, autoencoder=None)
    assert _training_product_dtypes(est, MinMaxScaler().fit_transform(X)) == {torch.float32}


@pytest.mark.parametrize("precision", ["float32", pytest.param("bfloat16", marks=needs_bfloat16)])
def test_fit_inside_a_users_autocast_learns_as_outside(cls, blobs, precision):
    """autocast's weight cache is cleared only by the outermost context: a
    training inside the user's would keep the first step's weights."""
    X = MinMaxScaler().fit_transform(blobs[0])
    expected = fast(cls, n_clusters=3, precision=precision).fit(X)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fast(cls, n_clusters=3, precision=precision).fit(X)
    assert [r["loss"] for r in inside.history_] == [r["loss"] for r in expected.history_]
    np.testing.assert_array_equal(inside.labels_, expected.labels_)


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_fit_inside_a_users_no_grad_learns_as_outside(cls, blobs, mode):
    X = MinMaxScaler().fit_transform(blobs[0])
    expected = fast(cls, n_clusters=3).fit(X)
    with mode():
        inside = fast(cls, n_clusters=3).fit(X)
    assert [r["loss"] for r in inside.history_] == [r["loss"] for r in expected.history_]
    np.testing.assert_array_equal(inside.labels_, expected.labels_)
    np.testing.assert_array_equal(inside.predict_proba(X), expected.predict_proba(X))


@pytest.mark.parametrize("device", ["mps", "cuda"])
def test_bfloat16_is_refused_where_it_is_not_supported(cls, blobs, device, monkeypatch):
    # as fit resolves the device, without the hardware: an MPS device, or a
    # CUDA device from before Ampere
    monkeypatch.setattr(cls, "_resolve_device", lambda self: torch.device(device))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    fitted_autoencoder = fast_autoencoder().fit(blobs[0])
    with pytest.raises(ValueError, match="precision='bfloat16'.*Use precision='float32'"):
        fast(cls, n_clusters=3, autoencoder=fitted_autoencoder, precision="bfloat16").fit(blobs[0])


def test_fitted_attributes_are_documented(cls, fitted):
    assert not undocumented_attributes(fitted[0])


def test_pickle_round_trip(cls, fitted):
    est, X = fitted
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(X), est.predict(X))
    np.testing.assert_allclose(restored.predict_proba(X), est.predict_proba(X))


def test_same_random_state_same_labels(cls, blobs):
    X, _ = blobs
    torch.manual_seed(1)  # the global generator's state must not matter
    first = fast(cls, n_clusters=3, random_state=7).fit(X)
    torch.manual_seed(2)
    second = fast(cls, n_clusters=3, random_state=7).fit(X)
    np.testing.assert_array_equal(first.labels_, second.labels_)
    np.testing.assert_allclose(first.transform(X), second.transform(X))


def test_a_fresh_random_state_instance_fits_as_its_seed(cls, blobs):
    # as in scikit-learn: RandomState(7) draws what 7 would (the default
    # autoencoder's pretraining included)
    X, _ = blobs
    recipe = fast_autoencoder(random_state=None)  # seeded by the clusterer
    from_int = fast(cls, n_clusters=3, autoencoder=recipe, random_state=7).fit(X)
    from_instance = fast(cls, n_clusters=3, autoencoder=recipe, random_state=np.random.RandomState(7)).fit(X)
    np.testing.assert_array_equal(from_int.labels_, from_instance.labels_)
    np.testing.assert_array_equal(from_int.transform(X), from_instance.transform(X))


def test_does_not_touch_global_rngs(cls, blobs):
    X, _ = blobs
    torch.manual_seed(123)
    np.random.seed(123)
    fast(cls, n_clusters=3).fit(X)
    after_torch, after_numpy = torch.rand(1).item(), np.random.rand()
    torch.manual_seed(123)
    np.random.seed(123)
    assert (torch.rand(1).item(), np.random.rand()) == (after_torch, after_numpy)


def test_pandas_input_sets_feature_names(cls, blobs):
    pd = pytest.importorskip("pandas")
    X, _ = blobs
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    est = fast(cls, n_clusters=3).fit(frame)
    np.testing.assert_array_equal(est.feature_names_in_, frame.columns)
    np.testing.assert_array_equal(est.predict(frame), est.labels_)
    np.testing.assert_array_equal(est.labels_, fast(cls, n_clusters=3).fit(X).labels_)


def test_torch_tensor_input(cls, blobs):
    # np.asarray refuses a tensor that requires grad, and numpy has no bfloat16
    X, _ = blobs
    X32 = X.astype(np.float32)
    tensor = torch.tensor(X32, requires_grad=True)
    est = fast(cls, n_clusters=3).fit(tensor, sample_weight=torch.ones(len(X), requires_grad=True))
    np.testing.assert_array_equal(est.labels_, fast(cls, n_clusters=3).fit(X32).labels_)
    np.testing.assert_array_equal(est.predict_proba(tensor), est.predict_proba(X32))
    widened = tensor.detach().bfloat16()
    np.testing.assert_array_equal(est.predict_proba(widened), est.predict_proba(widened.float().numpy()))
    # a lazily negated view has no numpy form until resolved
    negated = torch._neg_view(-torch.tensor(X32))
    np.testing.assert_array_equal(est.predict_proba(negated), est.predict_proba(X32))
    # a 0-d tensor weighs every row alike, as a float does
    np.testing.assert_array_equal(fast(cls, n_clusters=3).fit(X32, sample_weight=torch.tensor(2.5)).labels_, est.labels_)
    with pytest.raises(TypeError, match="sparse torch tensor .* pass a scipy.sparse matrix"):
        est.predict(tensor.detach().to_sparse())


def test_set_output_pandas(cls, fitted):
    pd = pytest.importorskip("pandas")
    est, X = fitted
    out = est.set_output(transform="pandas").transform(X)
    assert isinstance(out, pd.DataFrame)
    est.set_output(transform="default")


def test_sparse_input_matches_dense(cls, blobs):
    X, _ = blobs
    X = np.where(np.abs(X) < 3, 0, X).astype(np.float32)  # genuinely sparse
    dense = fast(cls, n_clusters=3).fit(X)
    for fmt in (sp.csr_matrix, sp.csc_matrix, sp.csr_array):
        sparse = fast(cls, n_clusters=3).fit(fmt(X))
        np.testing.assert_array_equal(sparse.labels_, dense.labels_)
        np.testing.assert_allclose(sparse.transform(fmt(X)), dense.transform(X), atol=1e-6)


def test_in_a_pipeline_with_clone(cls, blobs):
    X, _ = blobs
    pipe = make_pipeline(MinMaxScaler(), fast(cls, n_clusters=3))
    labels = clone(pipe).fit_predict(X)
    assert labels.shape == (X.shape[0],)


def test_memory_caches_pretraining(cls, blobs, tmp_path):
    X, _ = blobs
    first = fast(cls, n_clusters=3, memory=str(tmp_path)).fit(X)
    assert first.autoencoder_.from_cache_ is False
    second = fast(cls, n_clusters=3, memory=str(tmp_path)).fit(X)
    assert second.autoencoder_.from_cache_ is True
    np.testing.assert_array_equal(first.labels_, second.labels_)
    changed_data = fast(cls, n_clusters=3, memory=str(tmp_path)).fit(X[:-1])
    assert changed_data.autoencoder_.from_cache_ is False


def test_memory_takes_a_path_object_and_numpy_options_share_its_cache(cls, blobs, tmp_path):
    X, _ = blobs
    first = fast(cls, n_clusters=3, memory=tmp_path).fit(X)
    assert first.autoencoder_.from_cache_ is False
    # the same recipe with numpy's str, as a parameter grid array gives it
    numpy_options = fast(cls).autoencoder.set_params(optimizer=np.str_("adam"))
    second = fast(cls, n_clusters=3, memory=tmp_path, autoencoder=numpy_options).fit(X)
    assert second.autoencoder_.from_cache_ is True


def test_default_pretraining_path_is_cached(cls, blobs, tmp_path):
    X, _ = blobs
    X = MinMaxScaler().fit_transform(X)
    kwargs = dict(n_clusters=3, autoencoder=None, pretrain_epochs=3, max_epochs=1, memory=str(tmp_path))
    assert fast(cls, **kwargs).fit(X).autoencoder_.from_cache_ is False
    assert fast(cls, **kwargs).fit(X).autoencoder_.from_cache_ is True


def test_an_unseeded_cached_pretraining_warns(cls, blobs, tmp_path):
    # random_state=None draws a new seed, hence a new cache key, every fit
    X, _ = blobs
    X = MinMaxScaler().fit_transform(X)
    kwargs = dict(n_clusters=3, autoencoder=None, pretrain_epochs=2, max_epochs=1, memory=str(tmp_path))
    with pytest.warns(UserWarning, match="random_state=None draws a new seed at every fit: no pretraining is ever read"):
        fast(cls, **kwargs, random_state=None).fit(X)
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*random_state=None draws")
        fast(cls, **kwargs, random_state=0).fit(X)
        fast(cls, **kwargs, random_state=np.random.RandomState(0)).fit(X)


def test_starts_from_a_fitted_autoencoder(cls, blobs):
    X, _ = blobs
    ae = fast_autoencoder().fit(X)
    before = {k: v.clone() for k, v in ae.module_.state_dict().items()}
    est = fast(cls, n_clusters=3, autoencoder=ae).fit(X)
    assert est.autoencoder_ is ae
    for key, value in ae.module_.state_dict().items():  # the given one is not trained further
        torch.testing.assert_close(value, before[key])


def test_a_fitted_autoencoder_needs_xs_feature_names(cls, blobs):
    # as its own transform would: reordered columns are other features
    from sklearn.frozen import FrozenEstimator

    pd = pytest.importorskip("pandas")
    X, _ = blobs
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    ae = fast_autoencoder().fit(frame)
    fast(cls, n_clusters=3, autoencoder=ae).fit(frame)
    reordered = frame[frame.columns[::-1]]
    for given in (ae, FrozenEstimator(ae)):
        with pytest.raises(ValueError, match=r"column 0 is 'f\d+' in X but was 'f0' there"):
            fast(cls, n_clusters=3, autoencoder=given).fit(reordered)
    with pytest.warns(UserWarning, match="X has no feature names, but the given autoencoder was fitted with"):
        fast(cls, n_clusters=3, autoencoder=ae).fit(X)
    with pytest.warns(UserWarning, match="X has valid feature names, but the given autoencoder was fitted without"):
        fast(cls, n_clusters=3, autoencoder=fast_autoencoder().fit(X)).fit(frame)


def test_a_frozen_fitted_autoencoder_survives_clone_and_search(cls, blobs):
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import GridSearchCV

    from skdeepcluster.metrics import accuracy_scorer
    from skdeepcluster.model_selection import FitAllScoreLabelled

    X, y = blobs
    ae = fast_autoencoder().fit(X)
    est = clone(fast(cls, n_clusters=3, autoencoder=FrozenEstimator(ae))).fit(X)
    assert est.autoencoder_ is ae
    search = GridSearchCV(
        fast(cls, n_clusters=3, autoencoder=FrozenEstimator(ae)), {"tol": [0.0, 0.01]},
        cv=FitAllScoreLabelled(), scoring=accuracy_scorer,
    ).fit(X, y)
    assert search.best_estimator_.autoencoder_ is ae
    # unfrozen, clone hands the estimator an unfitted recipe that it retrains
    assert clone(fast(cls, n_clusters=3, autoencoder=ae)).fit(X).autoencoder_ is not ae


def test_a_recipe_the_given_autoencoder_overrides_warns(cls, blobs, recwarn):
    X, _ = blobs
    fast(cls, n_clusters=3, max_epochs=1).fit(X)  # the same shape as the given one
    fast(cls, n_clusters=3, max_epochs=1, hidden_dims=[32]).fit(X)  # a list of the same widths
    fast(cls, n_clusters=3, max_epochs=1, hidden_dims=np.array([32])).fit(X)  # an array of them
    assert not [w for w in recwarn if "ignored" in str(w.message)]
    with pytest.warns(UserWarning, match=r"embedding_dim=5 \(the autoencoder's: 3\) ignored") as record:
        fast(cls, n_clusters=3, max_epochs=1, embedding_dim=5).fit(X)
    (warning,) = [w for w in record if "ignored" in str(w.message)]
    assert warning.filename == __file__ and "hidden_dims" not in str(warning.message)
    # the number of pretraining epochs is the given autoencoder's too
    with pytest.warns(UserWarning, match=r"pretrain_epochs=2 \(the autoencoder's max_epochs: 15\) ignored"):
        fast(cls, n_clusters=3, max_epochs=1, pretrain_epochs=2).fit(X)


def test_a_frozen_unfitted_autoencoder_is_refused(cls, blobs):
    from sklearn.frozen import FrozenEstimator

    X, _ = blobs
    with pytest.raises(ValueError, match="must wrap a fitted AutoEncoder"):
        fast(cls, n_clusters=3, autoencoder=FrozenEstimator(fast_autoencoder())).fit(X)


def test_an_unseeded_autoencoder_recipe_takes_the_estimators_seed(cls, blobs, tmp_path):
    X, _ = blobs
    recipe = fast_autoencoder(random_state=None)
    first = fast(cls, n_clusters=3, autoencoder=recipe, random_state=0, memory=str(tmp_path)).fit(X)
    second = fast(cls, n_clusters=3, autoencoder=recipe, random_state=0, memory=str(tmp_path)).fit(X)
    assert first.autoencoder_.random_state == 0 and second.autoencoder_.from_cache_
    np.testing.assert_array_equal(first.labels_, second.labels_)
    # a recipe with its own seed keeps it
    own = fast(cls, n_clusters=3, autoencoder=fast_autoencoder(random_state=7), random_state=0).fit(X)
    assert own.autoencoder_.random_state == 7


@pytest.mark.parametrize("verbose", [1, True])
def test_verbose_shows_progress_on_stderr(cls, blobs, capsys, verbose):
    X, _ = blobs
    fast(cls, n_clusters=3, verbose=verbose).fit(X)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "pretraining" in captured.err and cls.__name__ in captured.err


# -- errors --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0], [3.0, 4.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0], [3.0, 4.0]]), "infinity"),
        (np.empty((0, 3)), "0 sample"),
        (np.ones((1, 3)), "1 sample"),
    ],
    ids=["nan", "inf", "empty", "one-sample"],
)
def test_bad_input_raises(cls, bad, match):
    with pytest.raises(ValueError, match=match):
        fast(cls, n_clusters=1).fit(bad)


def test_more_clusters_than_samples(cls):
    with pytest.raises(ValueError, match="n_clusters=5 must be <= n_samples=4"):
        fast(cls, n_clusters=5).fit(np.random.RandomState(0).rand(4, 3))


def test_empty_cluster_warning_names_only_real_parameters(cls, fitted):
    est, _ = fitted
    est.labels_ = np.zeros_like(est.labels_)
    with pytest.warns(ConvergenceWarning, match=r"2 of 3 clusters are empty after fit \(clusters \[1, 2\]\)") as record:
        est._warn_empty_clusters()
    advice = str(record[0].message).split("). ", 1)[1]
    for name in re.findall(r"(?:another|smaller) (\w+)", advice):
        assert name in est.get_params(), f"{advice!r} names {name!r}, which {cls.__name__} does not have"


@pytest.mark.parametrize("entry", ["fit", "fit_predict", "pipeline", "search"])
def test_empty_cluster_warning_points_at_the_callers_line(cls, blobs, entry, monkeypatch):
    from sklearn.model_selection import GridSearchCV

    X, _ = blobs
    est = fast(cls, n_clusters=3, max_epochs=1)
    # every row to cluster 0, in training checkpoints and in the final labels
    # (on the class: a search fits clones)
    monkeypatch.setattr(cls, "_hard_assign", lambda self, module, x: torch.zeros(x.shape[0], dtype=torch.int64, device=x.device))
    with pytest.warns(ConvergenceWarning, match="2 of 3 clusters are empty after fit") as record:
        # the user's line, not scikit-learn's or joblib's inside a pipeline or a search
        if entry == "pipeline":
            make_pipeline(FunctionTransformer(), est).fit(X)
        elif entry == "search":
            GridSearchCV(est, {"tol": [0.0]}, cv=[(np.arange(len(X)), np.arange(len(X)))], n_jobs=1).fit(X)
        else:
            getattr(est, entry)(X)
    warnings_here = [w for w in record if "empty after fit" in str(w.message)]
    assert warnings_here and all(w.filename == __file__ for w in warnings_here)


def test_wrong_feature_count_at_predict(cls, fitted):
    est, X = fitted
    for method in ("predict", "predict_proba", "transform", "score"):
        with pytest.raises(ValueError, match="features"):
            getattr(est, method)(X[:, :-1])


@pytest.mark.parametrize(
    "params, match",
    [
        ({"batch_size": 0}, "'batch_size' parameter .* must be an int >= 1; got 0"),
        ({"max_epochs": -1}, "'max_epochs' parameter .* must be an int >= 0"),
        ({"pretrain_epochs": 2.5}, "'pretrain_epochs' parameter"),
        ({"learning_rate": 0.0}, "'learning_rate' parameter .* > 0"),
        ({"n_clusters": 0}, "'n_clusters' parameter"),
        ({"hidden_dims": (32, 0)}, "'hidden_dims' parameter"),
        ({"precision": "float16"}, "'precision' parameter .* 'float32', 'bfloat16'"),
        # a fraction of the labels: above 1 every check would stop the training
        ({"tol": 2.0}, "'tol' parameter .* must be a float >= 0 and <= 1; got 2.0"),
        ({"device": "tpu"}, "device must be"),
        ({"device": 3}, "device must be"),
        ({"learning_rate": 1e39}, "'learning_rate' parameter .* at most 3.4e\\+38"),
        ({"embedding_dim": 2**40}, "'embedding_dim' parameter"),
        ({"hidden_dims": (10**30,)}, "'hidden_dims' parameter"),
        # checked although the given autoencoder leaves nothing to cache
        ({"memory": 123}, "'memory' parameter"),
        # the bounds, not float32's range, are what it breaks
        ({"learning_rate": -1e39}, "'learning_rate' parameter .* must be a float > 0"),
        # refused before numpy's own messages; a bool is no seed
        ({"random_state": -1}, r"'random_state' parameter .* an int in \[0, 2\*\*32 - 1\]"),
        ({"random_state": 2**32}, "'random_state' parameter"),
        ({"random_state": True}, "'random_state' parameter"),
        ({"random_state": "0"}, "'random_state' parameter"),
        ({"random_state": np.random.default_rng(0)}, "numpy.random.Generator is not one"),
    ],
)
def test_bad_parameters_raise(cls, blobs, params, match):
    X, _ = blobs
    with pytest.raises(ValueError, match=match):
        fast(cls, **{"n_clusters": 3, **params}).fit(X)


def test_prediction_reads_the_fit_not_later_training_parameters(cls, fitted):
    est, X = fitted
    expected = est.predict_proba(X)
    # invalid, but only for a next fit (as in an estimator pickled by a
    # version with looser rules)
    est.set_params(batch_size=0, hidden_dims=None, memory=123)
    np.testing.assert_array_equal(est.predict_proba(X), expected)
    for method in ("predict", "transform", "score"):
        getattr(est, method)(X)
    with pytest.raises(ValueError, match="'(batch_size|hidden_dims|memory)' parameter"):
        est.fit(X)


def test_prediction_reads_only_its_own_parameters(cls, fitted):
    """A parameter that prediction needs is frozen into a fitted attribute
    (or listed in ``_prediction_parameters``, as DAMIC's ``decision``): with
    every other parameter unusable, prediction gives the same result."""
    est, X = fitted
    expected = est.predict_proba(X)
    est.set_params(**{
        name: Untouchable(name) for name in est.get_params(deep=False) if name not in cls._prediction_parameters
    })
    np.testing.assert_array_equal(est.predict_proba(X), expected)
    for method in ("predict", "transform", "score"):
        getattr(est, method)(X)


def test_every_parameter_has_a_rule(cls):
    """``fit`` checks only the parameters ``_parameter_rules`` names; one
    missing there would reach the training code unchecked."""
    assert set(cls._parameter_rules) == set(cls().get_params(deep=False)), (
        f"{cls.__name__}._parameter_rules must have one rule for each parameter of __init__"
    )


def test_one_row_batches_with_a_batch_norm_autoencoder(cls, blobs):
    X, _ = blobs
    X = MinMaxScaler().fit_transform(X[:60])
    autoencoder = fast(cls).autoencoder.set_params(batch_norm=True).fit(X)
    est = fast(cls, n_clusters=3, batch_size=1, max_epochs=1, autoencoder=autoencoder).fit(X)
    assert np.isfinite(est.predict_proba(X)).all()


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is present here")
def test_absent_cuda_is_a_clear_error(cls, blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="CUDA is not available"):
        fast(cls, n_clusters=3, device="cuda").fit(X)


def test_values_beyond_float32_are_refused(cls, blobs):
    X, _ = blobs
    huge = X.astype(np.float64)
    huge[0, 0] = 1e39  # finite in float64, inf in the float32 the input is stored in
    with pytest.raises(ValueError, match="beyond float32"):
        fast(cls, n_clusters=3).fit(huge)
    est = fast(cls, n_clusters=3).fit(X)
    for method in (est.predict, est.predict_proba, est.transform):
        with pytest.raises(ValueError, match="beyond float32"):
            method(huge[:3])
    # two finite entries at one place of a COO matrix add up beyond it
    duplicated = sp.coo_matrix(([3e38, 3e38], ([0, 0], [0, 0])), shape=(3, X.shape[1]))
    with pytest.raises(ValueError, match="beyond float32"):
        est.predict(duplicated)


def test_non_finite_probabilities_after_fit_raise(cls, blobs, monkeypatch):
    X, _ = blobs
    soft_assign = cls._soft_assign

    def overflowing(self, module, x):
        return soft_assign(self, module, x) * float("inf")  # as an overflowed embedding gives

    est = fast(cls, n_clusters=3).fit(X)
    monkeypatch.setattr(cls, "_soft_assign", overflowing)
    with pytest.raises(FloatingPointError, match="inf or NaN cluster probabilities"):
        est.fit(X)
    # nothing of the failed fit, nor of the earlier one, is left to predict with
    monkeypatch.undo()
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_a_refit_refused_for_its_input_or_parameters_leaves_the_estimator_unfitted(cls, blobs):
    X, _ = blobs
    est = fast(cls, n_clusters=3).fit(X)
    with pytest.raises(ValueError, match="n_clusters=3 must be <= n_samples=2"):
        est.fit(X[:2])
    with pytest.raises(NotFittedError):
        est.predict(X)
    # a refused parameter too: no fit is left that the parameters no longer describe
    est.fit(X)
    with pytest.raises(ValueError, match="'batch_size' parameter"):
        est.set_params(batch_size=0).fit(X)
    with pytest.raises(NotFittedError):
        est.predict(X)


def test_autoencoder_of_wrong_type(cls, blobs):
    X, _ = blobs
    with pytest.raises(TypeError, match="autoencoder must be"):
        fast(cls, n_clusters=3, autoencoder="pretrained").fit(X)


def test_diverging_loss_stops_with_a_clear_error(cls, blobs):
    X, _ = blobs
    with pytest.raises(FloatingPointError, match="diverged"):
        fast(cls, n_clusters=3, learning_rate=1e12).fit(X * 1e3)


def test_diverging_pretraining_names_the_recipe_that_diverged(cls, blobs):
    # the default pretraining's recipe (SGD at 1.0), given, on data far from [0, 1]
    X = blobs[0] * 100
    recipe = fast_autoencoder(optimizer="sgd", learning_rate=None)
    est = fast(cls, n_clusters=3, autoencoder=recipe)
    with pytest.raises(FloatingPointError, match=r"epoch \d+ of 15: training diverged") as error:
        est.fit(X)
    message = str(error.value)
    assert message.startswith(f"{cls.__name__}: The pretraining loss part")
    assert "recipe (optimizer='sgd', learning_rate=1.0)" in message
    assert f"{cls.__name__}'s learning_rate={est.learning_rate} does not set it." in message
    assert "MaxAbsScaler for sparse input" in message and "AutoEncoder(optimizer='adam')" in message
    assert "Lower learning_rate" not in message  # the clusterer's learning rate would not help
    # an Adam recipe that diverges is not told to use Adam
    with pytest.raises(FloatingPointError, match=r"Lower the AutoEncoder's learning_rate") as error:
        fast(cls, n_clusters=3, autoencoder=fast_autoencoder(learning_rate=1e6)).fit(X)
    assert "optimizer='adam') for standardised" not in str(error.value)


# -- GPU ----------------------------------------------------------------------------


@CUDA
def test_cuda_fit_predict_and_cpu_pickle(cls, blobs):
    X, _ = blobs
    est = fast(cls, n_clusters=3, device="cuda", autoencoder=None).fit(MinMaxScaler().fit_transform(X))
    assert est.device_.type == "cuda"
    np.testing.assert_array_equal(est.labels_, est.predict(MinMaxScaler().fit_transform(X)))
    state = est.__getstate__()
    tensors = [v for v in state.values() if isinstance(v, (torch.Tensor, torch.nn.Module))]
    for value in tensors:
        params = value.parameters() if isinstance(value, torch.nn.Module) else [value]
        assert all(p.device.type == "cpu" for p in params)
    restored = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(restored.predict(MinMaxScaler().fit_transform(X)), est.labels_)
