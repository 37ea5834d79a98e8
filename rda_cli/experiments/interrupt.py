"""Interrupting a run: SIGTERM handled as SIGINT is, and the one line that says what was kept.

``rda``'s sweeps stop the same way whether the user presses Ctrl-C (SIGINT) or a scheduler or
``kill`` sends SIGTERM: the cells in flight are abandoned (pool workers are stopped), the finished
cells stay on disk, the lock is released, a run folder this call created and no cell finished in
is removed, and the command exits with one line and status 130 (SIGINT) or 143 (SIGTERM, 128 + 15).
"""

from __future__ import annotations

import contextlib
import signal
import threading

__all__ = ["Interrupted", "Terminated", "sigterm_as_interrupt", "EXIT_SIGINT", "EXIT_SIGTERM"]

EXIT_SIGINT = 130  # 128 + SIGINT
EXIT_SIGTERM = 143  # 128 + SIGTERM


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived (raised by the handler :func:`sigterm_as_interrupt` installs)."""


class Interrupted(KeyboardInterrupt):
    """A run stopped by SIGINT or SIGTERM after cleaning up: ``message`` says what was kept, ``exit_code``
    is the status to exit with."""

    def __init__(self, message, exit_code=EXIT_SIGINT):
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread, once:
    a second SIGTERM during the cleanup that follows is ignored (SIGKILL still ends the process).

    Changes nothing when called outside the main thread or when SIGTERM already has a handler other than
    the default (the program's own choice is kept); the previous handler is restored on exit.
    """
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
