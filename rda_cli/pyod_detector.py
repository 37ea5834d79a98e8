"""``RDA``: the Robust Deep Autoencoder as a PyOD detector.

:class:`RDA` subclasses PyOD's ``BaseDetector``, so it goes wherever PyOD detectors go: ``fit``,
``decision_function``, ``predict``, ``predict_proba``, ``predict_confidence``, PyOD's score
combination (``pyod.models.combination``) and its ensembles (``LSCP``, ``FeatureBagging``), and
scikit-learn's ``clone`` / ``get_params``. It wraps a :class:`~rda_cli.estimator.RobustAutoencoder`
(``detector_``) fitted on the data min-max scaled to [0, 1] (the network's sigmoid output range).

PyOD is an optional dependency (``pip install "rda-cli[pyod]"``); importing this module without it
raises ImportError saying so.

How ``contamination`` is used
-----------------------------
A PyOD detector usually scores the rows and flags the top ``contamination`` fraction. RDA flags the
rows whose sparse part ``S`` is non-zero, so here ``contamination`` chooses lambda instead: the
estimator's search (:func:`~rda_cli.selection.lambda_for_contamination`) finds a lambda that flags
about that fraction of the training rows. With ``lam`` given, ``lam`` decides and
``contamination`` only feeds PyOD's confidence and rejection formulas. Either way
``threshold_ = 0.0`` and ``labels_ == (decision_scores_ > threshold_)``: the flagged rows are those
of ``S``. A model that flags no rows -- the plain autoencoder (``penalty=None``) and the column
penalty ``l21_cols``, which flags columns (``detector_.column_mask_``) -- scores rows by their
residual norm and takes PyOD's usual rule (``threshold_`` at the ``1 - contamination`` quantile of
the training scores).
"""

from __future__ import annotations

import numpy as np
try:
    from pyod.models.base import BaseDetector
except ImportError as exc:  # pragma: no cover - PyOD is installed with the test extra
    raise ImportError('rda_cli.pyod_detector needs PyOD: pip install "rda-cli[pyod]"') from exc
from sklearn.utils import check_array
from sklearn.utils.validation import check_is_fitted

from .estimator import RobustAutoencoder
from .scoring import ROW_PENALTIES
from .tabular import MinMaxScaler01

__all__ = ["RDA"]


class RDA(BaseDetector):
    """Robust Deep Autoencoder outlier detector (Zhou & Paffenroth, KDD 2017) for PyOD.

    Parameters
    ----------
    contamination : float in (0, 0.5), default=0.1
        The expected fraction of outliers; chooses lambda unless ``lam`` is given (module docstring).
    lam : float or None, default=None
        The penalty weight; None: found from ``contamination``.
    penalty : {"l21_rows", "l1", "l21_cols"} or None, default="l21_rows"
        As for :class:`~rda_cli.estimator.RobustAutoencoder` (``l21_cols``: ``contamination`` is then a
        fraction of the columns).
    hidden_layers : tuple of int or None, default=None
        Hidden layer sizes, e.g. ``(64, 32)``; None: about 1/2 and 1/4 of the input width
        (:func:`~rda_cli.estimator.default_layers`).
    outer_iterations, inner_epochs, batch_size, learning_rate, lambda_scaling, tied, reinitialize
        As for :class:`~rda_cli.estimator.RobustAutoencoder`; the defaults are ``rda detect``'s short
        schedule (10 x 10 epochs, continued training).
    preprocessing : bool, default=True
        Min-max scale each column to [0, 1] with the training data's range (NaN ignored) before the
        network sees it. False: the data must already lie in [0, 1].
    random_state : int or None, default=None
    verbose : int, default=0

    Attributes
    ----------
    detector_ : RobustAutoencoder
        The fitted estimator (on the scaled data).
    scaler_ : MinMaxScaler01 or None
    decision_scores_ : ndarray of shape (n_samples,)
        ``decision_function`` of the training rows: the norm of a row of ``S`` when flagged, else
        how far the row is below the prox threshold (<= 0).
    threshold_ : float
        0.0 (see the module docstring).
    labels_ : ndarray of int
        1 for the rows ``S`` flags.
    lam_ : float
        The lambda used.

    Notes
    -----
    Missing values (NaN) are accepted in ``fit`` and ``decision_function``
    (see :class:`~rda_cli.estimator.RobustAutoencoder`).
    """

    def __init__(self, contamination=0.1, lam=None, penalty="l21_rows", hidden_layers=None,
                 outer_iterations=10, inner_epochs=10, batch_size=133, learning_rate=0.001,
                 lambda_scaling="paper", tied=True, reinitialize=False, preprocessing=True,
                 random_state=None, verbose=0):
        super().__init__(contamination=contamination)
        self.lam = lam
        self.penalty = penalty
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

    def _estimator(self, width, n_rows):
        if not isinstance(self.contamination, (float, int)) or not 0 < self.contamination < 0.5:
            raise ValueError(f"contamination must be a fraction in (0, 0.5), got {self.contamination!r}")
        layers = None if self.hidden_layers is None else [width] + [int(d) for d in self.hidden_layers]
        use_contamination = self.lam is None and self.penalty is not None
        return RobustAutoencoder(
            layers=layers, penalty=self.penalty, lam=0.0 if self.lam is None else self.lam,
            contamination=float(self.contamination) if use_contamination else None,
            lambda_scaling=self.lambda_scaling, outer_iterations=self.outer_iterations,
            inner_epochs=self.inner_epochs, batch_size=min(int(self.batch_size), n_rows),
            learning_rate=self.learning_rate, tied=self.tied, reinitialize=self.reinitialize,
            random_state=self.random_state, verbose=self.verbose)

    def _scaled(self, X):
        X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
        return self.scaler_.transform(X) if self.scaler_ is not None else X.astype(np.float32)

    def fit(self, X, y=None):
        """Fit the detector on ``X`` (``y`` is ignored); returns self."""
        X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan", ensure_min_samples=2)
        self._set_n_classes(y)
        self.scaler_ = MinMaxScaler01().fit(X) if self.preprocessing else None
        Xs = self._scaled(X)
        self.detector_ = self._estimator(X.shape[1], X.shape[0]).fit(Xs)
        self.lam_ = self.detector_.lam_
        self.decision_scores_ = self.detector_.decision_function(Xs)
        self._process_decision_scores()  # PyOD's quantile rule, and what predict_proba(method="unify") uses
        if self.penalty in ROW_PENALTIES:  # the rows S flags instead (module docstring)
            self.threshold_ = 0.0
            self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)
        return self

    def decision_function(self, X):
        """Outlier scores of ``X``: higher is more abnormal, > 0 flagged (with a penalty)."""
        check_is_fitted(self, ["detector_", "decision_scores_", "threshold_", "labels_"])
        return self.detector_.decision_function(self._scaled(X))

    def feature_contributions(self, X):
        """Each feature's share of each row's anomaly
        (:meth:`~rda_cli.estimator.RobustAutoencoder.feature_contributions`, on the scaled data)."""
        check_is_fitted(self, ["detector_"])
        return self.detector_.feature_contributions(self._scaled(X))
