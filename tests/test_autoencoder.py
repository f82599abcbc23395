"""The public AutoEncoder transformer."""

import numpy as np
import pytest
import torch
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MinMaxScaler

from conftest import Untouchable, fast_autoencoder, needs_bfloat16, undocumented_attributes
import skdeepcluster._autoencoder as autoencoder_module
from skdeepcluster._core.autoencoder import reconstruction_loss
from skdeepcluster import AutoEncoder


def test_transform_inverse_transform_shapes(blobs):
    X, _ = blobs
    ae = fast_autoencoder().fit(X)
    Z = ae.transform(X)
    assert Z.shape == (X.shape[0], 3) and Z.dtype == np.float64
    assert ae.inverse_transform(Z).shape == X.shape
    assert ae.reconstruction_error(X).shape == (X.shape[0],)
    with pytest.raises(ValueError, match="embedding_dim=3"):
        ae.inverse_transform(Z[:, :2])


def test_training_lowers_reconstruction_error(blobs):
    X, _ = blobs
    X = MinMaxScaler().fit_transform(X)
    untrained = fast_autoencoder(max_epochs=0).fit(X)
    trained = fast_autoencoder(max_epochs=30).fit(X)
    assert trained.reconstruction_error(X).mean() < 0.5 * untrained.reconstruction_error(X).mean()
    losses = [h["loss"] for h in trained.history_]
    assert losses[-1] < losses[0]


def test_default_sgd_recipe_on_scaled_data(blobs):
    X, y = blobs
    X = MinMaxScaler().fit_transform(X)
    ae = AutoEncoder(hidden_dims=(32,), embedding_dim=3, max_epochs=30, batch_size=32, device="cpu", random_state=0)
    labels = make_pipeline(ae, KMeans(3, n_init=10, random_state=0)).fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.9


def test_bce_with_sigmoid_output_and_batch_norm(blobs):
    X, _ = blobs
    X = MinMaxScaler().fit_transform(X)
    ae = fast_autoencoder(loss="bce", output_activation="sigmoid", batch_norm=True, activation="elu").fit(X)
    X_hat = ae.inverse_transform(ae.transform(X))
    assert X_hat.min() >= 0 and X_hat.max() <= 1


def test_weight_init_options(blobs):
    X, _ = blobs
    layers = {}
    for weight_init in ("pytorch", "pytorch_zero_bias", "glorot"):
        ae = fast_autoencoder(weight_init=weight_init, max_epochs=0, random_state=0).fit(X)
        layers[weight_init] = [m for m in ae.module_.modules() if isinstance(m, torch.nn.Linear)]
    for pytorch_layer, zero_bias_layer, glorot_layer in zip(
        layers["pytorch"], layers["pytorch_zero_bias"], layers["glorot"]
    ):
        fan_out, fan_in = pytorch_layer.weight.shape
        # same seed, same draw of the weights; only the biases are zeroed
        torch.testing.assert_close(zero_bias_layer.weight, pytorch_layer.weight)
        assert zero_bias_layer.bias.abs().max() == 0
        # torch.nn.Linear's own draw: weights and biases within 1/sqrt(fan_in)
        assert pytorch_layer.weight.abs().max() <= fan_in**-0.5
        assert pytorch_layer.bias.abs().max() > 0
        glorot_bound = (6 / (fan_in + fan_out)) ** 0.5
        assert glorot_layer.weight.abs().max() <= glorot_bound
        assert glorot_layer.weight.abs().max() > 0.9 * glorot_bound
        assert glorot_layer.bias.abs().max() == 0


def test_cache_hit_skips_training(blobs, tmp_path, capsys):
    X, _ = blobs
    first = fast_autoencoder(memory=str(tmp_path)).fit(X)
    second = fast_autoencoder(memory=str(tmp_path), verbose=1).fit(X)  # verbose is not part of the key
    assert (first.from_cache_, second.from_cache_) == (False, True)
    assert f"15 epochs read from the cache in {tmp_path}" in capsys.readouterr().err  # verbose says so
    np.testing.assert_array_equal(first.transform(X), second.transform(X))
    other_seed = fast_autoencoder(memory=str(tmp_path), random_state=1).fit(X)
    assert other_seed.from_cache_ is False


