"""IDEC and DEC: the mathematics against numpy, the schedule, the DEC special case."""

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import MinMaxScaler

from conftest import fast, fast_autoencoder, needs_bfloat16
from skdeepcluster import DEC, IDEC
from skdeepcluster._idec import clustering_loss, log_soft_assignment, soft_assignment, target_distribution


def numpy_q(Z, M):
    kernel = 1 / (1 + ((Z[:, None] - M[None]) ** 2).sum(-1))
    return kernel / kernel.sum(1, keepdims=True)


def numpy_p(Q):
    weight = Q**2 / Q.sum(0)
    return weight / weight.sum(1, keepdims=True)


@pytest.fixture
def embedded():
    rng = np.random.RandomState(0)
    Z, M = rng.randn(7, 3), rng.randn(4, 3)
    P = numpy_p(numpy_q(Z, M) + rng.rand(7, 4))  # any fixed target, not Q's own
    P /= P.sum(1, keepdims=True)
    return Z, M, P


def test_soft_assignment_and_target_match_numpy(embedded):
    Z, M, _ = embedded
    Q = soft_assignment(torch.tensor(Z), torch.tensor(M))
    np.testing.assert_allclose(Q.numpy(), numpy_q(Z, M), rtol=1e-12)
    np.testing.assert_allclose(log_soft_assignment(torch.tensor(Z), torch.tensor(M)).exp().numpy(), Q.numpy(), rtol=1e-12)
    P = target_distribution(Q)
    np.testing.assert_allclose(P.numpy(), numpy_p(numpy_q(Z, M)), rtol=1e-12)
    np.testing.assert_allclose(P.sum(1).numpy(), 1.0, rtol=1e-12)


def test_clustering_loss_is_the_mean_kl_divergence(embedded):
    Z, M, P = embedded
    Q = numpy_q(Z, M)
    expected = (P * np.log(P / Q)).sum(1).mean()
    got = clustering_loss(torch.tensor(P), log_soft_assignment(torch.tensor(Z), torch.tensor(M)))
    assert got.item() == pytest.approx(expected, rel=1e-12)
    # zero entries of P contribute 0 log 0 = 0, not NaN
    one_hot = np.eye(4)[[0, 1, 2, 3, 0, 1, 2]]
    got = clustering_loss(torch.tensor(one_hot), log_soft_assignment(torch.tensor(Z), torch.tensor(M)))
    assert got.item() == pytest.approx(-np.log(Q[np.arange(7), one_hot.argmax(1)]).mean(), rel=1e-12)


def test_gradients_are_eqs_9_and_10(embedded):
    Z, M, P = embedded
    z = torch.tensor(Z, requires_grad=True)
    mu = torch.tensor(M, requires_grad=True)
    # L_c = sum_i KL(P_i || Q_i) with P held fixed, as in the paper
    (clustering_loss(torch.tensor(P), log_soft_assignment(z, mu)) * len(Z)).backward()
    Q = numpy_q(Z, M)
    kernel = 1 / (1 + ((Z[:, None] - M[None]) ** 2).sum(-1))  # (1 + ||z_i - mu_j||^2)^-1
    diff = Z[:, None] - M[None]  # z_i - mu_j
    eq9 = 2 * (kernel[..., None] * (P - Q)[..., None] * diff).sum(1)
    eq10 = 2 * (kernel[..., None] * (Q - P)[..., None] * diff).sum(0)
    np.testing.assert_allclose(z.grad.numpy(), eq9, rtol=1e-10)
    np.testing.assert_allclose(mu.grad.numpy(), eq10, rtol=1e-10)


def test_a_gradient_step_pulls_a_point_towards_its_target_cluster():
    Z = torch.tensor([[0.5, 0.0]], dtype=torch.float64, requires_grad=True)
    M = torch.tensor([[0.0, 0.0], [2.0, 0.0]], dtype=torch.float64)
    P = torch.tensor([[1.0, 0.0]], dtype=torch.float64)  # more confident than Q
    clustering_loss(P, log_soft_assignment(Z, M)).backward()
    assert Z.grad[0, 0] > 0  # descent moves z to smaller x, towards mu_0
    assert Z.grad[0, 1] == 0


