"""Proximal operators of the sparsity penalties used by the Robust Deep Autoencoder.

Both operators are vectorised over the whole array: no Python loop over elements or groups.
They take the matrix ``S`` (rows are instances, columns are features) and a non-negative
threshold, and return a new array; the input is never modified.
"""

from __future__ import annotations

import numpy as np

__all__ = ["l1_shrink", "l21_shrink", "penalty_value"]


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
    out = np.clip(S, -threshold, threshold)
    np.subtract(S, out, out=out)
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
    if groups == "rows":
        return np.einsum("ij,i->ij", S, scale)
    return S * scale[None, :]


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
