"""DAMIC: the mixture loss, its posterior, the batched experts and both decision rules."""

import copy
import warnings

import numpy as np
import pytest
import torch
from scipy.special import logsumexp, softmax
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import minmax_scale

from conftest import fast
from skdeepcluster import DAMIC
from skdeepcluster._core.autoencoder import glorot_init_, mlp, reconstruction_loss
from skdeepcluster._damic import (
    DAMICNetwork,
    StackedMLP,
    half_squared_errors,
    mixture_nll,
    posterior,
    scaled_widths,
)


@pytest.fixture(scope="module")
def unit_blobs():
    X, y = make_blobs(n_samples=240, n_features=12, centers=3, cluster_std=1.0, random_state=0)
    return minmax_scale(X).astype(np.float32), y


@pytest.fixture(scope="module")
def fitted(unit_blobs):
    X, _ = unit_blobs
    return fast(DAMIC, n_clusters=3, output_activation="sigmoid").fit(X)


# -- the loss of eq. (3) and the posterior of eq. (5) -----------------------------------


def _fixed_outputs():
    rng = np.random.RandomState(0)
    logits = rng.randn(7, 4)
    distances = rng.rand(7, 4) * 5
    return logits, distances


def test_mixture_nll_matches_numpy_reference():
    logits, distances = _fixed_outputs()
    p = softmax(logits, axis=1)
    expected = -np.log((p * np.exp(-distances)).sum(axis=1))
    log_gate = torch.log_softmax(torch.tensor(logits), dim=1)
    got = mixture_nll(log_gate, torch.tensor(distances))
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)


def test_mixture_nll_is_stable_for_large_errors():
    logits, distances = _fixed_outputs()
    distances = distances + 2000.0  # exp(-d) underflows to 0 in float64
    log_p = logits - logsumexp(logits, axis=1, keepdims=True)
    expected = -logsumexp(log_p - distances, axis=1)
    got = mixture_nll(torch.tensor(log_p), torch.tensor(distances))
    assert torch.isfinite(got).all()
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    # in float32 too
    got32 = mixture_nll(torch.tensor(log_p, dtype=torch.float32), torch.tensor(distances, dtype=torch.float32))
    np.testing.assert_allclose(got32.numpy(), expected, rtol=1e-6)


def test_posterior_is_proportional_to_gate_times_exp_minus_d():
    logits, distances = _fixed_outputs()
    p = softmax(logits, axis=1)
    expected = p * np.exp(-distances)
    expected /= expected.sum(axis=1, keepdims=True)
    log_gate = torch.log_softmax(torch.tensor(logits), dim=1)
    got = posterior(log_gate, torch.tensor(distances)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got.sum(axis=1), 1.0)


def test_gate_gradient_is_eq_4():
    """dL/d(logit_i) = p_i - w_i: the gate learns the soft labels w of eq. (5)."""
    logits, distances = _fixed_outputs()
    logits_t = torch.tensor(logits, requires_grad=True)
    d = torch.tensor(distances)
    mixture_nll(torch.log_softmax(logits_t, dim=1), d).sum().backward()
    log_gate = torch.log_softmax(torch.tensor(logits), dim=1)
    expected = torch.softmax(torch.tensor(logits), dim=1) - posterior(log_gate, d)
    torch.testing.assert_close(logits_t.grad, expected)


def test_half_squared_errors():
    rng = np.random.RandomState(1)
    x, recon = rng.rand(5, 3), rng.rand(2, 5, 3)
    expected = 0.5 * ((recon - x[None]) ** 2).sum(axis=2).T
    np.testing.assert_allclose(half_squared_errors(torch.tensor(x), torch.tensor(recon)).numpy(), expected)


# -- the K autoencoders as one batched computation --------------------------------------


def _experts_and_copies(n_models=3, sizes=(6, 8, 3, 8, 6)):
    torch.manual_seed(0)
    singles = [glorot_init_(mlp(sizes, "relu", "sigmoid", batch_norm=True)).double() for _ in range(n_models)]
    for single in singles:  # non-trivial batch-norm parameters and statistics
        for module in single:
            if isinstance(module, torch.nn.BatchNorm1d):
                torch.nn.init.uniform_(module.weight, 0.5, 1.5)
                torch.nn.init.uniform_(module.bias, -0.5, 0.5)
                module.running_mean.uniform_(-0.2, 0.2)
                module.running_var.uniform_(0.5, 2.0)
    stacked = StackedMLP(n_models, sizes, "relu", "sigmoid", batch_norm=True).double()
    for k, single in enumerate(singles):
        stacked.load_model_(k, single)
    return singles, stacked


