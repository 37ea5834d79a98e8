"""The table detector's folder: :meth:`~rda_cli.ensemble.RobustAutoencoderEnsemble.save` and ``load``.

A folder holds ``ensemble.json`` (parameters, the members' normalisation, the cut-off, the number of
training rows), ``scaler.json`` (and ``scaler_minmax.json`` when members use min-max scaling),
``tail.npz`` (the tail score's quantiles), ``forest.npz`` (the forest's trees as arrays),
``scores.npz`` (the training rows' combined scores) and ``member_<j>/`` (each network, saved by
:func:`rda_cli.persistence.save_model` without its training data). No pickle; the folder is written
by :func:`rda_cli.persistence.save_folder` (atomic, with a manifest, under the one ownership rule) and
every file is read bounded and checked field by field before TensorFlow is imported; any fault is one
:class:`~rda_cli.persistence.ModelFileError` line naming the file.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .errors import RdaError
from .persistence import ModelFileError, check_param_types, save_folder
from .safeio import read_json, write_json, write_npz

__all__ = ["ENSEMBLE_FILE", "save_ensemble", "load_ensemble"]

ENSEMBLE_FILE = "ensemble.json"
MINMAX_FILE = "scaler_minmax.json"  # the min-max members' scaler
TAIL_FILE = "tail.npz"  # the tail score's quantiles
FOREST_FILE = "forest.npz"  # the forest's trees as arrays
ENSEMBLE_MAX_BYTES = 1 << 20  # ensemble.json (ours: a few KB)
_VERSION = 2  # 2: members saved without their training data, n_samples_; 1: members with L_ and S_
_VERSIONS = (1, 2)


def save_ensemble(est, path):
    """Write the fitted :class:`~rda_cli.ensemble.RobustAutoencoderEnsemble` ``est`` into folder ``path``
    (see its ``save``)."""
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(est, "members_")

    def write(tmp):
        for j, m in enumerate(est.members_):
            m.save(tmp / f"member_{j}", training_data=False)
        est.scaler_.save(tmp / "scaler.json")
        if est.minmax_scaler_ is not None:
            est.minmax_scaler_.save(tmp / MINMAX_FILE)
        if est.tail_ is not None:
            write_npz(tmp / TAIL_FILE, **est.tail_.to_arrays())
        if est.forest_ is not None:
            write_npz(tmp / FOREST_FILE, **est.forest_.to_arrays())
        write_npz(tmp / "scores.npz", decision_scores_=np.asarray(est.decision_scores_, np.float64))
        meta = {"kind": "rda-ensemble", "version": _VERSION, "params": est.get_params(),
                "n_features_in_": int(est.n_features_in_), "n_samples_": len(est.decision_scores_),
                "threshold_": float(est.threshold_),
                "member_location_": [float(v) for v in est.member_location_],
                "member_scale_": [float(v) for v in est.member_scale_],
                "member_info_": est.member_info_, "train_fingerprint": est._train_fingerprint,
                "n_learned_": int(est.n_learned_)}
        write_json(tmp / ENSEMBLE_FILE, meta, default=float)

    return save_folder(path, write, ENSEMBLE_FILE, "ensemble folder")


def load_ensemble(cls, path):
    """``cls`` (a RobustAutoencoderEnsemble class) fitted from the folder ``path``, every file and field checked
    before use (raises :class:`ModelFileError`); see its ``load``."""
    from .arrayfile import ArrayFileError, read_npz
    from .estimator import RobustAutoencoder
    from .forest import ForestScore
    from .scaling import RobustScaler01, load_scaler
    from .table_rule import MEMBER_GRIDS
    from .tails import TailScore

    path = Path(path)
    where = path / ENSEMBLE_FILE
    meta = read_json(where, ENSEMBLE_MAX_BYTES, "", ModelFileError)
    if not isinstance(meta, dict) or meta.get("kind") != "rda-ensemble" or meta.get("version") not in _VERSIONS:
        raise ModelFileError(f"{where} is not an ensemble file written by this rda")
    if not isinstance(meta.get("params"), dict):
        raise ModelFileError(f"{where}: field 'params' is not an object of parameters")
    check_param_types(cls, meta["params"], where)
    try:
        # a folder saved before member_grid / combine / tail / forest existed keeps the behaviour it was fitted with
        est = cls(**{"member_grid": "widths", "combine": "mean", "tail": False, "forest": False, **meta["params"]})
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{where}: bad parameters ({' '.join(str(exc).split())[:200]})") from None
    k = int(est.n_members) + bool(est.tail) + bool(est.forest)  # normalisations: members', tail's, forest's
    loc, scale, thr, d, n = (meta.get("member_location_"), meta.get("member_scale_"), meta.get("threshold_"),
                             meta.get("n_features_in_"), meta.get("n_samples_"))

    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)

    def count(x):
        return isinstance(x, int) and not isinstance(x, bool) and x >= 1

    if not (isinstance(loc, list) and isinstance(scale, list) and len(loc) == len(scale) == k
            and all(map(number, loc + scale)) and all(s > 0 for s in scale)):
        raise ModelFileError(f"{where}: malformed member normalisation")
    if not number(thr) or not count(d) or (meta["version"] >= 2 and not count(n)):
        raise ModelFileError(f"{where}: malformed threshold_, n_features_in_ or n_samples_")
    fp = meta.get("train_fingerprint", "")
    if not isinstance(fp, str) or (meta.get("member_info_") is not None and not isinstance(meta["member_info_"], list)):
        raise ModelFileError(f"{where}: malformed train_fingerprint or member_info_")
    est.scaler_ = RobustScaler01.load(path / "scaler.json")
    if est.scaler_.n_features != d:
        raise ModelFileError(f"{path / 'scaler.json'}: {est.scaler_.n_features} columns, "
                             f"{ENSEMBLE_FILE} says {d}")
    try:  # version 1 does not say how many rows: checked against the members below
        scores = read_npz(path / "scores.npz", {"decision_scores_": (n if meta["version"] >= 2 else None,)},
                          stored_only=True)["decision_scores_"]
    except FileNotFoundError:
        raise ModelFileError(f"{path / 'scores.npz'} does not exist") from None
    except RdaError as exc:
        raise ModelFileError(str(exc)) from None
    if scores.dtype.kind != "f":
        raise ModelFileError(f"{path / 'scores.npz'}: decision_scores_ has dtype {scores.dtype}, expected floats")
    learned = meta.get("n_learned_", len(scores))  # folders saved before isolate: every row
    if not count(learned) or learned > len(scores):
        raise ModelFileError(f"{where}: malformed n_learned_")
    # the members last: every file above is checked before TensorFlow is imported
    est.member_scalings_ = [spec[2] for spec in MEMBER_GRIDS[est.member_grid][: int(est.n_members)]]
    est.minmax_scaler_, est.tail_, est.forest_ = None, None, None
    try:
        if "minmax" in est.member_scalings_:
            est.minmax_scaler_ = load_scaler(path / MINMAX_FILE)
            if est.minmax_scaler_.n_features != d:
                raise ValueError(f"{path / MINMAX_FILE}: {est.minmax_scaler_.n_features} columns, expected {d}")
        if est.tail:
            est.tail_ = TailScore.from_arrays(read_npz(
                path / TAIL_FILE, {"quantiles": (None, d), "right_skewed": (d,), "counts": (d,)}, stored_only=True))
    except FileNotFoundError as exc:
        raise ModelFileError(f"{exc.filename or path} does not exist") from None
    except (RdaError, ValueError) as exc:
        raise ModelFileError(f"{path}: {' '.join(str(exc).split())[:200]}") from None
    if est.forest:
        forest_file = path / FOREST_FILE
        try:
            est.forest_ = ForestScore.from_arrays(
                read_npz(forest_file, ForestScore.expected_shapes(d), stored_only=True), d)
        except FileNotFoundError:
            raise ModelFileError(f"{forest_file} does not exist") from None
        except ArrayFileError as exc:  # names the file
            raise ModelFileError(" ".join(str(exc).split())[:300]) from None
        except ValueError as exc:
            raise ModelFileError(f"{forest_file}: {' '.join(str(exc).split())[:200]}") from None
    est.members_ = [RobustAutoencoder.load(path / f"member_{j}") for j in range(int(est.n_members))]
    if {m.n_features_in_ for m in est.members_} != {d}:
        raise ModelFileError(f"{path}: the scaler and the members disagree on the number of features")
    if meta["version"] == 1 and len(scores) != len(est.members_[0].S_):
        raise ModelFileError(f"{path / 'scores.npz'}: decision_scores_ does not match the members")
    est.decision_scores_ = scores.astype(np.float64)
    est.member_location_, est.member_scale_ = np.array(loc, float), np.array(scale, float)
    est.member_info_ = meta.get("member_info_") or []
    est.n_features_in_ = d
    est._train_fingerprint = fp
    est.threshold_ = float(thr)
    est.labels_ = (est.decision_scores_ > est.threshold_).astype(int)
    est.n_learned_ = learned
    return est
