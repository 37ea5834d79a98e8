"""Progress inside a fit, for whoever is listening (the command line's progress bar).

:func:`~rda_cli.solver.alternate` calls :func:`outer_iteration` after each
outer iteration. By default nobody listens and the call costs nothing; :func:`listening` installs
a listener for the current thread or task only (a context variable), so importing or using the
library changes nothing global.
"""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ["listening", "outer_iteration"]

_LISTENER = contextvars.ContextVar("rda_progress_listener", default=None)


def outer_iteration(done, total):
    """Tell the listener (if any) that ``done`` of ``total`` outer iterations of a fit are finished."""
    listener = _LISTENER.get()
    if listener is not None:
        listener(done, total)


@contextlib.contextmanager
def listening(listener):
    """Within the block, ``listener(done, total)`` is called after each outer iteration of every fit."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)
