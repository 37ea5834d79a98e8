"""The fitted network as data (:class:`NetworkState`); saving and loading a fitted :class:`~rda_cli.estimator.RobustAutoencoder`, and checking the files.

A model folder holds ``network.keras`` (the Keras network), ``arrays.npz`` (``L_``, ``S_``,
``residual_scores_`` and, with missing values, ``observed_``) and ``params.json`` (parameters and
fitted scalars). No pickle is used: :func:`load_model` checks every field of ``params.json`` and
the network's declared sizes before Keras builds anything (``safe_mode=True``), reads the arrays
with ``allow_pickle=False``, and reports any fault as one :class:`ModelFileError` line, so a folder
from an untrusted source can be loaded. Folders written by version 0.1.0 load as they are.

Every read is bounded (see ``docs/reliability.md``): each file must be a regular file (a FIFO, a device
such as ``/dev/zero``, a socket or a folder -- also behind a symlink -- is refused before it is opened
for reading); ``params.json`` is read to at most :data:`PARAMS_MAX_BYTES`; ``network.keras`` may be at
most :data:`NETWORK_MAX_BYTES`, hold only the three members Keras writes, each declaring no more than
its cap (``config.json`` :data:`CONFIG_MAX_BYTES`, ``metadata.json`` :data:`METADATA_MAX_BYTES`, the
weights 4 bytes per weight the layers imply plus :data:`WEIGHTS_SLACK_BYTES`) and no more than its
compression can give; ``arrays.npz`` is read with :func:`rda_cli.arrayfile.read_npz` (declared
sizes checked before anything is allocated, stored members only). The values must make sense: finite arrays, a prox
threshold of at most :data:`MAX_THRESHOLD`.

A saved folder carries the manifest of :mod:`rda_cli.owned`; :func:`save_folder` (every model and
ensemble save) replaces an existing folder only while its whole tree is what an earlier save wrote.
``save_model(training_data=False)`` leaves the training data out: ``arrays.npz`` then holds only
``fill_values`` (a folder of the network's size).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import numpy as np

from .errors import RdaError
from .owned import claim, write_folder
from .safeio import parse_json, read_json, write_json, write_npz

__all__ = ["NetworkState", "ModelFileError", "save_folder", "check_param_types", "MAX_LAYER_WIDTH", "MAX_PARAMETERS", "MAX_THRESHOLD", "PARAMS_MAX_BYTES",
           "NETWORK_MAX_BYTES", "network_size_problem", "save_model", "load_model"]

MAX_LAYER_WIDTH = 1_000_000  # a network wider than this is refused (by fit and by load_model)
MAX_PARAMETERS = 200_000_000  # ... and so is one with more weights than this (0.8 GB of float32)
MAX_THRESHOLD = 1e15  # a prox threshold above this flags nothing on any data rda scales (row norms <= 1e12)
PARAMS_MAX_BYTES = 16 << 20  # params.json (its history grows by ~200 bytes per outer iteration)
CONFIG_MAX_BYTES = 1 << 20  # network.keras: config.json (ours: ~200 bytes)
METADATA_MAX_BYTES = 64 << 10  # network.keras: metadata.json (ours: ~64 bytes)
WEIGHTS_SLACK_BYTES = 1 << 20  # network.keras: the HDF5 file's own structure beyond 4 bytes per weight
NETWORK_MAX_BYTES = 4 * MAX_PARAMETERS + (16 << 20)
_READ_ERRORS = (OSError, EOFError, KeyError, TypeError, ValueError, zipfile.BadZipFile, RecursionError)


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


def _n_weights(layers):
    """Weights of an untied network of ``layers`` (encoder and decoder kernels and biases): an upper bound."""
    return sum(a * b + b for a, b in zip(layers[:-1], layers[1:])) + sum(a * b + a for a, b in zip(layers[:-1],
                                                                                                     layers[1:]))


def network_size_problem(layers):
    """None if a network of ``layers`` is within :data:`MAX_LAYER_WIDTH` and :data:`MAX_PARAMETERS`, else the
    phrase that says why not (the same limits for fitting and for loading)."""
    widest = max(int(d) for d in layers)
    if widest > MAX_LAYER_WIDTH:
        return f"a layer of {widest} units exceeds the limit of {MAX_LAYER_WIDTH:,}"
    n = _n_weights([int(d) for d in layers])
    if n > MAX_PARAMETERS:
        return f"a network of about {n:,} weights exceeds the limit of {MAX_PARAMETERS:,}"
    return None


def _plain(value):
    """``value`` with NumPy scalars as Python numbers and tuples as lists, so that JSON can hold it."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def save_model(est, path, network, training_data=True):
    """Write the fitted ``est`` into folder ``path`` atomically (see
    :meth:`~rda_cli.estimator.RobustAutoencoder.save`); ``network``: a Keras model holding its weights.
    ``training_data=False`` (or a model loaded without it): ``arrays.npz`` holds only ``fill_values``
    (``L_``'s column means, where new data's missing entries start), not ``L_``, ``S_``, the scores."""

    def write(tmp):
        network.save(tmp / "network.keras")
        if training_data and getattr(est, "S_", None) is not None:
            arrays = dict(L_=est.L_, S_=est.S_, residual_scores_=est.residual_scores_)
            if est._observed is not None:
                arrays["observed_"] = est._observed
        else:
            arrays = dict(fill_values=np.asarray(est._column_means(), np.float32))
        write_npz(tmp / "arrays.npz", **arrays)
        meta = {
            "params": est.get_params(),
            "prox_threshold_": est.prox_threshold_,
            "lam_": est.lam_,
            "layers_": est.layers_,
            "n_iter_": est.n_iter_,
            "n_features_in_": est.n_features_in_,
            "history_": est.history_,
            "train_fingerprint": est._train_fingerprint if "L_" in arrays else None,
            "reinitialize_": est.reinitialize_,
        }
        write_json(tmp / "params.json", _plain(meta))

    return save_folder(path, write, "params.json", "model folder")


