"""Reading tables (``--data``): CSV, Parquet, ``.npy`` / ``.npz``.

- The vectorised readers (pyarrow's, NumPy's) give what the exact reader gives: the same table, or the
  same one-line TableError; streamed chunks equal the whole table; wide headers are checked in linear time.
- Blank rows are never dropped (row numbers stay the user's lines), the header decision is explicit,
  only plain ASCII decimal cells are numbers, non-regular files are refused before opening, and
  ``.npy`` / ``.npz`` files are checked against the sizes they declare before anything is allocated.
- Property-based (hypothesis, derandomised): generated CSV text (blank lines, headers or none, Unicode
  digits, underscores, a BOM, CRLF, quoted numbers, missing tokens, ragged rows) is accepted with one row
  per data line and the values the text spells, or refused with one TableError line, by every reader.
"""

import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rda_cli import csvread, tabular
from rda_cli.tabular import TableError, iter_table, read_table

from synthetic import SETTINGS, TINY, csv_texts, run_and_check


def outcome(fn):
    try:
        t = fn()
    except TableError as exc:
        return ("error", str(exc))
    return ("table", t.X.tobytes(), t.X.shape, t.feature_names, t.ids, t.has_header)


def compare_readers(text, id_col, missing, monkeypatch):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "t.csv"
        path.write_bytes(text.encode("utf-8", "surrogatepass"))
        exact = outcome(lambda: tabular._read_csv_exact(path, id_col, missing))
        fast = outcome(lambda: tabular._read_csv(path, id_col, missing))
        assert fast == exact, text
        with monkeypatch.context() as m:  # without pyarrow: NumPy's loadtxt
            m.setattr(tabular, "_have_arrow", lambda: False)
            assert outcome(lambda: tabular._read_csv(path, id_col, missing)) == exact, text


@settings(max_examples=150, **SETTINGS)
@given(text=csv_texts(), id_col=st.sampled_from([None, "id", "a"]), missing=st.sampled_from(["allow", "refuse"]))
def test_fast_csv_readers_equal_the_exact_one(text, id_col, missing):
    with pytest.MonkeyPatch.context() as mp:
        compare_readers(text, id_col, missing, mp)


@pytest.mark.parametrize("text", [
    "a,b\n1,2\n,\n3,4\n",  # a row of empty cells is skipped
    "a,b\n1,\n3,4\n",  # an empty cell
    "a,b\n1,nan\n3,4\n",
    "a,b\n1, 2\n3,4\n",  # spaces around a number
    "\ufeffa,b\n1,2\n3,4\n",  # a byte-order mark
    "\n\na,b\n1,2\n\n3,4\n",  # blank lines
    "1,2\n3,4\n",  # no header
    "id,a\n x ,1\ny,2\n",
    "a,b\n1,2,3\n",
    "a,b\n1,2\n3\n",
    "a,b\n1,1_000\n2,3\n",
    "a,b\n1,inf\n2,3\n",
])
@pytest.mark.parametrize("missing", ["allow", "refuse"])
def test_fast_csv_readers_on_edge_cases(text, missing, monkeypatch):
    compare_readers(text, "id" if text.startswith("id") else None, missing, monkeypatch)


