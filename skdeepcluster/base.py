"""Shared machinery of every skdeepcluster estimator.

:class:`TorchEstimatorMixin` holds what the public :class:`AutoEncoder` and
the clusterers share: input validation, device resolution, seeding, batched
float64 inference and device-independent pickling.

:class:`BaseDeepClusterer` owns the ``fit`` template of every clustering
method. A method fills in a few hooks (see the class docstring) and never
overrides ``fit``.
"""

import contextlib
import copy
import inspect
import os
import sys
import warnings

import joblib
import numpy as np
import scipy.sparse as sp
import sklearn
import torch
from sklearn.base import BaseEstimator, clone, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning
from sklearn.frozen import FrozenEstimator
from sklearn.mixture import GaussianMixture
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from ._core.data import DeviceData, from_tensor
from ._core.device import (
    PRECISIONS,
    check_precision_supported,
    fit_torch_modes,
    float64_device,
    forward_in_precision,
    resolve_device,
    seeded,
)
from ._core.params import (
    FLOAT32_MAX,
    LAYER_WIDTH,
    AnyOf,
    Anything,
    CacheLocation,
    Integer,
    LayerSizes,
    Options,
    RandomState,
    Real,
    layer_sizes,
    validate_params,
)
from ._core.gaussians import WeightedGaussianMixture
from ._core.training import DIVERGED_ADVICE, batch_bounds, single_row_safe, train
from ._core.weights import check_sample_weight, training_weights

_INFERENCE_CHUNK = 4096

DEVICE_RULE = Anything()  # resolved (and its errors raised) by resolve_device
VERBOSE_RULE = AnyOf(Options(False, True), Integer(low=0))  # bools (numpy's too), as scikit-learn takes


def stored_values(X):
    """The values of dense or sparse ``X`` as training sees them: a sparse
    matrix's duplicated entries summed, as densifying its batches does."""
    if not sp.issparse(X):
        return X
    X = X.tocsr()
    if not X.has_canonical_format:
        X = X.copy()  # not the caller's matrix
        X.sum_duplicates()
    return X.data


def check_float32_range(X, name):
    """Raise a ValueError if ``X`` holds values beyond float32's range.

    The data is stored in float32 (see DeviceData): such values would
    become inf there, and the outputs NaN.
    """
    values = stored_values(X)
    largest = max(float(values.max()), -float(values.min())) if values.size else 0.0
    if largest > FLOAT32_MAX:
        raise ValueError(
            f"{name} has values up to {largest:.3g} in magnitude, beyond float32's "
            f"{FLOAT32_MAX:.3g}, in which the input is stored; rescale {name} "
            "(e.g. sklearn.preprocessing.StandardScaler or MaxAbsScaler)."
        )


def check_unit_interval(X, needed_by, otherwise):
    """Raise a ValueError unless every entry of ``X`` (as stored) lies in [0, 1].

    ``needed_by`` names what needs it and ``otherwise`` the setting that
    does not, for the message.
    """
    values = stored_values(X)
    # a sparse matrix's implicit entries are zeros, which count
    implicit_zeros = sp.issparse(X) and values.size < X.shape[0] * X.shape[1]
    extremes = [0.0] if implicit_zeros or not values.size else []
    if values.size:
        extremes += [float(values.min()), float(values.max())]
    low, high = min(extremes), max(extremes)
    if low < -1e-6 or high > 1 + 1e-6:
        # MinMaxScaler refuses sparse input; MaxAbsScaler keeps it sparse
        # and maps non-negative values (counts, TF-IDF) into [0, 1]
        scaler = "MaxAbsScaler, for non-negative sparse X" if sp.issparse(X) else "MinMaxScaler"
        raise ValueError(
            f"{needed_by} needs every feature in [0, 1]; X spans [{low:.4g}, {high:.4g}]. "
            f"Rescale it (e.g. sklearn.preprocessing.{scaler}) or {otherwise}."
        )


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
#: Libraries whose frames stand between the user's line and our fit: a
#: Pipeline's or a search's (scikit-learn calls through joblib).
_CALLER_SKIPS = tuple(os.path.dirname(os.path.abspath(m.__file__)) + os.sep for m in (sklearn, joblib))