def save_folder(path, write, marker, what):
    """Write the folder ``path`` under the one ownership rule of :mod:`rda_cli.owned` (every folder a model
    or detector saves): :func:`~rda_cli.owned.claim` first (``path`` absent, empty, or a folder holding
    ``marker`` whose whole tree its manifest lists: no manifest, no claim; else NotOwnedError, nothing
    touched), ``write(tmp)`` fills a :func:`~rda_cli.owned.temp_dir` beside it, the manifest is added, and
    :func:`~rda_cli.owned.place` puts it in place (what appeared or changed meanwhile is kept: PlaceError).
    ``what``: the folder's name in messages (``"model folder"``)."""
    write_folder(claim(path, marker, what), write, what)
    return Path(path)


def check_param_types(cls, params, where):
    """Refuse (ModelFileError) a saved parameter of JSON type ``true``/``false`` where ``cls`` takes no boolean
    (``n_members: true`` would pass as the integer 1), before ``cls(**params)`` validates the values."""
    constraints = getattr(cls, "_parameter_constraints", {})
    for key, value in params.items():
        if isinstance(value, bool) and not {"boolean", "verbose"} & {c for c in constraints.get(key, ())
                                                                     if isinstance(c, str)}:
            raise ModelFileError(f"{where}: parameter {key[:80]!r} is {value!r}, expected a number or a name")


