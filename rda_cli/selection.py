"""Choosing the sparsity weight lambda without labels.

A lambda sweep of a Robust Deep Autoencoder gives, for each lambda, how much of ``S`` is non-zero:
the number of flagged rows for the l2,1 penalty, ``||S||_0`` for the l1 penalty. These functions
pick a lambda from that curve alone, so that ``rda detect`` and the experiments can choose lambda
when no ground truth exists.

- :func:`knee_lambda`: the knee ("elbow") of the decreasing count-versus-lambda curve. Small
  lambdas let ``S`` absorb ordinary rows (or pixels) too, so the count falls steeply; once only the
  real anomalies are left it levels off. The knee is where the steep part meets the flat part.
- :func:`contamination_lambda`: the smallest lambda whose flagged fraction is at most an expected
  contamination given by the user.
- :func:`lambda_for_fraction`: a search for the lambda that flags about a given fraction of the
  groups, one fit per step: the one implementation behind ``rda detect --lam-for-fraction`` and
  ``RDA(lam_for_fraction=...)``. (``contamination`` is not this: everywhere in rda it is PyOD's
  expected fraction of anomalies, a cut-off on the scores that the fit does not depend on.)
- :func:`check_fraction`: the one range check of such a fraction, ``(0, 0.5)`` (:data:`FRACTION`).
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np
from sklearn.utils._param_validation import Interval

from .errors import RdaError

__all__ = ["knee_lambda", "knee_index", "contamination_lambda", "lambda_for_fraction", "group_statistics",
           "n_flagged_groups", "check_fraction", "FRACTION", "Fitter", "unit_threshold"]

MAX_FITS = 8
FRACTION = Interval(Real, 0, 0.5, closed="neither")
"""The range of an expected fraction of anomalies (``contamination``, ``lam_for_fraction``): (0, 0.5),
as PyOD's detectors take it less their closed end (a half of the rows is no minority). The one
definition: :func:`check_fraction` and the ensemble's parameter constraints use it."""


def check_fraction(value, name):
    """``value`` as a float if it lies in :data:`FRACTION`, else :class:`~rda_cli.errors.RdaError` (a
    ValueError) naming ``name`` (e.g. ``"`contamination`"``)."""
    if isinstance(value, (bool, np.bool_)) or not FRACTION.is_satisfied_by(value):
        raise RdaError(f"{name} {value!r}: expected a fraction in (0, 0.5)")
    return float(value)


def _sorted_curve(lams, counts):
    lams = np.asarray(lams, dtype=float).ravel()
    counts = np.asarray(counts, dtype=float).ravel()
    if lams.shape != counts.shape:
        raise ValueError(f"lams and counts must have the same length, got {lams.size} and {counts.size}")
    if lams.size == 0:
        raise ValueError("lams must not be empty")
    if not (np.all(np.isfinite(lams)) and np.all(np.isfinite(counts))):
        raise ValueError("lams and counts must be finite")
    if np.unique(lams).size != lams.size:
        raise ValueError("lams must not contain duplicates")
    order = np.argsort(lams, kind="stable")
    return lams[order], counts[order], order


def knee_index(lams, counts, scale="linear", count_scale="log"):
    """Index (into the given, possibly unsorted, ``lams``) of the knee of ``counts`` against ``lams``.

    See :func:`knee_lambda`.
    """
    x, y, order = _sorted_curve(lams, counts)
    if scale not in ("linear", "log"):
        raise ValueError(f"scale must be 'linear' or 'log', got {scale!r}")
    if count_scale not in ("linear", "log"):
        raise ValueError(f"count_scale must be 'linear' or 'log', got {count_scale!r}")
    if count_scale == "log":
        if np.any(y < 0):
            raise ValueError("count_scale='log' needs counts >= 0")
        # lambdas that leave S all zero flag nothing; on the log axis their drop to 0 would
        # dwarf the rest of the curve, so the knee is looked for among the others
        keep = y > 0
        if keep.sum() >= 1 and not keep.all():
            x, y, order = x[keep], y[keep], order[keep]
        y = np.log1p(y)
    if scale == "log":
        if np.any(x <= 0):
            raise ValueError("scale='log' needs lambdas > 0")
        x = np.log(x)
    if x.size <= 2:
        return int(order[0])
    xn = (x - x[0]) / (x[-1] - x[0])
    span = y.max() - y.min()
    if span == 0:
        return int(order[0])  # a flat curve has no knee: keep the smallest lambda
    yn = (y - y.min()) / span
    # Distance below the chord joining the first and the last point (Kneedle, Satopaa et al. 2011)
    chord = yn[0] + (yn[-1] - yn[0]) * xn
    gap = chord - yn
    i = int(np.argmax(gap))
    if gap[i] <= 0:
        # concave curve (no bend below the chord): the first point after the largest drop
        i = int(np.argmin(np.diff(yn))) + 1
    return int(order[i])


