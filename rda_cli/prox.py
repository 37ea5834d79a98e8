"""Proximal operators of the sparsity penalties used by the Robust Deep Autoencoder.

Both operators are vectorised over the whole array: no Python loop over elements or groups.
They take the matrix ``S`` (rows are instances, columns are features) and a non-negative
threshold, and return a new array; the input is never modified.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["l1_shrink", "l21_shrink", "penalty_value"]

# Element-wise passes over large arrays are split into row blocks run on a few threads (numpy
# releases the GIL in its loops); below this many elements one thread is faster.
_PARALLEL_MIN_SIZE = 1 << 20
_THREADS = max(1, min(4, os.cpu_count() or 1))
_pool = None


def _by_row_blocks(fn, n_rows, size):
    """Call ``fn(start, stop)`` over row blocks, in parallel when the array is large."""
    global _pool
    if _THREADS == 1 or size < _PARALLEL_MIN_SIZE or n_rows < 2 * _THREADS:
        fn(0, n_rows)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(_THREADS, thread_name_prefix="rda-prox")
    bounds = np.linspace(0, n_rows, _THREADS + 1).astype(int)
    for future in [_pool.submit(fn, a, b) for a, b in zip(bounds[:-1], bounds[1:])]:
        future.result()


def _check(S, threshold):
    S = np.asarray(S)
    if S.ndim != 2:
        raise ValueError(f"S must be a 2-D array, got an array with {S.ndim} dimension(s)")
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    return S, threshold


def l1_shrink(S, threshold):
    """Element-wise soft threshold, the proximal operator of ``threshold * ||S||_1``.

    Each entry moves ``threshold`` towards zero and stops there:
    ``sign(s) * max(|s| - threshold, 0)`` (eq. 11 of Zhou & Paffenroth, 2017).

    Parameters
    ----------
    S : array-like of shape (n_samples, n_features)
    threshold : float >= 0

    Returns
    -------
    ndarray of the same shape and floating dtype as ``S``.
    """
    S, threshold = _check(S, threshold)
    if threshold == 0:
        return S.copy()
    # sign(s) * max(|s| - t, 0) == s - clip(s, -t, t): two passes over memory instead of four
    out = np.empty_like(S, dtype=np.result_type(S.dtype, np.float32))

    def block(a, b):
        np.clip(S[a:b], -threshold, threshold, out=out[a:b])
        np.subtract(S[a:b], out[a:b], out=out[a:b])

    _by_row_blocks(block, S.shape[0], S.size)
    return out


def l21_shrink(S, threshold, groups="rows"):
    """Block soft threshold, the proximal operator of ``threshold * ||S||_{2,1}``.

    A group (a row or a column of ``S``) whose Euclidean norm is at most ``threshold``
    becomes zero; any other group is scaled by ``1 - threshold / ||g||`` (eq. 12 of
    Zhou & Paffenroth, 2017), so that its norm becomes ``||g|| - threshold``.

    Parameters
    ----------
    S : array-like of shape (n_samples, n_features)
    threshold : float >= 0
    groups : {"rows", "columns"}
        ``"rows"`` groups each instance (outlying instances), ``"columns"`` each
        feature (corrupted features).

    Returns
    -------
    ndarray of the same shape and floating dtype as ``S``.
    """
    S, threshold = _check(S, threshold)
    if groups not in ("rows", "columns"):
        raise ValueError(f"groups must be 'rows' or 'columns', got {groups!r}")
    if threshold == 0:
        return S.copy()
    if groups == "rows":
        # row norms as a stack of 1 x d by d x 1 products: one fast pass over S
        norms = np.sqrt(np.matmul(S[:, None, :], S[:, :, None]).reshape(-1))
    else:
        norms = np.sqrt(np.einsum("ij,ij->j", S, S))
    # Groups with norm <= threshold (zero-norm groups included) get factor 0: no division by 0.
    scale = np.zeros_like(norms)
    big = norms > threshold
    scale[big] = 1.0 - threshold / norms[big]
    out = np.empty_like(S, dtype=np.result_type(S.dtype, np.float32))
    factor = scale[:, None] if groups == "rows" else scale[None, :]

    def block(a, b):
        np.multiply(S[a:b], factor[a:b] if groups == "rows" else factor, out=out[a:b])

    _by_row_blocks(block, S.shape[0], S.size)
    return out


def penalty_value(S, penalty):
    """The penalty ``||S||_1`` or ``||S||_{2,1}`` (over rows or columns) of ``S``."""
    S = np.asarray(S)
    if penalty is None:
        return 0.0
    if penalty == "l1":
        return float(np.abs(S).sum())
    if penalty == "l21_rows":
        return float(np.sqrt(np.einsum("ij,ij->i", S, S)).sum())
    if penalty == "l21_cols":
        return float(np.sqrt(np.einsum("ij,ij->j", S, S)).sum())
    raise ValueError(f"unknown penalty {penalty!r}")
