"""Property-based, generated CSV text (blank lines, headers or none, Unicode digits, underscores, a BOM,
CRLF, quoted numbers, missing tokens, ragged rows): every reader either accepts the file with one row
per data line and the values the text spells, or refuses it with one TableError line -- the same
outcome from pyarrow's reader, NumPy's and the exact one."""

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rda_cli import tabular
from rda_cli.tabular import TableError, read_table
from test_fuzz_inputs import SETTINGS, TINY, run_and_check

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


def outcome(fn):
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
        got = outcome(lambda: read_table(path, missing=missing, min_rows=1))
        mp.setattr(tabular, "_have_arrow", lambda: False)
        assert outcome(lambda: read_table(path, missing=missing, min_rows=1)) == got, text  # NumPy's reader
        mp.setattr(tabular, "_csv_layout", lambda *a: None)
        assert outcome(lambda: read_table(path, missing=missing, min_rows=1)) == got, text  # the exact reader
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
