"""Issue 22, second round, outputs and signals of ``rda detect`` / ``rda score``: one test per defect.

1. ``--force`` replaces a folder only while its whole tree is what rda wrote (manifest); ``save`` too.
3. A ``--force`` folder that changed while rda detect ran is not replaced (exit 1, nothing lost).
4. ``rda score --out`` recognises its own scores file by a sidecar (size + SHA-256), not by columns.
8. ``--layers 100000000`` is refused before any work, naming ``--layers`` (and in ``fit``).
16/18. SIGTERM / SIGINT: one line, exit 143 / 130, no ``.tmp`` and no folder left; SIGKILL: a rerun works.
19. ``rda score`` is as quiet as ``rda detect``.
20. Usage errors are one ``rda: error:`` line; ``--lam 1e308`` is refused naming ``--lam``.
"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rda_cli.cli import main
from rda_cli.owned import MANIFEST

from synthetic import with_outlier_rows

FAST = ["--set", "outer_iterations=1", "--set", "inner_epochs=1", "--lam", "0.01", "--quiet"]
ENV = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]), TF_CPP_MIN_LOG_LEVEL="2")


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def one_error_line(res, code=2, text=None):
    assert res.exit_code == code, (res.exit_code, res.output)
    assert "Traceback" not in res.output and "Usage:" not in res.output, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rda: error:"), res.output
    if text is not None:
        assert text in lines[0], lines[0]
    return lines[0]


def table(path, n=60, d=5, seed=0):
    X, _ = with_outlier_rows(n=n, d=d, fraction=0.05, seed=seed)
    np.savetxt(path, X, delimiter=",", header=",".join(f"f{j}" for j in range(d)), comments="")
    return path


def snapshot(folder):
    folder = Path(folder)
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None) for p in sorted(folder.rglob("*"))}


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    """An rda detect result folder (copied by the tests that change it)."""
    tmp = tmp_path_factory.mktemp("result")
    data = table(tmp / "d.csv")
    assert invoke("detect", "--data", data, "--out", tmp / "prev", *FAST).exit_code == 0
    return tmp / "d.csv", tmp / "prev"


def copy_result(result, tmp_path):
    import shutil

    data, prev = result
    shutil.copytree(prev, tmp_path / "prev")
    return data, tmp_path / "prev"


# ------------------------------------------------------------------------------- 1. --force: the whole tree
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
    before = snapshot(prev)
    line = one_error_line(invoke("detect", "--data", data, "--out", prev, "--force", *FAST), 2, "did not write")
    assert nested.split("/")[0] + "/" in line or nested.rstrip("/") in line
    assert snapshot(prev) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prev"]  # no temporary folder left


def test_force_refuses_an_edited_rda_file_and_replaces_an_untouched_tree(result, tmp_path):
    data, prev = copy_result(result, tmp_path)
    (prev / "report.md").write_text((prev / "report.md").read_text() + "\nmy conclusions\n")
    before = snapshot(prev)
    one_error_line(invoke("detect", "--data", data, "--out", prev, "--force", *FAST), 2, "report.md was changed")
    assert snapshot(prev) == before
    data, prev = copy_result(result, tmp_path / "b")
    (prev / "score_hist.png").unlink()  # a deleted rda file holds nothing of the user's
    assert invoke("detect", "--data", data, "--out", prev, "--force", *FAST).exit_code == 0
    assert (prev / "score_hist.png").is_file()


def test_save_replaces_only_a_model_folder_that_is_rda_s_own(tmp_path):
    from rda_cli import RobustAutoencoder

    X, _ = with_outlier_rows(n=40, d=5, fraction=0.05, seed=0)
    model = RobustAutoencoder(layers=[5, 3], outer_iterations=1, inner_epochs=1, random_state=0).fit(X)
    target = model.save(tmp_path / "m")
    model.save(target)  # its own folder: replaced
    (target / "keep").mkdir()
    (target / "keep" / "mine.txt").write_text("x")
    before = snapshot(target)
    with pytest.raises(ValueError, match="keep/ is a folder rda did not write"):
        model.save(target)
    assert snapshot(target) == before
    (target / "keep" / "mine.txt").unlink()
    (target / "keep").rmdir()
    (target / "params.json").write_text((target / "params.json").read_text() + " ")
    with pytest.raises(ValueError, match="params.json was changed"):
        model.save(target)


# ------------------------------------------------------------------------------- 3. changed during the run
def test_force_folder_changed_during_the_run_is_kept(result, tmp_path, monkeypatch):
    import rda_cli.outputs as outputs

    data, prev = copy_result(result, tmp_path)
    real = outputs.write_result

    def write_while_user_edits(*args, **kw):  # the user saves a file into the folder while rda trains
        (prev / "model" / "late_notes.txt").write_text("written during training")
        return real(*args, **kw)

    monkeypatch.setattr("rda_cli.detect.write_result", write_while_user_edits)
    line = one_error_line(invoke("detect", "--data", data, "--out", prev, "--force", *FAST), 1,
                          "changed while rda ran")
    assert "model/late_notes.txt" in line and "discarded" in line
    assert (prev / "model" / "late_notes.txt").read_text() == "written during training"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prev"]  # nothing else left behind


# ------------------------------------------------------------------------------- 4. scores file marker
def test_score_refuses_a_user_csv_with_the_same_columns(result, tmp_path):
    data, prev = result
    grades = tmp_path / "grades.csv"
    grades.write_text("row,score,flagged\n0,17,yes\n")
    line = one_error_line(invoke("score", "--model", prev / "model", "--data", data, "--out", grades), 2)
    assert "not a scores file rda wrote" in line and grades.read_text() == "row,score,flagged\n0,17,yes\n"
    out = tmp_path / "s.csv"
    assert invoke("score", "--model", prev / "model", "--data", data, "--out", out).exit_code == 0
    first = out.read_text()
    assert first.splitlines()[0].startswith("row,score,flagged")  # the format every reader expects
    assert invoke("score", "--model", prev / "model", "--data", data, "--out", out).exit_code == 0  # its own: replaced
    assert out.read_text() == first
    out.write_text(first + "0,1,True,mine\n")  # edited by the user: no longer rda's
    one_error_line(invoke("score", "--model", prev / "model", "--data", data, "--out", out), 2, "not a scores file")
    assert invoke("score", "--model", prev / "model", "--data", data, "--out", out, "--force").exit_code == 0


# ------------------------------------------------------------------------------- 8. network size limits
def test_huge_layers_are_refused_before_any_work(result, tmp_path):
    data, _ = result
    t = time.perf_counter()
    one_error_line(invoke("detect", "--data", data, "--out", tmp_path / "o", "--layers", "100000000", *FAST[:-3],
                          "--quiet"), 2, "--layers")
    assert time.perf_counter() - t < 5 and not (tmp_path / "o").exists()
    one_error_line(invoke("detect", "--data", data, "--out", tmp_path / "o", "--layers", "20000,20000", *FAST[:-3],
                          "--quiet"), 2, "weights exceeds the limit")
    from rda_cli import RobustAutoencoder

    X, _ = with_outlier_rows(n=20, d=5, fraction=0.05, seed=0)
    with pytest.raises(ValueError, match="`layers`.*exceeds the limit"):
        RobustAutoencoder(layers=[5, 100_000_000]).fit(X)


# ------------------------------------------------------------------------------- 20. messages
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
        one_error_line(invoke(*args), 2, text)
    assert (tmp_path / "f.txt").read_text() == "x" and not any((tmp_path / "dir").iterdir())


def test_absurd_lambda_is_refused_naming_lam(result, tmp_path):
    data, _ = result
    t = time.perf_counter()
    one_error_line(invoke("detect", "--data", data, "--out", tmp_path / "o", "--lam", "1e308", "--quiet"), 2, "--lam")
    assert time.perf_counter() - t < 5 and not (tmp_path / "o").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------- 19. quiet start
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


# ------------------------------------------------------------------------------- 16, 18. signals
def _start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "rda_cli.cli", *map(str, args)], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _temps(folder):
    return [p for p in Path(folder).rglob("*") if p.name.endswith(".tmp") or ".old-" in p.name]


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A table whose detect takes a few seconds (room for signals at random moments)."""
    tmp = tmp_path_factory.mktemp("big")
    return table(tmp / "big.csv", n=3000, d=8, seed=1)