def test_from_cache_says_whether_the_pretraining_ran(blobs, tmp_path):
    """Not joblib's check_call_in_cache, which misreads two cases."""
    import glob
    import os

    import joblib.memory

    X, _ = blobs
    joblib.memory._FUNCTION_HASHES.clear()  # so that this process writes the code file here
    first = fast_autoencoder(memory=str(tmp_path)).fit(X)
    # An entry whose function code file is missing, as a joblib worker that
    # wrote the function's code to another cache before leaves it (joblib
    # remembers per process which functions it wrote): the entry is read.
    (code_file,) = glob.glob(str(tmp_path / "**" / "func_code.py"), recursive=True)
    os.remove(code_file)
    joblib.memory._FUNCTION_HASHES.clear()  # as in a process that has not written it
    read = fast_autoencoder(memory=str(tmp_path)).fit(X)
    assert read.from_cache_ is True
    np.testing.assert_array_equal(read.transform(X), first.transform(X))
    # a corrupt entry: joblib logs the unpickling error and trains again
    (output,) = glob.glob(str(tmp_path / "**" / "output.pkl"), recursive=True)
    with open(output, "wb") as handle:
        handle.write(b"not a pickle")
    retrained = fast_autoencoder(memory=str(tmp_path)).fit(X)
    assert retrained.from_cache_ is False
    np.testing.assert_array_equal(retrained.transform(X), first.transform(X))


def test_inputs_that_train_alike_share_a_cache_entry(blobs, tmp_path):
    """The key is the data as training stores it (float32; sparse as
    canonical CSR), not the form it was passed in."""
    import pandas as pd
    import scipy.sparse as sp

    X = blobs[0].astype(np.float32)
    first = fast_autoencoder(memory=str(tmp_path)).fit(X)
    assert first.from_cache_ is False
    for same in (X.astype(np.float64), pd.DataFrame(X), np.asfortranarray(X)):
        again = fast_autoencoder(memory=str(tmp_path)).fit(same)
        assert again.from_cache_ is True
        np.testing.assert_array_equal(again.transform(X), first.transform(X))
    sparse = sp.random(60, 8, density=0.3, format="csr", random_state=0, dtype=np.float64)
    assert fast_autoencoder(memory=str(tmp_path)).fit(sparse).from_cache_ is False
    duplicated = sp.coo_matrix((np.r_[sparse.tocoo().data, 0.0], (np.r_[sparse.tocoo().row, 0], np.r_[sparse.tocoo().col, 0])), shape=sparse.shape)
    for same in (sparse.tocsc(), sparse.astype(np.float32), duplicated):
        assert fast_autoencoder(memory=str(tmp_path)).fit(same).from_cache_ is True
    assert fast_autoencoder(memory=str(tmp_path)).fit(X + 1).from_cache_ is False


def test_a_cache_written_by_other_pretraining_code_is_not_read(blobs, tmp_path, monkeypatch):
    """joblib sees only ``_train_autoencoder``'s own source; a change in the
    loss or the loop it calls is keyed through PRETRAINING_REVISION."""
    X, _ = blobs
    fast_autoencoder(memory=str(tmp_path)).fit(X)
    monkeypatch.setattr(autoencoder_module, "PRETRAINING_REVISION", autoencoder_module.PRETRAINING_REVISION + 1)
    assert fast_autoencoder(memory=str(tmp_path)).fit(X).from_cache_ is False
    assert fast_autoencoder(memory=str(tmp_path)).fit(X).from_cache_ is True


def test_inverse_transform_takes_a_tensor(blobs):
    X, _ = blobs
    ae = fast_autoencoder().fit(X)
    Z = ae.transform(X)
    np.testing.assert_array_equal(ae.inverse_transform(torch.tensor(Z, requires_grad=True)), ae.inverse_transform(Z))


