"""Run folders and their configs (``rda_cli/experiments/rundir.py``, ``config.py``): what makes a run
folder, resuming, locks, and what an interrupted sweep keeps.

- Two runs starting on one folder at once: forked processes (the lock holds a PID) meet at barriers
  placed where the races are (between looking for the folder and making it; between reading a dead
  run's lock and removing it), so each round plays the race the same way; no sleeps.
- ``--out`` must be new, empty or a run; a ``.lock`` alone does not make a run folder; a lock held by a
  live process gives a way out, a stale one is taken over; ``run_name`` is a plain name.
- Configs and cells: capped and non-regular reads, YAML aliases and duplicate keys refused, cells out of
  range, non-finite, edited or corrupt set aside and recomputed, a deleted manifest or ``config.yaml``
  rebuilt; a write fault or a late config error leaves nothing.
- SIGTERM / SIGKILL of a ``--executor processes`` sweep: no worker outlives it, no lock stays, and the
  rerun equals the uninterrupted run; the interruption line says what was kept.
- Property-based (hypothesis, derandomised): generated cell files, YAML configs and output folders end
  accepted, refused in one line (ConfigError / RunDirError, exit 2) or set aside, never a traceback,
  and nothing of the user's changes.
"""

import contextlib
import errno
import json
import multiprocessing
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
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rda_cli.cli import main
from rda_cli.experiments import features as features_module
from rda_cli.experiments.config import CONFIG_MAX_BYTES, ConfigError, load_config, read_yaml
from rda_cli.experiments.rundir import CELL_MAX_BYTES, FINGERPRINT_KEY, MARKER_KEY, RunDir, RunDirError, read_json
from rda_cli.safeio import atomic_write_text

from synthetic import enospc, invoke, one_error_line, snapshot, tiny_features, without_timings, write_config

CONFIG = {"experiment": "features", "seed": 0}
FORK = multiprocessing.get_context("fork")


def _contender(path, before, after, queue, hook):
    """One run: check the folder, open it (take its lock), and on refusal abandon as the runner does.
    ``hook`` places ``before`` in the race window; ``after``: both are done before the winner looks."""
    import rda_cli.experiments.rundir as rundir
    import rda_cli.safeio as safeio

    rundir._versions = lambda: {}  # no TensorFlow import in the children
    rundir._git_commit = lambda: None
    first = [True]

    def meet():  # the first time only: the race window is met once
        if first[0]:
            first[0] = False
            before.wait()

    if hook == "mkdir":
        real = safeio.missing_dirs

        def looked(p):
            out = real(p)
            meet()  # both have seen the folder missing; now both make it
            return out

        safeio.missing_dirs = looked
    else:
        real = rundir._raw

        def read(p):
            out = real(p)
            if p.name == ".lock":
                meet()  # both have read the dead run's lock; now both take it over
            return out

        rundir._raw = read
    run = RunDir(path, "features", CONFIG)
    try:
        run.check_usable()
        run.open()
        won, message = True, ""
    except RunDirError as exc:
        run.abandon()
        won, message = False, str(exc)
    after.wait()
    if won:
        lock = json.loads((run.path / ".lock").read_text())
        message = "lock intact" if lock["pid"] == os.getpid() and (run.path / "manifest.json").is_file() else "lost"
        run.release_lock()
    queue.put((won, message))


def _race(path, hook):
    before, after, queue = FORK.Barrier(2, timeout=20), FORK.Barrier(2, timeout=20), FORK.Queue()
    procs = [FORK.Process(target=_contender, args=(path, before, after, queue, hook)) for _ in range(2)]
    for p in procs:
        p.start()
    outcomes = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return outcomes


