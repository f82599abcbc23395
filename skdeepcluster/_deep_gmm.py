"""Deep clustering by adaptive GMM modelling (Wang & Jiang, Neurocomputing 2021)."""

import numpy as np
import torch
from torch import nn

from ._core.distances import squared_distances
from ._core.gaussians import diagonal_gaussian_log_densities, gaussian_log_densities
from ._core.params import Integer, Options, Real
from ._core.weights import weighted_average
from .base import _INFERENCE_CHUNK, SHARED_RULES, BaseDeepClusterer


def mixture_log_joint(Z, means, covariances, weight_logits, floor=0.0):
    """``log omega_k + log g(z_i | mu_k, Sigma_k)``, shape (n, K): its
    logsumexp over ``k`` is ``log p(z_i | lambda)`` (eq. 1) and its
    log-softmax the posterior ``log p(c_k | z_i)`` (eq. 9).

    ``covariances`` are diagonals, shape (K, D), or full, shape (K, D, D);
    ``floor`` is added to the variances or the diagonal.
    """
    if covariances.dim() == 2:
        log_densities = diagonal_gaussian_log_densities(Z, means, covariances + floor)
    else:
        log_densities = gaussian_log_densities(Z, means, covariances, floor)
    return log_densities + torch.log_softmax(weight_logits, dim=0)


def neighbour_separation(means, n_neighbors):
    """``S(mu) = sum_k sum_{j in n(k)} ||mu_k - mu_j||^2`` (eq. 5), with
    ``n(k)`` the ``n_neighbors`` centres nearest to ``mu_k``.

    The neighbour sets are chosen on the current centres without gradient;
    the gradient of ``S`` with respect to ``mu_k`` is then that of eq. (10):
    ``2 sum_{j in n(k)} (mu_k - mu_j)`` plus the same from every ``j`` that
    counts ``k`` among its neighbours.
    """
    if n_neighbors == 0:
        return means.new_zeros(())
    distances = squared_distances(means, means)
    with torch.no_grad():
        others = distances + torch.diag(torch.full_like(distances[0], float("inf")))
        neighbours = torch.topk(others, n_neighbors, dim=1, largest=False).indices
    return distances.gather(1, neighbours).sum()