def test_predict_proba_is_q_of_the_embedding_and_centres(blobs):
    X, _ = blobs
    est = fast(IDEC, n_clusters=3).fit(X)
    np.testing.assert_allclose(est.predict_proba(X), numpy_q(est.transform(X), est.cluster_centers_), rtol=1e-10)
    assert est.cluster_centers_.shape == (3, est.embedding_dim)


def test_idec_loss_is_reconstruction_plus_gamma_clustering(blobs):
    X, _ = blobs
    est = fast(IDEC, n_clusters=3, gamma=0.5, max_epochs=2, tol=0.0).fit(X)
    for record in est.history_:
        assert record["loss"] == pytest.approx(record["reconstruction"] + 0.5 * record["clustering"], rel=1e-5)
        assert record["reconstruction"] > 0 and record["clustering"] >= 0


def test_dec_is_idec_without_reconstruction(blobs):
    X, _ = blobs
    idec = fast(IDEC, n_clusters=3, max_epochs=0).fit(X)
    dec = fast(DEC, n_clusters=3, max_epochs=0).fit(X)
    # same pretrained autoencoder, same k-means start
    np.testing.assert_allclose(dec.cluster_centers_, idec.cluster_centers_)
    np.testing.assert_array_equal(dec.labels_, idec.labels_)

    dec = fast(DEC, n_clusters=3, max_epochs=2, tol=0.0).fit(X)
    for record in dec.history_:
        assert "reconstruction" not in record
        assert record["loss"] == record["clustering"]
    # DEC drops the decoder: nothing can train or use it
    assert not hasattr(dec.module_, "decoder")
    assert {name.split(".")[0] for name, _ in dec.module_.named_parameters()} == {"encoder", "centers"}
    optimizer = dec._make_optimizer(dec.module_.parameters())
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.defaults["lr"] == 0.01 and optimizer.defaults["momentum"] == 0.9
    assert isinstance(fast(IDEC)._make_optimizer(idec.module_.parameters()), torch.optim.Adam)


def test_dec_has_no_gamma():
    assert "gamma" not in DEC().get_params()
    assert "gamma" in IDEC().get_params()
    with pytest.raises(TypeError):
        DEC(gamma=0.1)
    assert DEC().learning_rate == 0.01 and IDEC().learning_rate == 1e-3


def test_gamma_zero_leaves_the_kmeans_centres(blobs):
    X, _ = blobs
    start = fast(IDEC, n_clusters=3, max_epochs=0).fit(X)
    ablation = fast(IDEC, n_clusters=3, gamma=0.0, max_epochs=2, tol=0.0).fit(X)
    np.testing.assert_array_equal(ablation.cluster_centers_, start.cluster_centers_)


@pytest.mark.parametrize("cls", [IDEC, DEC])
def test_default_interval_counts_the_batches_an_epoch_really_has(cls, blobs):
    X, _ = blobs  # 193 rows in batches of 32: 6 batches, the last of 33 rows
    est = fast(cls, n_clusters=3, max_epochs=2, tol=0.0).fit(X[:193])
    assert est.n_steps_ == 12
    assert len(est.delta_labels_) == len(range(0, 12, 3))  # twice per epoch


@pytest.mark.parametrize("cls", [IDEC, DEC])
def test_target_is_updated_every_update_interval_batches(cls, blobs):
    X, _ = blobs  # 240 rows in batches of 32: 8 batches per epoch
    est = fast(cls, n_clusters=3, update_interval=3, max_epochs=2, tol=0.0).fit(X)
    assert est.n_steps_ == 16
    assert len(est.delta_labels_) == len(range(0, 16, 3))
    # None: twice per epoch, every 4 batches here
    default = fast(cls, n_clusters=3, max_epochs=2, tol=0.0).fit(X)
    assert len(default.delta_labels_) == len(range(0, 16, 4))
    # an epoch's record keeps the label change of its last update
    assert [h["delta_label"] for h in default.history_] == list(default.delta_labels_[1::2])


