"""One error type the command line trusts: RdaError lines (exit 2), faults (exit 1), bugs (exit 1, one line)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rda_cli.cli import main
from rda_cli.errors import DetectError, RdaError

from synthetic import with_outlier_rows

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--set", "outer_iterations=2", "--set", "inner_epochs=1", "--lam", "0.01", "--quiet"]


def data_file(tmp_path):
    X, _ = with_outlier_rows(n=40, d=5, fraction=0.05, seed=0)
    np.save(tmp_path / "t.npy", X)
    return tmp_path / "t.npy"


def test_every_error_class_is_an_rda_error_and_a_value_error():
    from rda_cli.data import DataError
    from rda_cli.data.adbench import AdbenchError
    from rda_cli.experiments.config import ConfigError
    from rda_cli.experiments.rundir import RunDirError
    from rda_cli.persistence import ModelFileError
    from rda_cli.tabular import TableError

    for cls in (ConfigError, RunDirError, DataError, AdbenchError, TableError, DetectError, ModelFileError):
        assert issubclass(cls, RdaError) and issubclass(cls, ValueError), cls


def test_a_bug_mid_run_is_one_line_exit_1_and_leaves_nothing(tmp_path, monkeypatch):
    import rda_cli.solver

    def broken(*args, **kwargs):
        raise ZeroDivisionError("float division by zero")

    monkeypatch.setattr(rda_cli.solver, "record", broken)  # raised inside the fit, after training began
    monkeypatch.delenv("RDA_DEBUG", raising=False)
    data, out = data_file(tmp_path), tmp_path / "run"
    res = CliRunner().invoke(main, ["detect", "--data", str(data), "--out", str(out), *FAST])
    assert res.exit_code == 1, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output, res.output
    assert lines[0].startswith("rda: error: a bug in rda: ZeroDivisionError: float division by zero")
    assert "RDA_DEBUG=1" in lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.npy"]  # no result, no temporary folder


def test_rda_debug_shows_the_traceback(tmp_path):
    data = data_file(tmp_path)
    program = ("import rda_cli.solver as s\n"
               "def broken(*a, **k):\n    raise ZeroDivisionError('float division by zero')\n"
               "s.record = broken\n"
               "from rda_cli.cli import main\nmain()\n")
    args = ["detect", "--data", str(data), "--out", str(tmp_path / "run"), *FAST]
    env = dict(os.environ, PYTHONPATH=str(ROOT), RDA_DEBUG="1")
    res = subprocess.run([sys.executable, "-c", program, *args], capture_output=True, text=True, env=env, cwd=tmp_path,
                         timeout=300)
    assert res.returncode == 1, res.stderr
    assert "Traceback (most recent call last)" in res.stderr and "ZeroDivisionError" in res.stderr
    assert "a bug in rda" not in res.stderr
    assert not (tmp_path / "run").exists()


def test_request_errors_stay_exit_2(tmp_path, monkeypatch):
    """An RdaError is the user's: exit 2, one line; scikit-learn's parameter check through --set too."""
    monkeypatch.delenv("RDA_DEBUG", raising=False)
    data = data_file(tmp_path)
    res = CliRunner().invoke(main, ["detect", "--data", str(data), "--out", str(tmp_path / "run"), "--quiet",
                                    "--set", "reinitialize=sometimes"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("rda: error: invalid setting:") and "reinitialize" in lines[0]
    res = CliRunner().invoke(main, ["score", "--model", str(tmp_path), "--data", str(data)])
    assert res.exit_code == 2 and "not a model folder" in res.output


def test_a_bug_outside_the_guarded_call_is_one_line_too(tmp_path, monkeypatch):
    """Every command runs inside the group's handler: a bug in a command's own code is one line."""
    import rda_cli.experiments.runner as runner

    def broken(*args, **kwargs):
        raise KeyError("cells")

    monkeypatch.setattr(runner, "replot", broken)
    monkeypatch.delenv("RDA_DEBUG", raising=False)
    (tmp_path / "config.yaml").write_text("run_name: x\n")
    res = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert res.exit_code == 1 and "a bug in rda: KeyError" in res.output and "Traceback" not in res.output
    monkeypatch.setenv("RDA_DEBUG", "1")
    res = CliRunner().invoke(main, ["plot", str(tmp_path)])
    assert res.exit_code == 1 and isinstance(res.exception, KeyError)  # raised, traceback and all


def test_a_pending_interrupt_cannot_replace_the_interrupted_exit(monkeypatch, capsys):
    """A KeyboardInterrupt raised while the interrupted line is printed or the process exits (pyarrow
    re-sends the signal that cancelled a read) still ends in one line and status 130, not death by SIGINT."""
    import signal

    import click
    import pytest

    from rda_cli import cli

    calls = []
    real_echo = click.echo

    def echo(*args, **kwargs):
        calls.append(args)
        if len(calls) == 1:
            raise KeyboardInterrupt  # arrives before the line is written
        real_echo(*args, **kwargs)

    monkeypatch.setattr(click, "echo", echo)
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        with pytest.raises(SystemExit) as exc:
            cli.fail_interrupted("interrupted; nothing was written", 130)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert exc.value.code == 130
    err = capsys.readouterr().err
    assert err.splitlines() == ["rda: error: interrupted; nothing was written"]
