"""The one mini-batch training loop that every estimator runs.

``fit`` -> epochs -> steps, as in skorch: the loop owns batching, the
optimizer step, loss bookkeeping, the stopping rule and progress; the caller
supplies the loss of one batch and, optionally, a whole-data *checkpoint*
(IDEC's target distribution, Deep k-Means' alpha schedule, ...).
"""

import contextlib
import math
import time

import torch

from .progress import Progress
from .weights import weighted_draws


class TrainingResult:
    """What a training run leaves behind.

    Attributes
    ----------
    history : list of dict
        One entry per epoch: ``epoch`` (from 0), mean of every loss part, ``delta_label`` (the
        fraction of labels that changed at the last checkpoint of the epoch)
        and ``n_clusters_used`` (clusters owning at least one row there), when
        checkpoints run; in a weighted run both weigh each row by its sample
        weight, as the repeated rows would count; ``time`` (seconds) and ``samples_per_second``. A
        ``tol`` stop, or ``record_final_checkpoint``, overwrites the last
        entry's two with those of the checkpoint after the last epoch.
    n_epochs : int
        Epochs started.
    n_steps : int
        Optimizer steps taken.
    converged : bool
        True when the ``tol`` rule stopped the run.
    labels : tensor or None
        The labels of the last checkpoint (the initial labels before any).
    label_weights : tensor or None
        The run's sample weights (float64, CPU) that weigh its label counts.
    """

    def __init__(self, label_weights=None):
        self.history = []
        self.n_epochs = 0
        self.n_steps = 0
        self.converged = False
        self.labels = None
        self.label_weights = label_weights

    def record_final_checkpoint(self, labels, tol):
        """Account for a whole-data update made after the last epoch.

        The label change since the last checkpoint goes into the last epoch's
        record, as a ``tol`` stop records the change its last epoch made, and
        ``converged`` becomes True when that change is below ``tol``.
        """
        delta_label = label_change(labels, self.labels, self.label_weights)
        if self.history and delta_label is not None:
            self.history[-1].update(delta_label=delta_label, n_clusters_used=clusters_used(labels, self.label_weights))
            self.converged = delta_label < tol
        self.labels = labels


def label_change(labels, previous_labels, weights=None):
    """Fraction of ``labels`` that differ from ``previous_labels`` (None if
    none); with ``weights`` (a CPU tensor), their weighted fraction, so that
    an integer weight counts as that many copies of the row."""
    if previous_labels is None:
        return None
    changed = labels != previous_labels
    if weights is None:
        # an integer count: exact, and on every backend (MPS has no float64)
        return changed.sum().item() / labels.numel()
    weights = weights.double()
    return (weights[changed.cpu()].sum() / weights.sum()).item()


def cluster_weights(labels, n_clusters, weights=None):
    """How many rows (int64), or how much of ``weights`` (a CPU tensor; then
    float64), each of the ``n_clusters`` clusters holds, on the CPU."""
    return torch.bincount(labels.cpu(), weights=None if weights is None else weights.double(), minlength=n_clusters)


def clusters_used(labels, weights=None):
    """Number of clusters holding a row (a row of positive weight, with ``weights``)."""
    if weights is not None:
        labels = labels[(weights > 0).to(labels.device)]
    return int(torch.unique(labels).numel())


DIVERGED_ADVICE = "Lower learning_rate, scale the input features (e.g. to [0, 1]) or check X for extreme values."


def _check_finite(means, phase, epoch, n_epochs):
    for name, value in means.items():
        if not math.isfinite(value):
            raise FloatingPointError(
                f"The {phase} loss part {name!r} became {value} in epoch {epoch + 1} of {n_epochs}: "
                f"training diverged. {DIVERGED_ADVICE}"
            )


def _parameters_finite(optimizer):
    """Whether every trained parameter is finite (one device sync)."""
    parameters = [p.detach() for group in optimizer.param_groups for p in group["params"]]
    return not parameters or bool(torch.stack([torch.isfinite(p).all() for p in parameters]).all())


def epoch_order(n_samples, sample_weight, generator):
    """The rows of one epoch, in order: a permutation, or with
    ``sample_weight`` (a CPU tensor) ``n_samples`` weighted draws with
    replacement (:func:`~skdeepcluster._core.weights.weighted_draws`)."""
    if sample_weight is None:
        return torch.randperm(n_samples, generator=generator)
    return weighted_draws(sample_weight, n_samples, generator)


def batch_bounds(n_samples, batch_size):
    """Row offsets of an epoch's mini-batches: batch ``b`` is rows
    ``bounds[b]:bounds[b + 1]`` of the shuffled order.

    Every batch has ``batch_size`` rows but the last, which joins the one
    before it when it would hold fewer than half as many (or a single row,
    which would break batch norm): every step then averages at least half
    a batch. A step on a few rows is as long as a full batch's but far
    noisier; at the default pretraining's SGD rate of 1.0, digits' 5-row
    last batch (1,797 = 7 x 256 + 5) nearly doubled the reconstruction
    error after 400 epochs (``benchmarks/last_batch.py``). ``len(bounds) - 1``
    is the number of steps per epoch.
    """
    n_batches = math.ceil(n_samples / batch_size)
    bounds = [min(b * batch_size, n_samples) for b in range(n_batches + 1)]
    tail = bounds[-1] - bounds[-2]
    if n_batches > 1 and (tail == 1 or 2 * tail < batch_size):
        bounds = bounds[:-2] + [n_samples]
    return bounds


