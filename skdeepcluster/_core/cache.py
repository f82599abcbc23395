"""The pretraining cache behind the estimators' ``memory`` parameter."""

import contextlib
import os
import threading

import joblib
from sklearn.utils.validation import check_memory

try:  # POSIX only; elsewhere concurrent workers may both pretrain
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None


_computations = threading.local()


def note_computation():
    """Called by a function that :func:`cached_call` runs, as it runs: the
    result is then known to be computed rather than read from the cache."""
    _computations.count = _computation_count() + 1


def _computation_count():
    return getattr(_computations, "count", 0)


def _open_lock_file(path):
    """The lock file, created if need be, and the lock to take on it: an
    exclusive one, or a shared one where the cache is read-only (a
    pre-filled cache on shared storage: an exclusive flock on NFS needs a
    file open for writing); (None, None) where the file cannot be had."""
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return open(path, "a"), fcntl.LOCK_EX
    except OSError:
        pass
    try:  # a read-only cache: its lock file may be there
        return open(path), fcntl.LOCK_SH
    except OSError:
        return None, None  # nothing can be written here, so no writer to wait for


@contextlib.contextmanager
def _file_lock(path):
    handle, kind = (None, None) if fcntl is None else _open_lock_file(path)
    if handle is None:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, kind)
        except OSError:  # a filesystem without flock: run unlocked, as without fcntl
            yield
            return
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _as_memory(memory):
    if isinstance(memory, os.PathLike):  # which sklearn's check_memory refuses
        memory = os.fspath(memory)
    return check_memory(memory)


def caches(memory):
    """Whether ``memory`` (as :func:`cached_call` takes it) stores results."""
    return getattr(_as_memory(memory), "location", None) is not None


def cached_call(memory, func, ignore=(), **kwargs):
    """Call ``func(**kwargs)`` through ``memory``.

    Concurrent callers with the same arguments (``GridSearchCV(n_jobs=...)``
    workers, dask workers on shared storage) wait on a file lock, so the
    computation runs once and the others read its result.

    Parameters
    ----------
    memory : None, str, os.PathLike or joblib.Memory
        As sklearn's ``Pipeline(memory=...)``: ``None`` disables caching.
    func : callable
        A module-level function (joblib keys the cache on its code) that
        calls :func:`note_computation` when it runs.
    ignore : sequence of str
        Arguments that do not change the result (``verbose``): not part of
        the cache key.

    Returns
    -------
    result : object
        ``func(**kwargs)``.
    from_cache : bool
        True when the result was read from the cache: when ``func`` did not
        run. joblib's ``check_call_in_cache`` can answer either way wrongly:
        a worker process that has written a function's code to one cache
        does not write it to another, and the parent then finds an entry
        without it, which it counts as missing (and reads all the same); a
        corrupt entry counts as present, and is recomputed.
    """
    memory = _as_memory(memory)
    if getattr(memory, "location", None) is None:
        return func(**kwargs), False
    cached = memory.cache(func, ignore=list(ignore))
    keyed = {k: v for k, v in kwargs.items() if k not in ignore}
    key = joblib.hash((func.__module__, func.__qualname__, keyed))
    lock_path = os.path.join(str(memory.location), "skdeepcluster-locks", key)
    runs = _computation_count()
    with _file_lock(lock_path):
        # Where a joblib worker stored the entry without the function's code
        # file, this check writes that file (answering False), and the call
        # below then reads the entry instead of recomputing it.
        cached.check_call_in_cache(**kwargs)
        result = cached(**kwargs)
    return result, _computation_count() == runs
