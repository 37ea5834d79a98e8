"""A per-feature tail score: how far into one feature's tail each value lies (ECOD-like).

An autoencoder is blind to a value far out in one feature's tail when the network reconstructs it
anyway; the empirical CDF of each feature is not. Following ECOD (Li, Zhao, Hu, Botta, Ionescu and
Chen, TKDE 2022), a row's score is the sum over its features of ``-log`` of the tail probability of
its value, taken on the left, on the right and on the side each feature's skewness points to; the
largest of the three sums is the score. Our own implementation: each feature's empirical CDF is kept
as ``min(max_quantiles, n // 2)`` evenly spaced training quantiles (interpolated, so never the rows'
own values, and at most half as many numbers as the column), saved as arrays (no pickle). Missing
values (NaN) add nothing.
"""

from __future__ import annotations

import numpy as np

__all__ = ["TailScore"]

MAX_QUANTILES = 1024


class TailScore:
    """Per-feature empirical-CDF tail score of rows (higher is more abnormal).

    Parameters
    ----------
    max_quantiles : int
        Training quantiles kept per feature (at most half the rows).

    Attributes
    ----------
    quantiles_ : ndarray of shape (q, n_features)
        ``q`` evenly spaced quantiles of each column's training values (linear interpolation).
    counts_ : ndarray of shape (n_features,)
        Observed training values per feature.
    right_skewed_ : ndarray of bool, shape (n_features,)
        Features whose training skewness is not negative: their automatic tail is the right one.
    """

    def __init__(self, max_quantiles=MAX_QUANTILES):
        self.max_quantiles = int(max_quantiles)

    def fit(self, X):
        X = np.asarray(X, np.float64)
        q = max(2, min(self.max_quantiles, len(X) // 2))
        with np.errstate(all="ignore"):
            Q = np.nanquantile(X, (np.arange(q) + 0.5) / q, axis=0)
            mean = np.nanmean(X, axis=0)
            std = np.nanstd(X, axis=0)
            skew = np.nanmean((X - mean) ** 3, axis=0) / np.where(std > 0, std, 1.0) ** 3
        self.quantiles_ = np.nan_to_num(Q)  # a column with no observed value: all zeros
        self.counts_ = np.sum(np.isfinite(X), axis=0).astype(np.float64)
        self.right_skewed_ = ~(np.nan_to_num(skew) < 0)
        return self

    def score(self, X):
        """The rows' tail scores (shape ``(n_samples,)``)."""
        X = np.asarray(X, np.float64)
        Q = self.quantiles_
        q = len(Q)
        floor = 1.0 / (q + 1)
        left = np.zeros(X.shape)
        right = np.zeros(X.shape)
        for j in range(X.shape[1]):
            x = X[:, j]
            seen = np.isfinite(x)
            pl = np.searchsorted(Q[:, j], x[seen], side="right") / q
            pr = (q - np.searchsorted(Q[:, j], x[seen], side="left")) / q
            left[seen, j] = -np.log(np.clip(pl, floor, 1.0))
            right[seen, j] = -np.log(np.clip(pr, floor, 1.0))
        auto = np.where(self.right_skewed_, right, left)
        return np.max([left.sum(axis=1), right.sum(axis=1), auto.sum(axis=1)], axis=0)

    def to_arrays(self):
        """The fitted state as plain arrays (for an ``.npz`` saved without pickle)."""
        return {"quantiles": self.quantiles_, "right_skewed": self.right_skewed_, "counts": self.counts_}

    @classmethod
    def from_arrays(cls, arrays):
        """A fitted score from :meth:`to_arrays`' arrays (checked: shapes, finite numbers)."""
        Q = np.asarray(arrays["quantiles"], np.float64)
        skewed = np.asarray(arrays["right_skewed"])
        counts = np.asarray(arrays["counts"], np.float64)
        if Q.ndim != 2 or len(Q) < 2 or skewed.shape != (Q.shape[1],) or counts.shape != (Q.shape[1],):
            raise ValueError("tail score arrays of mismatched shapes")
        if not (np.all(np.isfinite(Q)) and np.all(np.diff(Q, axis=0) >= 0)):
            raise ValueError("tail score quantiles must be finite and sorted")
        self = cls(max_quantiles=len(Q))
        self.quantiles_, self.right_skewed_, self.counts_ = Q, skewed.astype(bool), counts
        return self
