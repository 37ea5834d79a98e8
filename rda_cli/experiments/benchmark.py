"""Real tabular data: RDA and the field's detectors on ADBench's classical sets, label-free.

Protocol (ADBench's unsupervised setting): for each data set and seed, a stratified split keeps
``data.test_size`` (30%) of the rows for testing; every detector is fitted on the other 70%
without labels and scores the test rows; AUROC and average precision are computed on the test
rows. Scaling is fitted on the training part only. With ``protocol: transductive`` every detector
is fitted on all rows and scores them all (no split).

Every detector runs with one setting for all data sets: the library defaults (scikit-learn,
PyOD), except that the three quadratic ones (One-Class SVM, LOF, KNN) are fitted on a random
subsample of at most ``quadratic_max_rows`` training rows (drawn without labels), and robust PCA
scores unseen rows by their distance to the row space of its low-rank part. The baselines see the
columns min-max scaled on the training part, as ADBench's data generator does (``data.scaling``).

The autoencoder detectors (``rda-ens`` the RDA ensemble, ``rda`` one member, ``ae``/``ae-ens`` the
plain autoencoder(s), ``rda+iforest`` the ensemble ECDF-averaged with Isolation Forest) follow the
table rule (:mod:`rda_cli.table_rule`, settings in the config's ``model:`` section, defaults read
from the rule): each cell fits the :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` that
``rda detect`` fits, on the raw training rows (it scales them robustly itself).

Cells: one per data set × detector × seed, id ``<set>__<detector>`` plus ``_s<seed>`` for seeds
other than the config's ``seed``. The detectors' names and the config's data sets are in
:mod:`.benchmark_plan`, the summary and report in :mod:`.benchmark_summary` (re-exported here).
"""

from __future__ import annotations

import functools
import time

import numpy as np

from .benchmark_plan import (AUTOENCODERS, DEFAULT_DETECTORS, DETECTOR_NAMES, DETECTORS, PYOD_DETECTORS, PYOD_MISSING,  # noqa: F401
                             QUADRATIC, data_sets, pyod_available, runnable_detectors)
from .benchmark_summary import (COLUMNS, ONE_SEED_TIE, build_summary, compare, one_line_summary,  # noqa: F401
                                summarize, summary_md)
from .common import cell_problem, cell_seed, header_schema, json_safe, seed_list, seed_suffix
from .config import MAX_BATCH, MAX_ITERATIONS, MAX_ROWS, MAX_STEPS, ConfigError, Field

NAME = "benchmark"


def _check_detectors(value):
    bad = [d for d in value if d not in DETECTORS]
    return f"unknown detector(s) {', '.join(bad)}; expected some of {', '.join(DETECTORS)}" if bad else None


_MODEL_DOCS = {
    "n_members": "members of the rda-ens / ae-ens / rda+iforest ensembles (1..8; rda and ae are one member)",
    "hidden_min": "smallest first hidden layer; layers [d, h, max(code_min, ceil(h/2))] with h = ceil(d/2) "
                  "clipped to [hidden_min, hidden_max]",
    "hidden_max": "largest first hidden layer (keeps wide tables cheap)",
    "code_min": "smallest code (innermost) layer",
    "batch_min": "smallest mini-batch",
    "max_steps_per_epoch": "the batch grows with the rows: max(batch_min, ceil(rows / this))",
    "pilot_outer": "the pilot autoencoder's outer iterations (S = 0)",
    "pilot_steps": "the pilot's gradient steps per outer iteration (about; whole epochs)",
    "pilot_learning_rate": "the pilot's Adam learning rate",
    "lambda_quantile": "RDA's l2,1 threshold: this quantile of the pilot's training residual row norms",
    "warm_outer": "the warm l2,1 continuation's outer iterations (from the pilot's weights, S0 = prox(pilot residual))",
    "warm_steps": "the continuation's gradient steps per outer iteration",
    "warm_learning_rate": "the continuation's Adam learning rate",
    "flag_mads": "flag rule (n_flagged): median + this x 1.4826 MAD of the ensemble's training scores",
    "tied": "decoder weights tied to the encoder's",
    "member_grid": "the members' grid (rda_cli.table_rule.MEMBER_GRIDS): widths (network shapes) or extent "
                   "(pilot learning rate x1/x0.1 by robust/min-max scaling)",
    "combine": "how the members' robust z-scores are combined per row: mean, max or top2 (mean of the two largest)",
    "tail": "add a per-feature empirical-CDF tail score (rda_cli.tails) as one more member",
    "forest": "add an Isolation Forest kept as arrays (rda_cli.forest) as one more member, after the tail score",
    "isolate": "the networks do not learn this fraction of the training rows, those the tail score and the forest "
               "score highest (0: they learn every row; needs tail or forest)",
}


