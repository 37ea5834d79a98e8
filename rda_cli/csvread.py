"""Reading CSV tables (for :func:`.tabular.read_table` and :func:`.tabular.iter_table`): the grammar of
a cell, the header rule, and three readers that give the same table.

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
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

from .table import Table, TableError, _check_finite, _check_observed


# What a CSV feature cell may hold (after stripping surrounding whitespace): plain ASCII decimal notation
# -- an optional sign, digits 0-9 with an optional point, an optional exponent -- or inf / infinity (any
# case; refused later as not finite); or a missing token (empty, NA, N/A, NaN, null; any case, NaN
# with an optional sign). Whatever else Python's float() would take (1_000, Unicode digits) is refused.
_NUMBER = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)", re.IGNORECASE)
MISSING_TOKENS = ("", "na", "n/a", "nan", "+nan", "-nan", "null")  # compared case-insensitively
BLOCK_BYTES = 1 << 24  # bytes of CSV text per block of the vectorised reader (16 MiB)
MAX_LINE = BLOCK_BYTES  # characters in one CSV line (16 Mi; a longer one is refused): a line that fits a
# block is read by both readers, a longer one only by the exact reader, so both give the same outcome
EXACT_CHUNK_ROWS = 1 << 16  # rows per chunk of the exact reader, at most
EXACT_CHUNK_CELLS = 1 << 22  # cells per chunk of the exact reader, at most (wide tables: fewer rows)
ARROW_BLOCK_BYTES = 1 << 20  # pyarrow's block (parsed in parallel); a piece with a longer line: one block
ARROW_MAX_COLUMNS = 1000  # wider tables go to NumPy's reader (pyarrow's cost and memory grow per column)
MAX_COLUMNS = 1_000_000  # columns of a table (as wide as a network layer may be, persistence.MAX_LAYER_WIDTH)
NAMES_SHOWN = 10  # column names a message lists at most


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
    width = len(first)
    check_width(path, width, f"line {line}")
    first = [cell.strip() for cell in first]
    has_header = any(not _is_number(c) and not _is_missing(c) and not _float_would_take(c) for c in first)
    if has_header:
        names = first
        if "" in names:
            raise TableError(f"{path}: the header row (line {line}) has an empty column name (column "
                             f"{names.index('') + 1})")
        if len(set(names)) != width:
            dup = min(name for name, count in Counter(names).items() if count > 1)
            raise TableError(f"{path}: the header names column {dup!r} more than once")
    else:
        names = [f"x{j + 1}" for j in range(width)]
    id_index = None
    if id_column is not None:
        if not has_header:
            raise TableError(f"{path} has no header row (line {line} holds only numbers and missing values), so it "
                             f"has no column named {id_column!r} (`id_column` needs a header)")
        id_index = column_index(path, names, id_column)
    feat_idx = [j for j in range(width) if j != id_index]
    if not feat_idx:
        raise TableError(f"{path} has no feature columns besides the id column {id_column!r}")
    return _Layout(names, has_header, id_index, feat_idx, skip_lines=line if has_header else 0,
                   header=names if has_header else None)


def check_width(path, width, where):
    """Refuse a table of more than :data:`MAX_COLUMNS` columns (``where``: the line or file part that says so)."""
    if width > MAX_COLUMNS:
        raise TableError(f"{path}: {where} has {width:,} columns, more than the {MAX_COLUMNS:,} rda reads")


def shown_names(names, limit=NAMES_SHOWN):
    """At most ``limit`` column names for a message, each quoted to 40 characters, then how many more."""
    shown = ", ".join(n if len(n) <= 40 else n[:39] + "\u2026" for n in names[:limit])
    return shown + (f", \u2026 ({len(names) - limit:,} more)" if len(names) > limit else "")


def column_index(path, names, name):
    """The index of column ``name`` among ``names``, or one TableError line naming a close match and at most
    :data:`NAMES_SHOWN` of the columns."""
    try:
        return names.index(name)
    except ValueError:
        pass
    import difflib

    close = difflib.get_close_matches(name, names, n=1, cutoff=0.5) if len(names) <= 10_000 else \
        [n for n in names if n.lower() == name.lower()][:1]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise TableError(f"{path}: no column named {name!r}{hint} (columns: {shown_names(names)})")


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


def _exact_chunks(path, id_column, missing, rows=None):
    """The reference CSV reader, streamed: ``(layout, X, ids, offset)`` per chunk of at most ``rows`` rows
    (default: :data:`EXACT_CHUNK_ROWS`, fewer for wide tables; ``offset``: the chunk's first row).
    Python's csv module and :data:`_NUMBER` per cell: slow, but it names the line and column of the
    first bad cell.

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
            rows = rows or max(1, min(EXACT_CHUNK_ROWS, EXACT_CHUNK_CELLS // width))
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

    read, parse, convert = _arrow_options(lay, min(ARROW_BLOCK_BYTES, BLOCK_BYTES))
    for k, piece in enumerate(_segments(path, lay, block_bytes or BLOCK_BYTES)):
        if k == 1:
            read.skip_rows = 0
        try:  # blocks of ARROW_BLOCK_BYTES are parsed by pyarrow's threads in parallel
            table = pacsv.read_csv(pa.BufferReader(piece), read, parse, convert)
        except pa.ArrowInvalid:
            # a line (or the header) longer than a block: the whole piece as one block (a line is at most
            # MAX_LINE); a file pyarrow cannot take fails again here (and the exact reader decides)
            whole = _arrow_options(lay, BLOCK_BYTES)[0]
            whole.skip_rows = read.skip_rows
            table = pacsv.read_csv(pa.BufferReader(piece), whole, parse, convert)
        yield table


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
    cols = [batch.column(j) for j in range(len(lay.names))]
    X = np.column_stack([cols[j].to_numpy(zero_copy_only=False) for j in lay.feat_idx]).astype(np.float64, copy=False)
    nulls = sum(cols[j].null_count for j in lay.feat_idx)
    if (missing == "refuse" and nulls) or int(np.isnan(X).sum()) != nulls or np.isnan(X).all(axis=1).any():
        return None
    ids = None
    if lay.id_index is not None:
        import pyarrow.compute as pc  # imported only here: it takes longer to import than a table to read

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
