"""Model folders written by ``save`` and read by ``load`` / ``rda score``: a damaged, hostile or foreign
folder is refused with one ModelFileError line naming file and field, never a traceback.

- Files that are not regular files (``/dev/zero``, a FIFO, a folder) are refused at once; reads are capped.
- Declared-size bombs (an ``arrays.npz`` member, a ``network.keras`` member) are refused from the zip
  directory, within 1 s and 200 MB (VmHWM of a child process).
- Non-finite arrays, absurd thresholds, inconsistent ``scaler.json`` and broken ``params.json`` fields
  are refused on load; a network file not matching its arrays too.
- ``save`` is atomic; ``rda score`` on huge or non-finite values stays finite or refuses in one line.
- Property-based (hypothesis, derandomised): edited ``params.json`` / ``scaler.json`` values and damaged
  ``arrays.npz`` each load or are one line; a refused ``rda score`` writes nothing.
"""

import io
import json
import math
import os
import shutil
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rda_cli import RobustAutoencoder
from rda_cli.cli import main
from rda_cli.persistence import ModelFileError
from rda_cli.scaling import MinMaxScaler01

from synthetic import enospc, invoke, one_error_line, snapshot, table, with_outlier_rows

FILES = ("params.json", "scaler.json", "network.keras", "arrays.npz")


def detected(tmp, n, d):
    """``rda detect --lam 0.01`` (one short fit) on an ``n`` x ``d`` CSV ``tmp/d.csv``, into ``tmp/r``."""
    X, _ = with_outlier_rows(n=n, d=d, fraction=0.05, seed=0)
    np.savetxt(tmp / "d.csv", X, delimiter=",", header=",".join("abcdefgh"[:d]), comments="")
    res = CliRunner().invoke(main, ["detect", "--data", str(tmp / "d.csv"), "--out", str(tmp / "r"), "--lam", "0.01",
                                    "--set", "outer_iterations=1", "--set", "inner_epochs=1", "--quiet"])
    assert res.exit_code == 0, res.output
    return tmp


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = detected(tmp_path_factory.mktemp("saved"), 40, 5)
    return tmp / "r" / "model", tmp / "d.csv"


def copy(saved, tmp_path):
    shutil.copytree(saved[0], tmp_path / "m")
    return tmp_path / "m"


def load_error(folder):
    """Load via the library (model and scaler): the one ModelFileError line."""
    with pytest.raises(ModelFileError) as info:
        MinMaxScaler01.load(folder / "scaler.json")
        RobustAutoencoder.load(folder)
    line = str(info.value)
    assert "\n" not in line and len(line) < 600, line
    return line


def score_error(folder, data, tmp_path):
    res = CliRunner().invoke(main, ["score", "--model", str(folder), "--data", str(data), "--out",
                                    str(tmp_path / "s.csv")])
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("rda: error:"), res.output
    assert not (tmp_path / "s.csv").exists()
    return lines[0]


# ------------------------------------------------------------------------------- non-regular files
@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "folder"])
def test_non_regular_model_files_are_refused(saved, tmp_path, name, kind):
    folder = copy(saved, tmp_path)
    (folder / name).unlink()
    if kind == "dev-zero":
        (folder / name).symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(folder / name)
    else:
        (folder / name).mkdir()
    line = score_error(folder, saved[1], tmp_path)
    assert name in line and ("not a regular file" in line or "is a folder" in line), line


