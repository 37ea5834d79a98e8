"""The contract between the runner and an experiment, written down.

An experiment is a module (``outliers``, ``denoise``, ``features``, ...) that the runner finds by
name in :data:`rda_cli.experiments.runner.EXPERIMENTS` and uses only through :class:`Experiment`.
A run is a list of *cells* (small dicts with a unique ``"id"``); each is computed independently,
possibly in another process, and written to the run folder as soon as it is finished.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..arrayfile import NpzArrays

__all__ = ["Experiment", "FinishedCells"]


class FinishedCells:
    """Read access to the arrays of cells already finished in this run (e.g. the state a warm-started
    cell continues from). Picklable: it travels with the task to a worker."""

    def __init__(self, cells_dir):
        self.cells_dir = str(cells_dir)

    def arrays(self, cell_id):
        """The arrays cell ``cell_id`` saved (a dict of numpy arrays), or None if it has none on disk."""
        path = Path(self.cells_dir) / f"{cell_id}.npz"
        if not path.exists():
            return None
        with NpzArrays(path) as z:  # declared sizes checked before anything is inflated; no pickles
            return {k: z.load(k) for k in z.names}


@runtime_checkable
class Experiment(Protocol):
    """What the runner expects of an experiment module.

    Required: ``SCHEMA`` (the config schema, see :mod:`.config`), ``COLUMNS`` (the ``metrics.csv``
    columns), and the functions below. Optional: ``preflight(config)`` -- check the config against
    the data before any folder is made (raise ConfigError) -- and ``check_cell(cell) -> str | None`` --
    the experiment's validation of a finished cell read back from disk (None: valid).
    """

    SCHEMA: dict
    COLUMNS: list

    def post_check(self, config: dict) -> None:
        """Cross-key checks of a validated config (raise ConfigError)."""

    def list_cells(self, config: dict) -> list:
        """The cells of a run, each a dict with a unique ``"id"``."""

    def compute_cell(self, config: dict, cell: dict, finished: FinishedCells) -> tuple[dict, dict | None]:
        """Compute one cell: ``(result dict, JSON-safe; small arrays for the figures or None)``."""

    def summarize(self, run: Any, cells: list) -> list:
        """Write ``metrics.csv``, summaries and figures from the finished cells; return the figure paths."""

    def one_line_summary(self, run: Any, cells: list) -> str:
        """The headline printed at the end of a run."""
