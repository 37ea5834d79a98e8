"""User tables for ``rda detect`` / ``rda score``: reading them (their scaling: :mod:`rda_cli.scaling`).

Readable files
--------------
``.csv``
    Comma-separated numbers, the header row optional and detected (the grammar and the readers:
    :mod:`.csvread`).
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
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np

# CSV reading lives in csvread.py, the table and its checks in table.py; tests patch _have_arrow, _csv_layout and
# _read_csv_exact here (_read_csv and iter_table below look them up in this module).
from .csvread import (ARROW_MAX_COLUMNS, _arrow_batches, _csv_layout, _exact_chunks, _finish, _from_arrow,
                      _Layout, _NotPlain, _read_csv_arrow, _read_csv_exact, _read_csv_numpy)

from .table import Table, TableError, _check_finite, _check_observed, column_names  # noqa: F401
from .csvread import check_width, column_index

__all__ = ["TableError", "Table", "read_table", "iter_table"]

SUFFIXES = (".csv", ".parquet", ".npy", ".npz")
MISSING = ("allow", "refuse")  # values of `missing`


def _have_arrow():
    try:
        import pyarrow.csv  # noqa: F401
    except ImportError:
        return False
    return True


def _arrow_for(lay):
    """Whether pyarrow reads a CSV file of layout ``lay``: when installed, for tables of at most
    :data:`ARROW_MAX_COLUMNS` columns (NumPy's reader is faster and far smaller on wider ones)."""
    return len(lay.names) <= ARROW_MAX_COLUMNS and _have_arrow()


def _read_csv(path, id_column, missing="refuse", columns=True):
    """Read a CSV file: vectorised (pyarrow's CSV reader when installed, else NumPy's ``loadtxt``), and
    the exact reader when the fast one cannot read the file as it stands, so that a bad cell is
    reported as the exact reader reports it (line and column named)."""
    lay = _csv_layout(path, id_column)
    fast = None
    if lay is not None:
        fast = _read_csv_arrow(path, lay, missing) if _arrow_for(lay) else _read_csv_numpy(path, lay, missing)
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


PARQUET_BATCH_ROWS = 1 << 16  # rows per batch read from a Parquet file


def _parquet_file(path, id_column):
    """``(ParquetFile, layout, n_rows)`` of a Parquet file, from its metadata alone (pyarrow needed): the
    column count within :data:`~rda_cli.csvread.MAX_COLUMNS`, every feature column numeric, at least one
    row, and ``rows x features`` float64 values within :func:`~rda_cli.arrayfile.memory_cap` -- all
    checked before any data page is read (a small compressed file may declare billions of rows)."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise TableError(f"{path}: reading Parquet files needs pyarrow (pip install rda-cli[arrow])") from None
    from .arrayfile import _size, memory_cap

    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
        n_rows = pf.metadata.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{path}: cannot read it as Parquet ({' '.join(str(exc).split())[:200]})") from None
    check_width(path, len(schema), "its schema")
    names = list(schema.names)
    if len(set(names)) != len(names):
        raise TableError(f"{path}: the schema names a column more than once")
    id_index = None if id_column is None else column_index(path, names, id_column)
    features = [j for j in range(len(names)) if j != id_index]
    if not features:
        raise TableError(f"{path} has no feature columns besides the id column {id_column!r}")
    for j in features:
        t = schema.field(j).type
        if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
            raise TableError(f"{path}: column {names[j]!r} has type {t}; every feature column must be numeric "
                             "(name a text id column with `id_column`)")
    if n_rows <= 0:
        raise TableError(f"{path} has no data rows")
    need = n_rows * len(features) * 8
    if need > memory_cap():
        raise TableError(f"{path} declares {n_rows:,} rows x {len(features):,} columns ({_size(need)} as float64), "
                         f"more than rda reads into memory ({_size(memory_cap())}, half the physical memory)")
    lay = _Layout(names, True, id_index, features, lines=False, header=names)
    return pf, lay, n_rows


def _parquet_chunks(path, pf, lay, n_rows, batch_rows=PARQUET_BATCH_ROWS):
    """``(X, ids, offset)`` per batch of at most ``batch_rows`` rows of a Parquet file checked by
    :func:`_parquet_file`; a file holding more or fewer rows than its metadata declares is refused."""
    import pyarrow as pa

    offset = 0
    try:
        for batch in pf.iter_batches(batch_size=batch_rows, use_threads=False):
            if offset + batch.num_rows > n_rows:
                offset += batch.num_rows
                break
            X = np.empty((batch.num_rows, len(lay.feat_idx)))
            for k, j in enumerate(lay.feat_idx):
                X[:, k] = batch.column(j).to_numpy(zero_copy_only=False)
            ids = None
            if lay.id_index is not None:
                ids = ["" if v is None else str(v).strip() for v in batch.column(lay.id_index).to_pylist()]
            yield X, ids, offset
            offset += batch.num_rows
    except (pa.ArrowException, OSError) as exc:
        raise TableError(f"{path}: cannot read it as Parquet ({' '.join(str(exc).split())[:200]})") from None
    if offset != n_rows:
        raise TableError(f"{path}: its metadata declares {n_rows:,} rows but it holds "
                         f"{'more' if offset > n_rows else f'{offset:,}'}: damaged or crafted")


def _read_parquet(path, id_column, missing, columns=True):
    """A Parquet file (pyarrow needed): numeric columns, plus the id column if named; nulls are missing
    values. Memory: the float64 table (allocated once, from the checked metadata) and one batch."""
    pf, lay, n_rows = _parquet_file(path, id_column)
    X, ids = np.empty((n_rows, len(lay.feat_idx))), []
    for part, part_ids, offset in _parquet_chunks(path, pf, lay, n_rows):
        X[offset:offset + len(part)] = part
        ids += part_ids or []
    return _finish(X, path, lay, ids if id_column is not None else None, id_column, missing, columns)


def iter_table(path, id_column=None, missing="refuse", block_bytes=None):
    """Yield the rows of a table in consecutive :class:`Table` chunks, for scoring files larger than memory.

    A CSV file is streamed with pyarrow's reader (``block_bytes`` of text per chunk, default
    :data:`BLOCK_BYTES`) when it is installed and the table has at most :data:`ARROW_MAX_COLUMNS`
    columns; a Parquet file in batches of :data:`PARQUET_BATCH_ROWS` rows (its metadata checked
    first); any other file comes as one chunk from :func:`read_table`. Each
    chunk is checked as :func:`read_table` checks a table (except that a column may have no value:
    the network fills it in). When the fast reader meets a cell it cannot take, the exact reader
    streams the file: it either names the bad cell (TableError, one line, as :func:`read_table`
    would) or reads it, and the rows not yet yielded come from it. Memory: a few blocks of text and
    their float64 rows, whatever the file's length.
    """
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        _check_missing(missing)
        _check_path(path)
        pf, lay, n_rows = _parquet_file(path, id_column)
        for X, ids, offset in _parquet_chunks(path, pf, lay, n_rows):
            yield _finish(X, path, lay, ids, id_column, missing, False, offset)
        return
    lay = None
    if path.suffix.lower() == ".csv" and _have_arrow():
        _check_missing(missing)
        _check_path(path)
        lay = _csv_layout(path, id_column)
    if lay is None or not _arrow_for(lay):
        yield _read_checked(path, id_column, 1, None, missing, columns=False)
        return
    import pyarrow as pa

    done = 0
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
