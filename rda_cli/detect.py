"""``rda detect`` and ``rda score``: Robust Deep Autoencoders on the user's own tables.

:func:`detect` reads a table (see :mod:`rda_cli.tabular`) and by default (``penalty="l21_rows"``, no
``lam``) fits the table rule's :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` on it (robust
scaling, members, cut-off: :mod:`rda_cli.table_rule`, the same object the benchmark's RDA cells fit);
with ``lam`` or another penalty it scales the table to [0, 1], chooses lambda, fits one
:class:`~rda_cli.estimator.RobustAutoencoder`; either way it writes a result folder; :func:`score` applies a
saved model to new rows. Both check their whole input before training or writing anything, and
:func:`detect` builds its folder under a temporary name next to the destination and renames it at
the end, so a failure never leaves a half-written folder. This module is the service (options,
lambda, fitting, scoring); :mod:`rda_cli.outputs` holds the rules on where files may be written and
writes them, :mod:`rda_cli.detect_report` renders them. Errors name the function's parameters (``out_dir``, ``lam``); the command line
shows its own flags instead.

The choice of lambda for one model is in :mod:`rda_cli.detect_lambda`.
"""

from __future__ import annotations

import difflib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .detect_report import TOP_FEATURES, plural, top_columns
from .errors import DetectError
from .outputs import (MARKER, DetectResult, OutputChangedError, check_out_dir, check_score_out, write_marked,
                      write_result, write_scores_file)
from .owned import write_folder
from .safeio import show_path
from .scoring import ROW_PENALTIES
from .detect_lambda import choose_lambda
from .progress import Phases, listening
from .scaling import MinMaxScaler01
from .tabular import TableError, read_table

__all__ = ["DetectError", "detect", "score", "parse_overrides", "parse_layers",
           "estimator_params"]

PENALTY_CHOICES = ("l21_rows", "l1", "l21_cols")
# The schedule used unless `overrides` change it: short, for tables of a few hundred to a few
# thousand rows (the estimator's own defaults are the paper's 20 x 50 epochs on 5000 images).
RESERVED = {"penalty": "`penalty`", "lam": "`lam` or `lam_for_fraction`", "lam_for_fraction": "`lam_for_fraction`",
            "contamination": "`contamination`",
            "layers": "`layers`"}


# ---------------------------------------------------------------------------- options
def _setting_fields():
    """The typed rules of the estimator settings ``overrides`` may change (the experiment configs' rules)."""
    from .experiments.benchmark import rule_schema
    from .experiments.common import model_schema
    from .experiments.config import MAX_SEED, Field

    fields = {k: v for k, v in model_schema().items() if k not in RESERVED}
    del fields["reinitialize"]  # true, false or "auto": the estimator's own check (estimator_params) decides
    fields.update(
        random_state=Field("int", 0, nullable=True, minimum=0, maximum=MAX_SEED, doc="seed"),
        warm_start=Field("bool", False),
        verbose=Field("int", 0, minimum=0, maximum=100),
    )
    for name, field in rule_schema().items():  # the ensemble's settings (the table rule's), with their ceilings
        fields.setdefault(name, field)
    return fields


def ensemble_settings():
    """The settings ``overrides`` may change on the ensemble path: the table rule's and ``random_state``."""
    from .table_rule import TableRule

    return TableRule.names() + ["random_state"]


