"""``RDA``: the Robust Deep Autoencoder as a PyOD detector.

:class:`RDA` subclasses PyOD's ``BaseDetector``, so it goes wherever PyOD detectors go: ``fit``,
``decision_function``, ``predict``, ``predict_proba``, ``predict_confidence``, PyOD's score
combination (``pyod.models.combination``) and its ensembles (``LSCP``, ``FeatureBagging``), and
scikit-learn's ``clone`` / ``get_params``.

By default (``lam=None``, penalty ``"l21_rows"`` or None, no ``hidden_layers``) it wraps the table
rule's :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` (``detector_``; ``n_members`` members,
robust scaling, :mod:`rda_cli.table_rule`): exactly what ``rda detect`` fits, with PyOD's rule on
top -- ``threshold_`` at the ``1 - contamination`` quantile of the training scores. With ``lam`` or
``lam_for_fraction`` (or ``hidden_layers``, or the ``l1`` / ``l21_cols`` penalties) it wraps one
:class:`~rda_cli.estimator.RobustAutoencoder` on min-max scaled rows, with the table rule's network and
pilot schedule unless given.

PyOD is an optional dependency (``pip install "rda-cli[pyod]"``); importing this module without it
raises ImportError saying so.

``contamination`` and one model's lambda
-----------------------------------------
``contamination`` is PyOD's: the expected fraction of anomalies, a cut-off on the scores; no fit
depends on it. One model's lambda is ``lam``, else the one for about ``lam_for_fraction`` of the
training rows flagged (:func:`~rda_cli.selection.lambda_for_fraction`), else the knee rule of
``rda detect`` (:func:`~rda_cli.detect_lambda.choose_lambda`). A one-model RDA with a row penalty flags
the rows whose sparse part ``S`` is non-zero: ``threshold_ = 0.0`` and ``labels_ == (decision_scores_ >
threshold_)``, and ``contamination`` feeds PyOD's confidence and rejection formulas only. A model that
flags no rows -- the plain autoencoder and ``l21_cols`` -- takes PyOD's quantile rule.
"""

from __future__ import annotations

import numpy as np
try:
    from pyod.models.base import BaseDetector
except ImportError as exc:  # pragma: no cover - PyOD is installed with the test extra
    raise ImportError('rda_cli.pyod_detector needs PyOD: pip install "rda-cli[pyod]"') from exc
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from .ensemble import RobustAutoencoderEnsemble
from .estimator import RobustAutoencoder
from .scoring import ROW_PENALTIES
from .selection import check_fraction
from .table_rule import DEFAULT_RULE
from .scaling import MinMaxScaler01

__all__ = ["RDA"]


