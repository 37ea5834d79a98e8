"""``RobustAutoencoder``: the Robust Deep Autoencoder of Zhou & Paffenroth (KDD 2017).

The data ``X`` is split as ``X = L_D + S``: ``L_D`` is what a deep autoencoder reconstructs well,
``S`` is sparse (element noise for the l1 penalty, whole outlying rows or corrupted columns for
the l2,1 penalties). Training alternates, as in section 4.1 of the paper:

1. ``L_D = X - S``; train the autoencoder on ``L_D`` for ``inner_epochs`` epochs;
2. ``L_D = D(E(L_D))``;
3. ``S = prox(X - L_D)`` with the penalty's proximal operator;
4. stop when ``c1 = ||X - L_D - S|| / ||X||`` or ``c2 = ||LS_prev - L_D - S|| / ||X||``
   falls below ``tol``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
import zipfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin, TransformerMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .progress import outer_iteration
from .safeio import replace_dir
from .prox import l1_shrink, l21_shrink, penalty_value

__all__ = ["RobustAutoencoder", "NetworkState", "ModelFileError", "effective_threshold", "default_layers",
           "REINIT_MIN_EPOCHS"]

MAX_LAYER_WIDTH = 1_000_000  # a saved network wider than this is refused by RobustAutoencoder.load
MAX_PARAMETERS = 200_000_000  # ... and so is one with more weights than this (0.8 GB of float32)


class ModelFileError(ValueError):
    """A saved model folder that cannot be trusted or read; the message is one line."""

PENALTIES = ("l1", "l21_rows", "l21_cols", None)
SCALINGS = ("paper", "absolute")

REINIT_MIN_EPOCHS = 30
"""``reinitialize="auto"`` re-draws the network every outer iteration when ``inner_epochs`` is at
least this: an outer iteration then trains a fresh network long enough to fit the inliers. With
fewer epochs a re-drawn network is still far from converged when ``S`` is updated, and ``S``
absorbs what it has not learnt yet (on the synthetic manifold of the tests, 12 outer x 15 epochs
with re-drawing gives F1 0.3, continued training 1.0)."""


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


class NetworkState:
    """A fitted network as plain numpy arrays: what a :class:`RobustAutoencoder` owns.

    Holds no TensorFlow object, so it pickles, copies and travels between processes as it is.

    Parameters
    ----------
    layer_sizes : list of int
        Sizes including the input width (:class:`~rda_cli.autoencoder.DeepAutoencoder`'s).
    tied : bool
    weights : list of ndarray
        In :meth:`DeepAutoencoder.get_weights` order: encoder kernels, encoder biases, decoder
        kernels (untied only), decoder biases.
    """

    def __init__(self, layer_sizes, tied, weights):
        self.layer_sizes = [int(d) for d in layer_sizes]
        self.tied = bool(tied)
        self.weights = [np.array(w, dtype=np.float32) for w in weights]

    def __repr__(self):
        return f"NetworkState(layer_sizes={self.layer_sizes}, tied={self.tied})"


class RobustAutoencoder(OutlierMixin, TransformerMixin, BaseEstimator):
    """Robust Deep Autoencoder: a deep autoencoder plus a sparse matrix ``S`` of what it cannot fit.

    Parameters
    ----------
    layers : list of int or None, default=None
        Layer sizes including the input width, e.g. ``[784, 400, 200]``. None derives them from
        the width with :func:`default_layers`.
    penalty : {"l21_rows", "l1", "l21_cols"} or None, default="l21_rows"
        Sparsity penalty on ``S``: l2,1 over rows (outlying instances), l1 (element noise) or l2,1
        over columns (corrupted features). None trains the plain autoencoder through the same loop
        with ``S`` fixed at zero (the paper's baseline).
    lam : float, default=0.00065
        Penalty weight lambda (>= 0). Ignored when ``contamination`` is given.
    contamination : float in (0, 0.5) or None, default=None
        None: ``lam`` decides which rows are flagged. A fraction: lambda is searched for so that
        about that fraction of the training rows (of the columns, for ``l21_cols``) is flagged
        (:func:`~rda_cli.selection.lambda_for_contamination`: a pilot fit of the plain
        autoencoder, then a bisection on log lambda, one full fit per step, at most 8); the
        lambda found is ``lam_``.
    lambda_scaling : {"paper", "absolute"}, default="paper"
        How ``lam`` becomes the prox threshold; see :func:`effective_threshold`.
    outer_iterations : int, default=20
        Maximum number of alternating (outer) iterations.
    inner_epochs : int, default=50
        Autoencoder training epochs per outer iteration.
    batch_size : int, default=133
    max_steps_per_epoch : int or None, default=None
        None: an epoch visits every row. An int: an epoch takes at most this many mini-batches, drawn
        from a fresh random order of the rows, so that the cost of an epoch stops growing with the
        rows (on a million rows with 256 x 1024, an epoch visits a random quarter of them). ``rda
        detect`` sets it for large tables (see ``docs/performance.md``).
    learning_rate : float, default=0.001
        Adam's learning rate.
    tol : float, default=1e-7
        Convergence tolerance on ``c1`` and ``c2``.
    tied : bool, default=True
        Decoder kernels tied to the encoder's (transposed).
    reinitialize : bool or "auto", default="auto"
        True: re-draw the weights and reset Adam at the start of every outer iteration, as the
        authors' outlier script does (trained continuously for their 20 x 50 epochs the network
        learns the outliers too and ``S`` collapses to zero). False: keep training the same
        network. "auto": True when ``inner_epochs >= REINIT_MIN_EPOCHS`` (30), else False: on a
        shorter schedule a re-drawn network has not fitted the inliers yet when ``S`` is updated.
        The defaults (20 x 50) re-draw, as the authors did. The resolved value is
        ``reinitialize_``.
    warm_start : bool, default=False
        When fitted already (on data of the same shape), start the next ``fit`` from the fitted
        network and ``S_`` instead of from scratch, as along a lambda path: ``set_params(lam=...)``
        then ``fit`` again. Adam's state is reset. With re-drawing (``reinitialize_``) only the
        first outer iteration starts from the fitted network. A state fitted elsewhere (another
        process, a file) is given with :meth:`set_warm_state`.
    random_state : int or None, default=None
        Seeds the weights and the mini-batch order (None draws a seed).
    verbose : int, default=0
        1 prints one line per outer iteration.

    Attributes
    ----------
    network_ : NetworkState
        The fitted network's weights (numpy arrays, owned by this estimator); see
        :meth:`get_weights`.
    layers_ : list of int
        The layer sizes used.
    reinitialize_ : bool
        Whether the network was re-drawn every outer iteration (``reinitialize`` resolved).
    prox_threshold_ : float
        The effective prox threshold used (:func:`effective_threshold` of ``lam``). Saved models of
        earlier versions called it ``threshold_``; :meth:`load` reads both.
    threshold_ : float
        PyOD's cut-off on ``decision_scores_``: ``labels_ == (decision_scores_ > threshold_)``.
        ``decision_scores_`` is 0 exactly for the rows that ``S`` leaves at zero, so the cut-off is
        0.0: the flagged rows are those that ``S`` flags, with any ``penalty`` (the plain
        autoencoder flags none).
    lam_ : float
        The lambda of the fit: ``lam``, or the one found for ``contamination``.
    contamination_search_ : dict
        With ``contamination``: the search's ``target`` count, ``tolerance`` and ``steps``
        (``lam``, ``threshold``, ``flagged`` per fit); see
        :func:`~rda_cli.selection.lambda_for_contamination`.
    L_ : ndarray of shape (n_samples, n_features)
        The low-dimensional part ``L_D`` (the autoencoder's reconstruction). At missing entries of
        ``X`` (NaN) it holds their imputed values.
    S_ : ndarray of shape (n_samples, n_features)
        The sparse part.
    n_iter_ : int
        Outer iterations run.
    history_ : list of dict
        One record per outer iteration: ``reconstruction_error`` (Frobenius norm of
        ``(X - S) - D(E(X - S))``), ``penalty``, ``objective`` (reconstruction error plus
        threshold times penalty), ``c1``, ``c2``, ``nonzero_entries``, ``nonzero_groups``,
        ``loss`` (last training epoch's mean squared error) and ``seconds``.
    decision_scores_ : ndarray of shape (n_samples,)
        Row norms of ``S_``: the training rows' outlier scores (higher is more abnormal); 0 for
        rows not flagged. With missing values a row's norm is taken over its observed entries and
        multiplied by ``sqrt(n_features / n_observed)``.
    residual_scores_ : ndarray of shape (n_samples,)
        Row norms of ``X - L_``, a threshold-free score (observed entries only, normalised in the
        same way).
    outlier_mask_ : ndarray of bool, shape (n_samples,)
        Rows of ``S_`` that are non-zero.
    labels_ : ndarray of int, shape (n_samples,)
        ``outlier_mask_`` as 0 (inlier) / 1 (outlier), as PyOD names it.
    column_scores_ : ndarray of shape (n_features,)
        Column norms of ``S_`` (for ``penalty="l21_cols"`` the corrupted features).
    n_features_in_ : int

    Notes
    -----
    **Signs.** :meth:`predict` follows scikit-learn's ``OutlierMixin``: +1 inlier, -1 outlier (a row
    whose ``S`` row is non-zero). :meth:`decision_function` follows PyOD instead: higher is more
    abnormal and > 0 means flagged, so that it reads as the size of the sparse part (scikit-learn's
    own outlier detectors return the opposite sign, < 0 for outliers). :meth:`score_samples` is
    its negative, as scikit-learn's (lower is more abnormal). ``predict(X) == -1`` exactly where
    ``decision_function(X) > 0``. The ``rda`` command's ``scores.csv`` uses
    ``decision_function``. scikit-learn's estimator checks that assume its sign are skipped in
    ``tests/test_sklearn_api.py``, each with its reason.

    **Missing values.** ``X`` may hold NaN (not inf) in :meth:`fit`, :meth:`transform`,
    :meth:`decision_function` and the other methods. With ``M`` the mask of observed entries,
    training minimises the squared error over observed entries only, the network's input holds the
    current reconstruction at missing entries (column means at the start), and the residual that
    the prox shrinks is zero there, so ``S_`` is zero at missing entries and ``L_`` holds their
    imputed values (:meth:`impute`). For l2,1 penalties a group with ``m`` of its ``n`` entries
    observed is shrunk with the threshold ``prox_threshold_ * sqrt(m / n)``, and row scores are
    norms over observed entries times ``sqrt(n_features / m)``: a row is not less abnormal for
    having fewer entries. A training row or column with nothing observed raises ValueError; on new
    data a row with nothing observed does. Data without NaN takes exactly the path it took before
    missing values were supported.

    **State and threads.** Everything fitted is this object's own: numpy arrays (``network_``,
    ``S_``, ``L_``...), which pickle and copy with it. Training and scoring run on a compiled
    TensorFlow trainer that the process keeps as a cache, one per (layers, tied, learning_rate,
    batch_size): fits and sweeps of one shape reuse its traced training loop (no retracing per
    fit), and the estimator's weights are loaded into it when another estimator used it since.
    The trainer has a lock: estimators may be used from several threads, but their work on one
    cached trainer runs one at a time. For parallel fits use processes.

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
        "contamination": [_NumberInterval(Real, 0, 0.5, closed="neither"), None],
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

    def __init__(
        self,
        *,
        layers=None,
        penalty="l21_rows",
        lam=0.00065,
        contamination=None,
        lambda_scaling="paper",
        outer_iterations=20,
        inner_epochs=50,
        batch_size=133,
        max_steps_per_epoch=None,
        learning_rate=0.001,
        tol=1e-7,
        tied=True,
        reinitialize="auto",
        warm_start=False,
        random_state=None,
        verbose=0,
    ):
        self.layers = layers
        self.penalty = penalty
        self.lam = lam
        self.contamination = contamination
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

    # ------------------------------------------------------------------ validation
    def _check_X(self, X, reset):
        X = validate_data(self, X, reset=reset, dtype=np.float32, ensure_min_samples=2,
                          ensure_all_finite="allow-nan")
        check_observed(X, columns=reset)
        if reset and self.layers is not None:
            layers = list(self.layers)
            if len(layers) < 2 or any(
                isinstance(d, bool) or not isinstance(d, (Integral, np.integer)) or d < 1 for d in layers
            ):
                raise ValueError(
                    f"layers must be a list of at least two positive integers (input width first), got {self.layers!r}"
                )
            if int(layers[0]) != X.shape[1]:
                raise ValueError(
                    f"X has {X.shape[1]} features but layers[0] is {self.layers[0]}; "
                    "the first layer size must equal the input width"
                )
        return X

    def _resolved_reinitialize(self):
        if self.reinitialize == "auto":
            return self.inner_epochs >= REINIT_MIN_EPOCHS
        return bool(self.reinitialize)

    def _start(self, X):
        """Settle what a fit on ``X`` (complete or filled) uses before the loop: layers, threshold,
        schedule, history."""
        self.layers_ = list(self.layers) if self.layers is not None else default_layers(X.shape[1])
        self.layers_ = [int(d) for d in self.layers_]
        self.lam_ = float(self.lam)
        self.prox_threshold_ = effective_threshold(X, self.penalty, self.lam, self.lambda_scaling)
        self.reinitialize_ = self._resolved_reinitialize()
        self.history_ = []

    # ------------------------------------------------------------------ fitting
    def _prox(self, R, mask=None):
        """The penalty's proximal operator applied to the residual ``R`` in place; returns ``R``.

        With ``mask`` (observed entries; ``R`` is zero elsewhere) an l2,1 group with ``m`` of ``n``
        entries observed is shrunk with the threshold ``prox_threshold_ * sqrt(m / n)`` (see Notes).
        """
        if self.penalty is None:
            R.fill(0)
            return R
        if self.penalty == "l1":
            return l1_shrink(R, self.prox_threshold_, out=R)
        groups = "rows" if self.penalty == "l21_rows" else "columns"
        if mask is None:
            return l21_shrink(R, self.prox_threshold_, groups, out=R)
        scale = observed_scale(mask, axis=1 if groups == "rows" else 0)
        scale = scale[:, None] if groups == "rows" else scale[None, :]
        R *= scale
        l21_shrink(R, self.prox_threshold_, groups, out=R)
        R /= scale
        return R

    def _seed(self):
        """``random_state``, or a fresh seed when it is None."""
        if self.random_state is None:
            return int(np.random.SeedSequence().generate_state(1)[0])
        return int(self.random_state)

    def _trainer(self):
        """The process's cached compiled trainer for this estimator's settings (see Notes)."""
        from .autoencoder import cached_trainer

        return cached_trainer(self.layers_, self.tied, self.learning_rate, self.batch_size)

    @contextlib.contextmanager
    def _net(self):
        """The cached trainer, locked, holding this estimator's fitted network."""
        trainer = self._trainer()
        with trainer.lock:
            trainer.load(self.network_)
            yield trainer

    def set_warm_state(self, S, L, weights):
        """Give the next :meth:`fit` a fitted state to continue from, and set ``warm_start=True``.

        For a state fitted elsewhere, e.g. read from a file: the next lambda of a path whose
        previous lambda ran in another process. A fitted estimator with ``warm_start=True``
        continues from its own state without this.

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
        self.warm_start = True
        return self

    def get_weights(self):
        """The fitted network's weights (copies), in :class:`~rda_cli.autoencoder.DeepAutoencoder` order."""
        check_is_fitted(self, "network_")
        return [w.copy() for w in self.network_.weights]

    def _initial_state(self, X):
        """``(S, LS_prev, weights)`` to start from: a warm state of the same shape, else None."""
        given = self.__dict__.pop("_warm_state", None)
        if not self.warm_start:
            return None
        if given is not None:
            S, L, weights = given
        elif getattr(self, "network_", None) is not None and getattr(self, "S_", None) is not None:
            S, L, weights = self.S_, self.L_, self.network_.weights
        else:
            return None
        if S.shape != X.shape:
            return None
        return S.copy(), L + S, weights

    def _use_xla(self, trainer, n_samples):
        """Whether this fit's training loop is compiled with XLA: by the fit's mini-batch steps in all
        (:data:`~rda_cli.autoencoder.XLA_MIN_STEPS`), so that the choice, and the numbers, depend on
        the fit alone and not on what the process ran before."""
        steps = trainer.steps_per_epoch(n_samples, self.max_steps_per_epoch)
        return trainer.use_xla(self.outer_iterations * self.inner_epochs * steps)

    @contextlib.contextmanager
    def _open_bank(self, seed, warm_weights, n_samples):
        """The cached trainer, locked, seeded and freshly drawn (then warm weights): a bank of one."""
        trainer = self._trainer()
        with trainer.lock:
            trainer.loaded = None  # its weights are about to change: they are nobody's until the fit ends
            trainer.reseed(seed)
            trainer.reinitialize()
            if warm_weights is not None:
                trainer.set_weights(warm_weights)
                trainer.reset_optimizer()
            yield _BankOfOne(trainer, self._use_xla(trainer, n_samples))
            trainer.loaded = self.network_  # what it holds now: the network just fitted

    def fit(self, X, y=None):
        """Run the alternating algorithm on ``X``; ``y`` is ignored.

        Returns
        -------
        self : RobustAutoencoder
        """
        if self.contamination is not None:
            return self._fit_contamination(X)
        X = start_fits(X, [self])
        init = self._initial_state(X)
        S, LS_prev, weights = init if init is not None else (np.zeros_like(X), fill_missing(X).copy(), None)
        with self._open_bank(self._seed(), weights, X.shape[0]) as bank:
            fit_alternating(X, [self], bank, S[None], LS_prev[None])
        return self

    def _fit_contamination(self, X):
        """``fit`` with ``contamination``: the lambda search, keeping the fit it chose (see the parameter)."""
        from sklearn.base import clone

        from .selection import lambda_for_contamination

        self._validate_params()
        if self.penalty is None:
            raise ValueError("contamination needs a penalty: the plain autoencoder (penalty=None) flags nothing")
        X = self._check_X(X, reset=True)
        base = clone(self).set_params(contamination=None, warm_start=False)

        def fit(lam, plain=False):
            return clone(base).set_params(lam=float(lam), penalty=None if plain else self.penalty).fit(X)

        unit = effective_threshold(fill_missing(X), self.penalty, 1.0, self.lambda_scaling) or 1.0
        model, lam, search = lambda_for_contamination(X, self.contamination, fit, self.penalty, unit)
        self.__dict__.update({k: v for k, v in model.__dict__.items()
                              if k.endswith("_") or (k.startswith("_") and not k.startswith("__"))})
        self.lam_ = float(lam)
        self.contamination_search_ = search
        return self

    def _set_fitted(self, X, L, S, weights):
        """Keep the final ``L``, ``S`` and network weights of a fit on ``X`` and derive the scores."""
        self.n_iter_ = len(self.history_)
        self.network_ = NetworkState(self.layers_, self.tied, weights)
        self.L_ = L
        self.S_ = S
        self._set_training_scores(X)

    def _record(self, it, X, L_in, L, S, LS_prev, norm_x, loss, seconds, scratch):
        """Append outer iteration ``it``'s record to ``history_`` (see the class docstring); return it.
        ``scratch``: an array of ``X``'s shape and dtype that the differences are computed in."""

        def distance(A, B, C=None):  # ||A - B - C||, without a new array
            np.subtract(A, B, out=scratch)
            if C is not None:
                np.subtract(scratch, C, out=scratch)
            return float(np.linalg.norm(scratch))

        rec = distance(L_in, L)
        pen = penalty_value(S, self.penalty)
        per_group = np.count_nonzero(S, axis=0 if self.penalty == "l21_cols" else 1)
        self.history_.append({
            "iteration": it + 1,
            "reconstruction_error": rec,
            "penalty": pen,
            "objective": rec + self.prox_threshold_ * pen,
            "c1": distance(X, L, S) / norm_x,
            "c2": distance(LS_prev, L, S) / norm_x,
            "nonzero_entries": int(per_group.sum()),
            "nonzero_groups": int(np.count_nonzero(per_group)),
            "loss": float(loss),
            "seconds": seconds,
        })
        return self.history_[-1]

    def _converged(self):
        """Whether the last outer iteration met the stopping rule (c1 or c2 below ``tol``)."""
        h = self.history_[-1]
        return h["c1"] < self.tol or h["c2"] < self.tol

    def _set_training_scores(self, X):
        self._observed = observed_mask(X)
        R = X - self.L_ if self._observed is None else np.where(self._observed, X - self.L_, 0)
        self.residual_scores_ = row_norms(R, self._observed).astype(np.float64)
        self._train_fingerprint = _fingerprint(X)
        self._set_sparse_scores()

    def _set_sparse_scores(self):
        """The attributes derived from ``S_`` (and the training mask) alone (also rebuilt by :meth:`load`)."""
        self.decision_scores_ = row_norms(self.S_, getattr(self, "_observed", None)).astype(np.float64)
        self.column_scores_ = np.sqrt(np.einsum("ij,ij->j", self.S_, self.S_)).astype(np.float64)
        self.outlier_mask_ = np.count_nonzero(self.S_, axis=1) > 0
        self.labels_ = self.outlier_mask_.astype(int)
        self.threshold_ = 0.0  # PyOD's cut-off: decision_scores_ is 0 exactly where S is (see threshold_)

    # ------------------------------------------------------------------ new data
    def _sparse_part(self, X, mask=None, n_iter=10):
        """``(S, L, X_filled)`` for data ``X`` with the network held fixed: iterate
        ``S = prox(X - D(E(X - S)))``; missing entries (``mask`` False) start at the training
        reconstruction's column means and take the reconstruction ``L`` at every step."""
        S = np.zeros_like(X)
        Xf = X if mask is None else fill_missing(X, mask, self.L_.mean(axis=0))
        with self._net() as net:
            for _ in range(n_iter):
                L = net.reconstruct(Xf - S)
                if mask is not None:
                    np.copyto(Xf, L, where=~mask)
                S_new = self._prox(Xf - L, mask)
                if np.array_equal(S_new, S):
                    break
                S = S_new
        return S, L, Xf

    def _decompose(self, X):
        """``(S, L, X_filled, mask)`` of validated ``X``: the fitted ones for the training data, else
        :meth:`_sparse_part`'s; ``mask`` is None when nothing is missing."""
        mask = observed_mask(X)
        if self._is_training_data(X):
            return self.S_, self.L_, (X if mask is None else np.where(mask, X, self.L_)), mask
        return (*self._sparse_part(X, mask), mask)

    def _is_training_data(self, X):
        return X.shape == self.S_.shape and _fingerprint(X) == self._train_fingerprint

    def _scores(self, X, parts=None):
        """``(scores, flagged)`` of validated ``X``; ``parts``: its :meth:`_decompose`, if already found."""
        S, L, Xf, mask = self._decompose(X) if parts is None else parts
        s_norm = row_norms(S, mask)
        flagged = np.any(S != 0, axis=1)
        R = Xf - L
        # Rows that the prox left at zero are ranked by how far they are from being flagged:
        # for l2,1 over rows that is ||r|| - threshold, for l1 max|r_ij| - threshold (both <= 0).
        if self.penalty == "l1":
            margin = np.abs(R).max(axis=1) - self.prox_threshold_
        else:
            margin = row_norms(R, mask) - self.prox_threshold_
        margin = np.minimum(margin, 0.0)
        return np.where(flagged, s_norm, margin).astype(np.float64), flagged

    def decision_function(self, X):
        """Outlier score of each row of ``X``: higher is more abnormal, > 0 means flagged (see Notes).

        For new data the network is held fixed and ``S = prox(X - D(E(X - S)))`` is iterated
        from ``S = 0`` (at most 10 times, stopping when ``S`` no longer changes). A row whose
        ``S`` row is non-zero scores the norm of that row. A row left at zero scores how far it
        is below the threshold (``||r|| - threshold`` for l2,1, ``max|r_ij| - threshold`` for
        l1, with ``r`` its residual), a value <= 0: so all rows are ranked even when ``S`` is all
        zero. The plain autoencoder (``penalty=None``) scores the residual row norm. On the
        training data this uses the fitted ``S_`` and ``L_``.
        """
        check_is_fitted(self, "S_")
        X = self._check_X(X, reset=False)
        if self.penalty is None:
            if observed_mask(X) is None:
                return np.linalg.norm(X - self.reconstruct(X), axis=1).astype(np.float64)
            _, L, Xf, mask = self._decompose(X)
            return row_norms(Xf - L, mask).astype(np.float64)
        return self._scores(X)[0]

    def feature_contributions(self, X, return_scores=False):
        """Each feature's share of each row's anomaly: the companion of :meth:`decision_function`.

        A row whose ``S`` row is non-zero (a flagged row) splits its squared ``S`` norm among its
        features: ``S_ij**2 / ||S_i||**2``. Any other row splits its squared residual ``X - L``
        (observed entries only) the same way. Shares are >= 0 and sum to 1 per row (0 for a row
        reconstructed exactly); missing entries get 0. ``S`` and ``L`` are found as in
        :meth:`decision_function` (the fitted ones on the training data).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_scores : bool, default=False
            Also return ``decision_function(X)``, from the same decomposition (one pass, not two).

        Returns
        -------
        contributions : ndarray of shape (n_samples, n_features)
        scores : ndarray of shape (n_samples,)
            Only with ``return_scores``.
        """
        check_is_fitted(self, "S_")
        X = self._check_X(X, reset=False)
        parts = self._decompose(X)
        S, L, Xf, mask = parts
        A = np.where(np.any(S != 0, axis=1)[:, None], S, Xf - L).astype(np.float64) ** 2
        total = A.sum(axis=1, keepdims=True)
        shares = np.divide(A, total, out=np.zeros_like(A), where=total > 0)
        if not return_scores:
            return shares
        if self.penalty is None:
            return shares, row_norms(Xf - L, mask).astype(np.float64)
        return shares, self._scores(X, parts)[0]

    def impute(self, X):
        """``X`` with its missing entries (NaN) replaced by the decomposition's ``L`` (``L_`` on the
        training data; for new data ``L`` is found as in :meth:`decision_function`)."""
        check_is_fitted(self, "S_")
        X = self._check_X(X, reset=False)
        mask = observed_mask(X)
        if mask is None:
            return X.copy()
        return np.where(mask, X, self._decompose(X)[1])

    def score_samples(self, X):
        """``-decision_function(X)``: lower is more abnormal (see Notes)."""
        return -self.decision_function(X)

    def predict(self, X):
        """+1 for inliers, -1 for outliers: rows whose ``S`` row is non-zero (see Notes)."""
        check_is_fitted(self, "S_")
        X = self._check_X(X, reset=False)
        if self.penalty is None:
            return np.ones(X.shape[0], dtype=int)
        flagged = self._scores(X)[1]
        return np.where(flagged, -1, 1)

    def fit_predict(self, X, y=None):
        """Fit on ``X`` and return the +1 / -1 labels of its rows (see Notes)."""
        self.fit(X)
        return np.where(self.outlier_mask_, -1, 1)

    def transform(self, X):
        """Innermost hidden features. For the training data these are the features of ``X - S_``,
        as the authors compute them; for new data those of ``X - S`` with ``S`` found as in
        :meth:`decision_function`."""
        check_is_fitted(self, "S_")
        X = self._check_X(X, reset=False)
        if self.penalty is None and observed_mask(X) is None and not self._is_training_data(X):
            S, Xf = 0.0, X
        else:
            S, _, Xf, _ = self._decompose(X)
        with self._net() as net:
            return net.encode(Xf - S)

    def fit_transform(self, X, y=None):
        return self.fit(X).transform(X)

    def reconstruct(self, X):
        """The autoencoder's reconstruction ``D(E(X))`` of ``X`` (missing entries imputed first, :meth:`impute`)."""
        check_is_fitted(self, "S_")
        X = self._check_X(X, reset=False)
        if observed_mask(X) is not None:
            X = self.impute(X)
        with self._net() as net:
            return net.reconstruct(X)

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save a fitted model into folder ``path``: ``network.keras``, ``arrays.npz``, ``params.json``.

        Atomic: the files are written into a temporary folder next to ``path``, which is then renamed;
        an existing ``path`` is replaced only if it is a model folder (it holds ``params.json``), and is
        put back if the rename fails. No pickle is used; :meth:`load` accepts files from untrusted sources.
        """
        import shutil
        import tempfile

        check_is_fitted(self, "S_")
        path = Path(path)
        if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / "params.json").is_file())):
            raise ValueError(f"{path} exists and is not a model folder; refusing to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            with self._net() as net:
                net.model.save(tmp / "network.keras")
            arrays = dict(L_=self.L_, S_=self.S_, residual_scores_=self.residual_scores_)
            if getattr(self, "_observed", None) is not None:
                arrays["observed_"] = self._observed
            np.savez(tmp / "arrays.npz", **arrays)
            meta = {
                "params": self.get_params(),
                "prox_threshold_": self.prox_threshold_,
                "lam_": getattr(self, "lam_", float(self.lam)),
                "layers_": self.layers_,
                "n_iter_": self.n_iter_,
                "n_features_in_": self.n_features_in_,
                "history_": self.history_,
                "train_fingerprint": self._train_fingerprint,
            }
            if hasattr(self, "reinitialize_"):
                meta["reinitialize_"] = self.reinitialize_
            (tmp / "params.json").write_text(json.dumps(meta, indent=1))
            replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path):
        """Load a model written by :meth:`save`, checking every field before trusting it.

        Raises :class:`ModelFileError` (one line) for a field of the wrong type, a network whose
        layer sizes differ from the saved arrays' or exceed :data:`MAX_LAYER_WIDTH` /
        :data:`MAX_PARAMETERS`, or a damaged file. The network is read with Keras' ``safe_mode=True``
        (no code from the file is run), the arrays with ``allow_pickle=False``.
        """
        import keras

        from .autoencoder import DeepAutoencoder  # noqa: F401 (registers the class with Keras)

        path = Path(path)
        meta = _read_meta(path / "params.json")
        try:
            est = cls(**meta["params"])
            est._validate_params()
        except (TypeError, ValueError) as exc:
            raise ModelFileError(f"{path / 'params.json'}: invalid params ({' '.join(str(exc).split())})") from None
        layers = meta["layers_"]
        if est.layers is not None and list(est.layers) != layers:
            raise ModelFileError(f"{path / 'params.json'}: layers_ {layers} differ from params.layers {est.layers}")
        _check_network_config(path / "network.keras", layers, est.tied)
        model = keras.saving.load_model(path / "network.keras", compile=False, safe_mode=True)
        if [int(d) for d in getattr(model, "layer_sizes", [])] != layers:
            raise ModelFileError(f"{path / 'network.keras'}: its layer sizes differ from params.json's {layers}")
        with np.load(path / "arrays.npz", allow_pickle=False) as arrays:
            missing = [k for k in ("L_", "S_", "residual_scores_") if k not in arrays.files]
            if missing:
                raise ModelFileError(f"{path / 'arrays.npz'}: missing array(s) {', '.join(missing)}")
            L, S, res = arrays["L_"], arrays["S_"], arrays["residual_scores_"]
            observed = arrays["observed_"] if "observed_" in arrays.files else None
        for name, a in (("L_", L), ("S_", S)):
            if a.ndim != 2 or a.shape[1] != layers[0] or a.dtype.kind != "f":
                raise ModelFileError(f"{path / 'arrays.npz'}: {name} has shape {a.shape} and dtype {a.dtype}, "
                                     f"expected (rows, {layers[0]}) floats")
        if L.shape != S.shape or res.shape != (L.shape[0],):
            raise ModelFileError(f"{path / 'arrays.npz'}: L_ {L.shape}, S_ {S.shape} and residual_scores_ "
                                 f"{res.shape} do not fit together")
        if observed is not None and (observed.shape != L.shape or observed.dtype != bool):
            raise ModelFileError(f"{path / 'arrays.npz'}: observed_ has shape {observed.shape} and dtype "
                                 f"{observed.dtype}, expected {L.shape} booleans")
        est.L_, est.S_, est._observed = L, S, observed
        # files written before prox_threshold_ existed called the prox threshold threshold_
        est.prox_threshold_ = float(meta["prox_threshold_"] if "prox_threshold_" in meta else meta["threshold_"])
        est.lam_ = float(meta.get("lam_", est.lam))
        est.layers_ = layers
        est.network_ = NetworkState(est.layers_, est.tied, model.get_weights())
        est.reinitialize_ = meta.get("reinitialize_", est._resolved_reinitialize())
        est.n_iter_ = meta["n_iter_"]
        est.n_features_in_ = meta["n_features_in_"]
        est.history_ = meta["history_"]
        est.residual_scores_ = res
        est._train_fingerprint = meta["train_fingerprint"]
        est._set_sparse_scores()
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        tags.input_tags.allow_nan = True  # missing values (see Notes)
        if tags.transformer_tags is not None:
            tags.transformer_tags.preserves_dtype = ["float32"]  # the network computes in float32
        return tags


class _BankOfOne:
    """One :class:`~rda_cli.autoencoder.AutoencoderTrainer` seen as a bank of K = 1 networks: the
    interface of :class:`~rda_cli.stacked.StackedTrainer` that :func:`fit_alternating` drives.
    ``xla``: compile the training loop with XLA (decided once per fit, :meth:`RobustAutoencoder._use_xla`)."""

    def __init__(self, trainer, xla):
        self.trainer = trainer
        self.xla = xla

    def reinitialize(self):
        self.trainer.reinitialize()

    def train_reconstruct(self, X, epochs, mask=None, max_steps=None):
        losses, L = self.trainer.train(X[0], epochs, mask=mask, max_steps=max_steps, reconstruct=True, xla=self.xla)
        return losses[:, None], L[None]

    def get_weights(self, k):
        return self.trainer.get_weights()


def start_fits(X, models):
    """Validate the models' parameters (``_parameter_constraints``) and ``X``, and settle what each
    fit uses (layers, threshold, schedule); returns ``X`` as validated (float32)."""
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
    """The alternating loop (module docstring, steps 1-4) for K models trained side by side.

    The one loop behind :meth:`RobustAutoencoder.fit` (K = 1) and
    :func:`~rda_cli.stacked.fit_lambda_path` (K lambdas in one stacked trainer).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features), float32, validated
    models : list of RobustAutoencoder
        Started on ``X`` (:func:`start_fits`), sharing one schedule (``models[0]``'s); they differ in
        ``lam`` (their thresholds) only.
    bank : object
        ``reinitialize()``, ``train_reconstruct(X_k, epochs) -> (losses (epochs, K), L_k)`` (train, then
        reconstruct ``X_k`` with the trained networks) and ``get_weights(k)``, where ``X_k`` and ``L_k``
        stack one (n_samples, n_features) array per model.
    S, LS_prev : ndarray of shape (K, n_samples, n_features)
        The starting sparse parts and ``L + S`` (``c2``'s reference). Updated in place.

    A model that meets the stopping rule keeps the state it stopped in while the others go on;
    every model is fitted (``_set_fitted``) by the end.

    Missing entries of ``X`` (NaN; the bank's ``train`` then takes ``mask=``, the observed entries)
    are handled as in the estimator's Notes: each model keeps its own filled copy of ``X``, whose
    missing entries start at the column means and take its reconstruction after every outer
    iteration; the loss covers observed entries only and the prox's residual is zero at missing
    ones. Without NaN this is the complete-data loop, unchanged.
    """
    first = models[0]
    mask = observed_mask(X)
    filled = None
    if mask is not None:
        filled = np.repeat(fill_missing(X, mask)[None], len(models), axis=0)
        np.copyto(LS_prev, filled, where=np.isnan(LS_prev))
    norm_x = float(np.linalg.norm(X if mask is None else filled[0])) or 1.0
    train_options = {} if mask is None else {"mask": mask}  # banks without these options are not asked for them
    if first.max_steps_per_epoch is not None:
        train_options["max_steps"] = first.max_steps_per_epoch
    L_in = np.empty_like(S)  # buffers reused by every outer iteration: no new arrays of X's size per iteration
    scratch = np.empty_like(X)
    active = list(range(len(models)))
    for it in range(first.outer_iterations):
        t0 = time.perf_counter()
        if first.reinitialize_ and it > 0:
            bank.reinitialize()
        np.subtract(X[None] if mask is None else filled, S, out=L_in)
        losses, L = bank.train_reconstruct(L_in, first.inner_epochs, **train_options)  # L: a new array
        shared = (time.perf_counter() - t0) / len(active)
        for j in list(active):
            t1 = time.perf_counter()
            m = models[j]
            Xj = X
            if mask is not None:  # impute: the residual is then zero at missing entries
                Xj = filled[j]
                np.copyto(Xj, L[j], where=~mask)
            Sj = S[j]
            np.subtract(Xj, L[j], out=Sj)  # the residual, which the prox shrinks in place
            m._prox(Sj, mask)
            h = m._record(it, Xj, L_in[j], L[j], Sj, LS_prev[j], norm_x, losses[-1, j],
                          shared + time.perf_counter() - t1, scratch)
            np.add(L[j], Sj, out=LS_prev[j])
            if m.verbose:
                print(
                    f"[rda] lam={m.lam:g} iter {it + 1}/{m.outer_iterations} loss={h['loss']:.5f} "
                    f"obj={h['objective']:.4f} c1={h['c1']:.2e} c2={h['c2']:.2e} "
                    f"nonzero groups={h['nonzero_groups']} ({h['seconds']:.1f}s)"
                )
            if m._converged() or it + 1 == m.outer_iterations:
                # L and S are reused for the models still running: the fitted model keeps copies
                m._set_fitted(X, L[j] if len(models) == 1 else L[j].copy(), S[j].copy(), bank.get_weights(j))
                active.remove(j)
        outer_iteration(it + 1, first.outer_iterations)
        if not active:  # every model finishes by its last outer iteration
            break


def observed_mask(X):
    """The mask of observed (non-NaN) entries of ``X``, or None when nothing is missing."""
    missing = np.isnan(X)
    return None if not missing.any() else ~missing


def check_observed(X, columns=True):
    """Refuse (ValueError) a row, or with ``columns`` a column, of ``X`` with no observed entry."""
    missing = np.isnan(X)
    if not missing.any():
        return
    for axis, what in ((1, "row"), (0, "column")) if columns else ((1, "row"),):
        empty = np.flatnonzero(missing.all(axis=axis))
        if empty.size:
            raise ValueError(f"X has {empty.size} {what}(s) with no observed value (all NaN), the first is "
                             f"{what} {int(empty[0])}; a {what} needs at least one observed value")


def fill_missing(X, mask=None, values=None):
    """``X`` with missing entries replaced by ``values`` per column (default: the observed column
    means); a new array, or ``X`` itself when nothing is missing."""
    if mask is None:
        mask = observed_mask(X)
        if mask is None:
            return X
    if values is None:
        values = np.nanmean(X, axis=0)
    return np.where(mask, X, np.asarray(values, dtype=X.dtype)[None, :]).astype(X.dtype, copy=False)


def observed_scale(mask, axis):
    """``sqrt(group size / observed entries)`` per row (``axis=1``) or column (``axis=0``) of ``mask``."""
    return np.sqrt(mask.shape[axis] / np.maximum(mask.sum(axis=axis), 1)).astype(np.float32)


def row_norms(A, mask=None):
    """Row norms of ``A`` (in its dtype), times :func:`observed_scale` of ``mask`` when given."""
    norms = np.sqrt(np.einsum("ij,ij->i", A, A))  # no squared copy of A
    return norms if mask is None else norms * observed_scale(mask, 1)


def _fingerprint(X):
    X = np.ascontiguousarray(X, dtype=np.float32)
    return hashlib.blake2b(X.view(np.uint8).reshape(-1), digest_size=16).hexdigest() + str(X.shape)


def _read_meta(path):
    """``params.json`` of a saved model, every field type-checked (raises ModelFileError)."""
    try:
        meta = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read it as JSON ({' '.join(str(exc).split())[:200]})") from None

    def bad(key, expected):
        value = meta.get(key) if isinstance(meta, dict) else None
        return ModelFileError(f"{path}: field {key!r} is {value!r}, expected {expected}")

    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: expected a JSON object")

    def is_int(v, low=0):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    if not isinstance(meta.get("params"), dict):
        raise bad("params", "an object of estimator parameters")
    def is_number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

    # the prox threshold: prox_threshold_, or threshold_ in files written before it was renamed
    keys = [k for k in ("prox_threshold_", "threshold_", "lam_") if k in meta]
    if not any(k in keys for k in ("prox_threshold_", "threshold_")):
        keys.insert(0, "prox_threshold_")
    for key in keys:
        if not is_number(meta.get(key)):
            raise bad(key, "a finite number >= 0")
    layers = meta.get("layers_")
    if not (isinstance(layers, list) and len(layers) >= 2 and all(is_int(d, 1) for d in layers)):
        raise bad("layers_", "a list of at least two positive integers")
    if max(layers) > MAX_LAYER_WIDTH:
        raise ModelFileError(f"{path}: a layer of {max(layers)} units exceeds the limit of {MAX_LAYER_WIDTH}")
    n_params = sum(a * b + b for a, b in zip(layers[:-1], layers[1:])) * 2
    if n_params > MAX_PARAMETERS:
        raise ModelFileError(f"{path}: a network of about {n_params} weights exceeds the limit of {MAX_PARAMETERS}")
    if not is_int(meta.get("n_iter_")):
        raise bad("n_iter_", "an integer >= 0")
    if meta.get("n_features_in_") != layers[0] or not is_int(meta.get("n_features_in_"), 1):
        raise bad("n_features_in_", f"the input width {layers[0]}")
    history = meta.get("history_")
    if not (isinstance(history, list) and all(isinstance(h, dict) for h in history)):
        raise bad("history_", "a list of objects")
    fp = meta.get("train_fingerprint")
    if fp is not None and not isinstance(fp, str):
        raise bad("train_fingerprint", "a string or null")
    if "reinitialize_" in meta and not isinstance(meta["reinitialize_"], bool):
        raise bad("reinitialize_", "true or false")
    return meta


def _check_network_config(path, layers, tied):
    """Compare the network file's declared layer sizes with ``layers`` before Keras builds it."""
    try:
        with zipfile.ZipFile(path) as z:
            config = json.loads(z.read("config.json"))
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist") from None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ModelFileError(f"{path}: not a Keras model file ({' '.join(str(exc).split())[:200]})") from None
    inner = config.get("config") if isinstance(config, dict) else None
    sizes = inner.get("layer_sizes") if isinstance(inner, dict) else None
    if sizes != layers:
        raise ModelFileError(f"{path}: declares layer sizes {sizes!r}, params.json says {layers}")
    if isinstance(inner, dict) and inner.get("tied", tied) != tied:
        raise ModelFileError(f"{path}: tied={inner.get('tied')!r} differs from params.json's tied={tied!r}")