def parse_overrides(items):
    """``["name=value", ...]`` -> dict; values parsed as YAML; names and types checked against the
    estimator's settings (and the ensemble's, :func:`ensemble_settings`) with the same typed rules as the
    experiment configs."""
    import yaml

    from .experiments.config import ConfigError, validate_value
    from .estimator import RobustAutoencoder

    valid = sorted(set(RobustAutoencoder().get_params()) | set(ensemble_settings()))
    out = {}
    for item in items or ():
        if "=" not in item:
            raise DetectError(f"`overrides` {item!r}: expected NAME=VALUE, e.g. inner_epochs=20")
        name, text = (s.strip() for s in item.split("=", 1))
        if name in RESERVED:
            raise DetectError(f"`overrides` {name}: use {RESERVED[name]} instead")
        if name not in valid:
            close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            settable = ", ".join(v for v in valid if v not in RESERVED)
            raise DetectError(f"`overrides` {name}: unknown estimator setting{hint} (settings: {settable})")
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            raise DetectError(f"`overrides` {item!r}: cannot parse the value {text!r}") from None
        field = _setting_fields().get(name)
        if field is not None:
            try:
                value = validate_value(field, value, name, label="`overrides`")
            except ConfigError as exc:
                raise DetectError(str(exc)) from None
        out[name] = value
    return out


def parse_layers(text, width):
    """``"64,32"`` (hidden sizes) -> ``[width, 64, 32]``; None -> None (the table rule's network)."""
    if text is None or not str(text).strip():
        return None
    try:
        hidden = [int(v) for v in str(text).replace(" ", "").split(",")]
    except ValueError:
        raise DetectError(f"`layers` {text!r}: expected comma-separated positive integers, e.g. 64,32") from None
    if not hidden or any(v < 1 for v in hidden):
        raise DetectError(f"`layers` {text!r}: expected comma-separated positive integers, e.g. 64,32")
    from .persistence import network_size_problem

    if network_size_problem([int(width)] + hidden):  # the limits a saved model is loaded with
        raise DetectError(f"`layers` {text!r}: {network_size_problem([int(width)] + hidden)}")
    return [int(width)] + hidden


def top_features(shares, names, flagged, k=TOP_FEATURES):
    """``"f3:0.41;f17:0.22;..."`` for each flagged row: its ``k`` largest feature shares (from
    :meth:`~rda_cli.estimator.RobustAutoencoder.feature_contributions`, so they sum to at most 1), with the
    table's column names, largest first, shares below 0.005 left out; ``""`` for the other rows."""
    out = [""] * len(shares)
    for i, cols in top_columns(shares, flagged, k).items():
        out[i] = ";".join(f"{names[j]}:{shares[i, j]:.2f}" for j in cols)
    return out


def estimator_params(width, n_rows, penalty, layers=None, overrides=None):
    """The RobustAutoencoder settings of a single-model detect run: the table rule's single model
    (:func:`rda_cli.table_rule.one_model_settings`, what ``pyod_detector.RDA`` fits too) with ``overrides``,
    validated (raises DetectError)."""
    from sklearn.utils._param_validation import InvalidParameterError

    from .estimator import RobustAutoencoder
    from .table_rule import one_model_settings

    if penalty not in PENALTY_CHOICES:
        raise DetectError(f"`penalty` {penalty!r}: expected one of {', '.join(PENALTY_CHOICES)}")
    given = dict(overrides or {}, penalty=penalty)
    hidden = parse_layers(layers, width)
    if hidden is not None:
        given["layers"] = hidden
    params = dict(one_model_settings(n_rows, width, given), lam=0.0)
    try:
        RobustAutoencoder(**params)._validate_params()
    except InvalidParameterError as exc:  # scikit-learn's parameter check: one line for the user
        raise DetectError(f"invalid setting: {exc}") from None
    return params


def default_out_dir(data_path):
    stem = Path(data_path).stem
    return Path("results") / "detect" / (stem if stem.strip(".") else "data")  # `..csv`: not results/detect itself


