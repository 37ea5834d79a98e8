"""Process-wide settings of the ``rda`` command, applied by its entry point only.

Importing :mod:`rda_cli` as a library changes nothing global: no environment variable, no file
descriptor, no umask, no matplotlib backend. The command line (``rda_cli.cli.main``) and the
workers it spawns call :func:`setup_process` first thing; a program that wants the same quiet
start can call it too.
"""

from __future__ import annotations

import contextlib
import os
import sys

__all__ = ["setup_process", "quiet_native_stderr"]

_QUIET = False  # set by setup_process: autoencoder.py then imports TensorFlow with fd 2 silenced


def setup_process():
    """Quiet TensorFlow's start-up chatter and draw figures off-screen, for this process.

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` and ``MPLBACKEND=Agg`` unless the user set them (spawned
    workers inherit both), and makes the first import of TensorFlow run with the native stderr
    silenced (see :func:`quiet_native_stderr`). Idempotent.
    """
    global _QUIET
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MPLBACKEND", "Agg")
    if "matplotlib" in sys.modules:  # imported already: the variable comes too late
        sys.modules["matplotlib"].use(os.environ["MPLBACKEND"])
    _QUIET = True


@contextlib.contextmanager
def quiet_native_stderr():
    """Silence what TensorFlow's C++ side prints while it starts (before its log level applies).

    Only after :func:`setup_process` and when ``TF_CPP_MIN_LOG_LEVEL`` asks for quiet (>= 1);
    Python exceptions still surface, since the stream is restored before they propagate.
    """
    if not _QUIET or os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") in ("0", ""):
        yield
        return
    try:
        saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover - no usable stderr descriptor
        yield
        return
    os.dup2(null, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)
