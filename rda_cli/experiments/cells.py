"""Reading a run folder's finished cells back: strict JSON, validation, invalid cells set aside.

Every cell read back is validated (a JSON object whose ``id`` is its file name, whose descriptor
matches the cell the config lists, that carries the run's config fingerprint and the keys its
experiment requires, with their types and ranges; finite numbers only, no ``NaN``/``Infinity``
literals, nesting within Python's limit); an invalid one is moved to ``cells/invalid/``, named in a
warning, and computed again. :func:`read_json` is the strict reader of every JSON file of a run
folder (cells, manifest, lock).
"""

from __future__ import annotations

import datetime as _dt
import os

from ..safeio import make_dirs, rename_noreplace
from ..safeio import read_json as _read_json
from .config import ConfigError, quote

FINGERPRINT_KEY = "config_fingerprint"
CELL_MAX_BYTES = 4 << 20  # 4 MiB (our largest cells are ~20 KB)


def read_json(path, limit, what="file"):
    """``(value, problem)`` for the JSON file ``path`` read within ``limit`` bytes by
    :func:`rda_cli.safeio.read_json` (the one JSON reader) with finite numbers only; ``value`` is None when
    ``problem`` (one line, without the path) says why it cannot be used: ``"missing"``, not a regular
    file, too large, not UTF-8, not JSON, ``NaN``/``Infinity`` or a number that overflows a float
    (``1e999``), a key twice in one object, nesting too deep."""
    try:
        return _read_json(path, limit, "", ConfigError, finite=True), None
    except ConfigError as exc:
        problem = str(exc).removeprefix(str(path)).removeprefix(":").strip()
        return None, "missing" if problem == "does not exist" else problem


class CellFiles:
    """The finished cells of a run folder (``cells/<id>.json``) read back and validated; a base of
    :class:`~.rundir.RunDir`, whose ``cells_dir``, ``invalid_dir``, ``fingerprint``, ``check_cell``,
    ``warn`` and ``stamps_fingerprints`` it uses."""

    def cell_problem(self, name, cell, listed=None):
        """Why the cell read from ``cells/<name>.json`` is invalid, or None. ``listed``: the cell as the
        config lists it (its descriptor keys must match)."""
        if not isinstance(cell, dict):
            return f"not a JSON object ({type(cell).__name__})"
        if cell.get("id") != name:
            return f"its id is {quote(cell.get('id'))}, not the file name {name!r}"
        fp = cell.get(FINGERPRINT_KEY)
        if fp is None and self.stamps_fingerprints():
            return f"it carries no {FINGERPRINT_KEY}, which every cell of this run folder has"
        if fp is not None and fp != self.fingerprint:
            return f"written with another config (fingerprint {quote(fp)}, this run's is {self.fingerprint!r})"
        for key, value in (listed or {}).items():
            if key == "warm_from" or key not in cell:  # required keys are the experiment's check_cell's business
                continue
            if cell[key] != value and not (cell[key] is None and value is None):
                return f"key {key!r} is {quote(cell[key])}, the config lists {quote(value)}"
        if self.check_cell is not None:
            return self.check_cell(cell)
        return None

    def _read(self, name):
        """``(cell, problem)`` for ``cells/<name>.json``; cell is None when the file is unreadable."""
        return read_json(self.cells_dir / f"{name}.json", CELL_MAX_BYTES, "cell")

    def set_aside(self, name, problem):
        """Move ``cells/<name>.json`` (and its ``.npz``) to ``cells/invalid/``, never overwriting, and warn."""
        make_dirs(self.invalid_dir)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for suffix in (".json", ".npz"):
            src = self.cells_dir / f"{name}{suffix}"
            n = 0
            while os.path.lexists(src):
                dst = self.invalid_dir / (f"{name}{suffix}" if n == 0 else f"{name}.{stamp}-{n}{suffix}")
                try:
                    rename_noreplace(src, dst)
                except FileExistsError:
                    n += 1
        self.warn(f"cell {name} in {self.cells_dir} is invalid ({problem}); moved to {self.invalid_dir} "
                  "and computed again")

    def has_cell(self, cell_id, listed=None):
        """Whether a valid finished cell ``cell_id`` is on disk; an invalid one is set aside (False)."""
        if not os.path.lexists(self.cells_dir / f"{cell_id}.json"):
            return False
        cell, problem = self._read(cell_id)
        if problem is None:
            problem = self.cell_problem(cell_id, cell, listed)
        if problem is None:
            return True
        self.set_aside(cell_id, problem)
        return False

    def read_cells(self, invalid=None):
        """The valid cells on disk (sorted by file name). ``invalid``: a list that receives
        ``(name, problem)`` for each invalid cell, which is skipped (not moved)."""
        cells = []
        for f in sorted(self.cells_dir.glob("*.json")):
            cell, problem = self._read(f.stem)
            if problem is None:
                problem = self.cell_problem(f.stem, cell)
            if problem is None:
                cell.pop(FINGERPRINT_KEY, None)
                cells.append(cell)
            elif invalid is not None:
                invalid.append((f.stem, problem))
        return cells
