"""DAMIC: Deep Autoencoder MIxture Clustering (Chazan, Gannot & Goldberger, MLSP 2019)."""

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from ._core import data as device_data
from ._core.autoencoder import ACTIVATIONS, FullPrecisionActivation, glorot_init_, mlp, reconstruction_loss
from ._core.device import at_least_float32
from ._core.params import AnyOf, Integer, LayerSizes, Options, layer_sizes
from ._core.training import cluster_weights, single_row_safe, train
from ._core.weights import weighted_average, weighted_draws
from .base import _INFERENCE_CHUNK, SHARED_RULES, BaseDeepClusterer, check_unit_interval, warn_at_caller

#: The paper's widths (sec. 3.4): each autoencoder d-1024-256-K-256-1024-d,
#: the clustering network d-512-512-K.
PAPER_EXPERT_HIDDEN = (1024, 256)
PAPER_GATE_HIDDEN = (512, 512)


def scaled_widths(widths, n_features):
    """The paper's layer widths, capped for inputs with few features.

    A hidden layer is never wider than ``max(32, 16 * n_features)``: the
    paper's 1024/512/256 stay as they are from 64 features up (MNIST's 784,
    the synthetic data's 100), while 12-feature data gets 192 units and
    2-feature data 32.

    Parameters
    ----------
    widths : tuple of int
    n_features : int

    Returns
    -------
    tuple of int
    """
    cap = max(32, 16 * int(n_features))
    return tuple(min(int(w), cap) for w in widths)


def mixture_nll(log_gate, distances):
    """Per-sample negative log-likelihood of eq. (3).

    ``-log sum_i p(c=i|x) exp(-d_i)``, computed as ``-logsumexp(log p - d)``
    so that large reconstruction errors do not underflow.

    Parameters
    ----------
    log_gate : tensor of shape (n, K)
        ``log p(c=i|x)`` (log-softmax of the clustering network).
    distances : tensor of shape (n, K)
        ``d(x, f_i(x)) = ||x - f_i(x)||^2 / 2``.

    Returns
    -------
    tensor of shape (n,)
    """
    return -torch.logsumexp(log_gate - distances, dim=1)


def posterior(log_gate, distances):
    """Soft assignments ``w_ti`` of eq. (5): proportional to ``p_i exp(-d_i)``."""
    return torch.softmax(log_gate - distances, dim=1)


def half_squared_errors(x, reconstructions):
    """``d_i = ||x - f_i(x)||^2 / 2`` for each expert, shape (n, K).

    ``reconstructions`` has shape (K, n, d).
    """
    return 0.5 * (reconstructions - x.unsqueeze(0)).pow(2).sum(dim=2).transpose(0, 1)


