"""``RobustAutoencoder``: the Robust Deep Autoencoder of Zhou & Paffenroth (KDD 2017) as a scikit-learn estimator.

The data ``X`` is split as ``X = L_D + S``: ``L_D`` is what a deep autoencoder reconstructs well,
``S`` is sparse (element noise for the l1 penalty, whole outlying rows or corrupted columns for
the l2,1 penalties). This module holds the parameters, ``fit`` and the scoring API; the
alternating loop is :func:`rda_cli.solver.alternate`, the files :mod:`rda_cli.persistence`, the
missing-value rules :mod:`rda_cli.missing` (see ``docs/design.md``).
"""

from __future__ import annotations

import contextlib
import math
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import RdaError
from .missing import check_observed, fill_missing, observed_mask, row_norms
from .persistence import MAX_THRESHOLD, NetworkState, network_size_problem
from .scoring import ROW_PENALTIES, ScoringMixin, fingerprint
from .solver import BankOfOne, Schedule, SparsePart, alternate

__all__ = ["RobustAutoencoder", "effective_threshold", "default_layers", "start_fits", "fit_alternating",
           "REINIT_MIN_EPOCHS", "ROW_PENALTIES"]

PENALTIES = ("l1", "l21_rows", "l21_cols", None)
SCALINGS = ("paper", "absolute")

REINIT_MIN_EPOCHS = 30
F32_SQUARES_MAX = 1e37  # the most the squares of a fit's X may sum to (float32's largest value is 3.4e38)
"""``reinitialize="auto"`` re-draws the network every outer iteration when ``inner_epochs`` is at
least this: an outer iteration then trains a fresh network long enough to fit the inliers. With
fewer epochs a re-drawn network is still far from converged when ``S`` is updated, and ``S``
absorbs what it has not learnt yet (on the synthetic manifold of the tests, 12 outer x 15 epochs:
F1 1.00 with continued training, 0.85 with re-drawing)."""


class _NumberInterval(Interval):
    """scikit-learn's :class:`Interval`, less booleans: ``True`` is an int to Python, not a count or a weight."""

    def is_satisfied_by(self, val):
        return not isinstance(val, (bool, np.bool_)) and super().is_satisfied_by(val)


