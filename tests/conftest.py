"""Fast settings shared by the tests: tiny networks, few epochs, CPU.

``SKDEEPCLUSTER_TEST_DEVICE=cuda python -m pytest tests`` runs every test
that uses these settings on that device instead (the default is "cpu").
"""

import inspect
import os
import re

import numpy as np
import pytest
import torch
from sklearn.datasets import make_blobs

import skdeepcluster

# Tiny networks gain nothing from a second thread, and several torch
# processes each spinning on every core slow each other down many times over.
torch.set_num_threads(1)

#: Device of the fast settings; set SKDEEPCLUSTER_TEST_DEVICE to run the suite on a GPU.
TEST_DEVICE = os.environ.get("SKDEEPCLUSTER_TEST_DEVICE", "cpu")

#: Settings every clusterer accepts (the base class's shared parameters).
FAST_SHARED = dict(
    hidden_dims=(32,),
    embedding_dim=3,
    pretrain_epochs=15,
    max_epochs=8,
    batch_size=32,
    device=TEST_DEVICE,
    random_state=0,
)

#: Extra settings for a method whose defaults are too slow for tests; a new
#: method only needs an entry here if FAST_SHARED is not enough.
FAST_EXTRA = {
    # linear outputs for sklearn's unscaled data; small gate and experts
    "DAMIC": dict(
        output_activation=None, expert_hidden_dims=(32,), gate_hidden_dims=(32,),
        gate_pretrain_epochs=10, expert_pretrain_epochs=10, learning_rate=1e-3,
    ),
}


def fast_autoencoder(**overrides):
    """A small AutoEncoder. Adam, because sklearn's checks feed unscaled data
    on which the default SGD recipe (learning rate 1.0, meant for features in
    [0, 1]) diverges."""
    params = dict(
        hidden_dims=(32,), embedding_dim=3, max_epochs=15, batch_size=32,
        optimizer="adam", learning_rate=0.01, device=TEST_DEVICE, random_state=0,
    )
    params.update(overrides)
    return skdeepcluster.AutoEncoder(**params)


def fast(cls, **overrides):
    """An instance of ``cls`` with test-speed settings, starting from a small
    unfitted autoencoder."""
    params = {
        **FAST_SHARED,
        "autoencoder": fast_autoencoder(),
        **FAST_EXTRA.get(cls.__name__, {}),
        **overrides,
    }
    return cls(**params)


CLUSTERERS = skdeepcluster.CLUSTERERS


def undocumented_attributes(estimator):
    """Public fitted attributes of ``estimator`` that its class docstring's
    Attributes section does not list."""
    doc = inspect.getdoc(type(estimator))
    section = doc.split("Attributes\n----------\n", 1)[1]
    section = re.split(r"\n[A-Z][^\n]*\n-{3,}\n", section)[0]  # up to the next section
    documented = set(re.findall(r"^(\w+) :", section, flags=re.M))
    fitted = {name for name in vars(estimator) if name.endswith("_") and not name.startswith("_")}
    return sorted(fitted - documented)
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

#: bfloat16 training needs a CPU or a CUDA device with bfloat16 in hardware.
needs_bfloat16 = pytest.mark.skipif(
    TEST_DEVICE.startswith("cuda") and torch.cuda.is_available() and torch.cuda.get_device_capability(TEST_DEVICE) < (8, 0),
    reason="the test device has no bfloat16 arithmetic",
)


@pytest.fixture
def float64():
    """float64 by default for the pure-function tests, restored afterwards."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def blobs():
    X, y = make_blobs(n_samples=240, n_features=12, centers=3, cluster_std=1.0, random_state=0)
    return X.astype(np.float32), y


class Untouchable:
    """A parameter value that raises on any use: comparison, arithmetic,
    truth, iteration, conversion or attribute access. Identity tests
    (``value is None``) and ``isinstance`` cannot be intercepted, so a read
    through one of those alone goes unnoticed."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<untouchable {self.name}>"

    def _touched(self, *args, **kwargs):
        raise RuntimeError(f"prediction read the parameter {self.name!r}")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __hash__ = _touched
    __bool__ = __float__ = __int__ = __index__ = __str__ = __format__ = __fspath__ = _touched
    __iter__ = __len__ = __getitem__ = __contains__ = __call__ = __neg__ = _touched
    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __rtruediv__ = _touched

    def __getattr__(self, attribute):
        self._touched()