def rule_schema():
    """The ``model:`` section: the table rule's settings (:class:`rda_cli.table_rule.TableRule`), whose
    defaults are read from :data:`~rda_cli.table_rule.DEFAULT_RULE`, so a config that sets nothing runs
    exactly what ``rda detect`` runs."""
    from dataclasses import fields

    from ..table_rule import COMBINE, DEFAULT_RULE, MEMBER_GRID, MEMBER_GRIDS

    from ..persistence import MAX_LAYER_WIDTH

    ceilings = {"n_members": len(MEMBER_GRID), "hidden_min": MAX_LAYER_WIDTH, "hidden_max": MAX_LAYER_WIDTH,
                "code_min": MAX_LAYER_WIDTH, "batch_min": MAX_BATCH, "max_steps_per_epoch": MAX_STEPS,
                "pilot_outer": MAX_ITERATIONS, "pilot_steps": MAX_STEPS, "warm_outer": MAX_ITERATIONS,
                "warm_steps": MAX_STEPS}
    out = {}
    for f in fields(DEFAULT_RULE):
        value = getattr(DEFAULT_RULE, f.name)
        if f.name == "member_grid":
            out[f.name] = Field("choice", value, choices=tuple(MEMBER_GRIDS), doc=_MODEL_DOCS[f.name])
        elif f.name == "combine":
            out[f.name] = Field("choice", value, choices=COMBINE, doc=_MODEL_DOCS[f.name])
        elif isinstance(value, bool):
            out[f.name] = Field("bool", value, doc=_MODEL_DOCS[f.name])
        elif isinstance(value, int):
            out[f.name] = Field("int", value, minimum=1, maximum=ceilings[f.name], doc=_MODEL_DOCS[f.name])
        elif f.name == "isolate":
            out[f.name] = Field("float", value, minimum=0, maximum=0.5, doc=_MODEL_DOCS[f.name])
        elif f.name == "lambda_quantile":
            out[f.name] = Field("float", value, minimum=0, maximum=1, exclusive_minimum=True, doc=_MODEL_DOCS[f.name])
        else:
            out[f.name] = Field("float", value, minimum=0, exclusive_minimum=f.name != "flag_mads",
                                doc=_MODEL_DOCS[f.name])
    return out


SCHEMA = {
    **header_schema("benchmark", "seeds the split, the subsamples, the forest and the networks", seeds=[0, 1, 2]),
    "protocol": Field("choice", "inductive", choices=("inductive", "transductive"),
                      doc="inductive: fit on a stratified 70%, score the other 30%; transductive: fit and score all rows"),
    "data": {
        "paths": Field("str_list", None, nullable=True, min_length=1,
                       doc="ADBench .npz files, folders or globs; null: $RDA_ADBENCH_DIR, else shared/data/adbench "
                           "or ../shared/data/adbench (current folder, then next to the repository)"),
        "sets": Field("str_list", None, nullable=True, min_length=1,
                      doc="keep only these sets (names without ADBench's number, e.g. glass); null: all found"),
        "test_size": Field("float", 0.3, minimum=0, maximum=1, exclusive_minimum=True,
                           doc="fraction of rows kept for testing (stratified; inductive protocol)"),
        "scaling": Field("choice", "minmax", choices=("minmax", "standard"),
                         doc="the baselines' scaling, fitted on the training rows: minmax to [0, 1] (ADBench's "
                             "data generator) or standard (mean 0, variance 1)"),
    },
    "detectors": Field("str_list", list(DEFAULT_DETECTORS), min_length=1, check=_check_detectors,
                       doc="detectors to run: " + ", ".join(DETECTORS)),
    "quadratic_max_rows": Field("int", 10000, minimum=10, maximum=MAX_ROWS,
                                doc="OCSVM, LOF and KNN are fitted on a random subsample of at most this many "
                                    "training rows"),
    "model": rule_schema(),
}


