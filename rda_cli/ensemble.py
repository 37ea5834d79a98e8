"""``RobustAutoencoderEnsemble``: the table detector -- robust scaling and RDA members averaged.

Each member is one :func:`rda_cli.table_rule.fit_member` (pilot autoencoder -> lambda -> warm ℓ2,1
RDA) on the same robustly scaled rows, over the table rule's grid of widths, depths and seeds
(:data:`rda_cli.table_rule.MEMBER_GRID`); a member's scores are normalised against its own
training scores (robust z) and the members' normalised scores averaged. ``n_members=1`` is the
single RDA through the same code, ``penalty=None`` the plain autoencoder (ensemble).
:func:`rank_average` mixes the ensemble with another detector (``rda+iforest``).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from numbers import Integral, Real
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import RdaError
from .scoring import fingerprint
from .selection import FRACTION
from .table_rule import (DEFAULT_RULE, MEMBER_GRID, SCORE_CHUNK, TableRule, fit_member, flag_threshold, member_seed,
                         robust_location_scale)

__all__ = ["RobustAutoencoderEnsemble", "rank_average", "ecdf_scores", "ENSEMBLE_FILE"]

ENSEMBLE_FILE = "ensemble.json"
_VERSION = 1


def _positive_int(low=1, high=None):
    return Interval(Integral, low, high, closed="both" if high is not None else "left")


class RobustAutoencoderEnsemble(OutlierMixin, BaseEstimator):
    """An ensemble of Robust Deep Autoencoders for tables, fitted label-free by the table rule.

    ``fit`` takes raw rows (any units): they are scaled robustly (:class:`~rda_cli.scaling.RobustScaler01`),
    then every member is fitted by :func:`~rda_cli.table_rule.fit_member` on the scaled rows.

    Parameters
    ----------
    n_members : int in [1, 8], default=6
        Members, over :data:`~rda_cli.table_rule.MEMBER_GRID`; 1 is the single RDA.
    penalty : {"l21_rows"} or None, default="l21_rows"
        None: plain autoencoder members (the pilots).
    contamination : float in (0, 0.5) or None, default=None
        None: rows above ``median + flag_mads * 1.4826 MAD`` of the training scores are flagged;
        a fraction: the top fraction of the training scores.
    hidden_min, hidden_max, code_min, batch_min, max_steps_per_epoch, pilot_outer, pilot_steps, \
