"""Scaling a table's columns to [0, 1]: min-max (one model on a table) and robust (the table detector).

Min-max
-------
The network's sigmoid output lives in [0, 1], so features are min-max scaled with the training
table's minimum and maximum: ``(x - min) / (max - min)``. A constant column (``max == min``) cannot
be divided by its range: its training value maps to 0.5, and on new data any value above it maps to
1 and any value below it to 0 (a change in a column that never changed is as abnormal as it gets).
New data outside the training range is *not* clipped to [0, 1]: it maps outside, which the sigmoid
network cannot reconstruct, so such rows score higher. Only a value more than ``CLIP`` (10^6)
training ranges away is held at that distance, so that any finite number (1e300 included) scores
as very abnormal instead of overflowing the network's float32 arithmetic. Ranges are computed from
halved values, so a column spanning nearly the whole float64 range (-1e308 to 1e308) does not
overflow. The scaler is saved as JSON (no pickle).

Robust
------
:class:`RobustScaler01` is the scaling of the label-free table rule (:mod:`rda_cli.table_rule`):
a few extreme training rows do not squeeze the others together, and values beyond the training
percentiles stay beyond (up to 10^6 training spans: the sigmoid network cannot reconstruct them, so
they keep a large residual). Where the two percentiles coincide the column's minimum and maximum are used; a
constant column maps to 0.5. Missing values (NaN) are ignored by ``fit`` and kept by ``transform``.
It is saved as JSON (``kind: "robust01"``) and checked field by field when loaded;
:func:`load_scaler` reads either this or ``rda detect``'s older min-max scaler.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np

from .persistence import MAX_LAYER_WIDTH, ModelFileError
from .safeio import read_json, write_json
from .table import TableError, column_names

__all__ = ["MinMaxScaler01", "RobustScaler01", "ScalerFileError", "load_scaler", "PERCENTILES", "CLIP"]

CLIP = 1e6  # scaled values are held within [-CLIP, 1 + CLIP]
SCALER_MAX_BYTES = 64 << 20  # scaler.json: two numbers and a name per column (up to 10^6 columns)


class ScalerFileError(TableError, ModelFileError):
    """A ``scaler.json`` that cannot be trusted or read: both a TableError and a ModelFileError (one line)."""


class MinMaxScaler01:
    """Min-max scaling to [0, 1] fitted on a table; constant columns handled (see the module docstring)."""

    def __init__(self, data_min=None, data_max=None, feature_names=None, id_column=None):
        self.data_min = None if data_min is None else np.asarray(data_min, dtype=np.float64)
        self.data_max = None if data_max is None else np.asarray(data_max, dtype=np.float64)
        self.feature_names, self.id_column = column_names(feature_names, id_column)

    def fit(self, X, feature_names=None, id_column=None):
        X = np.asarray(X, dtype=np.float64)
        self.data_min, self.data_max = np.nanmin(X, axis=0), np.nanmax(X, axis=0)  # missing values ignored
        self.feature_names, self.id_column = column_names(feature_names, id_column, self.feature_names)
        return self

    @property
    def n_features(self):
        return int(self.data_min.shape[0])

    @property
    def half_range(self):
        """``(max - min) / 2`` per column, computed without overflow (0 for constant columns)."""
        return self.data_max / 2 - self.data_min / 2

    @property
    def data_range(self):
        """``max - min`` per column (0 for constant columns; inf if it exceeds the float64 range)."""
        with np.errstate(over="ignore"):
            return self.half_range * 2

    @property
    def constant(self):
        return self.half_range == 0

    def transform(self, X):
        X = np.asarray(X, dtype=np.float64)
        half = self.half_range
        const = half == 0
        safe = np.where(const, 1.0, half)
        with np.errstate(over="ignore"):
            Z = (X / 2 - self.data_min / 2) / safe
        if const.any():
            Z[:, const] = 0.5 + 0.5 * np.sign(X[:, const] - self.data_min[const])
        return np.clip(Z, -CLIP, 1 + CLIP).astype(np.float32)

    def fit_transform(self, X, **kwargs):
        return self.fit(X, **kwargs).transform(X)

    def inverse_transform(self, Z):
        """Back to the original units (a constant column's values all become its constant)."""
        Z = np.asarray(Z, dtype=np.float64)
        with np.errstate(over="ignore"):
            return np.where(self.constant, self.data_min, 2 * (Z * self.half_range + self.data_min / 2))

    def inverse_scale(self, D):
        """A difference in scaled units (e.g. ``S``) in the original units: ``D * (max - min)``."""
        with np.errstate(over="ignore"):
            return 2 * (np.asarray(D, dtype=np.float64) * self.half_range)

    # ------------------------------------------------------------------ JSON
    def to_dict(self):
        return {
            "kind": "minmax01",
            "version": 1,
            "min": [float(v) for v in self.data_min],
            "max": [float(v) for v in self.data_max],
            "feature_names": self.feature_names,
            "id_column": self.id_column,
        }

    def save(self, path):
        write_json(path, self.to_dict())
        return path

    @classmethod
    def load(cls, path):
        """The scaler in ``scaler.json``, every field checked (raises :class:`ScalerFileError`, one line naming
        the file and the field): a regular file of at most :data:`SCALER_MAX_BYTES`; ``min``/``max`` lists of
        the same length (at most ``MAX_LAYER_WIDTH``) of finite numbers with ``min <= max``;
        ``feature_names`` null or that many strings; ``id_column`` null or a string."""
        path = Path(path)
        d = read_json(path, SCALER_MAX_BYTES, "", ScalerFileError)
        if not isinstance(d, dict) or d.get("kind") != "minmax01":
            raise ScalerFileError(f"{path} is not a scaler written by rda detect (no \"kind\": \"minmax01\")")

        def bad(key, expected):
            text = repr(d.get(key))
            text = text if len(text) <= 80 else text[:79] + "\u2026"
            return ScalerFileError(f"{path}: field {key!r} is {text}, expected {expected}")

        def numbers(v):
            return isinstance(v, list) and 1 <= len(v) <= MAX_LAYER_WIDTH and all(
                isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v)

        lo, hi = d.get("min"), d.get("max")
        for key, v in (("min", lo), ("max", hi)):
            if not numbers(v):
                raise bad(key, f"a list of 1 to {MAX_LAYER_WIDTH} finite numbers")
        if len(lo) != len(hi):
            raise ScalerFileError(f"{path}: fields 'min' and 'max' have {len(lo)} and {len(hi)} values")
        wrong = next((j for j, (a, b) in enumerate(zip(lo, hi)) if a > b), None)
        if wrong is not None:
            raise ScalerFileError(f"{path}: field 'min' is above 'max' for column {wrong} "
                                  f"({lo[wrong]!r} > {hi[wrong]!r})")
        names = d.get("feature_names")
        if names is not None and not (isinstance(names, list) and len(names) == len(lo)
                                      and all(isinstance(n, str) for n in names)):
            raise bad("feature_names", f"null or a list of {len(lo)} strings (one per column)")
        if d.get("id_column") is not None and not isinstance(d.get("id_column"), str):
            raise bad("id_column", "null or a column name (a string)")
        return cls(lo, hi, names, d.get("id_column"))


PERCENTILES = (1.0, 99.0)  # the training percentiles mapped to 0 and 1


class RobustScaler01:
    """Per-column ``(X - low) / span`` with ``low``, ``low + span`` the 1st and 99th training percentiles.

    Parameters
    ----------
    low, span : array-like of shape (n_features,) or None
        The fitted values (``span > 0``); None until :meth:`fit`.
    feature_names : list of str or None
    id_column : str or None
        The table's id column (not a feature), kept for ``rda score``.
    """

    KIND = "robust01"

    def __init__(self, low=None, span=None, feature_names=None, id_column=None):
        self.low = None if low is None else np.asarray(low, dtype=np.float64)
        self.span = None if span is None else np.asarray(span, dtype=np.float64)
        self.feature_names, self.id_column = column_names(feature_names, id_column)

    def fit(self, X, feature_names=None, id_column=None):
        """Fit on the rows of ``X`` (NaN ignored); returns self."""
        X = np.asarray(X, dtype=np.float64)
        with warnings.catch_warnings():  # an all-NaN column: refused by the estimator, here set to 0..1
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanpercentile(X, PERCENTILES, axis=0)
            mn, mx = np.nanmin(X, axis=0), np.nanmax(X, axis=0)
        narrow = ~(hi > lo)
        lo, hi = np.where(narrow, mn, lo), np.where(narrow, mx, hi)
        with np.errstate(over="ignore", invalid="ignore"):
            span = hi - lo
        wide = np.flatnonzero(np.isinf(span) & np.isfinite(lo) & np.isfinite(hi))
        if wide.size:  # e.g. -1e308..1e308: no float64 span to divide by
            j = int(wide[0])
            name = repr(feature_names[j]) if feature_names is not None else str(j + 1)
            raise TableError(f"column {name} spans {lo[j]:.3g} to {hi[j]:.3g} (its 1st to 99th percentile), beyond "
                             "what a float64 number holds; rescale it (e.g. divide it by 1e300)")
        const = ~(np.isfinite(span) & (span > 0))
        self.span = np.where(const, 1.0, span)
        self.low = np.where(const, np.nan_to_num(lo, nan=0.0, posinf=0.0, neginf=0.0) - 0.5, lo)
        self.feature_names, self.id_column = column_names(feature_names, id_column, self.feature_names)
        return self

    @property
    def n_features(self):
        return int(self.low.shape[0])

    def transform(self, X):
        """Scaled rows as float32 (values beyond the percentiles stay beyond, held within ``CLIP`` (10^6)
        training spans, as :class:`~rda_cli.scaling.MinMaxScaler01` holds them: any finite value, 1e300
        included, scores as very abnormal, and sums of squares stay finite in float32; NaN stays NaN)."""
        with np.errstate(over="ignore"):
            Z = (np.asarray(X, dtype=np.float64) - self.low) / self.span
        return np.clip(Z, -CLIP, 1 + CLIP).astype(np.float32)

    def fit_transform(self, X, **kwargs):
        return self.fit(X, **kwargs).transform(X)

    def inverse_transform(self, Z):
        """Back to the user's units."""
        return np.asarray(Z, dtype=np.float64) * self.span + self.low

    def inverse_scale(self, D):
        """A difference in scaled units (e.g. ``S``) in the user's units: ``D * span``."""
        return np.asarray(D, dtype=np.float64) * self.span

    # ------------------------------------------------------------------ JSON
    def to_dict(self):
        return {"kind": self.KIND, "version": 1, "low": [float(v) for v in self.low],
                "span": [float(v) for v in self.span], "feature_names": self.feature_names,
                "id_column": self.id_column}

    def save(self, path):
        write_json(path, self.to_dict())
        return path

    @classmethod
    def from_dict(cls, d, where):
        """A scaler from its JSON dict, every field checked (raises :class:`ScalerFileError`, a
        TableError and ModelFileError, naming ``where``)."""
        if not isinstance(d, dict) or d.get("kind") != cls.KIND:
            raise ScalerFileError(f"{where} is not a robust scaler written by rda")
        lo, span = d.get("low"), d.get("span")
        if not isinstance(lo, list) or not isinstance(span, list) or len(lo) != len(span) or not lo:
            raise ScalerFileError(f"{where}: malformed low/span")
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in lo + span) \
                or not all(v > 0 for v in span):
            raise ScalerFileError(f"{where}: low/span must be finite numbers, span > 0")
        names = d.get("feature_names")
        if names is not None and (not isinstance(names, list) or len(names) != len(lo)
                                  or not all(isinstance(n, str) for n in names)):
            raise ScalerFileError(f"{where}: malformed feature_names")
        id_column = d.get("id_column")
        if id_column is not None and not isinstance(id_column, str):
            raise ScalerFileError(f"{where}: malformed id_column")
        return cls(lo, span, names, id_column)

    @classmethod
    def load(cls, path):
        return cls.from_dict(_read_json(path), path)


def _read_json(path):
    """``scaler.json``'s JSON: the bounded reader (a regular file of at most ``SCALER_MAX_BYTES``)."""
    return read_json(path, SCALER_MAX_BYTES, "", ScalerFileError)


def load_scaler(path):
    """The scaler saved at ``path``: a :class:`RobustScaler01` or ``rda detect``'s older
    :class:`~rda_cli.scaling.MinMaxScaler01` (raises :class:`ScalerFileError`, one line)."""
    d = _read_json(path)
    if isinstance(d, dict) and d.get("kind") == RobustScaler01.KIND:
        return RobustScaler01.from_dict(d, path)
    return MinMaxScaler01.load(path)
