"""The public autoencoder transformer, and the pretraining every method shares."""

import contextlib

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._core.autoencoder import (
    ACTIVATIONS,
    DEFAULT_WEIGHT_INIT,
    WEIGHT_INITS,
    MLPAutoEncoder,
    masking_noise,
    reconstruction_loss,
)
from ._core.cache import cached_call, caches, note_computation
from ._core.data import DeviceData, as_stored, from_tensor
from ._core.device import PRECISIONS, as_current_device, check_precision_supported, forward_in_precision, seeded
from ._core.params import LAYER_WIDTH, Anything, CacheLocation, Integer, LayerSizes, Options, RandomState, Real, layer_sizes
from ._core.progress import Progress
from ._core.training import DIVERGED_ADVICE, train
from ._core.weights import check_sample_weight, training_weights
from .base import (
    DEVICE_RULE,
    VERBOSE_RULE,
    TorchEstimatorMixin,
    check_float32_range,
    check_unit_interval,
    seed_from,
    warn_at_caller,
)

#: Learning rate used when ``learning_rate=None``, per optimizer.
DEFAULT_LEARNING_RATES = {"sgd": 1.0, "adam": 1e-3}


#: What to do when the default SGD recipe (learning rate 1.0, meant for
#: features in [0, 1]) diverges; AutoEncoder's and the clusterers' messages end with it.
SGD_RECIPE_ADVICE = (
    "Scale X to [0, 1] (MinMaxScaler; MaxAbsScaler for sparse input), use optimizer='adam' "
    "(autoencoder=AutoEncoder(optimizer='adam') for a clusterer) for standardised data, or check X for "
    "extreme values."
)


def effective_learning_rate(optimizer, learning_rate):
    """The rate a pretraining runs at: ``learning_rate``, or the optimizer's default for None."""
    return DEFAULT_LEARNING_RATES[optimizer] if learning_rate is None else learning_rate

#: Part of the pretraining cache's key. joblib keys a cached call on its
#: arguments and on the source of ``_train_autoencoder`` alone, so a change
#: in what that function calls (the loss, the training loop, the network's
#: initialisation) would let a cache written by earlier code be read back.
#: Increase it with any change that alters a pretraining's weights. An edit
#: of ``_train_autoencoder``'s own source, even one that leaves the weights
#: as they were (a comment; the ``note_computation`` call), needs no new
#: revision: joblib then clears that function's whole cache once by itself
#: (two installed versions that differ there, sharing one cache, clear
#: each other's entries).
#: 1: the code before it was keyed (up to commit b946795, unkeyed);
#: 2: keyed, after the binary cross-entropy was written out (56d7ac6);
#: 3: the output activation on float32 input, which changes bfloat16
#: pretrainings with an output activation (895951e);
#: 4: a last batch under half ``batch_size`` joins the one before.
PRETRAINING_REVISION = 4


def _network(n_features, config):
    return MLPAutoEncoder(
        n_features,
        config["hidden_dims"],
        config["embedding_dim"],
        activation=config["activation"],
        output_activation=config["output_activation"],
        batch_norm=config["batch_norm"],
        weight_init=config["weight_init"],
    )


def make_optimizer(name, parameters, learning_rate, momentum):
    if name == "sgd":
        return torch.optim.SGD(parameters, lr=learning_rate, momentum=momentum)
    return torch.optim.Adam(parameters, lr=learning_rate)