pilot_learning_rate, lambda_quantile, warm_outer, warm_steps, warm_learning_rate, flag_mads, tied
        The table rule's settings (:class:`~rda_cli.table_rule.TableRule`, whose defaults these are).
    random_state : int, default=0
        Member ``j`` is seeded ``random_state + 1000 j``.

    Attributes
    ----------
    scaler_ : RobustScaler01
    members_ : list of RobustAutoencoder
        Fitted on the scaled rows.
    member_info_ : list of dict
        Each member's :func:`~rda_cli.table_rule.fit_member` facts (layers, threshold, ...).
    member_location_, member_scale_ : ndarray of shape (n_members,)
        Median and ``1.4826 MAD`` of each member's training scores.
    decision_scores_ : ndarray of shape (n_samples,)
        Averaged normalised scores of the training rows (higher is more abnormal).
    threshold_ : float
        The cut-off: ``labels_ == (decision_scores_ > threshold_)``.
    labels_ : ndarray of int
        1 for flagged training rows.
    n_features_in_ : int

    See Also
    --------
    rda_cli.estimator.RobustAutoencoder : one member.
    rda_cli.pyod_detector.RDA : this ensemble as a PyOD detector.

    Notes
    -----
    :meth:`predict` is scikit-learn's (+1 inlier, -1 outlier), :meth:`decision_function` PyOD's
    (higher is more abnormal; flagged above ``threshold_``). Missing values (NaN) are allowed as the
    members allow them. Scoring runs ``SCORE_CHUNK`` rows at a time.

    Examples
    --------
    >>> import numpy as np
    >>> from rda_cli import RobustAutoencoderEnsemble
    >>> X = np.random.default_rng(0).normal(50, 5, (300, 6))
    >>> ens = RobustAutoencoderEnsemble(n_members=2, pilot_steps=20, warm_steps=5).fit(X)
    >>> ens.decision_function(X[:1]).shape
    (1,)
    """

    _parameter_constraints: dict = {
        "n_members": [_positive_int(1, len(MEMBER_GRID))],
        "penalty": [StrOptions({"l21_rows"}), None],
        "contamination": [FRACTION, None],  # the one range of a fraction (rda_cli.selection)
        "hidden_min": [_positive_int()],
        "hidden_max": [_positive_int()],
        "code_min": [_positive_int()],
        "batch_min": [_positive_int()],
        "max_steps_per_epoch": [_positive_int()],
        "pilot_outer": [_positive_int()],
        "pilot_steps": [_positive_int()],
        "pilot_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "lambda_quantile": [Interval(Real, 0, 1, closed="right")],
        "warm_outer": [_positive_int()],
        "warm_steps": [_positive_int()],
        "warm_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "flag_mads": [Interval(Real, 0, None, closed="left")],
        "tied": ["boolean"],
        "random_state": [_positive_int(0)],
    }

    def __init__(self, *, n_members=DEFAULT_RULE.n_members, penalty="l21_rows", contamination=None,
                 hidden_min=DEFAULT_RULE.hidden_min, hidden_max=DEFAULT_RULE.hidden_max,
                 code_min=DEFAULT_RULE.code_min, batch_min=DEFAULT_RULE.batch_min,
                 max_steps_per_epoch=DEFAULT_RULE.max_steps_per_epoch, pilot_outer=DEFAULT_RULE.pilot_outer,
                 pilot_steps=DEFAULT_RULE.pilot_steps, pilot_learning_rate=DEFAULT_RULE.pilot_learning_rate,
                 lambda_quantile=DEFAULT_RULE.lambda_quantile, warm_outer=DEFAULT_RULE.warm_outer,
                 warm_steps=DEFAULT_RULE.warm_steps, warm_learning_rate=DEFAULT_RULE.warm_learning_rate,
                 flag_mads=DEFAULT_RULE.flag_mads, tied=DEFAULT_RULE.tied, random_state=0):
        self.n_members = n_members
        self.penalty = penalty
        self.contamination = contamination
        self.hidden_min = hidden_min
        self.hidden_max = hidden_max
        self.code_min = code_min
        self.batch_min = batch_min
        self.max_steps_per_epoch = max_steps_per_epoch
        self.pilot_outer = pilot_outer
        self.pilot_steps = pilot_steps
        self.pilot_learning_rate = pilot_learning_rate
        self.lambda_quantile = lambda_quantile
        self.warm_outer = warm_outer
        self.warm_steps = warm_steps
        self.warm_learning_rate = warm_learning_rate
        self.flag_mads = flag_mads
        self.tied = tied
        self.random_state = random_state

    # ------------------------------------------------------------------ the rule
    def rule(self):
        """The :class:`~rda_cli.table_rule.TableRule` these parameters stand for."""
        return TableRule(**{name: getattr(self, name) for name in TableRule.names()})

    @classmethod
    def from_rule(cls, rule, **params):
        """An ensemble with ``rule``'s settings (and ``params``: penalty, contamination, random_state)."""
        return cls(**{name: getattr(rule, name) for name in TableRule.names()}, **params)

    # ------------------------------------------------------------------ fitting
    def fit(self, X, y=None):
        """Scale ``X`` robustly and fit every member on it (``y`` is ignored).

        Returns
        -------
        self : RobustAutoencoderEnsemble
        """
        from .scaling import RobustScaler01

        self._validate_params()
        with np.errstate(over="ignore", invalid="ignore"):  # sums over values near 1e308 (checked by the scaler)
            X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2, ensure_all_finite="allow-nan")
        rule = self.rule()
        self.scaler_ = RobustScaler01().fit(X)
        Z = self.scaler_.transform(X)
        self.members_, self.member_info_ = [], []
        locations, scales, total = [], [], np.zeros(len(Z))
        for j in range(int(self.n_members)):
            width, depth = MEMBER_GRID[j]
            model, info = fit_member(Z, member_seed(self.random_state, j), self.penalty, rule, width, depth)
            train = model.decision_function(Z)
            loc, scale = robust_location_scale(train)
            self.members_.append(model)
            self.member_info_.append(info)
            locations.append(loc)
            scales.append(scale)
            total += (train - loc) / scale
        self.member_location_, self.member_scale_ = np.array(locations), np.array(scales)
        self.decision_scores_ = total / len(self.members_)
        self._train_fingerprint = fingerprint(X)
        self._set_threshold()
        return self

    def _set_threshold(self):
        self.threshold_ = flag_threshold(self.decision_scores_, self.contamination, self.rule())
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)

    # ------------------------------------------------------------------ scoring
    def _check(self, X):
        check_is_fitted(self, "members_")
        return validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")

    def _scaled_chunks(self, X):
        """``X`` scaled, ``SCORE_CHUNK`` rows at a time; the training rows in one piece (the members then
        use their fitted ``S_`` and ``L_``)."""
        if len(X) > SCORE_CHUNK and fingerprint(X) == self._train_fingerprint:
            yield self.scaler_.transform(X)
            return
        for start in range(0, len(X), SCORE_CHUNK):
            yield self.scaler_.transform(X[start : start + SCORE_CHUNK])

    def member_scores(self, X):
        """Each member's normalised scores of ``X``: an array of shape (n_members, n_samples)."""
        X = self._check(X)
        out = np.empty((len(self.members_), len(X)))
        start = 0
        for Z in self._scaled_chunks(X):
            for j, m in enumerate(self.members_):
                out[j, start : start + len(Z)] = (m.decision_function(Z) - self.member_location_[j]) / self.member_scale_[j]
            start += len(Z)
        return out

    def decision_function(self, X):
        """Averaged normalised member scores of the rows of ``X``: higher is more abnormal, flagged above
        ``threshold_``. The training rows get their fitted scores (the members know their data)."""
        return self.member_scores(X).mean(axis=0)

    def score_samples(self, X):
        """``-decision_function(X)``: lower is more abnormal."""
        return -self.decision_function(X)

    def predict(self, X):
        """+1 for inliers, -1 for rows scoring above ``threshold_``."""
        return np.where(self.decision_function(X) > self.threshold_, -1, 1)

    def fit_predict(self, X, y=None):
        self.fit(X)
        return np.where(self.labels_ == 1, -1, 1)

    def feature_contributions(self, X, return_scores=False):
        """Each feature's share of each row's anomaly, in scaled units: the members'
        :meth:`~rda_cli.estimator.RobustAutoencoder.feature_contributions` averaged (each row sums to
        at most 1). With ``return_scores`` also :meth:`decision_function` from the same passes."""
        X = self._check(X)
        shares = np.zeros(X.shape)
        scores = np.zeros(len(X))
        start = 0
        for Z in self._scaled_chunks(X):
            rows = slice(start, start + len(Z))
            for j, m in enumerate(self.members_):
                sh, sc = m.feature_contributions(Z, return_scores=True)
                shares[rows] += sh
                scores[rows] += (sc - self.member_location_[j]) / self.member_scale_[j]
            start += len(Z)
        shares /= len(self.members_)
        scores /= len(self.members_)
        return (shares, scores) if return_scores else shares

    def decompose(self):
        """``(L, S)`` of the training rows in scaled units, averaged over the members."""
        check_is_fitted(self, "members_")
        L = sum(m.L_.astype(np.float64) for m in self.members_) / len(self.members_)
        S = sum(m.S_.astype(np.float64) for m in self.members_) / len(self.members_)
        return L, S

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save into folder ``path``: ``ensemble.json`` (parameters, normalisation, cut-off),
        ``scaler.json``, ``scores.npz`` and ``member_<j>/`` (:meth:`RobustAutoencoder.save`); no pickle.
        Atomic: written next to ``path`` and renamed; an existing ``path`` is replaced only if it is
        an ensemble folder."""
        from .safeio import replace_dir

        check_is_fitted(self, "members_")
        path = Path(path)
        if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / ENSEMBLE_FILE).is_file())):
            raise RdaError(f"{path} exists and is not an ensemble folder; refusing to replace it")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
        try:
            for j, m in enumerate(self.members_):
                m.save(tmp / f"member_{j}")
            self.scaler_.save(tmp / "scaler.json")
            np.savez(tmp / "scores.npz", decision_scores_=self.decision_scores_)
            meta = {"kind": "rda-ensemble", "version": _VERSION, "params": self.get_params(),
                    "n_features_in_": int(self.n_features_in_), "threshold_": float(self.threshold_),
                    "member_location_": [float(v) for v in self.member_location_],
                    "member_scale_": [float(v) for v in self.member_scale_],
                    "member_info_": self.member_info_, "train_fingerprint": self._train_fingerprint}
            (tmp / ENSEMBLE_FILE).write_text(json.dumps(meta, indent=1, default=float))
            replace_dir(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return path

    @classmethod
    def load(cls, path):
        """Load a folder written by :meth:`save`, checking every field (raises
        :class:`~rda_cli.persistence.ModelFileError`, one line)."""
        from .estimator import RobustAutoencoder
        from .persistence import ModelFileError
        from .scaling import RobustScaler01
        from .tabular import TableError

        path = Path(path)
        try:
            meta = json.loads((path / ENSEMBLE_FILE).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{path / ENSEMBLE_FILE}: cannot read ({' '.join(str(exc).split())[:200]})") from None
        if not isinstance(meta, dict) or meta.get("kind") != "rda-ensemble" or meta.get("version") != _VERSION:
            raise ModelFileError(f"{path / ENSEMBLE_FILE} is not an ensemble file written by this rda")
        try:
            est = cls(**meta["params"])
            est._validate_params()
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path / ENSEMBLE_FILE}: bad parameters ({' '.join(str(exc).split())[:200]})") from None
        k = int(est.n_members)
        loc, scale, thr, d = (meta.get("member_location_"), meta.get("member_scale_"), meta.get("threshold_"),
                              meta.get("n_features_in_"))

        def numbers(v):
            return isinstance(v, list) and len(v) == k and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)

        if not (numbers(loc) and numbers(scale) and all(s > 0 for s in scale)):
            raise ModelFileError(f"{path / ENSEMBLE_FILE}: malformed member normalisation")
        if not (isinstance(thr, (int, float)) and math.isfinite(thr)) or not (isinstance(d, int) and d >= 1):
            raise ModelFileError(f"{path / ENSEMBLE_FILE}: malformed threshold_ or n_features_in_")
        try:
            est.scaler_ = RobustScaler01.load(path / "scaler.json")
        except TableError as exc:
            raise ModelFileError(str(exc)) from None
        est.members_ = [RobustAutoencoder.load(path / f"member_{j}") for j in range(k)]
        widths = {est.scaler_.n_features} | {m.n_features_in_ for m in est.members_}
        if widths != {d}:
            raise ModelFileError(f"{path}: the scaler and the members disagree on the number of features")
        try:
            with np.load(path / "scores.npz", allow_pickle=False) as z:
                est.decision_scores_ = np.asarray(z["decision_scores_"], np.float64)
        except (OSError, KeyError, ValueError) as exc:
            raise ModelFileError(f"{path / 'scores.npz'}: cannot read ({' '.join(str(exc).split())[:200]})") from None
        if est.decision_scores_.ndim != 1 or len(est.decision_scores_) != len(est.members_[0].S_):
            raise ModelFileError(f"{path / 'scores.npz'}: decision_scores_ does not match the members")
        est.member_location_, est.member_scale_ = np.array(loc, float), np.array(scale, float)
        est.member_info_ = meta.get("member_info_") if isinstance(meta.get("member_info_"), list) else []
        est.n_features_in_ = d
        est._train_fingerprint = str(meta.get("train_fingerprint", ""))
        est.threshold_ = float(thr)
        est.labels_ = (est.decision_scores_ > est.threshold_).astype(int)
        return est

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def ecdf_scores(reference, scores):
    """The fraction of ``reference`` scores at or below each of ``scores`` (in [0, 1])."""
    ref = np.sort(np.asarray(reference, np.float64))
    return np.searchsorted(ref, np.asarray(scores, np.float64), side="right") / max(len(ref), 1)


def rank_average(pairs):
    """Mix detectors: the mean of each detector's ECDF score against its own training scores.

    ``pairs``: ``[(training scores, scores to mix), ...]``, one per detector (higher = more abnormal);
    e.g. the ensemble's and Isolation Forest's (``rda+iforest``)."""
    return np.mean([ecdf_scores(ref, s) for ref, s in pairs], axis=0)
