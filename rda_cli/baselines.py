"""Baseline outlier detectors to compare the Robust Deep Autoencoder against.

- :class:`RobustPCA`: principal component pursuit, ``X = L + S`` with ``L`` low rank (nuclear
  norm) and ``S`` element-sparse (l1), the linear ancestor of the l1 RDA (Candès et al., 2011);
- :class:`OutlierPursuit`: ``X = L + C`` with ``C`` row-sparse (l2,1 over rows), the linear
  ancestor of the l2,1 RDA (Xu, Caramanis & Sanghavi, 2012);
- :func:`lof_scores` and :func:`ocsvm_scores`: scikit-learn's Local Outlier Factor and One-Class
  SVM as outlier scores.

Every detector yields one score per row, higher meaning more abnormal (for the two linear models:
the Euclidean norm of the row of the sparse part); :func:`top_fraction_mask` flags the top fraction
of rows by score. The plain autoencoder baseline is ``RobustAutoencoder(penalty=None)`` scored by
its ``residual_scores_``.

Both linear models are solved with the inexact augmented Lagrange multiplier method (Lin, Chen &
Ma, 2010). Their singular value thresholding goes through the eigendecomposition of the small
Gram matrix (784 x 784 for MNIST), not a full SVD of the data, which keeps an iteration well under
a second on 5,000 MNIST rows.
"""

from __future__ import annotations

import time

import numpy as np

from .prox import l1_shrink, l21_shrink

__all__ = ["svt", "RobustPCA", "OutlierPursuit", "lof_scores", "ocsvm_scores", "top_fraction_mask"]


def svt(M, tau):
    """Singular value thresholding: the proximal operator of ``tau * ||.||_*`` at ``M``.

    Each singular value ``sigma`` of ``M`` becomes ``max(sigma - tau, 0)``; the singular vectors
    stay. Computed from the eigendecomposition of the smaller Gram matrix (``M.T @ M`` or
    ``M @ M.T``).

    Parameters
    ----------
    M : ndarray of shape (n, d)
    tau : float >= 0

    Returns
    -------
    L : ndarray of shape (n, d)
    rank : int
        Number of singular values above ``tau``.
    """
    M = np.asarray(M, dtype=np.float64)
    if M.shape[0] < M.shape[1]:
        L, r = svt(M.T, tau)
        return L.T, r
    w, V = np.linalg.eigh(M.T @ M)
    sigma = np.sqrt(np.clip(w, 0.0, None))
    keep = sigma > tau
    if not keep.any():
        return np.zeros_like(M), 0
    Vk = V[:, keep]
    factor = (sigma[keep] - tau) / sigma[keep]
    return (M @ (Vk * factor)) @ Vk.T, int(keep.sum())


def _spectral_norm(X):
    G = X.T @ X if X.shape[0] >= X.shape[1] else X @ X.T
    return float(np.sqrt(max(np.linalg.eigvalsh(G)[-1], 0.0)))


class _LowRankPlusSparse:
    """Shared inexact-ALM solver of ``min ||L||_* + lam * penalty(S)  s.t.  X = L + S``."""

    _default_name = ""

    def __init__(self, lam=None, max_iter=50, tol=1e-5, rho=1.5):
        self.lam = lam
        self.max_iter = max_iter
        self.tol = tol
        self.rho = rho

    # subclasses: _default_lam(n, d), _prox(A, threshold), _dual_norm(X)
    def fit(self, X, y=None):
        """Decompose ``X``; ``y`` is ignored.

        Returns
        -------
        self
        """
        if not (isinstance(self.max_iter, (int, np.integer)) and self.max_iter >= 1):
            raise ValueError(f"max_iter must be an integer >= 1, got {self.max_iter!r}")
        if self.lam is not None and not self.lam > 0:
            raise ValueError(f"lam must be > 0 or None, got {self.lam!r}")
        t0 = time.perf_counter()
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or min(X.shape) < 2:
            raise ValueError(f"X must be a 2-D array with at least 2 rows and columns, got shape {X.shape}")
        n, d = X.shape
        lam = float(self.lam) if self.lam is not None else self._default_lam(n, d)
        norm_f = float(np.linalg.norm(X)) or 1.0
        norm_2 = _spectral_norm(X) or 1.0
        Y = X / max(norm_2, self._dual_norm(X) / lam)
        mu = 1.25 / norm_2
        mu_max = mu * 1e7
        S = np.zeros_like(X)
        L = np.zeros_like(X)
        self.history_ = []
        for it in range(self.max_iter):
            L, rank = svt(X - S + Y / mu, 1.0 / mu)
            S = self._prox(X - L + Y / mu, lam / mu)
            Z = X - L - S
            Y += mu * Z
            mu = min(mu * self.rho, mu_max)
            err = float(np.linalg.norm(Z)) / norm_f
            self.history_.append({"iteration": it + 1, "residual": err, "rank": rank})
            if err < self.tol:
                break
        self.lam_ = lam
        self.L_, self.S_ = L, S
        self.rank_ = rank
        self.n_iter_ = len(self.history_)
        self.decision_scores_ = np.linalg.norm(S, axis=1)
        self.outlier_mask_ = self.decision_scores_ > 1e-9 * max(norm_f, 1.0)
        self.fit_seconds_ = time.perf_counter() - t0
        return self


