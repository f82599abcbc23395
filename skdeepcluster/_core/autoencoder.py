"""Fully connected autoencoder building blocks."""

import torch
from torch import nn

from .device import at_least_float32

ACTIVATIONS = {
    "relu": nn.ReLU,
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


class FullPrecisionActivation(nn.Module):
    """An output activation run on at least float32 input.

    Under bfloat16 autocast a sigmoid would round to exactly 1 above a
    logit of about 6.3, where a cross-entropy clamped below 1 has no
    gradient (float32 reaches that only at about 16).
    """

    def __init__(self, activation):
        super().__init__()
        self.activation = ACTIVATIONS[activation]()

    def forward(self, h):
        return self.activation(at_least_float32(h))


def mlp(sizes, activation="relu", last_activation=None, batch_norm=False):
    """A stack of linear layers with ``activation`` between them.

    Parameters
    ----------
    sizes : sequence of int
        Layer widths, input first: ``(784, 500, 10)`` builds two linear layers.
    activation : str
        Applied after every hidden layer.
    last_activation : str or None
        Applied after the last layer, on at least float32 input
        (:class:`FullPrecisionActivation`); ``None`` keeps it linear.
    batch_norm : bool
        Put a batch-norm layer between each hidden linear layer and its
        activation.
    """
    layers = []
    n_layers = len(sizes) - 1
    for i in range(n_layers):
        # float32 whatever torch's default dtype (the data are stored in
        # float32), drawn as in float32 so that a seed gives the same weights
        layers.append(nn.Linear(sizes[i], sizes[i + 1], dtype=torch.float32))
        is_last = i == n_layers - 1
        if not is_last:
            if batch_norm:
                layers.append(nn.BatchNorm1d(sizes[i + 1], dtype=torch.float32))
            layers.append(ACTIVATIONS[activation]())
        elif last_activation is not None:
            layers.append(FullPrecisionActivation(last_activation))
    return nn.Sequential(*layers)


def zero_biases_(module):
    """Zero the bias of every linear layer, keeping the weights."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.zeros_(layer.bias)
    return module


def glorot_init_(module):
    """Glorot-uniform weights and zero biases for every linear layer."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.xavier_uniform_(layer.weight)
    return zero_biases_(module)


#: Weight initialisations of :class:`MLPAutoEncoder`: ``"pytorch"`` keeps
#: ``torch.nn.Linear``'s own (weights and biases uniform in
#: +-1/sqrt(fan_in)), ``"pytorch_zero_bias"`` keeps its weights and zeroes
#: the biases, ``"glorot"`` is :func:`glorot_init_`.
WEIGHT_INITS = ("pytorch", "pytorch_zero_bias", "glorot")
#: The default of :class:`MLPAutoEncoder` and ``AutoEncoder`` (measurements
#: behind the choice: ``AutoEncoder``'s Notes).
DEFAULT_WEIGHT_INIT = "pytorch_zero_bias"


class MLPAutoEncoder(nn.Module):
    """Symmetric MLP autoencoder ``d-h1-...-hk-p-hk-...-h1-d``.

    Hidden layers use ``activation``; the embedding layer is linear; the
    output layer is linear unless ``output_activation`` is given;
    ``weight_init`` is one of :data:`WEIGHT_INITS`.
    """

    def __init__(
        self,
        n_features,
        hidden_dims,
        embedding_dim,
        activation="relu",
        output_activation=None,
        batch_norm=False,
        weight_init=DEFAULT_WEIGHT_INIT,
    ):
        super().__init__()
        if weight_init not in WEIGHT_INITS:
            raise ValueError(f"weight_init must be one of {WEIGHT_INITS}; got {weight_init!r}.")
        encoder_sizes = (n_features, *hidden_dims, embedding_dim)
        self.encoder = mlp(encoder_sizes, activation, batch_norm=batch_norm)
        self.decoder = mlp(
            encoder_sizes[::-1],
            activation,
            last_activation=output_activation,
            batch_norm=batch_norm,
        )
        if weight_init == "glorot":
            glorot_init_(self)
        elif weight_init == "pytorch_zero_bias":
            zero_biases_(self)

    def forward(self, x):
        z = self.encoder(x)
        return z, self.decoder(z)


def reconstruction_loss(x_hat, x, loss):
    """Per-element mean reconstruction error: ``"mse"`` or ``"bce"``.

    The binary cross-entropy is written out rather than taken from
    ``torch.nn.functional.binary_cross_entropy``, which raises on the NaN
    outputs of a diverged network (on CUDA through a device-side assert
    that breaks the context); here a NaN reaches the loss, where the
    training loop reports the divergence.
    """
    if loss == "bce":
        x_hat = x_hat.clamp(1e-7, 1 - 1e-7)
        target = x.clamp(0, 1)
        return -(target * torch.log(x_hat) + (1 - target) * torch.log1p(-x_hat)).mean()
    return torch.nn.functional.mse_loss(x_hat, x)


def masking_noise(x, fraction, generator):
    """Zero a random ``fraction`` of the entries of ``x`` (denoising input)."""
    if fraction <= 0:
        return x
    keep = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float32) >= fraction
    return x * keep
