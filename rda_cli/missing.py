"""Missing values (NaN): masks of observed entries, filling, and norms over observed entries.

The estimator (:mod:`rda_cli.estimator`) trains on observed entries only and scores a row by the
norm of its observed entries scaled up to the full width; these helpers are those rules, shared
by the estimator, the solver and ``rda detect``.
"""

from __future__ import annotations

import numpy as np

from .errors import RdaError

__all__ = ["observed_mask", "check_observed", "fill_missing", "observed_scale", "row_norms"]


def observed_mask(X):
    """The mask of observed (non-NaN) entries of ``X``, or None when nothing is missing."""
    missing = np.isnan(X)
    return None if not missing.any() else ~missing


def check_observed(X, columns=True):
    """Refuse (:class:`~rda_cli.errors.RdaError`) a row, or with ``columns`` a column, of ``X`` with no
    observed entry."""
    missing = np.isnan(X)
    if not missing.any():
        return
    for axis, what in ((1, "row"), (0, "column")) if columns else ((1, "row"),):
        empty = np.flatnonzero(missing.all(axis=axis))
        if empty.size:
            raise RdaError(f"X has {empty.size} {what}(s) with no observed value (all NaN), the first is "
                           f"{what} {int(empty[0])}; a {what} needs at least one observed value")


def fill_missing(X, mask=None, values=None):
    """``X`` with missing entries replaced by ``values`` per column (default: the observed column
    means); a new array, or ``X`` itself when nothing is missing."""
    if mask is None:
        mask = observed_mask(X)
        if mask is None:
            return X
    if values is None:
        values = np.nanmean(X, axis=0)
    return np.where(mask, X, np.asarray(values, dtype=X.dtype)[None, :]).astype(X.dtype, copy=False)


def observed_scale(mask, axis):
    """``sqrt(group size / observed entries)`` per row (``axis=1``) or column (``axis=0``) of ``mask``."""
    return np.sqrt(mask.shape[axis] / np.maximum(mask.sum(axis=axis), 1)).astype(np.float32)


def row_norms(A, mask=None):
    """Row norms of ``A`` (in its dtype), times :func:`observed_scale` of ``mask`` when given."""
    norms = np.sqrt(np.einsum("ij,ij->i", A, A))  # no squared copy of A
    return norms if mask is None else norms * observed_scale(mask, 1)
