"""Run folders in use (``rda_cli/experiments/rundir.py``): two runs starting on one folder at once.

The runs are forked processes (the lock holds a PID) meeting at barriers placed where the races are
(between looking for the folder and making it; between reading a dead run's lock and removing it),
so each round plays the race the same way; no sleeps.
"""

import errno
import json
import multiprocessing
import os

import pytest

from rda_cli.experiments.rundir import RunDir, RunDirError

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