# ------------------------------------------------------------------------------- declared-size bombs
def _zip_with_declared(path, member, declared, payload=b"{}"):
    """A zip whose directory declares ``declared`` uncompressed bytes for ``member`` (holding ``payload``)."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(member, payload)
    raw = bytearray(path.read_bytes())
    cd = raw.rfind(b"PK\x01\x02")
    struct.pack_into("<I", raw, cd + 24, declared)  # central directory: uncompressed size
    path.write_bytes(bytes(raw))


def test_npz_member_declaring_a_huge_array_is_refused(saved, tmp_path):
    folder = copy(saved, tmp_path)
    header = {"descr": "<f8", "fortran_order": False, "shape": (1 << 17, 1 << 10)}  # 1 GiB declared
    import io

    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, header)
    with zipfile.ZipFile(folder / "arrays.npz", "w", zipfile.ZIP_DEFLATED) as z:
        for name in ("S_", "residual_scores_"):
            z.writestr(f"{name}.npy", buf.getvalue() + b"\0" * 64)
        z.writestr("L_.npy", buf.getvalue() + b"\0" * 64)
    line = load_error(folder)
    assert "arrays.npz" in line and "declares shape" in line, line


def test_keras_member_declaring_512_mb_is_refused(saved, tmp_path):
    folder = copy(saved, tmp_path)
    with zipfile.ZipFile(folder / "network.keras") as z:
        members = {i.filename: z.read(i) for i in z.infolist()}
    path = folder / "network.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    raw = bytearray(path.read_bytes())
    pos = 0
    while (pos := raw.find(b"PK\x01\x02", pos)) >= 0:  # every central-directory entry
        name_len = struct.unpack_from("<H", raw, pos + 28)[0]
        if raw[pos + 46: pos + 46 + name_len] == b"config.json":
            struct.pack_into("<I", raw, pos + 24, 512 << 20)
        pos += 46
    path.write_bytes(bytes(raw))
    line = load_error(folder)
    assert "network.keras" in line and "config.json" in line and "declares" in line, line


def test_keras_file_with_a_foreign_member_is_refused(saved, tmp_path):
    folder = copy(saved, tmp_path)
    with zipfile.ZipFile(folder / "network.keras", "a") as z:
        z.writestr("assets/payload.bin", b"x" * 100)
    assert "holds 4 members" in load_error(folder)


# ------------------------------------------------------------------------------- values
def _rewrite_arrays(folder, **changes):
    with np.load(folder / "arrays.npz") as a:
        arrays = {k: a[k] for k in a.files}
    arrays.update(changes)
    np.savez(folder / "arrays.npz", **arrays)
    return arrays


@pytest.mark.parametrize("name,value", [("S_", np.nan), ("L_", np.inf), ("residual_scores_", -np.inf)])
def test_non_finite_arrays_are_refused(saved, tmp_path, name, value):
    folder = copy(saved, tmp_path)
    with np.load(folder / "arrays.npz") as a:
        bad = a[name].copy()
    bad.flat[0] = value
    _rewrite_arrays(folder, **{name: bad})
    line = load_error(folder)
    assert name in line and "NaN or infinite" in line
    assert "arrays.npz" in score_error(folder, saved[1], tmp_path)


def _edit_json(path, **fields):
    d = json.loads(path.read_text())
    d.update(fields)
    path.write_text(json.dumps(d))


def test_absurd_threshold_is_refused(saved, tmp_path):
    folder = copy(saved, tmp_path)
    _edit_json(folder / "params.json", prox_threshold_=1e308)
    assert "prox_threshold_" in load_error(folder)


@pytest.mark.parametrize("fields,text", [
    ({"min": [5, 5, 5, 5, 5], "max": [0, 0, 0, 0, 0]}, "'min' is above 'max'"),
    ({"feature_names": "abcde"}, "'feature_names'"),
    ({"min": 5}, "'min'"),
    ({"feature_names": ["a", "b"]}, "'feature_names'"),
    ({"id_column": 3}, "'id_column'"),
    ({"max": [1, 2]}, "'min' and 'max'"),
    ({"min": [None, 0, 0, 0, 0]}, "'min'"),
])
def test_inconsistent_scaler_fields_are_one_line(saved, tmp_path, fields, text):
    folder = copy(saved, tmp_path)
    _edit_json(folder / "scaler.json", **fields)
    line = load_error(folder)
    assert "scaler.json" in line and text in line, line
    assert "scaler.json" in score_error(folder, saved[1], tmp_path)


# ------------------------------------------------------------------------------- broken files
@pytest.mark.parametrize("name", ["scaler.json", "params.json"])
def test_deep_nesting_is_one_line(saved, tmp_path, name):
    folder = copy(saved, tmp_path)
    (folder / name).write_text("[" * 100_000 + "]" * 100_000)
    line = load_error(folder)
    assert name in line and "nested too deeply" in line


def test_junk_arrays_is_one_line_without_pickle_talk(saved, tmp_path):
    folder = copy(saved, tmp_path)
    (folder / "arrays.npz").write_text("this is not an npz file at all\n" * 10)
    line = load_error(folder)
    assert "arrays.npz" in line and "pickle" not in line, line


@pytest.mark.parametrize("fields,text", [
    ({"history_": [{"a": [[[]]]}]}, "history_"),
    ({"n_iter_": "1"}, "n_iter_"),
    ({"layers_": [5, 10 ** 7]}, "layers_"),
    ({"params": {"lam": "x"}}, "params"),
])
def test_broken_params_fields_are_one_line(saved, tmp_path, fields, text):
    folder = copy(saved, tmp_path)
    _edit_json(folder / "params.json", **fields)
    line = load_error(folder)
    assert "params.json" in line and text in line, line


# ------------------------------------------------------------------------------- time and memory
def test_model_file_bombs_are_refused_fast_and_small(saved, tmp_path):
    """Each in a fresh process (its peak resident memory from /proc's VmHWM, < 200 MB in all: refused before
    TensorFlow is imported), CPU and wall time < 1 s."""
    folders = []
    for kind in ("zero", "fifo", "bomb"):
        folder = copy(saved, tmp_path / kind)
        folders.append(folder)
        (folder / "network.keras").unlink()
        if kind == "zero":
            (folder / "network.keras").symlink_to("/dev/zero")
        elif kind == "fifo":
            os.mkfifo(folder / "network.keras")
        else:
            _zip_with_declared(folder / "network.keras", "config.json", (1 << 32) - 1)
    code = ("import sys, time\n"
            "from rda_cli.persistence import load_model, ModelFileError\n"
            "from rda_cli.estimator import RobustAutoencoder\n"
            "hwm0 = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]\n"
            "t = time.process_time(); w = time.perf_counter()\n"
            "try: load_model(RobustAutoencoder, sys.argv[1])\n"
            "except ModelFileError as exc: print(exc)\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0].split()[1]\n"
            "print(time.process_time() - t, time.perf_counter() - w, hwm0, hwm)\n")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), TF_CPP_MIN_LOG_LEVEL="3")
    for folder, text in zip(folders, ("not a regular file", "not a regular file", "declares")):
        out = subprocess.run([sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=120,
                             env=env).stdout.splitlines()
        assert len(out) == 2 and text in out[0], out
        cpu, wall, hwm0, hwm = out[1].split()
        growth_mb = (int(hwm) - int(hwm0)) / 1024
        assert float(cpu) < 1 and float(wall) < 1 and growth_mb < 200 and int(hwm) < 200 * 1024, out

SETTINGS = dict(derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None)

values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.sampled_from([0, 1, 5, 1e308, -1.0, 0.5, 1e15, 1e16])
    | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return detected(tmp_path_factory.mktemp("fuzzmodel"), 30, 4)


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

FAST = ["--set", "outer_iterations=2", "--set", "inner_epochs=1", "--lam", "0.01", "--quiet"]


# ------------------------------------------------------------------------------- model files
@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("model")
    data, out = table(tmp / "t.csv"), tmp / "out"
    assert invoke("detect", "--data", data, "--out", out, *FAST).exit_code == 0
    return data, out / "model"


@pytest.mark.parametrize("field,value,expect", [
    ("threshold_", "0.5", "threshold_"),
    ("threshold_", -1, "threshold_"),
    ("layers_", [5, 3, "x"], "layers_"),
    ("layers_", [5, 2_000_000, 2], "exceeds the limit"),
    ("layers_", [5, 4, 2], "differ"),
    ("n_iter_", 1.5, "n_iter_"),
    ("history_", "none", "history_"),
    ("params", {"penalty": "l21_rows", "lam": "big"}, "invalid params"),
    ("params", {"no_such": 1}, "invalid params"),
])
def test_damaged_model_files_are_one_line(tmp_path, model_dir, field, value, expect):
    import shutil

    data, model = model_dir
    bad = tmp_path / "model"
    shutil.copytree(model, bad)
    meta = json.loads((bad / "params.json").read_text())
    meta[field] = value
    (bad / "params.json").write_text(json.dumps(meta))
    line = one_error_line(invoke("score", "--model", bad, "--data", data, "--out", tmp_path / "s.csv"))
    assert expect in line
    assert not (tmp_path / "s.csv").exists()


def test_network_file_not_matching_its_arrays(tmp_path, model_dir):
    import shutil
    import zipfile

    data, model = model_dir
    bad = tmp_path / "model"
    shutil.copytree(model, bad)
    with zipfile.ZipFile(model / "network.keras") as z:
        members = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(members["config.json"])
    cfg["config"]["layer_sizes"] = [5, 400000, 2]
    members["config.json"] = json.dumps(cfg).encode()
    with zipfile.ZipFile(bad / "network.keras", "w") as z:
        for n, b in members.items():
            z.writestr(n, b)
    assert "layer sizes" in one_error_line(invoke("score", "--model", bad, "--data", data))
    (bad / "network.keras").write_bytes(b"not a zip")
    assert "not a Keras model file" in one_error_line(invoke("score", "--model", bad, "--data", data))


def test_save_is_atomic(tmp_path, monkeypatch):
    from rda_cli import RobustAutoencoder

    X, _ = with_outlier_rows(n=60, d=5, fraction=0.05, seed=0)
    model = RobustAutoencoder(layers=[5, 3], outer_iterations=1, inner_epochs=1, random_state=0).fit(X)
    target = model.save(tmp_path / "m")
    first = snapshot(target)
    monkeypatch.setattr(np, "savez", enospc)
    with pytest.raises(OSError):
        model.save(target)
    assert snapshot(target) == first  # the earlier model is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("x")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="holds files rda did not write"):
        model.save(tmp_path / "other")


def test_score_huge_and_non_finite_values(tmp_path, model_dir):
    data, model = model_dir
    X = np.loadtxt(data, delimiter=",", skiprows=1)[:10]
    X[3, 2] = 1e300
    new = tmp_path / "new.csv"
    np.savetxt(new, X, delimiter=",", header=",".join(f"f{j}" for j in range(X.shape[1])), comments="")
    res = invoke("score", "--model", model, "--data", new, "--out", tmp_path / "s.csv")
    assert res.exit_code == 0, res.output
    rows = [ln.split(",") for ln in (tmp_path / "s.csv").read_text().splitlines()[1:]]
    scores = np.array([float(r[1]) for r in rows])
    assert np.all(np.isfinite(scores)) and int(np.argmax(scores)) == 3 and rows[3][2] == "1"
    X[3, 2] = np.inf
    np.savetxt(new, X, delimiter=",", header=",".join(f"f{j}" for j in range(X.shape[1])), comments="")
    line = one_error_line(invoke("score", "--model", model, "--data", new, "--out", tmp_path / "s2.csv"))
    assert "row 4" in line and "'f2'" in line
