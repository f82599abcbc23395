"""DeepCluster (Tian, Zhou & Guan, ECML-PKDD 2017): k-means or a Gaussian
mixture on a copy Y of the embedding, tied to it by ADMM."""

import numpy as np
import torch

from ._core.distances import squared_distances
from ._core.gaussians import floored_cholesky, gaussian_log_densities
from ._core.params import AnyOf, Options, Real
from .base import _INFERENCE_CHUNK, SHARED_RULES, BaseDeepClusterer

#: The authors' code adds this to every covariance's diagonal where it is
#: used (``inv(Sigma + 1e-5 I)``); the floor used is at least this.
COVARIANCE_FLOOR = 1e-5

#: The authors' settings per clustering model (their ``demo.m`` and sec. 6.2).
PAPER_RHO = {"kmeans": 1.0, "gmm": 1000.0}
PAPER_CONSTRAINT_WEIGHT = {"kmeans": 1.0, "gmm": 0.01}


def kmeans_y_update(F, U, centers, labels, clustering_weight, rho):
    """``y_i = (lambda c_i + rho (f(x_i) - u_i)) / (lambda + rho)``, eq. (10):
    the minimiser of ``lambda/2 ||y - c_i||^2 + rho/2 ||y - f(x_i) + u_i||^2``."""
    return (clustering_weight * centers[labels] + rho * (F - U)) / (clustering_weight + rho)


def cluster_means(Y, labels, previous, row_weights=None):
    """Mean of the rows of ``Y`` in each cluster, weighted by ``row_weights``
    when given; a cluster without weight keeps its ``previous`` centre (the
    authors' code divides by zero there)."""
    K = previous.shape[0]
    if row_weights is None:
        sums = torch.zeros_like(previous).index_add_(0, labels, Y)
        counts = torch.bincount(labels, minlength=K).to(Y.dtype)
        return torch.where(counts[:, None] > 0, sums / counts.clamp_min(1)[:, None], previous)
    sums = torch.zeros_like(previous).index_add_(0, labels, Y * row_weights[:, None])
    mass = torch.zeros(K, dtype=Y.dtype, device=Y.device).index_add_(0, labels, row_weights)
    return torch.where(mass[:, None] > 0, sums / mass.clamp_min(1e-300)[:, None], previous)


def gmm_log_posterior(Y, means, covariances, log_weights, floor):
    """``log gamma_ik``: the responsibilities of the E-step, in log space."""
    return torch.log_softmax(gaussian_log_densities(Y, means, covariances, floor) + log_weights, dim=1)