def post_check(config):
    """Check the data sets of a config before anything runs (raises ConfigError, one line)."""
    from ..data.adbench import AdbenchError, find_sets

    try:
        paths = find_sets(config["data"]["paths"], config["data"]["sets"])
    except AdbenchError as exc:
        key = "data.sets" if "not found among" in str(exc) else "data.paths"
        raise ConfigError(f"config key '{key}': {exc}") from None
    for p in paths:  # every file is checked before anything runs (and stays cached)
        try:
            X, y = _load(str(p))
        except AdbenchError as exc:
            raise ConfigError(str(exc)) from None
        if config["protocol"] == "inductive" and min(int(y.sum()), int(len(y) - y.sum())) < 2:
            raise ConfigError(f"{p}: a stratified split needs at least 2 anomalies and 2 normal rows")
    if len(set(config["detectors"])) != len(config["detectors"]):
        raise ConfigError(f"config key 'detectors': got {config['detectors']!r}, expected no duplicates")


# ----------------------------------------------------------------------------------- data
@functools.lru_cache(maxsize=64)
def _load(path):
    from ..data.adbench import load_adbench

    return load_adbench(path)


def check_cell(cell):
    """The keys a finished cell must hold (see :func:`compute_cell`)."""
    return cell_problem(cell, {"set": "str", "detector": "str", "seed": "int", "auroc": "frac", "ap": "frac",
                               "fit_seconds": "num", "score_seconds": "num", "n_train": "int", "n_test": "int"})


def list_cells(config):
    """One cell per data set x runnable detector x seed, the largest sets first.

    Returns
    -------
    list of dict
        ``id``, ``set``, ``path``, ``detector``, ``seed``.
    """
    sets = data_sets(config)
    detectors, _ = runnable_detectors(config)
    # larger sets first, so that a process pool does not end on one long cell
    order = sorted(sets, key=lambda name: -_load(sets[name])[0].size)
    cells = []
    for name in order:
        for seed in seed_list(config):
            for det in detectors:
                cells.append({"id": f"{name}__{det}{seed_suffix(config, seed)}", "set": name, "path": sets[name],
                              "detector": det, "seed": seed})
    return cells


def split(config, X, y, seed):
    """Training and evaluation rows: ``(X_fit, X_eval, y_eval)``; labels only for the evaluation."""
    if config["protocol"] == "transductive":
        return X, X, y
    from sklearn.model_selection import train_test_split

    X_fit, X_eval, _, y_eval = train_test_split(X, y, test_size=config["data"]["test_size"], stratify=y,
                                                random_state=seed)
    return X_fit, X_eval, y_eval


class _Affine:
    """Per-column ``(X - shift) / scale`` fitted on the training rows: ``"minmax"`` (to [0, 1], as
    ADBench's data generator does) or ``"standard"`` (mean 0, variance 1). A constant column is
    shifted only."""

    def __init__(self, X, kind="minmax"):
        if kind == "standard":
            self.shift, scale = X.mean(axis=0), X.std(axis=0)
        else:
            self.shift, scale = X.min(axis=0), X.max(axis=0) - X.min(axis=0)
        self.scale = np.where(scale > 0, scale, 1.0)

    def __call__(self, X):
        return (X - self.shift) / self.scale


def autoencoder_scaler(kind, X_fit):
    """The autoencoders' scaling (``"minmax"``, ``"robust"`` or ``"quantile"``), fitted on ``X_fit``.

    Returns a function mapping rows to float32. ``robust`` maps each column's 1st and 99th
    percentiles to 0 and 1 (where they coincide: its minimum and maximum; a constant column maps
    to 0.5), so a few extreme training rows do not squeeze the others together, and values beyond
    stay beyond (the sigmoid output cannot reach them: they keep a large residual).
    """
    if kind == "robust":  # the table rule's scaling (rda_cli.scaling)
        from ..scaling import RobustScaler01

        return RobustScaler01().fit(X_fit).transform
    if kind == "quantile":
        from sklearn.preprocessing import QuantileTransformer

        qt = QuantileTransformer(n_quantiles=min(1000, len(X_fit)), output_distribution="uniform",
                                 subsample=10**9).fit(X_fit)
        return lambda X: qt.transform(X).astype(np.float32)
    from ..scaling import MinMaxScaler01

    scaler = MinMaxScaler01().fit(X_fit)
    return scaler.transform


