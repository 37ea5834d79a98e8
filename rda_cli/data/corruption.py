"""Synthetic corruptions of image data sets (rows are flattened images in [0, 1])."""

from __future__ import annotations

import numbers

import numpy as np

__all__ = ["corrupt_pixels", "outlier_mix", "stuck_pixels"]

_CHUNK_ROWS = 8192  # bounds the memory of the per-row random permutations


def _as_2d(X, name: str = "X") -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n_samples, n_features), got shape {X.shape}")
    return X


def _as_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


def corrupt_pixels(X, k, seed=None):
    """Flip exactly ``k`` distinct, uniformly chosen pixels in every row.

    A chosen pixel becomes 0.0 if its value is > 0.5, else 1.0.
    Returns ``(X_corrupted, mask)``; ``mask`` is a bool array of ``X``'s shape
    marking the chosen pixels.  ``X`` itself is not modified.
    """
    X = _as_2d(X)
    k = _as_int(k, "k")
    n, d = X.shape
    if k < 0 or k > d:
        raise ValueError(f"k must lie in 0..{d} (the number of features), got {k}")
    rng = np.random.default_rng(seed)

    mask = np.zeros((n, d), dtype=bool)
    if k > 0 and n > 0:
        columns = np.arange(d, dtype=np.int16 if d <= np.iinfo(np.int16).max else np.intp)
        for start in range(0, n, _CHUNK_ROWS):  # chunks of rows, vectorised inside
            stop = min(start + _CHUNK_ROWS, n)
            # an independent uniform permutation of the columns for every row
            order = rng.permuted(np.broadcast_to(columns, (stop - start, d)), axis=1)
            np.put_along_axis(mask[start:stop], order[:, :k].astype(np.intp), True, axis=1)

    flipped = (X <= 0.5).astype(X.dtype)  # > 0.5 -> 0, otherwise -> 1
    X_corrupted = np.where(mask, flipped, X)
    return X_corrupted, mask


def outlier_mix(X, y, nominal=4, n_outliers=265, n_source=50000, seed=0):
    """Mix every ``nominal`` row with ``n_outliers`` rows of other labels.

    Only the first ``n_source`` rows are used.  Outliers are drawn without
    replacement; the result is shuffled.  Returns ``(X_mix, y_mix, is_outlier)``.
    """
    X = np.asarray(X)
    y = np.asarray(y)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X has {X.shape[0]} rows but y has {y.shape[0]} labels")
    n_outliers = _as_int(n_outliers, "n_outliers")
    n_source = _as_int(n_source, "n_source")
    if n_outliers < 0:
        raise ValueError(f"n_outliers must be >= 0, got {n_outliers}")
    if n_source <= 0:
        raise ValueError(f"n_source must be > 0, got {n_source}")
    n_source = min(n_source, y.shape[0])

    labels = y[:n_source]
    nominal_idx = np.flatnonzero(labels == nominal)
    if nominal_idx.size == 0:
        raise ValueError(f"no rows with label {nominal!r} among the first {n_source} rows")
    other_idx = np.flatnonzero(labels != nominal)
    if n_outliers > other_idx.size:
        raise ValueError(
            f"n_outliers={n_outliers} exceeds the {other_idx.size} non-{nominal} rows "
            f"among the first {n_source} rows"
        )

    rng = np.random.default_rng(seed)
    outlier_idx = rng.choice(other_idx, size=n_outliers, replace=False)
    index = np.concatenate([nominal_idx, outlier_idx])
    is_outlier = np.concatenate([np.zeros(nominal_idx.size, bool), np.ones(n_outliers, bool)])
    order = rng.permutation(index.size)
    index = index[order]
    return X[index], y[index], is_outlier[order]


def stuck_pixels(X, n_pixels, fraction, seed=None, value=1.0):
    """Set ``n_pixels`` columns to ``value`` in a random ``fraction`` of rows.

    Columns are drawn among those that are mostly dark (column mean < 0.1) so
    a "stuck on" pixel is a real corruption; if too few exist, the darkest
    remaining columns are added.  Returns ``(X_corrupted, stuck_columns)``
    with the column indices sorted.  ``X`` itself is not modified.
    """
    X = _as_2d(X)
    n, d = X.shape
    n_pixels = _as_int(n_pixels, "n_pixels")
    if not 0 < n_pixels <= d:
        raise ValueError(f"n_pixels must lie in 1..{d} (the number of features), got {n_pixels}")
    try:
        fraction = float(fraction)
    except (TypeError, ValueError):
        raise ValueError(f"fraction must be a number in (0, 1], got {fraction!r}") from None
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must lie in (0, 1], got {fraction}")
    if not np.isfinite(value):
        raise ValueError(f"value must be finite, got {value!r}")
    if n == 0:
        raise ValueError("X has no rows")

    rng = np.random.default_rng(seed)
    means = X.mean(axis=0)
    dark = np.flatnonzero(means < 0.1)
    if dark.size >= n_pixels:
        columns = rng.choice(dark, size=n_pixels, replace=False)
    else:
        rest = np.setdiff1d(np.arange(d), dark)
        rest = rest[np.argsort(means[rest], kind="stable")][: n_pixels - dark.size]
        columns = np.concatenate([dark, rest])
    columns = np.sort(columns).astype(np.intp)

    n_rows = min(n, max(1, int(round(fraction * n))))
    rows = rng.choice(n, size=n_rows, replace=False)

    X_corrupted = np.array(X, copy=True)
    X_corrupted[np.ix_(rows, columns)] = value
    return X_corrupted, columns