# ---------------------------------------------------------------------------- detect
def ensemble_for(table, contamination, layers, overrides, members):
    """The :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` of a detect run (the default detector:
    ``penalty="l21_rows"`` without ``lam``), its settings validated (raises DetectError). The benchmark's
    RDA cells build the same object (:func:`rda_cli.experiments.benchmark.ensemble_for`)."""
    from sklearn.utils._param_validation import InvalidParameterError

    from .ensemble import RobustAutoencoderEnsemble

    if layers is not None:
        parse_layers(layers, table.n_features)  # a malformed value is refused as such first
        raise DetectError("`layers` sizes a single model (give `lam`); the ensemble sizes its members from the "
                          "table (rda_cli/table_rule.py)")
    own = set(ensemble_settings())
    single = {k: v for k, v in overrides.items() if k not in own}
    if single:
        estimator_params(table.n_features, table.n_rows, "l21_rows", None, single)  # typed refusals as before
        raise DetectError(f"`overrides` {', '.join(sorted(single))}: a setting of a single model (give `lam`); "
                          f"the ensemble's settings: {', '.join(sorted(own))}")
    params = {k: v for k, v in overrides.items() if k in own}
    if members is not None:
        params["n_members"] = members
    ens = RobustAutoencoderEnsemble(contamination=contamination, **params)
    try:
        ens._validate_params()
    except InvalidParameterError as exc:
        raise DetectError(f"invalid setting: {exc}") from None
    return ens


def detect(data_path, out_dir=None, penalty="l21_rows", lam=None, contamination=None, layers=None,
           id_column=None, overrides=(), progress=None, force=False, array=None, missing="allow", members=None,
           lam_for_fraction=None):
    """Fit the table detector (or one RDA) on a user table and write the result folder; returns a summary dict.

    With ``penalty="l21_rows"`` and no ``lam`` (the default) it fits the RDA ensemble of the table rule
    (:class:`~rda_cli.ensemble.RobustAutoencoderEnsemble`, ``members`` members): rows above its robust
    cut-off are flagged, or with ``contamination`` (PyOD's expected fraction of anomalies: a cut-off on
    the scores, the fit does not depend on it) the top fraction. With ``lam``, ``lam_for_fraction`` or
    another ``penalty``, one :class:`~rda_cli.estimator.RobustAutoencoder` on min-max scaled rows, lambda
    as :func:`rda_cli.detect_lambda.choose_lambda` says (``lam``; the search for about
    ``lam_for_fraction`` of the rows (columns for ``l21_cols``) flagged; else the knee rule): its
    flags are the rows (columns) of its sparse part, so it takes no ``contamination``.

    ``missing="allow"``: empty or NaN cells are missing values, left out of the loss and the scores
    and filled in by the model (``imputed.npy``); ``"refuse"``: every cell must be a number.

    ``overrides`` are ``"name=value"`` strings for RobustAutoencoder settings (schedule, seed...);
    ``progress(done, total, label)`` is called after each fit; ``force`` allows replacing a folder an
    earlier detect wrote (see :func:`check_out_dir`); ``array`` names the array of an ``.npz`` input.
    Raises :class:`TableError` / :class:`DetectError` (one-line messages) before anything is trained
    or written; an OSError met while writing leaves nothing behind (the results are built in a
    temporary folder, renamed at the end).
    """
    t0 = time.perf_counter()
    from .errors import RdaError
    from .selection import check_fraction

    if lam is not None and lam_for_fraction is not None:
        raise DetectError("give either `lam` or `lam_for_fraction`, not both")
    if lam is not None and not (math.isfinite(lam) and lam >= 0):
        raise DetectError(f"`lam` {lam!r}: expected a finite number >= 0")
    try:
        for name, value in (("`contamination`", contamination), ("`lam_for_fraction`", lam_for_fraction)):
            if value is not None:
                check_fraction(value, name)
    except RdaError as exc:
        raise DetectError(str(exc)) from None
    ensemble = penalty == "l21_rows" and lam is None and lam_for_fraction is None
    if contamination is not None and not ensemble:
        raise DetectError("`contamination` is the ensemble's cut-off on the scores (penalty l21_rows without `lam`); "
                          "a single model flags the rows (columns) of its sparse part: choose its lambda with "
                          "`lam` or `lam_for_fraction`")
    out_dir = Path(out_dir) if out_dir is not None else default_out_dir(data_path)
    claimed = check_out_dir(out_dir, data_path, force)
    table = read_table(data_path, id_column=id_column, min_rows=2, array=array, missing=missing)
    run = _Run(table, data_path, id_column, progress, t0)
    if ensemble:  # the table detector
        model = ensemble_for(table, contamination, layers, parse_overrides(overrides), members)

        def fit_and_write(tmp):
            return _fit_ensemble_and_write(run, tmp, model)
    else:
        if members is not None:
            raise DetectError("`members` sets the ensemble (penalty l21_rows without `lam`); a single model has none")
        given = parse_overrides(overrides)
        from .estimator import RobustAutoencoder

        single = set(RobustAutoencoder().get_params())
        own = [k for k in given if k in ensemble_settings() and k not in single]
        if own:
            raise DetectError(f"`overrides` {', '.join(own)}: a setting of the ensemble (penalty l21_rows without `lam`)")
        params = estimator_params(table.n_features, table.n_rows, penalty, layers, given)

        def fit_and_write(tmp):
            return _fit_and_write(run, tmp, params, penalty, lam, lam_for_fraction)
    info = write_folder(claimed, fit_and_write, "`out_dir`", error=OutputChangedError, refused=DetectError)
    info["out_dir"] = str(out_dir)
    return info