def test_batched_experts_equal_per_expert_modules():
    singles, stacked = _experts_and_copies()
    x = torch.rand(10, 6, dtype=torch.float64)
    # training mode: batch statistics, and the same running-statistics update
    expected = torch.stack([single.train()(x) for single in singles])
    torch.testing.assert_close(stacked.train()(x), expected)
    for k, single in enumerate(singles):
        norms = [m for m in single if isinstance(m, torch.nn.BatchNorm1d)]
        for norm, stacked_norm in zip(norms, stacked.norms):
            torch.testing.assert_close(stacked_norm.running_mean[k, 0], norm.running_mean)
            torch.testing.assert_close(stacked_norm.running_var[k, 0], norm.running_var)
    # inference mode: running statistics
    expected = torch.stack([single.eval()(x) for single in singles])
    torch.testing.assert_close(stacked.eval()(x), expected)
    # one batch per expert, as in the per-cluster pre-training
    xs = torch.rand(3, 10, 6, dtype=torch.float64)
    expected = torch.stack([single.train()(xs[k]) for k, single in enumerate(singles)])
    torch.testing.assert_close(stacked.train()(xs), expected)


def test_batched_expert_gradients_equal_per_expert_gradients():
    singles, stacked = _experts_and_copies()
    x = torch.rand(10, 6, dtype=torch.float64)
    half_squared_errors(x, torch.stack([s.train()(x) for s in singles])).sum().backward()
    half_squared_errors(x, stacked.train()(x)).sum().backward()
    for k, single in enumerate(singles):
        linears = [m for m in single if isinstance(m, torch.nn.Linear)]
        for layer, weight in zip(linears, stacked.weights):
            torch.testing.assert_close(weight.grad[k], layer.weight.grad.T)


def test_expert_distances_run_in_row_blocks_only_in_eval_mode(fitted, unit_blobs, monkeypatch):
    import skdeepcluster._core.data as data_module

    module = copy.deepcopy(fitted.module_)  # train mode would move the fitted running statistics
    x = torch.as_tensor(unit_blobs[0], dtype=torch.float32, device=fitted.device_)
    calls = []
    original = type(module.experts).forward

    def counted(experts, inputs):
        calls.append(inputs.shape[-2])
        return original(experts, inputs)

    with torch.no_grad():
        whole = half_squared_errors(x, module.experts.eval()(x))
        entries_per_row = module.experts.n_models * max(module.experts.sizes)
        monkeypatch.setattr(data_module, "MAX_CHUNK_ENTRIES", 50 * entries_per_row)
        monkeypatch.setattr(type(module.experts), "forward", counted)
        blocked = module.eval().distances(x)
        assert calls == [50] * 4 + [40]  # 240 rows
        torch.testing.assert_close(blocked, whole)
        calls.clear()
        module.train().distances(x)  # batch statistics: never split
        assert calls == [240]


# -- architecture -----------------------------------------------------------------------


def test_scaled_widths_rule():
    assert scaled_widths((1024, 256), 784) == (1024, 256)  # MNIST: the paper's
    assert scaled_widths((1024, 256), 100) == (1024, 256)  # synthetic data: the paper's
    assert scaled_widths((512, 512), 64) == (512, 512)
    assert scaled_widths((1024, 256), 12) == (192, 192)
    assert scaled_widths((1024, 256), 2) == (32, 32)


def test_auto_architecture_follows_the_rule(unit_blobs):
    X, _ = unit_blobs
    est = fast(DAMIC, n_clusters=3, expert_hidden_dims="auto", gate_hidden_dims="auto", max_epochs=1).fit(X)
    shapes = [tuple(w.shape) for w in est.module_.experts.weights]
    assert shapes == [(3, 12, 192), (3, 192, 192), (3, 192, 3), (3, 3, 192), (3, 192, 192), (3, 192, 12)]
    linears = [m for m in est.module_.gate if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(12, 192), (192, 192), (192, 3)]
    assert est.transform(X[:4]).shape == (4, 192)


# -- fitted behaviour ---------------------------------------------------------------------