def knee_lambda(lams, counts, scale="linear", count_scale="log"):
    """The lambda at the knee of a decreasing count-versus-lambda curve (no labels needed).

    The counts are taken as ``log(1 + count)`` (by default), then both axes are scaled to [0, 1],
    and the knee is the point that lies farthest below the straight
    line (the chord) from the smallest-lambda point to the largest-lambda point, as in the Kneedle
    method (Satopaa et al., 2011) for a convex decreasing curve. That is where the steep fall (``S``
    absorbing ordinary rows or pixels) turns into the flat part (only the anomalies left).

    Parameters
    ----------
    lams : array-like of shape (n,)
        The swept lambdas (any order, no duplicates).
    counts : array-like of shape (n,)
        For each lambda, the non-zero amount of ``S``: flagged rows (l2,1 penalty, e.g.
        ``RobustAutoencoder.outlier_mask_.sum()``) or non-zero entries (l1 penalty).
    scale : {"linear", "log"}, default="linear"
        Spacing of the lambda axis; "log" suits grids spread over decades (lambdas must be > 0).
    count_scale : {"log", "linear"}, default="log"
        Axis of the counts. On the log axis a fall from all rows to a few percent of them is not
        dominated by its first step, so the knee lands where the flagged count levels off (on
        synthetic data with planted outlier rows the linear axis stops too early, flagging up to
        twice the planted rows). Lambdas whose count is 0 are then left out, unless all are.

    Returns
    -------
    float
        The chosen lambda, one of ``lams``. With one or two lambdas, or a flat curve, the smallest
        lambda. If no point lies below the chord (a concave curve), the lambda just after the
        largest drop.

    Examples
    --------
    >>> knee_lambda([1, 2, 3, 4, 5, 6], [1000, 300, 60, 52, 50, 45])
    3.0
    """
    i = knee_index(lams, counts, scale, count_scale)
    return float(np.asarray(lams, dtype=float).ravel()[i])


def contamination_lambda(lams, counts, n_rows, contamination):
    """The smallest lambda at which the flagged fraction ``counts / n_rows`` is at most ``contamination``.

    Parameters
    ----------
    lams, counts : array-like of shape (n,)
        As for :func:`knee_lambda` (counts of flagged rows).
    n_rows : int
        Rows of the data.
    contamination : float in (0, 1]
        The fraction of outlying rows the user expects.

    Returns
    -------
    float
        The chosen lambda; the largest lambda if no lambda flags few enough rows.
    """
    x, y, _ = _sorted_curve(lams, counts)
    if not 0 < contamination <= 1:
        raise ValueError(f"contamination must be in (0, 1], got {contamination!r}")
    if n_rows < 1:
        raise ValueError(f"n_rows must be >= 1, got {n_rows!r}")
    ok = np.flatnonzero(y / n_rows <= contamination)
    return float(x[ok[0]] if ok.size else x[-1])


def group_statistics(R, penalty):
    """What the prox threshold is compared with, per group, for a residual ``R`` (zero at missing
    entries): column norms (``l21_cols``), a row's largest absolute entry (``l1``), else row norms."""
    if penalty == "l21_cols":
        return np.linalg.norm(R, axis=0)
    if penalty == "l1":
        return np.abs(R).max(axis=1)
    return np.linalg.norm(R, axis=1)


def n_flagged_groups(S, penalty):
    """How many groups (columns for ``l21_cols``, else rows) of ``S`` are non-zero."""
    return int(np.any(S != 0, axis=0 if penalty == "l21_cols" else 1).sum())


