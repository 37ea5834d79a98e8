"""Progress inside a fit, for whoever is listening (the command line's progress bar).

:func:`~rda_cli.solver.alternate` calls :func:`outer_iteration` after each
outer iteration. By default nobody listens and the call costs nothing; :func:`listening` installs
a listener for the current thread or task only (a context variable), so importing or using the
library changes nothing global.
"""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ["Phases", "listening", "outer_iteration"]

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


class Phases:
    """A listener that turns the outer-iteration reports of a known sequence of fits (``labels``, one per
    fit, e.g. each member's pilot and RDA) into one progress: ``report(k, len(labels), labels[k], (done,
    total))`` for fit ``k``. A fit is known to have started when the count of outer iterations does not
    grow (a fit that stops early is then counted as done)."""

    def __init__(self, report, labels):
        self.report, self.labels = report, list(labels)
        self.k, self.last = -1, None

    def __call__(self, done, total):
        if self.last is None or done <= self.last:
            self.k = min(self.k + 1, len(self.labels) - 1)
        self.last = done
        self.report(self.k, len(self.labels), self.labels[self.k], (done, total))
