"""Importing rda_cli as a library changes nothing global (environment, descriptors, umask)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = textwrap.dedent("""
    import json, os, sys

    def snapshot():
        fds = {}
        for fd in sorted(os.listdir("/proc/self/fd")):
            try:
                fds[fd] = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                pass
        st = os.fstat(2)
        mask = os.umask(0o022)
        os.umask(mask)
        return {"env": dict(os.environ), "fds": fds, "stderr": [st.st_dev, st.st_ino], "umask": mask}

    import importlib
    # third-party libraries set variables of their own (scikit-learn's KMP_*, TensorFlow's): imported
    # before the first snapshot, so that only what rda_cli itself does is compared
    deps, ours = sys.argv[1].split(","), sys.argv[2:]
    for name in filter(None, deps):
        importlib.import_module(name)
    before = snapshot()
    for name in ours:
        importlib.import_module(name)
    after = snapshot()
    # the listing of /proc/self/fd opens one descriptor of its own: compare the stable ones
    for snap in (before, after):
        snap["fds"] = {k: v for k, v in snap["fds"].items() if not v.startswith("/proc/")}
    print(json.dumps({"before": before, "after": after}))
""")


DEPS = "numpy,scipy,sklearn,yaml,click"


@pytest.mark.parametrize("deps, modules", [
    ("", ["rda_cli"]),
    (DEPS, ["rda_cli.estimator"]),
    (DEPS, ["rda_cli.experiments.runner", "rda_cli.experiments.outliers"]),
    (DEPS + ",matplotlib.pyplot,tensorflow,keras", ["rda_cli.experiments.figures", "rda_cli.stacked"]),
])
def test_import_changes_nothing_global(deps, modules):
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", PROBE, deps, *modules], capture_output=True, text=True, env=env,
                         cwd=ROOT, timeout=300, check=True)
    snap = json.loads(out.stdout.strip().splitlines()[-1])
    before, after = snap["before"], snap["after"]
    assert after["env"] == before["env"]
    assert after["umask"] == before["umask"]
    assert after["stderr"] == before["stderr"]
    # descriptors the import left open to files other than libraries/sockets it may keep (none expected
    # for these modules): every descriptor open before still points where it did
    for fd, target in before["fds"].items():
        assert after["fds"].get(fd) == target


def test_setup_process_is_what_the_command_applies():
    probe = ("import os; from rda_cli._process import setup_process; setup_process(); "
             "print(os.environ['TF_CPP_MIN_LOG_LEVEL'], os.environ['MPLBACKEND'])")
    env = {k: v for k, v in __import__("os").environ.items()
           if k not in ("TF_CPP_MIN_LOG_LEVEL", "MPLBACKEND")}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=ROOT,
                         timeout=120, check=True)
    assert out.stdout.split() == ["2", "Agg"]