@pytest.mark.parametrize("cls", [IDEC, DEC])
def test_tol_rule_stops_training_and_n_iter_says_when(cls, blobs):
    X, _ = blobs  # 8 batches per epoch
    # tol=0 never stops: max_epochs run
    full = fast(cls, n_clusters=3, max_epochs=3, tol=0.0).fit(X)
    assert full.n_iter_ == 3 and not full.converged_ and full.n_steps_ == 24

    # a loose tol stops at the first update after step 0, before that
    # update's batch: here in the middle of the first epoch
    mid = fast(cls, n_clusters=3, max_epochs=3, tol=1.0).fit(X)
    assert mid.converged_ and mid.n_steps_ == 4 and mid.n_iter_ == 1
    assert len(mid.delta_labels_) == 2 and mid.delta_labels_[-1] < 1.0

    # at the start of the second epoch: one epoch of 8 steps ran, and the
    # step-less second epoch is neither counted nor recorded
    loose = fast(cls, n_clusters=3, update_interval=8, max_epochs=3, tol=1.0).fit(X)
    assert loose.converged_
    assert loose.n_iter_ == 1 and loose.n_steps_ == 8 and len(loose.history_) == 1
    assert loose.history_[-1]["delta_label"] == loose.delta_labels_[-1]
    assert np.isfinite(loose.history_[-1]["loss"])


def test_default_tol_converges_on_separated_blobs(blobs):
    X, y = blobs
    X = MinMaxScaler().fit_transform(X)
    est = fast(IDEC, n_clusters=3, max_epochs=30).fit(X)
    assert est.converged_ and est.n_iter_ < 30
    assert est.delta_labels_[-1] < est.tol
    assert adjusted_rand_score(y, est.labels_) > 0.9


@pytest.mark.parametrize("cls", [IDEC, DEC])
def test_per_sample_state_is_dropped_after_fit(cls, blobs):
    X, _ = blobs
    n = X.shape[0]
    est = fast(cls, n_clusters=3, max_epochs=2).fit(X)
    assert not hasattr(est, "_fit_state")
    for name, value in vars(est).items():
        if isinstance(value, (np.ndarray, torch.Tensor)) and value.ndim == 2:
            assert value.shape[0] != n, name
    for name, value in est.module_.state_dict().items():
        assert value.shape[0] != n, name
    assert est.labels_.shape == (n,)  # the only per-sample result kept


@pytest.mark.parametrize("cls", [IDEC, DEC])
@pytest.mark.parametrize("update_interval", [0, -3, 2.5, "epoch", True])
def test_bad_update_interval(cls, blobs, update_interval):
    with pytest.raises(ValueError, match="'update_interval' parameter"):
        fast(cls, n_clusters=3, update_interval=update_interval).fit(blobs[0])


@pytest.mark.parametrize("gamma", [-0.1, float("nan"), "0.1", None])
def test_bad_gamma(blobs, gamma):
    with pytest.raises(ValueError, match="'gamma' parameter"):
        fast(IDEC, n_clusters=3, gamma=gamma).fit(blobs[0])


def test_a_fitted_bce_autoencoder_needs_unit_interval_data(blobs):
    X = MinMaxScaler().fit_transform(blobs[0])
    autoencoder = fast(IDEC).autoencoder.set_params(loss="bce", output_activation="sigmoid").fit(X)
    fast(IDEC, n_clusters=3, autoencoder=autoencoder).fit(X)
    with pytest.raises(ValueError, match=r"loss='bce' \(its reconstruction term\) needs every feature in \[0, 1\]"):
        fast(IDEC, n_clusters=3, autoencoder=autoencoder).fit(X * 5)
    # DEC has no reconstruction term
    fast(DEC, n_clusters=3, autoencoder=autoencoder).fit(X * 5)


@needs_bfloat16
def test_bfloat16_keeps_the_autoencoders_cross_entropy_finite():
    """Pixels at exactly 0 and 1 and an autoencoder trained with the
    cross-entropy, whose loss IDEC keeps: in bfloat16 the loss's clamp to
    1 - 1e-7 would round to 1 and its log to -inf; the loss runs in float32."""
    X = (np.random.RandomState(0).rand(300, 30) > 0.5).astype(np.float32)
    autoencoder = fast_autoencoder(loss="bce", output_activation="sigmoid", max_epochs=40).fit(X)
    est = fast(IDEC, n_clusters=3, autoencoder=autoencoder, max_epochs=20, tol=0.0, precision="bfloat16",
               pretrain_epochs=40).fit(X)
    reconstruction = [record["reconstruction"] for record in est.history_]
    assert np.isfinite(reconstruction).all()