@pytest.mark.parametrize(
    "params, match",
    [
        ({"optimizer": "rmsprop"}, "'optimizer' parameter"),
        ({"input_noise": 1.0}, "'input_noise' parameter"),
        ({"loss": "l1"}, "'loss' parameter"),
        ({"embedding_dim": 0}, "'embedding_dim' parameter"),
        ({"momentum": -0.1}, "'momentum' parameter"),
        ({"weight_init": "he"}, "'weight_init' parameter"),
        ({"precision": "float16"}, "'precision' parameter"),
        ({"batch_norm": True, "batch_size": 1}, "batch_norm=True needs batch_size >= 2"),
        ({"random_state": -1}, "'random_state' parameter"),
    ],
)
def test_bad_parameters(blobs, params, match):
    with pytest.raises(ValueError, match=match):
        fast_autoencoder(**params).fit(blobs[0])


def test_unscaled_data_with_sgd_fails_loudly_not_silently():
    X = np.random.RandomState(0).randn(200, 20).astype(np.float32) * 1e4
    ae = AutoEncoder(hidden_dims=(32,), embedding_dim=3, max_epochs=5, device="cpu", random_state=0)
    with pytest.raises(FloatingPointError, match=r"diverged.*meant for features in \[0, 1\].*optimizer='adam'"):
        ae.fit(X)
    # Adam's own divergence gets the loop's advice alone
    adam = AutoEncoder(hidden_dims=(32,), embedding_dim=3, max_epochs=5, optimizer="adam", learning_rate=1e6,
                       device="cpu", random_state=0)
    with pytest.raises(FloatingPointError, match="diverged") as adam_error:
        adam.fit(X)
    assert "optimizer='adam'" not in str(adam_error.value)
    # nor an SGD rate of the user's own: lowering it is the advice
    too_fast = AutoEncoder(hidden_dims=(32,), embedding_dim=3, max_epochs=5, learning_rate=1e4, device="cpu",
                           random_state=0)
    with pytest.raises(FloatingPointError, match="Lower learning_rate") as sgd_error:
        too_fast.fit(np.random.RandomState(0).rand(200, 20))
    assert "optimizer='adam'" not in str(sgd_error.value)


def test_a_failed_refit_leaves_the_autoencoder_unfitted(blobs):
    from sklearn.exceptions import NotFittedError

    X = blobs[0]
    ae = AutoEncoder(hidden_dims=(32,), embedding_dim=3, max_epochs=5, device="cpu", random_state=0)
    ae.fit(np.clip(X / np.abs(X).max(), 0, 1))
    with pytest.raises(FloatingPointError, match="diverged"):
        ae.fit(np.random.RandomState(0).randn(200, X.shape[1]).astype(np.float32) * 1e4)
    with pytest.raises(NotFittedError):
        ae.transform(X)


def test_bce_needs_unit_interval(blobs):
    with pytest.raises(ValueError, match=r"loss='bce' needs every feature in \[0, 1\]"):
        fast_autoencoder(loss="bce", output_activation="sigmoid").fit(blobs[0])


@pytest.mark.parametrize("output_activation", [None, "relu", "tanh"])
def test_bce_needs_sigmoid_outputs(output_activation):
    """The clamped cross-entropy gives no gradient to outputs outside [0, 1]."""
    X = np.random.RandomState(0).rand(40, 5)
    with pytest.raises(ValueError, match=r"loss='bce' needs output_activation='sigmoid'.*got output_activation="):
        fast_autoencoder(loss="bce", output_activation=output_activation).fit(X)


def test_batch_norm_with_a_trailing_one_row_batch():
    X = np.random.RandomState(0).rand(33, 5)  # 33 = 32 + 1
    ae = fast_autoencoder(batch_norm=True, batch_size=32, max_epochs=2).fit(X)
    assert np.isfinite(ae.transform(X)).all()


def test_bce_checks_a_coo_matrixs_summed_duplicates():
    import scipy.sparse as sp

    # two entries of 0.6 at one place: the matrix holds 1.2 there
    X = sp.coo_matrix(([0.6, 0.6, 0.5, 0.5], ([0, 0, 1, 2], [0, 0, 1, 2])), shape=(3, 4))
    with pytest.raises(ValueError, match=r"X spans \[0, 1.2\]"):
        fast_autoencoder(loss="bce", output_activation="sigmoid", max_epochs=1).fit(X)