@dataclass
class _Run:
    """What one detect run carries from the request to its result files."""

    table: object
    data_path: object
    id_column: str | None
    progress: object
    t0: float

    def result(self, model, scaler, scores, flagged, L, S, shares, col_rows=None, **fields):
        """The :class:`~rda_cli.outputs.DetectResult` of a fit: ``info`` (``detect.json``) built here, the one
        place, from the table and the run (its input, rows, missing cells, flags, seconds) and ``fields``
        (what the detector says of itself: penalty, layers, lambda, threshold, how, search, fits, schedule)."""
        table = self.table
        info = {"data": str(self.data_path), "array": table.array_name, "n_rows": table.n_rows,
                "n_features": table.n_features, "n_missing": int(np.isnan(table.X).sum()),
                "n_flagged": int(flagged.sum()), "id_column": self.id_column, **fields}
        if col_rows is not None:
            info["flagged_columns"] = [name for name, _, flagged_col in col_rows if flagged_col]
        info["seconds"] = time.perf_counter() - self.t0
        imputed = np.where(np.isnan(table.X), L, table.X) if info["n_missing"] else None
        return DetectResult(info, table, scores, flagged, L, S, model, scaler, col_rows,
                            top_features(shares, table.feature_names, flagged), shares, imputed)


SCHEDULE_KEYS = ("outer_iterations", "inner_epochs", "batch_size", "max_steps_per_epoch", "learning_rate",
                 "reinitialize", "random_state", "lambda_scaling")


def _fit_and_write(run, tmp, params, penalty, lam, lam_for_fraction):
    """Scale, choose lambda, fit one model, and write every result file into ``tmp``."""
    table = run.table
    scaler = MinMaxScaler01().fit(table.X, table.feature_names, run.id_column)
    X = scaler.transform(table.X)
    model, chosen, search, how, fit = choose_lambda(X, params, penalty, lam, lam_for_fraction, run.progress)

    shares, scores = model.feature_contributions(X, return_scores=True)
    flagged = model.outlier_mask_  # the training rows: the fitted flags (none for a column penalty)
    L = scaler.inverse_transform(model.L_)
    S = scaler.inverse_scale(model.S_)
    col_rows = None
    if penalty == "l21_cols":  # a column penalty flags columns (model.column_mask_), not rows
        norms = np.linalg.norm(S, axis=0)
        col_rows = [(table.feature_names[j], float(norms[j]), bool(model.column_mask_[j]))
                    for j in np.argsort(-norms, kind="stable")]
    fields = {}
    if col_rows is not None and chosen > 0 and model.prox_threshold_ > 0:  # (lambda 0 holds no column back)
        fields["column_ratios"] = _column_ratios(X, model, table.feature_names)
        fields["lam_flags_no_column"] = chosen * max(1.0, max(fields["column_ratios"].values()))
    elif col_rows is None and not flagged.any() and chosen > 0 and model.prox_threshold_ > 0:
        largest = model.prox_threshold_ + float(np.max(scores))  # unflagged: score = residual - threshold
        fields["none_flagged"] = {"largest_residual": largest, "lam_to_flag_one": chosen * largest / model.prox_threshold_}
    result = run.result(model, scaler, scores, flagged, L, S, shares, col_rows, penalty=penalty, layers=model.layers_,
                        lam=chosen, threshold=model.prox_threshold_, how=how, search=search, fits=fit.done,
                        **{k: model.get_params()[k] for k in SCHEDULE_KEYS}, **fields)
    write_result(tmp, result)
    return result.info