class RobustPCA(_LowRankPlusSparse):
    """Robust PCA (principal component pursuit): ``X = L + S``, ``L`` low rank, ``S`` element-sparse.

    Solves ``min ||L||_* + lam * ||S||_1`` subject to ``X = L + S`` by the inexact augmented
    Lagrange multiplier method. Rows are scored by the Euclidean norm of their row of ``S``.

    Parameters
    ----------
    lam : float or None, default=None
        Weight of ``||S||_1``; None uses ``1 / sqrt(max(n_samples, n_features))`` (Candès et al.).
    max_iter : int, default=50
        ALM iterations at most.
    tol : float, default=1e-5
        Stop when ``||X - L - S||_F / ||X||_F`` falls below it.
    rho : float, default=1.5
        Growth factor of the penalty parameter mu per iteration.

    Attributes
    ----------
    L_, S_ : ndarray of shape (n_samples, n_features)
    lam_ : float
        The weight used.
    rank_ : int
        Rank of ``L_``.
    decision_scores_ : ndarray of shape (n_samples,)
        Row norms of ``S_`` (higher is more abnormal).
    outlier_mask_ : ndarray of bool
        Rows of ``S_`` that are non-zero (for the l1 penalty usually almost all of them).
    n_iter_ : int
    history_ : list of dict
        ``iteration``, ``residual`` (relative constraint violation), ``rank`` per iteration.
    fit_seconds_ : float

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(100, 3)) @ rng.normal(size=(3, 20))
    >>> X[5, 7] += 10
    >>> int(np.argmax(RobustPCA().fit(X).decision_scores_))
    5
    """

    def _default_lam(self, n, d):
        return 1.0 / np.sqrt(max(n, d))

    def _dual_norm(self, X):
        return float(np.abs(X).max())

    def _prox(self, A, threshold):
        return l1_shrink(A, threshold)


class OutlierPursuit(_LowRankPlusSparse):
    """Outlier Pursuit: ``X = L + C``, ``L`` low rank, ``C`` row-sparse (whole outlying rows).

    Solves ``min ||L||_* + lam * ||C||_{2,1}`` (sum of the Euclidean norms of the rows of ``C``)
    subject to ``X = L + C`` by the inexact augmented Lagrange multiplier method, the row-wise
    shrinkage being :func:`rda_cli.prox.l21_shrink`. Rows are scored by the norm of their row of
    ``C`` (stored as ``S_``); rows of ``C`` that are non-zero are flagged.

    Parameters
    ----------
    lam : float or None, default=None
        Weight of ``||C||_{2,1}``; None uses ``3 / (7 * sqrt(gamma * n_samples))`` (Xu et al.,
        2012).
    gamma : float, default=0.05
        Expected fraction of outlying rows, used only by the default ``lam``.
    max_iter : int, default=50
    tol : float, default=1e-5
    rho : float, default=1.5

    Attributes
    ----------
    L_, S_, lam_, rank_, decision_scores_, outlier_mask_, n_iter_, history_, fit_seconds_
        As for :class:`RobustPCA`, ``S_`` being the row-sparse ``C``.
    """

    def __init__(self, lam=None, gamma=0.05, max_iter=50, tol=1e-5, rho=1.5):
        super().__init__(lam=lam, max_iter=max_iter, tol=tol, rho=rho)
        self.gamma = gamma

    def _default_lam(self, n, d):
        if not 0 < self.gamma <= 1:
            raise ValueError(f"gamma must be in (0, 1], got {self.gamma!r}")
        return 3.0 / (7.0 * np.sqrt(self.gamma * n))

    def _dual_norm(self, X):
        return float(np.linalg.norm(X, axis=1).max())

    def _prox(self, A, threshold):
        return l21_shrink(A, threshold, "rows")


def lof_scores(X, n_neighbors=20):
    """Local Outlier Factor of each row of ``X`` among the others (higher is more abnormal).

    ``-LocalOutlierFactor(n_neighbors).fit(X).negative_outlier_factor_`` (about 1 for inliers).
    """
    from sklearn.neighbors import LocalOutlierFactor

    n_neighbors = min(int(n_neighbors), len(X) - 1)
    return -LocalOutlierFactor(n_neighbors=n_neighbors).fit(X).negative_outlier_factor_.astype(np.float64)


def ocsvm_scores(X, nu=0.1, gamma="scale"):
    """One-Class SVM (RBF kernel) scores of the rows of ``X`` it was fitted on (higher is more abnormal).

    ``-OneClassSVM(nu=nu, gamma=gamma).fit(X).decision_function(X)``; ``gamma="scale"`` is
    ``1 / (n_features * X.var())``.
    """
    from sklearn.svm import OneClassSVM

    model = OneClassSVM(kernel="rbf", nu=nu, gamma=gamma).fit(X)
    return -model.decision_function(X).astype(np.float64)


def top_fraction_mask(scores, fraction):
    """Flag the ``round(fraction * n)`` rows with the highest scores (ties broken by position)."""
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores, kind="stable")
    mask = np.zeros(scores.size, bool)
    mask[order[: int(round(fraction * scores.size))]] = True
    return mask