@pytest.mark.parametrize("round_", range(6))
def test_a_refused_run_never_removes_the_running_one_s_folder_or_lock(tmp_path, round_):
    """Both see the folder missing, both make it (one mkdir wins), one takes the lock; the other is refused
    naming the winner, and its cleanup leaves the winner's folder, manifest and lock as they were."""
    outcomes = _race(tmp_path / "run", "mkdir")
    assert sorted(w for w, _ in outcomes) == [False, True], outcomes
    (won_message,) = [m for w, m in outcomes if w]
    (lost_message,) = [m for w, m in outcomes if not w]
    assert won_message == "lock intact"
    assert "is in use by process" in lost_message
    assert (tmp_path / "run" / "manifest.json").is_file() and not (tmp_path / "run" / ".lock").exists()


@pytest.mark.parametrize("round_", range(6))
def test_two_runs_taking_over_a_dead_run_s_lock_exactly_one_gets_it(tmp_path, round_):
    dead = FORK.Process(target=os._exit, args=(0,))
    dead.start()
    dead.join()
    run = tmp_path / "run"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"pid": dead.pid, "host": __import__("socket").gethostname()}))
    outcomes = _race(run, "takeover")
    assert sorted(w for w, _ in outcomes) == [False, True], outcomes
    assert [m for w, m in outcomes if w] == ["lock intact"]
    assert not [p.name for p in run.iterdir() if p.name.startswith(".lock")]


def test_a_read_only_folder_is_refused_before_any_work(tmp_path, monkeypatch):
    """Resuming in a folder that cannot be written is a refused request (RunDirError: exit 2), not a fault."""
    import rda_cli.experiments.rundir as rundir

    def read_only(self, text):
        raise OSError(errno.EROFS, "Read-only file system", str(self.path / ".lock"))

    monkeypatch.setattr(rundir, "_versions", lambda: {})
    monkeypatch.setattr(rundir.RunDir, "_create_lock", read_only)
    (tmp_path / "run").mkdir()
    with pytest.raises(RunDirError, match=r"run .*run cannot be written: cannot create .*\.lock: Read-only file system"):
        RunDir(tmp_path / "run", "features", CONFIG).open()
    assert (tmp_path / "run").is_dir() and not any((tmp_path / "run").iterdir())


def test_a_run_that_fails_before_its_first_cell_removes_the_folder_it_made(tmp_path, monkeypatch):
    import rda_cli.experiments.rundir as rundir

    monkeypatch.setattr(rundir, "_versions", lambda: {})
    run = RunDir(tmp_path / "a" / "run", "features", CONFIG).open()
    assert (tmp_path / "a" / "run" / ".lock").is_file()
    run.abandon()
    assert run.removed and not (tmp_path / "a").exists()


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


def summary_of(run):
    return without_timings(json.loads((run / "summary.json").read_text()))


def copy_run(features_run, tmp_path):
    cfg, whole = features_run
    run = tmp_path / "run"
    shutil.copytree(whole, run)
    return cfg, run


def features_rundir(features_run, path=None):
    cfg, whole = features_run
    config = load_config(cfg, features_module.SCHEMA, (), features_module.post_check)
    return RunDir(path or whole, "features", config, check_cell=features_module.check_cell)


# ------------------------------------------------------------------- a .lock does not make a run folder
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


# ------------------------------------------------------------------- bounded config, cell and manifest reads
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


# ------------------------------------------------------------------- YAML aliases; quoted values are capped
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


# ------------------------------------------------------------------- cell ranges, finiteness, fingerprints
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


# ------------------------------------------------------------------- nulls, empty lists, nesting, lists, encodings
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


# ------------------------------------------------------------------- a deleted manifest.json or config.yaml
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


# ------------------------------------------------------------------- SIGTERM / SIGKILL with --executor processes
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


# ------------------------------------------------------------------- what an interruption kept
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


# ------------------------------------------------------------------- duplicate keys; the lock's hint
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

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
                derandomize=True)
CELL_ID = "rda_lam0.05"


