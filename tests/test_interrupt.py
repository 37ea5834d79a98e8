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
