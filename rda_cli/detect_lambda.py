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
* ``lam_for_fraction=F``: the search for about ``F`` of the groups flagged,
  :func:`rda_cli.selection.lambda_for_fraction` (its one implementation).
* neither -- the *knee rule* (label-free): fit a log-spaced grid of ``n_grid`` lambdas whose
  thresholds run from the median to the maximum of the pilot's ``g``; put the curve (log lambda,
  number of non-zero groups) on [0, 1] x [0, 1] and take the point farthest below the straight
  line joining its ends (the "Kneedle" knee): past that point, raising lambda barely changes what
  is flagged -- the flagged groups are those that stand apart from the bulk. Ties go to the
  smaller lambda.
"""

from __future__ import annotations

import numpy as np

from .selection import (MAX_FITS, Fitter, knee_index, lambda_for_fraction, n_flagged_groups, pilot_statistics,
                        unit_threshold)

N_GRID = 8


def choose_by_knee(X, params, fit, n_grid=N_GRID):
    """The knee rule over a log grid of lambdas (see module doc); returns (model, lam, trace)."""
    penalty = params["penalty"]
    g = pilot_statistics(fit, X, penalty)
    unit = unit_threshold(X, params)
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


def choose_lambda(X, params, penalty, lam, lam_for_fraction, progress):
    """Lambda of one model on scaled rows ``X``: ``lam`` as given, else by ``lam_for_fraction``, else the
    knee rule (see module doc). Returns ``(model, lam, search, how, fit)``; ``fit.done`` counts the fits."""
    if lam is not None:
        fit = Fitter(X, params, progress, 1)
        model, chosen, search = fit(lam), float(lam), {}
        how = "given (lam)"
    elif lam_for_fraction is not None:
        fit = Fitter(X, params, progress, MAX_FITS + 1)
        model, chosen, search = lambda_for_fraction(X, lam_for_fraction, params, fit)
        how = (f"lam_for_fraction {lam_for_fraction:g}: bisection on log lambda for {search['target']} flagged "
               f"{'columns' if penalty == 'l21_cols' else 'rows'} (tolerance {search['tolerance']}), "
               f"{len(search['steps'])} fit(s) after a pilot fit of the plain autoencoder")
    else:
        fit = Fitter(X, params, progress, N_GRID + 1)
        model, chosen, search = choose_by_knee(X, params, fit)
        how = (f"knee rule (label-free): {N_GRID} lambdas log-spaced so that the thresholds run from the median "
               "to the maximum group residual norm of a pilot plain-autoencoder fit; lambda at the knee of the "
               "number-of-non-zero-groups vs log-lambda curve (the point farthest below the chord joining its ends)")
    return model, chosen, search, how, fit
