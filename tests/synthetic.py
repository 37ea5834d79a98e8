"""Synthetic inputs shared by the tests, and the helpers that run ``rda`` on them.

Data with known ground truth (a low-dimensional manifold with outlier rows or flipped entries), a small
CSV table, a tiny ``features`` config, generated CSV text (hypothesis), and the checks every bad input
must pass: exit 2 (or 1 for a write fault) with exactly one ``rda: error:`` line and no traceback."""

import errno
import os
from pathlib import Path

import numpy as np
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck
from hypothesis import strategies as st

from rda_cli.cli import main


def manifold(n=1000, d=50, seed=0, sample_seed=None, latent=2):
    """A ``latent``-dimensional latent mapped non-linearly to ``d`` features in (0, 1).

    ``seed`` fixes the map (the manifold), ``sample_seed`` the points drawn on it."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(latent, d)) * 3
    B = rng.normal(size=(latent, d))
    z = np.random.default_rng(seed if sample_seed is None else sample_seed).random((n, latent))
    return (1 / (1 + np.exp(-(np.sin(z @ A) + (z**2) @ B)))).astype(np.float32)


def with_outlier_rows(n=1000, d=50, fraction=0.05, seed=0, sample_seed=None, latent=2):
    """The manifold with a ``fraction`` of rows replaced by uniform random vectors."""
    X = manifold(n, d, seed, sample_seed, latent)
    rng = np.random.default_rng((seed if sample_seed is None else sample_seed) + 1)
    out = np.zeros(n, bool)
    out[rng.choice(n, int(round(fraction * n)), replace=False)] = True
    X[out] = rng.random((out.sum(), d))
    return X, out


def with_spikes(n=1000, d=50, fraction=0.03, seed=0):
    """The manifold with a ``fraction`` of entries flipped (> 0.5 -> 0, else -> 1)."""
    X = manifold(n, d, seed)
    rng = np.random.default_rng(seed + 2)
    mask = rng.random(X.shape) < fraction
    X_noisy = X.copy()
    X_noisy[mask] = np.where(X[mask] > 0.5, 0.0, 1.0)
    return X_noisy, mask


def without_timings(obj):
    """A summary or metrics object without its timings (``*seconds*`` keys), to compare runs."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


# ---- rda on the command line
ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), TF_CPP_MIN_LOG_LEVEL="2")


def invoke(*args, **kw):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False, **kw)


def one_error_line(res, code=2):
    """The run failed with ``code`` and said so in exactly one ``rda: error:`` line, no traceback."""
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("rda: error:")]
    assert len(errors) == 1, res.output
    return errors[0]


def table(path, n=60, d=5, seed=0):
    X, _ = with_outlier_rows(n=n, d=d, fraction=0.05, seed=seed)
    np.savetxt(path, X, delimiter=",", header=",".join(f"f{j}" for j in range(d)), comments="")
    return path


def snapshot(folder):
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def tiny_features(mnist_dir, **extra):
    cfg = {
        "run_name": "tiny",
        "data": {"path": str(mnist_dir), "n_images": 200},
        "corruption": {"n_pixels": 5, "fraction": 0.5},
        "model": {"layers": [784, 16, 4], "lambdas": [0.01, 0.05, 0.2], "outer_iterations": 2, "inner_epochs": 1,
                  "batch_size": 64},
        "examples": 2,
    }
    cfg.update(extra)
    return cfg


def write_config(tmp_path, cfg, name="c.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return path


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/fake/full/disk")


# ---- generated CSV text and a check on how rda ends (property-based tests)
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