def test_gate_decision_and_outputs(fitted, unit_blobs):
    X, y = unit_blobs
    est = fitted
    assert adjusted_rand_score(y, est.labels_) > 0.9
    proba = est.predict_proba(X)
    module = est._inference_copy(est.module_)
    with torch.no_grad():
        x = torch.tensor(X, dtype=torch.float64, device=est.device_)
        gate = torch.softmax(module.gate(x), dim=1).cpu().numpy()
    np.testing.assert_allclose(proba, gate, rtol=1e-10)
    np.testing.assert_array_equal(est.labels_, proba.argmax(axis=1))
    d = est.reconstruction_errors(X)
    assert d.shape == (len(X), 3) and np.all(d >= 0)
    # eq. (5) from the two public outputs
    w = proba * np.exp(-(d - d.min(axis=1, keepdims=True)))
    np.testing.assert_allclose(est.posterior_proba(X), w / w.sum(axis=1, keepdims=True), rtol=1e-8)
    assert est.score(X) == pytest.approx(np.mean(logsumexp(np.log(proba) - d, axis=1)), rel=1e-8)
    # the paper: the two rules almost always agree once trained
    assert np.mean(d.argmin(axis=1) == est.labels_) > 0.9


def test_reconstruction_decision(unit_blobs):
    X, y = unit_blobs
    est = fast(DAMIC, n_clusters=3, output_activation="sigmoid", decision="reconstruction").fit(X)
    d = est.reconstruction_errors(X)
    np.testing.assert_array_equal(est.labels_, d.argmin(axis=1))
    np.testing.assert_allclose(est.predict_proba(X), softmax(-d, axis=1), rtol=1e-8, atol=1e-300)
    assert adjusted_rand_score(y, est.labels_) > 0.9


def test_cluster_sizes_and_history(fitted, unit_blobs):
    X, _ = unit_blobs
    est = fitted
    np.testing.assert_array_equal(est.cluster_sizes_, np.bincount(est.labels_, minlength=3))
    assert est.n_active_clusters_ == 3
    assert all(h["n_clusters_used"] == 3 for h in est.history_)
    assert {"loss", "reconstruction"} <= set(est.history_[0])
    assert len(est.init_history_["gate"]) == est.gate_pretrain_epochs
    assert len(est.init_history_["experts"]) == est.expert_pretrain_epochs
    assert est.initial_labels_.shape == (len(X),)


def test_unfitted_has_no_cluster_sizes():
    assert not hasattr(DAMIC(), "cluster_sizes_")


def test_a_cluster_emptied_in_training_warns(fitted, unit_blobs):
    from skdeepcluster._core.data import DeviceData

    X, _ = unit_blobs
    est = fitted
    saved = {k: v.clone() for k, v in est.module_.state_dict().items()}
    est._fit_state = {"owned": torch.ones(3, dtype=torch.bool, device=est.device_), "n_batches": 1}
    try:
        with torch.no_grad():
            est.module_.gate[-1].bias[:] = torch.tensor([1e4, 0.0, 0.0], device=est.device_)
        with pytest.warns(ConvergenceWarning, match=r"autoencoder\(s\) \[1, 2\] lost all their points"):
            labels = est._on_checkpoint(3, DeviceData(X, est.device_))
        assert torch.all(labels == 0)
    finally:
        del est._fit_state
        est.module_.load_state_dict(saved)


def test_a_cluster_emptied_in_training_warns_at_the_callers_line(unit_blobs):
    X, _ = unit_blobs
    est = fast(DAMIC, n_clusters=3, max_epochs=2)
    est._hard_assign = lambda module, x: torch.zeros(x.shape[0], dtype=torch.int64, device=x.device)
    with pytest.warns(ConvergenceWarning, match="lost all their points") as record:
        est.fit(X)
    (warning,) = [w for w in record if "lost all their points" in str(w.message)]
    assert warning.filename == __file__


def test_one_row_batches_train(unit_blobs):
    X, _ = unit_blobs
    # 65 = 2 * 32 + 1: every phase, the default batch-norm autoencoder
    # included, merges the last row into the batch before it
    est = fast(DAMIC, n_clusters=3, output_activation="sigmoid", autoencoder=None, pretrain_epochs=2,
               gate_pretrain_epochs=2, expert_pretrain_epochs=2, max_epochs=2).fit(X[:65])
    assert est.labels_.shape == (65,)
    assert est.module_.training is False


