"""The fitted network as data (:class:`NetworkState`); saving and loading a fitted :class:`~rda_cli.estimator.RobustAutoencoder`, and checking the files.

A model folder holds ``network.keras`` (the Keras network), ``arrays.npz`` (``L_``, ``S_``,
``residual_scores_`` and, with missing values, ``observed_``) and ``params.json`` (parameters and
fitted scalars). No pickle is used: :func:`load_model` checks every field of ``params.json`` and
the network's declared sizes before Keras builds anything (``safe_mode=True``), reads the arrays
with ``allow_pickle=False``, and reports any fault as one :class:`ModelFileError` line, so a folder
from an untrusted source can be loaded. Folders written by version 0.1.0 load as they are.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .errors import RdaError
from .safeio import replace_dir

__all__ = ["NetworkState", "ModelFileError", "MAX_LAYER_WIDTH", "MAX_PARAMETERS", "save_model", "load_model"]

MAX_LAYER_WIDTH = 1_000_000  # a saved network wider than this is refused by load_model
MAX_PARAMETERS = 200_000_000  # ... and so is one with more weights than this (0.8 GB of float32)
_READ_ERRORS = (OSError, EOFError, KeyError, TypeError, ValueError, zipfile.BadZipFile)  # a damaged file


class NetworkState:
    """A fitted network as plain numpy arrays: what a :class:`~rda_cli.estimator.RobustAutoencoder` owns.

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


class ModelFileError(RdaError):
    """A saved model folder that cannot be trusted or read; the message is one line."""


def _one_line(exc, limit=200):
    return " ".join(str(exc).split())[:limit]


def _plain(value):
    """``value`` with NumPy scalars as Python numbers and tuples as lists, so that JSON can hold it."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_model(est, path, network):
    """Write the fitted ``est`` into folder ``path`` atomically (see
    :meth:`~rda_cli.estimator.RobustAutoencoder.save`); ``network``: a Keras model holding its weights."""
    path = Path(path)
    if path.exists() and (not path.is_dir() or (any(path.iterdir()) and not (path / "params.json").is_file())):
        raise RdaError(f"{path} exists and is not a model folder; refusing to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        network.save(tmp / "network.keras")
        arrays = dict(L_=est.L_, S_=est.S_, residual_scores_=est.residual_scores_)
        if est._observed is not None:
            arrays["observed_"] = est._observed
        np.savez(tmp / "arrays.npz", **arrays)
        meta = {
            "params": est.get_params(),
            "prox_threshold_": est.prox_threshold_,
            "lam_": est.lam_,
            "layers_": est.layers_,
            "n_iter_": est.n_iter_,
            "n_features_in_": est.n_features_in_,
            "history_": est.history_,
            "train_fingerprint": est._train_fingerprint,
            "reinitialize_": est.reinitialize_,
        }
        (tmp / "params.json").write_text(json.dumps(_plain(meta), indent=1))
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def load_model(cls, path):
    """``cls`` (a RobustAutoencoder class) fitted from the folder ``path``, every file checked first
    (raises :class:`ModelFileError`); see :meth:`~rda_cli.estimator.RobustAutoencoder.load`."""
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
    try:
        model = keras.saving.load_model(path / "network.keras", compile=False, safe_mode=True)
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{path / 'network.keras'}: cannot load the network ({type(exc).__name__}: "
                             f"{_one_line(exc)})") from None
    if [int(d) for d in getattr(model, "layer_sizes", [])] != layers:
        raise ModelFileError(f"{path / 'network.keras'}: its layer sizes differ from params.json's {layers}")
    L, S, res, observed = _read_arrays(path / "arrays.npz", layers[0])
    est.L_, est.S_, est._observed = L, S, observed
    # files of version 0.1.0 may call the prox threshold threshold_
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


def _read_arrays(path, width):
    """``(L_, S_, residual_scores_, observed_ or None)`` from ``arrays.npz``, shapes and dtypes checked."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            missing = [k for k in ("L_", "S_", "residual_scores_") if k not in arrays.files]
            if missing:
                raise ModelFileError(f"{path}: missing array(s) {', '.join(missing)}")
            L, S, res = arrays["L_"], arrays["S_"], arrays["residual_scores_"]
            observed = arrays["observed_"] if "observed_" in arrays.files else None
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist") from None
    except ModelFileError:
        raise
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{path}: cannot read the arrays ({type(exc).__name__}: {_one_line(exc)})") from None
    for name, a in (("L_", L), ("S_", S)):
        if a.ndim != 2 or a.shape[1] != width or a.dtype.kind != "f":
            raise ModelFileError(f"{path}: {name} has shape {a.shape} and dtype {a.dtype}, "
                                 f"expected (rows, {width}) floats")
    if L.shape != S.shape or res.shape != (L.shape[0],):
        raise ModelFileError(f"{path}: L_ {L.shape}, S_ {S.shape} and residual_scores_ "
                             f"{res.shape} do not fit together")
    if observed is not None and (observed.shape != L.shape or observed.dtype != bool):
        raise ModelFileError(f"{path}: observed_ has shape {observed.shape} and dtype "
                             f"{observed.dtype}, expected {L.shape} booleans")
    return L, S, res, observed


def _read_meta(path):
    """``params.json`` of a saved model, every field type-checked (raises ModelFileError)."""
    try:
        meta = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ModelFileError(f"{path}: cannot read it as JSON ({_one_line(exc)})") from None
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: expected a JSON object")

    def bad(key, expected):
        return ModelFileError(f"{path}: field {key!r} is {meta.get(key)!r}, expected {expected}")

    def is_int(v, low=0):
        return isinstance(v, int) and not isinstance(v, bool) and v >= low

    def is_number(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= 0

    if not isinstance(meta.get("params"), dict):
        raise bad("params", "an object of estimator parameters")
    # the prox threshold: prox_threshold_, or threshold_ in files of version 0.1.0
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
        raise ModelFileError(f"{path}: not a Keras model file ({_one_line(exc)})") from None
    inner = config.get("config") if isinstance(config, dict) else None
    sizes = inner.get("layer_sizes") if isinstance(inner, dict) else None
    if sizes != layers:
        raise ModelFileError(f"{path}: declares layer sizes {sizes!r}, params.json says {layers}")
    if isinstance(inner, dict) and inner.get("tied", tied) != tied:
        raise ModelFileError(f"{path}: tied={inner.get('tied')!r} differs from params.json's tied={tied!r}")
