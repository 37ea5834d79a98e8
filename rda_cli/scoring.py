"""What a fitted :class:`~rda_cli.estimator.RobustAutoencoder` says about data: scores, flags, features.

:class:`ScoringMixin` holds the estimator's scoring API (``decision_function``, ``predict``,
``feature_contributions``, ``transform``, ``reconstruct``, ``impute``). On the training data it
uses the fitted ``S_`` and ``L_`` (while the model keeps them: one loaded from a folder saved without
its training data treats every row as new); on new data it finds ``S`` and ``L`` with the network held fixed
(:func:`rda_cli.solver.sparse_part_of`). Which rows are flagged depends on the penalty: the row
penalties (``l21_rows``, ``l1``) flag the non-zero rows of ``S``; ``l21_cols`` flags columns
(``column_mask_``) and no row; the plain autoencoder (None) flags nothing.
"""

from __future__ import annotations

import hashlib

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .missing import fill_missing, observed_mask, row_norms
from .solver import sparse_part_of

__all__ = ["ScoringMixin", "ROW_PENALTIES", "fingerprint"]

ROW_PENALTIES = ("l21_rows", "l1")  # the penalties that flag rows; l21_cols flags columns, None nothing


def fingerprint(X):
    """A digest of ``X`` (float32 bytes and shape): how a model knows its training data again."""
    with np.errstate(over="ignore"):  # a value beyond float32 digests as inf
        X = np.ascontiguousarray(X, dtype=np.float32)
    return hashlib.blake2b(X.view(np.uint8).reshape(-1), digest_size=16).hexdigest() + str(X.shape)


