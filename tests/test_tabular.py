"""The vectorised table readers give what the exact reader gives: the same table, or the same error."""

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rda_cli import tabular
from rda_cli.tabular import TableError, read_table
from test_fuzz_inputs import SETTINGS, csv_texts


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