def test_an_embedding_beyond_float32_is_refused(blobs):
    ae = fast_autoencoder(max_epochs=1).fit(blobs[0])
    with pytest.raises(ValueError, match="Z has values up to 1e\\+39"):
        ae.inverse_transform([[1e39, 0.0, 0.0]])


def test_fitted_shapes_do_not_follow_later_set_params(blobs):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        fast_autoencoder().get_feature_names_out()
    X = blobs[0]
    ae = fast_autoencoder(max_epochs=1).fit(X).set_params(embedding_dim=4)
    assert len(ae.get_feature_names_out()) == ae.transform(X).shape[1] == 3
    assert ae.set_output(transform="pandas").transform(X).shape == (len(X), 3)
    with pytest.raises(ValueError, match="embedding_dim=3"):
        ae.inverse_transform(np.zeros((1, 4)))


def test_layer_widths_as_an_integer_array_build_the_same_network(blobs):
    """``np.array([32, 16])`` (as from a grid built with numpy) is the same
    shape as ``(32, 16)``: the same network, the same embedding."""
    X = blobs[0]
    as_tuple = fast_autoencoder(hidden_dims=(32, 16), max_epochs=2).fit(X)
    as_array = fast_autoencoder(hidden_dims=np.array([32, 16]), max_epochs=2).fit(X)
    np.testing.assert_array_equal(as_array.transform(X), as_tuple.transform(X))


def test_every_parameter_has_a_rule():
    assert set(AutoEncoder._parameter_rules) == set(AutoEncoder().get_params(deep=False))


def test_prediction_reads_no_parameter(blobs):
    """Transforming and reconstructing use the fitted network only."""
    X = blobs[0]
    ae = fast_autoencoder(max_epochs=2).fit(X)
    expected = ae.transform(X), ae.inverse_transform(ae.transform(X))
    ae.set_params(**{name: Untouchable(name) for name in ae.get_params(deep=False)})
    np.testing.assert_array_equal(ae.transform(X), expected[0])
    np.testing.assert_array_equal(ae.inverse_transform(ae.transform(X)), expected[1])


def _layer_dtypes_in_training(estimator, X):
    """Dtypes of the first layer's outputs during ``estimator.fit(X)``."""
    dtypes = set()
    real_network = autoencoder_module._network

    def recording_network(n_features, config):
        module = real_network(n_features, config)
        module.encoder[0].register_forward_hook(lambda layer, inputs, output: dtypes.add(output.dtype))
        return module

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(autoencoder_module, "_network", recording_network)
        estimator.fit(X)
    return dtypes


def test_float32_training_runs_in_float32(blobs):
    assert _layer_dtypes_in_training(fast_autoencoder(max_epochs=2), blobs[0]) == {torch.float32}


@needs_bfloat16
@pytest.mark.parametrize("batch_norm", [False, True])
def test_bfloat16_training_runs_the_layers_in_bfloat16_and_learns_as_float32(blobs, batch_norm):
    X = np.clip(blobs[0] / np.abs(blobs[0]).max(), 0, 1)
    full = fast_autoencoder(batch_norm=batch_norm, max_epochs=20).fit(X)
    lower = fast_autoencoder(batch_norm=batch_norm, max_epochs=20, precision="bfloat16")
    assert _layer_dtypes_in_training(lower, X) == {torch.bfloat16}
    # float32 weights, a float32 embedding and nearly the same training loss
    assert all(p.dtype == torch.float32 for p in lower.module_.parameters())
    assert np.isfinite(lower.transform(X)).all()
    assert lower.history_[-1]["loss"] == pytest.approx(full.history_[-1]["loss"], rel=0.1)
    assert lower.history_[-1]["loss"] < 0.5 * lower.history_[0]["loss"]