def _train_autoencoder(X, config, seed, device_type, verbose, revision, sample_weight=None):
    """Pretrain an autoencoder; module-level so that joblib can cache it.

    ``revision`` (:data:`PRETRAINING_REVISION`) is not used here: it is an
    argument so that it enters the cache key. ``sample_weight`` holds the
    training weights (mean 1; each epoch draws its rows in proportion to
    them) or None. Returns the CPU ``state_dict`` and the per-epoch history.
    """
    note_computation()  # for from_cache_: this call trains, it does not read the cache
    device = torch.device(device_type)
    with seeded(seed):
        module = _network(X.shape[1], config)
    module = module.to(device).train()
    data = DeviceData(X, device)
    noise_generator = torch.Generator(device=device).manual_seed(seed + 1)
    fraction, loss_name = config["input_noise"], config["loss"]

    def batch_loss(x, index):
        noisy = masking_noise(x, fraction, noise_generator)
        _, x_hat = forward_in_precision(module, noisy, config["precision"], device)
        return {"loss": reconstruction_loss(x_hat, x, loss_name)}

    learning_rate = effective_learning_rate(config["optimizer"], config["learning_rate"])
    optimizer = make_optimizer(config["optimizer"], module.parameters(), learning_rate, config["momentum"])
    result = train(
        data=data,
        batch_loss=batch_loss,
        optimizer=optimizer,
        n_epochs=config["max_epochs"],
        batch_size=config["batch_size"],
        generator=torch.Generator().manual_seed(seed),
        sample_weight=None if sample_weight is None else torch.as_tensor(sample_weight),
        phase="pretraining",
        verbose=verbose,
    )
    state = {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return state, result.history


class AutoEncoder(ClassNamePrefixFeaturesOutMixin, TransformerMixin, TorchEstimatorMixin, BaseEstimator):
    """Fully connected autoencoder as a scikit-learn transformer.

    ``transform`` gives the embedding (bottleneck), ``inverse_transform`` the
    reconstruction from an embedding. ``make_pipeline(AutoEncoder(),
    KMeans(10))`` is the "AE + k-means" baseline of the deep clustering
    papers, and every clustering estimator of this package pretrains with
    this class (or starts from one you give it).

    The defaults follow the recipe chosen from this project's measurements
    on MNIST (see Notes for the initialisation): a denoising autoencoder
    (20% masking noise on the input) ``d-500-500-2000-10`` with ReLU hidden
    layers, linear embedding and output, ``torch.nn.Linear``'s weights with
    zero biases (see Notes), trained end to end by SGD (learning rate 1.0,
    momentum 0.9, batch 256) on the per-element squared error for 400
    epochs. DEC's Keras re-implementation trains 300; on MNIST-5k (5 seeds)
    400 epochs gave a higher mean accuracy for every method started from
    the network: AE + k-means 0.664 -> 0.670, AE + GMM 0.687 ->
    0.712, DEC 0.728 -> 0.749, IDEC 0.720 -> 0.724, DeepKMeans 0.651 ->
    0.662 (benchmarks ``mnist5k_ae300`` and ``mnist5k_ae400``), for a
    third more pretraining time. Going further pays little: on a GPU (same
    seeds) AE + k-means went 0.667 -> 0.676 -> 0.679 at 400, 800 and 1,200
    epochs, inside the seed spread, and AE + GMM fell 0.711 -> 0.689
    (``benchmarks/results/gpu/pretraining_length.md``).

    Parameters
    ----------
    hidden_dims : tuple of int, default=(500, 500, 2000)
        Widths of the encoder's hidden layers; the decoder mirrors them.
    embedding_dim : int, default=10
        Size of the bottleneck (output of ``transform``).
    max_epochs : int, default=400
        Training epochs (passes over the data). ``0`` leaves the network at
        its random initialisation.
    batch_size : int, default=256
        At least 2 with ``batch_norm=True``.
    optimizer : {"sgd", "adam"}, default="sgd"
        ``"sgd"`` uses momentum ``momentum``.
    learning_rate : float or None, default=None
        ``None`` means 1.0 for SGD and 1e-3 for Adam.
    momentum : float, default=0.9
        SGD momentum.
    input_noise : float, default=0.2
        Fraction of input entries zeroed at random in each batch (masking
        noise of a denoising autoencoder). ``0`` trains a plain autoencoder.
    loss : {"mse", "bce"}, default="mse"
        Reconstruction error per element; ``"bce"`` needs inputs in [0, 1]
        and ``output_activation="sigmoid"``.
    activation : {"relu", "elu", "sigmoid", "tanh"}, default="relu"
    output_activation : {None, "sigmoid", "relu", "elu", "tanh"}, default=None
    batch_norm : bool, default=False
        Batch normalisation before every hidden activation.
    weight_init : {"pytorch_zero_bias", "pytorch", "glorot"}, default="pytorch_zero_bias"
        Initial weights of the linear layers. ``"pytorch"`` keeps
        ``torch.nn.Linear``'s own: weights and biases uniform in
        +-1/sqrt(fan_in). ``"pytorch_zero_bias"`` keeps those weights and
        zeroes the biases. ``"glorot"`` draws Glorot-uniform weights and zero
        biases (as DEC's Keras code; the default of earlier development
        versions). See Notes.
    precision : {"float32", "bfloat16"}, default="float32"
        Mixed precision for the training's forward and backward passes:
        ``"bfloat16"`` runs the linear layers under ``torch.autocast`` in
        bfloat16; the output activation (on float32 input), the weights, the
        optimizer and the loss stay float32, and ``transform`` runs in
        float64, as always. Measured
        twice as fast on a CPU with AVX-512 BF16 (see Notes); expected to be
        faster on CPUs with AMX and on NVIDIA GPUs from Ampere on (not
        measured here), and possibly slower on hardware without bfloat16
        arithmetic. On the CPU or a CUDA device of compute capability 8.0
        or later only.
    device : str or torch.device, default="auto"
        ``"auto"`` (CUDA when present, else the CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"`` (untested; see the README).
    memory : None, str, os.PathLike or joblib.Memory, default=None
        Cache of the trained weights, keyed on the data, the settings, the
        seed and the revision of the pretraining code: a second fit with the
        same arguments reads them back; weights cached by a version whose
        pretraining differs are not. ``random_state=None`` draws a new seed
        every fit, so nothing is read back (a warning says so).
    random_state : int, RandomState instance or None, default=None
    verbose : int or bool, default=0
        Progress bar on standard error when > 0.

    Attributes
    ----------
    module_ : torch.nn.Module
        The trained network (``module_.encoder``, ``module_.decoder``).
    device_ : torch.device
    history_ : list of dict
        Per epoch: ``epoch``, ``loss``, ``time``, ``samples_per_second``.
    n_iter_ : int
        Epochs run.
    from_cache_ : bool
        Whether the weights were read from ``memory``.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` has string column names.

    Notes
    -----
    ``weight_init``: the project's plain-PyTorch prototype of this recipe
    (``BENCHMARKS.md``) reached AE + k-means accuracy 0.684 / 0.705 on
    MNIST-5k (two seeds) where this class, then with Glorot weights, gave
    0.664 ± 0.023 (five seeds, 300 epochs). Rebuilt without the package
    (``benchmarks/init_replication.py``, bfloat16, 5 seeds unless said),
    the difference is the initialisation, not the prototype's bfloat16:
    at 300 epochs torch's own init gives 0.703 ± 0.009, torch's weights
    with zero biases 0.683 ± 0.012, Glorot weights with torch's biases
    0.674 ± 0.010 and Glorot 0.661 (2 seeds). The scale of the weights
    matters more than the biases: torch's bound 1/sqrt(fan_in) is 0.41-0.65
    of Glorot's on six of the eight layers. Glorot at SGD rate 2 peaks at
    200 epochs (0.688, 2 seeds) and falls to 0.645 at 400; rate 0.5 learns
    too slowly (0.581 at 400, 1 seed).

    With this class, 400 epochs, seeds 0-4 (AE + k-means accuracy on
    MNIST-5k and digits, NMI on the DAMIC paper's synthetic data with its
    100-50-10-2 autoencoder; benchmarks ``mnist5k_zero_bias``,
    ``mnist5k_pytorch_init``, ``mnist5k_ae400``, ``digits_zero_bias``,
    ``digits_pytorch_init``, ``digits_gmm``, ``synthetic_zero_bias``,
    ``synthetic_pytorch_init``, ``synthetic_gmm``):

    =======================  ===============  ===============  ===============
    ``weight_init``          MNIST-5k         digits           synthetic (NMI)
    =======================  ===============  ===============  ===============
    ``"pytorch_zero_bias"``  0.684 ± 0.007    0.783 ± 0.045    0.775 ± 0.041
    ``"pytorch"``            0.705 ± 0.002    0.793 ± 0.042    0.700 ± 0.072
    ``"glorot"``             0.670 ± 0.025    0.776 ± 0.027    0.774 ± 0.022
    =======================  ===============  ===============  ===============

    torch's own init is the strongest on MNIST-5k, but on the small
    network two seeds of five ended at NMI 0.61-0.62. Zeroing its biases
    keeps part of the MNIST-5k gain over Glorot (0.684 against 0.670, with
    under a third of the spread over seeds), is level with Glorot on digits, and
    on the small network no seed fails and the mean NMI is Glorot's (with a
    wider spread), hence the default. DAMIC's own pretraining
    (its paper's batch-norm Adam recipe) keeps Glorot.

    A later H100 run of the small network (benchmark
    ``gpu/gpu_synthetic_default``) did not confirm "level there": NMI
    0.729 ± 0.086 with this default, one seed of five at 0.570, against
    0.781 with Glorot; on MNIST-5k and digits the GPU agreed with the CPU
    (AE + k-means accuracy 0.688 and 0.783). For networks as small as 100-50-10-2 prefer
    ``weight_init="glorot"``.

    ``precision="bfloat16"``, measured on this project's CPU (AVX-512 BF16,
    one thread; MNIST-5k, the default 400 epochs, seeds 0-3, benchmark
    ``precision``): pretraining took 318 s against 628 s in float32 (1.8 to
    2.1 times faster by seed) and ended at the same training loss (0.01126
    against 0.01124, each as the training computed it). AE + k-means
    accuracy was level (0.686 against 0.685); AE + GMM accuracy was lower
    (0.708 against 0.723: below on three seeds of four, level on the
    fourth). Not yet measured on a GPU. The output activation runs on
    float32 input: a sigmoid computed in bfloat16 moves in steps of about
    0.004 near 1 and is exactly 1 from a logit of about 6.3 on, where the
    clamped cross-entropy of ``loss="bce"`` has no gradient.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.cluster import KMeans
    >>> from sklearn.pipeline import make_pipeline
    >>> from skdeepcluster import AutoEncoder
    >>> X = load_digits().data / 16
    >>> ae = AutoEncoder(hidden_dims=(64,), embedding_dim=5, max_epochs=2,
    ...                  device="cpu", random_state=0)
    >>> ae.fit_transform(X).shape
    (1797, 5)
    >>> pipe = make_pipeline(ae, KMeans(10, n_init=10, random_state=0))
    >>> pipe.fit_predict(X).shape
    (1797,)
    """

    _parameter_rules = {
        "hidden_dims": LayerSizes(),
        "embedding_dim": LAYER_WIDTH,
        "max_epochs": Integer(low=0),
        "batch_size": Integer(low=1),
        "optimizer": Options("sgd", "adam"),
        "learning_rate": Real(low=0, low_open=True, allow_none=True),
        "momentum": Real(low=0, high=1, high_open=True),
        "input_noise": Real(low=0, high=1, high_open=True),
        "loss": Options("mse", "bce"),
        "activation": Options(*ACTIVATIONS),
        "output_activation": Options(None, *ACTIVATIONS),
        "batch_norm": Options(False, True),
        "weight_init": Options(*WEIGHT_INITS),
        "precision": Options(*PRECISIONS),
        "device": DEVICE_RULE,
        "memory": CacheLocation(),
        "random_state": RandomState(),
        "verbose": VERBOSE_RULE,
    }

    def __init__(
        self,
        hidden_dims=(500, 500, 2000),
        embedding_dim=10,
        *,
        max_epochs=400,
        batch_size=256,
        optimizer="sgd",
        learning_rate=None,
        momentum=0.9,
        input_noise=0.2,
        loss="mse",
        activation="relu",
        output_activation=None,
        batch_norm=False,
        weight_init=DEFAULT_WEIGHT_INIT,
        precision="float32",
        device="auto",
        memory=None,
        random_state=None,
        verbose=0,
    ):
        self.hidden_dims = hidden_dims
        self.embedding_dim = embedding_dim
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.input_noise = input_noise
        self.loss = loss
        self.activation = activation
        self.output_activation = output_activation
        self.batch_norm = batch_norm
        self.weight_init = weight_init
        self.precision = precision
        self.device = device
        self.memory = memory
        self.random_state = random_state
        self.verbose = verbose

    def _config(self):
        # plain Python values: numpy's (from a parameter grid array) would
        # change the pretraining cache's key, not the training
        return {
            "hidden_dims": layer_sizes(self.hidden_dims),
            "embedding_dim": int(self.embedding_dim),
            "max_epochs": int(self.max_epochs),
            "batch_size": int(self.batch_size),
            "optimizer": str(self.optimizer),
            "learning_rate": None if self.learning_rate is None else float(self.learning_rate),
            "momentum": float(self.momentum),
            "input_noise": float(self.input_noise),
            "loss": str(self.loss),
            "activation": str(self.activation),
            "output_activation": None if self.output_activation is None else str(self.output_activation),
            "batch_norm": bool(self.batch_norm),
            "weight_init": str(self.weight_init),
            "precision": str(self.precision),
        }

    def _build_network(self, n_features, seed):
        """A freshly initialised network with this configuration."""
        with seeded(seed):
            return _network(n_features, self._config())

    def fit(self, X, y=None, sample_weight=None):
        """Train the autoencoder to reconstruct ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row, or one float for every row;
            None weighs every row 1. Each epoch draws ``n_samples`` rows
            with replacement in proportion to the weights, so that an
            integer weight acts as that many copies of the row, on average.

        Returns
        -------
        self : object

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
        if self.batch_norm and self.batch_size < 2:
            raise ValueError(
                "batch_norm=True needs batch_size >= 2 (batch statistics of one row are undefined); "
                f"got {self.batch_size}."
            )
        if self.loss == "bce" and self.output_activation != "sigmoid":
            # the cross-entropy clamps reconstructions to [eps, 1 - eps]:
            # any other output trains without gradient where it leaves them
            raise ValueError(
                "loss='bce' needs output_activation='sigmoid', whose outputs lie in (0, 1); got "
                f"output_activation={self.output_activation!r}, whose outputs outside [0, 1] would get no "
                "gradient. Set output_activation='sigmoid', or use loss='mse'."
            )
        X = self._validate_X(X, reset=True)
        weights = training_weights(check_sample_weight(sample_weight, X.shape[0]))
        if self.loss == "bce":
            check_unit_interval(X, "loss='bce'", "use loss='mse'")
        self.device_ = self._resolve_device()
        check_precision_supported(self.precision, self.device_)
        if self.random_state is None and caches(self.memory):
            warn_at_caller(
                f"memory={self.memory!r} caches the pretraining under its random seed, but "
                "random_state=None draws a new seed at every fit: no pretraining is ever read back, and "
                "each fit adds a cache entry. Set random_state to an int to reuse pretrainings.",
                UserWarning,
            )
        seed = seed_from(self.random_state)
        config = self._config()
        with as_current_device(self.device_), self._recipe_named_on_divergence():
            (state, history), self.from_cache_ = cached_call(
                self.memory,
                _train_autoencoder,
                ignore=("verbose",),
                # the data as training stores it, as the cache key (a copy
                # only where the form differs, and only when caching)
                X=as_stored(X) if caches(self.memory) else X,
                config=config,
                seed=seed,
                device_type=self.device_.type,
                verbose=self.verbose,
                revision=PRETRAINING_REVISION,
                sample_weight=weights,
            )
        if self.from_cache_:
            Progress("pretraining", len(history), self.verbose).note(
                f"{len(history)} epochs read from the cache in {self.memory}"
            )
        module = self._build_network(X.shape[1], seed)
        module.load_state_dict(state)
        self.module_ = module.to(self.device_).eval()
        self.history_ = history
        self.n_iter_ = len(history)
        return self

    @contextlib.contextmanager
    def _recipe_named_on_divergence(self):
        """A divergence of the default SGD recipe, whose learning rate 1.0
        is meant for features in [0, 1], also points at Adam (standardised
        data)."""
        try:
            yield
        except FloatingPointError as error:
            if self.optimizer != "sgd" or self.learning_rate is not None:
                raise  # a rate of the user's own: the loop's advice (lower it) stands
            rate = effective_learning_rate(self.optimizer, self.learning_rate)
            raise FloatingPointError(
                f"{str(error).removesuffix(DIVERGED_ADVICE).rstrip()} The SGD recipe (learning_rate={rate}) "
                f"is meant for features in [0, 1]. {SGD_RECIPE_ADVICE}"
            ) from error

    def transform(self, X):
        """Embedding of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray of shape (n_samples, embedding_dim)
        """
        return self._map(X, lambda m, x: m.encoder(x))

    def inverse_transform(self, Z):
        """Reconstruction in input space from an embedding ``Z``.

        Parameters
        ----------
        Z : array-like of shape (n_samples, embedding_dim)

        Returns
        -------
        X_hat : ndarray of shape (n_samples, n_features_in_)
        """
        check_is_fitted(self)
        from sklearn.utils import check_array

        Z = check_array(from_tensor(Z, "Z"), dtype=(np.float64, np.float32))
        if Z.shape[1] != self._n_features_out:
            raise ValueError(
                f"Z has {Z.shape[1]} columns but this AutoEncoder's embedding "
                f"has embedding_dim={self._n_features_out} (as fitted)."
            )
        check_float32_range(Z, "Z")
        module = self._inference_copy(self.module_)
        return self._map_batches(Z, lambda m, z: m.decoder(z), module)

    def reconstruction_error(self, X):
        """Mean squared reconstruction error of each row of ``X``.

        Parameters
        ----------
        X : {array-like, sparse matrix} of shape (n_samples, n_features)

        Returns
        -------
        errors : ndarray of shape (n_samples,)
        """
        return self._map(X, lambda m, x: ((m(x)[1] - x) ** 2).mean(dim=1))

    @property
    def _n_features_out(self):
        # the fitted network's, not the parameter's, which may have been set since
        return self.module_.encoder[-1].out_features