def test_batch_size_one_only_without_the_batch_norm_pretraining(unit_blobs):
    X, _ = unit_blobs
    with pytest.raises(ValueError, match="batch_size >= 2"):
        fast(DAMIC, n_clusters=3, batch_size=1, autoencoder=None, pretrain_epochs=2).fit(X)
    # from a given autoencoder every phase trains on one-row batches, each
    # with batch norm on its running statistics
    est = fast(DAMIC, n_clusters=3, batch_size=1, gate_pretrain_epochs=1, expert_pretrain_epochs=1,
               max_epochs=1).fit(X[:40])
    assert est.labels_.shape == (40,)


def test_sigmoid_output_needs_unit_interval(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="output_activation=None"):
        fast(DAMIC, n_clusters=3, output_activation="sigmoid").fit(X)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"decision": "argmax"}, "'decision' parameter"),
        ({"output_activation": "relu"}, "'output_activation' parameter"),
        ({"expert_hidden_dims": (8, 0)}, "'expert_hidden_dims' parameter"),
        ({"gate_hidden_dims": "paper"}, "'gate_hidden_dims' parameter"),
        ({"gate_pretrain_epochs": -1}, "'gate_pretrain_epochs' parameter"),
        ({"expert_pretrain_epochs": 1.5}, "'expert_pretrain_epochs' parameter"),
        ({"embedding_dim": 0}, "'embedding_dim' parameter"),
        ({"init": "k-means++"}, "'init' parameter"),
    ],
)
def test_bad_parameters(blobs, params, match):
    with pytest.raises(ValueError, match=match):
        fast(DAMIC, n_clusters=3, **params).fit(blobs[0])


def _anisotropic_blobs():
    """scikit-learn's sheared blobs: k-means cuts across them, a full-covariance mixture does not."""
    X, y = make_blobs(n_samples=500, random_state=170)
    return X @ np.array([[0.6, -0.6], [-0.4, 0.8]]), y


def test_gaussian_mixture_partition_follows_elongated_clusters():
    from sklearn.cluster import KMeans
    from sklearn.mixture import GaussianMixture

    Z, y = _anisotropic_blobs()
    est = DAMIC(n_clusters=3)
    _, labels = est._gaussian_mixture(torch.tensor(Z, dtype=torch.float64), seed=3)
    expected = GaussianMixture(3, covariance_type="full", n_init=10, random_state=3).fit_predict(Z)
    np.testing.assert_array_equal(labels.numpy(), expected)
    assert adjusted_rand_score(y, labels.numpy()) > 0.95
    assert adjusted_rand_score(y, KMeans(3, n_init=10, random_state=3).fit_predict(Z)) < 0.7


@pytest.mark.parametrize("init, used, unused", [("kmeans", "_kmeans", "_gaussian_mixture"), ("gmm", "_gaussian_mixture", "_kmeans")])
def test_init_picks_the_initial_partition(unit_blobs, monkeypatch, init, used, unused):
    X, y = unit_blobs
    calls = []
    for name in (used, unused):
        original = getattr(DAMIC, name)

        def spy(self, Z, seed, n_init=10, _original=original, _name=name):
            calls.append(_name)
            return _original(self, Z, seed, n_init)

        monkeypatch.setattr(DAMIC, name, spy)
    est = fast(DAMIC, n_clusters=3, init=init, output_activation="sigmoid").fit(X)
    assert calls == [used]
    assert adjusted_rand_score(y, est.initial_labels_) > 0.9


def test_default_autoencoder_is_the_papers_recipe():
    est = DAMIC(n_clusters=4)
    est.n_features_in_ = 100
    ae = est._default_autoencoder(0)
    assert (ae.hidden_dims, ae.embedding_dim) == ((1024, 256), 4)
    assert (ae.batch_norm, ae.output_activation, ae.loss, ae.optimizer) == (True, "sigmoid", "bce", "adam")
    assert ae.learning_rate == est.learning_rate == 1e-4
    assert ae.input_noise == 0.0 and ae.max_epochs == 50 and ae.batch_size == 256


def test_tol_stops_and_every_epoch_record_has_a_loss(unit_blobs):
    X, _ = unit_blobs
    est = fast(DAMIC, n_clusters=3, output_activation="sigmoid", max_epochs=30, tol=0.01).fit(X)
    assert est.converged_ and est.n_iter_ < 30
    assert len(est.history_) == est.n_iter_
    assert all("loss" in record for record in est.history_)
    assert est.history_[-1]["delta_label"] < 0.01