class Fitter:
    """Fits :class:`~rda_cli.estimator.RobustAutoencoder` on ``X`` with fixed ``params`` but ``lam``,
    counting its fits (``done``) and reporting ``progress(done, total, label)`` when given."""

    def __init__(self, X, params, progress=None, total=1):
        self.X, self.params, self.progress, self.total, self.done = X, dict(params), progress, total, 0
        if progress:
            progress(0, total, None)

    def __call__(self, lam, plain=False):
        from .estimator import RobustAutoencoder

        p = dict(self.params, lam=float(lam))
        if plain:  # the plain autoencoder through the same loop (S = 0)
            p["penalty"] = None
        model = RobustAutoencoder(**p).fit(self.X)
        self.done += 1
        if self.progress:
            self.progress(min(self.done, self.total), self.total, f"fit {self.done}")
        return model


def unit_threshold(X, params):
    """The prox threshold that lambda 1 stands for on ``X`` with these estimator ``params`` (1 when 0)."""
    from .estimator import effective_threshold
    from .missing import fill_missing

    return effective_threshold(fill_missing(X), params["penalty"], 1.0, params.get("lambda_scaling", "paper")) or 1.0


def pilot_statistics(fit, X, penalty):
    """Each group's residual statistic (:func:`group_statistics`) after a pilot fit of the plain autoencoder."""
    pilot = fit(0.0, plain=True)
    return group_statistics(np.nan_to_num(np.asarray(X) - pilot.L_, nan=0.0), penalty)


def lambda_for_fraction(X, fraction, params, fit=None, max_fits=MAX_FITS):
    """The fit whose flagged groups are closest to ``fraction`` of all groups, by a search on lambda.

    A pilot fit of the plain autoencoder gives each group's residual statistic ``g``
    (:func:`group_statistics`). The target is ``round(fraction * n_groups)`` groups. The first lambda
    puts the prox threshold at the ``1 - fraction`` quantile of ``g``; then lambda is doubled or
    halved until the target is bracketed, and bisected on log lambda; each step is one full fit. The
    search stops when the count is within ``max(1, 10% of the target)`` groups, or after ``max_fits``
    fits; the fit whose count is closest to the target (ties: the smaller count) is kept.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        The data the fits are on (NaN at missing entries).
    fraction : float in (0, 0.5)
        Checked by :func:`check_fraction`.
    params : dict
        :class:`~rda_cli.estimator.RobustAutoencoder` parameters (``penalty`` one of ``"l21_rows"``,
        ``"l1"``, ``"l21_cols"``); ``lam`` is what the search sets.
    fit : Fitter or None
        The fitter to use (e.g. one reporting progress); None: ``Fitter(X, params)``.
    max_fits : int, default=8

    Returns
    -------
    model, lam, search
        The kept fit, its lambda, and ``{"target", "tolerance", "steps"}`` with one
        ``{"lam", "threshold", "flagged"}`` per fit.
    """
    fraction = check_fraction(fraction, "`lam_for_fraction`")
    penalty = params.get("penalty", "l21_rows")
    if penalty is None:
        raise RdaError("`lam_for_fraction` needs a penalty: the plain autoencoder (penalty=None) flags nothing")
    fit = Fitter(X, params) if fit is None else fit
    g = pilot_statistics(fit, X, penalty)
    unit = unit_threshold(X, dict(params, penalty=penalty))
    target = int(round(fraction * len(g)))
    tol = max(1, int(round(0.1 * target)))
    lam = max(float(np.quantile(g, 1.0 - fraction)), 1e-12) / unit
    lo = hi = None  # lo: a lambda flagging too many, hi: one flagging too few
    steps, best = [], None
    for _ in range(max_fits):
        model = fit(lam)
        count = n_flagged_groups(model.S_, penalty)
        steps.append({"lam": lam, "threshold": model.prox_threshold_, "flagged": count})
        key = (abs(count - target), count)
        if best is None or key < best[0]:
            best = (key, model, lam)
        if abs(count - target) <= tol:
            break
        if count > target:
            lo = lam
        else:
            hi = lam
        lam = math.sqrt(lo * hi) if lo is not None and hi is not None else (lam * 2 if hi is None else lam / 2)
    return best[1], best[2], {"target": target, "tolerance": tol, "steps": steps}