# ----------------------------------------------------------------------------------- the RDA rule
def table_rule(model_cfg):
    """The :class:`~rda_cli.table_rule.TableRule` of a config's ``model:`` section."""
    from ..table_rule import TableRule

    return TableRule(**{name: model_cfg[name] for name in TableRule.names()})


def rda_rule(model_cfg, n_rows, n_features):
    """The pilot autoencoder's network and schedule on a table of ``n_rows`` x ``n_features`` (no labels):
    :func:`rda_cli.table_rule.member_settings` of the config's rule (member 0)."""
    from ..table_rule import member_settings

    return member_settings(n_rows, n_features, table_rule(model_cfg))


def ensemble_for(model_cfg, detector, seed):
    """The (unfitted) :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` an autoencoder cell fits:
    ``rda``/``ae`` one member (the rule's member 0, no tail score or forest), ``rda-ens``/``ae-ens``/``rda+iforest``
    ``n_members``; the ``ae`` ones without a penalty. ``rda detect`` builds the same object (:func:`rda_cli.detect.detect`)."""
    from ..ensemble import RobustAutoencoderEnsemble

    rule = table_rule(model_cfg)
    if detector in ("rda", "ae"):
        rule = rule.replace(n_members=1, tail=False, forest=False)
    return RobustAutoencoderEnsemble.from_rule(rule, penalty=None if detector.startswith("ae") else "l21_rows",
                                               random_state=int(seed))


def fit_autoencoders(model_cfg, X_fit, seed, detector="rda"):
    """Fit the table rule's detector ``detector`` on raw training rows ``X_fit`` (it scales them itself);
    returns ``(ensemble, facts)``. The one code path of ``rda detect``: the same ensemble, the same fit."""
    ens = ensemble_for(model_cfg, detector, seed).fit(X_fit)
    first = ens.member_info_[0]
    facts = {k: first[k] for k in ("layers", "batch_size", "inner_epochs")}
    if "threshold" in first:
        facts.update(threshold=first["threshold"], first_flagged=first["first_flagged"])
    facts.update(n_flagged=int(ens.labels_.sum()), n_members=len(ens.members_))
    return ens, facts


def _iforest_scores(X_fit, X_eval, seed):
    """IsolationForest(random_state=seed) on the table rule's robust scaling: (training, evaluation) scores."""
    from sklearn.ensemble import IsolationForest

    from ..scaling import RobustScaler01

    scaler = RobustScaler01().fit(X_fit)
    forest = IsolationForest(random_state=seed).fit(scaler.transform(X_fit))
    train = -forest.score_samples(scaler.transform(X_fit))
    return train, (train if X_eval is X_fit else -forest.score_samples(scaler.transform(X_eval)))


# ----------------------------------------------------------------------------------- detectors
def _subsample(X, max_rows, seed):
    if len(X) <= max_rows:
        return X, False
    rows = np.sort(np.random.default_rng([seed, 7]).choice(len(X), max_rows, replace=False))
    return X[rows], True


def _pyod(name):
    from pyod.models.copod import COPOD
    from pyod.models.ecod import ECOD
    from pyod.models.hbos import HBOS
    from pyod.models.knn import KNN

    return {"knn": KNN, "ecod": ECOD, "copod": COPOD, "hbos": HBOS}[name]()


