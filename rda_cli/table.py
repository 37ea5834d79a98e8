"""A numeric table read from a user's file (:class:`Table`), its one-line error (:class:`TableError`),
and the checks of its values that every reader of :mod:`.tabular` and :mod:`.csvread` applies."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import DataError


class TableError(DataError):
    """A problem with a user table, reported as one line."""


@dataclass
class Table:
    """A numeric table read from a file."""

    X: np.ndarray  # (n_rows, n_features) float64, all finite
    feature_names: list = field(default_factory=list)
    ids: list | None = None  # row identifiers (strings) from the id column, if one was named
    id_name: str | None = None
    has_header: bool = False
    path: str = ""
    array_name: str | None = None  # the array read from an .npz file
    header: list | None = None  # a CSV file's header row as read (None: no header row)
    first_line: int | None = None  # a CSV file's line of the first data row (row r is line first_line + r)

    @property
    def n_rows(self):
        return self.X.shape[0]

    @property
    def n_features(self):
        return self.X.shape[1]


def _check_finite(X, path, names=None, missing="refuse", first_line=None, offset=0):
    """Refuse inf anywhere and NaN unless ``missing="allow"`` (one line naming the first such cell: its CSV
    line when ``first_line`` (the line of the table's first row) is known, else its 1-based row)."""
    bad = np.isinf(X) if missing == "allow" else ~np.isfinite(X)
    if bad.any():
        r, c = (int(v) for v in np.argwhere(bad)[0])
        col = f"'{names[c]}'" if names else str(c + 1)
        allowed = " or missing (empty or NaN)" if missing == "allow" else ""
        where = f"row {offset + r + 1}" if first_line is None else \
            f"line {first_line + offset + r} (data row {offset + r + 1})"
        raise TableError(f"{path}: {where}, column {col} is {float(X[r, c])!r}: every value must be a finite "
                         f"number{allowed} ({int(bad.sum())} such cells)")


def _check_observed(X, path, names=None, columns=True, first_line=None, offset=0):
    """Refuse a row or (with ``columns``) a column with no observed (non-NaN) value: nothing to fit or
    score it by. (New rows to score may lack a column: the network fills it in.)"""
    missing = np.isnan(X)
    if not missing.any():
        return
    rows = np.flatnonzero(missing.all(axis=1))
    if rows.size:
        r = offset + int(rows[0])
        line = "" if first_line is None else f" (line {first_line + r})"
        raise TableError(f"{path}: data row {r + 1} has no value in any feature column{line} "
                         f"({rows.size} such rows); a row needs at least one")
    cols = np.flatnonzero(missing.all(axis=0)) if columns else []
    if len(cols):
        col = f"'{names[cols[0]]}'" if names else str(int(cols[0]) + 1)
        raise TableError(f"{path}: column {col} has no value in any row ({cols.size} such columns); "
                         "drop it or fill it in")


def column_names(feature_names, id_column, kept=None):
    """A scaler's ``(feature_names, id_column)``: the names as a list (``kept`` where None), the id column
    as given (the table's id column, not a feature, kept for ``rda score``)."""
    return (kept if feature_names is None else list(feature_names)), id_column
