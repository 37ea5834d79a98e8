"""Loading MNIST (or any MNIST-shaped IDX data set such as Fashion-MNIST).

Sources, in lookup order:

1. the ``path`` argument (a folder holding IDX files or ``mnist.npz``, or an
   ``.npz`` file),
2. the ``RDA_DATA_DIR`` environment variable (same forms),
3. ``shared/data/mnist`` and ``../shared/data/mnist`` under the current folder, then
   ``../shared/data/mnist`` next to the repository that holds this package (the same places
   :func:`rda_cli.data.adbench.default_adbench_dir` searches for ADBench),
4. the Keras cache ``~/.keras/datasets/mnist.npz`` (or ``$KERAS_HOME``),
5. a download through ``keras.datasets.mnist.load_data()`` (only when
   ``download=True``).

Nothing is cached on disk by this module.
"""

from __future__ import annotations

import os
import sys
import zlib
from pathlib import Path

import numpy as np

from ..arrayfile import NpzArrays
from ..errors import DataError
from ..safeio import read_capped

__all__ = ["DataError", "load_mnist"]

ENV_VAR = "RDA_DATA_DIR"

IMAGES_MAGIC = 2051
LABELS_MAGIC = 2049

# split -> (image file stems, label file stems); each may carry a ".gz" suffix.
_IDX_NAMES = {
    "train": (
        ("train-images-idx3-ubyte", "train-images.idx3-ubyte"),
        ("train-labels-idx1-ubyte", "train-labels.idx1-ubyte"),
    ),
    "test": (
        ("t10k-images-idx3-ubyte", "t10k-images.idx3-ubyte"),
        ("t10k-labels-idx1-ubyte", "t10k-labels.idx1-ubyte"),
    ),
}
_NPZ_NAME = "mnist.npz"
_NPZ_KEYS = {"train": ("x_train", "y_train"), "test": ("x_test", "y_test")}


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


# --------------------------------------------------------------------------- IDX


IDX_MAX_BYTES = 1 << 30  # one IDX file, uncompressed (MNIST's training images: 47 MB)


def _read_bytes(path: Path) -> bytes:
    """The bytes of an IDX file (gunzipped when its name ends in ``.gz``), read through the I/O layer
    (:func:`rda_cli.safeio.read_capped`: a regular file, at most :data:`IDX_MAX_BYTES`) and inflated no
    further than that bound."""
    try:
        raw = read_capped(path, IDX_MAX_BYTES, "IDX file", error=DataError)
    except DataError:
        raise
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({_one_line(exc.strerror or exc)})") from None
    if not path.name.endswith(".gz"):
        return raw
    parts, size, rest = [], 0, raw
    while rest:  # gzip members, one after another (as gzip.open reads them)
        inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            part = inflate.decompress(rest, IDX_MAX_BYTES + 1 - size)
        except zlib.error as exc:
            raise DataError(f"{path}: corrupt gzip data ({_one_line(exc)})") from None
        size += len(part)
        if size > IDX_MAX_BYTES:
            raise DataError(f"{path}: inflates past the {IDX_MAX_BYTES}-byte limit of an IDX file; refused")
        if not inflate.eof:
            raise DataError(f"{path}: file is truncated (compressed stream ended early)")
        parts.append(part)
        rest = inflate.unused_data
    data = b"".join(parts)
    return data


