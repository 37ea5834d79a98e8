"""Signals: a run killed mid-way loses at most the cell in progress, and a rerun finishes the job.

- A sweep killed (SIGKILL) at random moments resumes to the uninterrupted run's numbers.
- SIGTERM / SIGINT of ``rda detect`` / ``rda score``: one line, exit 143 / 130, no ``.tmp`` and no
  folder left; SIGKILL at seeded random moments, then a rerun works.
"""

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from synthetic import ENV, invoke, table, without_timings


def config(mnist_dir):
    return {
        "run_name": "kill",
        "data": {"path": str(mnist_dir), "n_images": 300},
        "corruption": {"k": [50, 150]},
        "model": {"layers": [784, 32, 8], "lambdas": [1.0, 10.0], "outer_iterations": 3, "inner_epochs": 2,
                  "batch_size": 64},
        "forest": {"n_estimators": 5},
        "examples": 2,
    }


def rda(*args, **kw):
    cmd = [sys.executable, "-c", "from rda_cli.cli import main; main()", *args]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def metrics(run_dir):
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


def test_killed_run_resumes_to_the_same_numbers(tmp_path, mnist_dir):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(config(mnist_dir)))
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert rda("denoise", "--config", str(cfg), "--out", str(whole), "--quiet").wait(timeout=600) == 0

    proc = rda("denoise", "--config", str(cfg), "--out", str(killed), "--quiet")
    deadline = time.time() + 300
    while time.time() < deadline and len(list((killed / "cells").glob("*.json"))) < 2:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = len(list((killed / "cells").glob("*.json")))
    assert 2 <= done < 6, done  # killed with cells finished and cells left
    for f in (killed / "cells").glob("*.json"):  # a kill may leave a temp file, never a torn cell
        json.loads(f.read_text())

    resumed = rda("denoise", "--config", str(cfg), "--out", str(killed), "--quiet")
    out, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err
    assert f"{6 - done} computed, {done} read back" in out
    assert metrics(killed) == metrics(whole)


def _features_config(mnist_dir):
    return {
        "run_name": "kill",
        "data": {"path": str(mnist_dir), "n_images": 200},
        "corruption": {"n_pixels": 5, "fraction": 0.5},
        "model": {"layers": [784, 16, 4], "lambdas": [0.01, 0.02, 0.05, 0.2], "outer_iterations": 2,
                  "inner_epochs": 1, "batch_size": 64},
        "examples": 2,
    }


def test_sigkill_at_ten_random_moments(tmp_path, mnist_dir):
    """SIGKILL a small sweep at 10 random moments (start-up, training, between and inside cell writes);
    each re-run finishes with the uninterrupted run's summary and metrics."""
    import random

    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(_features_config(mnist_dir)))
    whole = tmp_path / "whole"
    t0 = time.time()
    assert rda("features", "--config", str(cfg), "--out", str(whole), "--quiet").wait(timeout=600) == 0
    duration = time.time() - t0
    expected = without_timings(json.loads((whole / "summary.json").read_text()))
    rng = random.Random(12345)
    for k in range(10):
        run = tmp_path / f"killed{k}"
        proc = rda("features", "--config", str(cfg), "--out", str(run), "--quiet")
        if k % 2:  # wait for a cell file to appear, then kill a random instant later (around the next write)
            deadline = time.time() + 300
            while time.time() < deadline and not list((run / "cells").glob("*.json")) and proc.poll() is None:
                time.sleep(0.01)
            time.sleep(rng.uniform(0, duration / 4))
        else:  # anywhere in the run, start-up included
            time.sleep(rng.uniform(0, duration))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        resumed = rda("features", "--config", str(cfg), "--out", str(run), "--quiet")
        out, err = resumed.communicate(timeout=600)
        assert resumed.returncode == 0, (k, err)
        assert "Traceback" not in err
        assert without_timings(json.loads((run / "summary.json").read_text())) == expected, k
        assert metrics(run) == metrics(whole), k
        assert not (run / ".lock").exists()

FAST = ["--set", "outer_iterations=1", "--set", "inner_epochs=1", "--lam", "0.01", "--quiet"]


# ------------------------------------------------------------------------------- signals
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
