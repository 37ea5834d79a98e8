"""Run folders and configs, second trust round (issue 22): defects 2, 5, 7, 11, 14, 15, 17, 18, 20.

Each test names its defect; each failed on the code before the fix (a folder with a ``.lock`` taken
over, a FIFO config hanging, aliases expanding, ``f1: 7.5`` accepted, a ``null`` threshold crashing
the summary, orphaned pool workers, a wrong "cells are kept" line, a silent duplicate key).
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from rda_cli.experiments import features as features_module
from rda_cli.experiments.config import CONFIG_MAX_BYTES, ConfigError, load_config, read_yaml
from rda_cli.experiments.rundir import CELL_MAX_BYTES, FINGERPRINT_KEY, RunDir, RunDirError, read_json
from test_reliability import invoke, one_error_line, snapshot, tiny_features, write_config


@contextlib.contextmanager
def within(seconds):
    """Fail (TimeoutError) if the block takes longer than ``seconds`` (a hang is a failure, not a stuck suite)."""
    def alarm(signum, frame):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def rda_process(*args):
    cmd = [sys.executable, "-c", "from rda_cli.cli import main; main()", *map(str, args)]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def without_timings(obj):
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def summary_of(run):
    return without_timings(json.loads((run / "summary.json").read_text()))


@pytest.fixture(scope="module")
def features_run(tmp_path_factory, mnist_dir):
    """A finished tiny features run (3 cells) and its config file."""
    tmp = tmp_path_factory.mktemp("trust_runs")
    cfg = write_config(tmp, tiny_features(mnist_dir))
    out = tmp / "whole"
    res = invoke("features", "--config", cfg, "--out", out, "--quiet")
    assert res.exit_code == 0, res.output
    return cfg, out


def copy_run(features_run, tmp_path):
    cfg, whole = features_run
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    return cfg, run


def features_rundir(features_run, path=None):
    cfg, whole = features_run
    config = load_config(cfg, features_module.SCHEMA, (), features_module.post_check)
    return RunDir(path or whole, "features", config, check_cell=features_module.check_cell)


# ------------------------------------------------------------------- 2. a .lock does not make a run folder
@pytest.mark.parametrize("lock", ["", '{"pid": 999999999, "host": "elsewhere", "start": "t"}'])
def test_a_folder_with_a_lock_file_is_refused(tmp_path, mnist_dir, lock):
    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "summary.md").write_text("mine\n")
    (proj / "metrics.csv").write_text("a,b\n")
    (proj / ".lock").write_text(lock)
    before = snapshot(proj)
    line = one_error_line(invoke("features", "--config", cfg, "--out", proj, "--quiet"))
    assert "no rda run wrote" in line
    assert snapshot(proj) == before


def test_a_manifest_without_the_marker_is_not_a_run_folder(tmp_path, features_run):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "manifest.json").write_text(json.dumps({"mine": True}))
    (proj / "config.yaml").write_text("a: 1\n")
    before = snapshot(proj)
    with pytest.raises(RunDirError, match="manifest.json"):
        features_rundir(features_run, proj).check_usable()
    assert snapshot(proj) == before


def test_what_a_run_killed_at_start_leaves_is_taken_as_empty(tmp_path, features_run):
    folder = tmp_path / "killed"
    folder.mkdir()
    (folder / ".lock").write_text(json.dumps({"pid": 999999999, "host": socket.gethostname(), "start": "t"}))
    (folder / ".manifest.json.k2j3x_.tmp").write_text('{"exp')
    features_rundir(features_run, folder).check_usable()  # no error
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(RunDirError):
        features_rundir(features_run, folder).check_usable()


def test_new_manifests_carry_the_marker_and_fingerprint(features_run):
    _, whole = features_run
    manifest = json.loads((whole / "manifest.json").read_text())
    assert manifest["rda_run_folder"] == 1
    assert manifest[FINGERPRINT_KEY] == features_rundir(features_run).fingerprint


# ------------------------------------------------------------------- 5. bounded config, cell and manifest reads
def test_config_that_is_not_a_regular_file_is_refused_at_once(tmp_path, mnist_dir):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "FIFO"), (Path("/dev/zero"), "device"), (tmp_path, "folder")):
        t0 = time.perf_counter()
        with within(10), pytest.raises(ConfigError, match=kind):
            load_config(path, features_module.SCHEMA)
        assert time.perf_counter() - t0 < 1.0
    for path in (fifo, "/dev/zero"):
        with within(60):
            line = one_error_line(invoke("features", "--config", path, "--out", tmp_path / "out", "--quiet"))
        assert "not a regular file" in line
    assert not (tmp_path / "out").exists()


def test_config_over_the_size_cap_is_refused(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("seed: 0\n" + "#" * CONFIG_MAX_BYTES + "\n")
    with pytest.raises(ConfigError, match="limit"):
        read_yaml(big)
    ok = tmp_path / "ok.yaml"
    ok.write_text("seed: 0\n" + "#" * (CONFIG_MAX_BYTES - 100) + "\n")
    assert read_yaml(ok) == {"seed": 0}


def test_cell_over_the_size_cap_or_not_a_file_is_invalid(tmp_path):
    big = tmp_path / "big.json"
    big.write_text('{"id": "big", "pad": "' + "x" * CELL_MAX_BYTES + '"}')
    cell, problem = read_json(big, CELL_MAX_BYTES, "cell")
    assert cell is None and "limit" in problem
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    with within(10):
        cell, problem = read_json(fifo, CELL_MAX_BYTES, "cell")
    assert cell is None and "FIFO" in problem


def test_a_fifo_cell_is_set_aside_not_waited_on(tmp_path, features_run):
    _, run = copy_run(features_run, tmp_path)
    cell = run / "cells" / "rda_lam0.2.json"
    cell.unlink()
    os.mkfifo(cell)
    rundir = features_rundir(features_run, run)
    with within(10):
        assert not rundir.has_cell("rda_lam0.2")
    assert (run / "cells" / "invalid" / "rda_lam0.2.json").exists()


# ------------------------------------------------------------------- 7. YAML aliases; quoted values are capped
def billion_laughs(levels=7):
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]")
    lines.append(f"seed: *a{levels}")
    return "\n".join(lines) + "\n"


def test_yaml_aliases_are_refused_quickly(tmp_path, mnist_dir):
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(billion_laughs())
    t0 = time.perf_counter()
    res = invoke("features", "--config", cfg, "--out", tmp_path / "out", "--quiet")
    line = one_error_line(res)
    assert "aliases" in line and len(res.output) < 400
    assert time.perf_counter() - t0 < 30
    assert not (tmp_path / "out").exists()
    line = one_error_line(invoke("features", "--set", "seed=&a 1", "--out", tmp_path / "out", "--quiet"))
    assert "aliases" in line


def test_error_messages_quote_at_most_80_characters(tmp_path, mnist_dir):
    cfg = write_config(tmp_path, tiny_features(mnist_dir, seed="x" * 100_000))
    res = invoke("features", "--config", cfg, "--out", tmp_path / "out", "--quiet")
    line = one_error_line(res)
    assert "…" in line and len(line) < 300, line
    cfg = write_config(tmp_path, tiny_features(mnist_dir, seed=list(range(50_000))))
    line = one_error_line(invoke("features", "--config", cfg, "--out", tmp_path / "out", "--quiet"))
    assert len(line) < 300, line


# ------------------------------------------------------------------- 11. cell ranges, finiteness, fingerprints
def _cell_text(features_run, **changes):
    _, whole = features_run
    cell = json.loads((whole / "cells" / "rda_lam0.05.json").read_text())
    for key, value in changes.items():
        if value is KeyError:
            cell.pop(key)
        else:
            cell[key] = value
    return json.dumps(cell)


@pytest.mark.parametrize("text_of", [
    lambda fr: _cell_text(fr, f1=7.5),
    lambda fr: _cell_text(fr, precision=-3),
    lambda fr: _cell_text(fr, auroc=1.0001),
    lambda fr: _cell_text(fr, n_flagged=-1),
    lambda fr: _cell_text(fr, n_flagged=10 ** 30),
    lambda fr: _cell_text(fr, f1=0.5).replace('"f1": 0.5', '"f1": NaN'),
    lambda fr: _cell_text(fr, threshold=0.5).replace('"threshold": 0.5', '"threshold": Infinity'),
    lambda fr: _cell_text(fr, threshold=0.5).replace('"threshold": 0.5', '"threshold": 1e999'),
    lambda fr: _cell_text(fr, **{FINGERPRINT_KEY: KeyError, "f1": 1.0}),
], ids=["f1_7.5", "precision_-3", "auroc_above_1", "negative_count", "huge_count", "NaN", "Infinity",
        "overflow", "no_fingerprint"])
def test_out_of_range_and_non_finite_cells_are_invalid(tmp_path, features_run, text_of):
    _, run = copy_run(features_run, tmp_path)
    (run / "cells" / "rda_lam0.05.json").write_text(text_of(features_run))
    rundir = features_rundir(features_run, run)
    cell, problem = rundir._read("rda_lam0.05")
    if problem is None:
        problem = rundir.cell_problem("rda_lam0.05", cell)
    assert problem, "accepted"


def test_edited_cell_without_fingerprint_is_recomputed(tmp_path, features_run):
    cfg, run = copy_run(features_run, tmp_path)
    (run / "cells" / "rda_lam0.05.json").write_text(_cell_text(features_run, **{FINGERPRINT_KEY: KeyError, "f1": 1.0}))
    res = invoke("features", "--config", cfg, "--out", run, "--quiet")
    assert res.exit_code == 0, res.output
    assert "rda_lam0.05" in res.output and FINGERPRINT_KEY in res.output
    assert "1 computed, 2 read back" in res.output
    assert summary_of(run) == summary_of(features_run[1])


# ------------------------------------------------------------------- 14. nulls, empty lists, nesting, lists, encodings
@pytest.mark.parametrize("changes", [{"threshold": None}, {"f1": None}, {"f1": []}, {"n_stuck": KeyError},
                                     {"flagged_columns": ["a"]}])
def test_cells_that_crashed_the_summary_are_invalid(tmp_path, features_run, changes):
    _, run = copy_run(features_run, tmp_path)
    (run / "cells" / "rda_lam0.05.json").write_text(_cell_text(features_run, **changes))
    res = invoke("plot", run)
    assert res.exit_code == 0, res.output
    assert "rda_lam0.05" in res.output and "invalid" in res.output and "2 cells" in res.output


def test_swept_cells_with_empty_or_ragged_lists_are_invalid():
    from rda_cli.experiments.outliers import check_cell

    good = {"kind": "iforest", "seed": 0, "fractions": [0.1, 0.2], "precision": [0.5, 0.4], "recall": [0.2, 0.3],
            "f1": [0.3, 0.35], "auroc": 0.8, "ap": 0.5}
    assert check_cell(good) is None
    assert check_cell(dict(good, f1=[]))
    assert check_cell(dict(good, f1=[0.3]))
    assert check_cell(dict(good, f1=[0.3, None]))


def test_deeply_nested_cell_is_a_clean_invalid_cell(tmp_path, features_run):
    _, run = copy_run(features_run, tmp_path)
    (run / "cells" / "rda_lam0.05.json").write_text("[" * 200_000 + "]" * 200_000)
    rundir = features_rundir(features_run, run)
    cell, problem = rundir._read("rda_lam0.05")
    assert cell is None and "nested" in problem
    assert not rundir.has_cell("rda_lam0.05")
    assert (run / "cells" / "invalid" / "rda_lam0.05.json").exists()


def test_a_run_config_holding_a_list_is_one_line(tmp_path, features_run):
    cfg, run = copy_run(features_run, tmp_path)
    (run / "config.yaml").write_text("- 1\n- 2\n")
    before = snapshot(run)
    assert "mapping" in one_error_line(invoke("features", "--config", cfg, "--out", run, "--quiet"))
    assert "mapping" in one_error_line(invoke("plot", run))
    assert snapshot(run) == before


def test_non_utf8_config_is_one_line(tmp_path, mnist_dir):
    cfg = tmp_path / "latin1.yaml"
    cfg.write_bytes("run_name: caf\xe9\n".encode("latin-1"))
    line = one_error_line(invoke("features", "--config", cfg, "--out", tmp_path / "out", "--quiet"))
    assert "UTF-8" in line
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------- 15. a deleted manifest.json or config.yaml
def test_deleted_manifest_is_described_and_rebuilt_from_the_cells(tmp_path, features_run, mnist_dir):
    cfg, run = copy_run(features_run, tmp_path)
    (run / "manifest.json").unlink()
    other = write_config(tmp_path, tiny_features(mnist_dir, seed=1), "other.yaml")
    before = snapshot(run)
    line = one_error_line(invoke("features", "--config", other, "--out", run, "--quiet"))
    assert "manifest.json is missing" in line and "3 cell" in line and "To recover" in line and "--config" in line
    assert snapshot(run) == before
    res = invoke("features", "--config", cfg, "--out", run, "--quiet")  # the config that wrote the cells
    assert res.exit_code == 0, res.output
    assert "manifest.json was missing" in res.output and "0 computed, 3 read back" in res.output
    assert json.loads((run / "manifest.json").read_text())["rda_run_folder"] == 1
    assert summary_of(run) == summary_of(features_run[1])


def test_deleted_config_yaml_is_described_and_written_again(tmp_path, features_run, mnist_dir):
    cfg, run = copy_run(features_run, tmp_path)
    saved = (run / "config.yaml").read_text()
    (run / "config.yaml").unlink()
    line = one_error_line(invoke("plot", run))
    assert "config.yaml is missing" in line and "to recover" in line
    other = write_config(tmp_path, tiny_features(mnist_dir, seed=1), "other.yaml")
    before = snapshot(run)
    line = one_error_line(invoke("features", "--config", other, "--out", run, "--quiet"))
    assert "config.yaml is missing" in line and "To recover" in line
    assert snapshot(run) == before
    res = invoke("features", "--config", cfg, "--out", run, "--quiet")
    assert res.exit_code == 0, res.output
    assert "config.yaml was missing" in res.output and "0 computed, 3 read back" in res.output
    assert yaml.safe_load((run / "config.yaml").read_text()) == yaml.safe_load(saved)


# ------------------------------------------------------------------- 17. SIGTERM / SIGKILL with --executor processes
def _descendants(pid):
    import psutil

    return psutil.Process(pid).children(recursive=True)


def _alive(procs):
    import psutil

    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def _start_pool_sweep(cfg, out):
    proc = rda_process("features", "--config", cfg, "--out", out, "--quiet", "--executor", "processes",
                       "--workers", "2")
    deadline = time.time() + 240
    children = []
    while time.time() < deadline and proc.poll() is None:  # both workers started (plus the resource tracker)
        children = _descendants(proc.pid)
        if len(children) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None and len(children) >= 3, (children, proc.poll())
    time.sleep(3)  # the workers are importing TensorFlow or training
    return proc, _descendants(proc.pid)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_killed_pool_sweep_leaves_no_process_or_lock_and_resumes(tmp_path, features_run, sig):
    pytest.importorskip("psutil")
    cfg, whole = features_run
    out = tmp_path / "run"
    proc, children = _start_pool_sweep(cfg, out)
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    t_dead = time.time()
    while _alive(children) and time.time() - t_dead < 10:
        time.sleep(0.2)
    assert not _alive(children), [p.cmdline()[:3] for p in _alive(children)]
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("rda: error: interrupted by SIGTERM"), err
        if out.exists():
            assert "kept in" in lines[0]
            assert not (out / ".lock").exists()
        else:
            assert "nothing was kept" in lines[0]
    resumed = invoke("features", "--config", cfg, "--out", out, "--quiet")
    assert resumed.exit_code == 0, resumed.output
    assert summary_of(out) == summary_of(whole)
    assert not (out / ".lock").exists()


def test_pool_worker_exits_when_its_parent_is_gone():
    """The parent-death watch itself (the portable thread), in a grandchild whose parent is SIGKILLed."""
    code = ("import os, sys, time, subprocess\n"
            "child = subprocess.Popen([sys.executable, '-c', 'import os, time\\n"
            "from rda_cli.experiments.executors import die_with_parent\\n"
            "die_with_parent(os.getppid()); time.sleep(60)'])\n"
            "print(child.pid, flush=True); time.sleep(60)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    grandchild = int(parent.stdout.readline())
    time.sleep(1.0)
    parent.kill()
    parent.wait()
    deadline = time.time() + 5
    while time.time() < deadline and _pid_running(grandchild):
        time.sleep(0.1)
    assert not _pid_running(grandchild)


def _pid_running(pid):
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


# ------------------------------------------------------------------- 18. what an interruption kept
@pytest.mark.parametrize("exc,code", [("KeyboardInterrupt", 130), ("Terminated", 143)])
def test_interrupt_before_the_first_cell_says_nothing_was_kept(tmp_path, mnist_dir, monkeypatch, exc, code):
    import rda_cli.experiments.runner as runner
    from rda_cli.experiments.interrupt import Terminated

    def interrupted(task):
        raise {"KeyboardInterrupt": KeyboardInterrupt, "Terminated": Terminated}[exc]()

    monkeypatch.setattr(runner, "compute_task", interrupted)
    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    out = tmp_path / "new" / "run"
    line = one_error_line(invoke("features", "--config", cfg, "--out", out, "--quiet"), code=code)
    assert "nothing was kept" in line and "kept in" not in line
    assert not (tmp_path / "new").exists()


def test_interrupt_after_cells_says_where_they_are(tmp_path, features_run, monkeypatch):
    import rda_cli.experiments.runner as runner

    cfg, run = copy_run(features_run, tmp_path)
    (run / "cells" / "rda_lam0.2.json").unlink()
    monkeypatch.setattr(runner, "compute_task", lambda task: (_ for _ in ()).throw(KeyboardInterrupt()))
    line = one_error_line(invoke("features", "--config", cfg, "--out", run, "--quiet"), code=130)
    assert f"2 finished cell(s) are kept in {run}" in line
    assert not (run / ".lock").exists()


# ------------------------------------------------------------------- 20. duplicate keys; the lock's hint
def test_duplicate_yaml_key_is_refused(tmp_path, mnist_dir):
    cfg = tmp_path / "dup.yaml"
    cfg.write_text(yaml.safe_dump(tiny_features(mnist_dir)) + "seed: 3\nseed: 4\n")
    line = one_error_line(invoke("features", "--config", cfg, "--out", tmp_path / "out", "--quiet"))
    assert "duplicate key 'seed'" in line and "line" in line
    nested = tmp_path / "nested.yaml"
    nested.write_text("model:\n  lambdas: [0.1]\n  lambdas: [0.2]\n")
    with pytest.raises(ConfigError, match=r"duplicate key 'lambdas' at line 3"):
        read_yaml(nested)


def test_a_lock_held_by_another_live_process_gives_a_way_out(tmp_path, features_run):
    cfg, run = copy_run(features_run, tmp_path)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (run / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname(), "start": "t"}))
        line = one_error_line(invoke("features", "--config", cfg, "--out", run, "--quiet"))
    finally:
        sleeper.kill()
        sleeper.wait()
    assert str(sleeper.pid) in line and "not an rda run" in line and f"delete {run / '.lock'}" in line