DETECT_SLOW = ["--set", "outer_iterations=3", "--set", "inner_epochs=3", "--lam", "0.01", "--quiet"]


def _interrupt_and_check(proc, sig, code):
    """Send ``sig`` to ``proc``'s group; None if it had finished by then, else its stderr, after checking
    the exit status ``code`` and the one ``rda: error: interrupted`` line."""
    os.killpg(proc.pid, sig)
    out_text, err = proc.communicate(timeout=60)
    if proc.returncode == 0 or out_text.startswith("rda "):
        return None  # it finished just before the signal (or the signal came as the interpreter exited)
    assert proc.returncode == code, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rda: error: interrupted"), err
    return err


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_detect_signal_leaves_nothing(big, tmp_path, sig, code):
    rng = random.Random(22)
    for k in range(3):
        out = tmp_path / f"new{k}" / "deeper" / "out"  # parents it must create, and remove again
        proc = _start(["detect", "--data", big, "--out", out, *DETECT_SLOW], tmp_path)
        time.sleep(rng.uniform(1.0, 4.5))
        if proc.poll() is not None:
            continue  # finished before the signal: nothing to check for this moment
        if _interrupt_and_check(proc, sig, code) is None:
            continue
        assert not (tmp_path / f"new{k}").exists() and not _temps(tmp_path)


