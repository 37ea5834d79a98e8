"""What ``rda detect`` / ``rda score`` write and where: a user's files are never lost, every bad input or
write fault is one ``rda: error:`` line and a non-zero exit.

- ``--out`` is new, empty, or rda's own result: never a folder holding the input, a foreign or the
  current folder; ``--force`` replaces a folder only while its whole tree is what rda wrote (manifest),
  and not when it changed during the run; ``save`` likewise.
- ``rda score --out`` never overwrites the input or a user file; it recognises its own scores file by a
  sidecar (size + SHA-256), not by columns.
- Write faults (ENOSPC, read-only, an ``--out`` under a regular file) leave nothing partial.
- Usage errors are one line naming the flag (``--layers 100000000``, ``--lam 1e308``, ``--set``
  values typed); ``rda score`` is as quiet as ``rda detect``; ``--array`` picks from a many-array ``.npz``.
- Property-based (hypothesis, derandomised): generated tables, arrays and ``--set`` values end with
  status 0 or 2, never a traceback, and leave nothing in ``--out`` after refusing.
"""

import errno
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from rda_cli.owned import MANIFEST

from synthetic import (ENV, SETTINGS, TINY, csv_texts, enospc, invoke, one_error_line, run_and_check, snapshot, table,
                       tiny_features, with_outlier_rows, write_config)


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

FAST_1 = ["--set", "outer_iterations=1", "--set", "inner_epochs=1", "--lam", "0.01", "--quiet"]


def only_error_line(res, code=2, text=None):
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output and "Usage:" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rda: error:"), res.output
    if text is not None:
        assert text in lines[0], lines[0]
    return lines[0]


def tree_snapshot(folder):
    folder = Path(folder)
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """An rda detect result folder (copied by the tests that change it)."""
    tmp = tmp_path_factory.mktemp("result")
    data = table(tmp / "d.csv")
    assert invoke("detect", "--data", data, "--out", tmp / "prev", *FAST_1).exit_code == 0
    return tmp / "d.csv", tmp / "prev"


def copy_result(result, tmp_path):
    import shutil

    data, prev = result
    shutil.copytree(prev, tmp_path / "prev")
    return data, tmp_path / "prev"


# ------------------------------------------------------------------------------- --force: the whole tree
def test_result_folder_lists_its_files(result):
    import json

    _, prev = result
    listed = json.loads((prev / MANIFEST).read_text())
    assert "model/params.json" in listed["files"] and "scores.csv" in listed["files"] and "model" in listed["folders"]
    assert (prev / "model" / MANIFEST).is_file()