def read_idx(path: Path, expected_magic: int) -> np.ndarray:
    """Read one unsigned-byte IDX file, validating header and size."""
    path = Path(path)
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise DataError(f"{path}: file too short to hold an IDX header ({len(raw)} bytes)")
    magic = int.from_bytes(raw[:4], "big")
    if magic != expected_magic:
        kind = "images" if expected_magic == IMAGES_MAGIC else "labels"
        raise DataError(
            f"{path}: wrong IDX magic number {magic} (expected {expected_magic} for {kind}); "
            "not an MNIST-style unsigned-byte IDX file"
        )
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(raw) < header_len:
        raise DataError(f"{path}: truncated IDX header ({len(raw)} of {header_len} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    expected = int(np.prod(dims, dtype=np.int64))
    present = len(raw) - header_len
    if present < expected:
        raise DataError(
            f"{path}: truncated data, header declares {dims[0]} items of shape {dims[1:]} "
            f"({expected} bytes) but only {present} bytes are present"
        )
    if present > expected:
        raise DataError(
            f"{path}: {present - expected} unexpected bytes after the {dims[0]} items declared in the header"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header_len).reshape(dims)


def _find_file(folder: Path, stems) -> Path | None:
    for stem in stems:
        for name in (stem + ".gz", stem):
            candidate = folder / name
            if candidate.is_file():
                return candidate
    return None


def _load_idx_pair(images_path: Path, labels_path: Path):
    images = read_idx(images_path, IMAGES_MAGIC)
    labels = read_idx(labels_path, LABELS_MAGIC)
    if images.ndim != 3:  # guaranteed by the magic number, kept as a guard
        raise DataError(f"{images_path}: images must be a 3-D IDX array, got {images.ndim}-D")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: labels must be a 1-D IDX array, got {labels.ndim}-D")
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{images_path}: holds {images.shape[0]} images but {labels_path.name} "
            f"holds {labels.shape[0]} labels"
        )
    return _to_output(images, labels)


def _to_output(images: np.ndarray, labels: np.ndarray):
    n = images.shape[0]
    X = images.reshape(n, -1).astype(np.float32)
    X /= np.float32(255.0)
    y = np.asarray(labels, dtype=np.uint8)
    return X, y


# --------------------------------------------------------------------------- npz


def _load_npz(path: Path, split: str):
    x_key, y_key = _NPZ_KEYS[split]
    with NpzArrays(path) as archive:  # bounded: each member's size checked before it is inflated
        missing = [k for k in (x_key, y_key) if k not in archive.names]
        if missing:
            raise DataError(
                f"{path}: missing array(s) {', '.join(missing)} "
                "(expected Keras mnist.npz layout: x_train, y_train, x_test, y_test)"
            )
        images = archive.load(x_key)
        labels = archive.load(y_key)

    if images.ndim not in (2, 3) or images.shape[0] == 0:
        raise DataError(f"{path}: {x_key} must have shape (n, rows, cols) or (n, features), got {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{path}: {y_key} must be 1-D, got shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{path}: {x_key} holds {images.shape[0]} images but {y_key} holds {labels.shape[0]} labels")
    if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0 or labels.max() > 255:
        raise DataError(f"{path}: {y_key} must hold integer labels in 0..255")

    n = images.shape[0]
    if np.issubdtype(images.dtype, np.integer):
        if images.min() < 0 or images.max() > 255:
            raise DataError(f"{path}: {x_key} integer pixel values must lie in 0..255")
        return _to_output(images.astype(np.uint8, copy=False), labels)
    if np.issubdtype(images.dtype, np.floating):
        X = images.reshape(n, -1).astype(np.float32)
        if not np.all(np.isfinite(X)) or X.min() < 0.0 or X.max() > 1.0:
            raise DataError(f"{path}: {x_key} float pixel values must lie in [0, 1]")
        return X, labels.astype(np.uint8)
    raise DataError(f"{path}: {x_key} has unsupported dtype {images.dtype}")


# --------------------------------------------------------------------------- lookup


def _load_from(path: Path, split: str, origin: str):
    """Load ``split`` from an explicitly named location; raise DataError if unusable."""
    if not path.exists():
        raise DataError(f"{path}: data path given by {origin} does not exist")
    if path.is_file():
        if path.suffix.lower() == ".npz":
            return _load_npz(path, split)
        raise DataError(
            f"{path}: data path given by {origin} is a file but not an .npz archive; "
            "point it at the folder holding the IDX files instead"
        )
    if not path.is_dir():
        raise DataError(f"{path}: data path given by {origin} is neither a folder nor a file")

    image_stems, label_stems = _IDX_NAMES[split]
    images_path = _find_file(path, image_stems)
    labels_path = _find_file(path, label_stems)
    if images_path is not None and labels_path is not None:
        return _load_idx_pair(images_path, labels_path)
    npz = path / _NPZ_NAME
    if images_path is None and labels_path is None and npz.is_file():
        return _load_npz(npz, split)
    if images_path is not None:
        raise DataError(f"{path}: has {images_path.name} but no {label_stems[0]}[.gz] labels file")
    if labels_path is not None:
        raise DataError(f"{path}: has {labels_path.name} but no {image_stems[0]}[.gz] images file")
    try:
        empty = not any(path.iterdir())
    except OSError as exc:
        raise DataError(f"{path}: cannot list folder ({_one_line(exc.strerror or exc)})") from None
    problem = "folder is empty" if empty else "folder holds no MNIST files"
    raise DataError(
        f"{path}: {problem} (expected {image_stems[0]}[.gz] and {label_stems[0]}[.gz], or {_NPZ_NAME})"
    )


