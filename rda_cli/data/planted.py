"""Validation tables with planted anomalies of ADBench's four types, made from a table's inliers.

Han et al., "ADBench: Anomaly Detection Benchmark" (NeurIPS 2022), section 3.2, generate realistic
synthetic anomalies from a data set's normal rows in four ways; this is our own implementation of
that description (their choices in brackets, ours where we differ):

* ``local``: a Gaussian mixture fitted to the inliers, sampled with every covariance scaled by
  ``alpha`` (5);
* ``global``: each feature drawn uniformly from ``[alpha min, alpha max]`` (alpha = 1.1);
* ``dependency``: each feature drawn on its own from a Gaussian kernel density of its inlier values
  (Silverman's bandwidth), so the marginals stay and the relations between features break (ADBench
  also fits a vine copula to generate the normal rows; we keep the real inliers instead);
* ``clustered``: the Gaussian mixture with its means scaled by ``alpha`` (5) and the covariances kept.

Everything is done in the inliers' min-max units (each column's minimum -> 0, maximum -> 1) and
mapped back, so a table's units and origin do not matter. The mixture has ``min(5, n // 50)`` components or at least one,
full covariances up to 50 features and diagonal ones beyond. Same inputs + seed = same table.
"""

from __future__ import annotations

import numpy as np

__all__ = ["ANOMALY_TYPES", "planted_table"]

ANOMALY_TYPES = ("local", "global", "dependency", "clustered")
ALPHA = {"local": 5.0, "global": 1.1, "clustered": 5.0}


def _mixture(U, seed):
    from sklearn.mixture import GaussianMixture

    k = max(1, min(5, len(U) // 50))
    kind = "full" if U.shape[1] <= 50 else "diag"
    return GaussianMixture(k, covariance_type=kind, reg_covar=1e-6, random_state=seed).fit(U)


def _sample_mixture(gm, m, rng, cov_scale=1.0, mean_scale=1.0):
    comp = rng.choice(len(gm.weights_), size=m, p=gm.weights_ / gm.weights_.sum())
    d = gm.means_.shape[1]
    out = np.empty((m, d))
    for c in np.unique(comp):
        idx = np.flatnonzero(comp == c)
        mean = gm.means_[c] * mean_scale
        if gm.covariance_type == "full":
            out[idx] = rng.multivariate_normal(mean, gm.covariances_[c] * cov_scale, size=len(idx),
                                               method="cholesky")
        else:
            out[idx] = mean + rng.standard_normal((len(idx), d)) * np.sqrt(gm.covariances_[c] * cov_scale)
    return out


def planted_table(inliers, kind, fraction=0.05, seed=0):
    """The inliers plus ``round(fraction * n / (1 - fraction))`` planted anomalies of ``kind``.

    Parameters
    ----------
    inliers : ndarray of shape (n, d)
        Rows believed normal (e.g. a labelled set's normal rows), any units, no NaN.
    kind : {"local", "global", "dependency", "clustered"}
    fraction : float in (0, 1)
        The planted rows' share of the returned table.
    seed : int

    Returns
    -------
    X : ndarray of shape (n + m, d)
        The inliers and the planted rows, shuffled.
    y : ndarray of int
        1 for the planted rows.
    """
    if kind not in ANOMALY_TYPES:
        raise ValueError(f"kind must be one of {ANOMALY_TYPES}, got {kind!r}")
    X = np.asarray(inliers, np.float64)
    rng = np.random.default_rng(seed)
    n, d = X.shape
    m = max(1, int(round(fraction * n / (1.0 - fraction))))
    lo, span = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
    span = np.where(span > 0, span, 1.0)
    U = (X - lo) / span
    if kind == "global":
        A = rng.uniform(ALPHA["global"] * U.min(axis=0), ALPHA["global"] * U.max(axis=0), size=(m, d))
    elif kind == "dependency":
        bandwidth = 1.06 * U.std(axis=0) * n ** -0.2  # Silverman's rule per column
        A = U[rng.integers(0, n, size=(m, d)), np.arange(d)] + bandwidth * rng.standard_normal((m, d))
    else:
        gm = _mixture(U, seed)
        if kind == "local":
            A = _sample_mixture(gm, m, rng, cov_scale=ALPHA["local"])
        else:
            A = _sample_mixture(gm, m, rng, mean_scale=ALPHA["clustered"])
    rows = np.vstack([X, A * span + lo])
    y = np.r_[np.zeros(n, int), np.ones(m, int)]
    order = rng.permutation(n + m)
    return rows[order], y[order]
