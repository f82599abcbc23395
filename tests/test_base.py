"""Shared machinery: devices, parameter rules, data batches, the training loop."""

import contextlib
import sys
from fractions import Fraction
from pathlib import Path

import joblib
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from skdeepcluster._core.autoencoder import reconstruction_loss
from skdeepcluster._core.cache import cached_call, note_computation
from skdeepcluster._core.data import DeviceData
import skdeepcluster._autoencoder as autoencoder_module
import skdeepcluster._core.device as device_module
import skdeepcluster._core.training as training_module
import skdeepcluster.base as base_module
from skdeepcluster import CLUSTERERS, AutoEncoder
from skdeepcluster._core.device import as_current_device, float64_device, forward_in_precision, resolve_device, seeded
from skdeepcluster._core.params import AnyOf, CacheLocation, Integer, LayerSizes, Options, Real
from skdeepcluster._core.training import _weighted_means, batch_bounds, train

from conftest import fast, fast_autoencoder


def test_resolve_device():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    # torch's own spellings of the CPU with an index, which it ignores
    for cpu in ("cpu:0", " CPU:0 ", torch.device("cpu", 0), torch.device("cpu:1")):
        assert resolve_device(cpu) == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else None
    if expected is None:
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
    else:
        assert resolve_device("auto").type == "cuda"
        with pytest.raises(ValueError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    for bad in ("gpu", "cuda:x", "cpu:x", "cpu:", None, 0):
        with pytest.raises(ValueError, match="device must be"):
            resolve_device(bad)


def test_float64_device_falls_back_to_the_cpu():
    if not torch.cuda.is_available():
        assert float64_device("cuda:0") == torch.device("cpu")
    assert float64_device("cpu") == torch.device("cpu")
    assert float64_device("mps") == torch.device("cpu")  # MPS has no float64


def test_float64_device_drops_a_missing_cuda_index(monkeypatch):
    # a model unpickled on a machine with fewer GPUs than the one it was fitted on
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert float64_device("cuda:0") == torch.device("cuda:0")
    assert float64_device("cuda") == torch.device("cuda")
    assert float64_device("cuda:1") == torch.device("cpu")


def test_as_current_device_selects_only_an_indexed_cuda_device():
    context = as_current_device("cuda:1")
    assert isinstance(context, torch.cuda.device) and context.idx == 1
    for device in ("cpu", "cuda", torch.device("cpu")):
        assert isinstance(as_current_device(device), contextlib.nullcontext)


def test_pretraining_runs_inside_the_fitted_device_context(monkeypatch):
    # the cached pretraining gets only the device type ("cuda"), which means
    # the current CUDA device; the context makes that the requested index
    events = []

    @contextlib.contextmanager
    def recording_context(device):
        events.append(("enter", torch.device(device)))
        yield
        events.append(("exit",))

    real_train = autoencoder_module._train_autoencoder

    def recording_train(**kwargs):
        events.append(("train", kwargs["device_type"]))
        return real_train(**kwargs)

    monkeypatch.setattr(autoencoder_module, "as_current_device", recording_context)
    monkeypatch.setattr(autoencoder_module, "_train_autoencoder", recording_train)
    X = np.random.RandomState(0).rand(40, 5)
    ae = fast_autoencoder(max_epochs=2).fit(X)
    assert events == [("enter", ae.device_), ("train", ae.device_.type), ("exit",)]


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_pretraining_runs_on_the_requested_cuda_index(monkeypatch):
    current_devices = []
    real_train = autoencoder_module._train_autoencoder

    def recording_train(**kwargs):
        current_devices.append(torch.cuda.current_device())
        state, history = real_train(**kwargs)
        current_devices.append(torch.cuda.current_device())
        return state, history

    monkeypatch.setattr(autoencoder_module, "_train_autoencoder", recording_train)
    X = np.random.RandomState(0).rand(200, 20).astype(np.float32)
    ae = fast_autoencoder(device="cuda:1").fit(X)
    assert current_devices == [1, 1]
    assert next(ae.module_.parameters()).device == torch.device("cuda:1")


@pytest.fixture
def mps_present(monkeypatch):
    """Pretend that Apple's MPS backend is available (this machine has none)."""
    monkeypatch.setattr(device_module, "_mps_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_never_picks_mps(mps_present):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("mps") == torch.device("mps")


@pytest.mark.parametrize("cls", [AutoEncoder, *CLUSTERERS], ids=lambda c: c.__name__)
def test_mps_is_refused_only_where_training_needs_float64(cls, mps_present):
    estimator = cls(device="mps")
    if cls._float64_training:
        with pytest.raises(ValueError, match="float64.*MPS.*device='cpu'"):
            estimator._resolve_device()
    else:
        assert estimator._resolve_device() == torch.device("mps")
    # whichever device trains, inference (float64) runs on the CPU
    estimator.device_ = torch.device("mps")
    assert estimator._inference_device() == torch.device("cpu")


def test_every_clusterer_defined_is_listed_exported_and_documented():
    """A new method file whose class misses its import line in __init__.py,
    or its line in doc/api.rst, fails here."""
    import importlib
    import inspect
    import pkgutil
    from pathlib import Path

    import skdeepcluster

    defined = set()
    for info in pkgutil.iter_modules(skdeepcluster.__path__):
        if not info.ispkg:
            module = importlib.import_module(f"skdeepcluster.{info.name}")
            defined |= {
                obj
                for obj in vars(module).values()
                if inspect.isclass(obj)
                and issubclass(obj, base_module.BaseDeepClusterer)
                and obj is not base_module.BaseDeepClusterer
                and obj.__module__ == module.__name__
                and not obj.__name__.startswith("_")
            }
    assert {"DeepKMeans", "IDEC", "DEC", "DAMIC", "ADMMCluster", "DeepGMM"} <= {cls.__name__ for cls in defined}
    unexported = sorted(cls.__name__ for cls in defined - set(CLUSTERERS))
    assert not unexported, f"import {unexported} in skdeepcluster/__init__.py"
    assert defined == set(CLUSTERERS)
    names = {cls.__name__ for cls in CLUSTERERS}
    assert names <= set(skdeepcluster.__all__)
    assert all(getattr(skdeepcluster, name) in CLUSTERERS for name in names)
    api = Path(__file__).resolve().parents[1] / "doc" / "api.rst"
    listed = {line.strip() for line in api.read_text().splitlines()}
    undocumented = sorted(set(skdeepcluster.__all__) - {"CLUSTERERS", "__version__"} - listed)
    assert not undocumented, f"list {undocumented} in doc/api.rst"


def test_seeded_restores_the_global_generator():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    with seeded(0):
        inside = torch.rand(3)
    with seeded(0):
        assert torch.equal(torch.rand(3), inside)
    assert torch.equal(torch.rand(3), expected)


def test_fits_in_threads_keep_their_seeds():
    """Threads share torch's global generator, which seeded() reseeds and
    restores around a network's construction: without a lock, another
    thread's seeding lands in the middle and the same seed builds other weights."""
    from concurrent.futures import ThreadPoolExecutor

    X = np.random.RandomState(0).rand(30, 20)

    def weights(seed):
        ae = AutoEncoder(hidden_dims=(256, 256), embedding_dim=3, max_epochs=0, device="cpu", random_state=seed)
        return ae.fit(X).transform(X)

    expected = {seed: weights(seed) for seed in range(4)}
    seeds = [seed % 4 for seed in range(48)]
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(weights, seeds))
    differing = [seed for seed, result in zip(seeds, results) if not np.array_equal(result, expected[seed])]
    assert not differing


@pytest.mark.parametrize(
    "rule, good, bad",
    [
        (Integer(low=1), [1, np.int64(3)], [0, 1.5, True, None, "2"]),
        (
            Real(low=0, low_open=True),
            [0.1, 3, np.float32(0.5), 3e38, 10**30],
            [0, -1, float("nan"), float("inf"), True, Fraction(1, 3), np.array([0.1, 0.2])],
        ),
        # numpy's str and bool, as a parameter grid built from an array gives them
        (Options("a", None, True), ["a", None, np.str_("a"), True, np.True_], ["b", 0, 1, np.array(["a", "b"])]),
        (
            LayerSizes(),
            [(), (3, 4), [5], np.array([3, 4]), np.arange(1, 3, dtype=np.int32)],
            [(0,), 3, ("a",), (2**31,), (10**30,), np.array([3.0]), np.array([[3, 4]]), np.array([0, 3])],
        ),
        (base_module.VERBOSE_RULE, [0, 2, True, False, np.True_, np.int64(1), 10**30], [-1, 0.5, None, "1"]),
        (CacheLocation(), [None, "/tmp/cache", Path("/tmp/cache"), joblib.Memory(None)], [123, b"/tmp", True]),
    ],
)
def test_parameter_rules(rule, good, bad):
    """Bad values, whatever their type, are refused by a ValueError naming
    the parameter, never by an error from comparing them."""
    for value in good:
        assert rule.accepts(value), value
    for value in bad:
        assert not rule.accepts(value), value
        with pytest.raises(ValueError, match="'p' parameter of Est must be"):
            rule.check("Est", "p", value)


@pytest.mark.parametrize("value", [1e39, 10**400])
@pytest.mark.parametrize("rule", [Real(low=0), AnyOf(Real(low=0), Options("auto"))])
def test_a_float_beyond_float32_is_refused_with_the_reason(rule, value):
    with pytest.raises(ValueError, match="'p' parameter of Est must be at most 3.4e\\+38 in magnitude"):
        rule.check("Est", "p", value)


def test_a_float_out_of_bounds_is_refused_for_its_bounds_whatever_its_size():
    with pytest.raises(ValueError, match=r"must be a float >= 0 and < 1; got 1e\+39"):
        Real(low=0, high=1, high_open=True).check("Est", "p", 1e39)
    with pytest.raises(ValueError, match="must be a float > 0; got -1e\\+39"):
        Real(low=0, low_open=True).check("Est", "p", -1e39)
    # a value compared in Python floats only
    Real(low=0, float32=False).check("Est", "tol", 1e39)


@pytest.mark.parametrize("fmt", ["csr", "csc"])
def test_stored_values_sum_the_duplicates_of_any_sparse_format(fmt):
    matrix = getattr(sp, f"{fmt}_matrix")
    X = matrix((np.array([0.6, 0.6, 0.5]), np.array([0, 0, 1]), np.array([0, 2, 3])), shape=(2, 2))
    assert base_module.stored_values(X).max() == pytest.approx(1.2)
    assert X.nnz == 3  # the caller's matrix is left as it was
    with pytest.raises(ValueError, match=r"X spans \[0, 1.2\]"):
        base_module.check_unit_interval(X, "this", "that")


def test_the_unit_interval_message_gives_xs_own_range():
    # zeros count only where a sparse matrix holds them implicitly
    with pytest.raises(ValueError, match=r"X spans \[100, 101\]"):
        base_module.check_unit_interval(np.array([[100.0, 101.0]]), "this", "that")
    with pytest.raises(ValueError, match=r"X spans \[100, 101\]"):
        base_module.check_unit_interval(sp.csr_matrix([[100.0, 101.0]]), "this", "that")
    with pytest.raises(ValueError, match=r"X spans \[0, 101\]"):
        base_module.check_unit_interval(sp.csr_matrix([[0.0, 101.0]]), "this", "that")


def test_the_unit_interval_advice_names_a_scaler_that_takes_the_input():
    from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler

    counts = np.array([[0.0, 4.0], [2.0, 0.0]])
    for X, scaler in [(counts, MinMaxScaler), (sp.csr_matrix(counts), MaxAbsScaler)]:
        with pytest.raises(ValueError, match=rf"sklearn\.preprocessing\.{scaler.__name__}\b") as error:
            base_module.check_unit_interval(X, "this", "that")
        assert "MinMaxScaler" not in str(error.value) or not sp.issparse(X)
        base_module.check_unit_interval(scaler().fit_transform(X), "this", "that")  # the advice works


@pytest.mark.parametrize(
    "n_samples, batch_size, expected",
    [
        (1797, 256, [0, 256, 512, 768, 1024, 1280, 1536, 1797]),  # digits: the 5-row tail joins
        (5000, 256, list(range(0, 5000, 256)) + [5000]),  # MNIST-5k: a 136-row tail, over half, stays
        (4000, 256, list(range(0, 4000, 256)) + [4000]),  # 160 rows stay
        (19, 8, [0, 8, 19]),  # a 3-row tail joins
        (20, 8, [0, 8, 16, 20]),  # exactly half a batch stays
        (5, 1, [0, 1, 2, 3, 5]),  # batch_size=1: only the last row pairs up
        (3, 256, [0, 3]),
    ],
)
def test_batch_bounds_join_a_tail_under_half_a_batch(n_samples, batch_size, expected):
    assert batch_bounds(n_samples, batch_size) == expected


def test_sparse_batches_match_dense():
    rng = np.random.RandomState(0)
    X = rng.rand(50, 7) * (rng.rand(50, 7) > 0.6)
    dense, sparse = DeviceData(X, "cpu"), DeviceData(sp.csr_matrix(X), "cpu")
    index = torch.tensor([3, 0, 49, 7])
    torch.testing.assert_close(dense.rows(index), sparse.rows(index))
    torch.testing.assert_close(torch.cat(list(sparse.chunks(16))), dense.slice(0, 50))


def test_chunks_of_wide_data_hold_fewer_rows(monkeypatch, blobs):
    import skdeepcluster._core.data as data_module

    X = sp.random(50, 40, density=0.1, format="csr", random_state=0)
    monkeypatch.setattr(data_module, "MAX_CHUNK_ENTRIES", 400)  # 10 rows of 40 features
    chunks = list(DeviceData(X, "cpu").chunks(16))
    assert [len(c) for c in chunks] == [10] * 5
    torch.testing.assert_close(torch.cat(chunks), DeviceData(X.toarray(), "cpu").slice(0, 50))
    # prediction does not depend on the chunking
    Xb, _ = blobs
    est = fast(CLUSTERERS[0], n_clusters=3).fit(Xb)
    monkeypatch.setattr(data_module, "MAX_CHUNK_ENTRIES", 10 * Xb.shape[1])
    chunked = est.predict_proba(Xb)
    monkeypatch.undo()
    np.testing.assert_allclose(chunked, est.predict_proba(Xb), rtol=0, atol=1e-12)


@pytest.mark.parametrize("resident", [True, False])
def test_device_data_copies_read_only_input(resident):
    X = np.ones((4, 2))
    X.setflags(write=False)
    data = DeviceData(X, "cpu", resident=resident)
    data.rows(torch.tensor([0]))[:] = 5  # must not touch X
    data.slice(0, 2)[:] = 5
    assert np.all(X == 1)


def test_non_resident_data_serves_the_same_batches_without_a_whole_copy():
    X = np.random.RandomState(0).rand(50, 7)  # float64: rounded to float32 as training stores it
    resident = DeviceData(X, "cpu", dtype=torch.float64)
    streamed = DeviceData(X, "cpu", dtype=torch.float64, resident=False)
    assert streamed._dense is None and streamed._host is X
    index = torch.tensor([3, 0, 49, 7])
    assert torch.equal(streamed.rows(index), resident.rows(index))
    assert torch.equal(torch.cat(list(streamed.chunks(16))), resident.slice(0, 50))


def test_prediction_does_not_copy_the_whole_input(blobs, monkeypatch):
    """One inference pass: each chunk is copied (to float64, to the device)
    on its own, not the whole of X at once."""
    built = []

    class RecordingDeviceData(DeviceData):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            built.append(kwargs.get("resident", True))

    est = fast(CLUSTERERS[0], n_clusters=3).fit(blobs[0])
    monkeypatch.setattr(base_module, "DeviceData", RecordingDeviceData)
    expected = est.predict_proba(blobs[0])
    assert built == [False]
    monkeypatch.undo()
    np.testing.assert_array_equal(est.predict_proba(blobs[0]), expected)


def _linear_problem():
    torch.manual_seed(0)
    X = torch.randn(64, 3)
    w = torch.nn.Parameter(torch.zeros(3))
    target = X @ torch.tensor([1.0, -2.0, 0.5])
    data = DeviceData(X.numpy(), "cpu")

    def batch_loss(x, index):
        return {"loss": ((x @ w - target[index]) ** 2).mean()}

    return data, w, batch_loss


def test_train_loop_minimises_and_records_history():
    data, w, batch_loss = _linear_problem()
    result = train(
        data=data, batch_loss=batch_loss, optimizer=torch.optim.SGD([w], lr=0.1),
        n_epochs=30, batch_size=16, generator=torch.Generator().manual_seed(0),
    )
    assert result.n_epochs == 30 and result.n_steps == 30 * 4
    assert result.history[-1]["loss"] < 1e-3 < result.history[0]["loss"]
    torch.testing.assert_close(w.detach(), torch.tensor([1.0, -2.0, 0.5]), atol=1e-2, rtol=0)


def test_epoch_means_weight_each_batch_by_its_size():
    losses = [torch.tensor(2.0), torch.tensor(4.0), torch.tensor(10.0)]
    scale = [torch.tensor(1.0, dtype=torch.float64)] * 3  # a part of another dtype
    means = _weighted_means({"loss": losses, "scale": scale}, [16, 16, 2])
    assert means["loss"] == pytest.approx((2 * 16 + 4 * 16 + 10 * 2) / 34)
    assert means["scale"] == pytest.approx(1.0)
    assert _weighted_means({}, []) == {}


def test_train_loop_checkpoints_and_tol():
    data, w, batch_loss = _linear_problem()
    calls = []

    def checkpoint(step):
        calls.append(step)
        return torch.zeros(len(data), dtype=torch.long)  # labels never change

    result = train(
        data=data, batch_loss=batch_loss, optimizer=torch.optim.SGD([w], lr=0.1),
        n_epochs=10, batch_size=16, generator=torch.Generator().manual_seed(0),
        checkpoint=checkpoint, checkpoint_interval=3, tol=0.001,
        initial_labels=torch.zeros(len(data), dtype=torch.long),
    )
    # step 0 never stops (as in IDEC); step 3 sees no change and stops
    assert calls == [0, 3] and result.converged and result.n_steps == 3


@pytest.mark.parametrize("n_final_changes, converged", [(1, True), (8, False)])
def test_an_update_after_the_last_epoch_is_recorded_as_its_checkpoint(n_final_changes, converged):
    data, w, batch_loss = _linear_problem()
    n = len(data)

    def checkpoint(step):
        # half of the labels move at every epoch's checkpoint: tol never stops
        return ((torch.arange(n) + step // 4) % 4 == 0).long()

    initial = torch.full((n,), 2, dtype=torch.long)
    result = train(
        data=data, batch_loss=batch_loss, optimizer=torch.optim.SGD([w], lr=0.1),
        n_epochs=3, batch_size=16, generator=torch.Generator().manual_seed(0),
        checkpoint=checkpoint, initial_labels=initial, tol=0.05,
    )
    assert not result.converged and result.n_epochs == 3
    assert torch.equal(result.labels, checkpoint(2 * 4))  # epoch 2's checkpoint
    final = result.labels.clone()
    final[:n_final_changes] = 3
    before = dict(result.history[-2])
    result.record_final_checkpoint(final, tol=0.05)
    assert result.history[-1]["delta_label"] == n_final_changes / n
    assert result.history[-1]["n_clusters_used"] == 3
    assert result.history[-2] == before and result.converged is converged
    assert result.labels is final


@pytest.mark.parametrize(
    "learning_rate, n_epochs, batch_size, match",
    [
        (1e6, 20, 16, "loss part 'loss' became"),
        # one step: its loss (measured before the update) is finite, the update is not
        (2e38, 1, 64, "parameters became inf or NaN"),
    ],
)
def test_train_loop_raises_on_divergence(learning_rate, n_epochs, batch_size, match):
    data, w, batch_loss = _linear_problem()
    with pytest.raises(FloatingPointError, match=match):
        train(
            data=data, batch_loss=batch_loss, optimizer=torch.optim.SGD([w], lr=learning_rate),
            n_epochs=n_epochs, batch_size=batch_size, generator=torch.Generator().manual_seed(0),
        )


@pytest.mark.parametrize("loss", ["bce", "mse"])
def test_nan_outputs_reach_the_reconstruction_loss(loss):
    # torch's binary_cross_entropy raises on NaN input (on CUDA through a
    # device-side assert); ours passes it to the loss, where the loop reports it
    x_hat = torch.tensor([[0.2, float("nan")], [0.5, 0.9]])
    assert torch.isnan(reconstruction_loss(x_hat, torch.rand(2, 2), loss))


def test_reconstruction_loss_is_torchs_binary_cross_entropy():
    torch.manual_seed(0)
    x_hat, x = torch.rand(64, 10), torch.rand(64, 10)
    x_hat[0, 0], x_hat[1, 1] = 0.0, 1.0  # clamped, as before
    expected = torch.nn.functional.binary_cross_entropy(x_hat.clamp(1e-7, 1 - 1e-7), x)
    torch.testing.assert_close(reconstruction_loss(x_hat, x, "bce"), expected)


def _square(value):
    note_computation()  # as cached_call's contract asks
    return value * value


def test_cached_call(tmp_path):
    assert cached_call(None, _square, value=3) == (9, False)
    assert cached_call(str(tmp_path), _square, value=3) == (9, False)
    assert cached_call(str(tmp_path), _square, value=3) == (9, True)


def test_cached_call_reads_a_read_only_cache(tmp_path, monkeypatch):
    """A cache filled once and shared read-only: its lock file cannot be
    opened for writing, but flock needs no write access; a new entry, whose
    lock file cannot be created, is computed without the lock."""
    import skdeepcluster._core.cache as cache_module

    assert cached_call(str(tmp_path), _square, value=3) == (9, False)

    def read_only_open(path, mode="r", *args, **kwargs):
        if any(flag in mode for flag in "aw+x"):
            raise PermissionError(13, "Permission denied", path)
        return open(path, mode, *args, **kwargs)

    monkeypatch.setattr(cache_module, "open", read_only_open, raising=False)
    locks = []
    real_flock = cache_module.fcntl.flock
    monkeypatch.setattr(cache_module.fcntl, "flock", lambda handle, kind: locks.append(kind) or real_flock(handle, kind))
    assert cached_call(str(tmp_path), _square, value=3) == (9, True)
    assert locks[0] == cache_module.fcntl.LOCK_SH  # read-only: a shared lock (NFS refuses an exclusive one)
    assert cached_call(str(tmp_path), _square, value=4) == (16, False)


def test_cached_call_runs_unlocked_where_flock_fails(tmp_path, monkeypatch):
    import skdeepcluster._core.cache as cache_module

    def no_flock(handle, kind):
        raise OSError(9, "Bad file descriptor")

    monkeypatch.setattr(cache_module.fcntl, "flock", no_flock)
    assert cached_call(str(tmp_path), _square, value=3) == (9, False)
    assert cached_call(str(tmp_path), _square, value=3) == (9, True)


def test_tol_stop_at_an_epoch_boundary_records_no_empty_epoch():
    data, w, batch_loss = _linear_problem()
    labels = torch.zeros(len(data), dtype=torch.long)
    result = train(
        data=data, batch_loss=batch_loss, optimizer=torch.optim.SGD([w], lr=0.1),
        n_epochs=10, batch_size=16, generator=torch.Generator().manual_seed(0),
        checkpoint=lambda step: labels, initial_labels=labels, tol=0.001,
    )
    # the checkpoint before epoch 1's first step stops the run
    assert result.converged and result.n_epochs == 1 and result.n_steps == 4
    assert len(result.history) == 1
    assert result.history[0]["delta_label"] == 0.0 and "loss" in result.history[0]


class _Float64Spy(TorchDispatchMode):
    """Records every torch operation that returns a float64 tensor."""

    def __init__(self):
        super().__init__()
        self.paused = False
        self.operations = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.paused and any(
            isinstance(t, torch.Tensor) and t.dtype == torch.float64 for t in tree_leaves(out)
        ):
            self.operations.add(str(func))
        return out


@pytest.mark.parametrize("cls", [AutoEncoder, *CLUSTERERS], ids=lambda c: c.__name__)
def test_training_loops_of_mps_capable_estimators_stay_in_float32(cls, monkeypatch):
    # MPS has no float64: the mini-batch loops of the estimators that accept
    # device="mps" must not make a float64 tensor. The epoch summary may: it
    # moves its numbers to the CPU first (``_weighted_means``).
    spy = _Float64Spy()

    def paused(function):
        def run(*args, **kwargs):
            spy.paused, before = True, spy.paused
            try:
                return function(*args, **kwargs)
            finally:
                spy.paused = before

        return run

    def spied(function):
        def run(*args, **kwargs):
            with spy:
                return function(*args, **kwargs)

        return run

    monkeypatch.setattr(training_module, "_weighted_means", paused(training_module._weighted_means))
    # every module of the package that imports the loop, a new method's too
    loop = training_module.train
    patched = set()
    for name, module in list(sys.modules.items()):
        if name.startswith("skdeepcluster.") and module is not training_module and getattr(module, "train", None) is loop:
            monkeypatch.setattr(module, "train", spied(loop))
            patched.add(name)
    assert {"skdeepcluster.base", "skdeepcluster._autoencoder", "skdeepcluster._damic"} <= patched
    X = np.random.RandomState(0).rand(40, 6).astype(np.float32)
    estimator = fast_autoencoder() if cls is AutoEncoder else fast(cls, n_clusters=2)
    estimator.fit(X)
    if cls._float64_training:
        assert spy.operations, "flagged as keeping float64 state, but its training loop makes none"
    else:
        assert not spy.operations


def test_forward_in_precision_gives_float32_outputs_to_the_losses():
    """A linear layer's bfloat16 output would reach the loss as is: a
    cross-entropy's clamp to 1 - 1e-7 rounds to 1 there, and ops on it alone
    (a log-softmax, a sum of squares) stay in bfloat16."""

    class TwoOutputs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 2)

        def forward(self, x):
            h = self.layer(x)
            return h, h.sum(dim=1)

    network = TwoOutputs()
    x = torch.rand(5, 3)
    outputs = forward_in_precision(network, x, "bfloat16", "cpu")
    assert [o.dtype for o in outputs] == [torch.float32, torch.float32]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert network(x)[0].dtype == torch.bfloat16  # what it would be without
    assert forward_in_precision(network.layer, x, "float32", "cpu").dtype == torch.float32
    assert forward_in_precision(network.double().layer, x.double(), "bfloat16", "cpu").dtype == torch.float64
