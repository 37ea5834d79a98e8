"""A user's files are never lost; every bad input or write fault is one line and a non-zero exit.

One test (or group) per defect of the reliability review: output-folder safety, corrupt cells,
write faults, run_name, concurrent runs, model files, and the smaller gaps.
"""

import errno
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from click.testing import CliRunner

from rda_cli.cli import main

from synthetic import with_outlier_rows

FAST = ["--set", "outer_iterations=2", "--set", "inner_epochs=1", "--lam", "0.01", "--quiet"]


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


# ------------------------------------------------------------------------------- 1. data loss
def test_detect_never_replaces_a_folder_holding_the_input(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    proj.mkdir()
    table(proj / "table.csv")
    (proj / "notes.txt").write_text("mine")
    before = snapshot(proj)
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--force"]):
        line = one_error_line(invoke("detect", "--data", proj / "table.csv", "--out", proj, *FAST, *extra))
        assert "input file" in line or "did not write" in line
        assert snapshot(proj) == before


def test_detect_refuses_foreign_and_current_folders(tmp_path, monkeypatch):
    data = table(tmp_path / "t.csv")
    results = tmp_path / "results"
    (results / "outliers" / "run").mkdir(parents=True)
    (results / "outliers" / "run" / "cells.json").write_text("{}")
    before = snapshot(results)
    line = one_error_line(invoke("detect", "--data", data, "--out", results, *FAST, "--force"))
    assert "did not write" in line and "detect.json" in line
    assert snapshot(results) == before
    monkeypatch.chdir(tmp_path)
    assert "current folder" in one_error_line(invoke("detect", "--data", data, "--out", ".", *FAST, "--force"))
    assert "current folder" in one_error_line(invoke("detect", "--data", data, "--out", "..", *FAST, "--force"))


def test_detect_replaces_its_own_result_only_with_force(tmp_path):
    data, out = table(tmp_path / "t.csv"), tmp_path / "out"
    assert invoke("detect", "--data", data, "--out", out, *FAST).exit_code == 0
    assert (out / "detect.json").exists()
    first = snapshot(out)
    assert "--force" in one_error_line(invoke("detect", "--data", data, "--out", out, *FAST))
    assert snapshot(out) == first
    res = invoke("detect", "--data", data, "--out", out, *FAST, "--force")
    assert res.exit_code == 0, res.output
    (out / "mine.txt").write_text("added by the user")
    assert "did not write" in one_error_line(invoke("detect", "--data", data, "--out", out, *FAST, "--force"))
    assert (out / "mine.txt").read_text() == "added by the user"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary or .old-* leftovers


def test_empty_out_folder_is_used(tmp_path):
    data, out = table(tmp_path / "t.csv"), tmp_path / "empty"
    out.mkdir()
    assert invoke("detect", "--data", data, "--out", out, *FAST).exit_code == 0
    assert (out / "scores.csv").exists()


def test_score_never_overwrites_the_input_or_a_user_file(tmp_path):
    data, out = table(tmp_path / "t.csv"), tmp_path / "out"
    assert invoke("detect", "--data", data, "--out", out, *FAST).exit_code == 0
    model = out / "model"
    before = data.read_bytes()
    assert "input file" in one_error_line(invoke("score", "--model", model, "--data", data, "--out", data))
    assert "input file" in one_error_line(invoke("score", "--model", model, "--data", data, "--out", data,
                                                 "--force"))
    assert data.read_bytes() == before
    assert "model folder" in one_error_line(invoke("score", "--model", model, "--data", data, "--out",
                                                   model / "params.json", "--force"))
    mine = tmp_path / "report.csv"
    mine.write_text("my,own,file\n")
    assert "--force" in one_error_line(invoke("score", "--model", model, "--data", data, "--out", mine))
    assert mine.read_text() == "my,own,file\n"
    scores = tmp_path / "scores.csv"
    assert invoke("score", "--model", model, "--data", data, "--out", scores).exit_code == 0
    assert invoke("score", "--model", model, "--data", data, "--out", scores).exit_code == 0  # its own file
    assert invoke("score", "--model", model, "--data", data, "--out", mine, "--force").exit_code == 0


def test_experiment_out_must_be_new_empty_or_a_run(tmp_path, mnist_dir):
    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "table.csv").write_text("a,b\n1,2\n")
    before = snapshot(proj)
    line = one_error_line(invoke("features", "--config", cfg, "--out", proj, "--quiet"))
    assert "no rda run wrote" in line
    assert snapshot(proj) == before