def default_layers(n_features):
    """Layer sizes used when ``layers`` is None: two hidden layers of about 1/2 and 1/4 the width.

    ``[d, max(2, ceil(d / 2)), max(1, ceil(d / 4))]``; e.g. 784 -> [784, 392, 196], 10 -> [10, 5, 3].
    """
    d = int(n_features)
    return [d, max(2, -(-d // 2)), max(1, -(-d // 4))]


def effective_threshold(X, penalty, lam, lambda_scaling="paper"):
    """The prox threshold that ``lam`` stands for on data ``X``.

    ``"paper"`` scaling follows the authors' public scripts, so that lambda values match the
    paper's figures: for l2,1 the threshold is ``lam * n_samples``; for l1 it is ``10 * lam / mu``
    with ``mu = X.size / (4 * ||X||_1)``, ``||X||_1`` being numpy's matrix 1-norm (largest column
    sum of ``|X|``). ``"absolute"`` uses ``lam`` itself.
    """
    if penalty is None:
        return 0.0
    if lambda_scaling == "absolute":
        return float(lam)
    if penalty == "l1":
        norm1 = float(np.linalg.norm(X, 1))
        if norm1 == 0:
            return 0.0
        mu = X.size / (4.0 * norm1)
        return float(10.0 * lam / mu)
    return float(lam) * X.shape[0]


def check_float32_range(X, chunk=1 << 16):
    """Refuse ``X`` (float32, NaN: missing) whose squared values sum above :data:`F32_SQUARES_MAX`: the
    network, the prox step and the scores square and sum it in float32, where it would overflow to inf.
    Summed in float64, ``chunk`` rows at a time."""
    total = 0.0
    for start in range(0, X.shape[0], chunk):
        block = X[start:start + chunk].astype(np.float64)
        total += float(np.nansum(block * block))
    if not total <= F32_SQUARES_MAX:
        raise RdaError(f"X is too large for the network's float32 arithmetic: its squared values sum to {total:.3g}, "
                       f"above {F32_SQUARES_MAX:g}; scale it first (e.g. each column to [0, 1], as rda detect does)")


def _check_layers(layers, width):
    """Refuse ``layers`` that are not at least two positive integers starting with ``width``."""
    if len(layers) < 2 or any(isinstance(d, bool) or not isinstance(d, (Integral, np.integer)) or d < 1
                              for d in layers):
        raise RdaError(f"layers must be a list of at least two positive integers (input width first), got {layers!r}")
    if int(layers[0]) != width:
        raise RdaError(f"X has {width} features but layers[0] is {layers[0]}; "
                       "the first layer size must equal the input width")


class RobustAutoencoder(ScoringMixin, OutlierMixin, TransformerMixin, BaseEstimator):
    """Robust Deep Autoencoder: a deep autoencoder plus a sparse matrix ``S`` of what it cannot fit.

    Parameters
    ----------
    layers : list of int or None, default=None
        Layer sizes including the input width, e.g. ``[784, 400, 200]``; None: :func:`default_layers`.
    penalty : {"l21_rows", "l1", "l21_cols"} or None, default="l21_rows"
        Sparsity penalty on ``S``: l2,1 over rows (outlying rows), l1 (single bad cells) or l2,1 over
        columns (corrupted features). None trains the plain autoencoder through the same loop with
        ``S = 0``. Rows are flagged by ``"l21_rows"`` and ``"l1"`` only; ``"l21_cols"`` flags columns.
    lam : float, default=0.00065
        Penalty weight lambda (>= 0). To choose it for a target fraction of flagged rows, see
        :func:`rda_cli.selection.lambda_for_fraction`; without labels, :mod:`rda_cli.selection`.
    lambda_scaling : {"paper", "absolute"}, default="paper"
        How ``lam`` becomes the prox threshold; see :func:`effective_threshold`.
    outer_iterations : int, default=20
        Maximum number of alternating (outer) iterations.
    inner_epochs : int, default=50
        Autoencoder training epochs per outer iteration.
    batch_size : int, default=133
    max_steps_per_epoch : int or None, default=None
        An int: an epoch takes at most this many mini-batches of a fresh random row order (None: all rows).
    learning_rate : float, default=0.001
        Adam's learning rate.
    tol : float, default=1e-7
        Convergence tolerance on ``c1`` and ``c2``.
    tied : bool, default=True
        Decoder kernels tied to the encoder's (transposed).
    reinitialize : bool or "auto", default="auto"
        True: re-draw the weights and reset Adam every outer iteration, as the authors' outlier
        script does. "auto": True when ``inner_epochs >= REINIT_MIN_EPOCHS`` (30), else False.
        The resolved value is ``reinitialize_``.
    warm_start : bool, default=False
        When fitted already on data of the same shape, start the next ``fit`` from the fitted
        network and ``S_`` (Adam reset), as along a lambda path. A state fitted elsewhere is given
        with :meth:`set_warm_state`.
    random_state : int or None, default=None
        Seeds the weights and the mini-batch order (None draws a seed).
    verbose : int, default=0
        1 prints one line per outer iteration.

    Attributes
    ----------
    network_ : NetworkState
        The fitted network's weights (numpy arrays); see :meth:`get_weights`.
    layers_ : list of int
    reinitialize_ : bool
    prox_threshold_ : float
        The prox threshold used (:func:`effective_threshold` of ``lam_``).
    threshold_ : float
        PyOD's cut-off, 0.0: ``labels_ == (decision_scores_ > threshold_)``.
    lam_ : float
        ``lam``.
    L_, S_ : ndarray of shape (n_samples, n_features)
        The reconstruction ``L_D`` (imputed values at missing entries) and the sparse part.
    n_iter_ : int
    history_ : list of dict
        One record per outer iteration (:func:`rda_cli.solver.record`).
    decision_scores_ : ndarray of shape (n_samples,)
        Row norms of ``S_`` for the row penalties (0 for rows not flagged); 0 for ``l21_cols`` and None.
    residual_scores_ : ndarray of shape (n_samples,)
        Row norms of ``X - L_``, a threshold-free score.
    outlier_mask_ : ndarray of bool, shape (n_samples,)
        Rows flagged: non-zero rows of ``S_`` for the row penalties; none for ``l21_cols`` and None.
    labels_ : ndarray of int, shape (n_samples,)
        ``outlier_mask_`` as 0 / 1, as PyOD names it.
    column_scores_ : ndarray of shape (n_features,)
        Column norms of ``S_``.
    column_mask_ : ndarray of bool, shape (n_features,)
        Columns flagged: non-zero columns of ``S_`` for ``l21_cols``; none for the other penalties.
    n_features_in_ : int

    See Also
    --------
    rda_cli.stacked.fit_lambda_path : K lambdas fitted side by side in one trainer.
    rda_cli.pyod_detector.RDA : this estimator as a PyOD detector, with scaling.
    sklearn.ensemble.IsolationForest : a tree-based outlier detector of the same API.

    Notes
    -----
    :meth:`predict` is scikit-learn's (+1 inlier, -1 outlier); :meth:`decision_function` is PyOD's
    (higher is more abnormal; for the row penalties > 0 flagged, for ``l21_cols`` and None the residual
    row norm, a ranking that flags nothing), :meth:`score_samples` its negative. Missing values (NaN)
    are left out of the loss and the scores and imputed in ``L_``. Fitted state is numpy arrays
    only; computing runs on a compiled trainer the process caches per shape. ``docs/estimator.md``
    gives each of these rules in full.

    Examples
    --------
    >>> import numpy as np
    >>> from rda_cli import RobustAutoencoder
    >>> X = np.random.default_rng(0).random((200, 20)).astype("float32")
    >>> rda = RobustAutoencoder(layers=[20, 10, 5], lam=0.001, outer_iterations=2,
    ...                         inner_epochs=2, random_state=0).fit(X)
    >>> rda.S_.shape
    (200, 20)
    """

    _parameter_constraints: dict = {
        "layers": [list, tuple, None],
        "penalty": [StrOptions({"l21_rows", "l1", "l21_cols"}), None],
        "lam": [_NumberInterval(Real, 0, None, closed="left")],
        "lambda_scaling": [StrOptions(set(SCALINGS))],
        "outer_iterations": [_NumberInterval(Integral, 1, None, closed="left")],
        "inner_epochs": [_NumberInterval(Integral, 1, None, closed="left")],
        "batch_size": [_NumberInterval(Integral, 1, None, closed="left")],
        "max_steps_per_epoch": [_NumberInterval(Integral, 1, None, closed="left"), None],
        "learning_rate": [_NumberInterval(Real, 0, None, closed="neither")],
        "tol": [_NumberInterval(Real, 0, None, closed="left")],
        "tied": ["boolean"],
        "reinitialize": ["boolean", StrOptions({"auto"})],
        "warm_start": ["boolean"],
        "random_state": [_NumberInterval(Integral, 0, None, closed="left"), None],
        "verbose": ["verbose"],
    }

    def __init__(self, *, layers=None, penalty="l21_rows", lam=0.00065, lambda_scaling="paper",
                 outer_iterations=20, inner_epochs=50, batch_size=133, max_steps_per_epoch=None, learning_rate=0.001,
                 tol=1e-7, tied=True, reinitialize="auto", warm_start=False, random_state=None, verbose=0):
        self.layers = layers
        self.penalty = penalty
        self.lam = lam
        self.lambda_scaling = lambda_scaling
        self.outer_iterations = outer_iterations
        self.inner_epochs = inner_epochs
        self.batch_size = batch_size
        self.max_steps_per_epoch = max_steps_per_epoch
        self.learning_rate = learning_rate
        self.tol = tol
        self.tied = tied
        self.reinitialize = reinitialize
        self.warm_start = warm_start
        self.random_state = random_state
        self.verbose = verbose

    # ------------------------------------------------------------------ validation and set-up
    def _check_X(self, X, reset):
        """``X`` validated as float32 (NaN allowed); a fit needs 2 rows, scoring 1."""
        X = validate_data(self, X, reset=reset, dtype=np.float32, ensure_min_samples=2 if reset else 1,
                          ensure_all_finite="allow-nan")
        check_observed(X, columns=reset)
        if reset:
            check_float32_range(X)
            if self.layers is not None:
                _check_layers(self.layers, X.shape[1])
        return X

    def _resolved_reinitialize(self):
        if self.reinitialize == "auto":
            return self.inner_epochs >= REINIT_MIN_EPOCHS
        return bool(self.reinitialize)

    def _start(self, X):
        """Settle what a fit on ``X`` (complete or filled) uses: layers, threshold, schedule."""
        self.layers_ = [int(d) for d in (self.layers if self.layers is not None else default_layers(X.shape[1]))]
        problem = network_size_problem(self.layers_)
        if problem and self.layers is None:  # the limits load() applies: refused before TensorFlow builds anything
            raise RdaError(f"the default network for {X.shape[1]:,} columns, {self.layers_}: {problem}; give "
                           "narrower hidden `layers`")
        if problem:
            raise RdaError(f"`layers` {self.layers_[1:]}: {problem}")
        self.lam_ = float(self.lam)
        self.prox_threshold_ = effective_threshold(X, self.penalty, self.lam, self.lambda_scaling)
        if not (math.isfinite(self.prox_threshold_) and self.prox_threshold_ <= MAX_THRESHOLD):
            raise RdaError(f"`lam` {self.lam:g}: its prox threshold {self.prox_threshold_:g} on this data is above "
                           f"{MAX_THRESHOLD:g} (no row or column norm of [0, 1]-scaled data comes near it: nothing "
                           "would be flagged); choose a smaller lam")
        self.reinitialize_ = self._resolved_reinitialize()
        self.history_ = []

    def _sparse_step(self):
        """This model's S-step for the solver (penalty and threshold)."""
        return SparsePart(self.penalty, self.prox_threshold_, f"lam={self.lam:g}")

    def _schedule(self):
        return Schedule(int(self.outer_iterations), int(self.inner_epochs), self.reinitialize_,
                        self.max_steps_per_epoch, float(self.tol), int(self.verbose))

    def _seed(self):
        """``random_state``, or a fresh seed when it is None."""
        if self.random_state is None:
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(self.random_state)

    # ------------------------------------------------------------------ the trainer
    @contextlib.contextmanager
    def _trainer(self, fit_seed=None, warm_weights=None):
        """The process's cached compiled trainer for these settings, locked (the one way in).

        Without ``fit_seed`` it holds this estimator's fitted network. With it, it is reseeded and
        freshly drawn (then given ``warm_weights``, Adam reset) for a fit, and afterwards marked as
        holding the network that fit produced.
        """
        from .autoencoder import cached_trainer

        trainer = cached_trainer(self.layers_, self.tied, self.learning_rate, self.batch_size)
        with trainer.lock:
            if fit_seed is None:
                trainer.load(self.network_)
                yield trainer
                return
            trainer.loaded = None  # its weights are about to change: they are nobody's until the fit ends
            trainer.learning_rate = self.learning_rate  # a variable of the trainer (shared by every rate)
            trainer.reseed(fit_seed)
            trainer.reinitialize()
            if warm_weights is not None:
                trainer.set_weights(warm_weights)
                trainer.reset_optimizer()
            yield trainer
            trainer.loaded = self.network_  # what it holds now: the network just fitted

    def _use_xla(self, trainer, n_samples):
        """Whether this fit's training loop is compiled with XLA: by the fit's mini-batch steps in all
        (:data:`~rda_cli.autoencoder.XLA_MIN_STEPS`), so that the choice depends on the fit alone."""
        steps = trainer.steps_per_epoch(n_samples, self.max_steps_per_epoch)
        return trainer.use_xla(self.outer_iterations * self.inner_epochs * steps)

    # ------------------------------------------------------------------ fitting
    def set_warm_state(self, S, L, weights):
        """Give the next :meth:`fit` (on data of its shape) a fitted state to continue from, e.g. read
        from a file. Kept privately and used once; ``warm_start`` is left as it is, so ``clone`` carries
        no flag without its state.

        Parameters
        ----------
        S, L : ndarray of shape (n_samples, n_features)
            ``S_`` and ``L_`` of that fit (``L + S`` is where the first ``c2`` is measured from).
        weights : list of ndarray
            Its network's weights, as :meth:`get_weights` gives them.

        Returns
        -------
        self : RobustAutoencoder
        """
        self._warm_state = (np.asarray(S, np.float32), np.asarray(L, np.float32), [np.asarray(w) for w in weights])
        return self

    def get_weights(self):
        """The fitted network's weights (copies), in :class:`~rda_cli.autoencoder.DeepAutoencoder` order."""
        check_is_fitted(self, "network_")
        return [w.copy() for w in self.network_.weights]

    def _initial_state(self, X):
        """``(S, LS_prev, weights)`` to start from: a given warm state, or with ``warm_start`` the fitted
        one, if of ``X``'s shape; else None."""
        given = self.__dict__.pop("_warm_state", None)
        if given is not None:
            S, L, weights = given
        elif self.warm_start and getattr(self, "network_", None) is not None and getattr(self, "S_", None) is not None:
            S, L, weights = self.S_, self.L_, self.network_.weights
        else:
            return None
        if S.shape != X.shape:
            return None
        return S.copy(), L + S, weights

    def _start_state(self, X):
        """``(S, LS_prev, weights)`` a fit on ``X`` starts from: :meth:`_initial_state`, or ``S = 0``, ``L + S`` the
        filled ``X`` and freshly drawn weights (None)."""
        init = self._initial_state(X)
        return init if init is not None else (np.zeros_like(X), fill_missing(X).copy(), None)

    def fit(self, X, y=None):
        """Run the alternating algorithm on ``X``; ``y`` is ignored.

        Returns
        -------
        self : RobustAutoencoder
        """
        X = start_fits(X, [self])
        S, LS_prev, weights = self._start_state(X)
        with self._trainer(self._seed(), weights) as trainer:
            bank = BankOfOne(trainer, self._use_xla(trainer, X.shape[0]))
            fit_alternating(X, [self], bank, S[None], LS_prev[None])
        return self

    def _set_fitted(self, X, result):
        """Keep a fit's :class:`~rda_cli.solver.SolverResult` on ``X`` and derive the scores."""
        self.history_ = result.history
        self.n_iter_ = len(result.history)
        self.network_ = NetworkState(self.layers_, self.tied, result.weights)
        self.L_, self.S_ = result.L, result.S
        self._observed = observed_mask(X)
        R = X - self.L_ if self._observed is None else np.where(self._observed, X - self.L_, 0)
        self.residual_scores_ = row_norms(R, self._observed).astype(np.float64)
        self._train_fingerprint = fingerprint(X)
        self._set_sparse_scores()

    def _set_sparse_scores(self):
        """The attributes derived from ``S_`` (and the training mask) alone (also rebuilt on load)."""
        n, d = self.S_.shape
        rows = self.penalty in ROW_PENALTIES
        self.decision_scores_ = (row_norms(self.S_, self._observed).astype(np.float64) if rows
                                 else np.zeros(n))
        self.column_scores_ = np.sqrt(np.einsum("ij,ij->j", self.S_, self.S_)).astype(np.float64)
        self.outlier_mask_ = np.count_nonzero(self.S_, axis=1) > 0 if rows else np.zeros(n, bool)
        self.column_mask_ = self.column_scores_ > 0 if self.penalty == "l21_cols" else np.zeros(d, bool)
        self.labels_ = self.outlier_mask_.astype(int)
        self.threshold_ = 0.0  # PyOD's cut-off: decision_scores_ is 0 exactly where no row is flagged

    # ------------------------------------------------------------------ persistence
    def save(self, path, training_data=True):
        """Save the fitted model into folder ``path`` (``network.keras``, ``arrays.npz``, ``params.json``).

        ``training_data=False``: without ``L_`` and ``S_`` (a folder of the network's size, not the data's);
        the loaded model then scores every row as new data and has no ``S_``, ``L_`` or training scores.
        Atomic: written into a temporary folder next to ``path``, then renamed; an existing ``path``
        is replaced only if it is a model folder. No pickle is used (:mod:`rda_cli.persistence`).
        """
        from .persistence import save_model

        check_is_fitted(self, "network_")
        arrays = {f"weights[{i}]": w for i, w in enumerate(self.network_.weights)}
        for name in ("L_", "S_", "residual_scores_"):
            if training_data and getattr(self, name, None) is not None:
                arrays[name] = getattr(self, name)
        bad = next((k for k, a in arrays.items() if not np.isfinite(a).all()), None)
        if bad is not None:  # load() refuses such a folder: none is written
            raise RdaError(f"the fitted {bad} holds NaN or infinite values; the model is not saved")
        with self._trainer() as net:
            return save_model(self, path, net.model, training_data)

    @classmethod
    def load(cls, path):
        """Load a model written by :meth:`save`, checking every field before trusting it; raises
        :class:`~rda_cli.persistence.ModelFileError` (one line) for a damaged or untrusted folder."""
        from .persistence import load_model

        return load_model(cls, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = True  # missing values (docs/estimator.md)
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float32"]  # the network computes in float32
        return tags


def start_fits(X, models):
    """Validate the models' parameters and ``X``, and settle what each fit uses (layers, threshold,
    schedule); returns ``X`` as validated (float32)."""
    for m in models:
        m._validate_params()
    X = models[0]._check_X(X, reset=True)
    filled = fill_missing(X)
    for m in models:
        if m is not models[0]:
            m._check_X(X, reset=True)
        m._start(filled)
    return X


def fit_alternating(X, models, bank, S, LS_prev):
    """Fit ``models`` (started on ``X`` by :func:`start_fits`, sharing ``models[0]``'s schedule, differing
    in ``lam``) with :func:`rda_cli.solver.alternate` on ``bank``; each keeps its result."""
    results = alternate(X, [m._sparse_step() for m in models], bank, models[0]._schedule(), S, LS_prev)
    for m, result in zip(models, results):
        m._set_fitted(X, result)