@pytest.fixture(scope="module")
def big_model(big, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bigmodel")
    assert invoke("detect", "--data", big, "--out", tmp / "r", *FAST).exit_code == 0
    rows = big.read_text().splitlines()
    big_rows = tmp / "many.csv"
    big_rows.write_text("\n".join([rows[0]] + rows[1:] * 100) + "\n")  # 300,000 rows to score
    return tmp / "r" / "model", big_rows


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_score_signal_leaves_nothing(big_model, tmp_path, sig, code):
    model, rows = big_model
    rng = random.Random(18)
    for k in range(3):
        out = tmp_path / f"sub{k}" / "s.csv"
        proc = _start(["score", "--model", model, "--data", rows, "--out", out], tmp_path)
        time.sleep(rng.uniform(3.0, 6.0))
        if proc.poll() is not None:
            continue
        err = _interrupt_and_check(proc, sig, code)
        if err is None:
            continue
        assert "Aborted" not in err and not (tmp_path / f"sub{k}").exists() and not _temps(tmp_path)


def _alive_in_group(pgid):
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigkill_at_random_moments_then_rerun(big, big_model, tmp_path):
    """SIGKILL leaves temporary entries; no process survives; the rerun works and removes them."""
    model, rows = big_model
    rng = random.Random(7)
    jobs = [("detect", ["detect", "--data", big, "--out", tmp_path / "d" / "out", *DETECT_SLOW])] * 3 + \
           [("score", ["score", "--model", model, "--data", rows, "--out", tmp_path / "s" / "s.csv"])] * 3
    for kind, args in jobs:
        proc = _start(args, tmp_path)
        time.sleep(rng.uniform(2.5, 6.0))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)
        deadline = time.time() + 5
        while _alive_in_group(proc.pid) and time.time() < deadline:
            time.sleep(0.1)
        assert not _alive_in_group(proc.pid)
    for _, args in (jobs[0], jobs[-1]):
        res = subprocess.run([sys.executable, "-m", "rda_cli.cli", *map(str, args), "--force"],
            cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
    assert not _temps(tmp_path)  # the reruns removed what the killed runs left
    assert (tmp_path / "d" / "out" / "scores.csv").is_file() and (tmp_path / "s" / "s.csv").is_file()
