"""Property-based: whatever table, config or ``--set`` value a user gives, ``rda`` ends with status 0
or 2, never a traceback, and leaves nothing in ``--out`` after refusing."""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rda_cli.cli import main

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
TINY = ["--set", "outer_iterations=1", "--set", "inner_epochs=1", "--lam", "0.05", "--quiet"]

numbers = st.one_of(st.floats(-1e6, 1e6).map(repr), st.integers(-10**6, 10**6).map(str))
odd_cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64).map(repr),
    st.sampled_from(["", " ", "nan", "inf", "-inf", "abc", "1e400", "1e300", "1,5", '"3"', "0x10", "1_000", "\u00e9",
                     "\x00"]),
)


@st.composite
def row_cells(draw, n_cols):
    """Mostly well-formed rows of numbers, sometimes a row of the wrong length or with an odd cell."""
    width = draw(st.sampled_from([n_cols] * 6 + [max(0, n_cols - 1), n_cols + 1]))
    row = draw(st.lists(numbers, min_size=width, max_size=width))
    if row and draw(st.integers(0, 9)) == 0:
        row[draw(st.integers(0, len(row) - 1))] = draw(odd_cells)
    return row


@st.composite
def csv_texts(draw):
    n_cols = draw(st.integers(1, 3))
    header = draw(st.one_of(st.none(), st.lists(st.sampled_from(["a", "b", "c", "a", "", "id", "1"]),
                                                min_size=n_cols, max_size=n_cols)))
    rows = draw(st.lists(row_cells(n_cols), min_size=0, max_size=8))
    lines = ([",".join(header)] if header is not None else []) + [",".join(r) for r in rows]
    return "\n".join(lines) + draw(st.sampled_from(["", "\n", "\r\n"]))


def run_and_check(args, out):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code in (0, 2), (args, res.exit_code, res.output, res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, res.exception)
    assert "Traceback" not in res.output
    if res.exit_code == 2:
        lines = [ln for ln in res.output.splitlines() if ln.startswith("rda: error:")]
        assert len(lines) == 1 or "Usage:" in res.output, res.output
        assert not Path(out).exists() or not any(Path(out).iterdir()), (args, res.output)
    return res


@settings(max_examples=100, **SETTINGS)
@given(text=csv_texts(), id_col=st.sampled_from([None, "id", "a", "zz"]))
def test_detect_on_generated_csv(text, id_col):
    tmp = Path(tempfile.mkdtemp())
    try:
        data = tmp / "t.csv"
        data.write_bytes(text.encode("utf-8", "surrogatepass"))
        args = ["detect", "--data", data, "--out", tmp / "out", *TINY]
        if id_col:
            args += ["--id-column", id_col]
        run_and_check(args, tmp / "out")
        assert data.read_bytes() == text.encode("utf-8", "surrogatepass")  # the input is never touched
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


arrays = st.one_of(
    st.integers(0, 3).flatmap(lambda nd: st.lists(st.integers(0, 4), min_size=nd, max_size=nd)).flatmap(
        lambda shape: st.sampled_from(["f8", "f4", "i4", "u1", "b1", "U3"]).map(
            lambda dt: np.ones(shape, dtype=dt) if dt != "U3" else np.full(shape, "x", dtype=dt))),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=2, max_size=12).map(
        lambda v: np.array(v[: len(v) // 2 * 2]).reshape(-1, 2)),
)


@settings(max_examples=60, **SETTINGS)
@given(a=arrays, kind=st.sampled_from(["npy", "npz", "npz2"]))
def test_detect_on_generated_arrays(a, kind):
    tmp = Path(tempfile.mkdtemp())
    try:
        data = tmp / f"t.{kind[:3]}"
        if kind == "npy":
            np.save(data, a)
        elif kind == "npz":
            np.savez(data, X=a)
        else:
            np.savez(data, first=a, second=a)
        run_and_check(["detect", "--data", data, "--out", tmp / "out", *TINY], tmp / "out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


values = st.one_of(st.none(), st.booleans(), st.integers(-5, 40), st.floats(allow_nan=True, allow_infinity=True),
                   st.text(max_size=6), st.lists(st.integers(-2, 900), max_size=3), st.just({"a": 1}))
set_keys = st.sampled_from(["outer_iterations", "inner_epochs", "batch_size", "learning_rate", "tol", "tied",
                            "reinitialize", "random_state", "lambda_scaling", "verbose", "warm_start", "penalty",
                            "lam", "nonsense", ""])


@settings(max_examples=80, **SETTINGS)
@given(key=set_keys, value=values)
def test_detect_set_values(key, value):
    tmp = Path(tempfile.mkdtemp())
    try:
        X = np.random.default_rng(0).random((12, 2))
        np.save(tmp / "t.npy", X)
        text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
        args = ["detect", "--data", tmp / "t.npy", "--out", tmp / "out", *TINY, "--set", f"{key}={text}",
                "--set", "batch_size=4"] if key != "batch_size" else \
            ["detect", "--data", tmp / "t.npy", "--out", tmp / "out", *TINY, "--set", f"{key}={text}"]
        run_and_check(args, tmp / "out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


config_keys = st.sampled_from([
    "run_name", "seed", "seeds", "data.path", "data.n_source", "data.n_outliers", "data.nominal", "model.layers",
    "model.lam", "model.lambdas", "model.outer_iterations", "model.inner_epochs", "model.batch_size",
    "model.learning_rate", "model.tied", "iforest.n_estimators", "iforest.fraction_min", "tiles", "nonsense.key",
    "model",
])


@settings(max_examples=30, **SETTINGS)
@given(key=config_keys, value=values, as_file=st.booleans())
def test_outliers_configs(mnist_dir, key, value, as_file):
    tmp = Path(tempfile.mkdtemp())
    try:
        base = {
            "run_name": "fuzz",
            "data": {"path": str(mnist_dir), "n_source": 400, "n_outliers": 4},
            "model": {"layers": [784, 8, 4], "lam": 0.001, "outer_iterations": 1, "inner_epochs": 1,
                      "batch_size": 64},
            "iforest": {"n_estimators": 5},
            "tiles": 0,
        }
        override = f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
        if as_file:  # the same change written into the YAML file instead of --set
            node = base
            *parents, leaf = key.split(".")
            for p in parents:
                node = node.setdefault(p, {}) if isinstance(node.get(p, {}), dict) else node
            node[leaf] = value
            extra = []
        else:
            extra = ["--set", override]
        cfg = tmp / "c.yaml"
        cfg.write_text(yaml.safe_dump(base))
        run_and_check(["outliers", "--config", cfg, "--out", tmp / "out", "--quiet", *extra], tmp / "out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
