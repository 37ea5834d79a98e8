"""Generated model folders (issue 22): each loads, or is one ModelFileError line, never a traceback.

``hypothesis`` (derandomised) edits a saved model folder: values and types of ``params.json`` and
``scaler.json`` fields, ``arrays.npz`` truncated, replaced by junk, declaring a huge array, or holding
non-finite values. Each example is loaded through the library (model and scaler); a few go through
``rda score`` (exit 0 or 2, one line). Nothing outside the example's folder changes, and a refused
``rda score`` writes nothing.
"""

import io
import json
import math
import shutil
import zipfile

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rda_cli import RobustAutoencoder
from rda_cli.cli import main
from rda_cli.persistence import ModelFileError
from rda_cli.tabular import MinMaxScaler01

from synthetic import with_outlier_rows

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)

values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.sampled_from([0, 1, 5, 1e308, -1.0, 0.5, 1e15, 1e16])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzzmodel")
    X, _ = with_outlier_rows(n=30, d=4, fraction=0.05, seed=0)
    np.savetxt(tmp / "d.csv", X, delimiter=",", header="a,b,c,d", comments="")
    res = CliRunner().invoke(main, ["detect", "--data", str(tmp / "d.csv"), "--out", str(tmp / "r"), "--lam", "0.01",
                                    "--set", "outer_iterations=1", "--set", "inner_epochs=1", "--quiet"])
    assert res.exit_code == 0, res.output
    return tmp


def _fresh(base, name):
    folder = base / "work" / name
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(base / "r" / "model", folder)
    return folder


def _load(folder):
    """'ok' or the one ModelFileError line; anything else fails the test."""
    try:
        MinMaxScaler01.load(folder / "scaler.json")
        model = RobustAutoencoder.load(folder)
    except ModelFileError as exc:
        line = str(exc)
        assert "\n" not in line and len(line) < 1000, line
        return line
    scores = model.decision_function(np.full((2, 4), 0.5, np.float32))
    assert np.isfinite(scores).all()  # a model that loads gives finite scores
    return "ok"


def _edit(path, key, value):
    d = json.loads(path.read_text())
    if value is _DELETE:
        d.pop(key, None)
    else:
        d[key] = value
    text = json.dumps(d, allow_nan=True)
    path.write_text(text)


_DELETE = object()
PARAM_KEYS = ["params", "prox_threshold_", "lam_", "layers_", "n_iter_", "n_features_in_", "history_",
              "train_fingerprint", "reinitialize_"]
SCALER_KEYS = ["kind", "version", "min", "max", "feature_names", "id_column"]


@settings(max_examples=120, **SETTINGS)
@given(key=st.sampled_from(PARAM_KEYS), value=values | st.just(_DELETE))
def test_edited_params_json(base, key, value):
    folder = _fresh(base, "p")
    _edit(folder / "params.json", key, value)
    _load(folder)


@settings(max_examples=70, **SETTINGS)
@given(key=st.sampled_from(SCALER_KEYS), value=values | st.just(_DELETE) | st.lists(
    st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=5))
def test_edited_scaler_json(base, key, value):
    folder = _fresh(base, "s")
    _edit(folder / "scaler.json", key, value)
    _load(folder)


def _npy(header, body=b""):
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    return buf.getvalue() + body


@settings(max_examples=80, **SETTINGS)
@given(how=st.sampled_from(["truncate", "junk", "huge", "nonfinite", "dtype", "extra"]), cut=st.integers(0, 4000),
       junk=st.binary(max_size=200), which=st.sampled_from(["L_", "S_", "residual_scores_"]),
       bad=st.sampled_from([math.nan, math.inf, -math.inf]))
def test_damaged_arrays(base, how, cut, junk, which, bad):
    folder = _fresh(base, "a")
    path = folder / "arrays.npz"
    with np.load(path) as a:
        arrays = {k: a[k] for k in a.files}
    if how == "truncate":
        path.write_bytes(path.read_bytes()[:cut])
    elif how == "junk":
        path.write_bytes(junk)
    elif how == "huge":
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
            for k, v in arrays.items():
                z.writestr(f"{k}.npy", _npy({"descr": "<f8", "fortran_order": False, "shape": (10 ** 6, 10 ** 4)},
                                            b"\0" * 128) if k == which else _npy_array(v))
    elif how == "nonfinite":
        arrays[which] = arrays[which].copy()
        arrays[which].flat[cut % arrays[which].size] = bad
        np.savez(path, **arrays)
    elif how == "dtype":
        arrays[which] = arrays[which].astype(np.int64)
        np.savez(path, **arrays)
    else:
        arrays["evil"] = np.array(["x"], dtype=object)
        np.savez(path, **arrays)
    assert _load(folder) != "ok" or how == "truncate" and cut >= len((base / "r" / "model" / "arrays.npz").read_bytes())


def _npy_array(v):
    buf = io.BytesIO()
    np.save(buf, v)
    return buf.getvalue()


@settings(max_examples=8, **SETTINGS)
@given(target=st.sampled_from(["params.json", "scaler.json"]), key=st.sampled_from(["min", "layers_", "history_",
                                                                                      "feature_names", "n_iter_"]),
       value=values)
def test_edited_folders_through_rda_score(base, target, key, value):
    folder = _fresh(base, "c")
    _edit(folder / target, key, value)
    before = (base / "d.csv").read_bytes()
    out = base / "work" / "s.csv"
    out.unlink(missing_ok=True)
    res = CliRunner().invoke(main, ["score", "--model", str(folder), "--data", str(base / "d.csv"), "--out", str(out)])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code in (0, 2) and len(lines) == 1 and "Traceback" not in res.output, res.output
    assert (res.exit_code == 0) == out.exists()
    assert (base / "d.csv").read_bytes() == before
