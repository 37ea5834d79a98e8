"""Loading tabular anomaly-detection sets in ADBench's ``.npz`` format.

Each file is a NumPy ``.npz`` archive with two arrays (no pickled objects): ``X`` of shape
``(n_samples, n_features)`` with the features, and ``y`` of shape ``(n_samples,)`` with 0 for a
normal row and 1 for an anomaly. This is how ADBench (Han et al., NeurIPS 2022) distributes its
"Classical" collection, e.g. ``33_skin.npz``.

A data argument may be a file, a folder (every ``*.npz`` in it) or a glob pattern. Without one,
:func:`default_adbench_dir` looks in ``$RDA_ADBENCH_DIR``, then ``shared/data/adbench`` and
``../shared/data/adbench`` relative to the current folder, then ``../shared/data/adbench``
relative to the repository that holds this package.
"""

from __future__ import annotations

import glob
import os
import re
import stat
from pathlib import Path

import numpy as np

from ..safeio import file_kind
from .mnist import DataError, shared_dirs

__all__ = ["AdbenchError", "ENV_VAR", "default_adbench_dir", "find_sets", "load_adbench", "set_name"]

ENV_VAR = "RDA_ADBENCH_DIR"


class AdbenchError(DataError):
    """A problem with an ADBench-style ``.npz`` file or data argument (one line)."""


def set_name(path):
    """The name of a set: the file stem without ADBench's number, e.g. ``33_skin.npz`` -> ``skin``."""
    stem = Path(path).name
    if stem.endswith(".npz"):
        stem = stem[:-4]
    return re.sub(r"^\d+_", "", stem)


def _sort_key(path):
    m = re.match(r"^(\d+)_", path.name)
    return (int(m.group(1)) if m else 10**9, path.name)


def _mode(path):
    """``st_mode`` of ``path`` (symlinks followed), None if it does not exist; any other OSError (a name too
    long, no permission) is one AdbenchError line."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise AdbenchError(f"{_show(path)}: {exc.strerror or exc}") from None


def _show(path, limit=200):
    """A path as a message shows it: at most ``limit`` characters."""
    text = str(path)
    return text if len(text) <= limit else text[:limit - 1] + "\u2026"


def default_adbench_dir():
    """The folder of ADBench sets used when no data argument is given, or None.

    Looked up in order: ``$RDA_ADBENCH_DIR``; ``shared/data/adbench`` and
    ``../shared/data/adbench`` under the current folder; ``../shared/data/adbench`` next to the
    repository holding this package.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    for candidate in shared_dirs("adbench"):
        if candidate.is_dir():
            return candidate
    return None


def find_sets(paths=None, names=None):
    """The ``.npz`` files named by ``paths`` (files, folders or globs), optionally kept to ``names``.

    Parameters
    ----------
    paths : list of str or None
        Files, folders (all ``*.npz`` inside) or glob patterns. None or empty: the folder of
        :func:`default_adbench_dir`.
    names : list of str or None
        Keep only the sets with these names (as :func:`set_name` gives them, case-insensitive).

    Returns
    -------
    list of Path
        Sorted by ADBench's number, then by name; each file once.

    Raises
    ------
    AdbenchError
        When a path matches nothing, no set is found, or a name in ``names`` is not among them.
    """
    if not paths:
        folder = default_adbench_dir()
        if folder is None:
            raise AdbenchError(f"no ADBench folder given and none found: set {ENV_VAR}, pass `data_path` or set "
                               "data.paths in the config")
        paths = [str(folder)]
    found = []
    for p in paths:
        path = Path(p).expanduser()
        mode = _mode(path)
        if mode is not None and stat.S_ISDIR(mode):
            files = sorted(path.glob("*.npz"), key=_sort_key)
            if not files:
                raise AdbenchError(f"{_show(p)}: folder holds no .npz files")
        elif mode is not None:
            files = [path]
        elif any(ch in str(p) for ch in "*?["):
            files = sorted((Path(f) for f in glob.glob(os.path.expanduser(str(p))) if f.endswith(".npz")),
                           key=_sort_key)
            if not files:
                raise AdbenchError(f"{_show(p)}: the pattern matches no .npz file")
        else:
            raise AdbenchError(f"{_show(p)}: no such file or folder")
        for f in files:  # a FIFO or device (named x.npz, or given as /dev/zero) is refused, never opened
            kind = _mode(f)
            if kind is not None and not stat.S_ISREG(kind):
                raise AdbenchError(f"{_show(f)} is {file_kind(kind)}, not a regular file; expected an ADBench .npz")
        found += files
    unique, seen = [], set()
    for f in found:
        key = f.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(f)
    by_name = {}
    for f in unique:
        other = by_name.setdefault(set_name(f).lower(), f)
        if other != f:
            raise AdbenchError(f"two files give the set name {set_name(f)!r}: {other} and {f}")
    if names:
        missing = [n for n in names if n.lower() not in by_name]
        if missing:
            have = ", ".join(sorted(set_name(f) for f in unique))
            raise AdbenchError(f"set(s) {', '.join(missing)} not found among: {have}")
        wanted = {n.lower() for n in names}
        unique = [f for f in unique if set_name(f).lower() in wanted]
    return sorted(unique, key=_sort_key)


def load_adbench(path):
    """Read one ADBench-style ``.npz`` file and check it.

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    X : ndarray of float64, shape (n_samples, n_features)
    y : ndarray of int8, shape (n_samples,)
        1 for an anomaly, 0 for a normal row.

    Raises
    ------
    AdbenchError
        When the file cannot be read as an ``.npz`` without pickles, lacks ``X`` or ``y``, or they
        have the wrong shape, non-numeric or non-finite values, labels other than 0/1, fewer than
        two rows, or no anomaly / no normal row.
    """
    from ..arrayfile import ArrayFileError, read_npz

    path = Path(path)
    try:  # a regular file; declared sizes checked before anything is inflated; no pickles; X and y only
        arrays = read_npz(path, {"X": None, "y": None}, finite=False)
    except FileNotFoundError:
        raise AdbenchError(f"{path}: no such file") from None
    except ArrayFileError as exc:
        raise AdbenchError(f"{exc}; expected an ADBench .npz holding X (features) and y (0/1 labels)") from None
    except OSError as exc:
        raise AdbenchError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    X, y = arrays["X"], arrays["y"]
    if X.dtype.kind not in "biuf":
        raise AdbenchError(f"{path}: X has dtype {X.dtype}; expected numbers")
    if X.ndim != 2:
        raise AdbenchError(f"{path}: X has shape {X.shape}; expected 2-D (rows, features)")
    y = np.ravel(y) if y.ndim == 2 and 1 in y.shape else y
    if y.ndim != 1 or y.shape[0] != X.shape[0]:
        raise AdbenchError(f"{path}: y has shape {y.shape} but X has {X.shape[0]} rows; expected one label per row")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise AdbenchError(f"{path}: X has shape {X.shape}; expected at least 2 rows and 1 feature")
    X = np.asarray(X, dtype=np.float64)
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise AdbenchError(f"{path}: X has NaN or infinite values in {bad} rows")
    if y.dtype.kind not in "biuf":
        raise AdbenchError(f"{path}: y has dtype {y.dtype}; expected 0/1 labels")
    values = np.unique(y)
    if not np.isin(values, (0, 1)).all():
        raise AdbenchError(f"{path}: y holds {values[:5].tolist()}; expected only 0 (normal) and 1 (anomaly)")
    y = y.astype(np.int8)
    if y.min() == y.max():
        raise AdbenchError(f"{path}: y holds only {'anomalies' if y[0] else 'normal rows'}; expected both")
    return X, y