# ------------------------------------------------------------------------------- 2. corrupt cells
@pytest.fixture(scope="module")
def features_run(tmp_path_factory, mnist_dir):
    tmp = tmp_path_factory.mktemp("features")
    cfg = write_config(tmp, tiny_features(mnist_dir))
    out = tmp / "whole"
    res = invoke("features", "--config", cfg, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    return cfg, out


def _summary(run):
    s = json.loads((run / "summary.json").read_text())
    return json.dumps(s, sort_keys=True)


@pytest.mark.parametrize("damage", ["truncate", "empty_object", "missing_key", "wrong_type", "other_config",
                                    "wrong_id"])
def test_invalid_cell_is_set_aside_and_recomputed(tmp_path, features_run, damage):
    import shutil

    cfg, whole = features_run
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    cell = run / "cells" / "rda_lam0.05.json"
    good = json.loads(cell.read_text())
    text = cell.read_text()
    bad = {
        "truncate": text[: len(text) // 2],
        "empty_object": "{}",
        "missing_key": json.dumps({k: v for k, v in good.items() if k != "f1"}),
        "wrong_type": json.dumps(dict(good, f1="high")),
        "other_config": json.dumps(dict(good, config_fingerprint="0123456789abcdef")),
        "wrong_id": json.dumps(dict(good, id="rda_lam0.2")),
    }[damage]
    cell.write_text(bad)
    res = invoke("features", "--config", cfg, "--out", run, "--quiet")
    assert res.exit_code == 0, res.output
    warnings = [ln for ln in res.output.splitlines() if ln.startswith("rda: warning:")]
    assert len(warnings) == 1 and "rda_lam0.05" in warnings[0], res.output
    assert "1 computed, 2 read back" in res.output
    assert (run / "cells" / "invalid" / "rda_lam0.05.json").read_text() == bad  # kept, not deleted
    assert _summary(run) == _summary(whole)


def test_plot_draws_the_valid_cells_and_names_the_invalid(tmp_path, features_run):
    import shutil

    _, whole = features_run
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    (run / "cells" / "rda_lam0.2.json").write_text("{}")
    res = invoke("plot", run)
    assert res.exit_code == 0, res.output
    assert "rda_lam0.2" in res.output and "invalid" in res.output
    assert "2 cells" in res.output
    assert (run / "cells" / "rda_lam0.2.json").read_text() == "{}"  # plot changes no cell


# ------------------------------------------------------------------------------- 3. write faults
def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", "/fake/full/disk")


def test_detect_write_fault_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    data, out = table(tmp_path / "t.csv"), tmp_path / "sub" / "out"
    monkeypatch.setattr(np, "save", _enospc)
    line = one_error_line(invoke("detect", "--data", data, "--out", out, *FAST), code=1)
    assert "No space left on device" in line
    assert not (tmp_path / "sub").exists()  # the folder it made for --out is gone again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_detect_unwritable_out_is_found_before_training(tmp_path, monkeypatch):
    import tempfile

    data = table(tmp_path / "t.csv")

    def erofs(*a, **k):
        raise OSError(errno.EROFS, "Read-only file system", str(tmp_path / "ro"))

    monkeypatch.setattr(tempfile, "mkdtemp", erofs)
    fits = []
    import rda_cli.estimator as rda_module

    monkeypatch.setattr(rda_module.RobustAutoencoder, "fit", lambda self, X, y=None: fits.append(1))
    line = one_error_line(invoke("detect", "--data", data, "--out", tmp_path / "ro" / "out", *FAST), code=2)
    assert "Read-only file system" in line and not fits


def test_out_under_a_regular_file(tmp_path, mnist_dir):
    data = table(tmp_path / "t.csv")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert "is a file" in one_error_line(invoke("detect", "--data", data, "--out", blocker / "out", *FAST))
    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    one_error_line(invoke("features", "--config", cfg, "--out", blocker / "run", "--quiet"))
    assert blocker.read_text() == "x"


def test_experiment_write_fault_is_one_line(tmp_path, mnist_dir, monkeypatch):
    import rda_cli.experiments.rundir as rundir

    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    monkeypatch.setattr(rundir, "atomic_write_bytes", _enospc)
    line = one_error_line(invoke("features", "--config", cfg, "--out", tmp_path / "run", "--quiet"), code=1)
    assert "No space left on device" in line
    assert not (tmp_path / "run").exists()


def test_score_write_fault_leaves_no_partial_file(tmp_path, monkeypatch):
    data, out = table(tmp_path / "t.csv"), tmp_path / "out"
    assert invoke("detect", "--data", data, "--out", out, *FAST).exit_code == 0
    import os as os_module

    real_replace = os_module.replace

    def failing_replace(src, dst, *a, **k):
        if str(dst).endswith("new.csv"):
            raise OSError(errno.ENOSPC, "No space left on device", str(dst))
        return real_replace(src, dst, *a, **k)

    monkeypatch.setattr(os_module, "replace", failing_replace)
    monkeypatch.setattr("rda_cli.outputs.rename_noreplace", failing_replace)  # a new --out is put in place so
    one_error_line(invoke("score", "--model", out / "model", "--data", data, "--out", tmp_path / "new.csv"), code=1)
    assert not [p for p in tmp_path.iterdir() if "new.csv" in p.name]


# ------------------------------------------------------------------------------- 4. run_name
@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", "."])
def test_run_name_must_be_a_plain_name(tmp_path, mnist_dir, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    line = one_error_line(invoke("features", "--config", cfg, "--set", f"run_name={name}", "--quiet"))
    assert "run_name" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


# ------------------------------------------------------------------------------- 5. concurrent runs
def test_a_folder_in_use_is_refused_and_a_stale_lock_taken_over(tmp_path, features_run):
    import shutil
    import socket

    cfg, whole = features_run
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "start": "t"}))
        line = one_error_line(invoke("features", "--config", cfg, "--out", run, "--quiet"))
        assert str(sleeper.pid) in line and "in use" in line
    finally:
        sleeper.kill()
        sleeper.wait()
    res = invoke("features", "--config", cfg, "--out", run, "--quiet")  # the owner is gone now
    assert res.exit_code == 0, res.output
    assert "taking over the lock" in res.output and str(sleeper.pid) in res.output
    assert not (run / ".lock").exists()