class StackedBatchNorm(nn.Module):
    """``K`` independent ``BatchNorm1d`` layers on a (K, n, width) tensor.

    Statistics are per model and per unit over the n rows, with the same
    running-average and unbiased-variance conventions as
    :class:`torch.nn.BatchNorm1d` (momentum 0.1, eps 1e-5).
    """

    def __init__(self, n_models, width, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        shape, float32 = (n_models, 1, width), torch.float32  # whatever torch's default dtype
        self.weight = nn.Parameter(torch.ones(shape, dtype=float32))
        self.bias = nn.Parameter(torch.zeros(shape, dtype=float32))
        self.register_buffer("running_mean", torch.zeros(shape, dtype=float32))
        self.register_buffer("running_var", torch.ones(shape, dtype=float32))

    def forward(self, h):
        n_models, n, width = h.shape
        # Laid out as (n, K * width), the K * width units are ordinary
        # batch-norm channels: torch's fused kernel then does the work, about
        # 3-5x faster than composing the statistics by hand.
        flat = h.transpose(0, 1).reshape(n, n_models * width)
        out = F.batch_norm(
            flat,
            self.running_mean.view(-1),
            self.running_var.view(-1),
            self.weight.view(-1),
            self.bias.view(-1),
            self.training,
            self.momentum,
            self.eps,
        )
        return out.view(n, n_models, width).transpose(0, 1)


class StackedMLP(nn.Module):
    """``K`` MLPs of identical shape evaluated as one batched computation.

    Layer ``l`` holds a weight of shape (K, in, out) and a bias of shape
    (K, 1, out) and runs as one ``torch.baddbmm`` for all K models, with
    batch norm per model (:class:`StackedBatchNorm`) before each hidden
    activation, as :func:`skdeepcluster._core.autoencoder.mlp` does for one.

    ``forward`` takes either one batch shared by all models, shape (n, d),
    or one batch per model, shape (K, n, d), and returns (K, n, d_out).
    """

    def __init__(self, n_models, sizes, activation="relu", last_activation=None, batch_norm=False):
        super().__init__()
        self.n_models = n_models
        self.sizes = tuple(sizes)
        n_layers = len(sizes) - 1
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        self.norms = nn.ModuleList()
        for i in range(n_layers):
            weight = torch.empty(n_models, sizes[i], sizes[i + 1], dtype=torch.float32)
            for k in range(n_models):
                # Glorot-uniform per model, as glorot_init_ does for nn.Linear
                # (whose weight is the transpose of ours).
                nn.init.xavier_uniform_(weight[k].T)
            self.weights.append(nn.Parameter(weight))
            self.biases.append(nn.Parameter(torch.zeros(n_models, 1, sizes[i + 1], dtype=torch.float32)))
            if i < n_layers - 1:
                self.norms.append(StackedBatchNorm(n_models, sizes[i + 1]) if batch_norm else nn.Identity())
        self.activation = ACTIVATIONS[activation]()
        self.last_activation = FullPrecisionActivation(last_activation) if last_activation else nn.Identity()

    def forward(self, x):
        if x.dim() == 2:
            # a stride-0 view: one input batch shared by every model, not copied
            x = x.unsqueeze(0).expand(self.n_models, *x.shape)
        h = x
        last = len(self.weights) - 1
        for i, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(bias, h, weight)
            if i < last:
                h = self.activation(self.norms[i](h))
        return self.last_activation(h)

    def load_model_(self, k, sequential):
        """Copy the weights of one ``mlp(...)`` network into model ``k``."""
        linears = [m for m in sequential if isinstance(m, nn.Linear)]
        norms = [m for m in sequential if isinstance(m, nn.BatchNorm1d)]
        with torch.no_grad():
            for i, linear in enumerate(linears):
                self.weights[i][k].copy_(linear.weight.T)
                self.biases[i][k, 0].copy_(linear.bias)
            for norm, source in zip([n for n in self.norms if isinstance(n, StackedBatchNorm)], norms):
                norm.weight[k, 0].copy_(source.weight)
                norm.bias[k, 0].copy_(source.bias)
                norm.running_mean[k, 0].copy_(source.running_mean)
                norm.running_var[k, 0].copy_(source.running_var)
        return self


class DAMICNetwork(nn.Module):
    """The clustering network (gate) and the K stacked autoencoders.

    ``gate`` is ``d-g1-..-gm-K`` with batch norm and ReLU on its hidden
    layers; its last hidden layer is the representation h(x) and its output
    the logits of p(c|x) (eq. 1). ``experts`` are K autoencoders
    ``d-e1-..-em-K-em-..-e1-d`` with batch norm and ReLU on every hidden
    layer, the K-unit bottleneck included (sec. 3.4), and a sigmoid or linear
    output.
    """

    def __init__(self, n_features, n_clusters, expert_hidden_dims, gate_hidden_dims, output_activation):
        super().__init__()
        self.gate = glorot_init_(mlp((n_features, *gate_hidden_dims, n_clusters), "relu", batch_norm=True))
        expert_sizes = (n_features, *expert_hidden_dims, n_clusters, *expert_hidden_dims[::-1], n_features)
        self.experts = StackedMLP(n_clusters, expert_sizes, "relu", output_activation, batch_norm=True)

    def features(self, x):
        """h(x): the gate's last hidden layer."""
        return self.gate[:-1](x)

    def distances(self, x):
        """``d(x, f_i(x))`` for every expert, shape (n, K).

        The experts' activations are K times a single network's. In eval
        mode batch norm uses its running statistics and rows are
        independent, so a large ``x`` (a whole-data chunk at prediction)
        runs in row blocks whose stacked activations hold at most
        ``MAX_CHUNK_ENTRIES`` entries; in training mode the batch is the
        caller's, since splitting it would change the batch statistics.
        """
        if self.experts.training:
            return half_squared_errors(x, self.experts(x))
        entries_per_row = self.experts.n_models * max(self.experts.sizes)
        rows = max(1, device_data.MAX_CHUNK_ENTRIES // entries_per_row)
        return torch.cat([half_squared_errors(part, self.experts(part)) for part in x.split(rows)])

    def forward(self, x):
        """``(log p(c|x), d)``, both of shape (n, K)."""
        # float32 under bfloat16 autocast, which leaves log_softmax in
        # bfloat16 on the CPU (not on CUDA)
        log_gate = torch.log_softmax(at_least_float32(self.gate(x)), dim=1)
        return log_gate, self.distances(x)


class _ClusterRows:
    """Per-cluster batches for pre-training each expert on its own points.

    Position ``j`` of an epoch maps to row ``members[k][j % n_k]`` of every
    cluster ``k``, so a step feeds each expert a batch of its own cluster,
    smaller clusters being cycled through more than once per epoch. With
    ``member_weights`` (CPU tensors, one per cluster) each batch instead
    draws its rows of cluster ``k`` with replacement in proportion to their
    weights (``generator`` seeds the draws), as the training loop draws rows.
    """

    def __init__(self, data, members, member_weights=None, generator=None):
        self.device = data.device
        self._data = data
        self._members = [m.to(data.device) for m in members]
        self._member_weights = member_weights
        # each step draws from every cluster: the cumulative weights once
        self._cumulative = None if member_weights is None else [w.double().cumsum(0) for w in member_weights]
        self._generator = generator
        self.n_samples = max(len(m) for m in members)

    def __len__(self):
        return self.n_samples

    def rows(self, index):
        if self._member_weights is None:
            return torch.stack([self._data.rows(m[index % len(m)]) for m in self._members])
        return torch.stack([
            self._data.rows(m[weighted_draws(w, len(index), self._generator, cdf).to(m.device)])
            for m, w, cdf in zip(self._members, self._member_weights, self._cumulative)
        ])


_AUTO = Options("auto")


class DAMIC(BaseDeepClusterer):
    """Deep Autoencoder MIxture Clustering: one autoencoder per cluster and a
    clustering network that routes each point to one of them.

    A clustering network (the gate) gives ``p(c=i|x)``, a softmax over the K
    clusters of a representation h(x) (eq. 1). Each cluster i owns an
    autoencoder f_i. The gate and the K autoencoders are trained jointly on
    the mixture negative log-likelihood of eq. (3), averaged over the batch::

        L = -mean_t log sum_i p(c=i|x_t) exp(-d(x_t, f_i(x_t))),
        d(x, f_i(x)) = ||x - f_i(x)||^2 / 2

    computed as ``-logsumexp(log p - d)``. Its gradient trains the gate on
    the soft assignments ``w_ti`` proportional to ``p(c=i|x_t)
    exp(-d_ti)`` (eq. 5, :meth:`posterior_proba`). No regulariser is needed
    against collapse: sending every point to one autoencoder reconstructs
    worse than using all K.

    Initialisation follows the paper (sec. 2, Table 1): one autoencoder is
    trained on all the data (``pretrain_epochs``; batch norm, ReLU, sigmoid
    output, binary cross-entropy, Adam); k-means on its bottleneck (or a
    Gaussian mixture, ``init="gmm"``) gives initial labels; the gate is
    trained on those labels by cross-entropy (``gate_pretrain_epochs``) and
    autoencoder i on the points of initial cluster i
    (``expert_pretrain_epochs``); then the joint training of eq.
    (3) runs for up to ``max_epochs``.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters k, also the number of autoencoders and the width
        of each autoencoder's bottleneck (sec. 3.4).
    decision : {"gate", "reconstruction"}, default="gate"
        Hard assignment rule. ``"gate"``: the clustering network's argmax
        (eq. 2, the paper's default). ``"reconstruction"``: the autoencoder
        with the smallest reconstruction error (eq. 6). ``predict_proba``
        follows the rule: ``p(c|x)`` for ``"gate"``, ``softmax(-d)`` for
        ``"reconstruction"``.
    init : {"kmeans", "gmm"}, default="kmeans"
        Initial partition of the single autoencoder's embedding: k-means
        (the paper) or a full-covariance Gaussian mixture, both with 10
        restarts. The mixture follows elongated clusters that k-means cuts
        across; the joint training keeps most of its start (see Notes).
    output_activation : {"sigmoid", None}, default="sigmoid"
        Output layer of every autoencoder. ``"sigmoid"`` (the paper) also
        makes all pre-training use binary cross-entropy and needs X in
        [0, 1]; ``None`` gives linear outputs and squared-error pre-training,
        for real-valued features.
    expert_hidden_dims : "auto" or tuple of int, default="auto"
        Encoder widths of each autoencoder; the decoder mirrors them around
        the K-unit bottleneck. ``"auto"`` is the paper's (1024, 256) capped
        by :func:`scaled_widths` for inputs with few features.
    gate_hidden_dims : "auto" or tuple of int, default="auto"
        Hidden widths of the clustering network; the last one is h(x), the
        output of ``transform``. ``"auto"`` is the paper's (512, 512), capped
        the same way.
    hidden_dims : "auto" or tuple of int, default="auto"
        Encoder widths of the single autoencoder pre-trained on all data.
        ``"auto"`` uses the same widths as ``expert_hidden_dims="auto"``
        (the paper gives every autoencoder one shape).
    embedding_dim : int or None, default=None
        Bottleneck of that single autoencoder, where k-means runs; ``None``
        means ``n_clusters``.
    pretrain_epochs : int, default=50
        Epochs of the single autoencoder (the paper's 50 for every phase).
        ``0`` skips it: the initial k-means (or mixture) then runs on the
        untrained clustering network's representation ``h(x)``.
    gate_pretrain_epochs : int, default=50
        Epochs of training the gate on the k-means labels.
    expert_pretrain_epochs : int, default=50
        Epochs of training each autoencoder on its k-means cluster (an epoch
        passes once over the largest cluster).
    max_epochs : int, default=50
        Epochs of joint training on eq. (3).
    batch_size : int, default=256
        The paper's mini-batch size, in every phase; at least 2 when DAMIC
        pretrains its own autoencoder (batch norm).
    learning_rate : float, default=1e-4
        Adam's step size in every phase. The paper names Adam but no rate;
        we use a tenth of Adam's default (see Notes).
    tol : float, default=0.001
        Stop the joint training once fewer than this fraction of the labels
        change between epochs (our stand-in for the paper's unspecified
        early stopping); 0 runs all ``max_epochs``.
    precision : {"float32", "bfloat16"}, default="float32"
        ``"bfloat16"``: the layers of every training step (the default
        pretraining, the gate's and experts' pretraining, the joint
        training) run under bfloat16 autocast; losses and prediction stay
        float32 or float64 (README section "Mixed precision").
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"`` (untested; see the README).
    memory : None, str, os.PathLike or joblib.Memory, default=None
        Caches the pre-training of the single autoencoder, keyed on its
        seed: read back only with a fixed ``random_state`` (``None`` draws a
        new seed every fit, and warns).
    random_state : int, RandomState instance or None, default=None
    verbose : int or bool, default=0
        Progress bars on standard error for each phase when > 0.
    autoencoder : AutoEncoder or None, default=None
        Start from this autoencoder (fitted: used as is, and kept through
        ``clone`` and searches when wrapped in
        :class:`~sklearn.frozen.FrozenEstimator`; unfitted: fitted on ``X``,
        with this estimator's ``random_state`` unless it has its own) for
        the k-means initialisation, instead of the paper's recipe
        built from ``hidden_dims``, ``embedding_dim`` and
        ``pretrain_epochs``.

    Attributes
    ----------
    labels_ : ndarray of shape (n_samples,)
    cluster_sizes_ : ndarray of shape (n_clusters,)
        Points each autoencoder owns in ``labels_``, i.e. under the
        ``decision`` rule in force at fit time.
    n_active_clusters_ : int
        Autoencoders that own at least one training point; the paper's claim
        is that this stays ``n_clusters``.
    n_iter_ : int
        Joint-training epochs run.
    n_steps_ : int
        Mini-batch updates of the joint training run.
    converged_ : bool
        Whether ``tol`` stopped the joint training.
    history_ : list of dict
        Per joint-training epoch: ``epoch``, ``loss`` (eq. 3 per sample),
        ``reconstruction`` (the posterior-weighted d), ``delta_label``,
        ``n_clusters_used`` (autoencoders owning points at the start of the
        epoch), ``time``, ``samples_per_second``.
    init_history_ : dict of list
        Per-epoch records of the initialisation phases: ``"gate"`` and
        ``"experts"``.
    initial_labels_ : ndarray of shape (n_samples,)
        The initial partition: k-means labels on the pre-trained bottleneck,
        or the Gaussian mixture's with ``init="gmm"``.
    autoencoder_ : AutoEncoder or None
        The single pre-trained autoencoder.
    module_ : DAMICNetwork
        ``module_.gate`` and ``module_.experts``.
    device_ : torch.device
    n_features_in_ : int
    feature_names_in_ : ndarray of str

    See Also
    --------
    AutoEncoder : the single autoencoder of the initialisation.

    Notes
    -----
    No code of the authors exists; where the paper is silent we chose:

    * Widths for small inputs: hidden layers are capped at
      ``max(32, 16 * n_features)`` (:func:`scaled_widths`), so MNIST and
      the 100-feature synthetic data get the paper's networks.
    * The single autoencoder's shape is that of one expert
      (d-1024-256-K-256-1024-d), trained end to end (no layer-wise stage),
      with a linear bottleneck as in :class:`AutoEncoder`; the experts keep
      the paper's ReLU on the bottleneck. k-means uses ``n_init=10``.
    * Experts start from fresh Glorot weights (as k-DAE, the authors' later
      code, does), not from the single autoencoder.
    * Batch norm runs on batch statistics in training and running
      statistics in inference; a one-row training batch uses the running
      statistics. An expert normalises over its own cluster's batches in
      pre-training and over all points in joint training (every expert
      sees every point there), which perturbs it in the first joint epoch.
    * Learning rate 1e-4 rather than Adam's default 1e-3: with 1e-3 the
      joint training of the synthetic data moved 1-3 % of the labels every
      epoch without settling and drifted back towards the k-means
      partition; 1e-4 settles in a few epochs and also gave the single
      autoencoder a better k-means initialisation (NMI 0.83 vs 0.81, the
      paper's DAE+KM row reads 0.83; one-off runs whose records were not
      kept).
    * Early stopping: ``tol`` on the fraction of changed labels per epoch.

    What we measured with the defaults (one CPU thread): on the synthetic
    data of sec. 3.5.1 (:func:`~skdeepcluster.datasets.make_dcn_synthetic`,
    seeds 0-2, ``synthetic.md``) NMI 0.875 / 0.807 / 0.851, ARI 0.88 / 0.82
    / 0.86, against 0.83 / 0.83 / 0.81 and 0.84 / 0.84 / 0.80 for its own
    AE + k-means start (on the H100, ``gpu/damic_start.jsonl``) - short of
    the paper's NMI 0.94 / ARI 0.96. Rerun on commit 420c12e, after the
    written-out binary cross-entropy of 56d7ac6, which changes the
    pretraining gradients in their last bits
    (``synthetic_rerun_420c12e.md``, seeds 0-4): NMI 0.860 / ARI 0.874 on
    average, 0.876 / 0.891 with ``init="gmm"``; after the training batches
    of commit d779094 (a short last batch joins the one before, which can
    change the experts' pretraining; ``synthetic_rerun_d779094.md``) 0.863 /
    0.875 and 0.866 / 0.886. The result depends on the initial partition: started from the true labels instead of k-means, training
    ends at NMI 0.91 / ARI 0.93 (``gpu/damic_start.md``), near the 0.936 /
    0.955 of a Gaussian mixture on the true latent. Neither half can be
    tuned past this, as far as we measured (one thread, NMI; joint runs
    with ``tol=0``; the bullets without a file named were one-off runs
    whose records were not kept):

    * The start is at its ceiling: k-means on the *true* 2-D latent reaches
      only NMI 0.82 / ARI 0.84, since the clusters are elongated and
      overlap (``latent_ceiling.md``, which also has the Gaussian mixture
      on the latent, 0.936 / 0.955, and the Bayes-optimal rule, 0.939 /
      0.959). Other pre-training autoencoders did not beat the default
      d-1024-256-4 (seeds 0-2: 0.83 / 0.83 / 0.81): the paper's 100-50-10-2
      gave 0.75 / 0.81 / 0.72 (rate 1e-4) and 0.70 / 0.86 / 0.74 (1e-3),
      d-1024-256-2 gave 0.82 / 0.86 / 0.67.
    * Eq. (3) barely tells the true partition from the k-means one, so
      the joint training has little reason to move it: after 10 joint
      epochs the mean log-likelihood (:meth:`score`) from the k-means start
      vs from the true labels is -0.0084 vs -0.0117 (seed 1, NMI 0.81 vs
      0.91) and -0.0067 vs -0.0067 (seed 0, NMI 0.87 vs 0.93). After all 50
      epochs (``tol=0``, H100, ``benchmarks/damic_start.py``) the runs from
      the true labels score higher than those from k-means on all 5 seeds
      (by 0.0002-0.0013; -0.0021 vs -0.0034 on seed 1) and than those from
      the Gaussian mixture on 4, too little to pull a start across.
      Each expert can reconstruct any 2-D patch of the data, compact or
      elongated.
    * Seed 1 (start 0.83), NMI after 20 joint epochs: the defaults 0.81;
      joint rate 1e-3 0.81 (0.73-0.80 on the way); d divided by 10 0.81;
      10 epochs of expert pre-training (k-DAE's) 0.78; expert batch norm
      on its pre-training running statistics during joint training 0.65
      (seed 0: 0.74), the experts then reconstruct every cluster alike; a
      1-unit expert bottleneck, against the paper's K units, 0.85.
    * Two more readings of the paper, seeds 0-4 (``benchmarks/damic_variants.py``,
      ``benchmarks/results/damic_variants.md``; start 0.832, the default
      ends at 0.852 in ``synthetic.md``). Sec. 3.5.1's clustering network
      d-512-512-2, a 2-unit representation before the softmax, falls
      apart in the joint training: 0.434 with a linear representation,
      0.465 with a ReLU one.
      The reconstruction errors are small (a mean smallest ``d`` of
      0.002-0.016 per run), so ``exp(-d)`` is nearly 1 for every expert
      and eq. (5)'s posterior is nearly the gate's own output; sharpening
      them does not help either: ``10 d`` (noise variance 0.1) ends at
      0.837, and ``d`` divided by a variance re-estimated on every batch
      at 0.845.
    * The paper's data may be easier. DCN's public generator script
      (boyangumn/DCN, ``data_gen.py``) draws isotropic latent clusters
      (standard deviation 1.5, centres 10 apart), where k-means on the
      latent reaches NMI 0.997; ``make_dcn_synthetic``'s elongated,
      overlapping clusters cap even a Gaussian mixture on the latent at
      0.936. With that layout (``make_dcn_synthetic(latent="round")``, data
      seed 0) k-means on x gives NMI 0.77 (the paper's KM row: 0.80) and the
      defaults, seeds 0-4, NMI 0.887 / ARI 0.901 on average (benchmark
      ``synthetic-round``); another draw of the same layout gave 0.908 /
      0.923 (a one-off run, not kept).
    * The paper's "all datasets were normalized between 0 and 1" (sec.
      3.4), read as min-max scaling of every feature of the pinned data
      (benchmark ``synthetic-scaled``, ``synthetic_scaled.md``, seeds 0-4):
      the defaults fall to NMI 0.809 / ARI 0.806, ``init="gmm"`` gives
      0.864 / 0.875, and ``init="gmm"`` from the benchmark's shared
      100-50-10-2 autoencoder 0.894 / 0.913.

    ``init="gmm"`` removes most of the start's handicap: a full-covariance
    Gaussian mixture follows the elongated clusters that k-means cuts
    across, and the joint training keeps and sharpens that partition. On an
    H100, seeds 0-4 (``benchmarks/results/gpu/gpu_*_gmm.md``): pinned
    synthetic layout NMI 0.866 / ARI 0.882 with DAMIC's own pretraining and
    0.899 / 0.915 starting from the benchmark's 100-50-10-2 denoising
    autoencoder (k-means start: 0.848 / 0.856); round layout 0.959 / 0.970
    and 0.930 / 0.942 (k-means start: 0.891 / 0.899); MNIST-5k 0.665 /
    0.509 and 0.712 / 0.608 (k-means start: 0.562 / 0.408 and 0.636 /
    0.553). On one CPU thread (``benchmarks/results/*_gmm.md``), own
    pretraining / shared autoencoder: pinned layout 0.876 / 0.890 and
    0.875 / 0.886, round layout 0.973 / 0.982 and 0.942 / 0.951, MNIST-5k
    0.663 / 0.500 and 0.707 / 0.613, digits 0.810 / 0.719 and 0.854 /
    0.778 (AE + k-means 0.745 / 0.653). Every autoencoder owned data in
    every run. The Gaussian mixture on a 2-unit bottleneck instead of K
    units (``init="gmm", embedding_dim=2``; the paper's DAE for the
    synthetic data has a 2-unit bottleneck too, 100-50-10-2) is the best
    start we found on the pinned layout apart from the true labels: one
    CPU thread, seeds 0-4 (``damic_variants.md``, variant ``gmm-2d``), it
    starts at NMI 0.891 / ARI 0.911 and ends at 0.890 / 0.907. The default
    stays the paper's k-means.

    How far a better start could take it (``benchmarks/damic_start.py``,
    H100, seeds 0-4, pinned layout, NMI / ARI): from the true labels the
    joint training ends at 0.913 / 0.929 (0.881-0.931 by seed), from
    k-means (start 0.832) at 0.848 and from the Gaussian mixture (start
    0.868) at 0.866. On average a run ends within 0.02 of its start (every
    seed within 0.035); even a perfect start loses about 0.09 to the
    overlapping clusters. Expert bottlenecks
    of 2 units instead of K give about the same means, 1 unit is worse
    (0.73 from k-means). A linear 1-unit bottleneck, so that no ReLU cuts
    half of an expert's range (``damic_variants.md``, ``expert-1`` and
    ``gmm-2d-expert-1``, one CPU thread, seeds 0-4), also ends below its
    start and below the default: 0.766 / 0.743 from k-means (start 0.832)
    and 0.728 / 0.696 from the ``gmm-2d`` start (0.891). Such experts
    reconstruct less well (a mean smallest ``d`` of 0.038-0.109 per run,
    against 0.002-0.018 in the file's other variants), so eq. (3)'s
    posterior
    follows them and the partition moves: the 3 runs of 10 that settled
    within 21 epochs ended at NMI 0.88-0.89 (seeds 1-2), the 7 that ran all
    50 epochs fell to 0.62-0.77, and those reconstruct best (mean smallest
    ``d`` 0.038-0.060 against 0.079-0.109). With 1-D experts, eq. (3)
    rewards pieces of the data that a curve fits better than it rewards
    the elongated clusters.

    On MNIST-5k (seeds 0-4) NMI 0.553 / ARI 0.400 on average, below AE +
    k-means on the benchmark's shared denoising autoencoder (0.579 /
    0.485); seed 0: 0.554 / 0.406 against 0.506 / 0.371 for its own AE +
    k-means start (``mnist5k_damic_start.json``, which records the start). All ten autoencoders own data in every run; 250-580 s
    per fit (mean 420 s, 2 cores shared with other runs). Started instead
    from the shared denoising autoencoder of the benchmark (``autoencoder=AutoEncoder(weight_init="glorot")``, the
    default then; k-means on its embedding gives the initial partition),
    seeds 0-4: NMI 0.634 / ARI
    0.548 on average, above AE + k-means on the same autoencoders (0.579 /
    0.485) on every seed, all ten autoencoders owning data. From the
    current default shared autoencoder (zero-bias), rerun on commit 93310a3
    (``mnist5k_damic_rerun_93310a3.md``): 0.647 / 0.564 against 0.590 /
    0.501, above on every seed, all ten owning data.

    The K autoencoders run as one batched computation
    (:class:`StackedMLP`: weights of shape (K, in, out), ``torch.baddbmm``,
    batch norm per expert on the stacked tensor), not a loop over K modules.
    Forward + backward of the paper's MNIST experts on a 256 x 784 batch,
    one CPU thread (``benchmarks/experts_speed.py``,
    ``results/experts_speed_cpu.json``): a loop over K ``nn.Module`` s
    took 0.37 s (K=10) and 0.80 s (K=20), the batched form 0.40 s and 0.80
    s; for small experts (12-192-192-K-192-192-12) 31 vs 28 ms (K=10) and
    62 vs 55 ms (K=20). On a CPU the K matrix products already keep the
    core busy: for the paper's experts torch's batched product is no
    faster than K single ones, for the small ones about 10 % faster.
    On a GPU the per-module launches dominate and the batched form wins
    (H100, ``results/gpu/experts_speed_cuda.json``): 4.6 vs 22.1 ms (K=10) and 5.6 vs
    39.4 ms (K=20) for the paper's MNIST experts, 3.3 vs 18.8 ms and 3.4 vs
    37.0 ms for the small ones.

    Examples
    --------
    >>> from sklearn.datasets import make_blobs
    >>> from sklearn.preprocessing import minmax_scale
    >>> from skdeepcluster import DAMIC
    >>> X, _ = make_blobs(200, n_features=5, centers=3, random_state=0)
    >>> X = minmax_scale(X)
    >>> damic = DAMIC(n_clusters=3, pretrain_epochs=10, gate_pretrain_epochs=10,
    ...               expert_pretrain_epochs=10, max_epochs=10, batch_size=64,
    ...               learning_rate=1e-3, device="cpu", random_state=0)
    >>> damic.fit_predict(X).shape
    (200,)
    >>> damic.n_active_clusters_
    3
    >>> damic.reconstruction_errors(X).shape
    (200, 3)
    >>> damic.transform(X).shape  # h(x); 5 features cap the widths at 80
    (200, 80)
    """

    _prediction_parameters = ("decision",)
    _parameter_rules = {
        **SHARED_RULES,
        "decision": Options("gate", "reconstruction"),
        "init": Options("kmeans", "gmm"),
        "output_activation": Options("sigmoid", None),
        "expert_hidden_dims": AnyOf(LayerSizes(), _AUTO),
        "gate_hidden_dims": AnyOf(LayerSizes(), _AUTO),
        "hidden_dims": AnyOf(LayerSizes(), _AUTO),
        "embedding_dim": AnyOf(SHARED_RULES["embedding_dim"], Options(None)),
        "gate_pretrain_epochs": Integer(low=0),
        "expert_pretrain_epochs": Integer(low=0),
    }

    def __init__(
        self,
        n_clusters=8,
        *,
        decision="gate",
        init="kmeans",
        output_activation="sigmoid",
        expert_hidden_dims="auto",
        gate_hidden_dims="auto",
        hidden_dims="auto",
        embedding_dim=None,
        pretrain_epochs=50,
        gate_pretrain_epochs=50,
        expert_pretrain_epochs=50,
        max_epochs=50,
        batch_size=256,
        learning_rate=1e-4,
        tol=0.001,
        precision="float32",
        device="auto",
        memory=None,
        random_state=None,
        verbose=0,
        autoencoder=None,
    ):
        self.n_clusters = n_clusters
        self.decision = decision
        self.init = init
        self.output_activation = output_activation
        self.expert_hidden_dims = expert_hidden_dims
        self.gate_hidden_dims = gate_hidden_dims
        self.hidden_dims = hidden_dims
        self.embedding_dim = embedding_dim
        self.pretrain_epochs = pretrain_epochs
        self.gate_pretrain_epochs = gate_pretrain_epochs
        self.expert_pretrain_epochs = expert_pretrain_epochs
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

    # -- architecture ------------------------------------------------------------
    def _widths(self, value, paper):
        if isinstance(value, str):
            return scaled_widths(paper, self.n_features_in_)
        return layer_sizes(value)

    def _expert_widths(self):
        return self._widths(self.expert_hidden_dims, PAPER_EXPERT_HIDDEN)

    def _gate_widths(self):
        return self._widths(self.gate_hidden_dims, PAPER_GATE_HIDDEN)

    def _embedding_dim(self):
        return self.n_clusters if self.embedding_dim is None else self.embedding_dim

    def _pretrain_loss(self):
        return "bce" if self.output_activation == "sigmoid" else "mse"

    def _check_method_params(self, X):
        if self.batch_size < 2 and self.autoencoder is None and self.pretrain_epochs > 0:
            raise ValueError(
                "DAMIC pretrains its single autoencoder with batch norm, which needs batch_size >= 2 "
                f"(batch statistics of one row are undefined); got {self.batch_size}. Give "
                "autoencoder= or pretrain_epochs=0 to train with batch_size=1."
            )
        if self.output_activation == "sigmoid":
            check_unit_interval(
                X,
                "DAMIC with output_activation='sigmoid' (the paper's sigmoid outputs and "
                "binary cross-entropy pre-training)",
                "set output_activation=None (linear outputs, squared-error pre-training)",
            )

    def _default_autoencoder(self, random_state):
        from ._autoencoder import AutoEncoder

        return AutoEncoder(
            hidden_dims=self._widths(self.hidden_dims, PAPER_EXPERT_HIDDEN),
            embedding_dim=self._embedding_dim(),
            max_epochs=self.pretrain_epochs,
            batch_size=self.batch_size,
            optimizer="adam",
            learning_rate=self.learning_rate,
            input_noise=0.0,
            loss=self._pretrain_loss(),
            activation="relu",
            output_activation=self.output_activation,
            batch_norm=True,
            weight_init="glorot",
            precision=self.precision,
            device=self.device,
            memory=self.memory,
            random_state=random_state,
            verbose=self.verbose,
        )

    def _build_module(self, n_features, autoencoder, seed):
        return DAMICNetwork(
            n_features, self.n_clusters, self._expert_widths(), self._gate_widths(), self.output_activation
        )

    @property
    def _n_features_out(self):
        # h(x) of the fitted gate, not of the parameters, which may have been set since
        return self.module_.gate[-1].in_features

    # -- initialisation: gate on the initial labels, expert i on cluster i ---------
    def _init_clusters(self, Z, data, seed):
        if self.init == "gmm":
            _, labels = self._gaussian_mixture(Z, seed, n_init=10)
        else:
            _, labels = self._kmeans(Z, seed, n_init=10)
        labels = labels.long()
        self.initial_labels_ = labels.cpu().numpy().astype(np.int64)
        module = self.module_
        self.init_history_ = {
            "gate": self._pretrain_gate(module, data, labels, seed),
            "experts": self._pretrain_experts(module, data, labels, seed),
        }
        self._fit_state["owned"] = cluster_weights(labels, self.n_clusters, self._sampling_weights()) > 0
        return labels

    def _pretrain_gate(self, module, data, labels, seed):
        gate = module.gate

        def batch_loss(x, index):
            with single_row_safe(gate, x.shape[0]):
                return {"loss": F.cross_entropy(self._training_forward(gate, x), labels[index])}

        return self._run_phase(
            data, batch_loss, gate.parameters(), self.gate_pretrain_epochs, seed + 2, "DAMIC gate",
            self._sampling_weights(),
        )

    def _pretrain_experts(self, module, data, labels, seed):
        experts = module.experts
        weights = self._row_weights()
        # rows of zero weight teach no expert
        weighted = torch.ones_like(labels, dtype=torch.bool) if weights is None else weights > 0
        members = []
        for k in range(self.n_clusters):
            own = torch.nonzero((labels == k) & weighted).flatten()
            # k-means leaves a cluster empty only on duplicated points; that
            # expert then learns from all the data.
            members.append(own if own.numel() else torch.nonzero(weighted).flatten())
        member_weights = None if weights is None else [weights[m].cpu() for m in members]
        rows = _ClusterRows(data, members, member_weights, torch.Generator().manual_seed(seed + 4))
        loss_name = self._pretrain_loss()

        def batch_loss(x, index):
            with single_row_safe(experts, x.shape[1]):
                x_hat = self._training_forward(experts, x)
            return {"loss": reconstruction_loss(x_hat, x, loss_name)}

        return self._run_phase(rows, batch_loss, experts.parameters(), self.expert_pretrain_epochs, seed + 3, "DAMIC experts")

    def _run_phase(self, data, batch_loss, parameters, n_epochs, seed, phase, sample_weight=None):
        result = train(
            data=data,
            batch_loss=batch_loss,
            optimizer=torch.optim.Adam(parameters, lr=self.learning_rate),
            n_epochs=n_epochs,
            batch_size=self.batch_size,
            generator=torch.Generator().manual_seed(seed),
            sample_weight=sample_weight,
            phase=phase,
            verbose=self.verbose,
        )
        return result.history

    # -- joint training of eq. (3) -------------------------------------------------
    def _batch_loss(self, x, index):
        log_gate, distances = self._training_forward(self.module_, x)
        loss = mixture_nll(log_gate, distances).mean()
        with torch.no_grad():
            reconstruction = (posterior(log_gate, distances) * distances).sum(dim=1).mean()
        return {"loss": loss, "reconstruction": reconstruction}

    def _on_checkpoint(self, step, data):
        module = self.module_
        module.eval()
        with torch.no_grad():
            labels = torch.cat([self._hard_assign(module, x) for x in data.chunks(_INFERENCE_CHUNK)])
        module.train()
        owned = cluster_weights(labels, self.n_clusters, self._sampling_weights()) > 0
        lost = torch.nonzero(self._fit_state["owned"] & ~owned).flatten().tolist()
        if lost:
            epoch = step // self._fit_state["n_batches"]
            warn_at_caller(
                f"DAMIC: autoencoder(s) {lost} lost all their points before joint-training "
                f"epoch {epoch} (see history_[...]['n_clusters_used']). An autoencoder may win points "
                "back later: n_active_clusters_ counts those that own points at the end.",
                ConvergenceWarning,
            )
        self._fit_state["owned"] = owned
        return labels

    # -- inference ------------------------------------------------------------------
    def _embed(self, module, x):
        return module.features(x)

    def _soft_assign(self, module, x):
        if self.decision == "gate":
            return torch.softmax(module.gate(x), dim=1)
        return torch.softmax(-module.distances(x), dim=1)

    @property
    def cluster_sizes_(self):
        return np.bincount(self.labels_, minlength=self.n_clusters)

    @property
    def n_active_clusters_(self):
        return int(np.count_nonzero(self.cluster_sizes_))

    def reconstruction_errors(self, X):
        """Reconstruction error of every autoencoder on every sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        d : ndarray of shape (n_samples, n_clusters)
            ``d(x, f_i(x)) = ||x - f_i(x)||^2 / 2``; its row argmin is the
            decision rule of eq. (6).
        """
        return self._map(X, lambda m, x: m.distances(x))

    def posterior_proba(self, X):
        """Soft assignments ``w_i`` of eq. (5), the mixture's posterior.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        w : ndarray of shape (n_samples, n_clusters)
            ``p(c=i|x) exp(-d_i)`` normalised over i; rows sum to 1.
        """
        return self._map(X, lambda m, x: posterior(*m(x)))

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood of ``X`` under the mixture, minus eq. (3) per sample.

        ``mean_t log sum_i p(c=i|x_t) exp(-d(x_t, f_i(x_t)))``; higher is better.

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
        return -weighted_average(self._map(X, lambda m, x: mixture_nll(*m(x))), sample_weight)
