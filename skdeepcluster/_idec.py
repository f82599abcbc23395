"""IDEC (Guo, Gao, Liu & Yin, IJCAI 2017) and DEC (Xie, Girshick & Farhadi, ICML 2016)."""

import numpy as np
import torch
from torch import nn

from ._core.autoencoder import reconstruction_loss
from ._core.distances import squared_distances
from ._core.params import AnyOf, Integer, Options, Real
from ._core.training import label_change
from .base import SHARED_RULES, BaseDeepClusterer, check_unit_interval


def log_soft_assignment(Z, centers):
    """``log q_ij`` of eq. (3): Student's t kernel with one degree of freedom
    (alpha = 1), normalised over the clusters.

    Working in log space keeps the KL divergence finite when a point is far
    from every centre.
    """
    return torch.log_softmax(-torch.log1p(squared_distances(Z, centers)), dim=1)


def soft_assignment(Z, centers):
    """``q_ij = (1 + ||z_i - mu_j||^2)^-1 / sum_j' (1 + ||z_i - mu_j'||^2)^-1``, eq. (3)."""
    return torch.softmax(-torch.log1p(squared_distances(Z, centers)), dim=1)


def target_distribution(Q, row_weights=None):
    """``p_ij = (q_ij^2 / f_j) / sum_j' (q_ij'^2 / f_j')`` with ``f_j = sum_i q_ij``, eq. (4).

    Squaring sharpens the confident assignments; dividing by the soft cluster
    size ``f_j`` keeps large clusters from absorbing the others. With
    ``row_weights``, ``f_j = sum_i w_i q_ij``: a row of weight 2 counts as
    two copies.
    """
    frequencies = Q.sum(dim=0) if row_weights is None else row_weights @ Q
    weight = Q.pow(2) / frequencies
    return weight / weight.sum(dim=1, keepdim=True)


def clustering_loss(P, log_Q):
    """``mean_i KL(P_i || Q_i) = mean_i sum_j p_ij log(p_ij / q_ij)``.

    The mean over the rows of a batch, as Keras' ``kld`` loss in the authors'
    code; ``xlogy`` gives ``0 log 0 = 0`` where Keras clipped to 1e-7.
    """
    return (torch.special.xlogy(P, P) - P * log_Q).sum(dim=1).mean()


class _Encoder(nn.Module):
    """An autoencoder's encoder without its decoder: DEC's network."""

    def __init__(self, encoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, x):
        return self.encoder(x)