def good_cell(lam=0.05):
    return {"id": f"rda_lam{lam:g}", "kind": "rda", "lam": lam, "threshold": 10.0, "precision": 0.8, "recall": 1.0,
            "f1": 0.889, "auroc": 0.99, "n_flagged": 6, "n_stuck": 5, "flagged_columns": [1, 2, 3, 4, 5, 6],
            "stuck_columns": [1, 2, 3, 4, 5], "n_iter": 2,
            "history": [{"iteration": 1, "objective": 1.0, "c1": 0.1, "c2": 0.2}], "seconds": 1.0}


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory, mnist_dir):
    """A features run folder written without training: config.yaml, a marked manifest, three cells."""
    root = tmp_path_factory.mktemp("fuzz_runs")
    cfg = root / "c.yaml"
    cfg.write_text(yaml.safe_dump(tiny_features(mnist_dir)))
    config = load_config(cfg, features_module.SCHEMA, (), features_module.post_check)
    run = RunDir(root / "run", "features", config, check_cell=features_module.check_cell)
    run.cells_dir.mkdir(parents=True)
    atomic_write_text(run.path / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_text(run.path / "manifest.json", json.dumps({MARKER_KEY: 1, FINGERPRINT_KEY: run.fingerprint,
                                                              "experiment": "features", "sessions": []}))
    for lam in (0.01, 0.05, 0.2):
        run.write_cell(f"rda_lam{lam:g}", good_cell(lam))
    return cfg, config, run


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10 ** 20, 10 ** 20) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)
keys = st.sampled_from(sorted(good_cell()) + ["id", FINGERPRINT_KEY, "extra"])
literals = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "-1e999", "1" * 5000, "7.5", "-3", "null",
                            "[]", '"0.5"', "true"])


@st.composite
def cell_files(draw, fingerprint):
    """The bytes of a cell file: a valid cell, edited (keys dropped or retyped, raw literals, nesting, junk)."""
    cell = dict(good_cell(), **{FINGERPRINT_KEY: fingerprint})
    for key, drop in draw(st.lists(st.tuples(keys, st.booleans()), max_size=3)):
        if drop:
            cell.pop(key, None)
        else:
            cell[key] = draw(json_values)
    text = json.dumps(cell)
    if draw(st.integers(0, 3)) == 0:  # a raw literal JSON itself allows (NaN...) or a huge number, in a key's place
        key = draw(st.sampled_from(["f1", "threshold", "n_flagged", "auroc", "lam"]))
        text = text.replace(f'"{key}": ', f'"{key}": {draw(literals)}, "_was": ', 1)
    shape = draw(st.sampled_from(["as is"] * 6 + ["nested", "truncated", "not utf-8", "empty", "list"]))
    if shape == "nested":
        depth = draw(st.sampled_from([50, 5000, 100_000]))
        text = '{"id": "%s", "x": %s%s}' % (CELL_ID, "[" * depth, "]" * depth)
    elif shape == "truncated":
        text = text[: draw(st.integers(0, len(text) - 1))]
    elif shape == "empty":
        text = ""
    elif shape == "list":
        text = json.dumps([cell])
    data = text.encode()
    return data + b"\xff\xfe" if shape == "not utf-8" else data


@settings(max_examples=160, **SETTINGS)
@given(data=st.data())
def test_generated_cells_are_valid_or_set_aside_and_valid_ones_summarise(synthetic_run, tmp_path, monkeypatch, data):
    import rda_cli.experiments.figures.features as figures

    monkeypatch.setattr(figures, "features_figures", lambda run_dir, cells: [])  # the summary, not the drawing
    _, config, run = synthetic_run
    blob = data.draw(cell_files(run.fingerprint))
    f = run.cells_dir / f"{CELL_ID}.json"
    original = f.read_bytes()
    try:
        f.write_bytes(blob)
        cell, problem = run._read(CELL_ID)
        if problem is None:
            problem = run.cell_problem(CELL_ID, cell, {"id": CELL_ID, "kind": "rda", "lam": 0.05})
        assert problem is None or (isinstance(problem, str) and len(problem) < 400), problem
        if problem is None:  # accepted: the summary must be written from it without an error
            scratch = RunDir(tmp_path / "summary", "features", config)
            scratch.path.mkdir(exist_ok=True)
            cells = [c for c in run.read_cells() if c["id"] != CELL_ID] + [dict(cell)]
            cells[-1].pop(FINGERPRINT_KEY, None)
            features_module.summarize(scratch, cells)
            assert json.loads((scratch.path / "summary.json").read_text())["cells_done"] == 3
    finally:
        f.write_bytes(original)