@needs_bfloat16
def test_bfloat16_cross_entropy_stays_finite_on_saturated_features():
    """Pixels at exactly 0 and 1 (as MNIST's): the cross-entropy in bfloat16
    would clamp to 1 and take log(0); it runs in float32."""
    X = (np.random.RandomState(0).rand(300, 30) > 0.5).astype(np.float32)
    ae = fast_autoencoder(loss="bce", output_activation="sigmoid", max_epochs=40, precision="bfloat16").fit(X)
    losses = [record["loss"] for record in ae.history_]
    assert np.isfinite(losses).all() and losses[-1] < losses[0]


def test_a_saturating_sigmoid_output_keeps_its_gradient_under_bfloat16():
    """In bfloat16 a sigmoid rounds to exactly 1 above a logit of about 6.3,
    where the cross-entropy's clamp below 1 has no gradient; the output
    activation runs in float32."""
    network = autoencoder_module._network(6, fast_autoencoder(output_activation="sigmoid")._config())
    last = network.decoder[-2]
    with torch.no_grad():
        last.bias.fill_(8.0)
    x = torch.full((16, 6), 0.9)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, x_hat = network(x)
    assert x_hat.dtype == torch.float32 and (x_hat < 1).all()
    (gradient,) = torch.autograd.grad(reconstruction_loss(x_hat, x, "bce"), last.bias)
    assert gradient.abs().min() > 0


@pytest.mark.parametrize("precision", ["float32", pytest.param("bfloat16", marks=needs_bfloat16)])
def test_fit_inside_a_users_autocast_learns_as_outside(blobs, precision):
    """autocast's weight cache is cleared only by the outermost context: a
    training inside the user's would keep the first step's weights."""
    X = blobs[0]
    expected = [r["loss"] for r in fast_autoencoder(precision=precision).fit(X).history_]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        inside = fast_autoencoder(precision=precision).fit(X)
    assert [r["loss"] for r in inside.history_] == expected


@pytest.mark.parametrize("mode", [torch.no_grad, torch.inference_mode], ids=["no_grad", "inference_mode"])
def test_fit_inside_a_users_no_grad_learns_as_outside(blobs, mode):
    X = blobs[0]
    expected = fast_autoencoder().fit(X)
    with mode():
        inside = fast_autoencoder().fit(X)
    assert [r["loss"] for r in inside.history_] == [r["loss"] for r in expected.history_]
    np.testing.assert_array_equal(inside.transform(X), expected.transform(X))


def test_trains_in_float32_under_a_float64_default_dtype(blobs):
    X = blobs[0]
    expected = fast_autoencoder().fit(X)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        ae = fast_autoencoder().fit(X)
    finally:
        torch.set_default_dtype(previous)
    assert {p.dtype for p in ae.module_.parameters()} == {torch.float32}
    # drawn as in float32: the same seed, the same network
    assert [r["loss"] for r in ae.history_] == [r["loss"] for r in expected.history_]
    np.testing.assert_array_equal(ae.transform(X), expected.transform(X))


@needs_bfloat16
def test_precision_is_part_of_the_cache_key(blobs, tmp_path):
    X = blobs[0]
    fast_autoencoder(memory=str(tmp_path)).fit(X)
    assert fast_autoencoder(memory=str(tmp_path), precision="bfloat16").fit(X).from_cache_ is False


@pytest.mark.parametrize("device", ["mps", "cuda"])
def test_fit_refuses_bfloat16_where_it_is_not_supported(blobs, device, monkeypatch):
    # as fit resolves the device, without the hardware: an MPS device, or a
    # CUDA device from before Ampere
    monkeypatch.setattr(AutoEncoder, "_resolve_device", lambda self: torch.device(device))
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))
    with pytest.raises(ValueError, match="precision='bfloat16'.*Use precision='float32'"):
        fast_autoencoder(precision="bfloat16").fit(blobs[0])


def test_fitted_attributes_are_documented(blobs):
    ae = fast_autoencoder(max_epochs=1).fit(blobs[0])
    assert not undocumented_attributes(ae)
    # as its docstring lists them: no label counts in a run without labels
    assert set(ae.history_[0]) == {"epoch", "loss", "time", "samples_per_second"}