class RDA(BaseDetector):
    """Robust Deep Autoencoder outlier detector (Zhou & Paffenroth, KDD 2017) for PyOD.

    Parameters
    ----------
    contamination : float in (0, 0.5), default=0.1
        The expected fraction of outliers, PyOD's cut-off on the scores (module docstring); checked
        here and in ``fit`` by :func:`rda_cli.selection.check_fraction`.
    lam : float or None, default=None
        None: the ensemble (or, for ``lam_for_fraction`` / ``l1`` / ``l21_cols`` / ``hidden_layers``,
        one model whose lambda is chosen as the module docstring says). A float: one model with this
        penalty weight.
    lam_for_fraction : float in (0, 0.5) or None, default=None
        One model: lambda searched so that about this fraction of the training rows (columns for
        ``l21_cols``) is flagged (:func:`rda_cli.selection.lambda_for_fraction`).
    penalty : {"l21_rows", "l1", "l21_cols"} or None, default="l21_rows"
        As for :class:`~rda_cli.estimator.RobustAutoencoder`; None: plain autoencoder(s).
    n_members : int in [1, 8], default=2 (the table rule's)
        The ensemble's members (the table rule's default; 1: a single RDA through the same code).
    hidden_layers : tuple of int or None, default=None
        One model's hidden layer sizes, e.g. ``(64, 32)``; None: the table rule's network from the shape.
    outer_iterations, inner_epochs, batch_size, learning_rate : int, int, int, float or None, default=None
        One model's schedule; None: the table rule's single model (10 x about 200 gradient steps, learning
        rate 0.01, batch from the rows: :func:`rda_cli.table_rule.one_model_settings`), as ``rda detect
        --lam`` fits it.
    lambda_scaling, tied, reinitialize
        As for :class:`~rda_cli.estimator.RobustAutoencoder` (one model).
    preprocessing : bool, default=True
        One model: min-max scale each column to [0, 1] with the training range (NaN ignored); False:
        the data must already lie in [0, 1]. The ensemble always scales robustly.
    random_state : int or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    detector_ : RobustAutoencoderEnsemble or RobustAutoencoder
    scaler_ : MinMaxScaler01 or None
        One model's scaler (None for the ensemble, which holds its own).
    decision_scores_ : ndarray of shape (n_samples,)
    threshold_ : float
    labels_ : ndarray of int
    lam_ : float
        The lambda used (the ensemble: its first member's prox threshold; 0 for plain autoencoders).

    Notes
    -----
    Missing values (NaN) are accepted in ``fit`` and ``decision_function``.
    """

    def __init__(self, contamination=0.1, lam=None, lam_for_fraction=None, penalty="l21_rows",
                 n_members=DEFAULT_RULE.n_members, hidden_layers=None,
                 outer_iterations=None, inner_epochs=None, batch_size=None, learning_rate=None,
                 lambda_scaling="paper", tied=True, reinitialize=False, preprocessing=True,
                 random_state=None, verbose=0):
        check_fraction(contamination, "`contamination`")  # refused here as fit would refuse it
        super().__init__(contamination=contamination)
        self.lam = lam
        self.lam_for_fraction = lam_for_fraction
        self.penalty = penalty
        self.n_members = n_members
        self.hidden_layers = hidden_layers
        self.outer_iterations = outer_iterations
        self.inner_epochs = inner_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.lambda_scaling = lambda_scaling
        self.tied = tied
        self.reinitialize = reinitialize
        self.preprocessing = preprocessing
        self.random_state = random_state
        self.verbose = verbose

    def _uses_ensemble(self):
        return (self.lam is None and self.lam_for_fraction is None and self.penalty in ("l21_rows", None)
                and self.hidden_layers is None)

    def _seed(self):
        if self.random_state is None:
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(self.random_state)

    def _estimator_params(self, width, n_rows):
        """One model's :class:`~rda_cli.estimator.RobustAutoencoder` parameters, ``lam`` aside: the table
        rule's single model (:func:`rda_cli.table_rule.one_model_settings`, as ``rda detect`` fits it) with
        what this detector's parameters give."""
        from .table_rule import one_model_settings

        given = {name: getattr(self, name) for name in ("outer_iterations", "inner_epochs", "batch_size",
                                                        "learning_rate") if getattr(self, name) is not None}
        if self.hidden_layers is not None:
            given["layers"] = [width] + [int(d) for d in self.hidden_layers]
        given.update(penalty=self.penalty, lambda_scaling=self.lambda_scaling, tied=self.tied,
                     reinitialize=self.reinitialize, random_state=self._seed(), verbose=self.verbose)
        return one_model_settings(n_rows, width, given)

    def _fit_one(self, Xs):
        """One model on scaled rows ``Xs``, its lambda as the module docstring says."""
        from .detect_lambda import choose_lambda

        params = self._estimator_params(Xs.shape[1], Xs.shape[0])
        if self.penalty is None:  # the plain autoencoder: no lambda to choose
            return RobustAutoencoder(lam=0.0, **params).fit(Xs)
        if self.lam_for_fraction is not None:
            check_fraction(self.lam_for_fraction, "`lam_for_fraction`")
        return choose_lambda(Xs, params, self.penalty, self.lam, self.lam_for_fraction, None)[0]

    def _scaled(self, X):
        X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
        if self.scaler_ is None and isinstance(self.detector_, RobustAutoencoderEnsemble):
            return X  # the ensemble scales the raw rows itself
        return self.scaler_.transform(X) if self.scaler_ is not None else X.astype(np.float32)

    def fit(self, X, y=None):
        """Fit the detector on ``X`` (``y`` is ignored); returns self."""
        check_fraction(self.contamination, "`contamination`")
        if self.lam is not None and self.lam_for_fraction is not None:
            raise ValueError("give either `lam` or `lam_for_fraction`, not both")
        X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan", ensure_min_samples=2)
        self._set_n_classes(y)
        if self._uses_ensemble():
            self.scaler_ = None
            self.detector_ = RobustAutoencoderEnsemble(
                n_members=self.n_members, penalty=self.penalty, contamination=float(self.contamination),
                random_state=self._seed()).fit(X)
            self.lam_ = float(self.detector_.member_info_[0].get("threshold", 0.0))
            self.decision_scores_ = self.detector_.decision_scores_
            self._process_decision_scores()  # PyOD's quantile rule (the ensemble's own, with this contamination)
            self.threshold_, self.labels_ = self.detector_.threshold_, self.detector_.labels_.copy()
            return self
        self.scaler_ = MinMaxScaler01().fit(X) if self.preprocessing else None
        Xs = self._scaled(X) if self.scaler_ is not None else X.astype(np.float32)
        self.detector_ = self._fit_one(Xs)
        self.lam_ = self.detector_.lam_
        self.decision_scores_ = self.detector_.decision_function(Xs)
        self._process_decision_scores()  # PyOD's quantile rule, and what predict_proba(method="unify") uses
        if self.penalty in ROW_PENALTIES:  # the rows S flags instead (module docstring)
            self.threshold_ = 0.0
            self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    def decision_function(self, X):
        """Outlier scores of ``X``: higher is more abnormal (flagged above ``threshold_``)."""
        check_is_fitted(self, ["detector_", "decision_scores_", "threshold_", "labels_"])
        return self.detector_.decision_function(self._scaled(X))

    def feature_contributions(self, X):
        """Each feature's share of each row's anomaly (the estimator's or the ensemble's
        ``feature_contributions``, in scaled units)."""
        check_is_fitted(self, ["detector_"])
        return self.detector_.feature_contributions(self._scaled(X))