# ------------------------------------------------------------------------------------------- YAML configs
scalars = st.one_of(st.integers(-5, 10 ** 6), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                    st.none(), st.text(max_size=8), st.lists(st.integers(0, 5), max_size=3))


@st.composite
def yaml_configs(draw, mnist_dir):
    """``(bytes, has_alias, has_duplicate, encoding)`` of a config: mostly the tiny one, edited."""
    cfg = tiny_features(mnist_dir)
    for key in draw(st.lists(st.sampled_from(["seed", "examples", "run_name", "model", "bogus"]), max_size=2)):
        cfg[key] = draw(scalars)
    text = yaml.safe_dump(cfg, sort_keys=False)
    has_alias = draw(st.integers(0, 3)) == 0
    if has_alias:
        text += draw(st.sampled_from(["base: &b [1, 2]\nseed: *b\n", "model: &m {lambdas: [0.1]}\nother: *m\n",
                                      "x: &a 1\n", "a0: &a0 [lol, lol]\na1: [*a0, *a0]\n"]))
    has_duplicate = draw(st.integers(0, 3)) == 0 and not has_alias
    if has_duplicate:
        text += draw(st.sampled_from(["seed: 1\nseed: 2\n", "examples: 2\n", "run_name: again\n"]))
    encoding = draw(st.sampled_from(["utf-8"] * 5 + ["utf-8-sig", "utf-16", "latin-1"]))
    if encoding == "latin-1":
        text += "note: caf\xe9\n"
    return text.encode(encoding), has_alias, has_duplicate, encoding


@settings(max_examples=120, **SETTINGS)
@given(data=st.data())
def test_generated_yaml_configs_load_or_are_refused_in_one_line(tmp_path, mnist_dir, data):
    blob, has_alias, has_duplicate, encoding = data.draw(yaml_configs(mnist_dir))
    path = tmp_path / "c.yaml"
    path.write_bytes(blob)
    try:
        config = load_config(path, features_module.SCHEMA, (), features_module.post_check)
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message.strip() and len(message) < 500, message
        if encoding in ("utf-16", "latin-1"):
            assert "UTF-8" in message
        elif has_alias:
            assert "aliases" in message
        return
    assert not has_alias and encoding in ("utf-8", "utf-8-sig")
    assert isinstance(config, dict) and config["run_name"]
    if has_duplicate:
        pytest.fail("a duplicate key was accepted")


# ------------------------------------------------------------------------------------------- output folders
def entries(fingerprint):
    dead_lock = json.dumps({"pid": 999_999_999, "host": socket.gethostname(), "start": "t"})
    marked = json.dumps({MARKER_KEY: 1, "experiment": "features", "sessions": []})
    legacy = json.dumps({"experiment": "features", "sessions": []})
    return {
        "user summary": ("summary.md", "mine"), "user csv": ("metrics.csv", "a,b\n"),
        "empty lock": (".lock", ""), "rda lock": (".lock", dead_lock), "user lock": (".lock", "mine"),
        "empty manifest": ("manifest.json", "{}"), "marked manifest": ("manifest.json", marked),
        "legacy manifest": ("manifest.json", legacy), "user config": ("config.yaml", "a: 1\n"),
        "our cell": ("cells/rda_lam0.05.json", json.dumps(dict(good_cell(), **{FINGERPRINT_KEY: fingerprint}))),
        "other cell": ("cells/rda_lam0.2.json", json.dumps(dict(good_cell(0.2), **{FINGERPRINT_KEY: "0" * 16}))),
        "debris": (".manifest.json.x1y2z3.tmp", "{"),
    }