class DeepGMM(BaseDeepClusterer):
    """Deep clustering with a Gaussian mixture trained jointly with the
    encoder, its centres pushed apart (Wang & Jiang's adaptive GMM
    modelling).

    The network is a pretrained autoencoder and a "representation modelling
    network" holding a Gaussian mixture ``lambda = {omega_k, mu_k, Sigma_k}``
    on the embedding ``f(x)``. It starts from a Gaussian mixture fitted by
    EM to the pretrained embedding (the paper's second stage); then the
    network and the mixture are trained together by gradient ascent on
    eq. (5) less a reconstruction term, per mini-batch

        ``mean_x [log p(f(x) | lambda) - beta ||x - g(f(x))||^2] + eta * sum_k sum_{j in n(k)} ||mu_k - mu_j||^2``

    (the third stage; ``beta = reconstruction_weight``, 0 in the paper).
    The log-likelihood makes the mixture fit the embedding and draws every
    embedded point towards the centres that claim it (eq. 8); the
    reconstruction error keeps the embedding one the decoder can invert;
    the separation term pushes each centre away from its ``n(k)`` nearest
    centres, so that the clusters separate. A point's cluster is its most
    probable component, ``argmax_k p(c_k | f(x))`` (eq. 9).

    With ``separation_weight=0`` this is the paper's "DeepGMM" ablation (here
    with the reconstruction term kept).

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters K: the mixture's components, m in the paper.
    separation_weight : float, default=0.01
        eta, the weight of the centre-separation term. The paper picks it
        per dataset from {0.1, 0.01, 0.001, 0.0001}; 0 switches the term
        off. It acts on squared distances in the embedding, so its effect
        depends on the embedding's scale.
    n_neighbors : int or None, default=None
        ``|n(k)|``, how many nearest centres each centre is pushed away
        from. ``None`` is the paper's ``n_clusters // 2``.
    covariance_type : {"full", "diag"}, default="full"
        The components' covariances: full (each ``L L'`` for a trained
        lower-triangular ``L``), or diagonal as the paper's. See Notes for
        why full is the default.
    reg_covar : float, default=1e-6
        Added to every variance wherever it is used (as sklearn's
        :class:`~sklearn.mixture.GaussianMixture`): a floor that keeps the
        likelihood bounded when a component shrinks onto its points. The
        starting EM uses it too (the start is
        ``GaussianMixture(reg_covar=reg_covar)``), and the trained
        covariances add it on top of the EM's, so the starting covariances
        hold it twice.
    reconstruction_weight : float, default=10.0
        Weight of the autoencoder's reconstruction error (per sample, summed
        over features) added to the loss, as IDEC does. The paper trains the
        encoder and the mixture only, which is 0 here; see Notes for why the
        default keeps the decoder.
    hidden_dims : tuple of int, default=(500, 500, 2000)
        Encoder hidden widths (the decoder mirrors them): the paper's
        d-500-500-2000-10.
    embedding_dim : int, default=10
    pretrain_epochs : int, default=400
        Epochs of autoencoder pretraining (:class:`AutoEncoder`'s recipe).
    max_epochs : int, default=100
        Epochs of joint training. The paper runs 50,000 iterations of
        batch 128, about 91 epochs of its 70,000 MNIST images.
    batch_size : int, default=256
        Mini-batch of the pretraining and of the joint training (the paper
        uses 128 for the latter; 256 lets all methods share one cached
        pretraining).
    optimizer : {"adam", "sgd"}, default="adam"
        ``"sgd"`` is the paper's plain stochastic gradient descent (here
        with momentum 0.9); see Notes for why Adam is the default.
    learning_rate : float or None, default=None
        ``None`` is 1e-4 for Adam and the paper's 0.01 for SGD. A component
        much narrower than the embedding's scale makes the gradients with
        respect to its mean large (they scale as ``1 / sigma^2``): there even
        Adam's steps can undo an exact start in the first epoch; lower the
        rate, or raise ``reconstruction_weight``.
    tol : float, default=0.0
        Stop once fewer than this fraction of the labels change in an
        epoch; 0 runs every epoch, as the paper's fixed iteration count.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"``: the layers of every training step, the default
        pretraining's too, run under bfloat16 autocast; losses, cluster
        parameters and prediction stay float32 or float64 (README section
        "Mixed precision").
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"``
        or ``"cuda:N"``. ``"mps"`` is refused: the mixture is trained in
        float64, which MPS lacks.
    memory : None, str, os.PathLike or joblib.Memory, default=None
        Caches the pretraining, keyed on its seed: read back only with a
        fixed ``random_state`` (``None`` draws a new seed every fit, and warns).
    random_state : int, RandomState instance or None, default=None
    verbose : int or bool, default=0
    autoencoder : AutoEncoder or None, default=None
        Start from this autoencoder (fitted: used as is, and kept through
        ``clone`` and searches when wrapped in
        :class:`~sklearn.frozen.FrozenEstimator`; unfitted: fitted on ``X``,
        with this estimator's ``random_state`` unless it has its own)
        instead of pretraining one from ``hidden_dims``,
        ``embedding_dim`` and ``pretrain_epochs``.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, embedding_dim)
        The components' means ``mu_k`` in the embedding space.
    covariances_ : ndarray of shape (n_clusters, embedding_dim) or (n_clusters, embedding_dim, embedding_dim)
        The components' diagonal variances ``sigma_kd^2`` or full
        covariances, ``reg_covar`` included, shaped as sklearn's
        :class:`~sklearn.mixture.GaussianMixture` shapes them.
    weights_ : ndarray of shape (n_clusters,)
        Mixing weights ``omega_k``: the softmax of logits trained with the
        network (eq. 12), which move towards the mean posterior only as fast
        as ``learning_rate`` lets them, so a component can keep its weight
        after losing every point of ``labels_``.
    n_neighbors_ : int
        ``|n(k)|`` used, after resolving ``None``.
    labels_ : ndarray of shape (n_samples,)
    inertia_ : float
        Sum of squared distances of the embedded samples to their closest
        centre.
    n_iter_ : int
        Epochs of joint training run.
    n_steps_ : int
        Mini-batch updates run.
    converged_ : bool
        Whether the ``tol`` rule stopped training (rather than
        ``max_epochs``).
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``log_likelihood`` (mean per
        sample), ``separation`` (``S(mu)``), ``reconstruction`` (when
        ``reconstruction_weight > 0``), ``delta_label``,
        ``n_clusters_used``, ``time``, ``samples_per_second``.
    autoencoder_ : AutoEncoder or None
    module_ : torch.nn.Module
    device_ : torch.device
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    ADMMCluster : a full-covariance Gaussian mixture tied to the embedding by ADMM.
    IDEC : Student's t soft assignments sharpened into a target distribution.

    Notes
    -----
    The paper gives no code; where it is silent or ambiguous:

    * The mixture's parameters are trained through an unconstrained
      parametrisation: the weights are ``softmax`` of free logits and the
      variances ``exp`` of free log-variances plus ``reg_covar``. Gradient
      ascent on these is eqs. (10)-(12): the gradient with respect to a
      weight logit is ``p(c_k | y) - omega_k`` (eq. 12), and that with
      respect to a log-variance is eq. (11) halved. The paper does not say
      how it keeps variances positive and weights on the simplex.
    * ``n(k)``: the ``n_neighbors`` centres nearest to ``mu_k`` in
      Euclidean distance, chosen again at every step. Eq. (4) speaks of a
      "normalized distance" that the paper does not define; eq. (5) and
      the gradient (10) use the plain squared distance, as here.
    * The objective has no upper bound, and without the reconstruction term
      a flexible encoder finds its degenerate end: it moves points out of
      broad components into sharper ones (a point's log-density is highest
      at the mean of the component with the largest ``omega_k /
      sqrt(det Sigma_k)``), those components shrink further, and a few
      absorb the data. On digits with the paper's loss
      (``reconstruction_weight=0``), ACC fell from 0.844 at the start to
      0.723 (5 seeds; seed 4 from 0.900 to 0.618). The paper's separation term
      does not stop this: it pushes the centres apart, not the points. The
      reconstruction term keeps the embedding one the decoder can
      reconstruct from. On digits, ACC after training was 0.760, 0.814,
      0.847 and 0.847 with weights 0.1, 1, 10 and 100. The weight compares two
      quantities of different scales (a log-density of the embedding, a
      squared error summed over the input's features), so other data may
      need another value.
    * Full covariances by default. On our pretrained embeddings a
      diagonal-covariance mixture is a much weaker start than a full one
      (ACC 0.606 against 0.710 on MNIST-5k, 0.781 against 0.844 on digits,
      5 seeds), as the clusters' axes are not the embedding's, and trained
      it fell further on digits (0.646). The paper chose diagonal ones for
      speed, which at ``embedding_dim=10`` does not matter.
    * The start is sklearn's :class:`~sklearn.mixture.GaussianMixture`
      (``n_init=10``) on the pretrained embedding. The pretraining is
      :class:`AutoEncoder`'s end-to-end recipe rather than the paper's RBM
      stacks with dropout and data augmentation.
    * Adam at 1e-4 rather than SGD at 0.01 (``optimizer="sgd"``, with
      momentum 0.9: the paper does not give the momentum). The gradient
      with respect to a mean scales with ``1 / sigma^2``, so a fixed SGD
      step diverges where components are narrow: at 0.01 it did on all 5
      digits seeds.
    * ``separation_weight`` acts on squared distances, so its effect
      depends on the embedding's scale. On MNIST-5k (embedding standard
      deviation about 2.6 per dimension; this and digits' 0.5 are one-off
      measurements, not kept) eta = 0.01 ended under eta = 0
      on every seed (ACC 0.718 against 0.726); on digits (about 0.5) eta =
      0.1 ended above eta = 0 in ACC on every seed (0.852 against 0.847). The
      paper reports the separation term as a clear gain; here it is a
      small effect of either sign.

    References
    ----------
    J. Wang and J. Jiang. Unsupervised deep clustering via adaptive GMM
    modeling and optimization. Neurocomputing 433 (2021) 199-211.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdeepcluster import DeepGMM
    >>> X = load_digits().data / 16
    >>> gmm = DeepGMM(n_clusters=10, hidden_dims=(64,), embedding_dim=5,
    ...               pretrain_epochs=5, max_epochs=3, device="cpu",
    ...               random_state=0)
    >>> gmm.fit_predict(X).shape
    (1797,)
    >>> gmm.predict_proba(X[:2]).sum(axis=1).round(6)
    array([1., 1.])
    """

    _float64_training = True

    _parameter_rules = {
        **SHARED_RULES,
        "separation_weight": Real(low=0),
        "n_neighbors": Integer(low=0, allow_none=True),
        "covariance_type": Options("diag", "full"),
        "reg_covar": Real(low=0, low_open=True),
        "reconstruction_weight": Real(low=0),
        "optimizer": Options("adam", "sgd"),
        "learning_rate": Real(low=0, low_open=True, allow_none=True),
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        separation_weight=0.01,
        n_neighbors=None,
        covariance_type="full",
        reg_covar=1e-6,
        reconstruction_weight=10.0,
        hidden_dims=(500, 500, 2000),
        embedding_dim=10,
        pretrain_epochs=400,
        max_epochs=100,
        batch_size=256,
        optimizer="adam",
        learning_rate=None,
        tol=0.0,
        precision="float32",
        device="auto",
        memory=None,
        random_state=None,
        verbose=0,
        autoencoder=None,
    ):
        self.n_clusters = n_clusters
        self.separation_weight = separation_weight
        self.n_neighbors = n_neighbors
        self.covariance_type = covariance_type
        self.reg_covar = reg_covar
        self.reconstruction_weight = reconstruction_weight
        self.hidden_dims = hidden_dims
        self.embedding_dim = embedding_dim
        self.pretrain_epochs = pretrain_epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.tol = tol
        self.precision = precision
        self.device = device
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose
        self.autoencoder = autoencoder

    # -- hooks -------------------------------------------------------------------
    def _check_method_params(self, X):
        if self.n_neighbors is not None and self.n_neighbors >= self.n_clusters:
            raise ValueError(
                f"n_neighbors={self.n_neighbors} must be < n_clusters={self.n_clusters}: "
                "a centre has n_clusters - 1 other centres to be pushed away from."
            )

    def _empty_cluster_advice(self):
        return "Try fewer clusters, another random_state, a larger reconstruction_weight or a smaller learning_rate."

    def _make_optimizer(self, parameters):
        rate = self.learning_rate
        if self.optimizer == "sgd":
            return torch.optim.SGD(parameters, lr=0.01 if rate is None else rate, momentum=0.9)
        return torch.optim.Adam(parameters, lr=1e-4 if rate is None else rate)

    def _init_clusters(self, Z, data, seed):
        self.n_neighbors_ = self.n_clusters // 2 if self.n_neighbors is None else self.n_neighbors
        gmm, labels = self._fit_gaussian_mixture(
            Z, seed, n_init=10, covariance_type=self.covariance_type, reg_covar=self.reg_covar
        )
        # the EM's covariances already hold reg_covar; the trained ones add it
        # on top (see reg_covar), so that they stay positive definite even
        # where a component's own scatter is singular
        if self.covariance_type == "diag":
            covariance = {"log_variances": np.log(gmm.covariances_)}
        else:
            covariance = {"covariance_factors": np.linalg.cholesky(gmm.covariances_)}
        fitted = {"centers": gmm.means_, **covariance, "weight_logits": np.log(gmm.weights_)}
        module = self.module_
        for name, value in fitted.items():
            setattr(module, name, nn.Parameter(torch.as_tensor(value, dtype=Z.dtype, device=Z.device)))
        module.register_buffer("reg_covar", torch.tensor(self.reg_covar, dtype=Z.dtype, device=Z.device))
        return labels

    def _on_checkpoint(self, step, data):
        Z = self._embed_all(data)
        return torch.cat([self._log_joint(self.module_, z).argmax(dim=1) for z in Z.split(_INFERENCE_CHUNK)])

    def _batch_loss(self, x, index):
        module = self.module_
        if self.reconstruction_weight > 0:
            z, x_hat = self._training_forward(module, x)
        else:
            z = self._training_forward(module.encoder, x)
        log_likelihood = torch.logsumexp(self._log_joint(module, z), dim=1).mean()
        separation = neighbour_separation(module.centers, self.n_neighbors_)
        loss = -log_likelihood - self.separation_weight * separation
        parts = {"log_likelihood": log_likelihood, "separation": separation}
        if self.reconstruction_weight > 0:
            reconstruction = (x - x_hat).pow(2).sum(dim=1).mean()
            loss = loss + self.reconstruction_weight * reconstruction
            parts["reconstruction"] = reconstruction
        return {"loss": loss, **parts}

    def _finish_fit(self):
        module = self.module_
        self.cluster_centers_ = module.centers.detach().cpu().double().numpy()
        covariances = self._covariances(module).detach().cpu().double().numpy()
        if covariances.ndim == 2:
            self.covariances_ = covariances + self.reg_covar
        else:
            self.covariances_ = covariances + self.reg_covar * np.eye(covariances.shape[1])
        self.weights_ = torch.softmax(module.weight_logits.detach().double(), dim=0).cpu().numpy()

    @staticmethod
    def _covariances(module):
        """The components' covariances without the floor, in float64:
        diagonals ``exp(log variance)``, or full ``L L'`` from free
        lower-triangular factors."""
        if hasattr(module, "log_variances"):
            return module.log_variances.double().exp()
        factors = torch.tril(module.covariance_factors.double())
        return factors @ factors.transpose(1, 2)

    def _log_joint(self, module, z):
        # float64: a component that narrows to reg_covar has a covariance
        # whose Cholesky factorisation float32 cannot hold
        return mixture_log_joint(
            z.double(),
            module.centers.double(),
            self._covariances(module),
            module.weight_logits.double(),
            module.reg_covar.double(),
        )

    def _soft_assign(self, module, x):
        return torch.softmax(self._log_joint(module, module.encoder(x)), dim=1)

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood of the embedded ``X`` under the fitted mixture.

        ``mean_i log p(f(x_i) | lambda)`` (eq. 1), as
        :meth:`sklearn.mixture.GaussianMixture.score` on ``transform(X)``;
        higher is better. Embeddings of different models have different
        scales, so this is not a model-selection criterion across
        hyperparameters.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the mean.

        Returns
        -------
        score : float
        """
        log_likelihoods = self._map(X, lambda m, x: torch.logsumexp(self._log_joint(m, m.encoder(x)), dim=1))
        return weighted_average(log_likelihoods, sample_weight)