@contextlib.contextmanager
def single_row_safe(module, n_rows):
    """Run a one-row training batch with batch norm on its running statistics.

    Batch statistics of one row are undefined (torch raises); the training
    loop yields such batches only with ``batch_size=1``, as it merges a
    one-row last batch into the one before (:func:`batch_bounds`). The
    gradient still flows through every weight.
    """
    frozen = n_rows == 1 and module.training
    if frozen:
        module.eval()
    try:
        yield
    finally:
        if frozen:
            module.train()


def train(
    *,
    data,
    batch_loss,
    optimizer,
    n_epochs,
    batch_size,
    generator,
    sample_weight=None,
    checkpoint=None,
    checkpoint_interval=None,
    initial_labels=None,
    tol=0.0,
    phase="training",
    verbose=0,
):
    """Run ``n_epochs`` epochs of mini-batch updates.

    Parameters
    ----------
    data : DeviceData
    batch_loss : callable ``(x, index) -> dict``
        Loss parts of one batch; ``"loss"`` is the one minimised. ``index`` is
        the tensor of row numbers (on the data device), for per-sample state.
    optimizer : torch.optim.Optimizer
    n_epochs, batch_size : int
    generator : torch.Generator
        CPU generator that orders the rows of each epoch.
    sample_weight : tensor or None
        Row weights (CPU): each epoch then draws its rows with replacement,
        in proportion to them (:func:`epoch_order`), instead of permuting them.
    checkpoint : callable ``(step) -> labels`` or None
        Whole-data update run every ``checkpoint_interval`` steps, before that
        step's batch. It returns the current hard labels (a tensor).
    checkpoint_interval : int or None
        Steps between checkpoints; ``None`` means once per epoch.
    initial_labels : tensor or None
        Labels the first checkpoint is compared with.
    tol : float
        Stop when, at a checkpoint after the first, fewer than ``tol`` of the
        labels (of the total weight, with ``sample_weight``) changed since the
        previous checkpoint.
    phase : str
        Name shown by the progress bar and in error messages.
    verbose : int
        Show a progress bar when > 0.

    Returns
    -------
    TrainingResult
    """
    result = TrainingResult(None if sample_weight is None else sample_weight.double())
    n_samples = len(data)
    bounds = batch_bounds(n_samples, batch_size)
    n_batches = len(bounds) - 1
    interval = checkpoint_interval or n_batches
    result.labels = initial_labels
    delta_label = n_clusters_used = None
    progress = Progress(phase, n_epochs, verbose)
    for epoch in range(n_epochs):
        start = time.perf_counter()
        order = epoch_order(n_samples, sample_weight, generator).to(data.device)
        # per-batch losses are only gathered here (no arithmetic per step:
        # on a GPU each extra op is a launch) and averaged at the epoch's end
        batch_values = {}
        batch_sizes = []
        for b in range(n_batches):
            if checkpoint is not None and result.n_steps % interval == 0:
                labels = checkpoint(result.n_steps)
                n_clusters_used = clusters_used(labels, result.label_weights)
                delta_label = label_change(labels, result.labels, result.label_weights)
                result.labels = labels
                if delta_label is not None and result.n_steps > 0 and delta_label < tol:
                    result.converged = True
                    break
            index = order[bounds[b] : bounds[b + 1]]
            parts = batch_loss(data.rows(index), index)
            optimizer.zero_grad(set_to_none=True)
            parts["loss"].backward()
            optimizer.step()
            result.n_steps += 1
            batch_sizes.append(index.shape[0])
            for name, value in parts.items():
                batch_values.setdefault(name, []).append(value.detach())
        seen = sum(batch_sizes)
        if seen == 0 and result.history:
            # the tol rule stopped before this epoch's first step: the label
            # change belongs to the epoch that produced it
            result.history[-1].update(delta_label=delta_label, n_clusters_used=n_clusters_used)
            break
        result.n_epochs = epoch + 1
        # one synchronisation per epoch, not per step; the clock stops after
        # it, so that a GPU's queued work is counted in its epoch
        means = _weighted_means(batch_values, batch_sizes)
        elapsed = time.perf_counter() - start
        _check_finite(means, phase, epoch, n_epochs)
        record = {"epoch": epoch, **means}
        if checkpoint is not None:  # a run without labels (pretraining) has no label counts
            record.update(delta_label=delta_label, n_clusters_used=n_clusters_used)
        record["time"] = elapsed
        record["samples_per_second"] = seen / elapsed if elapsed > 0 else float("nan")
        result.history.append(record)
        progress.update(epoch + 1, means.get("loss"), delta_label)
        if result.converged:
            break
    progress.close()
    # the loss checks see each step's input side; the last step's update is
    # seen only here
    if result.n_steps and not _parameters_finite(optimizer):
        raise FloatingPointError(f"The {phase} parameters became inf or NaN: training diverged. {DIVERGED_ADVICE}")
    return result


def _weighted_means(batch_values, batch_sizes):
    """Mean of each loss part over an epoch's samples, with one device sync.

    The float64 sums run on the CPU: MPS has no float64, and a few thousand
    numbers per epoch cost nothing there.
    """
    if not batch_values or not batch_sizes:
        return {}
    names = list(batch_values)
    weights = torch.tensor(batch_sizes, dtype=torch.float64)
    # a part may live on another device than the loss (e.g. a CPU scalar);
    # the first copy to the CPU waits for the device, the others find it idle
    totals = [(torch.stack(batch_values[name]).cpu().double() * weights).sum() for name in names]
    return dict(zip(names, (torch.stack(totals) / weights.sum()).tolist()))
