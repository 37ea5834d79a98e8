"""Issue 22, second round, model folders: one test per defect.

5. Model files that are not regular files (``/dev/zero``, a FIFO, a folder) are refused at once; reads capped.
6. Declared-size bombs (an ``arrays.npz`` member, a ``network.keras`` member) are refused from the zip directory.
12. Non-finite arrays, absurd thresholds and inconsistent scaler fields are refused on load.
13. Broken ``scaler.json`` / ``params.json`` / ``arrays.npz`` are one ModelFileError line naming file and field.
(c) ``/dev/zero``, a FIFO and a declared-size bomb: refused within 1 s and 200 MB (VmHWM of a child process).
"""

import json
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

from rda_cli import RobustAutoencoder
from rda_cli.cli import main
from rda_cli.persistence import ModelFileError
from rda_cli.tabular import MinMaxScaler01

from synthetic import with_outlier_rows

FILES = ("params.json", "scaler.json", "network.keras", "arrays.npz")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("saved")
    X, _ = with_outlier_rows(n=40, d=5, fraction=0.05, seed=0)
    np.savetxt(tmp / "d.csv", X, delimiter=",", header="a,b,c,d,e", comments="")
    res = CliRunner().invoke(main, ["detect", "--data", str(tmp / "d.csv"), "--out", str(tmp / "r"), "--lam", "0.01",
                                    "--set", "outer_iterations=1", "--set", "inner_epochs=1", "--quiet"])
    assert res.exit_code == 0, res.output
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


# ------------------------------------------------------------------------------- 5. non-regular files
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


# ------------------------------------------------------------------------------- 6. declared-size bombs
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


# ------------------------------------------------------------------------------- 12. values
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


# ------------------------------------------------------------------------------- 13. broken files
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


# ------------------------------------------------------------------------------- (c) time and memory
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