def _column_ratios(X, model, names):
    """Each column's residual norm ``||x_j - l_j||`` (scaled units, observed cells) over the prox threshold it
    was held to (``threshold * sqrt(observed / rows)``): above 1 the column is flagged; near 1, a close call;
    the lambda at which no column would be flagged, with these residuals, is lambda times the largest."""
    observed = ~np.isnan(X)
    R = np.where(observed, X - model.L_, 0.0)
    held = model.prox_threshold_ * np.sqrt(observed.sum(axis=0) / len(X))
    ratio = np.divide(np.linalg.norm(R, axis=0), held, out=np.full(X.shape[1], np.inf), where=held > 0)
    return {names[j]: float(ratio[j]) for j in range(X.shape[1])}


def _fit_ensemble_and_write(run, tmp, ens):
    """Fit the ensemble on the raw rows, score and explain them, write every result file into ``tmp``.
    A row's score is the ensemble's score minus its cut-off (> 0: flagged)."""
    table, progress = run.table, run.progress
    phases = ens.fit_phases()
    if progress:
        progress(0, len(phases), phases[0])
    with listening(Phases(progress, phases) if progress else None):
        try:
            ens.fit(table.X)
        except TableError as exc:  # a column the scaler cannot take (checked before any training)
            raise DetectError(f"{table.path}: {exc}") from None
    if progress:
        progress(len(phases), len(phases), f"{plural(len(ens.members_), 'member')} fitted")
    scaler = ens.scaler_
    scaler.feature_names, scaler.id_column = list(table.feature_names), run.id_column
    shares, z = ens.feature_contributions(table.X, return_scores=True)
    scores = z - ens.threshold_
    flagged = scores > 0
    L_s, S_s = ens.decompose(table.X)
    L, S = scaler.inverse_transform(L_s), scaler.inverse_scale(S_s)
    first = ens.member_info_[0]
    rule = ens.rule()
    how = (f"the table rule's RDA ensemble ({plural(len(ens.members_), 'member')}; rda_cli/table_rule.py): rows flagged "
           + (f"in the top {ens.contamination:g} of the scores" if ens.contamination is not None else
              f"above median + {rule.flag_mads:g} x 1.4826 MAD of the scores"))
    result = run.result(
        ens, scaler, scores, flagged, L, S, shares,
        penalty="l21_rows", detector="ensemble", n_members=len(ens.members_),
        layers=[i["layers"] for i in ens.member_info_], lam=None, threshold=float(ens.threshold_), how=how, search={},
        member_thresholds=[i.get("threshold") for i in ens.member_info_],
        first_flagged=[i.get("first_flagged") for i in ens.member_info_], fits=2 * len(ens.members_),
        rule=rule.__dict__, outer_iterations=rule.pilot_outer, inner_epochs=first["inner_epochs"],
        batch_size=first["batch_size"], max_steps_per_epoch=None, learning_rate=rule.pilot_learning_rate,
        reinitialize=False, random_state=ens.random_state, lambda_scaling="absolute", contamination=ens.contamination,
        s_nonzero_rows=int(np.any(S != 0, axis=1).sum()), n_learned=ens.n_learned_)
    write_result(tmp, result)
    return result.info


