"""Rows of the training matrix, served to the device one mini-batch at a time."""

import numpy as np
import scipy.sparse as sp
import torch

#: Most entries of one dense chunk of ``DeviceData.chunks``: 128 MB in
#: float64, so that wide inputs (a TF-IDF matrix of 50,000 terms) are
#: served in fewer rows at a time rather than as gigabyte blocks.
MAX_CHUNK_ENTRIES = 2**24


def from_tensor(array, name="X"):
    """A torch tensor as numpy, for scikit-learn's validation; anything else
    as it is.

    ``np.asarray`` refuses a tensor that requires grad or lives on a GPU,
    and numpy has no bfloat16: the tensor is detached, copied to the CPU,
    and bfloat16 widened to float32 (exactly).
    """
    if not isinstance(array, torch.Tensor):
        return array
    if array.layout != torch.strided:
        raise TypeError(
            f"{name} is a sparse torch tensor ({array.layout}); pass a scipy.sparse matrix "
            "(e.g. scipy.sparse.csr_matrix) or a dense tensor."
        )
    # resolve_*: a negated or conjugated view (torch's lazy bits) has no numpy form
    array = array.detach().resolve_neg().resolve_conj().cpu()
    return (array.float() if array.dtype == torch.bfloat16 else array).numpy()


def as_stored(X):
    """``X`` as training stores it: float32, a dense array C-ordered, a
    sparse matrix as canonical CSR (duplicates summed, explicit zeros
    dropped, indices sorted).

    Inputs that train alike then look alike, for the pretraining cache's
    key: float64 and float32 copies of the same values, a DataFrame and its
    array, a CSC and a CSR matrix.
    """
    if sp.issparse(X):
        X = sp.csr_matrix(X, dtype=np.float32, copy=True)
        X.sum_duplicates()
        X.eliminate_zeros()
        X.sort_indices()
        return X
    return np.ascontiguousarray(X, dtype=np.float32)


class DeviceData:
    """Holds ``X`` for training and inference.

    A dense ``X`` is copied to the device once and batches are tensor slices
    of it (``resident=True``, for training, which visits every row each
    epoch), or stays the caller's array and each batch is copied on its own
    (``resident=False``, for one pass of inference, which then never holds
    a whole copy). A sparse ``X`` stays in CPU memory as CSR and each batch
    is densified on its own, so a TF-IDF matrix is never densified whole.
    Either way a batch holds ``X``'s values rounded to float32, as training
    stores them, in ``dtype``.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_samples, n_features)
    device : torch.device
    dtype : torch.dtype
    resident : bool
    """

    def __init__(self, X, device, dtype=torch.float32, resident=True):
        self.device = torch.device(device)
        self.dtype = dtype
        self.n_samples, self.n_features = X.shape
        self._sparse = self._dense = self._host = None
        if sp.issparse(X):
            self._sparse = sp.csr_matrix(X, dtype=np.float32)
        elif resident:
            self._dense = torch.from_numpy(_float32_copy(X)).to(self.device, dtype)
        else:
            self._host = X

    def __len__(self):
        return self.n_samples

    def rows(self, index):
        """Dense batch for a 1-d tensor of row indices."""
        if self._dense is not None:
            return self._dense[index]
        index = index.cpu().numpy()
        if self._sparse is not None:
            return self._from_sparse(self._sparse[index])
        return self._from_host(self._host[index])

    def slice(self, start, stop):
        """Dense batch of rows ``start:stop`` in data order."""
        if self._dense is not None:
            return self._dense[start:stop]
        if self._sparse is not None:
            return self._from_sparse(self._sparse[start:stop])
        return self._from_host(self._host[start:stop])

    def chunks(self, chunk_size):
        """Yield dense batches of at most ``chunk_size`` rows (fewer for
        wide data, see :data:`MAX_CHUNK_ENTRIES`) covering all rows in order."""
        chunk_size = max(1, min(chunk_size, MAX_CHUNK_ENTRIES // max(1, self.n_features)))
        for start in range(0, self.n_samples, chunk_size):
            yield self.slice(start, min(start + chunk_size, self.n_samples))

    def _from_sparse(self, block):
        dense = torch.from_numpy(block.toarray())
        return dense.to(self.device, self.dtype, non_blocking=True)

    def _from_host(self, block):
        return torch.from_numpy(_float32_copy(block)).to(self.device, self.dtype)


def _float32_copy(X):
    # a copy: the caller's (possibly read-only) array is never shared with torch
    return np.array(X, dtype=np.float32, order="C", copy=True)