def warn_at_caller(message, category):
    """``warnings.warn`` attributed to the user's line.

    The first frame outside this package, scikit-learn and joblib: the
    user's ``fit`` line, however deep in training the warning arises, also
    through a ``Pipeline`` or a search run in the caller's process (what
    Python 3.12's ``skip_file_prefixes`` does). A search's worker thread or
    process has no line of the user's: the first frame outside those
    libraries is whatever started the worker (``threading``, say), or,
    where none is, the first outside this package.
    """
    frame, stacklevel = sys._getframe(0), 1
    outside_package = None
    while frame is not None:
        path = os.path.abspath(frame.f_code.co_filename)
        if not path.startswith(_PACKAGE_DIR + os.sep):
            outside_package = outside_package or stacklevel
            if not path.startswith(_CALLER_SKIPS):
                break
        frame, stacklevel = frame.f_back, stacklevel + 1
    warnings.warn(message, category, stacklevel=stacklevel if frame is not None else (outside_package or 1))


def seed_from(random_state):
    """An int seed for torch, drawn the way sklearn draws from random_state."""
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def pretraining_random_state(random_state):
    """The ``random_state`` a clusterer hands to its default autoencoder.

    An int is handed on as it is, so that the pretraining is
    ``AutoEncoder(random_state=that int)``'s (and shares its cache entry);
    a ``RandomState`` as a copy taken before the clusterer draws its own
    seed from it, so that ``RandomState(0)`` gives the fit of ``0``, as in
    scikit-learn; None as None (the autoencoder draws its own seed, and
    warns where ``memory`` could then never be read back).
    """
    if isinstance(random_state, np.random.RandomState):
        return copy.deepcopy(random_state)
    return random_state


class TorchEstimatorMixin:
    """Validation, device, seeding, batched inference and pickling."""

    _parameter_rules = {}

    #: Parameters that prediction reads (DAMIC's ``decision``), rather than
    #: the fitted attributes: checked again at every prediction.
    _prediction_parameters = ()

    #: Whether training keeps float64 tensors on the training device, which
    #: Apple's MPS backend cannot hold.
    _float64_training = False

    # -- validation ---------------------------------------------------------
    def _validate_params(self):
        validate_params(self)

    @contextlib.contextmanager
    def _fitting(self):
        """Around a fit: forget the public attributes of an earlier fit,
        check the parameters, and forget this fit's attributes if it fails.

        A refit with other settings (ADMMCluster's ``clustering``, say) must
        not keep attributes that only the earlier model had, and a failed fit
        (refused parameters included) must not leave an estimator that looks
        fitted. The fit trains whatever the caller's torch modes: under
        ``torch.no_grad()`` or ``torch.inference_mode()`` too, and with the
        caller's autocast, if any, turned off (``precision`` sets it).
        """
        self._forget_fit()
        try:
            self._validate_params()
            with fit_torch_modes():
                yield
        except BaseException:
            self._forget_fit()
            raise

    def _forget_fit(self):
        for name in [name for name in vars(self) if name.endswith("_") and not name.startswith("_")]:
            delattr(self, name)

    def _validate_X(self, X, reset):
        X = from_tensor(X)
        X = validate_data(
            self,
            X,
            reset=reset,
            accept_sparse=("csr", "csc", "coo"),
            dtype=(np.float64, np.float32),
            ensure_min_samples=2 if reset else 1,
        )
        check_float32_range(X, "X")
        return X

    def _resolve_device(self):
        device = resolve_device(self.device)
        if device.type == "mps" and self._float64_training:
            raise ValueError(
                f"{type(self).__name__} keeps part of its training state in float64, which "
                "Apple's MPS backend does not support; use device='cpu' (or 'cuda' where present)."
            )
        return device

    # -- inference -----------------------------------------------------------
    def _inference_device(self):
        return float64_device(self.device_)

    def _inference_copy(self, module):
        """A float64 copy of ``module`` in eval mode on the inference device.

        Inference runs in float64 so that a row's output depends on which
        other rows share its batch only in its last bits (about 1e-15:
        matrix products are blocked differently for different batch sizes),
        far inside sklearn's subset and sample-order invariance checks, where
        float32's rounding (about 1e-7) would fail them.
        """
        device = self._inference_device()
        # move, then cast: a cast on the way off an MPS device would be done in
        # MPS, which has no float64
        return copy.deepcopy(module).to(device).to(torch.float64).eval()

    def _map(self, X, function):
        """``function(module, x)`` over validated ``X`` with the fitted network:
        the body of every prediction method."""
        check_is_fitted(self)
        # set since fit, perhaps (fit checked the others, which prediction
        # does not read)
        validate_params(self, self._prediction_parameters)
        X = self._validate_X(X, reset=False)
        return self._map_batches(X, function, self._inference_copy(self.module_))

    def _map_batches(self, X, function, module):
        """Apply ``function(module, x)`` to ``X`` in chunks; concatenate as numpy."""
        device = self._inference_device()
        # resident=False: one pass needs no whole copy of X (in float64, on the device)
        data = DeviceData(X, device, dtype=torch.float64, resident=False)
        outputs = []
        with torch.no_grad():
            for x in data.chunks(_INFERENCE_CHUNK):
                outputs.append(function(module, x).cpu())
        return torch.cat(outputs).numpy()

    # -- pickling -------------------------------------------------------------
    def __getstate__(self):
        state = super().__getstate__()
        for key, value in list(state.items()):
            if isinstance(value, torch.nn.Module):
                state[key] = copy.deepcopy(value).cpu()
            elif isinstance(value, torch.Tensor):
                state[key] = value.detach().cpu()
        return state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        try:
            tags.non_deterministic = resolve_device(self.device).type != "cpu"
        except ValueError:
            pass
        return tags