class ScoringMixin:
    """The scoring API of :class:`~rda_cli.estimator.RobustAutoencoder` (its fitted ``S_``, ``L_``,
    ``network_`` and ``_trainer``)."""

    def _decompose(self, X):
        """``(S, L, X_filled, mask)`` of validated ``X``: the fitted ones for the training data; for new
        data the network is held fixed and ``S = prox(X - D(E(X - S)))`` iterated from 0 (at most 10
        times), missing entries starting at ``L_``'s column means and taking ``L`` at every step."""
        mask = observed_mask(X)
        if self._is_training_data(X):
            return self.S_, self.L_, (X if mask is None else np.where(mask, X, self.L_)), mask
        Xf = X if mask is None else fill_missing(X, mask, self._column_means())
        with self._trainer() as net:
            S, L = sparse_part_of(Xf, mask, net.reconstruct, self._sparse_step())
        return S, L, Xf, mask

    def _column_means(self):
        """Where new data's missing entries start: ``L_``'s column means (all a model saved without its
        training data keeps of ``L_``)."""
        L = getattr(self, "L_", None)
        return self._fill_values if L is None else L.mean(axis=0)

    def _is_training_data(self, X):
        """Whether ``X`` is the training data of a model that keeps it (``S_`` and ``L_``)."""
        S = getattr(self, "S_", None)
        return S is not None and X.shape == S.shape and fingerprint(X) == self._train_fingerprint

    def _scores(self, X, parts=None):
        """``(scores, flagged rows)`` of validated ``X`` (see :meth:`decision_function`); ``parts``: its
        :meth:`_decompose`, if already found."""
        S, L, Xf, mask = self._decompose(X) if parts is None else parts
        if self.penalty not in ROW_PENALTIES:
            return row_norms(Xf - L, mask).astype(np.float64), np.zeros(len(X), bool)
        flagged = np.any(S != 0, axis=1)
        R = Xf - L
        # Rows that the prox left at zero are ranked by how far they are from being flagged:
        # for l2,1 over rows that is ||r|| - threshold, for l1 max|r_ij| - threshold (both <= 0).
        if self.penalty == "l1":
            margin = np.abs(R).max(axis=1) - self.prox_threshold_
        else:
            margin = row_norms(R, mask) - self.prox_threshold_
        margin = np.minimum(margin, 0.0)
        return np.where(flagged, row_norms(S, mask), margin).astype(np.float64), flagged

    def decision_function(self, X):
        """Outlier score of each row of ``X``: higher is more abnormal; for the row penalties > 0 means flagged.

        For the row penalties a flagged row (non-zero row of ``S``) scores the norm of its ``S`` row;
        any other row how far it is below the threshold (``||r|| - threshold`` for l2,1,
        ``max|r_ij| - threshold`` for l1, ``r`` its residual), a value <= 0. A model that flags no
        rows (``penalty=None`` or ``"l21_cols"``) scores the residual row norm ``||x - l||``.
        ``S`` and ``L`` are the fitted ones on the training data, else found as :meth:`_decompose` says.
        """
        check_is_fitted(self, "network_")
        return self._scores(self._check_X(X, reset=False))[0]

    def feature_contributions(self, X, return_scores=False):
        """Each feature's share of each row's anomaly: the companion of :meth:`decision_function`.

        A flagged row splits its squared ``S`` norm among its features (``S_ij**2 / ||S_i||**2``); any
        other row splits its squared residual ``X - L`` (observed entries only) the same way. Shares
        are >= 0 and sum to 1 per row (0 for a row reconstructed exactly); missing entries get 0.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_scores : bool, default=False
            Also return ``decision_function(X)``, from the same decomposition.

        Returns
        -------
        contributions : ndarray of shape (n_samples, n_features)
        scores : ndarray of shape (n_samples,)
            Only with ``return_scores``.
        """
        check_is_fitted(self, "network_")
        X = self._check_X(X, reset=False)
        parts = self._decompose(X)
        S, L, Xf, _ = parts
        scores, flagged = self._scores(X, parts)
        A = np.where(flagged[:, None], S, Xf - L).astype(np.float64) ** 2
        total = A.sum(axis=1, keepdims=True)
        shares = np.divide(A, total, out=np.zeros_like(A), where=total > 0)
        return (shares, scores) if return_scores else shares

    def impute(self, X):
        """``X`` with its missing entries (NaN) replaced by the decomposition's ``L``."""
        check_is_fitted(self, "network_")
        X = self._check_X(X, reset=False)
        mask = observed_mask(X)
        if mask is None:
            return X.copy()
        return np.where(mask, X, self._decompose(X)[1])

    def score_samples(self, X):
        """``-decision_function(X)``: lower is more abnormal."""
        return -self.decision_function(X)

    def predict(self, X):
        """+1 for inliers, -1 for flagged rows (non-zero rows of ``S``; none for ``l21_cols`` and None)."""
        check_is_fitted(self, "network_")
        X = self._check_X(X, reset=False)
        if self.penalty not in ROW_PENALTIES:
            return np.ones(X.shape[0], dtype=int)
        return np.where(self._scores(X)[1], -1, 1)

    def fit_predict(self, X, y=None):
        """Fit on ``X`` and return the +1 / -1 labels of its rows."""
        self.fit(X)
        return np.where(self.outlier_mask_, -1, 1)

    def transform(self, X):
        """Innermost hidden features of ``X - S`` (``S_`` on the training data, as the authors compute
        them; for new data ``S`` as :meth:`_decompose` finds it)."""
        check_is_fitted(self, "network_")
        X = self._check_X(X, reset=False)
        if self.penalty is None and observed_mask(X) is None and not self._is_training_data(X):
            S, Xf = 0.0, X
        else:
            S, _, Xf, _ = self._decompose(X)
        with self._trainer() as net:
            return net.encode(Xf - S)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def reconstruct(self, X):
        """The autoencoder's reconstruction ``D(E(X))`` of ``X`` (missing entries imputed first)."""
        check_is_fitted(self, "network_")
        X = self._check_X(X, reset=False)
        if observed_mask(X) is not None:
            X = self.impute(X)
        with self._trainer() as net:
            return net.reconstruct(X)