class IDEC(BaseDeepClusterer):
    """Improved Deep Embedded Clustering: DEC's self-training clustering loss
    on an autoencoder that keeps reconstructing its input.

    The network is the pretrained autoencoder; cluster centres ``mu_j`` live
    in its embedding space and start from k-means (``n_init=20``) on the
    pretrained embedding. Training minimises, per mini-batch,
    ``L_r + gamma * L_c`` (eq. 6): ``L_r`` is the reconstruction error and
    ``L_c = KL(P || Q)`` (eq. 7), where ``Q`` are the Student's t soft
    assignments of the embeddings to the centres (eq. 3) and ``P`` a sharpened
    target derived from ``Q`` (eq. 4). ``P`` is held fixed between updates:
    every ``update_interval`` mini-batches it is recomputed from all the data,
    and training stops once fewer than ``tol`` of the labels ``argmax_j q_ij``
    changed since the previous update (Algorithm 1). The encoder, the decoder
    and the centres are trained together by Adam.

    :class:`DEC` is the same model without the reconstruction term.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters K.
    gamma : float, default=0.1
        gamma, the weight of the clustering loss against the reconstruction
        loss (paper's default, chosen by grid search on MNIST). Larger values
        distort the embedding more; ``0`` fine-tunes the autoencoder alone and
        keeps the k-means centres (the paper's ablation), though the
        reconstruction loss still moves the points under them, so labels
        can change (see ``learning_rate``).
    update_interval : int or None, default=None
        T, the number of mini-batches between two updates of the target
        distribution ``P`` (and of the stopping test). ``None`` means twice
        per epoch, ``ceil(n_batches / 2)``: 137 on MNIST-70k at batch 256,
        close to the paper's T = 140 there, and 10 on a 5,000-row set. The
        paper used T = 140 / 30 / 3 on MNIST / USPS / REUTERS-10K; see
        Notes.
    hidden_dims : tuple of int, default=(500, 500, 2000)
        Encoder hidden widths (the decoder mirrors them): the paper's
        ``d-500-500-2000-10``.
    embedding_dim : int, default=10
        Size of the embedding ``z`` (the paper's 10).
    pretrain_epochs : int, default=400
        Epochs of autoencoder pretraining (:class:`AutoEncoder`'s recipe).
    max_epochs : int, default=100
        Upper bound on the clustering epochs when the ``tol`` rule has not
        stopped training before (the authors' code: 20,000 mini-batches).
    batch_size : int, default=256
        Mini-batch size (the paper's 256).
    learning_rate : float, default=1e-3
        Adam's learning rate lambda (the paper's setting for MNIST). Its
        first steps move the pretrained embedding by about the same amount
        whatever its scale: where the embedding's spread is small (features
        of small variance, L2-normalised rows) they can carry points across
        clusters and empty some in the first epoch, whatever ``gamma``;
        1e-4 (DeepKMeans' and ADMMCluster's default) keeps the start there.
    tol : float, default=1e-3
        delta, the stopping threshold: stop when fewer than this fraction of
        the labels changed between two updates of ``P`` (the paper's 0.1 %).
        ``0`` disables the rule.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"``: the layers of every training step, the default
        pretraining's too, run under bfloat16 autocast; losses, cluster
        parameters and prediction stay float32 or float64 (README section
        "Mixed precision").
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"``
        or ``"cuda:N"``. ``"mps"`` is refused: the target distribution is
        computed in float64, which MPS lacks.
    memory : None, str, os.PathLike or joblib.Memory, default=None
        Caches the pretraining, so that refits with a fixed ``random_state``
        (e.g. a search over ``gamma``) pretrain once; ``None`` draws a new
        seed every fit, and warns.
    random_state : int, RandomState instance or None, default=None
        Seeds pretraining, k-means, batch order; the same value on the same
        device gives the same labels.
    verbose : int or bool, default=0
        Progress bars on standard error when > 0.
    autoencoder : AutoEncoder or None, default=None
        Start from this autoencoder (fitted: used as is, and kept through
        ``clone`` and searches when wrapped in
        :class:`~sklearn.frozen.FrozenEstimator`; unfitted: fitted on ``X``,
        with this estimator's ``random_state`` unless it has its own)
        instead of pretraining one from ``hidden_dims``,
        ``embedding_dim`` and ``pretrain_epochs``. Its ``loss`` ("mse" or
        "bce") is also the reconstruction loss ``L_r`` of the clustering
        stage.

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, embedding_dim)
        Cluster centres ``mu_j`` in the embedding space.
    labels_ : ndarray of shape (n_samples,)
        ``argmax_j q_ij`` of the training data; equals ``predict(X)``.
    inertia_ : float
        Sum of squared distances of the training embeddings to their closest
        centre.
    n_iter_ : int
        Clustering epochs run. An epoch at whose start the ``tol`` rule
        stopped training takes no step and is not counted.
    n_steps_ : int
        Mini-batch updates run.
    converged_ : bool
        Whether the ``tol`` rule stopped training (rather than
        ``max_epochs``).
    delta_labels_ : ndarray of shape (n_updates,)
        Fraction of labels changed at each update of ``P``, in order (of
        the total ``sample_weight`` in a weighted fit); the first compares
        with the k-means labels. Updates happen every
        ``update_interval`` mini-batches, so there can be several per epoch.
    history_ : list of dict
        Per epoch: ``epoch``, mean ``loss``, ``reconstruction`` (``L_r``) and
        ``clustering`` (``L_c``) over its mini-batches, ``delta_label`` and
        ``n_clusters_used`` at its last update of ``P`` (an epoch without an
        update, when ``update_interval`` exceeds an epoch, repeats the last
        update's), ``time``, ``samples_per_second``.
    autoencoder_ : AutoEncoder or None
        The pretrained autoencoder the network started from (not modified).
    module_ : torch.nn.Module
        The trained network (``encoder``, ``decoder``) with the centres as
        its ``centers`` parameter.
    device_ : torch.device
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names.

    See Also
    --------
    DEC : The same model without the reconstruction term.
    DeepKMeans : k-means in an autoencoder's embedding, learnt jointly.

    Notes
    -----
    Paper and authors' code (XifengGuo/IDEC) differ in the loss scaling; we
    follow the code, whose numbers the paper reports. The loss of a batch of
    ``m`` rows is ``gamma * mean_i KL(P_i || Q_i) + mean_{i, d} (x_id -
    x'_id)^2``: the reconstruction error is the per-element mean squared
    error, where the paper's eq. (8) sums over the features (a factor ``d``,
    784 on MNIST, larger). ``gamma=0.1`` was tuned for the code's scaling,
    with MNIST divided by 50 rather than 255. On [0, 1]-scaled MNIST-5k
    (seed 0, ``idec_gamma_sweep.md``) accuracy falls slowly from 0.747 at
    ``gamma`` = 0.01 to 0.727 at 1.0; 0.1 gives 0.738 and converges in a
    seventh of 0.01's time, so the paper's value is kept.

    Also as in the code: Student's t with alpha = 1, centres trained by the
    same optimiser as the network, k-means with 20 initialisations, the
    stopping test before the batch update of an iteration, and no input
    noise in the clustering stage (only the pretraining is denoising).

    Where we differ: (i) mini-batches are drawn in a new random order every
    epoch, where the code cycles through the data in a fixed order;
    (ii) ``update_interval`` defaults to half an epoch rather than a fixed
    number of batches. The paper's T = 140 on MNIST-70k is half an epoch
    (274 batches). On the 5,000-digit MNIST subset (20 batches per epoch)
    T = 10 beat once per epoch by 0.5 to 2 points of accuracy (4 seeds)
    and T = 140 by 3 (one seed); T = 5 or 2 did no better than 10 and cost
    more, since each update is a forward pass over all the data (one-off
    runs whose records were not kept);
    (iii) the default pretraining is :class:`AutoEncoder`'s end-to-end
    denoising recipe rather than DEC's greedy layer-wise Caffe pipeline.

    References
    ----------
    X. Guo, L. Gao, X. Liu and J. Yin. "Improved Deep Embedded Clustering with
    Local Structure Preservation". IJCAI 2017.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skdeepcluster import IDEC
    >>> X, _ = make_blobs(300, n_features=10, centers=3, random_state=0)
    >>> X = MinMaxScaler().fit_transform(X)
    >>> idec = IDEC(n_clusters=3, hidden_dims=(32,), embedding_dim=3,
    ...             pretrain_epochs=10, max_epochs=10, batch_size=32,
    ...             device="cpu", random_state=0)
    >>> idec.fit_predict(X).shape
    (300,)
    >>> idec.cluster_centers_.shape
    (3, 3)
    >>> idec.predict_proba(X[:2]).sum(axis=1).round(6)
    array([1., 1.])
    """

    _parameter_rules = {
        **SHARED_RULES,
        "gamma": Real(low=0),
        "update_interval": AnyOf(Integer(low=1), Options(None)),
    }

    #: Whether the loss has the reconstruction term (False for DEC).
    _with_reconstruction = True
    _clustering_weight_name = "gamma"
    _float64_training = True

    def __init__(
        self,
        n_clusters=8,
        *,
        gamma=0.1,
        update_interval=None,
        hidden_dims=(500, 500, 2000),
        embedding_dim=10,
        pretrain_epochs=400,
        max_epochs=100,
        batch_size=256,
        learning_rate=1e-3,
        tol=1e-3,
        precision="float32",
        device="auto",
        memory=None,
        random_state=None,
        verbose=0,
        autoencoder=None,
    ):
        self.n_clusters = n_clusters
        self.gamma = gamma
        self.update_interval = update_interval
        self.hidden_dims = hidden_dims
        self.embedding_dim = embedding_dim
        self.pretrain_epochs = pretrain_epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.tol = tol
        self.precision = precision
        self.device = device
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose
        self.autoencoder = autoencoder

    # -- hooks -------------------------------------------------------------------
    def _clustering_weight(self):
        return self.gamma

    def _check_method_params(self, X):
        given, _ = self._given_autoencoder()
        # a fitted autoencoder's binary cross-entropy becomes L_r here, with
        # no fit of the autoencoder to check X first
        if self._with_reconstruction and getattr(given, "loss", None) == "bce":
            check_unit_interval(
                X, f"{type(self).__name__} with an autoencoder of loss='bce' (its reconstruction term)",
                "give an autoencoder with loss='mse'",
            )

    def _checkpoint_interval(self):
        if self.update_interval is None:
            return -(-self._fit_state["n_batches"] // 2)
        return self.update_interval

    def _init_clusters(self, Z, data, seed):
        centers, labels = self._kmeans(Z, seed, n_init=20)
        self.module_.centers = nn.Parameter(centers.clone())
        self._fit_state["labels"] = labels
        self._fit_state["reconstruction_loss"] = "mse" if self.autoencoder_ is None else self.autoencoder_.loss
        self.delta_labels_ = []
        return labels

    def _on_checkpoint(self, step, data):
        # P in float64: q_ij ** 2 / f_j of far-away clusters underflows in float32
        Z = self._embed_all(data).double()
        Q = soft_assignment(Z, self.module_.centers.detach().double())
        weights = self._row_weights()
        weights = None if weights is None else weights.double()
        self._fit_state["target"] = target_distribution(Q, weights).to(Z.device, torch.float32)
        labels = Q.argmax(dim=1)
        self.delta_labels_.append(label_change(labels, self._fit_state["labels"], self._sampling_weights()))
        self._fit_state["labels"] = labels
        return labels

    def _batch_loss(self, x, index):
        if self._with_reconstruction:
            z, x_hat = self._training_forward(self.module_, x)
        else:
            z = self._training_forward(self.module_.encoder, x)
        target = self._fit_state["target"][index]
        clustering = clustering_loss(target, log_soft_assignment(z, self.module_.centers))
        parts = {"clustering": clustering}
        loss = self._clustering_weight() * clustering
        if self._with_reconstruction:
            parts["reconstruction"] = reconstruction_loss(x_hat, x, self._fit_state["reconstruction_loss"])
            loss = parts["reconstruction"] + loss
        return {"loss": loss, **parts}

    def _finish_fit(self):
        self.cluster_centers_ = self.module_.centers.detach().cpu().double().numpy()
        self.delta_labels_ = np.asarray(self.delta_labels_, dtype=np.float64)

    def _soft_assign(self, module, x):
        return soft_assignment(module.encoder(x), module.centers)


class DEC(IDEC):
    """Deep Embedded Clustering: IDEC without the reconstruction term.

    DEC pretrains an autoencoder, discards its decoder and fine-tunes the
    encoder and the cluster centres on the clustering loss ``L_c = KL(P ||
    Q)`` alone (IDEC's eq. 6 with ``L_r = 0`` and ``gamma = 1``), by SGD with
    momentum. Everything else - Student's t soft assignments ``Q``, the
    target distribution ``P`` recomputed from all the data every
    ``update_interval`` mini-batches, k-means initialisation, the ``tol``
    stopping rule - is :class:`IDEC`'s, and so is the code.

    With a single loss term its weight only rescales the learning rate, so
    DEC has no ``gamma`` parameter: tune ``learning_rate`` instead. No
    setting of :class:`IDEC` gives DEC: IDEC always keeps its decoder and
    ``L_r``, and trains with Adam.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters K.
    update_interval : int or None, default=None
        T, the number of mini-batches between two updates of the target
        distribution ``P``; ``None`` means twice per epoch, as for
        :class:`IDEC`. DEC's code used 160 on MNIST-70k (Caffe), 140 in
        IDEC's Keras re-implementation; on MNIST-5k DEC did as well with
        T = 10 (half an epoch) as with T = 20.
    hidden_dims : tuple of int, default=(500, 500, 2000)
        Encoder hidden widths of the pretrained autoencoder.
    embedding_dim : int, default=10
        Size of the embedding ``z``.
    pretrain_epochs : int, default=400
        Epochs of autoencoder pretraining (:class:`AutoEncoder`'s recipe).
    max_epochs : int, default=100
        Upper bound on the clustering epochs.
    batch_size : int, default=256
        Mini-batch size (DEC's 256).
    learning_rate : float, default=0.01
        Learning rate of SGD with momentum 0.9 (DEC's setting).
    tol : float, default=1e-3
        Stop when fewer than this fraction of the labels changed between two
        updates of ``P`` (DEC's 0.1 %). ``0`` disables the rule.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"``: the layers of every training step, the default
        pretraining's too, run under bfloat16 autocast; losses, cluster
        parameters and prediction stay float32 or float64 (README section
        "Mixed precision").
    device : str or torch.device, default="auto"
        As for :class:`IDEC`; ``"mps"`` is refused.
    memory : None, str, os.PathLike or joblib.Memory, default=None
        Caches the pretraining, keyed on its seed: read back only with a
        fixed ``random_state`` (``None`` draws a new seed every fit, and warns).
    random_state : int, RandomState instance or None, default=None
    verbose : int or bool, default=0
    autoencoder : AutoEncoder or None, default=None
        Start from this autoencoder's encoder instead of pretraining one (as
        in :class:`IDEC`).

    Attributes
    ----------
    cluster_centers_ : ndarray of shape (n_clusters, embedding_dim)
        Cluster centres ``mu_j`` in the embedding space.
    labels_ : ndarray of shape (n_samples,)
    inertia_ : float
    n_iter_ : int
        Clustering epochs run (see :class:`IDEC`).
    n_steps_ : int
    converged_ : bool
        Whether the ``tol`` rule stopped training.
    delta_labels_ : ndarray of shape (n_updates,)
        Fraction of labels changed at each update of ``P`` (of the total
        ``sample_weight`` in a weighted fit).
    history_ : list of dict
        Per epoch: ``epoch``, ``loss`` (equal to ``clustering``), ``clustering``,
        ``delta_label``, ``n_clusters_used``, ``time``,
        ``samples_per_second``.
    autoencoder_ : AutoEncoder or None
        The pretrained autoencoder (not modified).
    module_ : torch.nn.Module
        The trained encoder (``module_.encoder``) with the centres as its
        ``centers`` parameter; it has no decoder.
    device_ : torch.device
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    IDEC : DEC with the reconstruction term kept.

    Notes
    -----
    As DEC's Caffe code and the DEC baseline of IDEC's repository: per-batch
    mean of ``KL(P_i || Q_i)``, SGD with learning rate 0.01 and momentum 0.9,
    k-means with 20 initialisations, stop at 0.1 % of labels changed. The
    default ``update_interval`` (half an epoch) and the pretraining recipe differ
    from the original as explained in :class:`IDEC`'s Notes.

    References
    ----------
    J. Xie, R. Girshick and A. Farhadi. "Unsupervised Deep Embedding for
    Clustering Analysis". ICML 2016.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from skdeepcluster import DEC
    >>> X, _ = make_blobs(300, n_features=10, centers=3, random_state=0)
    >>> X = MinMaxScaler().fit_transform(X)
    >>> dec = DEC(n_clusters=3, hidden_dims=(32,), embedding_dim=3,
    ...           pretrain_epochs=10, max_epochs=10, batch_size=32,
    ...           device="cpu", random_state=0)
    >>> dec.fit_predict(X).shape
    (300,)
    >>> "reconstruction" in dec.history_[0]
    False
    """

    _parameter_rules = {name: rule for name, rule in IDEC._parameter_rules.items() if name != "gamma"}

    _with_reconstruction = False
    _clustering_weight_name = None

    def __init__(
        self,
        n_clusters=8,
        *,
        update_interval=None,
        hidden_dims=(500, 500, 2000),
        embedding_dim=10,
        pretrain_epochs=400,
        max_epochs=100,
        batch_size=256,
        learning_rate=0.01,
        tol=1e-3,
        precision="float32",
        device="auto",
        memory=None,
        random_state=None,
        verbose=0,
        autoencoder=None,
    ):
        self.n_clusters = n_clusters
        self.update_interval = update_interval
        self.hidden_dims = hidden_dims
        self.embedding_dim = embedding_dim
        self.pretrain_epochs = pretrain_epochs
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.tol = tol
        self.precision = precision
        self.device = device
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose
        self.autoencoder = autoencoder

    def _clustering_weight(self):
        return 1.0

    def _build_module(self, n_features, autoencoder, seed):
        return _Encoder(super()._build_module(n_features, autoencoder, seed).encoder)

    def _make_optimizer(self, parameters):
        return torch.optim.SGD(parameters, lr=self.learning_rate, momentum=0.9)