# ---------------------------------------------------------------------------- score
def load_model(model_dir):
    """``(model, scaler)`` from a ``detect`` model folder (raises DetectError): a
    :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` and its robust scaler, or (one model, ``lam``)
    a :class:`~rda_cli.estimator.RobustAutoencoder` and its :class:`MinMaxScaler01`."""
    from .estimator import RobustAutoencoder
    from .persistence import ModelFileError

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise DetectError(f"`model_dir` {model_dir} does not exist or is not a folder")
    from .ensemble import ENSEMBLE_FILE

    if (model_dir / ENSEMBLE_FILE).exists():  # the default detector's folder
        from .ensemble import RobustAutoencoderEnsemble

        try:
            ens = RobustAutoencoderEnsemble.load(model_dir)
        except ModelFileError as exc:
            raise DetectError(f"`model_dir` {model_dir}: {exc}") from None
        return ens, ens.scaler_
    missing = [n for n in ("params.json", "network.keras", "arrays.npz", "scaler.json") if not (model_dir / n).exists()]
    if missing:
        raise DetectError(f"`model_dir` {model_dir} is not a model folder written by rda detect "
                          f"(missing {', '.join(missing)})")
    scaler = MinMaxScaler01.load(model_dir / "scaler.json")
    try:
        model = RobustAutoencoder.load(model_dir)
    except ModelFileError as exc:  # every damaged or untrusted file (see rda_cli.persistence)
        raise DetectError(f"`model_dir` {model_dir}: {exc}") from None
    if model.n_features_in_ != scaler.n_features:
        raise DetectError(f"`model_dir` {model_dir}: the scaler has {scaler.n_features} columns but the network "
                          f"{model.n_features_in_}")
    return model, scaler


def model_folder(model_dir):
    """The model folder ``model_dir`` names: itself, or for a detect result folder its ``model/`` (raises
    DetectError when it is neither, with "did you mean" when a ``model/`` inside it holds a model)."""
    from .ensemble import ENSEMBLE_FILE

    model_dir = Path(model_dir)
    inner = model_dir / "model"
    own = any((model_dir / n).exists() for n in (ENSEMBLE_FILE, "params.json"))
    if not own and (model_dir / MARKER).is_file() and inner.is_dir():
        return inner  # a detect result folder: its model
    if not own and inner.is_dir() and any((inner / n).exists() for n in (ENSEMBLE_FILE, "params.json")):
        raise DetectError(f"`model_dir` {show_path(model_dir)} is not a model folder; did you mean "
                          f"{show_path(inner)}?")
    if not model_dir.is_dir():
        raise DetectError(f"`model_dir` {show_path(model_dir)} does not exist or is not a folder")
    if not own:
        raise DetectError(f"`model_dir` {show_path(model_dir)} is not a model folder written by rda detect (it has "
                          f"no {ENSEMBLE_FILE} or params.json), nor a detect result folder")
    return model_dir


