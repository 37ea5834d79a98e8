"""User tables for ``rda detect`` / ``rda score``: reading them and scaling them to [0, 1].

Readable files
--------------
``.csv``
    Comma-separated numbers. The header row is optional and detected: the first non-empty line is
    the header iff one of its cells is a name (not a number, not a missing token, not something
    Python's ``float()`` would take), so ``1,NA,3`` is data; ``Table.header`` says what was taken.
    One column may hold row identifiers (``id_column``, named in the header); it is kept as text and
    excluded from the features. Every other cell holds plain ASCII decimal notation (see
    ``_NUMBER``) or a missing token (empty, NA, N/A, NaN, null); ``1_000`` or Unicode digits are
    refused, and so are missing tokens and inf unless ``missing="allow"`` (inf is refused always),
    with the line and column named. Every line after the header is a row (row ``r`` is line
    ``Table.first_line + r``); only empty lines at the end, and before a header, are not rows, so a
    blank line inside the data is refused with its line, never skipped. Files are read vectorised
    (pyarrow's CSV reader when installed, else NumPy's ``loadtxt``); when that reader cannot take the
    file as it stands, the exact reader (Python's ``csv``, a regular expression per cell) reads it and
    names the first bad cell's line and column. Both give the same table. A line may hold at most
    ``MAX_LINE`` characters.
``.parquet``
    Numeric columns, plus the id column if named (pyarrow needed: ``pip install rda-cli[arrow]``).
    Nulls are missing values.
``.npy``
    A 2-D numeric array (no pickled objects; its declared size checked first, see :mod:`.arrayfile`).
``.npz``
    The array named by ``array`` if given; else the one named ``X``; else the only 2-D array in the
    file (several 2-D arrays and no ``X``: refused, naming them, so the choice is never silent). The
    zip directory's and the arrays' declared sizes are checked before anything is decompressed.

Anything but a regular file (a FIFO, a device, a folder) is refused before it is opened.

Scaling
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
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .data import DataError
from .persistence import MAX_LAYER_WIDTH, ModelFileError
from .safeio import read_json

__all__ = ["TableError", "ScalerFileError", "Table", "read_table", "MinMaxScaler01"]

SUFFIXES = (".csv", ".parquet", ".npy", ".npz")
CLIP = 1e6  # scaled values are held within [-CLIP, 1 + CLIP]
SCALER_MAX_BYTES = 64 << 20  # scaler.json: two numbers and a name per column (up to 10^6 columns)


class TableError(DataError):
    """A problem with a user table, reported as one line."""


class ScalerFileError(TableError, ModelFileError):
    """A ``scaler.json`` that cannot be trusted or read: both a TableError and a ModelFileError (one line)."""


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


MISSING = ("allow", "refuse")

# What a CSV feature cell may hold (after stripping surrounding whitespace): plain ASCII decimal notation
# -- an optional sign, digits 0-9 with an optional point, an optional exponent -- or inf / infinity (any
# case; refused later as not finite); or a missing token (empty, NA, N/A, NaN, null; any case, NaN
# with an optional sign). Whatever else Python's float() would take (1_000, Unicode digits) is refused.
_NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)", re.IGNORECASE)
MISSING_TOKENS = ("", "na", "n/a", "nan", "+nan", "-nan", "null")  # compared case-insensitively
BLOCK_BYTES = 1 << 24  # bytes of CSV text per block of the vectorised reader (16 MiB)
MAX_LINE = BLOCK_BYTES  # characters in one CSV line (16 Mi; a longer one is refused): a line that fits a
# block is read by both readers, a longer one only by the exact reader, so both give the same outcome
EXACT_CHUNK_ROWS = 1 << 16  # rows per chunk of the exact reader


def _is_number(text):
    return _NUMBER.fullmatch(text) is not None


def _is_missing(text):
    return text.lower() in MISSING_TOKENS


def _float_would_take(text):
    try:
        float(text)
    except ValueError:
        return False
    return True


def _null_spellings():
    """Every spelling of :data:`MISSING_TOKENS` (all letter cases), for pyarrow's ``null_values``."""
    out = set()
    for token in MISSING_TOKENS:
        spellings = [""]
        for ch in token:
            spellings = [s + c for s in spellings for c in {ch.lower(), ch.upper()}]
        out.update(spellings)
    return sorted(out)


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


