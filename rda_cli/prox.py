"""Proximal operators of the sparsity penalties used by the Robust Deep Autoencoder.

Both operators are vectorised: no Python loop over elements or groups (large arrays go through
in row chunks, on a few threads). They take the matrix ``S`` (rows are instances, columns are
features) and a non-negative threshold, and return a new array, leaving ``S`` as it was, unless
``out`` names where to write (``out=S`` shrinks in place, as the estimator does with its residual).
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

__all__ = ["l1_shrink", "l21_shrink", "penalty_value", "prox_threads"]

# Passes over large arrays are split into row blocks run on a few threads (numpy releases the
# GIL in its loops); below this many elements one thread is faster. Within a thread, rows go in
# chunks of about _CHUNK_BYTES, so that the l2,1 shrink scales a chunk while the pass that took
# its norms has just left it in cache: one trip through memory instead of two.
_PARALLEL_MIN_SIZE = 1 << 20
_CHUNK_BYTES = 1 << 21
_MAX_THREADS = 4
_pool = None


def prox_threads():
    """Threads for a large pass: at most 4, the cores this process may run on
    (``os.sched_getaffinity``), and the per-process limit ``OMP_NUM_THREADS`` when set -- the
    variable the process executor sets in each worker (:func:`~rda_cli.experiments.executors.limit_threads`),
    so N workers on N cores run one prox thread each."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - no affinity on this platform
        cores = os.cpu_count() or 1
    limit = os.environ.get("OMP_NUM_THREADS", "").strip()
    if limit.isdigit() and int(limit) > 0:
        cores = min(cores, int(limit))
    return max(1, min(_MAX_THREADS, cores))


def _by_row_blocks(fn, n_rows, size, row_bytes):
    """Call ``fn(start, stop)`` over row chunks, threads taking contiguous shares when large."""
    global _pool
    step = max(1, _CHUNK_BYTES // max(1, row_bytes))

    def share(a, b):
        for start in range(a, b, step):
            fn(start, min(start + step, b))

    threads = prox_threads() if size >= _PARALLEL_MIN_SIZE else 1
    if threads == 1 or n_rows < 2 * threads:
        share(0, n_rows)
        return
    if _pool is None:
        _pool = ThreadPoolExecutor(_MAX_THREADS, thread_name_prefix="rda-prox")
    bounds = np.linspace(0, n_rows, threads + 1).astype(int)
    for future in [_pool.submit(share, a, b) for a, b in zip(bounds[:-1], bounds[1:])]:
        future.result()


def _output(S, out):
    dtype = np.result_type(S.dtype, np.float32)
    if out is None:
        return np.empty_like(S, dtype=dtype)
    if not isinstance(out, np.ndarray) or out.shape != S.shape or out.dtype != dtype:
        raise ValueError(f"out must be a {dtype} array of shape {S.shape}")
    return out


def _check(S, threshold, out, groups="rows"):
    """``(S, threshold, out)`` checked, in this order: ``S``, ``threshold``, ``groups`` (of
    :func:`l21_shrink`), then ``out`` (a new array where None, see :func:`_output`)."""
    S = np.asarray(S)
    if S.ndim != 2:
        raise ValueError(f"S must be a 2-D array, got an array with {S.ndim} dimension(s)")
    threshold = float(threshold)
    if not np.isfinite(threshold) or threshold < 0:
        raise ValueError(f"threshold must be a finite number >= 0, got {threshold!r}")
    if groups not in ("rows", "columns"):
        raise ValueError(f"groups must be 'rows' or 'columns', got {groups!r}")
    return S, threshold, _output(S, out)


def _unshrunk(S, out):
    """The result of a zero threshold: ``S`` itself, copied into ``out`` unless ``out`` is ``S``."""
    if out is not S:
        np.copyto(out, S)
    return out


def l1_shrink(S, threshold, out=None):
    """Element-wise soft threshold, the proximal operator of ``threshold * ||S||_1``.

    Each entry moves ``threshold`` towards zero and stops there:
    ``sign(s) * max(|s| - threshold, 0)`` (eq. 11 of Zhou & Paffenroth, 2017).

    Parameters
    ----------
    S : array-like of shape (n_samples, n_features)
    threshold : float >= 0
    out : ndarray or None, default=None
        Where to write the result (may be ``S`` itself, to shrink in place); None: a new array.

    Returns
    -------
    ndarray of the same shape and floating dtype as ``S``.
    """
    S, threshold, out = _check(S, threshold, out)
    if threshold == 0:
        return _unshrunk(S, out)

    # sign(s) * max(|s| - t, 0) == s - clip(s, -t, t); the clipped chunk stays in cache
    def block(a, b):
        clipped = np.clip(S[a:b], -threshold, threshold)
        np.subtract(S[a:b], clipped, out=out[a:b])

    _by_row_blocks(block, S.shape[0], S.size, S.strides[0])
    return out


def l21_shrink(S, threshold, groups="rows", out=None):
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
    out : ndarray or None, default=None
        Where to write the result (may be ``S`` itself, to shrink in place); None: a new array.

    Returns
    -------
    ndarray of the same shape and floating dtype as ``S``.
    """
    S, threshold, out = _check(S, threshold, out, groups)
    if threshold == 0:
        return _unshrunk(S, out)
    if groups == "rows":

        def block(a, b):
            # the chunk's row norms (a stack of 1 x d by d x 1 products), then its scaling,
            # while the chunk is still in cache
            rows = S[a:b]
            scale = np.sqrt(np.matmul(rows[:, None, :], rows[:, :, None]).reshape(-1))
            np.multiply(rows, _group_scale(scale, threshold)[:, None], out=out[a:b])

        _by_row_blocks(block, S.shape[0], S.size, S.strides[0])
        return out
    scale = _group_scale(np.sqrt(np.einsum("ij,ij->j", S, S)), threshold)[None, :]

    def block(a, b):
        np.multiply(S[a:b], scale, out=out[a:b])

    _by_row_blocks(block, S.shape[0], S.size, S.strides[0])
    return out


def _group_scale(norms, threshold):
    """``max(1 - threshold / norm, 0)`` per group, overwriting ``norms``; a zero norm gives 0."""
    np.maximum(norms, np.finfo(norms.dtype).tiny, out=norms)
    with np.errstate(over="ignore"):  # threshold / a tiny norm is inf, and the group's scale 0: as meant
        np.divide(threshold, norms, out=norms)
    np.subtract(1.0, norms, out=norms)
    return np.maximum(norms, 0.0, out=norms)


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