SHARED_RULES = {
    "n_clusters": Integer(low=1),
    "hidden_dims": LayerSizes(),
    "embedding_dim": LAYER_WIDTH,
    "pretrain_epochs": Integer(low=0),
    "max_epochs": Integer(low=0),
    "batch_size": Integer(low=1),
    "learning_rate": Real(low=0, low_open=True),
    # a fraction of the labels, compared in Python floats
    "tol": Real(low=0, high=1, float32=False),
    "precision": Options(*PRECISIONS),
    "device": DEVICE_RULE,
    "memory": CacheLocation(),
    "random_state": RandomState(),
    "verbose": VERBOSE_RULE,
    "autoencoder": Anything(),
}


class BaseDeepClusterer(
    ClusterMixin, TransformerMixin, ClassNamePrefixFeaturesOutMixin, TorchEstimatorMixin, BaseEstimator
):
    """Base class of the deep clustering estimators.

    ``fit`` is a template: validate; resolve ``device_``; seed; pretrain (or
    reuse a cached or given :class:`~skdeepcluster.AutoEncoder`); build the
    network; initialise the clusters on the pretrained embedding; run the
    shared mini-batch loop; set ``labels_`` through ``predict``.

    Notes
    -----
    The hooks a method fills in; ``_init_clusters``, ``_on_checkpoint``,
    ``_batch_loss`` and ``_soft_assign`` have no default:

    ``_build_module(n_features, autoencoder, seed) -> torch.nn.Module``
        The trainable network. Default: the pretrained autoencoder's network
        (or a freshly initialised one when ``pretrain_epochs=0``).
    ``_init_clusters(Z, data, seed)``
        Clustering parameters from the pretrained autoencoder's embedding
        ``Z`` of all rows (a tensor on ``device_``); may register new
        parameters on ``self.module_`` or run its own pretraining through
        ``skdeepcluster._core.training.train``. Returns initial labels (an
        int64 tensor, as ``_kmeans`` gives). State that training does not
        update by gradient (centres moved in closed form, counts) goes in
        buffers (``module_.register_buffer``), so that it is pickled, moved
        between devices and cast to float64 for prediction with the rest.
    ``_on_checkpoint(step, data) -> labels``
        Whole-data update every ``_checkpoint_interval()`` steps (IDEC's
        target distribution, DKM's alpha schedule), the first at step 0,
        before any training step. Returns hard labels as a new tensor: the
        loop keeps it to count the next change, so a tensor changed in place
        later would read as no change.
    ``_on_training_end(step, data) -> labels or None``
        Runs once after the last epoch when the epochs ran out (a ``tol``
        stop already follows a checkpoint): the update that would have
        followed that epoch (ADMMCluster's last ADMM step). Labels it
        returns count as that checkpoint's: their change enters the last
        record of ``history_`` and sets ``converged_`` when below ``tol``.
        Default: nothing, and None.
    ``_batch_loss(x, index) -> dict``
        Loss parts of one mini-batch; ``"loss"`` is minimised. A one-row
        batch (``batch_size=1``) runs with batch norm on its running
        statistics. Its network calls go through
        ``self._training_forward(network, x)``, which applies ``precision``
        (a common test checks that every training product is bfloat16
        under ``precision="bfloat16"``). With ``sample_weight`` the loop
        draws the batch's rows in proportion to their weights, so the loss
        stays a plain mean over the batch.
    ``_embed(module, x)``, ``_soft_assign(module, x)``, ``_hard_assign(module, x)``
        Embedding, cluster probabilities and labels of a batch, used by
        ``transform``, ``predict_proba`` and ``predict`` (default: the
        argmax of ``_soft_assign``). They read the fitted ``module`` and
        fitted attributes only, not parameters that a later ``set_params``
        could change: copy such a value into a fitted attribute during the
        fit, as DeepKMeans' ``alpha_``, or list a parameter that prediction
        must read, such as DAMIC's ``decision``, in
        ``_prediction_parameters``. A common test makes every other
        parameter unusable and predicts. ``_soft_assign`` must let NaN
        through, as the end-of-fit divergence check relies on it.
    ``_check_method_params(X)``, ``_finish_fit()``
        Checks that need the data, before pretraining; the copy of learnt
        clustering parameters to public attributes after training, when
        ``_fit_state`` is gone. A method that sets ``cluster_centers_``
        (in its embedding space) gets ``inertia_`` and the default
        ``score``; one without centres overrides ``score``, as DAMIC does, and
        so may one whose model has a likelihood (DeepGMM: its mixture's).

    Per-sample training state lives in ``self._fit_state`` (a dict) and is
    deleted when training ends. ``_kmeans`` and ``_fit_gaussian_mixture``
    weigh the rows by the fit's ``sample_weight``; a whole-data update of a
    method's own weighs them by ``self._row_weights()`` (None when
    unweighted), so that an integer weight acts as copies of its row
    (``tests/test_sample_weight.py`` checks every method against repeated
    rows, with the loop's draws replaced by the repeated rows' order).

    Class attributes a method may set:
    ``_parameter_rules`` (its parameters' checks, usually ``SHARED_RULES``
    and its own), ``_clustering_weight_name`` (named by the empty-cluster
    warning), ``_float64_training`` (keeps float64 tensors on the training
    device, which MPS refuses) and ``_prediction_parameters``. A common test
    checks that ``_parameter_rules`` has a rule for every ``__init__``
    parameter.
    """

    _parameter_rules = SHARED_RULES

    #: Name of the parameter weighting the clustering term, if the method has
    #: one; the empty-cluster warning suggests lowering it.
    _clustering_weight_name = None

    # -- hooks with defaults ----------------------------------------------------
    def _embedding_dim(self):
        return self.embedding_dim

    def _default_autoencoder(self, random_state):
        from ._autoencoder import AutoEncoder

        return AutoEncoder(
            hidden_dims=self.hidden_dims,
            embedding_dim=self._embedding_dim(),
            max_epochs=self.pretrain_epochs,
            batch_size=self.batch_size,
            precision=self.precision,
            device=self.device,
            memory=self.memory,
            random_state=random_state,
            verbose=self.verbose,
        )

    def _build_module(self, n_features, autoencoder, seed):
        if autoencoder is not None:
            return copy.deepcopy(autoencoder.module_)
        return self._default_autoencoder(seed)._build_network(n_features, seed)

    def _make_optimizer(self, parameters):
        return torch.optim.Adam(parameters, lr=self.learning_rate)

    def _checkpoint_interval(self):
        return None  # once per epoch

    def _n_training_epochs(self):
        return self.max_epochs

    def _on_training_end(self, step, data):
        """Whole-data update after the last epoch (see Notes); none by default."""

    def _embed(self, module, x):
        return module.encoder(x)

    def _hard_assign(self, module, x):
        return self._soft_assign(module, x).argmax(dim=1)

    # -- shared helpers for methods ---------------------------------------------
    def _embed_all(self, data):
        """Embedding of every row with the training module (no gradient)."""
        was_training = self.module_.training
        self.module_.eval()
        with torch.no_grad():
            Z = torch.cat([self._embed(self.module_, x) for x in data.chunks(_INFERENCE_CHUNK)])
        self.module_.train(was_training)
        return Z

    def _pretrained_embedding(self, data):
        """Embedding of every row by the pretrained autoencoder's encoder (by
        the freshly built network when there was no pretraining)."""
        if self.autoencoder_ is None:
            return self._embed_all(data)
        encoder = copy.deepcopy(self.autoencoder_.module_.encoder).to(self.device_).eval()
        with torch.no_grad():
            return torch.cat([encoder(x) for x in data.chunks(_INFERENCE_CHUNK)])

    def _row_weights(self):
        """The fit's sample weights (mean 1) as a float32 tensor on the
        training device, for whole-data updates; None for an unweighted fit,
        or outside a fit."""
        return getattr(self, "_fit_state", {}).get("weights")

    def _sampling_weights(self):
        """The fit's sample weights as a CPU tensor, for the training loop's
        weighted draws of rows (``train(sample_weight=...)``); None when unweighted."""
        weights = self._row_weights()
        return None if weights is None else weights.cpu()

    def _numpy_weights(self):
        weights = self._row_weights()
        return None if weights is None else weights.cpu().double().numpy()

    def _kmeans(self, Z, seed, n_init=10):
        """sklearn KMeans on an embedding tensor, with the fit's sample
        weights; returns (centers, labels) tensors, the labels int64
        (torch's index type), as every label tensor."""
        km = KMeans(self.n_clusters, n_init=n_init, random_state=seed)
        labels = km.fit_predict(Z.detach().cpu().double().numpy(), sample_weight=self._numpy_weights())
        centers = torch.as_tensor(km.cluster_centers_, dtype=Z.dtype, device=Z.device)
        return centers, torch.as_tensor(labels, dtype=torch.int64, device=Z.device)

    def _fit_gaussian_mixture(self, Z, seed, n_init=10, covariance_type="full", reg_covar=1e-6):
        """A Gaussian mixture fitted on an embedding tensor: sklearn's
        GaussianMixture, or :class:`WeightedGaussianMixture` when the fit has
        sample weights; returns (model, int64 labels)."""
        weights = self._numpy_weights()
        rows = Z.detach().cpu().double().numpy()
        if weights is None:
            gmm = GaussianMixture(
                self.n_clusters, covariance_type=covariance_type, reg_covar=reg_covar, n_init=n_init, random_state=seed
            )
            labels = gmm.fit_predict(rows)
        else:
            gmm = WeightedGaussianMixture(
                self.n_clusters, covariance_type, n_init=n_init, random_state=seed, reg_covar=reg_covar
            )
            labels = gmm.fit_predict(rows, weights)
        return gmm, torch.as_tensor(labels, dtype=torch.int64, device=Z.device)

    def _gaussian_mixture(self, Z, seed, n_init=10):
        """Full-covariance sklearn GaussianMixture on an embedding tensor; returns (means, labels) tensors."""
        gmm, labels = self._fit_gaussian_mixture(Z, seed, n_init)
        return torch.as_tensor(gmm.means_, dtype=Z.dtype, device=Z.device), labels

    # -- fit template -------------------------------------------------------------
    def fit(self, X, y=None, sample_weight=None):
        """Fit the network and the clusters to ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
            Training data. Sparse input is densified one batch at a time.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Non-negative weight of each row; None weighs every row 1. An
            integer weight acts as that many copies of the row: the
            whole-data steps (initial k-means or mixture, target
            distributions, cluster updates) weigh each row by it, and each
            training epoch (pretraining included) draws its rows with
            replacement in proportion to it. The ``tol`` rule, ``history_``'s
            label counts and the empty-cluster warning weigh rows alike (a
            cluster of zero-weight rows only counts as empty).

        Returns
        -------
        self : object
            Fitted estimator.

        Raises
        ------
        ValueError, TypeError
            For a bad parameter or input; ``FloatingPointError`` when the
            training diverges. A fit that raises leaves the estimator
            unfitted, whatever an earlier fit had learnt: nothing stale is
            left to predict with.
        """
        with self._fitting():
            return self._fit(X, sample_weight)

    def _fit(self, X, sample_weight=None):
        """``fit`` after parameter validation; see the class Notes for the hooks."""
        X = self._validate_X(X, reset=True)
        n_samples, n_features = X.shape
        sample_weight = check_sample_weight(sample_weight, n_samples)
        weights = training_weights(sample_weight)
        if weights is not None:
            # as training holds them: a weight below float32's range beside
            # the others is 0 there, and counts as 0 everywhere
            weights = weights.astype(np.float32)
        n_weighted = n_samples if weights is None else int(np.count_nonzero(weights))
        if self.n_clusters > n_weighted:
            rows = f"n_samples={n_weighted}" if sample_weight is None else (
                f"the number of rows with a positive sample_weight ({n_weighted})"
            )
            vanished = 0 if weights is None else int(np.count_nonzero(sample_weight)) - n_weighted
            if vanished:
                rows += (
                    f"; {vanished} more positive weights are below float32's range beside the largest "
                    "and count as 0 (training holds weights in float32 relative to the largest)"
                )
            raise ValueError(
                f"n_clusters={self.n_clusters} must be <= {rows}: "
                "there cannot be more clusters than samples."
            )
        self._check_method_params(X)
        self.device_ = self._resolve_device()
        check_precision_supported(self.precision, self.device_)
        ae_state = pretraining_random_state(self.random_state)
        seed = seed_from(self.random_state)

        autoencoder = self._pretrained_autoencoder(X, ae_state, sample_weight)
        self.autoencoder_ = autoencoder
        with seeded(seed):
            module = self._build_module(n_features, autoencoder, seed)
        # float32 whatever torch's default dtype: the data are stored in float32
        self.module_ = module.to(self.device_, torch.float32)

        data = DeviceData(X, self.device_)
        self._fit_state = {
            "generator": torch.Generator(device=self.device_).manual_seed(seed + 1),
            "n_batches": len(batch_bounds(n_samples, self.batch_size)) - 1,
            "weights": None if weights is None else torch.as_tensor(weights, dtype=torch.float32, device=self.device_),
        }
        try:
            # no seeded() here: the start draws from seed-made generators only,
            # and a seeded block would hold the global generator's lock through
            # DAMIC's whole gate and expert pretraining
            initial_labels = self._init_clusters(self._pretrained_embedding(data), data, seed)
            optimizer = self._make_optimizer(self.module_.parameters())
            self.module_.train()
            result = train(
                data=data,
                batch_loss=self._one_batch_loss,
                optimizer=optimizer,
                n_epochs=self._n_training_epochs(),
                batch_size=self.batch_size,
                generator=torch.Generator().manual_seed(seed),
                sample_weight=self._sampling_weights(),
                checkpoint=lambda step: self._on_checkpoint(step, data),
                checkpoint_interval=self._checkpoint_interval(),
                initial_labels=initial_labels,
                tol=self.tol,
                phase=type(self).__name__,
                verbose=self.verbose,
            )
            if result.n_epochs > 0 and not result.converged:
                # tol stops right after a checkpoint; running out of epochs does not
                final_labels = self._on_training_end(result.n_steps, data)
                if final_labels is not None:
                    result.record_final_checkpoint(final_labels, self.tol)
        finally:
            del self._fit_state
        self.module_.eval()
        self.history_ = result.history
        self.n_iter_ = result.n_epochs
        self.n_steps_ = result.n_steps
        self.converged_ = result.converged
        self._finish_fit()
        module = self._inference_copy(self.module_)
        if not np.isfinite(self._map_batches(X, self._soft_assign, module)).all():
            # e.g. finite but huge weights whose embedding overflows: the
            # labels would be argmaxes of NaN
            raise FloatingPointError(
                f"{type(self).__name__} gives inf or NaN cluster probabilities on the training data after "
                f"fit: training diverged. {DIVERGED_ADVICE}"
            )
        self.labels_ = self._map_batches(X, self._hard_assign, module).astype(np.int64)
        self._warn_empty_clusters(weights)
        if hasattr(self, "cluster_centers_"):
            self.inertia_ = self._inertia(self._map_batches(X, self._embed, module), sample_weight)
        return self

    def _one_batch_loss(self, x, index):
        # batch_size=1 gives one-row batches, whose batch-norm statistics
        # (DAMIC's networks, a given autoencoder's) are undefined
        with single_row_safe(self.module_, x.shape[0]):
            return self._batch_loss(x, index)

    def _training_forward(self, network, x):
        """``network(x)`` in a training step, in ``precision``, its floating
        outputs in float32 (:func:`~skdeepcluster._core.device.forward_in_precision`);
        for every forward pass of a ``_batch_loss`` and of a method's own
        training phases, as DAMIC's pretraining."""
        return forward_in_precision(network, x, self.precision, self.device_)

    def _check_method_params(self, X):
        """Checks that need the data (override to add some)."""

    def _finish_fit(self):
        """Copy the learnt clustering parameters to public attributes."""

    def _given_autoencoder(self):
        """The ``autoencoder`` parameter out of its FrozenEstimator, if any,
        and whether it was in one."""
        frozen = isinstance(self.autoencoder, FrozenEstimator)
        return (self.autoencoder.estimator if frozen else self.autoencoder), frozen

    def _pretrained_autoencoder(self, X, random_state, sample_weight):
        from ._autoencoder import AutoEncoder

        given, frozen = self._given_autoencoder()
        if given is None:
            if self.pretrain_epochs == 0:
                return None
            return self._fit_autoencoder(self._default_autoencoder(random_state), X, sample_weight)
        if not isinstance(given, AutoEncoder):
            raise TypeError(
                "autoencoder must be None, a skdeepcluster.AutoEncoder (fitted "
                "or not) or a FrozenEstimator of a fitted one; got "
                f"{type(given).__name__}."
            )
        self._warn_if_recipe_ignored(given)
        if hasattr(given, "module_"):
            if given.n_features_in_ != X.shape[1]:
                raise ValueError(
                    f"The given autoencoder was fitted on {given.n_features_in_} "
                    f"features but X has {X.shape[1]}."
                )
            self._check_autoencoder_feature_names(given)
            return given
        if frozen:
            raise ValueError("autoencoder=FrozenEstimator(...) must wrap a fitted AutoEncoder; this one is not fitted.")
        # the given recipe, run on this estimator's device and verbosity, and
        # seeded by this estimator unless the recipe has its own seed
        autoencoder = clone(given).set_params(device=self.device, verbose=max(given.verbose, self.verbose))
        if autoencoder.random_state is None:
            autoencoder.set_params(random_state=random_state)
        if autoencoder.memory is None:
            autoencoder.set_params(memory=self.memory)
        return self._fit_autoencoder(autoencoder, X, sample_weight)

    def _check_autoencoder_feature_names(self, fitted):
        """X's columns (``feature_names_in_``, set from X by this fit) must
        be those the given autoencoder was fitted on, as its ``transform``
        would demand: reordered or renamed columns would be encoded as the
        wrong features."""
        theirs, ours = getattr(fitted, "feature_names_in_", None), getattr(self, "feature_names_in_", None)
        if theirs is not None and ours is not None:
            if not np.array_equal(theirs, ours):
                first = int(np.flatnonzero(np.asarray(theirs) != np.asarray(ours))[0])
                raise ValueError(
                    "X's feature names must be those the given autoencoder was fitted on, in the same "
                    f"order; column {first} is {ours[first]!r} in X but was {theirs[first]!r} there."
                )
        elif theirs is not None or ours is not None:
            if theirs is not None:
                mismatch = "X has no feature names, but the given autoencoder was fitted with feature names"
            else:
                mismatch = "X has valid feature names, but the given autoencoder was fitted without feature names"
            warn_at_caller(f"{mismatch}: its columns are taken to be X's, in order.", UserWarning)

    def _warn_if_recipe_ignored(self, given):
        """``hidden_dims``, ``embedding_dim`` and ``pretrain_epochs`` shape
        only the default autoencoder; warn when they were set to other values
        than the given autoencoder's, whose are the ones used."""

        defaults = inspect.signature(type(self).__init__).parameters
        theirs = given.get_params()
        ignored = [
            f"{name}={getattr(self, name)!r} (the autoencoder's: {theirs[name]!r})"
            for name in ("hidden_dims", "embedding_dim")
            if layer_sizes(getattr(self, name)) not in (layer_sizes(defaults[name].default), layer_sizes(theirs[name]))
        ]
        if self.pretrain_epochs not in (defaults["pretrain_epochs"].default, theirs["max_epochs"]):
            ignored.append(
                f"pretrain_epochs={self.pretrain_epochs!r} (the autoencoder's max_epochs: {theirs['max_epochs']!r})"
            )
        if ignored:
            warn_at_caller(
                f"{type(self).__name__}: {' and '.join(ignored)} ignored: a given autoencoder "
                "keeps its own shape and training. Set them on the AutoEncoder, or leave these at their defaults.",
                UserWarning,
            )

    def _fit_autoencoder(self, autoencoder, X, sample_weight):
        """Pretrain; a divergence names the recipe that diverged, which is
        the autoencoder's, not necessarily this estimator's learning rate."""
        from ._autoencoder import SGD_RECIPE_ADVICE, effective_learning_rate

        try:
            return autoencoder.fit(X, sample_weight=sample_weight)
        except FloatingPointError as error:
            # the training loop's own message, without AutoEncoder's advice (this one's replaces it)
            original = error.__cause__ if isinstance(error.__cause__, FloatingPointError) else error
            learning_rate = effective_learning_rate(autoencoder.optimizer, autoencoder.learning_rate)
            own = "" if learning_rate == self.learning_rate else (
                f" {type(self).__name__}'s learning_rate={self.learning_rate} does not set it."
            )
            if autoencoder.optimizer == "adam":
                advice = "Lower the AutoEncoder's learning_rate, scale X, or check X for extreme values."
            else:
                advice = SGD_RECIPE_ADVICE
            raise FloatingPointError(
                f"{type(self).__name__}: {str(original).removesuffix(DIVERGED_ADVICE).rstrip()} The pretraining "
                f"ran the autoencoder's recipe (optimizer={autoencoder.optimizer!r}, learning_rate={learning_rate})."
                f"{own} {advice}"
            ) from error

    def _empty_cluster_advice(self):
        if self._clustering_weight_name is None:
            return "Try fewer clusters, another random_state or a smaller learning_rate."
        return (
            f"Try fewer clusters, another random_state, a smaller {self._clustering_weight_name} "
            "or a smaller learning_rate."
        )

    def _warn_empty_clusters(self, sample_weight=None):
        """Warn of clusters that hold no training row (no row of positive weight)."""
        mass = np.bincount(self.labels_, weights=sample_weight, minlength=self.n_clusters)
        empty = np.flatnonzero(mass == 0)
        if empty.size:
            warn_at_caller(
                f"{type(self).__name__}: {empty.size} of {self.n_clusters} clusters "
                f"are empty after fit (clusters {empty.tolist()}). {self._empty_cluster_advice()}",
                ConvergenceWarning,
            )

    # -- prediction -----------------------------------------------------------------
    def predict(self, X):
        """Cluster index of each sample.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Integers in ``0 .. n_clusters - 1``.
        """
        return self._map(X, self._hard_assign).astype(np.int64)

    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit and return ``labels_``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,) or float, default=None
            As in :meth:`fit`.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.fit(X, sample_weight=sample_weight).labels_

    def predict_proba(self, X):
        """Soft cluster assignments.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_clusters)
            Rows sum to 1; their argmax is ``predict(X)``.
        """
        return self._map(X, self._soft_assign)

    def transform(self, X):
        """Learned embedding of ``X``.

        Unlike :class:`sklearn.cluster.KMeans`, whose ``transform`` gives
        distances to the centres, this returns the network's representation.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, n_embedding)
        """
        return self._map(X, self._embed)

    def score(self, X, y=None, sample_weight=None):
        """Opposite of the k-means objective of ``X`` in the embedding space.

        Embeddings of different models have different scales, so this is not
        a model-selection criterion across hyperparameters.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,) or float, default=None
            Weights of the rows' squared distances, as in
            :meth:`sklearn.cluster.KMeans.score`.

        Returns
        -------
        score : float
        """
        Z = self.transform(X)
        return -self._inertia(Z, check_sample_weight(sample_weight, Z.shape[0]))

    def _inertia(self, Z, sample_weight=None):
        """Sum over the rows of ``Z`` of the (weighted) squared distance to the nearest centre."""
        centers = np.asarray(self.cluster_centers_, dtype=np.float64)
        total = 0.0
        for start in range(0, Z.shape[0], _INFERENCE_CHUNK):
            block = Z[start : start + _INFERENCE_CHUNK]
            nearest = ((block[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).min(axis=1)
            if sample_weight is not None:
                nearest = nearest * sample_weight[start : start + _INFERENCE_CHUNK]
            total += nearest.sum()
        return float(total)

    @property
    def _n_features_out(self):
        return self.module_.encoder[-1].out_features