@pytest.mark.parametrize("nested", ["model/my_notes.txt", "model/keep/", "model/keep/deep.txt", "notes/"])
def test_force_refuses_a_tree_with_nested_user_files(result, tmp_path, nested):
    data, prev = copy_result(result, tmp_path)
    target = prev / nested.rstrip("/")
    if nested.endswith("/"):
        target.mkdir(parents=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("mine")
    before = tree_snapshot(prev)
    line = only_error_line(invoke("detect", "--data", data, "--out", prev, "--force", *FAST_1), 2, "did not write")
    assert nested.split("/")[0] + "/" in line or nested.rstrip("/") in line
    assert tree_snapshot(prev) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prev"]  # no temporary folder left


def test_force_refuses_an_edited_rda_file_and_replaces_an_untouched_tree(result, tmp_path):
    data, prev = copy_result(result, tmp_path)
    (prev / "report.md").write_text((prev / "report.md").read_text() + "\nmy conclusions\n")
    before = tree_snapshot(prev)
    only_error_line(invoke("detect", "--data", data, "--out", prev, "--force", *FAST_1), 2, "report.md was changed")
    assert tree_snapshot(prev) == before
    data, prev = copy_result(result, tmp_path / "b")
    (prev / "score_hist.png").unlink()  # a deleted rda file holds nothing of the user's
    assert invoke("detect", "--data", data, "--out", prev, "--force", *FAST_1).exit_code == 0
    assert (prev / "score_hist.png").is_file()


def test_save_replaces_only_a_model_folder_that_is_rda_s_own(tmp_path):
    from rda_cli import RobustAutoencoder

    X, _ = with_outlier_rows(n=40, d=5, fraction=0.05, seed=0)
    model = RobustAutoencoder(layers=[5, 3], outer_iterations=1, inner_epochs=1, random_state=0).fit(X)
    target = model.save(tmp_path / "m")
    model.save(target)  # its own folder: replaced
    (target / "keep").mkdir()
    (target / "keep" / "mine.txt").write_text("x")
    before = tree_snapshot(target)
    with pytest.raises(ValueError, match="keep/ is a folder rda did not write"):
        model.save(target)
    assert tree_snapshot(target) == before
    (target / "keep" / "mine.txt").unlink()
    (target / "keep").rmdir()
    (target / "params.json").write_text((target / "params.json").read_text() + " ")
    with pytest.raises(ValueError, match="params.json was changed"):
        model.save(target)


# ------------------------------------------------------------------------------- changed during the run
def test_force_folder_changed_during_the_run_is_kept(result, tmp_path, monkeypatch):
    import rda_cli.outputs as outputs

    data, prev = copy_result(result, tmp_path)
    real = outputs.write_result

    def write_while_user_edits(*args, **kw):  # the user saves a file into the folder while rda trains
        (prev / "model" / "late_notes.txt").write_text("written during training")
        return real(*args, **kw)

    monkeypatch.setattr("rda_cli.detect.write_result", write_while_user_edits)
    line = only_error_line(invoke("detect", "--data", data, "--out", prev, "--force", *FAST_1), 1,
                          "changed while rda ran")
    assert "model/late_notes.txt" in line and "discarded" in line
    assert (prev / "model" / "late_notes.txt").read_text() == "written during training"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prev"]  # nothing else left behind


# ------------------------------------------------------------------------------- scores file marker
def test_score_refuses_a_user_csv_with_the_same_columns(result, tmp_path):
    data, prev = result
    grades = tmp_path / "grades.csv"
    grades.write_text("row,score,flagged\n0,17,yes\n")
    line = only_error_line(invoke("score", "--model", prev / "model", "--data", data, "--out", grades), 2)
    assert "not a scores file rda wrote" in line and grades.read_text() == "row,score,flagged\n0,17,yes\n"
    out = tmp_path / "s.csv"
    assert invoke("score", "--model", prev / "model", "--data", data, "--out", out).exit_code == 0
    first = out.read_text()
    assert first.splitlines()[0].startswith("row,score,flagged")  # the format every reader expects
    assert invoke("score", "--model", prev / "model", "--data", data, "--out", out).exit_code == 0  # its own: replaced
    assert out.read_text() == first
    out.write_text(first + "0,1,True,mine\n")  # edited by the user: no longer rda's
    only_error_line(invoke("score", "--model", prev / "model", "--data", data, "--out", out), 2, "not a scores file")
    assert invoke("score", "--model", prev / "model", "--data", data, "--out", out, "--force").exit_code == 0


# ------------------------------------------------------------------------------- network size limits
def test_huge_layers_are_refused_before_any_work(result, tmp_path):
    data, _ = result
    t = time.perf_counter()
    only_error_line(invoke("detect", "--data", data, "--out", tmp_path / "o", "--layers", "100000000", *FAST_1[:-3],
                          "--quiet"), 2, "--layers")
    assert time.perf_counter() - t < 5 and not (tmp_path / "o").exists()
    only_error_line(invoke("detect", "--data", data, "--out", tmp_path / "o", "--layers", "20000,20000", *FAST_1[:-3],
                          "--quiet"), 2, "weights exceeds the limit")
    from rda_cli import RobustAutoencoder

    X, _ = with_outlier_rows(n=20, d=5, fraction=0.05, seed=0)
    with pytest.raises(ValueError, match="`layers`.*exceeds the limit"):
        RobustAutoencoder(layers=[5, 100_000_000]).fit(X)


# ------------------------------------------------------------------------------- messages
def test_usage_errors_are_one_line(result, tmp_path):
    data, prev = result
    (tmp_path / "f.txt").write_text("x")
    (tmp_path / "dir").mkdir()
    cases = [
        (["detect", "--data", data, "--out", tmp_path / "f.txt"], "not a folder"),
        (["score", "--model", prev / "model", "--data", data, "--out", tmp_path / "dir"], "is a folder"),
        (["outliers", "--config", tmp_path / "dir"], "is a folder"),
        (["plot", tmp_path / "f.txt"], "not a folder"),
        (["detect", "--data", data, "--bogus"], "No such option"),
        (["detect", "--data", data, "--penalty", "l3"], "--penalty"),
        (["score", "--data", data], "--model"),
    ]
    for args, text in cases:
        only_error_line(invoke(*args), 2, text)
    assert (tmp_path / "f.txt").read_text() == "x" and not any((tmp_path / "dir").iterdir())


def test_absurd_lambda_is_refused_naming_lam(result, tmp_path):
    data, _ = result
    t = time.perf_counter()
    only_error_line(invoke("detect", "--data", data, "--out", tmp_path / "o", "--lam", "1e308", "--quiet"), 2, "--lam")
    assert time.perf_counter() - t < 5 and not (tmp_path / "o").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- quiet start
def test_score_is_quiet(result, tmp_path):
    data, prev = result
    for level in ("3", None):
        env = dict(ENV)
        env.pop("TF_CPP_MIN_LOG_LEVEL")
        if level:
            env["TF_CPP_MIN_LOG_LEVEL"] = level
        res = subprocess.run([sys.executable, "-m", "rda_cli.cli", "score", "--model", str(prev / "model"), "--data",
                              str(data), "--out", str(tmp_path / "s.csv")], capture_output=True, text=True, env=env,
                             timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stderr.strip() == "", res.stderr
        assert res.stdout.startswith("rda score:") and len(res.stdout.strip().splitlines()) == 1

FAST = ["--set", "outer_iterations=2", "--set", "inner_epochs=1", "--lam", "0.01", "--quiet"]


# ------------------------------------------------------------------------------- data loss
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


def test_detect_write_fault_is_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    data, out = table(tmp_path / "t.csv"), tmp_path / "sub" / "out"
    monkeypatch.setattr(np, "save", enospc)
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
    monkeypatch.setattr("rda_cli.safeio.rename_noreplace", failing_replace)  # a new --out is put in place so
    one_error_line(invoke("score", "--model", out / "model", "--data", data, "--out", tmp_path / "new.csv"), code=1)
    assert not [p for p in tmp_path.iterdir() if "new.csv" in p.name]


# ------------------------------------------------------------------------------- smaller gaps
@pytest.mark.parametrize("setting", ["random_state=abc", "random_state=1.5", "tied=abc", "reinitialize=abc",
                                     "batch_size=0", "learning_rate=-1"])
def test_detect_set_values_are_typed(tmp_path, setting):
    data = table(tmp_path / "t.csv")
    line = one_error_line(invoke("detect", "--data", data, "--out", tmp_path / "o", "--set", setting, "--quiet"))
    assert setting.split("=")[0] in line
    assert not (tmp_path / "o").exists()


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