def test_decision_can_change_after_fit_and_is_checked(blobs):
    X, _ = blobs
    est = fast(DAMIC, n_clusters=3).fit(X)
    by_gate = est.predict_proba(X)
    est.set_params(decision="reconstruction")
    np.testing.assert_allclose(est.predict_proba(X), softmax(-est.reconstruction_errors(X), axis=1))
    est.set_params(decision="bogus")
    with pytest.raises(ValueError, match="'decision' parameter"):
        est.predict(X)
    np.testing.assert_array_equal(est.set_params(decision="gate").predict_proba(X), by_gate)


def test_feature_names_follow_the_fitted_gate(blobs):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        fast(DAMIC, n_clusters=3).get_feature_names_out()
    X, _ = blobs
    est = fast(DAMIC, n_clusters=3).fit(X).set_params(gate_hidden_dims=(7,))
    assert len(est.get_feature_names_out()) == est.transform(X).shape[1] == 32


def test_bfloat16_autocast_keeps_the_outputs_and_the_gate_log_probabilities_in_float32():
    """The sigmoid output of a saturating expert still has a gradient (in
    bfloat16 it would round to 1, where the clamped cross-entropy is flat),
    and log p(c|x), which CPU autocast would leave in bfloat16, is float32."""
    network = DAMICNetwork(6, 3, (8,), (8,), "sigmoid")
    with torch.no_grad():
        network.experts.biases[-1].fill_(8.0)  # logits of about 8: sigmoid 0.99966
    x = torch.rand(16, 6, generator=torch.Generator().manual_seed(0))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        log_gate, distances = network(x)
        reconstructions = network.experts(x)
    assert log_gate.dtype == reconstructions.dtype == torch.float32
    assert (reconstructions < 1).all()
    loss = reconstruction_loss(reconstructions, x.expand_as(reconstructions), "bce")
    (gradient,) = torch.autograd.grad(loss, network.experts.biases[-1])
    assert gradient.abs().min() > 0


# -- sample weights (the joint training and the gate: test_sample_weight.py) --------------


def test_experts_pretrain_on_weighted_draws_of_their_members(unit_blobs, monkeypatch):
    """Expert i learns from the rows of cluster i with a positive weight,
    drawn in proportion to their weights."""
    import skdeepcluster._damic as damic
    from skdeepcluster._core.data import DeviceData

    X, _ = unit_blobs
    weights = np.random.RandomState(2).randint(0, 4, len(X)).astype(np.float64)
    seen = {}
    original = damic._ClusterRows.__init__

    def spy(self, data, members, member_weights=None, generator=None):
        seen.update(members=members, member_weights=member_weights)
        original(self, data, members, member_weights, generator)

    monkeypatch.setattr(damic._ClusterRows, "__init__", spy)
    est = fast(DAMIC, n_clusters=3, output_activation="sigmoid", max_epochs=0, gate_pretrain_epochs=0,
               expert_pretrain_epochs=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # no joint training: a cluster may be empty
        est.fit(X, sample_weight=weights)
    for k, (members, member_weights) in enumerate(zip(seen["members"], seen["member_weights"])):
        members = members.cpu().numpy()
        np.testing.assert_array_equal(np.sort(members), np.flatnonzero((est.initial_labels_ == k) & (weights > 0)))
        np.testing.assert_allclose(member_weights.numpy() / weights[members], weights.mean() ** -1, rtol=1e-6)
    # the rows a step serves: each cluster's, in proportion to the weights
    ids = np.arange(len(X), dtype=np.float32)[:, None]  # a row's value is its index
    rows = damic._ClusterRows(DeviceData(ids, "cpu"), seen["members"], seen["member_weights"], torch.Generator().manual_seed(0))
    served = rows.rows(torch.arange(50_000)).squeeze(-1).long().numpy()
    for k, members in enumerate(seen["members"]):
        members = members.cpu().numpy()
        counts = np.bincount(served[k], minlength=len(X))
        assert set(np.flatnonzero(counts)) == set(members)
        np.testing.assert_allclose(counts[members] / counts.sum(), weights[members] / weights[members].sum(), rtol=0.2)