@settings(max_examples=70, **SETTINGS)
@given(data=st.data())
def test_generated_out_folders_are_refused_unless_an_rda_run(synthetic_run, tmp_path_factory, data):
    _, config, run = synthetic_run
    table = entries(run.fingerprint)
    chosen = data.draw(st.lists(st.sampled_from(sorted(table)), max_size=4, unique_by=lambda k: table[k][0]))
    folder = tmp_path_factory.mktemp("out")
    for name in chosen:
        rel, text = table[name]
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    before = snapshot(folder)
    names = set(chosen)
    ours = names & {"marked manifest"} or ({"legacy manifest", "user config"} <= names)
    recoverable = "our cell" in names and "other cell" not in names and not ours and not (
        names & {"legacy manifest"} and "user config" in names)
    only_debris = names <= {"rda lock", "debris"}
    try:
        RunDir(folder, "features", config, check_cell=features_module.check_cell).check_usable()
        accepted = True
    except RunDirError as exc:
        accepted = False
        assert len(str(exc)) < 600
    assert snapshot(folder) == before
    assert accepted == bool(ours or recoverable or only_debris), (chosen, accepted)


# ------------------------------------------------------------------------------------------- end to end
def run_cli(*args):
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exception is None or isinstance(res.exception, SystemExit), (args, repr(res.exception))
    assert "Traceback" not in res.output
    return res


@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_generated_bad_configs_end_to_end(tmp_path_factory, mnist_dir, data):
    blob, has_alias, has_duplicate, encoding = data.draw(yaml_configs(mnist_dir).filter(
        lambda c: c[1] or c[2] or c[3] in ("utf-16", "latin-1")))
    tmp = tmp_path_factory.mktemp("bad_config")
    (tmp / "c.yaml").write_bytes(blob)
    res = run_cli("features", "--config", tmp / "c.yaml", "--out", tmp / "out", "--quiet")
    assert res.exit_code == 2, res.output
    assert len([ln for ln in res.output.splitlines() if ln.startswith("rda: error:")]) == 1, res.output
    assert not (tmp / "out").exists()


@settings(max_examples=6, **SETTINGS)
@given(data=st.data())
def test_generated_cells_end_to_end_with_plot(synthetic_run, data):
    _, _, run = synthetic_run
    f = run.cells_dir / f"{CELL_ID}.json"
    original = f.read_bytes()
    blob = data.draw(cell_files(run.fingerprint))
    try:
        f.write_bytes(blob)
        before = snapshot(run.cells_dir)
        res = run_cli("plot", run.path)
        assert res.exit_code == 0, res.output
        assert snapshot(run.cells_dir) == before  # plot changes no cell
    finally:
        f.write_bytes(original)


def test_experiment_out_must_be_new_empty_or_a_run(tmp_path, mnist_dir):
    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "table.csv").write_text("a,b\n1,2\n")
    before = snapshot(proj)
    line = one_error_line(invoke("features", "--config", cfg, "--out", proj, "--quiet"))
    assert "no rda run wrote" in line
    assert snapshot(proj) == before


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


def test_experiment_write_fault_is_one_line(tmp_path, mnist_dir, monkeypatch):
    import rda_cli.experiments.rundir as rundir

    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    monkeypatch.setattr(rundir, "write_npz", enospc)
    line = one_error_line(invoke("features", "--config", cfg, "--out", tmp_path / "run", "--quiet"), code=1)
    assert "No space left on device" in line
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------- run_name
@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "..", "."])
def test_run_name_must_be_a_plain_name(tmp_path, mnist_dir, monkeypatch, name):
    monkeypatch.chdir(tmp_path)
    cfg = write_config(tmp_path, tiny_features(mnist_dir))
    line = one_error_line(invoke("features", "--config", cfg, "--set", f"run_name={name}", "--quiet"))
    assert "run_name" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]


# ------------------------------------------------------------------------------- concurrent runs
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
