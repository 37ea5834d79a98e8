"""A run killed mid-way loses at most the cell in progress; resuming gives the uninterrupted numbers."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import yaml


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


def _without_timings(obj):
    if isinstance(obj, dict):
        return {k: _without_timings(v) for k, v in obj.items() if "seconds" not in k}
    if isinstance(obj, list):
        return [_without_timings(v) for v in obj]
    return obj


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
    expected = _without_timings(json.loads((whole / "summary.json").read_text()))
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
        assert _without_timings(json.loads((run / "summary.json").read_text())) == expected, k
        assert metrics(run) == metrics(whole), k
        assert not (run / ".lock").exists()