def load_model(cls, path):
    """``cls`` (a RobustAutoencoder class) fitted from the folder ``path``, every file checked first
    (raises :class:`ModelFileError`); see :meth:`~rda_cli.estimator.RobustAutoencoder.load`."""
    path = Path(path)
    meta = _read_meta(path / "params.json")
    check_param_types(cls, meta["params"], path / "params.json")
    params = dict(meta["params"])
    if params.pop("contamination", None) is not None and "lam_" in meta:
        # files written before the lambda search left the estimator (rda_cli.selection.lambda_for_fraction)
        # may hold `contamination`, the fraction it searched for: the model is the fit of the lambda found
        params["lam"] = meta["lam_"]
    try:
        est = cls(**params)
        est._validate_params()
    except (TypeError, ValueError) as exc:
        raise ModelFileError(f"{path / 'params.json'}: invalid params ({' '.join(str(exc).split())})") from None
    layers = meta["layers_"]
    if est.layers is not None and list(est.layers) != layers:
        raise ModelFileError(f"{path / 'params.json'}: layers_ {layers} differ from params.layers {est.layers}")
    _check_network_file(path / "network.keras", layers, est.tied)  # before TensorFlow is even imported
    from .autoencoder import DeepAutoencoder  # noqa: F401 (registers the class with Keras; imports it quietly)

    import keras  # noqa: E402 (after autoencoder, which imports TensorFlow with its start-up chatter silenced)

    try:
        model = keras.saving.load_model(path / "network.keras", compile=False, safe_mode=True)
    except (*_READ_ERRORS, RuntimeError) as exc:
        raise ModelFileError(f"{path / 'network.keras'}: cannot load the network ({type(exc).__name__}: "
                             f"{_one_line(exc)})") from None
    if [int(d) for d in getattr(model, "layer_sizes", [])] != layers:
        raise ModelFileError(f"{path / 'network.keras'}: its layer sizes differ from params.json's {layers}")
    if not all(np.isfinite(w).all() for w in model.get_weights()):
        raise ModelFileError(f"{path / 'network.keras'}: a weight is NaN or infinite")
    arrays = _read_arrays(path / "arrays.npz", layers[0])
    # files of version 0.1.0 may call the prox threshold threshold_
    est.prox_threshold_ = float(meta["prox_threshold_"] if "prox_threshold_" in meta else meta["threshold_"])
    est.lam_ = float(meta.get("lam_", est.lam))
    est.layers_ = layers
    est.network_ = NetworkState(est.layers_, est.tied, model.get_weights())
    est.reinitialize_ = meta.get("reinitialize_", est._resolved_reinitialize())
    est.n_iter_ = meta["n_iter_"]
    est.n_features_in_ = meta["n_features_in_"]
    est.history_ = meta["history_"]
    est._train_fingerprint = meta.get("train_fingerprint")
    if "fill_values" in arrays:  # saved without its training data: a model only
        est._fill_values = arrays["fill_values"]
        est.threshold_ = 0.0
        return est
    est.L_, est.S_, est._observed = arrays["L_"], arrays["S_"], arrays.get("observed_")
    est.residual_scores_ = arrays["residual_scores_"]
    est._set_sparse_scores()
    return est


def _read_arrays(path, width):
    """``arrays.npz``'s arrays (:func:`rda_cli.arrayfile.read_npz`: declared sizes checked before reading,
    stored members only, finite values): ``fill_values`` alone (a model saved without its training data),
    or ``L_``, ``S_``, ``residual_scores_`` and, with missing values, ``observed_``; shapes and dtypes
    checked against each other and the input ``width``."""
    from .arrayfile import read_npz

    expected = {"L_": (None, width), "S_": (None, width), "residual_scores_": (None,), "observed_": (None, width),
                "fill_values": (width,)}
    try:
        arrays = read_npz(path, expected, optional=tuple(expected), stored_only=True)
    except FileNotFoundError:
        raise ModelFileError(f"{path} does not exist") from None
    except RdaError as exc:  # arrayfile's ArrayFileError: a damaged or crafted file, one line
        raise ModelFileError(str(exc)) from None
    except _READ_ERRORS as exc:
        raise ModelFileError(f"{path}: cannot read the arrays ({type(exc).__name__}: {_one_line(exc)})") from None
    if "fill_values" in arrays:
        if len(arrays) > 1:
            raise ModelFileError(f"{path}: fill_values (a model saved without its training data) beside "
                                 f"{', '.join(k for k in arrays if k != 'fill_values')}")
        if arrays["fill_values"].dtype.kind != "f":
            raise ModelFileError(f"{path}: fill_values has dtype {arrays['fill_values'].dtype}, expected floats")
        return arrays
    missing = [k for k in ("L_", "S_", "residual_scores_") if k not in arrays]
    if missing:
        raise ModelFileError(f"{path}: missing array(s) {', '.join(missing)}")
    L, S, res, observed = arrays["L_"], arrays["S_"], arrays["residual_scores_"], arrays.get("observed_")
    for name, a in (("L_", L), ("S_", S)):
        if a.dtype.kind != "f":
            raise ModelFileError(f"{path}: {name} has shape {a.shape} and dtype {a.dtype}, "
                                 f"expected (rows, {width}) floats")
    if L.shape != S.shape or res.shape != (L.shape[0],) or res.dtype.kind != "f":
        raise ModelFileError(f"{path}: L_ {L.shape}, S_ {S.shape} and residual_scores_ "
                             f"{res.shape} do not fit together")
    if observed is not None and (observed.shape != L.shape or observed.dtype != bool):
        raise ModelFileError(f"{path}: observed_ has shape {observed.shape} and dtype "
                             f"{observed.dtype}, expected {L.shape} booleans")
    if (res < 0).any():
        raise ModelFileError(f"{path}: residual_scores_ holds negative values (they are norms)")
    return arrays


