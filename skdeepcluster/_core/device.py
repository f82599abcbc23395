"""Turn the user's ``device`` parameter into a :class:`torch.device`, and
what a device allows (float64, bfloat16 training)."""

import contextlib
import functools
import os
import re
import threading

import torch

_ALLOWED = '"auto", "cpu", "cuda", "cuda:N", "mps" or a torch.device'


def _mps_available():
    backend = getattr(torch.backends, "mps", None)
    return backend is not None and backend.is_available()


def resolve_device(device):
    """Return the :class:`torch.device` that ``device`` names.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` picks CUDA when available, else the CPU. Apple's MPS is
        used only when named (``"mps"``): it has no float64, which inference
        and some methods' clustering state use, and it is untested here.

    Returns
    -------
    torch.device

    Raises
    ------
    ValueError
        If the name is not understood or the device is not present on this
        machine.
    """
    if isinstance(device, torch.device):
        name = str(device)
    elif isinstance(device, str):
        name = device.strip().lower()
    else:
        raise ValueError(
            f"device must be {_ALLOWED}; got {device!r} of type "
            f"{type(device).__name__}."
        )

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if re.fullmatch(r"cpu(?::\d+)?", name):  # torch ignores a CPU index
        return torch.device("cpu")
    if re.fullmatch(r"mps(?::0)?", name):  # torch.device("mps", 0) prints as mps:0
        if not _mps_available():
            raise ValueError(
                "device='mps' was requested but the MPS backend is not "
                "available on this machine; use device='cpu' or 'auto'."
            )
        return torch.device("mps")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match:
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available "
                "(torch.cuda.is_available() is False); use device='cpu' or "
                "'auto'."
            )
        if match.group(1) is not None:
            index = int(match.group(1))
            count = torch.cuda.device_count()
            if index >= count:
                raise ValueError(
                    f"device={device!r} was requested but this machine has "
                    f"{count} CUDA device(s) (cuda:0 to cuda:{count - 1})."
                )
        return torch.device(name)
    raise ValueError(f"device must be {_ALLOWED}; got {device!r}.")


def float64_device(device):
    """Where float64 work for ``device`` runs: ``device`` if it exists on this
    machine and has float64, else the CPU.

    Used for inference, which runs in float64, and after unpickling: a model
    fitted on a GPU still predicts on a CPU-only machine. MPS has no float64.
    """
    device = torch.device(device)
    if device.type == "cuda":
        present = torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()
        return device if present else torch.device("cpu")
    if device.type == "mps":
        return torch.device("cpu")
    return device


def as_current_device(device):
    """Context in which ``device`` is the current CUDA device; a no-op for other devices.

    Code that names only the device type then runs on the requested index:
    the cached pretraining is keyed on ``"cuda"`` so that ``cuda:0`` and
    ``cuda:1`` share one cache entry, and ``torch.device("cuda")`` means the
    current device.
    """
    device = torch.device(device)
    if device.type == "cuda" and device.index is not None:
        return torch.cuda.device(device)
    return contextlib.nullcontext()


#: The ``precision`` values a training accepts.
PRECISIONS = ("float32", "bfloat16")


def check_precision_supported(precision, device):
    """Raise a ValueError if training in ``precision`` is not supported on ``device``.

    bfloat16 autocast runs on the CPU and on CUDA devices with bfloat16 in
    hardware (compute capability 8.0, Ampere, and later).
    """
    if precision != "bfloat16":
        return
    if device.type not in ("cpu", "cuda"):
        raise ValueError(
            f"precision='bfloat16' trains on the CPU or a CUDA device; this fit runs on "
            f"{device}. Use precision='float32' there."
        )
    if device.type != "cuda":
        return
    # torch.cuda.is_bf16_supported asks about the current device, not this
    # one, and may count emulation
    capability = torch.cuda.get_device_capability(device)
    if capability < (8, 0):
        raise ValueError(
            f"precision='bfloat16' needs a CUDA device of compute capability 8.0 or later "
            f"(bfloat16 in hardware); {device} has {capability[0]}.{capability[1]}. "
            "Use precision='float32'."
        )