def test_two_processes_on_one_folder(tmp_path, mnist_dir):
    """Started together, one run computes and the other is refused (or finds every cell done)."""
    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    out = tmp_path / "run"
    cmd = [sys.executable, "-c", "from rda_cli.cli import main; main()", "features", "--config", str(cfg),
           "--out", str(out), "--quiet"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=600) + (p.returncode,) for p in procs]
    codes = sorted(r[2] for r in results)
    refused = [r for r in results if r[2] == 2]
    assert codes in ([0, 2], [0, 0]), results
    for _, err, _ in refused:
        assert "in use by process" in err and "Traceback" not in err
    if codes == [0, 0]:  # the second started after the first had finished: it read everything back
        assert any("0 computed, 3 read back" in r[0] for r in results)
    manifest = json.loads((out / "manifest.json").read_text())
    assert all(s["end"] for s in manifest["sessions"])


# ------------------------------------------------------------------------------- 6. model files
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
    monkeypatch.setattr(np, "savez", _enospc)
    with pytest.raises(OSError):
        model.save(target)
    assert snapshot(target) == first  # the earlier model is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary folder left
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "mine.txt").write_text("x")
    monkeypatch.undo()
    with pytest.raises(ValueError, match="holds files rda did not write"):
        model.save(tmp_path / "other")


# ------------------------------------------------------------------------------- 7. smaller gaps
@pytest.mark.parametrize("setting", ["random_state=abc", "random_state=1.5", "tied=abc", "reinitialize=abc",
                                     "batch_size=0", "learning_rate=-1"])
def test_detect_set_values_are_typed(tmp_path, setting):
    data = table(tmp_path / "t.csv")
    line = one_error_line(invoke("detect", "--data", data, "--out", tmp_path / "o", "--set", setting, "--quiet"))
    assert setting.split("=")[0] in line
    assert not (tmp_path / "o").exists()


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


def test_a_column_spanning_the_float_range(tmp_path):
    X, _ = with_outlier_rows(n=60, d=5, fraction=0.05, seed=0)
    X = X.astype(np.float64)
    X[0, 1], X[1, 1] = -1e308, 1e308
    path = tmp_path / "wide.npy"
    np.save(path, X)
    res = invoke("detect", "--data", path, "--out", tmp_path / "o", *FAST)
    assert res.exit_code == 0, res.output
    assert "NaN" not in res.output
    assert np.isfinite(np.load(tmp_path / "o" / "L.npy")).all()


def test_config_error_found_late_creates_nothing(tmp_path, mnist_dir):
    cfg = {
        "run_name": "tiny",
        "data": {"path": str(mnist_dir), "n_source": 2000, "n_outliers": 5000},
        "model": {"layers": [784, 16, 4], "lam": 0.0008, "outer_iterations": 1, "inner_epochs": 1},
        "iforest": {"n_estimators": 5},
    }
    path = write_config(tmp_path, cfg)
    line = one_error_line(invoke("outliers", "--config", path, "--out", tmp_path / "run", "--quiet"))
    assert "n_outliers" in line or "outlier" in line
    assert not (tmp_path / "run").exists()


def test_npz_with_several_arrays_needs_array(tmp_path):
    X, _ = with_outlier_rows(n=60, d=5, fraction=0.05, seed=0)
    path = tmp_path / "many.npz"
    np.savez(path, A=np.zeros((3, 3)), B=X)
    line = one_error_line(invoke("detect", "--data", path, "--out", tmp_path / "o", *FAST))
    assert "--array" in line and "A" in line and "B" in line
    res = invoke("detect", "--data", path, "--array", "B", "--out", tmp_path / "o", *FAST)
    assert res.exit_code == 0, res.output
    assert "array `B`" in (tmp_path / "o" / "report.md").read_text()
    assert json.loads((tmp_path / "o" / "detect.json").read_text())["array"] == "B"
    assert "no array named" in one_error_line(invoke("detect", "--data", path, "--array", "C", "--out",
                                                     tmp_path / "o2", *FAST))