def _keras_cache_paths() -> list[Path]:
    paths = []
    keras_home = os.environ.get("KERAS_HOME")
    if keras_home:
        paths.append(Path(keras_home).expanduser() / "datasets" / _NPZ_NAME)
    paths.append(Path.home() / ".keras" / "datasets" / _NPZ_NAME)
    unique = []
    for p in paths:
        if p not in unique:
            unique.append(p)
    return unique


def shared_dirs(name: str = "mnist") -> list[Path]:
    """The ``shared/data/<name>`` folders searched after the environment variable, in order.

    ``shared/data/<name>`` and ``../shared/data/<name>`` under the current folder, then
    ``../shared/data/<name>`` next to the repository holding this package (MNIST and ADBench alike).
    """
    repo = Path(__file__).resolve().parents[2]
    return [Path("shared/data") / name, Path("../shared/data") / name, repo.parent / "shared" / "data" / name]


def _download(split: str):
    from .._process import quiet_native_stderr

    with quiet_native_stderr():  # TensorFlow's start-up lines, under the command's quiet setting
        import keras  # lazy: heavy import, only needed for downloading

    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    images, labels = (x_train, y_train) if split == "train" else (x_test, y_test)
    return _to_output(np.asarray(images, dtype=np.uint8), np.asarray(labels))


def load_mnist(path=None, split: str = "train", download: bool = True):
    """Load an MNIST split as ``(X, y)``.

    ``X`` is float32 of shape ``(n, rows*cols)`` scaled to [0, 1]; ``y`` is uint8.
    ``path`` may be a folder with IDX files (``.gz`` or plain) or ``mnist.npz``,
    or an ``.npz`` file.  Without ``path`` the ``RDA_DATA_DIR`` environment
    variable, then the shared folders (:func:`shared_dirs`), then the Keras cache are tried, then (if ``download``) Keras
    downloads the data.  Raises :class:`DataError` with a one-line message.
    """
    if split not in _IDX_NAMES:
        raise DataError(f"unknown split {split!r} (expected 'train' or 'test')")

    if path is not None and str(path) != "":
        return _load_from(Path(path).expanduser(), split, "the path argument")

    env_value = os.environ.get(ENV_VAR, "")
    if env_value:
        return _load_from(Path(env_value).expanduser(), split, f"${ENV_VAR}")

    looked = ["path argument (not given)", f"${ENV_VAR} (not set)"]
    for folder in shared_dirs():
        if folder.is_dir():
            return _load_from(folder, split, "the shared data folder")
        looked.append(f"{folder} (absent)")
    for cache in _keras_cache_paths():
        if cache.is_file():
            return _load_npz(cache, split)
        looked.append(f"Keras cache {cache} (absent)")

    hint = (
        "point the tool at a copy of MNIST with the path argument, data.path in the config, "
        f"or the {ENV_VAR} environment variable (a folder with the IDX files or mnist.npz)"
    )
    if not download:
        raise DataError(f"MNIST not found; looked in: {'; '.join(looked)}; downloading disabled; {hint}")

    print("rda_cli: MNIST not found locally, downloading it via keras.datasets.mnist ...",
          file=sys.stderr, flush=True)
    try:
        return _download(split)
    except Exception as exc:  # offline, no keras, broken archive, ...
        looked.append(f"Keras download ({type(exc).__name__}: {_one_line(exc)})")
        raise DataError(f"MNIST not found; looked in: {'; '.join(looked)}; {hint}") from None