def score(model_dir, data_path, out="scores.csv", force=False, array=None, missing="allow", id_column=None,
          contamination=None, threshold=None, figure=True):
    """Score the rows of ``data_path`` with a saved detect model; writes ``out`` (same format as
    detect's scores.csv) and, with ``figure``, its histogram beside it (:func:`figure_path`); returns a
    summary dict.

    ``model_dir`` is the ``model/`` folder of a detect result, or the result folder itself. The saved
    scaler is applied first; values outside the training range are not clipped to [0, 1] (they map
    outside it, which the sigmoid network cannot reconstruct, and raise the row's score). The scores
    are the model's, on the scale of detect's ``scores.csv`` (> 0: above the model's cut-off), less the
    cut-off chosen here: ``threshold`` on that scale, or ``contamination`` (PyOD's: the ``1 -
    contamination`` quantile of these rows' scores, so the top fraction is flagged; the file is read
    twice), or none (the model's). A score > 0 is flagged, and each flagged row names its top features
    by share of its residual (or of ``S``).

    A file with a header has its columns matched to the model's by name (any order; a missing or an
    extra column is refused by name); ``id_column`` names the column of row ids (default: the
    model's id column when the file has it; else rows are numbered from 0). ``out`` is checked by
    :func:`check_score_out` before anything is read; ``array`` names an ``.npz`` input's array;
    ``missing`` as for :func:`detect`. A CSV file is read and scored in chunks (pyarrow needed; not
    for an ``l21_cols`` model, whose sparse part couples the rows), so memory stays flat whatever its
    length (but for 9 bytes a row for the histogram); the output is written to a temporary file
    renamed at the end.
    """
    from .selection import check_fraction

    if contamination is not None and threshold is not None:
        raise DetectError("give either `contamination` or `threshold`, not both")
    if contamination is not None:
        contamination = check_fraction(contamination, "`contamination`")
    if threshold is not None and not math.isfinite(threshold):
        raise DetectError(f"`threshold` {threshold!r}: expected a finite number")
    out = Path(out)
    model_dir = model_folder(model_dir)
    existed = check_score_out(out, data_path, model_dir, force)
    fig = figure_path(out) if figure else None
    fig_existed = check_score_out(fig, data_path, model_dir, force) if fig is not None else False
    model, scaler = load_model(model_dir)
    rows_flagged = model.penalty in ROW_PENALTIES
    if not rows_flagged and (contamination is not None or threshold is not None):
        raise DetectError("an l21_cols model flags columns, not rows: it takes no `contamination` or `threshold`")

    def chunks():
        return _scored_chunks(model, scaler, _table_chunks(model, scaler, data_path, array, missing, id_column))

    cut, how = 0.0, "the model's cut-off"
    if threshold is not None:
        cut, how = float(threshold), f"score > {threshold:g} on the model's scale"
    elif contamination is not None:  # a first pass for the scores alone
        from .table_rule import flag_threshold

        every = np.concatenate([c[3] for c in chunks()])
        cut = flag_threshold(every, contamination)
        how = f"the top {contamination:g} of these rows: score > {cut:.4g} on the model's scale"
    summary = {"n_rows": 0, "n_flagged": 0, "scores": [], "flagged": []}
    id_name = write_scores_file(out, _cut_chunks(chunks(), cut, rows_flagged, summary), replace=existed)
    scores, flagged = np.concatenate(summary.pop("scores")), np.concatenate(summary.pop("flagged"))
    if fig is not None:
        from .detect_report import histogram

        kind = "columns" if not rows_flagged else ("ensemble" if hasattr(model, "members_") else "rows")
        title = f"rda score: {Path(data_path).name}, " + (how if rows_flagged else "residual row norms")
        write_marked(fig, [_figure_bytes(histogram, scores, flagged, title, kind)], replace=fig_existed)
    model_cut = model.threshold_ if hasattr(model, "members_") else model.prox_threshold_
    return {"out": str(out), "figure": str(fig) if fig is not None else None, "n_rows": summary["n_rows"],
            "n_flagged": summary["n_flagged"], "threshold": model_cut, "cut": cut, "how": how,
            "rows_flagged": rows_flagged, "id_column": id_name, "model_dir": str(model_dir)}


def figure_path(out):
    """Where ``rda score`` draws the histogram of ``out``'s scores: ``<out stem>_hist.png`` beside it."""
    out = Path(out)
    return out.with_name((out.stem if out.suffix else out.name) + "_hist.png")


