"""Confidence intervals over repeated seeds (Student t) and their rendering in tables."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["t_interval", "interval_dict", "curve_intervals", "excludes_zero", "fmt_pm"]


def t_interval(values, confidence=0.95):
    """Mean and half-width of the two-sided Student-t confidence interval of the mean.

    ``half_width = t_{(1 + confidence) / 2, n - 1} * s / sqrt(n)`` with ``s`` the sample standard
    deviation (ddof = 1). Non-finite values (missing results) are dropped first.

    Returns
    -------
    (mean, half_width, n)
        ``half_width`` is None when fewer than two values remain (no interval); ``mean`` is None
        when none remain.
    """
    from scipy.stats import t

    v = np.asarray([x for x in np.ravel(np.asarray(values, dtype=object))
                    if x is not None and math.isfinite(float(x))], dtype=float)
    n = int(v.size)
    if n == 0:
        return None, None, 0
    mean = float(v.mean())
    if n < 2:
        return mean, None, n
    s = float(v.std(ddof=1))
    return mean, float(t.ppf(0.5 + confidence / 2.0, n - 1) * s / math.sqrt(n)), n


def interval_dict(values, confidence=0.95):
    """``{"mean", "half_width", "n"}`` for JSON summaries."""
    mean, hw, n = t_interval(values, confidence)
    return {"mean": mean, "half_width": hw, "n": n}


def curve_intervals(matrix, confidence=0.95):
    """Column-wise :func:`t_interval` of an (n_seeds, n_points) array: (means, half_widths).

    Half-widths are NaN where a column has fewer than two finite values; means NaN where none.
    """
    m = np.atleast_2d(np.asarray(matrix, dtype=float))
    means = np.full(m.shape[1], np.nan)
    hws = np.full(m.shape[1], np.nan)
    for j in range(m.shape[1]):
        mean, hw, _ = t_interval(m[:, j], confidence)
        if mean is not None:
            means[j] = mean
        if hw is not None:
            hws[j] = hw
    return means, hws


def excludes_zero(mean, half_width):
    """True when the interval ``mean ± half_width`` lies strictly on one side of 0."""
    if mean is None or half_width is None or not math.isfinite(mean) or not math.isfinite(half_width):
        return False
    return abs(mean) > half_width


def fmt_pm(mean, half_width=None, digits=3):
    """``"0.612 ± 0.034"``, or ``"0.612"`` without an interval, or ``"—"`` without a value."""
    if mean is None or not math.isfinite(mean):
        return "—"
    if half_width is None or not math.isfinite(half_width):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {half_width:.{digits}f}"
