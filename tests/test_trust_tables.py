"""Issue 22, tables: blank rows are never dropped (row numbers stay the user's lines), the header decision
is explicit, only plain ASCII decimal cells are numbers, non-regular files are refused before opening,
and .npy / .npz files are checked against the sizes they declare before anything is allocated."""

import io
import os
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from rda_cli import csvread, tabular
from rda_cli.tabular import TableError, iter_table, read_table


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


# ------------------------------------------------------------------ 9: blank rows, header decision
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


# ------------------------------------------------------------------ 10: plain ASCII decimal notation only
@pytest.mark.parametrize("cell", ["1_000", "\u0661\u0662\u0663", "\uff11\uff12", "\u0661", "nan(1)", "0x10", "1e5.0"])
@pytest.mark.parametrize("missing", ["allow", "refuse"])
def test_only_plain_decimal_numbers(tmp_path, reader, cell, missing):
    first = [(f"5,{cell}\n1,2\n", 1)] if tabular._float_would_take(cell) else []  # else a name: a header
    for text, line in [(f"a,b\n1,2\n3,{cell}\n", 3)] + first:
        with pytest.raises(TableError, match=f"line {line}, column '(b|x2)' holds"):
            read_table(write(tmp_path, text), missing=missing)


@pytest.mark.parametrize("cell, value", [("+1", 1), ("-.5", -0.5), ("5.", 5), ("1E+3", 1000), (" 2 ", 2), ('"7"', 7)])
def test_plain_decimal_numbers_are_read(tmp_path, reader, cell, value):
    assert read_table(write(tmp_path, f"a,b\n1,2\n3,{cell}\n")).X[1, 1] == value


# ------------------------------------------------------------------ 20: non-regular files, bounded reads
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
