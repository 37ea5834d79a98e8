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
from .table_rule import (COMBINE, DEFAULT_RULE, MEMBER_GRID, MEMBER_GRIDS, SCORE_CHUNK, TableRule, combine_scores,
                         fit_member, flag_threshold, member_seed, robust_location_scale)

__all__ = ["RobustAutoencoderEnsemble", "rank_average", "ecdf_scores", "ENSEMBLE_FILE"]

ENSEMBLE_FILE = "ensemble.json"
MINMAX_FILE = "scaler_minmax.json"  # the min-max members' scaler
TAIL_FILE = "tail.npz"  # the tail score's quantiles
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
        "member_grid": [StrOptions(set(MEMBER_GRIDS))],
        "combine": [StrOptions(set(COMBINE))],
        "tail": ["boolean"],
        "random_state": [_positive_int(0)],
    }

    def __init__(self, *, n_members=DEFAULT_RULE.n_members, penalty="l21_rows", contamination=None,
                 hidden_min=DEFAULT_RULE.hidden_min, hidden_max=DEFAULT_RULE.hidden_max,
                 code_min=DEFAULT_RULE.code_min, batch_min=DEFAULT_RULE.batch_min,
                 max_steps_per_epoch=DEFAULT_RULE.max_steps_per_epoch, pilot_outer=DEFAULT_RULE.pilot_outer,
                 pilot_steps=DEFAULT_RULE.pilot_steps, pilot_learning_rate=DEFAULT_RULE.pilot_learning_rate,
                 lambda_quantile=DEFAULT_RULE.lambda_quantile, warm_outer=DEFAULT_RULE.warm_outer,
                 warm_steps=DEFAULT_RULE.warm_steps, warm_learning_rate=DEFAULT_RULE.warm_learning_rate,
                 flag_mads=DEFAULT_RULE.flag_mads, tied=DEFAULT_RULE.tied, member_grid=DEFAULT_RULE.member_grid,
                 combine=DEFAULT_RULE.combine, tail=DEFAULT_RULE.tail, random_state=0):
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
        self.member_grid = member_grid
        self.combine = combine
        self.tail = tail
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
        from .tabular import MinMaxScaler01

        self._validate_params()
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2, ensure_all_finite="allow-nan")
        rule = self.rule()
        specs = MEMBER_GRIDS[rule.member_grid][: int(self.n_members)]
        self.scaler_ = RobustScaler01().fit(X)
        self.minmax_scaler_ = MinMaxScaler01().fit(X) if any(sp[2] == "minmax" for sp in specs) else None
        Z = self._scaled(X)
        self.members_, self.member_info_, self.member_scalings_ = [], [], []
        train = []
        for j, (width, depth, scaling, lr_factor) in enumerate(specs):
            member_rule = rule.replace(pilot_learning_rate=rule.pilot_learning_rate * lr_factor)
            model, info = fit_member(Z[scaling], member_seed(self.random_state, j), self.penalty, member_rule, width,
                                     depth)
            info.update(scaling=scaling, pilot_learning_rate=member_rule.pilot_learning_rate)
            self.members_.append(model)
            self.member_info_.append(info)
            self.member_scalings_.append(scaling)
            train.append(model.decision_function(Z[scaling]))
        self.tail_ = None
        if rule.tail:
            from .tails import TailScore

            self.tail_ = TailScore().fit(Z["robust"])
            train.append(self.tail_.score(Z["robust"]))
        locations, scales = zip(*(robust_location_scale(t) for t in train))
        self.member_location_, self.member_scale_ = np.array(locations), np.array(scales)
        self.decision_scores_ = self._combine([(t - loc) / sc for t, loc, sc in zip(train, locations, scales)])
        self._train_fingerprint = fingerprint(X)
        self._set_threshold()
        return self

    def _scaled(self, X):
        """``{scaling: X scaled}`` for the scalings the members use (always ``"robust"``)."""
        Z = {"robust": self.scaler_.transform(X)}
        if getattr(self, "minmax_scaler_", None) is not None:
            Z["minmax"] = self.minmax_scaler_.transform(X)
        return Z

    def _combine(self, member_z):
        """The members' (and the tail score's) normalised scores combined per row by ``combine``."""
        return combine_scores(np.asarray(member_z), self.combine)

    def _set_threshold(self):
        self.threshold_ = flag_threshold(self.decision_scores_, self.contamination, self.rule())
        self.labels_ = (self.decision_scores_ > self.threshold_).astype(int)

    # ------------------------------------------------------------------ scoring
    def _check(self, X):
        check_is_fitted(self, "members_")
        return validate_data(self, X, reset=False, dtype=np.float64, ensure_all_finite="allow-nan")

    def _scaled_chunks(self, X):
        """``{scaling: X scaled}``, ``SCORE_CHUNK`` rows at a time; the training rows in one piece (the
        members then use their fitted ``S_`` and ``L_``)."""
        if len(X) > SCORE_CHUNK and fingerprint(X) == self._train_fingerprint:
            yield self._scaled(X)
            return
        for start in range(0, len(X), SCORE_CHUNK):
            yield self._scaled(X[start : start + SCORE_CHUNK])

    def _tail_z(self, Z):
        k = len(self.members_)
        return (self.tail_.score(Z["robust"]) - self.member_location_[k]) / self.member_scale_[k]

    def member_scores(self, X):
        """Each member's normalised scores of ``X`` (robust z against its training scores), the tail
        score's last when ``tail``: an array of shape (n_members [+ 1], n_samples)."""
        X = self._check(X)
        out = np.empty((len(self.member_location_), len(X)))
        start = 0
        for Z in self._scaled_chunks(X):
            rows = slice(start, start + len(Z["robust"]))
            for j, (m, scaling) in enumerate(zip(self.members_, self.member_scalings_)):
                out[j, rows] = (m.decision_function(Z[scaling]) - self.member_location_[j]) / self.member_scale_[j]
            if self.tail_ is not None:
                out[-1, rows] = self._tail_z(Z)
            start = rows.stop
        return out

    def decision_function(self, X):
        """The members' normalised scores of the rows of ``X`` combined by ``combine``: higher is more
        abnormal, flagged above ``threshold_``. The training rows get their fitted scores (the members
        know their data)."""
        return self._combine(self.member_scores(X))

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
        member_z = np.empty((len(self.member_location_), len(X)))
        start = 0
        for Z in self._scaled_chunks(X):
            rows = slice(start, start + len(Z["robust"]))
            for j, (m, scaling) in enumerate(zip(self.members_, self.member_scalings_)):
                sh, sc = m.feature_contributions(Z[scaling], return_scores=True)
                shares[rows] += sh
                member_z[j, rows] = (sc - self.member_location_[j]) / self.member_scale_[j]
            if self.tail_ is not None:
                member_z[-1, rows] = self._tail_z(Z)
            start = rows.stop
        shares /= len(self.members_)
        return (shares, self._combine(member_z)) if return_scores else shares

    def decompose(self):
        """``(L, S)`` of the training rows in robustly scaled units, averaged over the members (a min-max
        member's ``L`` and ``S`` mapped to those units through the user's units)."""
        check_is_fitted(self, "members_")
        L = np.zeros(self.members_[0].L_.shape)
        S = np.zeros(L.shape)
        for m, scaling in zip(self.members_, self.member_scalings_):
            if scaling == "robust":
                L += m.L_
                S += m.S_
            else:
                L += self.scaler_.transform(self.minmax_scaler_.inverse_transform(m.L_))
                S += self.minmax_scaler_.inverse_scale(m.S_) / self.scaler_.span
        return L / len(self.members_), S / len(self.members_)

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save into folder ``path``: ``ensemble.json`` (parameters, normalisation, cut-off),
        ``scaler.json`` (and ``scaler_minmax.json`` when members use min-max scaling), ``scores.npz``,
        ``tail.npz`` (with ``tail``: the tail score's quantiles) and ``member_<j>/``
        (:meth:`RobustAutoencoder.save`); no pickle.
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
            if self.minmax_scaler_ is not None:
                self.minmax_scaler_.save(tmp / MINMAX_FILE)
            if self.tail_ is not None:
                np.savez(tmp / TAIL_FILE, **self.tail_.to_arrays())
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
        from .scaling import RobustScaler01, load_scaler
        from .tabular import TableError

        path = Path(path)
        try:
            meta = json.loads((path / ENSEMBLE_FILE).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelFileError(f"{path / ENSEMBLE_FILE}: cannot read ({' '.join(str(exc).split())[:200]})") from None
        if not isinstance(meta, dict) or meta.get("kind") != "rda-ensemble" or meta.get("version") != _VERSION:
            raise ModelFileError(f"{path / ENSEMBLE_FILE} is not an ensemble file written by this rda")
        try:
            # a folder saved before member_grid / combine / tail existed keeps the behaviour it was fitted with
            est = cls(**{"member_grid": "widths", "combine": "mean", "tail": False, **meta["params"]})
            est._validate_params()
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelFileError(f"{path / ENSEMBLE_FILE}: bad parameters ({' '.join(str(exc).split())[:200]})") from None
        k = int(est.n_members) + bool(est.tail)  # normalisations: the members' and the tail score's
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
        est.members_ = [RobustAutoencoder.load(path / f"member_{j}") for j in range(int(est.n_members))]
        est.member_scalings_ = [spec[2] for spec in MEMBER_GRIDS[est.member_grid][: int(est.n_members)]]
        est.minmax_scaler_, est.tail_ = None, None
        try:
            if "minmax" in est.member_scalings_:
                est.minmax_scaler_ = load_scaler(path / MINMAX_FILE)
            if est.tail:
                from .arrayfile import read_npz
                from .tails import TailScore

                est.tail_ = TailScore.from_arrays(read_npz(
                    path / TAIL_FILE, {"quantiles": (None, d), "right_skewed": (d,), "counts": (d,)}))
        except (TableError, OSError, ValueError) as exc:
            raise ModelFileError(f"{path}: {' '.join(str(exc).split())[:200]}") from None
        widths = {est.scaler_.n_features} | {m.n_features_in_ for m in est.members_}
        if est.minmax_scaler_ is not None:
            widths.add(est.minmax_scaler_.n_features)
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