def run_detector(config, detector, X_fit, X_eval, seed):
    """Fit ``detector`` on ``X_fit`` (no labels) and score ``X_eval`` (higher = more abnormal).

    Returns ``(scores, facts)``; ``facts`` holds ``fit_seconds``, ``score_seconds`` and
    ``n_fit_rows`` and, for the autoencoders, the network and threshold.
    """
    transductive = X_eval is X_fit
    facts = {}
    t0 = time.perf_counter()
    if detector in AUTOENCODERS:
        ens, info = fit_autoencoders(config["model"], X_fit, seed, detector)
        facts.update(info, n_fit_rows=len(X_fit))
        if detector == "rda+iforest":  # rank (ECDF) average with Isolation Forest on the same scaled rows
            from ..ensemble import rank_average

            forest_train, forest_eval = _iforest_scores(X_fit, X_eval, seed)
            t1 = time.perf_counter()
            scores = rank_average([(ens.decision_scores_, ens.decision_scores_ if transductive
                                    else ens.decision_function(X_eval)), (forest_train, forest_eval)])
        else:
            t1 = time.perf_counter()
            scores = ens.decision_scores_ if transductive else ens.decision_function(X_eval)
    else:
        scale = _Affine(X_fit, config["data"]["scaling"])
        S_fit = scale(X_fit)
        S_eval = S_fit if transductive else scale(X_eval)
        sub, subsampled = (_subsample(S_fit, config["quadratic_max_rows"], seed) if detector in QUADRATIC
                           else (S_fit, False))
        own_rows = transductive and not subsampled  # scores of the fitted rows come from the fit itself
        facts["n_fit_rows"] = len(sub)
        if detector == "iforest":
            from sklearn.ensemble import IsolationForest

            model = IsolationForest(random_state=seed).fit(sub)
            t1 = time.perf_counter()
            scores = -model.score_samples(S_eval)
        elif detector == "lof":
            from sklearn.neighbors import LocalOutlierFactor

            if own_rows:
                model = LocalOutlierFactor().fit(sub)
                t1 = time.perf_counter()
                scores = -model.negative_outlier_factor_
            else:
                model = LocalOutlierFactor(novelty=True).fit(sub)
                t1 = time.perf_counter()
                scores = -model.score_samples(S_eval)
        elif detector == "ocsvm":
            from sklearn.svm import OneClassSVM

            model = OneClassSVM().fit(sub)
            t1 = time.perf_counter()
            scores = -model.decision_function(S_eval)
        elif detector in PYOD_DETECTORS:
            model = _pyod(detector).fit(sub)
            t1 = time.perf_counter()
            scores = model.decision_scores_ if own_rows else model.decision_function(S_eval)
        elif detector == "rpca":
            from ..baselines import RobustPCA

            model = RobustPCA().fit(sub)
            t1 = time.perf_counter()
            if own_rows:
                scores = model.decision_scores_
            else:
                scores = _row_space_distance(model.L_, S_eval)
            facts["rank"] = int(model.rank_)
        else:
            raise ValueError(f"unknown detector {detector!r}")
    facts["fit_seconds"] = t1 - t0
    facts["score_seconds"] = time.perf_counter() - t1
    return np.asarray(scores, dtype=np.float64), facts


def _row_space_distance(L, X):
    """Distance of each row of ``X`` to the row space of ``L`` (robust PCA's score for unseen rows)."""
    _, s, Vt = np.linalg.svd(L, full_matrices=False)
    V = Vt[s > s.max() * 1e-9].T if s.size and s.max() > 0 else np.zeros((L.shape[1], 0))
    return np.linalg.norm(X - (X @ V) @ V.T, axis=1)


def compute_cell(config, cell, finished=None):
    """Split the cell's set by its seed, fit its detector without labels, score the evaluation rows.

    Returns
    -------
    (dict, None)
        The cell with ``auroc``, ``ap``, ``fit_seconds``, ``score_seconds``, the sizes and the
        detector's facts; no arrays.
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    t0 = time.perf_counter()
    seed = cell_seed(config, cell)
    X, y = _load(cell["path"])
    X_fit, X_eval, y_eval = split(config, X, y, seed)
    scores, facts = run_detector(config, cell["detector"], X_fit, X_eval, seed)
    if not np.isfinite(scores).all():
        scores = np.nan_to_num(scores, nan=0.0, posinf=np.finfo(float).max, neginf=-np.finfo(float).max)
    result = dict(cell, seed=seed, protocol=config["protocol"], n_train=len(X_fit), n_test=len(X_eval),
                  n_features=int(X.shape[1]), anomaly_rate=float(y.mean()),
                  auroc=float(roc_auc_score(y_eval, scores)), ap=float(average_precision_score(y_eval, scores)),
                  **facts)
    result.pop("path", None)
    result["seconds"] = time.perf_counter() - t0
    return json_safe(result), None