def test_missing_cells(tmp_path):
    (tmp_path / "m.csv").write_text("a,b,c\n1,,3\n4,5,nan\n7,8,9\n")
    t = read_table(tmp_path / "m.csv", missing="allow")
    np.testing.assert_array_equal(np.isnan(t.X), [[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    with pytest.raises(TableError, match="line 2, column 'b' holds an empty cell"):
        read_table(tmp_path / "m.csv")
    (tmp_path / "r.csv").write_text("a,b\n1,2\nnan,nan\n3,4\n")
    with pytest.raises(TableError, match="data row 2 has no value"):
        read_table(tmp_path / "r.csv", missing="allow")
    (tmp_path / "c.csv").write_text("a,b\n1,\n3,\n")
    with pytest.raises(TableError, match="column 'b' has no value in any row"):
        read_table(tmp_path / "c.csv", missing="allow")


def test_parquet(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["r1", "r2", "r3"], "a": [1.0, None, 3.0], "b": [1, 2, 3]}), tmp_path / "t.parquet")
    t = read_table(tmp_path / "t.parquet", id_column="id", missing="allow")
    assert t.feature_names == ["a", "b"] and t.ids == ["r1", "r2", "r3"] and np.isnan(t.X[1, 0])
    with pytest.raises(TableError, match="finite number"):
        read_table(tmp_path / "t.parquet", id_column="id")
    with pytest.raises(TableError, match="column 'id' has type string"):
        read_table(tmp_path / "t.parquet")


@pytest.mark.parametrize("arrow", [True, False])
def test_clean_files_do_not_need_the_exact_reader(tmp_path, monkeypatch, arrow):
    (tmp_path / "t.csv").write_text("id,a,b\nr1,1.5,2\nr2,,3e2\n" if arrow else "a,b\n1.5,2\n-1,3e2\n")

    def refuse(*args):
        raise AssertionError("the exact reader was used")

    monkeypatch.setattr(tabular, "_read_csv_exact", refuse)
    monkeypatch.setattr(tabular, "_have_arrow", lambda: arrow)
    t = read_table(tmp_path / "t.csv", id_column="id" if arrow else None, missing="allow")
    assert t.X.shape == (2, 2) and t.X[1, 1] == 300


@pytest.mark.parametrize("text", [
    "id,a,b\nr1,1,2\nr2,3,4\nr3,5,6\nr4,7,8\n",
    "id,a,b\nr1,1,2\nr2,3,4\nr3,1_000,6\nr4,7,8\n",  # the fast reader stops at 1_000; the exact one reads it
    "id,a,b\nr1,1,2\nr2,3,4\nr3,x,6\nr4,7,8\n",
    "id,a,b\nr1,1,2\n\nr2,,4\nr3,5,\nr4,inf,8\n",
])
@pytest.mark.parametrize("missing", ["allow", "refuse"])
def test_streamed_chunks_equal_the_whole_table(tmp_path, text, missing):
    from rda_cli.tabular import iter_table

    path = tmp_path / "t.csv"
    path.write_text(text)
    whole = outcome(lambda: tabular._read_checked(path, "id", 1, None, missing, columns=False))
    try:
        chunks = list(iter_table(path, "id", missing, block_bytes=12))  # a few rows per chunk
    except TableError as exc:
        assert whole == ("error", str(exc))
        return
    assert len(chunks) > 1 or whole[2][0] <= 1
    X = np.vstack([c.X for c in chunks])
    ids = sum((c.ids for c in chunks), [])
    assert ("table", X.tobytes(), X.shape, chunks[0].feature_names, ids, True) == whole


@settings(max_examples=20, **SETTINGS)
@given(width=st.integers(2, 40_000), dup=st.data())
def test_a_wide_header_is_checked_in_linear_time(width, dup):
    """A repeated column name is named at any width (the check is a set, not a quadratic scan)."""
    from rda_cli import csvread

    names = [f"c{j}" for j in range(width)]
    i = dup.draw(st.integers(0, width - 1))
    j = dup.draw(st.integers(0, width - 1).filter(lambda k: k != i))
    assert csvread._layout("t.csv", names, None).names == names
    names[j] = names[i]
    with pytest.raises(TableError, match=f"names column '{names[i]}' more than once"):
        csvread._layout("t.csv", names, None)


@pytest.mark.parametrize("arrow", [True, False])
def test_wide_tables_are_read_and_bounded(tmp_path, monkeypatch, arrow):
    """Wider than ARROW_MAX_COLUMNS: NumPy's reader (same table); wider than MAX_COLUMNS: refused, one line."""
    from rda_cli import csvread

    monkeypatch.setattr(tabular, "_have_arrow", lambda: arrow)
    width = tabular.ARROW_MAX_COLUMNS + 5
    X = np.arange(3 * width, dtype=float).reshape(3, width)
    path = tmp_path / "w.csv"
    rows = "\n".join(",".join(map(str, r)) for r in X)
    path.write_text(",".join(f"c{j}" for j in range(width)) + "\n" + rows + "\n")
    np.testing.assert_array_equal(read_table(path).X, X)
    chunks = list(tabular.iter_table(path))
    np.testing.assert_array_equal(np.vstack([c.X for c in chunks]), X)
    monkeypatch.setattr(csvread, "MAX_COLUMNS", width - 1)
    with pytest.raises(TableError, match=f"line 1 has {width:,} columns, more than the {width - 1:,} rda reads"):
        read_table(path)


def test_an_unknown_id_column_names_few_columns(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text(",".join(f"column_{j}" for j in range(10_000)) + "\n" + ",".join(["1"] * 10_000) + "\n")
    with pytest.raises(TableError) as err:
        read_table(path, id_column="nope")
    assert len(str(err.value)) < 300 and "(9,990 more)" in str(err.value)


def test_small_arrow_blocks_equal_one_block(tmp_path, monkeypatch):
    """pyarrow parses blocks of ARROW_BLOCK_BYTES in parallel; a longer line (or header) is read with
    the piece as one block: the same table."""
    from rda_cli import csvread

    path = tmp_path / "t.csv"
    X = np.random.default_rng(0).normal(size=(200, 30))
    rows = "\n".join(",".join(repr(float(v)) for v in r) for r in X)
    path.write_text(",".join(f"column{j}" for j in range(30)) + "\n" + rows)
    monkeypatch.setattr(csvread, "ARROW_BLOCK_BYTES", 64)
    lay = csvread._csv_layout(path, None)
    np.testing.assert_array_equal(csvread._read_csv_arrow(path, lay, "refuse")[0], X)


def test_parquet_metadata_is_checked_before_reading(tmp_path, monkeypatch):
    """Rows x columns from the metadata against the memory cap, before any data page is read; Parquet
    files are streamed in batches (rda score)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    from rda_cli import arrayfile

    n = 200_000
    pq.write_table(pa.table({"a": np.zeros(n), "b": np.ones(n)}), tmp_path / "z.parquet", compression="zstd")
    monkeypatch.setattr(arrayfile, "memory_cap", lambda: n * 16 - 1)
    with pytest.raises(TableError, match=f"declares {n:,} rows x 2 columns .3.2 MB as float64., more than rda reads"):
        read_table(tmp_path / "z.parquet")
    monkeypatch.setattr(arrayfile, "memory_cap", lambda: n * 16)
    t = read_table(tmp_path / "z.parquet")
    assert t.X.shape == (n, 2) and t.X[:, 1].all() and not t.X[:, 0].any()
    chunks = list(tabular.iter_table(tmp_path / "z.parquet"))
    assert len(chunks) == -(-n // tabular.PARQUET_BATCH_ROWS)
    np.testing.assert_array_equal(np.vstack([c.X for c in chunks]), t.X)


@pytest.fixture(params=["arrow", "numpy", "exact"])
def reader(request, monkeypatch):
    """read_table through each reader: pyarrow's, NumPy's (no pyarrow) and the exact one alone."""
    if request.param == "numpy":
        monkeypatch.setattr(tabular, "_have_arrow", lambda: False)
    elif request.param == "exact":
        monkeypatch.setattr(tabular, "_csv_layout", lambda *a: None)
    return request.param


def write(tmp_path, text, name="t.csv"):
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


# ------------------------------------------------------------------ blank rows, header decision
@pytest.mark.parametrize("blank", ["", ",", " "])
def test_a_blank_row_is_refused_with_its_line(tmp_path, reader, blank):
    path = write(tmp_path, f"a,b\n1,2\n{blank}\n3,4\n5,6\n")
    with pytest.raises(TableError, match=r"line 3 is blank"):
        read_table(path, missing="refuse")
    with pytest.raises(TableError, match=r"data row 2 has no value in any feature column \(line 3\)"):
        read_table(path, missing="allow")


def test_a_blank_row_is_refused_when_streamed(tmp_path):
    pytest.importorskip("pyarrow")
    rows = "".join(f"{i},{i}\n" for i in range(50))
    path = write(tmp_path, f"a,b\n{rows},\n{rows}")
    for missing, message in [("refuse", "line 52 is blank"), ("allow", r"data row 51 has no value .*\(line 52\)")]:
        with pytest.raises(TableError, match=message):
            list(iter_table(path, missing=missing, block_bytes=64))


def test_row_r_is_line_first_line_plus_r(tmp_path, reader):
    t = read_table(write(tmp_path, "\n\na,b\r\n1,2\r\n3,4\r\n5,6\r\n\r\n\r\n"))  # blank lines before the header
    assert t.X.tolist() == [[1, 2], [3, 4], [5, 6]] and t.header == ["a", "b"] and t.first_line == 4
    t = read_table(write(tmp_path, "1,2\n3,4\n\n"))  # empty lines at the end are not rows
    assert t.n_rows == 2 and t.header is None and t.first_line == 1 and not t.has_header
    with pytest.raises(TableError, match="line 1 is blank"):  # without a header, line 1 is row 0
        read_table(write(tmp_path, "\n1,2\n3,4\n"))
    with pytest.raises(TableError, match=r"line 4 \(data row 2\), column 'b' is inf"):
        read_table(write(tmp_path, "\na,b\n1,2\n3,inf\n"))


def test_a_first_row_with_a_missing_token_is_data(tmp_path, reader):
    path = write(tmp_path, "1,NA,3\n4,5,6\n7,8,9\n")
    t = read_table(path, missing="allow")
    assert t.n_rows == 3 and t.header is None and np.isnan(t.X[0, 1]) and t.X[2].tolist() == [7, 8, 9]
    with pytest.raises(TableError, match="line 1, column 'x2' holds 'NA', a missing value"):
        read_table(path)
    t = read_table(write(tmp_path, "id,400,450\nr1,1,2\nr2,3,4\n"), id_column="id")  # numeric column names
    assert t.header == ["id", "400", "450"] and t.feature_names == ["400", "450"] and t.ids == ["r1", "r2"]
    with pytest.raises(TableError, match=r"no header row \(line 1 holds only numbers and missing values\)"):
        read_table(write(tmp_path, "1,,3\n4,5,6\n"), id_column="id", missing="allow")


@pytest.mark.parametrize("token", ["NA", "n/a", "null", "NaN", "-nan", ""])
def test_missing_tokens(tmp_path, reader, token):
    t = read_table(write(tmp_path, f"a,b\n1,{token}\n3,4\n"), missing="allow")
    assert np.isnan(t.X[0, 1]) and t.X[1].tolist() == [3, 4]


# ------------------------------------------------------------------ plain ASCII decimal notation only
@pytest.mark.parametrize("cell", ["1_000", "\u0661\u0662\u0663", "\uff11\uff12", "\u0661", "nan(1)", "0x10", "1e5.0"])
@pytest.mark.parametrize("missing", ["allow", "refuse"])
def test_only_plain_decimal_numbers(tmp_path, reader, cell, missing):
    first = [(f"5,{cell}\n1,2\n", 1)] if csvread._float_would_take(cell) else []  # else a name: a header
    for text, line in [(f"a,b\n1,2\n3,{cell}\n", 3)] + first:
        with pytest.raises(TableError, match=f"line {line}, column '(b|x2)' holds"):
            read_table(write(tmp_path, text), missing=missing)


@pytest.mark.parametrize("cell, value", [("+1", 1), ("-.5", -0.5), ("5.", 5), ("1E+3", 1000), (" 2 ", 2), ('"7"', 7)])
def test_plain_decimal_numbers_are_read(tmp_path, reader, cell, value):
    assert read_table(write(tmp_path, f"a,b\n1,2\n3,{cell}\n")).X[1, 1] == value


# ------------------------------------------------------------------ non-regular files, bounded reads
def test_non_regular_files_are_refused_at_once(tmp_path):
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    (tmp_path / "zero.csv").symlink_to("/dev/zero")
    (tmp_path / "dir.csv").mkdir()
    t0 = time.monotonic()
    for path, what in [(fifo, "a FIFO"), (tmp_path / "zero.csv", "a character device"),
                       ("/dev/zero", "a character device")]:
        for fn in (lambda p: read_table(p), lambda p: list(iter_table(p))):
            with pytest.raises(TableError, match=f"not a regular file \\({what}"):
                fn(path)
    with pytest.raises(TableError, match="is a folder"):
        read_table(tmp_path / "dir.csv")
    assert time.monotonic() - t0 < 1


def test_an_overlong_line_is_refused(tmp_path, monkeypatch, reader):
    monkeypatch.setattr(csvread, "MAX_LINE", 1000)
    monkeypatch.setattr(csvread, "BLOCK_BYTES", 1000)
    with pytest.raises(TableError, match="line 3 is longer than 1000 characters"):
        read_table(write(tmp_path, "a,b\n1,2\n3," + "4" * 2000 + "\n"))


def test_cli_refuses_a_fifo_in_one_line(tmp_path):
    from click.testing import CliRunner

    from rda_cli.cli import main

    os.mkfifo(tmp_path / "d.csv")
    res = CliRunner().invoke(main, ["detect", "--data", str(tmp_path / "d.csv"), "--out", str(tmp_path / "run"),
                                    "--quiet"])
    assert res.exit_code == 2 and res.output.strip().splitlines() == [
        f"rda: error: {tmp_path / 'd.csv'} is not a regular file (a FIFO (named pipe)); give a .csv, .parquet, .npy "
        "or .npz file"]


# ------------------------------------------------------------------ .npy / .npz: declared sizes checked first
HUGE = {"descr": "<f8", "fortran_order": False, "shape": (1_000_000, 1_000_000)}  # 8 TB declared


def _npy_bytes(header=HUGE, tail=b"\0" * 64):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    buf.write(tail)
    return buf.getvalue()


def _bombs(tmp_path):
    (tmp_path / "big.npy").write_bytes(_npy_bytes())
    with zipfile.ZipFile(tmp_path / "header.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("X.npy", _npy_bytes())
    # a consistent member (the header's 8 TB are declared in the zip directory too) compressed from 1 KB
    with zipfile.ZipFile(tmp_path / "directory.npz", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("X.npy", _npy_bytes())
    raw = bytearray((tmp_path / "directory.npz").read_bytes())
    real = len(_npy_bytes()).to_bytes(4, "little")
    raw = raw.replace(real, (0xFFFFFFF0).to_bytes(4, "little"))  # local and central "uncompressed size"
    (tmp_path / "directory.npz").write_bytes(bytes(raw))
    return {"big.npy": "declares shape", "header.npz": "declares shape", "directory.npz": "uncompressed from"}


def test_declared_size_bombs_are_refused_fast_and_small(tmp_path):
    """Run in a fresh process, its peak memory read from VmHWM (``ru_maxrss`` is inherited from a large
    parent across exec); CPU time, as the host is shared."""
    bombs = _bombs(tmp_path)
    code = ("import sys, time; from rda_cli.tabular import read_table, TableError\n"
            "t = time.process_time()\n"
            "for name in sys.argv[1:]:\n"
            "    try: read_table(name)\n"
            "    except TableError as exc: print(exc)\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]\n"
            "print(time.process_time() - t, hwm)\n")
    out = subprocess.run([sys.executable, "-c", code, *[str(tmp_path / n) for n in bombs]], capture_output=True,
                         text=True, timeout=60, env=dict(os.environ, PYTHONPATH=os.getcwd())).stdout.splitlines()
    for line, (name, message) in zip(out, bombs.items()):
        assert name in line and message in line, out
    seconds, peak_kb = out[-1].split()
    assert float(seconds) < 1 and int(peak_kb) < 200 * 1024, out


def test_npz_arrays_are_chosen_by_header_and_read(tmp_path, monkeypatch):
    np.savez(tmp_path / "a.npz", meta=np.arange(3), data=np.ones((4, 5)))
    loaded = []
    real = np.lib.format.read_array
    monkeypatch.setattr(np.lib.format, "read_array", lambda *a, **k: loaded.append(1) or real(*a, **k))
    t = read_table(tmp_path / "a.npz")
    assert t.X.shape == (4, 5) and t.array_name == "data" and len(loaded) == 1  # 'meta' never loaded
    np.savez(tmp_path / "two.npz", a=np.ones((3, 2)), b=np.ones((4, 2)))
    with pytest.raises(TableError, match=r"several 2-D arrays \(a, b\)"):
        read_table(tmp_path / "two.npz")
    np.savez_compressed(tmp_path / "z.npz", X=np.zeros((2000, 50)))  # highly compressible, still within deflate's bound
    assert read_table(tmp_path / "z.npz").X.shape == (2000, 50)
    with zipfile.ZipFile(tmp_path / "bz.npz", "w", zipfile.ZIP_BZIP2) as z:
        z.writestr("X.npy", _npy_bytes({"descr": "<f8", "fortran_order": False, "shape": (2, 2)}, b"\0" * 32))
    with pytest.raises(TableError, match="zip method 12"):
        read_table(tmp_path / "bz.npz")


def test_npy_object_arrays_are_refused_without_unpickling(tmp_path):
    np.save(tmp_path / "o.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(TableError, match="dtype object"):
        read_table(tmp_path / "o.npy")
    (tmp_path / "junk.npz").write_bytes(b"PK not a zip")
    with pytest.raises(TableError, match=r"not an \.npz \(zip\) file"):
        read_table(tmp_path / "junk.npz")

PLAIN = re.compile(r"[+-]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)", re.IGNORECASE)
MISSING = {"", "na", "n/a", "nan", "+nan", "-nan", "null"}

plain = st.one_of(st.integers(-999, 999).map(str), st.floats(-1e3, 1e3, allow_nan=False).map(repr),
                  st.sampled_from(["+1", "-.5", "5.", "1E+3", "2e-2", " 4 ", '"3"', '" 6"']))
odd = st.sampled_from(["", "NA", "n/a", "null", "NaN", "-nan", "inf", "1e400", "1_000", "\u0661\u0662", "\uff11",
                       "\u00b2", "abc", "0x10", "1,5", '"1,5"', "nan(1)", "\u00a01", "1\u2003", "\t2"])
blank_lines = st.sampled_from(["", " ", ",", ",,", "\t"])


@st.composite
def tables(draw, odd_rate=4, min_rows=0):
    """CSV text: mostly rows of plain numbers; of every 35 + ``odd_rate`` rows about one blank, two
    ragged and ``odd_rate`` with an odd cell (none of these when ``odd_rate`` is 0); an optional header,
    a leading blank line, a BOM, LF or CRLF, empty lines at the end."""
    n_cols = draw(st.integers(1, 3))
    lines = []
    if draw(st.booleans()):
        lines.append(",".join(draw(st.permutations(["a", "b", "c", "id", "400", "NA", "x y"]))[:n_cols]))
    kinds = ["row"] * 32 + (["blank", "wide", "narrow"] + ["odd"] * odd_rate if odd_rate else [])
    for _ in range(draw(st.integers(min_rows, 8))):
        kind = draw(st.sampled_from(kinds))
        if kind == "blank":
            lines.append(draw(blank_lines))
            continue
        width = n_cols + {"wide": 1, "narrow": -1}.get(kind, 0)
        cells = draw(st.lists(plain, min_size=width, max_size=width))
        if cells and kind == "odd":
            cells[draw(st.integers(0, len(cells) - 1))] = draw(odd)
        lines.append(",".join(cells))
    if odd_rate and draw(st.integers(0, 3)) == 0:
        lines = [draw(blank_lines)] + lines
    eol = draw(st.sampled_from(["\n", "\r\n"]))
    text = eol.join(lines) + draw(st.sampled_from(["", eol, eol + eol, eol + " " + eol]))
    return ("\ufeff" if draw(st.integers(0, 5)) == 0 else "") + text


def expected_rows(text, has_header):
    """What the file's data lines spell, by a separate reading: every line after the header (or from
    line 1), except empty lines at the end; None where a line is not a row of numbers/missing values."""
    lines = text.lstrip("\ufeff").replace("\r\n", "\n").split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    if has_header:
        lines = lines[next(i for i, ln in enumerate(lines) if ln.strip()) + 1:]
    rows = []
    for ln in lines:
        cells = [c.strip().strip('"').strip() for c in ln.split(",")]
        rows.append([float(c) if PLAIN.fullmatch(c) else np.nan if c.lower() in MISSING else None for c in cells])
    return rows


def read_outcome(fn):
    try:
        t = fn()
    except TableError as exc:
        assert "\n" not in str(exc)
        return ("error", str(exc))
    return ("table", t.X.tobytes(), t.X.shape, t.feature_names, t.header, t.first_line)


@settings(max_examples=300, **SETTINGS)
@given(text=tables(), missing=st.sampled_from(["allow", "refuse"]))
def test_generated_csv_text(text, missing):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        path = Path(tmp) / "t.csv"
        path.write_bytes(text.encode())
        got = read_outcome(lambda: read_table(path, missing=missing, min_rows=1))
        mp.setattr(tabular, "_have_arrow", lambda: False)
        assert read_outcome(lambda: read_table(path, missing=missing, min_rows=1)) == got, text  # NumPy's reader
        mp.setattr(tabular, "_csv_layout", lambda *a: None)
        assert read_outcome(lambda: read_table(path, missing=missing, min_rows=1)) == got, text  # the exact reader
        if got[0] == "table":
            t = read_table(path, missing=missing, min_rows=1)
            rows = expected_rows(text, t.has_header)
            assert t.n_rows == len(rows), text
            np.testing.assert_array_equal(t.X, np.array(rows, dtype=float), err_msg=text)


@settings(max_examples=6, **SETTINGS)
@given(text=tables(odd_rate=0, min_rows=3))
def test_generated_csv_text_through_the_cli(text):
    tmp = Path(tempfile.mkdtemp())
    try:
        (tmp / "d.csv").write_bytes(text.encode())
        res = run_and_check(["detect", "--data", tmp / "d.csv", "--out", tmp / "run", *TINY], tmp / "run")
        if res.exit_code == 0:
            t = read_table(tmp / "d.csv", missing="allow")
            lines = (tmp / "run" / "scores.csv").read_text().splitlines()
            assert len(lines) - 1 == t.n_rows == len(expected_rows(text, t.has_header))
    finally:
        shutil.rmtree(tmp)