def at_least_float32(tensor):
    """``tensor`` in float32 if it is in a lower precision (as autocast
    leaves a layer's output), else as it is (float64 at prediction)."""
    if tensor.dtype in (torch.bfloat16, torch.float16):
        return tensor.float()
    return tensor


def training_precision(precision, device):
    """A factory of the context in which a training step's forward pass runs.

    ``"bfloat16"``: ``torch.autocast`` in bfloat16, which runs the layers
    (linear, batched matrix products) in bfloat16 while the weights, their
    gradients and the optimizer stay float32; float64 tensors are left
    alone. ``"float32"``: no context (a fit runs in
    :func:`fit_torch_modes`).
    """
    if precision == "bfloat16":
        # no weight cache: the casts of one step's weights must not outlive
        # the step, whatever contexts enclose it
        return functools.partial(torch.autocast, torch.device(device).type, dtype=torch.bfloat16, cache_enabled=False)
    return contextlib.nullcontext


def forward_in_precision(network, x, precision, device):
    """``network(x)`` for a training step in ``precision``, its floating
    outputs (a tensor or a tuple of them) back in at least float32.

    Every training forward pass goes through here, so that
    ``precision="bfloat16"`` runs the layers in bfloat16 while the losses
    are computed in float32 (a cross-entropy's clamp to ``1 - 1e-7`` would
    round to 1 in bfloat16).
    """
    with training_precision(precision, device)():
        output = network(x)
    if isinstance(output, tuple):
        return tuple(at_least_float32(item) for item in output)
    return at_least_float32(output)


@contextlib.contextmanager
def fit_torch_modes():
    """Context in which a fit trains whatever torch modes its caller set:
    gradients on, inference mode off, and the CPU's and CUDA's autocast off
    (a fit runs in its own ``precision``).

    Under a caller's ``torch.no_grad()`` or ``torch.inference_mode()`` no
    loss would have a gradient. Under a caller's autocast the whole-data
    passes would run in lower precision, and its weight cache, cleared only
    when the outermost autocast exits, would keep the first training step's
    weights in every later forward pass. (MPS is left alone: older torch
    refuses an autocast context for it even when disabled.)
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.inference_mode(False))
        stack.enter_context(torch.enable_grad())
        stack.enter_context(torch.autocast("cpu", enabled=False))
        if torch.cuda.is_available():
            stack.enter_context(torch.autocast("cuda", enabled=False))
        yield


#: Held while a ``seeded`` block owns torch's global generator: fits running
#: in threads (joblib's threading backend, dask) share that generator.
_GLOBAL_GENERATOR_LOCK = threading.RLock()


def _new_lock_after_fork():
    # a child forked while another thread held the lock would wait forever
    global _GLOBAL_GENERATOR_LOCK
    _GLOBAL_GENERATOR_LOCK = threading.RLock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_new_lock_after_fork)


class seeded:
    """Context in which torch's global CPU generator is seeded with ``seed``
    and restored afterwards, so that building a network (on the CPU) never
    changes the caller's random stream; the GPUs' generators are not touched.

    One thread at a time runs such a block: otherwise a fit in another
    thread could reseed or restore the generator halfway through this
    one's initialisation, and the same ``seed`` would give other weights.
    (Code of the caller's that draws from the global generator in another
    thread meanwhile still draws from this block's stream.)
    """

    def __init__(self, seed):
        self.seed = seed
        self._fork = None
        self._lock = None

    def __enter__(self):
        self._lock = _GLOBAL_GENERATOR_LOCK
        self._lock.acquire()
        try:
            self._fork = torch.random.fork_rng(devices=[])
            self._fork.__enter__()
            # not torch.manual_seed, which also reseeds every GPU's generator
            torch.default_generator.manual_seed(self.seed)
        except BaseException:
            self._lock.release()
            raise
        return self

    def __exit__(self, *exc):
        try:
            return self._fork.__exit__(*exc)
        finally:
            self._lock.release()