def gmm_y_update(F, U, gamma, means, covariances, floor, clustering_weight, rho):
    """Eq. (14): ``y_i = [lambda sum_k g_ik P_k + rho I]^-1 [rho (f(x_i) - u_i) +
    lambda sum_k g_ik P_k mu_k]`` with ``P_k = (Sigma_k + floor I)^-1``: the
    minimiser of ``lambda sum_k g_ik (y - mu_k)' P_k (y - mu_k) / 2 + rho/2
    ||y - f(x_i) + u_i||^2`` for fixed responsibilities ``g``."""
    D = F.shape[1]
    eye = torch.eye(D, dtype=F.dtype, device=F.device)
    precisions = torch.cholesky_inverse(floored_cholesky(covariances, floor))
    precision_means = torch.einsum("kde,ke->kd", precisions, means)
    targets = rho * (F - U) + clustering_weight * gamma @ precision_means
    # a D x D system per row: rows go in blocks of about 2**22 matrix entries
    block = max(1, 2**22 // D**2)
    return torch.cat(
        [
            torch.linalg.solve(
                clustering_weight * torch.einsum("nk,kde->nde", g, precisions) + rho * eye, t.unsqueeze(-1)
            ).squeeze(-1)
            for g, t in zip(gamma.split(block), targets.split(block))
        ]
    )


def gmm_m_step(Y, gamma, means, covariances, log_weights, row_weights=None):
    """Eq. (15): means, full covariances and weights from ``Y`` and the
    responsibilities (times ``row_weights`` when given); a component whose
    mass underflows keeps its previous mean and covariance."""
    total = Y.shape[0]
    if row_weights is not None:
        gamma = gamma * row_weights[:, None]
        total = row_weights.sum()
    mass = gamma.sum(dim=0)
    alive = mass > 1e-10 * total
    new_means = (gamma.T @ Y) / mass.clamp_min(1e-300)[:, None]
    new_covariances = torch.empty_like(covariances)
    for k in range(means.shape[0]):
        centred = Y - new_means[k]
        new_covariances[k] = (gamma[:, k, None] * centred).T @ centred / mass[k].clamp_min(1e-300)
    new_covariances = (new_covariances + new_covariances.transpose(1, 2)) / 2
    means = torch.where(alive[:, None], new_means, means)
    covariances = torch.where(alive[:, None, None], new_covariances, covariances)
    log_weights = torch.log((mass / total).clamp_min(1e-300))
    return means, covariances, log_weights


class ADMMCluster(BaseDeepClusterer):
    """DeepCluster: an autoencoder and k-means (DC-Kmeans) or a Gaussian
    mixture (DC-GMM) on a copy ``Y`` of its embedding, optimised by ADMM.

    The clustering model is fitted to a dummy variable ``Y`` held equal to
    the embedding ``f(X)`` by the constraint ``Y = f(X)`` (eq. 6). Each ADMM
    iteration trains the network for one epoch on the reconstruction error
    plus ``alpha * rho / 2 * ||y - f(x) + u||^2``, then updates ``Y``, the
    clustering parameters and the scaled dual variable ``U`` in closed form
    (eqs. 10, 14 and 15): for k-means, ``y`` moves towards its nearest centre
    and the centres to their clusters' means; for the Gaussian mixture, an
    E-step, the ``y`` update of eq. (14) and an M-step with full
    covariances.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters K.
    clustering : {"kmeans", "gmm"}, default="kmeans"
        The clustering model on ``Y``: DC-Kmeans or DC-GMM.
    rho : float or None, default=None
        rho, the ADMM penalty tying ``Y`` to ``f(X)``. ``None`` is the
        authors' setting: 1 for k-means, 1000 for the Gaussian mixture. The
        paper finds the results insensitive to it and picks it by line search.
    constraint_weight : float or None, default=None
        alpha, the weight of the constraint term in the network's loss.
        ``None`` is the paper's: 1 for k-means, 0.01 for the Gaussian
        mixture (sec. 6.2, image data).
    clustering_weight : float, default=1.0
        lambda, the weight of the clustering objective against the
        constraint in the ``Y`` update; the paper fixes it to 1.
    hidden_dims : tuple of int, default=(500, 500, 2000)
        Encoder hidden widths (the decoder mirrors them), as DEC's.
    embedding_dim : int, default=10
    pretrain_epochs : int, default=400
        Epochs of autoencoder pretraining (:class:`AutoEncoder`'s recipe).
    max_epochs : int, default=200
        Network epochs, each followed by an ADMM update of ``Y``, the
        clustering parameters and ``U``. The authors' code runs 200
        iterations of DC-Kmeans and 300 of DC-GMM, each an epoch and an
        update.
    batch_size : int, default=256
        Mini-batch of the pretraining and of the network epochs. The
        authors' code uses 100; 256, every other method's, lets them share
        one cached pretraining.
    optimizer : {"adam", "adadelta"}, default="adam"
        Optimizer of the network epochs. The paper uses AdaDelta (rho 0.9,
        eps 1e-7 in the code); started fresh on our pretrained network it
        undoes much of the pretraining in the first epoch (see Notes).
    learning_rate : float or None, default=None
        Step size; ``None`` is 1e-4 for Adam and 1.0 for AdaDelta (the
        code's AdaDelta has no step size, which is 1.0 in torch).
    tol : float, default=0.001
        Stop once fewer than this fraction of the labels of ``f(X)`` change
        in an ADMM iteration (the paper's 0.1 % threshold, given for
        DC-Kmeans; the code has none); 0 runs every iteration.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"``: the layers of every training step, the default
        pretraining's too, run under bfloat16 autocast; losses, cluster
        parameters and prediction stay float32 or float64 (README section
        "Mixed precision").
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"``
        or ``"cuda:N"``. ``"mps"`` is refused: ``Y``, ``U`` and the
        clustering model are kept in float64, which MPS lacks.
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
        Centres (k-means) or component means (Gaussian mixture) in the
        embedding space.
    covariances_ : ndarray of shape (n_clusters, embedding_dim, embedding_dim)
        Full covariances (``clustering="gmm"`` only; ``covariance_floor_`` is
        added to their diagonal wherever they are used).
    covariance_floor_ : float
        ``max(clustering_weight / rho, 1e-5)`` (``clustering="gmm"`` only):
        it bounds the mixture's curvature ``clustering_weight *
        Sigma^-1`` by ``rho`` (see Notes).
    weights_ : ndarray of shape (n_clusters,)
        Mixing weights (``clustering="gmm"`` only).
    variance_ : float
        Mean squared distance per dimension of the embedding ``f(X)`` to its
        nearest centre at the last ADMM update (``clustering="kmeans"``
        only); the scale of ``predict_proba``.
    rho_ : float
    constraint_weight_ : float
        The values used, after resolving ``None``.
    labels_ : ndarray of shape (n_samples,)
    inertia_ : float
        Sum of squared distances of the embedded samples to their closest
        centre.
    n_iter_ : int
        Network epochs run, each followed by an ADMM update.
    n_steps_ : int
        Mini-batch updates of the network run.
    converged_ : bool
        Whether fewer than ``tol`` of the labels changed at the last ADMM
        update, the one after the last epoch included.
    history_ : list of dict
        Per iteration: ``epoch``, ``loss``, ``reconstruction`` and
        ``constraint`` (``||y - f(x) + u||^2`` per sample) over the epoch's
        batches, ``delta_label``, ``n_clusters_used``, ``time``,
        ``samples_per_second``. Record ``e``'s
        ``delta_label`` is the change made by the update before epoch ``e``,
        except the last record's: that is the change made by the last
        update, which replaces the one before (as a ``tol`` stop's does).
    autoencoder_ : AutoEncoder or None
    module_ : torch.nn.Module
    device_ : torch.device
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    DeepKMeans : k-means in the embedding, trained by gradient descent.
    IDEC : self-training clustering loss on the embedding.

    Notes
    -----
    Where the paper and the authors' MATLAB code differ, or the paper is
    silent (the runs cited below that use up their epochs, the AdaDelta
    and covariance-floor ones, predate the update after the last epoch and
    made one ADMM update fewer; on digits that update moves 0-0.03 % of
    the labels after 200 epochs, ``benchmarks/admm_last_update.py``):

    * Initialisation: k-means (``n_init=10``) or a full-covariance Gaussian
      mixture (``n_init=10``) on the pretrained embedding, with ``Y = f(X)``
      and ``U = 0`` (the paper's warm start). The released code draws
      centres from a random balanced partition instead (its first version
      used k-means); with a Gaussian mixture it keeps those random means
      and takes diagonal covariances and the weights from k-means.
    * The network's loss is the paper's eq. (9), ``||x - x_hat||^2 + alpha
      rho / 2 ||y - f(x) + u||^2`` per sample; the code halves the
      reconstruction term, so its constraint weighs twice as much against
      it. The dual update is ``u + y - f(x)``, as in Algs. 2 and 3 and the
      code (eq. 10 prints the opposite sign).
    * The assignments of an iteration come from the previous ``Y``, before
      its update, and the centres or the M-step use the updated ``Y`` (the
      code's order); ``tol`` compares the partitions of ``f(X)`` of
      successive iterations, which is what ``predict`` gives (``Y`` is
      pulled towards the centres and its partition hardly moves). The dual step is 1 for both models (the paper); the
      code uses 0.5 for the Gaussian mixture.
    * The covariance floor is ``clustering_weight / rho`` (at least the
      code's 1e-5), a heuristic: it caps the curvature ``lambda P_k`` of
      the quadratic that the ``Y`` update minimises at ``rho``, which keeps
      ``Y`` from being pulled harder towards a mean than towards ``f(x) -
      u``. The full-covariance components on digits' 10-D embedding are
      nearly singular; with the code's fixed 1e-5, DC-GMM
      fell to ACC 0.440 and 0.494 on digits seeds 0 and 1 (60 iterations,
      ``tol=0``; ``benchmarks/admm_floor.py``), against 0.824 and 0.870
      with this floor. The floor is absolute, so its effect depends on the
      embedding's scale. It is also used in the E-step's normaliser (the
      code's uses the unfloored determinant).
    * An empty k-means cluster keeps its centre, and a mixture component
      whose mass underflows keeps its mean and covariance, where the code
      produces NaN; the estimator warns if a cluster is empty at the end.
    * The network is :class:`AutoEncoder`'s (ReLU, linear embedding and
      output); the paper pretrains sigmoid networks with RBMs.
    * Adam at 1e-4 rather than the paper's AdaDelta (``optimizer=
      "adadelta"`` keeps it). Started fresh on a pretrained network,
      AdaDelta's first steps move every weight by about ``sqrt(eps / (1 -
      rho))``, 1e-3, whatever its gradient; on MNIST-5k (H100, seeds 0-4,
      benchmark ``gpu/gpu_admm_variants``) it ended at a mean ACC of 0.625
      (k-means) and 0.633 (Gaussian mixture), under AE + k-means (0.688),
      where Adam gives 0.710 and 0.712. DeepKMeans uses 1e-4 for the same reason.
    * ``predict`` assigns ``f(x)`` of new points (there is no ``Y`` for
      them): the nearest centre, or the most probable component.
      ``predict_proba`` is the Gaussian mixture's posterior, or for
      k-means a softmax of ``-||f(x) - c_k||^2 / (2 variance_)``, the
      posterior of equal spherical Gaussians at the centres.

    References
    ----------
    K. Tian, S. Zhou and J. Guan. DeepCluster: A General Clustering
    Framework based on Deep Learning. ECML-PKDD 2017.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skdeepcluster import ADMMCluster
    >>> X = load_digits().data / 16
    >>> dc = ADMMCluster(n_clusters=10, clustering="gmm", hidden_dims=(64,),
    ...                  embedding_dim=5, pretrain_epochs=5, max_epochs=3,
    ...                  device="cpu", random_state=0)
    >>> dc.fit_predict(X).shape
    (1797,)
    >>> dc.predict_proba(X[:2]).sum(axis=1).round(6)
    array([1., 1.])
    """

    _parameter_rules = {
        **SHARED_RULES,
        "clustering": Options("kmeans", "gmm"),
        "rho": AnyOf(Real(low=0, low_open=True), Options(None)),
        "constraint_weight": AnyOf(Real(low=0), Options(None)),
        "clustering_weight": Real(low=0, low_open=True),
        "optimizer": Options("adam", "adadelta"),
        "learning_rate": Real(low=0, low_open=True, allow_none=True),
    }
    _clustering_weight_name = "clustering_weight"
    _float64_training = True

    def __init__(
        self,
        n_clusters=8,
        *,
        clustering="kmeans",
        rho=None,
        constraint_weight=None,
        clustering_weight=1.0,
        hidden_dims=(500, 500, 2000),
        embedding_dim=10,
        pretrain_epochs=400,
        max_epochs=200,
        batch_size=256,
        optimizer="adam",
        learning_rate=None,
        tol=1e-3,
        precision="float32",
        device="auto",
        memory=None,
        random_state=None,
        verbose=0,
        autoencoder=None,
    ):
        self.n_clusters = n_clusters
        self.clustering = clustering
        self.rho = rho
        self.constraint_weight = constraint_weight
        self.clustering_weight = clustering_weight
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
    def _make_optimizer(self, parameters):
        rate = self.learning_rate
        if self.optimizer == "adadelta":
            return torch.optim.Adadelta(parameters, lr=1.0 if rate is None else rate, rho=0.9, eps=1e-7)
        return torch.optim.Adam(parameters, lr=1e-4 if rate is None else rate)

    def _init_clusters(self, Z, data, seed):
        self.rho_ = float(PAPER_RHO[self.clustering] if self.rho is None else self.rho)
        self.constraint_weight_ = float(
            PAPER_CONSTRAINT_WEIGHT[self.clustering] if self.constraint_weight is None else self.constraint_weight
        )
        module = self.module_
        if self.clustering == "gmm":
            gmm, _ = self._fit_gaussian_mixture(Z, seed, n_init=10)
            fitted = {"centers": gmm.means_, "covariances": gmm.covariances_, "log_weights": np.log(gmm.weights_)}
            for name, value in fitted.items():
                module.register_buffer(name, torch.as_tensor(value, dtype=torch.float64, device=Z.device))
            floor = max(self.clustering_weight / self.rho_, COVARIANCE_FLOOR)
            module.register_buffer("covariance_floor", torch.tensor(floor, dtype=torch.float64, device=Z.device))
        else:
            centers, _ = self._kmeans(Z, seed, n_init=10)
            module.register_buffer("centers", centers.double())
            module.register_buffer("variance", torch.ones((), dtype=torch.float64, device=Z.device))
        self._fit_state["Y"] = Z.detach().clone()
        self._fit_state["U"] = torch.zeros_like(Z)
        self._assign_y(Z.detach().double())
        return self._assign_embedding(Z.detach().double())

    def _on_checkpoint(self, step, data):
        if step == 0:  # the first network epoch runs on the warm start Y = f(X), U = 0
            return self._fit_state["labels"]  # Y = f(X): the labels of f(X) too
        state, module = self._fit_state, self.module_
        F = self._embed_all(data).double()
        Y, U = state["Y"].double(), state["U"].double()
        lam, rho = self.clustering_weight, self.rho_
        row_weights = self._row_weights()
        row_weights = None if row_weights is None else row_weights.double()
        # a row's weight scales its whole term of the augmented Lagrangian,
        # so each row's Y update is unchanged and only the cluster
        # parameters' updates weigh the rows
        # assignments of the previous Y under the current parameters (the
        # code's order), then Y, then the parameters from the new Y
        if self.clustering == "gmm":
            gamma = state["log_gamma"].exp()
            Y = gmm_y_update(F, U, gamma, module.centers, module.covariances, module.covariance_floor, lam, rho)
            module.centers, module.covariances, module.log_weights = gmm_m_step(
                Y, gamma, module.centers, module.covariances, module.log_weights, row_weights
            )
        else:
            labels = state["labels"]
            Y = kmeans_y_update(F, U, module.centers, labels, lam, rho)
            module.centers = cluster_means(Y, labels, module.centers, row_weights)
        state["U"] = (U + Y - F).float()
        state["Y"] = Y.float()
        self._assign_y(Y)
        return self._assign_embedding(F)

    def _on_training_end(self, step, data):
        # the epochs ran out: the last epoch's ADMM update, which the next
        # epoch's checkpoint would have made
        return self._on_checkpoint(step, data)

    def _assign_y(self, Y):
        """Assign ``Y`` (float64) under the current parameters: the labels or
        responsibilities the next ADMM iteration uses."""
        module, state = self.module_, self._fit_state
        if self.clustering == "gmm":
            state["log_gamma"] = torch.cat(
                [
                    gmm_log_posterior(y, module.centers, module.covariances, module.log_weights, module.covariance_floor)
                    for y in Y.split(_INFERENCE_CHUNK)
                ]
            )
            labels = state["log_gamma"].argmax(dim=1)
        else:
            labels = torch.cat([squared_distances(y, module.centers).argmin(dim=1) for y in Y.split(_INFERENCE_CHUNK)])
        state["labels"] = labels

    def _assign_embedding(self, F):
        """Labels of the embedding ``F`` (float64), as ``predict`` gives them:
        what the ``tol`` rule compares. For k-means, also the spherical
        variance of ``F`` around its centres that ``predict_proba`` uses."""
        module = self.module_
        labels = torch.cat([self._log_proba(module, f).argmax(dim=1) for f in F.split(_INFERENCE_CHUNK)])
        if self.clustering == "kmeans":
            squared = (F - module.centers[labels]).pow(2)
            row_weights = self._row_weights()
            if row_weights is not None:
                squared = squared * row_weights.double()[:, None]
            module.variance = (squared.sum() / F.numel()).clamp_min(1e-12)
        return labels

    def _batch_loss(self, x, index):
        z, x_hat = self._training_forward(self.module_, x)
        reconstruction = (x - x_hat).pow(2).sum(dim=1).mean()
        constraint = (self._fit_state["Y"][index] - z + self._fit_state["U"][index]).pow(2).sum(dim=1).mean()
        loss = reconstruction + self.constraint_weight_ * self.rho_ / 2 * constraint
        return {"loss": loss, "reconstruction": reconstruction, "constraint": constraint}

    def _finish_fit(self):
        module = self.module_
        self.cluster_centers_ = module.centers.detach().cpu().double().numpy()
        if self.clustering == "gmm":
            self.covariances_ = module.covariances.cpu().numpy()
            self.weights_ = module.log_weights.exp().cpu().numpy()
            self.covariance_floor_ = float(module.covariance_floor)
        else:
            self.variance_ = float(module.variance)

    def _log_proba(self, module, z):
        """Log cluster probabilities of embedded rows ``z``."""
        z = z.to(module.centers.dtype)
        # the fitted model's kind, which a later set_params(clustering=...) does not change
        if hasattr(module, "covariances"):
            return gmm_log_posterior(z, module.centers, module.covariances, module.log_weights, module.covariance_floor)
        return torch.log_softmax(-squared_distances(z, module.centers) / (2 * module.variance), dim=1)

    def _soft_assign(self, module, x):
        return self._log_proba(module, module.encoder(x)).exp()

    def _hard_assign(self, module, x):
        return self._log_proba(module, module.encoder(x)).argmax(dim=1)