def _read_meta(path):
    """``params.json`` of a saved model, every field type-checked (raises ModelFileError)."""
    meta = read_json(path, PARAMS_MAX_BYTES, "", ModelFileError)
    if not isinstance(meta, dict):
        raise ModelFileError(f"{path}: expected a JSON object")

    def bad(key, expected):
        return ModelFileError(f"{path}: field {key!r} is {_quote(meta.get(key))}, expected {expected}")

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
        if key != "lam_" and meta[key] > MAX_THRESHOLD:
            raise bad(key, f"a prox threshold of at most {MAX_THRESHOLD:g}")
    layers = meta.get("layers_")
    if not (isinstance(layers, list) and len(layers) >= 2 and all(is_int(d, 1) for d in layers)):
        raise bad("layers_", "a list of at least two positive integers")
    problem = network_size_problem(layers)
    if problem:
        raise ModelFileError(f"{path}: field 'layers_': {problem}")
    if not is_int(meta.get("n_iter_")):
        raise bad("n_iter_", "an integer >= 0")
    if meta.get("n_features_in_") != layers[0] or not is_int(meta.get("n_features_in_"), 1):
        raise bad("n_features_in_", f"the input width {layers[0]}")
    history = meta.get("history_")
    if not (isinstance(history, list) and all(isinstance(h, dict) and all(isinstance(k, str) and (
            v is None or isinstance(v, (int, float, str, bool))) for k, v in h.items()) for h in history)):
        raise bad("history_", "a list of objects")
    fp = meta.get("train_fingerprint")
    if fp is not None and not isinstance(fp, str):
        raise bad("train_fingerprint", "a string or null")
    if "reinitialize_" in meta and not isinstance(meta["reinitialize_"], bool):
        raise bad("reinitialize_", "true or false")
    return meta


def _quote(value, limit=80):
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _member_caps(layers):
    return {"config.json": CONFIG_MAX_BYTES, "metadata.json": METADATA_MAX_BYTES,
            "model.weights.h5": 4 * _n_weights(layers) + WEIGHTS_SLACK_BYTES}


def _check_network_file(path, layers, tied):
    """Check ``network.keras`` before Keras reads it: a regular file within :data:`NETWORK_MAX_BYTES`, a zip of
    the members Keras writes, each declaring no more than its cap and its compression can give
    (:func:`rda_cli.arrayfile.read_zip`), and a ``config.json`` declaring ``layers`` and ``tied``."""
    from .arrayfile import read_zip

    text = read_zip(path, NETWORK_MAX_BYTES, _member_caps(layers), "a Keras model file rda wrote", ModelFileError,
                    read=("config.json",))["config.json"]
    if len(text) > CONFIG_MAX_BYTES:
        raise ModelFileError(f"{path}: config.json holds more than {CONFIG_MAX_BYTES} bytes")
    config = parse_json(text, f"{path}: config.json", ModelFileError)
    inner = config.get("config") if isinstance(config, dict) else None
    sizes = inner.get("layer_sizes") if isinstance(inner, dict) else None
    if sizes != layers:
        raise ModelFileError(f"{path}: declares layer sizes {_quote(sizes)}, params.json says {layers}")
    if isinstance(inner, dict) and inner.get("tied", tied) != tied:
        raise ModelFileError(f"{path}: tied={_quote(inner.get('tied'))} differs from params.json's tied={tied!r}")


