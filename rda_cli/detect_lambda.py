"""Choosing lambda for one :class:`~rda_cli.estimator.RobustAutoencoder` (``rda detect`` with ``lam``
or a penalty other than the default ensemble's; see :mod:`rda_cli.detect`).

Choosing lambda (one model)
---------------------------
Lambda sets the prox threshold (``lambda_scaling="paper"``: ``lambda * n_rows`` for l2,1,
``10 * lambda / mu`` for l1; see :func:`~rda_cli.estimator.effective_threshold`). A *group* is what the
penalty flags: a row (``l21_rows``, ``l1``: a row with any non-zero entry) or a column
(``l21_cols``). A pilot fit of the plain autoencoder (same network and schedule, ``S = 0``) gives
each group's residual statistic ``g`` (row or column norm of ``X - L``; for l1 a row's largest
absolute residual), which is what the threshold is compared with.

* ``lam``: used as given.
* ``contamination=F``: the target is ``round(F * n_groups)`` flagged groups. The first lambda puts
  the threshold at the ``1 - F`` quantile of the pilot's ``g``; then lambda is doubled or halved
  until the target is bracketed, and bisected on log lambda; each step is one full fit. The search
  stops when the count is within ``max(1, 10% of the target)`` groups, or after ``max_fits`` fits;
  the fit whose count is closest to the target (ties: the smaller count) is kept.
* neither -- the *knee rule* (label-free): fit a log-spaced grid of ``n_grid`` lambdas whose
  thresholds run from the median to the maximum of the pilot's ``g``; put the curve (log lambda,
  number of non-zero groups) on [0, 1] x [0, 1] and take the point farthest below the straight
  line joining its ends (the "Kneedle" knee): past that point, raising lambda barely changes what
  is flagged -- the flagged groups are those that stand apart from the bulk. Ties go to the
  smaller lambda.
"""

from __future__ import annotations

import numpy as np

from .selection import MAX_FITS, group_statistics, knee_index, lambda_for_contamination, n_flagged_groups

N_GRID = 8


class _Fitter:
    """Fits with fixed settings, counting fits and reporting progress."""

    def __init__(self, X, params, progress, total):
        self.X, self.params, self.progress, self.total, self.done = X, params, progress, total, 0
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


def _unit_threshold(X, params):
    from .estimator import effective_threshold
    from .missing import fill_missing

    return effective_threshold(fill_missing(X), params["penalty"], 1.0, params.get("lambda_scaling", "paper")) or 1.0


def _pilot_stats(fit, X, params):
    pilot = fit(0.0, plain=True)
    return group_statistics(np.nan_to_num(X - pilot.L_, nan=0.0), params["penalty"])


def choose_by_contamination(X, params, fraction, fit, max_fits=MAX_FITS):
    """Bisection on log lambda for about ``fraction`` of groups flagged; returns (model, lam, trace).
    The search is the library's (:func:`~rda_cli.selection.lambda_for_contamination`)."""
    return lambda_for_contamination(X, fraction, fit, params["penalty"], _unit_threshold(X, params), max_fits)


def choose_by_knee(X, params, fit, n_grid=N_GRID):
    """The knee rule over a log grid of lambdas (see module doc); returns (model, lam, trace)."""
    penalty = params["penalty"]
    g = _pilot_stats(fit, X, params)
    unit = _unit_threshold(X, params)
    t_lo, t_hi = float(np.median(g)), float(np.max(g))
    if not t_hi > t_lo > 0:
        t_lo, t_hi = max(t_hi, 1e-6) / 4, max(t_hi, 1e-6)
    lams = np.geomspace(t_lo / unit, t_hi / unit, n_grid)
    models, counts = [], []
    for lam in lams:
        models.append(fit(lam))
        counts.append(n_flagged_groups(models[-1].S_, penalty))
    # the grid is log-spaced: the knee on a log lambda axis, counts as they are
    k = knee_index(lams, counts, scale="log", count_scale="linear")
    steps = [{"lam": float(lam), "threshold": m.prox_threshold_, "flagged": c} for lam, m, c in zip(lams, models, counts)]
    return models[k], float(lams[k]), {"steps": steps, "knee": k}


def choose_lambda(X, params, penalty, lam, contamination, progress):
    """Lambda of one model on scaled rows ``X``: ``lam`` as given, else by ``contamination``, else the
    knee rule (see module doc). Returns ``(model, lam, search, how, fit)``; ``fit.done`` counts the fits."""
    if lam is not None:
        fit = _Fitter(X, params, progress, 1)
        model, chosen, search = fit(lam), float(lam), {}
        how = "given (lam)"
    elif contamination is not None:
        fit = _Fitter(X, params, progress, MAX_FITS + 1)
        model, chosen, search = choose_by_contamination(X, params, contamination, fit)
        how = (f"contamination {contamination:g}: bisection on log lambda for {search['target']} flagged "
               f"{'columns' if penalty == 'l21_cols' else 'rows'} (tolerance {search['tolerance']}), "
               f"{len(search['steps'])} fit(s) after a pilot fit of the plain autoencoder")
    else:
        fit = _Fitter(X, params, progress, N_GRID + 1)
        model, chosen, search = choose_by_knee(X, params, fit)
        how = (f"knee rule (label-free): {N_GRID} lambdas log-spaced so that the thresholds run from the median "
               "to the maximum group residual norm of a pilot plain-autoencoder fit; lambda at the knee of the "
               "number-of-non-zero-groups vs log-lambda curve (the point farthest below the chord joining its ends)")
    return model, chosen, search, how, fit
