"""``RobustAutoencoderEnsemble``: the table detector -- RDA members and a tail score, combined.

Each member is one :func:`rda_cli.table_rule.fit_member` (pilot autoencoder -> lambda -> warm ℓ2,1
RDA) over the table rule's grid (:data:`rda_cli.table_rule.MEMBER_GRIDS`: the pilot's learning rate
and the rows' scaling, or widths and depths); members of one network and scaling (the default grid's
two) are trained side by side in one compiled step (:func:`rda_cli.table_rule.fit_members`, the same
fits up to float rounding), with the per-feature tail score
(:class:`rda_cli.tails.TailScore`) as one more member and, with ``forest``, an Isolation Forest kept as
arrays (:class:`rda_cli.forest.ForestScore`) one more after it; a member's scores are normalised against its
own training scores (robust z) and combined per row (:func:`rda_cli.table_rule.combine_scores`). ``n_members=1`` is the
single RDA through the same code, ``penalty=None`` the plain autoencoder (ensemble).
:func:`rank_average` mixes the ensemble with another detector (``rda+iforest``).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, OutlierMixin
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .errors import RdaError
from .ensemble_folder import ENSEMBLE_FILE
from .scoring import fingerprint
from .selection import FRACTION
from .table_rule import (COMBINE, DEFAULT_RULE, MEMBER_GRID, MEMBER_GRIDS, SCORE_CHUNK, TableRule, combine_scores,
                         fit_members, fit_phases, flag_threshold, robust_location_scale)

__all__ = ["RobustAutoencoderEnsemble", "rank_average", "ecdf_scores", "ENSEMBLE_FILE"]



def _positive_int(low=1, high=None):
    return Interval(Integral, low, high, closed="both" if high is not None else "left")


class RobustAutoencoderEnsemble(OutlierMixin, BaseEstimator):
    """An ensemble of Robust Deep Autoencoders for tables, fitted label-free by the table rule.

    ``fit`` takes raw rows (any units): they are scaled robustly (:class:`~rda_cli.scaling.RobustScaler01`),
    then every member is fitted by :func:`~rda_cli.table_rule.fit_member` on the scaled rows; members of one
    network and scaling are fitted together in one compiled step (:func:`~rda_cli.table_rule.fit_members`).

    Parameters
    ----------
    n_members : int in [1, 8], default=2
        Members, the first ``n_members`` of :data:`~rda_cli.table_rule.MEMBER_GRIDS` ``[member_grid]``; 1 is
        the single RDA.
    penalty : {"l21_rows"} or None, default="l21_rows"
        None: plain autoencoder members (the pilots).
    contamination : float in (0, 0.5) or None, default=None
        None: rows above ``median + flag_mads * 1.4826 MAD`` of the training scores are flagged;
        a fraction: the top fraction of the training scores.
    hidden_min, hidden_max, code_min, batch_min, max_steps_per_epoch, pilot_outer, pilot_steps, \