def _figure_bytes(histogram, scores, flagged, title, kind):
    import io

    buf = io.BytesIO()
    histogram(buf, scores, flagged, title, kind)
    return buf.getvalue()


def _cut_chunks(chunks, cut, rows_flagged, summary):
    """``chunks`` of :func:`_scored_chunks` with the scores less ``cut``, flags (score > 0) and top features;
    counts, scores and flags collected in ``summary``."""
    for ids, id_name, names, scores, shares in chunks:
        scores = scores - cut
        flagged = scores > 0 if rows_flagged else np.zeros(len(scores), bool)
        yield ids, id_name, summary["n_rows"], scores, flagged, top_features(shares, names, flagged)
        summary["n_rows"] += len(scores)
        summary["n_flagged"] += int(flagged.sum())
        summary["scores"].append(scores)
        summary["flagged"].append(flagged)


def _table_chunks(model, scaler, data_path, array, missing, id_column=None):
    """The rows of ``data_path`` as :class:`~rda_cli.tabular.Table` chunks (one chunk unless streamed).
    ``id_column``: the column of row ids (must exist); None: the model's, when the file has it."""
    from .tabular import iter_table

    given = id_column is not None
    id_column = id_column if given else scaler.id_column
    named = Path(data_path).suffix.lower() in (".csv", ".parquet")  # files with column names (streamed)
    stream = model.penalty != "l21_cols" and named and array is None
    if id_column is not None and not given and named:
        try:
            first = iter_table(data_path, id_column, missing) if stream else iter(
                [read_table(data_path, id_column=id_column, min_rows=1, array=array, missing=missing)])
            head = next(first, None)
        except TableError as exc:
            if f"no column named {id_column!r}" not in str(exc) and "no header row" not in str(exc):
                raise
            id_column = None  # the new file has no id column: number the rows
        else:
            if head is not None:
                yield head
            yield from first
            return
    if stream:
        yield from iter_table(data_path, id_column, missing)
    else:
        yield read_table(data_path, id_column=id_column if given else None, min_rows=1, array=array, missing=missing)


def _matched(table, scaler):
    """``table.X`` with its columns in the model's order: by name when the file has a header (a missing or
    an extra column refused by name), else by position (the count must match)."""
    names = list(scaler.feature_names or [])
    if table.has_header and names:
        missing = [n for n in names if n not in table.feature_names]
        extra = [n for n in table.feature_names if n not in names]
        if missing or extra:
            parts = ([f"missing {_listed(missing)}"] if missing else []) + (
                [f"extra {_listed(extra)} (a column of row ids? name it with `id_column`)"] if extra else [])
            raise DetectError(f"{table.path}: the columns differ from the model's: {'; '.join(parts)}")
        order = [table.feature_names.index(n) for n in names]
        return table.X if order == list(range(len(order))) else table.X[:, order]
    if table.n_features != scaler.n_features:
        raise DetectError(f"{table.path} has {table.n_features} feature columns but the model was fitted on "
                          f"{scaler.n_features}" + (f" ({_listed(names)})" if names else ""))
    return table.X


def _listed(names, most=12):
    shown = ", ".join(repr(n) for n in names[:most])
    return shown + (f" and {len(names) - most} more" if len(names) > most else "")


def _scored_chunks(model, scaler, tables):
    """``(ids, id_name, feature names, scores, shares)`` per chunk of ``tables``, its columns matched to the
    model's (:func:`_matched`); the scores on the scale of detect's ``scores.csv`` (> 0: above the model's
    cut-off)."""
    for table in tables:
        X = _matched(table, scaler)
        if hasattr(model, "members_"):  # the ensemble scales the raw rows itself; score - cut-off > 0: flagged
            shares, scores = model.feature_contributions(X, return_scores=True)
            scores = scores - model.threshold_
        else:
            shares, scores = model.feature_contributions(scaler.transform(X), return_scores=True)
        yield table.ids, table.id_name, scaler.feature_names or table.feature_names, scores, shares