@dataclass
class _Layout:
    """What a CSV file's first non-empty row says (column names, header, id column, features) and where
    its data lie: rows start at physical line ``first_line`` (1-based; ``skip_lines`` lines before it)
    and the text ends at byte ``end`` (empty lines at the end of the file are not rows)."""

    names: list
    has_header: bool
    id_index: int | None
    feat_idx: list
    skip_lines: int = 0
    end: int | None = None
    header: list | None = None
    lines: bool = True  # rows are lines of a text file (False: a Parquet table)

    @property
    def first_line(self):
        return self.skip_lines + 1


def _layout(path, first, id_column, line=1):
    """:class:`_Layout` from the first non-empty row ``first`` (physical line ``line``).

    The row is the header iff one of its cells is a name: neither a number nor a missing token nor
    something Python's float() would read (``1_000``, Unicode digits: refused below, as in any row).
    So ``1,NA,3`` is a row of data, ``id,400,450`` a header."""
    first = [cell.strip() for cell in first]
    has_header = any(not _is_number(c) and not _is_missing(c) and not _float_would_take(c) for c in first)
    width = len(first)
    if has_header:
        names = first
        if any(not n for n in names):
            raise TableError(f"{path}: the header row (line {line}) has an empty column name (column "
                             f"{names.index('') + 1})")
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise TableError(f"{path}: the header names column {dup[0]!r} more than once")
    else:
        names = [f"x{j + 1}" for j in range(width)]
    id_index = None
    if id_column is not None:
        if not has_header:
            raise TableError(f"{path} has no header row (line {line} holds only numbers and missing values), so it "
                             f"has no column named {id_column!r} (`id_column` needs a header)")
        if id_column not in names:
            import difflib

            close = difflib.get_close_matches(id_column, names, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise TableError(f"{path}: no column named {id_column!r}{hint} (columns: {', '.join(names)})")
        id_index = names.index(id_column)
    feat_idx = [j for j in range(width) if j != id_index]
    if not feat_idx:
        raise TableError(f"{path} has no feature columns besides the id column {id_column!r}")
    return _Layout(names, has_header, id_index, feat_idx, skip_lines=line if has_header else 0,
                   header=names if has_header else None)


def _cell_value(cell, missing, path, line, name):
    """A stripped feature cell as a float (NaN: missing, with ``missing="allow"``); else TableError."""
    if _NUMBER.fullmatch(cell):
        return float(cell)
    where = f"{path}: line {line}, column {name!r}"
    if _is_missing(cell):
        if missing == "allow":
            return math.nan
        what = "an empty cell" if not cell else f"{cell!r}, a missing value"
        raise TableError(f"{where} holds {what}; every value must be a finite number "
                         "(`missing` \"allow\" takes empty cells, NA and NaN as missing values)")
    if _float_would_take(cell):
        raise TableError(f"{where} holds {cell!r}: not plain decimal notation (ASCII digits 0-9, an optional "
                         "sign, point and exponent)")
    raise TableError(f"{where} holds non-numeric value {cell!r}; every feature value must be a number "
                     "(name a text id column with `id_column`)")


def _text_lines(fh, path):
    """The lines of a text file, each at most :data:`MAX_LINE` characters (a longer one is refused)."""
    n = 0
    while True:
        line = fh.readline(MAX_LINE + 1)
        if not line:
            return
        n += 1
        if len(line) > MAX_LINE:
            raise TableError(f"{path}: line {n} is longer than {MAX_LINE} characters")
        yield line


def _records(path):
    """``(line, cells)`` per CSV record, ``line`` its 1-based physical line; a quoted cell running over
    several lines is refused (so that row ``r`` is always line ``first_line + r``)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(_text_lines(fh, path))
            last = 0
            for row in reader:
                if reader.line_num != last + 1:
                    raise TableError(f"{path}: line {last + 1}: a quoted cell runs over {reader.line_num - last} "
                                     "lines; every row of a table must be one line")
                last = reader.line_num
                yield last, row
    except UnicodeDecodeError:
        raise TableError(f"{path}: not a text CSV file (cannot decode it as UTF-8)") from None
    except csv.Error as exc:
        raise TableError(f"{path}: malformed CSV: {exc}") from None


def _is_empty_line(row):
    return len(row) <= 1 and not "".join(row).strip()


def _content_end(path):
    """The byte offset just past the last character that is not ASCII whitespace (empty lines at the end
    of a file are not rows), read backwards from the end in small blocks."""
    with open(path, "rb") as fh:
        end = fh.seek(0, 2)
        while end > 0:
            start = max(0, end - 65536)
            fh.seek(start)
            block = fh.read(end - start).rstrip(b" \t\r\n")
            if block:
                return start + len(block)
            end = start
    return 0


def _exact_chunks(path, id_column, missing, rows=EXACT_CHUNK_ROWS):
    """The reference CSV reader, streamed: ``(layout, X, ids, offset)`` per chunk of at most ``rows`` rows
    (``offset``: the chunk's first row). Python's csv module and :data:`_NUMBER` per cell: slow, but it
    names the line and column of the first bad cell.

    Rows: every record after the header (or from line 1 when there is none), except empty lines at
    the end of the file (and before a header). An empty line or a row of empty cells inside the data
    is a row of missing values (``missing="allow"``) or refused with its line (``"refuse"``)."""
    records = _records(path)
    lay = None
    pending = []  # empty lines seen since the last row: rows if another row follows
    X, ids, offset = [], [], 0
    for line, row in records:
        if lay is None:
            if _is_empty_line(row):
                pending.append(line)
                continue
            lay = _layout(path, row, id_column, line)
            width = len(lay.names)
            if lay.has_header:
                pending = []
                continue
        if _is_empty_line(row):
            pending.append(line)
            continue
        for blank in pending + ([line] if not any(cell.strip() for cell in row) else []):
            if missing == "refuse":
                raise TableError(f"{path}: line {blank} is blank (no value in any cell); a row inside a table is "
                                 "never skipped (the row numbers after it would shift): delete it or fill it in")
            X.append([math.nan] * len(lay.feat_idx))
            ids.append("")
        pending = []
        if any(cell.strip() for cell in row):
            if len(row) != width:
                raise TableError(f"{path}: line {line} has {len(row)} cells, expected {width} (as in the first row)")
            X.append([_cell_value(row[j].strip(), missing, path, line, lay.names[j]) for j in lay.feat_idx])
            ids.append(row[lay.id_index].strip() if lay.id_index is not None else "")
        if len(X) >= rows:
            yield lay, np.array(X, dtype=np.float64), ids if lay.id_index is not None else None, offset
            offset += len(X)
            X, ids = [], []
    if lay is None:
        raise TableError(f"{path} is empty")
    if offset == 0 and not X:
        raise TableError(f"{path} has a header but no data rows")
    if X:
        yield lay, np.array(X, dtype=np.float64).reshape(-1, len(lay.feat_idx)), \
            ids if lay.id_index is not None else None, offset


def _read_csv_exact(path, id_column, missing="refuse", columns=True):
    """The whole table from :func:`_exact_chunks` (each chunk checked as it comes)."""
    parts, ids, lay = [], [], None
    for lay, X, chunk_ids, offset in _exact_chunks(path, id_column, missing):
        _check_finite(X, path, [lay.names[j] for j in lay.feat_idx], missing, lay.first_line, offset)
        parts.append(X)
        ids += chunk_ids or []
    return _finish(np.vstack(parts), path, lay, ids if lay.id_index is not None else None, id_column, missing,
                   columns)


def _finish(X, path, lay, ids, id_column, missing, columns=True, offset=0):
    features = [lay.names[j] for j in lay.feat_idx]
    first = lay.first_line if lay.lines else None
    _check_finite(X, path, features, missing, first, offset)
    if missing == "allow":
        _check_observed(X, path, features, columns, first, offset)
    return Table(X, features, ids, id_column, lay.has_header, str(path), header=lay.header,
                 first_line=first)


def _csv_layout(path, id_column):
    """:class:`_Layout` of a CSV file, with the end of its text, or None when the file cannot be read
    that way (the exact reader then reports why)."""
    try:
        for line, row in _records(path):
            if not _is_empty_line(row):
                lay = _layout(path, row, id_column, line)
                lay.end = _content_end(path)
                return lay
    except TableError:
        return None
    return None


def _segments(path, lay, block_bytes):
    """The data text of a CSV file in pieces of about ``block_bytes`` that end at a line end (the last
    ends at the text's end: the empty lines after it are not rows), so that pyarrow never holds more
    than one piece (its own streaming reader reads far ahead)."""
    with open(path, "rb") as fh:
        left, rest = lay.end, b""
        while left > 0 or rest:
            data = rest + fh.read(max(0, min(block_bytes, left)))
            left -= len(data) - len(rest)
            if left <= 0:
                if data:
                    yield data
                return
            cut = data.rfind(b"\n")
            cut = data.rfind(b"\r") if cut < 0 else cut
            if cut < 0:  # no line end in a block: keep reading (the line is at most MAX_LINE characters)
                rest = data
                if len(rest) > 4 * MAX_LINE:  # a line longer than any the exact reader takes: it says so
                    raise _NotPlain
                continue
            rest = data[cut + 1:]
            yield data[:cut + 1]


def _arrow_batches(path, lay, block_bytes=None):
    """Arrow tables of the CSV data, one per piece of :func:`_segments`."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    read, parse, convert = _arrow_options(lay)
    for k, piece in enumerate(_segments(path, lay, block_bytes or BLOCK_BYTES)):
        if k == 1:
            read.skip_rows = 0
        yield pacsv.read_csv(pa.BufferReader(piece), read, parse, convert)


def _arrow_options(lay, block_size=None):
    import pyarrow as pa
    import pyarrow.csv as pacsv

    columns = [f"c{j}" for j in range(len(lay.names))]
    types = {columns[j]: pa.float64() for j in lay.feat_idx}
    if lay.id_index is not None:
        types[columns[lay.id_index]] = pa.string()
    read = pacsv.ReadOptions(column_names=columns, skip_rows=lay.skip_lines, encoding="utf8",
                             block_size=block_size or BLOCK_BYTES)
    parse = pacsv.ParseOptions(delimiter=",", ignore_empty_lines=False)  # an empty line is a row of nulls
    convert = pacsv.ConvertOptions(column_types=types, null_values=_null_spellings(), strings_can_be_null=False)
    return read, parse, convert


def _from_arrow(batch, lay, missing):
    """``(X, ids)`` of an Arrow table or record batch read with :func:`_arrow_options`, or None when the
    exact reader must decide: a null (missing token) with ``missing="refuse"``, a NaN that is not one
    of the missing tokens (pyarrow reads ``nan(1)``), or a row without any value (its line is named)."""
    import pyarrow.compute as pc

    cols = [batch.column(j) for j in range(len(lay.names))]
    X = np.column_stack([cols[j].to_numpy(zero_copy_only=False) for j in lay.feat_idx]).astype(np.float64, copy=False)
    nulls = sum(cols[j].null_count for j in lay.feat_idx)
    if (missing == "refuse" and nulls) or int(np.isnan(X).sum()) != nulls or np.isnan(X).all(axis=1).any():
        return None
    ids = None
    if lay.id_index is not None:
        ids = pc.utf8_trim_whitespace(cols[lay.id_index]).to_pylist()
    return X, ids


def _read_csv_arrow(path, lay, missing):
    import pyarrow as pa

    parts, ids = [], []
    try:
        for batch in _arrow_batches(path, lay):
            fast = _from_arrow(batch, lay, missing)
            if fast is None:
                return None
            parts.append(fast[0])
            ids += fast[1] or []
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError, _NotPlain):
        return None
    if not parts:
        return None
    return np.vstack(parts), ids if lay.id_index is not None else None


class _NotPlain(Exception):
    """A line NumPy's reader must not see (an empty line inside the data, a non-ASCII character)."""


def _plain_lines(path, lay):
    """The data lines for NumPy's ``loadtxt``: an empty line followed by a row, or a non-ASCII or ``_``
    character, stops it (the exact reader decides)."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        lines = _text_lines(fh, path)
        for _ in range(lay.skip_lines):
            next(lines, None)
        empty = False
        for line in lines:
            if not line.strip():
                empty = True
                continue
            if empty or not line.isascii() or "_" in line:
                raise _NotPlain
            yield line


def _read_csv_numpy(path, lay, missing):
    if lay.id_index is not None:
        return None
    import warnings

    try:  # every column (no usecols), so that a row of another width is an error here too
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "input contained no data": the exact reader says it
            X = np.loadtxt(_plain_lines(path, lay), delimiter=",", dtype=np.float64, ndmin=2, comments=None)
    except (ValueError, UnicodeDecodeError, TableError, _NotPlain):
        return None
    if X.shape[1] != len(lay.names) or np.isnan(X).any():
        return None
    return X, None


def _have_arrow():
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def _read_csv(path, id_column, missing="refuse", columns=True):
    """Read a CSV file: vectorised (pyarrow's CSV reader when installed, else NumPy's ``loadtxt``), and
    the exact reader when the fast one cannot read the file as it stands, so that a bad cell is
    reported as the exact reader reports it (line and column named)."""
    lay = _csv_layout(path, id_column)
    fast = None
    if lay is not None:
        fast = _read_csv_arrow(path, lay, missing) if _have_arrow() else _read_csv_numpy(path, lay, missing)
    if fast is None or fast[0].shape[0] == 0:
        return _read_csv_exact(path, id_column, missing, columns)
    return _finish(fast[0], path, lay, fast[1], id_column, missing, columns)


def _as_numeric_2d(arr, path, what, missing="refuse", columns=True):
    arr = np.asarray(arr)
    if arr.dtype.kind not in "biuf":
        raise TableError(f"{path}: {what} has dtype {arr.dtype}, expected numbers")
    if arr.ndim != 2:
        raise TableError(f"{path}: {what} has shape {arr.shape}, expected a 2-D array (rows, features)")
    if arr.size == 0:
        raise TableError(f"{path}: {what} is empty (shape {arr.shape})")
    X = arr.astype(np.float64)
    _check_finite(X, path, missing=missing)
    if missing == "allow":
        _check_observed(X, path, columns=columns)
    return X


def _read_array(path, suffix, array=None, missing="refuse", columns=True):
    """``(X, array_name)`` from a .npy or .npz file; declared sizes are checked before anything is
    allocated (:mod:`rda_cli.arrayfile`)."""
    from .arrayfile import ArrayFileError, NpzArrays, read_npy

    try:
        if suffix == ".npy":
            if array is not None:
                raise TableError(f"{path}: `array` applies to .npz files only")
            return _as_numeric_2d(read_npy(path), path, "the array", missing, columns), None
        with NpzArrays(path) as z:
            names = z.names
            if array is not None:
                if array not in names:
                    raise TableError(f"{path}: no array named {array!r} (arrays: {', '.join(names) or 'none'})")
                name = array
            elif "X" in names:
                name = "X"
            else:
                two_d = [k for k in names if len(z.shape(k)[0]) == 2]
                if len(two_d) > 1:
                    raise TableError(f"{path} holds several 2-D arrays ({', '.join(two_d)}) and none named 'X': "
                                     "name the one to read with `array`")
                if not two_d:
                    raise TableError(f"{path}: no 2-D array in it (arrays: {', '.join(names) or 'none'})")
                name = two_d[0]
            return _as_numeric_2d(z.load(name), path, f"array {name!r}", missing, columns), name
    except TableError:
        raise
    except ArrayFileError as exc:
        raise TableError(str(exc)) from None
    except ValueError as exc:  # corrupt data
        raise TableError(f"{path}: cannot read it as {suffix} ({' '.join(str(exc).split())[:200]})") from None
    except (OSError, EOFError) as exc:
        raise TableError(f"{path}: cannot read it as {suffix} ({' '.join(str(exc).split())[:200] or 'truncated'})") \
            from None


def _read_parquet(path, id_column, missing, columns=True):
    """A Parquet file (pyarrow needed): numeric columns, plus the id column if named; nulls are missing values."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise TableError(f"{path}: reading Parquet files needs pyarrow (pip install rda-cli[arrow])") from None
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{path}: cannot read it as Parquet ({' '.join(str(exc).split())[:200]})") from None
    names = list(table.column_names)
    if id_column is not None and id_column not in names:
        raise TableError(f"{path}: no column named {id_column!r} (columns: {', '.join(names)})")
    features = [n for n in names if n != id_column]
    if not features:
        raise TableError(f"{path} has no feature columns besides the id column {id_column!r}")
    for name in features:
        t = table.schema.field(name).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise TableError(f"{path}: column {name!r} has type {t}; every feature column must be numeric "
                             "(name a text id column with `id_column`)")
    if table.num_rows == 0:
        raise TableError(f"{path} has no data rows")
    X = np.column_stack([table.column(n).to_numpy(zero_copy_only=False).astype(np.float64) for n in features])
    ids = None
    if id_column is not None:
        ids = ["" if v is None else str(v).strip() for v in table.column(id_column).to_pylist()]
    lay = _Layout(names, True, None if id_column is None else names.index(id_column),
                  [j for j, n in enumerate(names) if n != id_column], lines=False)
    return _finish(X, path, lay, ids, id_column, missing, columns)


def iter_table(path, id_column=None, missing="refuse", block_bytes=None):
    """Yield the rows of a table in consecutive :class:`Table` chunks, for scoring files larger than memory.

    A CSV file is streamed with pyarrow's reader (``block_bytes`` of text per chunk, default
    :data:`BLOCK_BYTES`), when installed;
    any other file, or a CSV file without pyarrow, comes as one chunk from :func:`read_table`. Each
    chunk is checked as :func:`read_table` checks a table (except that a column may have no value:
    the network fills it in). When the fast reader meets a cell it cannot take, the exact reader
    streams the file: it either names the bad cell (TableError, one line, as :func:`read_table`
    would) or reads it, and the rows not yet yielded come from it. Memory: a few blocks of text and
    their float64 rows, whatever the file's length.
    """
    path = Path(path)
    if path.suffix.lower() != ".csv" or not _have_arrow():
        yield _read_checked(path, id_column, 1, None, missing, columns=False)
        return
    _check_missing(missing)
    _check_path(path)
    lay = _csv_layout(path, id_column)
    done = 0
    if lay is not None:
        import pyarrow as pa

        try:
            for batch in _arrow_batches(path, lay, block_bytes):
                fast = _from_arrow(batch, lay, missing)
                if fast is None:
                    break
                if len(fast[0]):
                    table = _finish(*fast[:1], path, lay, fast[1], id_column, missing, False, done)
                    done += len(fast[0])
                    yield table
            else:
                if done:
                    return
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, UnicodeDecodeError, TableError, _NotPlain):
            pass
    for lay, X, ids, offset in _exact_chunks(path, id_column, missing):  # names the bad cell, or reads the rest
        skip = max(0, done - offset)
        if skip < len(X):
            yield _finish(X[skip:], path, lay, None if ids is None else ids[skip:], id_column, missing, False,
                          offset + skip)


def _check_missing(missing):
    if missing not in MISSING:
        raise TableError(f"`missing` {missing!r}: expected one of {', '.join(MISSING)}")


def _check_path(path):
    """Refuse a path that is not a regular table file, before opening it (a FIFO is never opened, a
    device never read); returns its suffix (lower case)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise TableError(f"{path} does not exist") from None
    except OSError as exc:
        raise TableError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(info.st_mode):
        raise TableError(f"{path} is a folder, expected a .csv, .parquet, .npy or .npz file")
    if not stat.S_ISREG(info.st_mode):
        kind = ("a FIFO (named pipe)" if stat.S_ISFIFO(info.st_mode) else "a character device"
                if stat.S_ISCHR(info.st_mode) else "a block device" if stat.S_ISBLK(info.st_mode) else
                "a socket" if stat.S_ISSOCK(info.st_mode) else "not a file")
        raise TableError(f"{path} is not a regular file ({kind}); give a .csv, .parquet, .npy or .npz file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise TableError(f"{path}: unsupported file type {suffix or '(none)'!r}; expected .csv, .parquet, .npy "
                         "or .npz")
    if info.st_size == 0:
        raise TableError(f"{path} is empty")
    return suffix


def read_table(path, id_column=None, min_rows=2, array=None, missing="refuse"):
    """Read a ``.csv``, ``.parquet``, ``.npy`` or ``.npz`` file into a :class:`Table` (see the module
    docstring).

    ``array`` names the array to read from an ``.npz`` file. ``missing="allow"``: empty CSV cells,
    NaN values and Parquet nulls are missing values (NaN in ``Table.X``); a row or a column with
    none observed is refused. ``"refuse"``: every value must be a finite number.

    Raises :class:`TableError` (one line) for a missing, empty or malformed file, non-numeric or
    non-finite values, or fewer than ``min_rows`` rows.
    """
    return _read_checked(Path(path), id_column, min_rows, array, missing)


def _read_checked(path, id_column, min_rows, array, missing, columns=True):
    _check_missing(missing)
    suffix = _check_path(path)
    if suffix == ".csv":
        if array is not None:
            raise TableError(f"{path}: `array` applies to .npz files only")
        table = _read_csv(path, id_column, missing, columns)
    elif suffix == ".parquet":
        if array is not None:
            raise TableError(f"{path}: `array` applies to .npz files only")
        table = _read_parquet(path, id_column, missing, columns)
    else:
        if id_column is not None:
            raise TableError(f"{path}: `id_column` applies to CSV files only ({suffix} files have no column names)")
        X, name = _read_array(path, suffix, array, missing, columns)
        table = Table(X, [f"x{j + 1}" for j in range(X.shape[1])], array_name=name)
    table.path = str(path)
    if table.n_rows < min_rows:
        raise TableError(f"{path} has {table.n_rows} data row{'s' if table.n_rows != 1 else ''}; "
                         f"at least {min_rows} are needed")
    return table


class MinMaxScaler01:
    """Min-max scaling to [0, 1] fitted on a table; constant columns handled (see the module docstring)."""

    def __init__(self, data_min=None, data_max=None, feature_names=None, id_column=None):
        self.data_min = None if data_min is None else np.asarray(data_min, dtype=np.float64)
        self.data_max = None if data_max is None else np.asarray(data_max, dtype=np.float64)
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.id_column = id_column

    def fit(self, X, feature_names=None, id_column=None):
        X = np.asarray(X, dtype=np.float64)
        self.data_min, self.data_max = np.nanmin(X, axis=0), np.nanmax(X, axis=0)  # missing values ignored
        if feature_names is not None:
            self.feature_names = list(feature_names)
        self.id_column = id_column
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
        Path(path).write_text(json.dumps(self.to_dict(), indent=1))
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