pilot_learning_rate, lambda_quantile, warm_outer, warm_steps, warm_learning_rate, flag_mads, tied, \
member_grid, combine, tail, forest, isolate
        The table rule's settings (:class:`~rda_cli.table_rule.TableRule`, whose defaults these are).
        ``isolate`` in [0, 0.5]: the fraction of training rows, those the feature-wise members (tail score,
        forest) score highest, that the networks do not learn (ℓ2,1 RDA's idea: isolated rows are not
        learned); 0 (or no feature-wise member): every row.
    random_state : int, default=0
        Member ``j`` is seeded ``random_state + 1000 j``.
    train_together : bool, default=True
        Train members of one network and scaling side by side in one compiled step
        (:mod:`rda_cli.stacked`); each is its one-by-one fit up to float rounding. False: one after another.

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
        The members' normalised scores of the training rows, combined (higher is more abnormal).
    threshold_ : float
        The cut-off: ``labels_ == (decision_scores_ > threshold_)``.
    labels_ : ndarray of int
        1 for flagged training rows.
    n_features_in_ : int
    n_learned_ : int
        The training rows the networks learned: all but the fraction ``isolate`` that the tail score and
        the forest score highest (their mean robust z), on whose complement the scalings are also estimated.

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
        "forest": ["boolean"],
        "isolate": [Interval(Real, 0, 0.5, closed="both")],
        "random_state": [_positive_int(0)],
        "train_together": ["boolean"],
    }

    def __init__(self, *, n_members=DEFAULT_RULE.n_members, penalty="l21_rows", contamination=None,
                 hidden_min=DEFAULT_RULE.hidden_min, hidden_max=DEFAULT_RULE.hidden_max,
                 code_min=DEFAULT_RULE.code_min, batch_min=DEFAULT_RULE.batch_min,
                 max_steps_per_epoch=DEFAULT_RULE.max_steps_per_epoch, pilot_outer=DEFAULT_RULE.pilot_outer,
                 pilot_steps=DEFAULT_RULE.pilot_steps, pilot_learning_rate=DEFAULT_RULE.pilot_learning_rate,
                 lambda_quantile=DEFAULT_RULE.lambda_quantile, warm_outer=DEFAULT_RULE.warm_outer,
                 warm_steps=DEFAULT_RULE.warm_steps, warm_learning_rate=DEFAULT_RULE.warm_learning_rate,
                 flag_mads=DEFAULT_RULE.flag_mads, tied=DEFAULT_RULE.tied, member_grid=DEFAULT_RULE.member_grid,
                 combine=DEFAULT_RULE.combine, tail=DEFAULT_RULE.tail, forest=DEFAULT_RULE.forest,
                 isolate=DEFAULT_RULE.isolate, random_state=0, train_together=True):
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
        self.forest = forest
        self.isolate = isolate
        self.random_state = random_state
        self.train_together = train_together

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
        from .scaling import MinMaxScaler01

        self._validate_params()
        with np.errstate(over="ignore", invalid="ignore"):  # sums over values near 1e308 (checked by the scaler)
            X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2, ensure_all_finite="allow-nan")
        rule = self.rule()
        specs = MEMBER_GRIDS[rule.member_grid][: int(self.n_members)]
        minmax = any(sp[2] == "minmax" for sp in specs)
        self.scaler_ = RobustScaler01().fit(X)
        self.minmax_scaler_ = MinMaxScaler01().fit(X) if minmax else None
        Z = self._scaled(X)
        # the feature-wise members first: the rows they score highest are not learned by the networks, and the
        # scalings are estimated on the rows that are (the feature-wise members, refitted on those scalings,
        # score as before: their scores do not change under a per-column affine map, up to rounding)
        self.tail_, self.forest_, extra = _fit_feature_members(Z["robust"], rule, self.random_state)
        learned = _learned_rows(extra, rule.isolate)
        if learned is not None:
            self.scaler_ = RobustScaler01().fit(X[learned])
            self.minmax_scaler_ = MinMaxScaler01().fit(X[learned]) if minmax else None
            Z = self._scaled(X)
            self.tail_, self.forest_, extra = _fit_feature_members(Z["robust"], rule, self.random_state)
        self.n_learned_ = len(X) if learned is None else int(learned.sum())
        fitted = fit_members(Z if learned is None else {k: v[learned] for k, v in Z.items()}, specs,
                             self.random_state, self.penalty, rule, self.train_together)
        self.members_ = [model for model, _ in fitted]
        self.member_info_ = [info for _, info in fitted]
        self.member_scalings_ = [spec[2] for spec in specs]
        train = [m.decision_function(Z[scaling]) for m, scaling in zip(self.members_, self.member_scalings_)]
        train += extra
        locations, scales = zip(*(robust_location_scale(t) for t in train))
        self.member_location_, self.member_scale_ = np.array(locations), np.array(scales)
        self.decision_scores_ = self._combine([(t - loc) / sc for t, loc, sc in zip(train, locations, scales)])
        self._train_fingerprint = fingerprint(X)
        self._set_threshold()
        return self

    def fit_phases(self):
        """One label per fit that :meth:`fit` runs, in order (pilots, warm RDAs; members fitted together
        share one): the phases of a progress display."""
        specs = MEMBER_GRIDS[self.member_grid][: int(self.n_members)]
        return fit_phases(specs, self.penalty, self.train_together)

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

    def _extra_z(self, Z):
        """The tail score's and the forest's normalised scores of scaled rows ``Z`` (those present, in
        that order): the rows after the members' in :meth:`member_scores`."""
        extra = [s for s in (self.tail_, self.forest_) if s is not None]
        k = len(self.members_)
        return [(s.score(Z["robust"]) - self.member_location_[k + i]) / self.member_scale_[k + i]
                for i, s in enumerate(extra)]

    def member_scores(self, X):
        """Each member's normalised scores of ``X`` (robust z against its training scores), the tail
        score's next when ``tail``, the forest's last when ``forest``: an array of shape
        (n_members [+ 1] [+ 1], n_samples)."""
        X = self._check(X)
        out = np.empty((len(self.member_location_), len(X)))
        start = 0
        for Z in self._scaled_chunks(X):
            rows = slice(start, start + len(Z["robust"]))
            for j, (m, scaling) in enumerate(zip(self.members_, self.member_scalings_)):
                out[j, rows] = (m.decision_function(Z[scaling]) - self.member_location_[j]) / self.member_scale_[j]
            for i, z in enumerate(self._extra_z(Z), start=len(self.members_)):
                out[i, rows] = z
            start = rows.stop
        return out

    def decision_function(self, X):
        """The members' normalised scores of the rows of ``X`` combined by ``combine``: higher is more
        abnormal, flagged above ``threshold_``. The training rows get their fitted scores (the members know
        their data; a loaded ensemble, whose members keep no training data, gives them ``decision_scores_``)."""
        X = self._check(X)
        if self._saved_training_rows(X):
            return self.decision_scores_.copy()
        return self._combine(self.member_scores(X))

    def _saved_training_rows(self, X):
        """Whether ``X`` (validated) is the training data of a loaded ensemble whose members keep none of it."""
        return (getattr(self.members_[0], "S_", None) is None and len(X) == len(self.decision_scores_)
                and fingerprint(X) == self._train_fingerprint)

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
        at most 1; the tail score and the forest contribute no shares). With ``return_scores`` also
        :meth:`decision_function` from the same passes."""
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
            for i, z in enumerate(self._extra_z(Z), start=len(self.members_)):
                member_z[i, rows] = z
            start = rows.stop
        shares /= len(self.members_)
        scores = self._combine(member_z)
        if return_scores and self._saved_training_rows(X):
            scores = self.decision_scores_.copy()
        return (shares, scores) if return_scores else shares

    def decompose(self, X=None):
        """``(L, S)`` of the training rows in robustly scaled units, averaged over the members (of a fitted
        ensemble; a loaded one keeps no training data); a min-max member's ``L`` and ``S`` are mapped to
        those units through the user's units. ``X``: the training rows, needed when the networks did not
        learn all of them (``isolate``): every training row is then decomposed as new rows are (the network
        held fixed), as its score was."""
        check_is_fitted(self, "members_")
        if getattr(self.members_[0], "S_", None) is None:
            raise RdaError("this ensemble was loaded from a folder, which keeps no training data (L, S); fit it")
        n = len(self.decision_scores_)
        Z = None
        L, S = 0.0, 0.0
        for m, scaling in zip(self.members_, self.member_scalings_):
            if len(m.S_) == n:
                S_m, L_m = m.S_, m.L_
            else:
                if X is None:
                    raise RdaError("the networks learned only some of the training rows (isolate): "
                                   "decompose(X) needs those rows")
                Z = self._scaled(self._check(X)) if Z is None else Z
                S_m, L_m = m._decompose(Z[scaling])[:2]
            if scaling == "robust":
                L = L + L_m
                S = S + S_m
            else:
                L = L + self.scaler_.transform(self.minmax_scaler_.inverse_transform(L_m))
                S = S + self.minmax_scaler_.inverse_scale(S_m) / self.scaler_.span
        return L / len(self.members_), S / len(self.members_)

    # ------------------------------------------------------------------ persistence
    def save(self, path):
        """Save into folder ``path``: ``ensemble.json`` (parameters, normalisation, cut-off, training rows),
        ``scaler.json`` (and ``scaler_minmax.json`` when members use min-max scaling), ``tail.npz`` (with
        ``tail``: the tail score's quantiles), ``forest.npz`` (with ``forest``: the trees as arrays,
        :class:`rda_cli.forest.ForestScore`), ``scores.npz`` (the training rows' scores, one vector) and ``member_<j>/``
        (:meth:`RobustAutoencoder.save` without the training data: a folder of the networks' size);
        no pickle. Atomic, with a manifest, under the one ownership rule
        (:func:`rda_cli.persistence.save_folder`): an existing ``path`` is replaced only if its whole tree
        is what an earlier save wrote (its manifest says so)."""
        from .ensemble_folder import save_ensemble

        return save_ensemble(self, path)

    @classmethod
    def load(cls, path):
        """Load a folder written by :meth:`save` (or by version 1, whose members keep their training
        data), checking every file and field before use (raises
        :class:`~rda_cli.persistence.ModelFileError`, one line naming the file): bounded reads of regular
        files only (:func:`rda_cli.safeio.read_json`, :func:`rda_cli.arrayfile.read_npz`)."""
        from .ensemble_folder import load_ensemble

        return load_ensemble(cls, path)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _fit_feature_members(Z, rule, random_state):
    """The tail score and the forest of ``rule`` (those it asks for, else None) fitted on the robustly scaled
    rows ``Z``, and their scores of those rows: ``(tail, forest, [scores, ...])``."""
    tail = forest = None
    scores = []
    if rule.tail:
        from .tails import TailScore

        tail = TailScore().fit(Z)
        scores.append(tail.score(Z))
    if rule.forest:
        from .forest import ForestScore

        forest = ForestScore(random_state=random_state).fit(Z)
        scores.append(forest.score(Z))
    return tail, forest, scores


def _learned_rows(feature_scores, isolate):
    """The training rows the networks learn (a boolean mask), or None for all: without the fraction
    ``isolate`` of rows whose mean robust z over the feature-wise members' scores is highest (ℓ2,1 RDA's
    idea -- rows isolated are not learned -- with the isolating done by members that see each feature on
    its own). None when ``isolate`` is 0, there is no feature-wise member, or fewer than 2 rows would remain."""
    if not isolate or not feature_scores:
        return None
    z = np.mean([(s - loc) / sc for s in feature_scores for loc, sc in [robust_location_scale(s)]], axis=0)
    learned = z <= np.quantile(z, 1.0 - float(isolate))
    return learned if learned.sum() >= 2 and not learned.all() else None


def ecdf_scores(reference, scores):
    """The fraction of ``reference`` scores at or below each of ``scores`` (in [0, 1])."""
    ref = np.sort(np.asarray(reference, np.float64))
    return np.searchsorted(ref, np.asarray(scores, np.float64), side="right") / max(len(ref), 1)


def rank_average(pairs):
    """Mix detectors: the mean of each detector's ECDF score against its own training scores.

    ``pairs``: ``[(training scores, scores to mix), ...]``, one per detector (higher = more abnormal);
    e.g. the ensemble's and Isolation Forest's (``rda+iforest``)."""
    return np.mean([ecdf_scores(ref, s) for ref, s in pairs], axis=0)
