"""The one base of every error that ``rda`` reports as a single line.

:class:`RdaError` marks a problem with what was asked (a flag, a config key, a data file, an
output location, a model folder) whose message is one line, written for the user. The command
line turns exactly these into ``rda: error: ...`` lines; anything else that escapes is a bug in
``rda`` and is reported as one (see :mod:`rda_cli.cli`).

Every ``RdaError`` is also a :class:`ValueError`, as the error classes of earlier versions were,
so library code that catches ``ValueError`` keeps working. This module imports nothing, so that
any module may import it.
"""

__all__ = ["RdaError", "DetectError", "DataError"]


class RdaError(ValueError):
    """A problem with the request, described in one line (base of every ``rda`` error class)."""


class DetectError(RdaError):
    """A problem with an ``rda detect`` / ``rda score`` request: options, output location, model folder."""


class DataError(RdaError):
    """A problem with a data file (MNIST, ADBench, a table); the message is made one line."""

    def __init__(self, message):
        super().__init__(" ".join(str(message).split()))
