"""A run folder: resolved config, manifest, one small file per finished cell, resume.

Layout of ``results/<experiment>/<run-name>/``::

    config.yaml      the resolved config (after overrides)
    manifest.json    versions, seed, git commit, host, start/end times of each session
    cells/<id>.json  one finished cell (written atomically: temp file + rename)
    cells/<id>.npz   small arrays of that cell for the figures (optional)
    cells/invalid/   cells that failed validation when read back (kept, never deleted)
    metrics.csv      all finished cells, one row each
    .lock            while a run is writing: the owner's PID and host

A cell's JSON file is written last, so its presence means the cell is complete: re-running on
the same folder reads it back instead of recomputing. Every cell read back is validated (a JSON
object whose ``id`` is its file name, whose descriptor matches the cell the config lists, that
carries the run's config fingerprint and the keys its experiment requires, with their types); an
invalid one is moved to ``cells/invalid/``, named in a warning, and computed again. A folder
written with another config is refused, and so is a folder another live process is running in.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from .config import ConfigError, dump_config

__all__ = ["RunDir", "RunDirError", "atomic_write_bytes", "atomic_write_text", "config_fingerprint",
           "is_run_dir"]

FINGERPRINT_KEY = "config_fingerprint"
IDENTITY_KEYS_IGNORED = ("run_name",)


class RunDirError(ConfigError):
    """The run folder cannot be used (another config, another experiment, in use, not a run folder)."""


def _umask():
    """The process umask, read when a file is written (not at import: importing changes nothing)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give it the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str):
    atomic_write_bytes(path, text.encode())


def _now():
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _first_difference(a, b, path=""):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in list(a) + [k for k in b if k not in a]:
            d = _first_difference(a.get(key), b.get(key), f"{path}.{key}" if path else key)
            if d:
                return d
        return None
    return None if a == b else (path or "<root>", a, b)


def _versions():
    from .. import autoencoder  # noqa: F401  (imports TensorFlow, quietly under the rda command)

    out = {"python": platform.python_version()}
    for name in ("numpy", "sklearn", "tensorflow", "keras", "matplotlib"):
        module = sys.modules.get(name)
        if module is None:
            try:
                module = __import__(name)
            except Exception:  # pragma: no cover - reported, not fatal
                out[name] = None
                continue
        out[name] = getattr(module, "__version__", None)
    return out


def _git_commit():
    try:
        here = Path(__file__).resolve().parent
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        return res.stdout.strip() or None if res.returncode == 0 else None
    except Exception:
        return None


def config_fingerprint(config, ignored=IDENTITY_KEYS_IGNORED):
    """A short hash of the config keys that define a run's results (``run_name`` excluded)."""
    core = {k: v for k, v in config.items() if k not in ignored and not str(k).startswith("_")}
    return hashlib.sha256(dump_config(core).encode()).hexdigest()[:16]


def is_run_dir(path):
    """Whether ``path`` is a folder an experiment run wrote (it holds ``config.yaml`` and ``manifest.json``)."""
    path = Path(path)
    return (path / "config.yaml").is_file() and (path / "manifest.json").is_file()


def _pid_alive(pid):
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists, owned by someone else (or a value we cannot judge: assume alive)
    return True


class RunDir:
    """The output folder of one experiment run.

    ``warn(message)`` receives one-line warnings (an invalid cell moved aside, a stale lock taken
    over); the default drops them. ``check_cell(cell) -> str | None`` is the experiment's check of a
    cell's own keys (None: valid).
    """

    def __init__(self, path, experiment, config, check_cell=None, warn=None):
        self.path = Path(path)
        self.experiment = experiment
        self.config = config
        self.cells_dir = self.path / "cells"
        self.invalid_dir = self.cells_dir / "invalid"
        self.check_cell = check_cell
        self.warn = warn or (lambda message: None)
        self.fingerprint = config_fingerprint(config)
        self.created = []  # the folders open() made (outermost first)
        self._lock = None

    # ------------------------------------------------------------ checks before anything is written
    def check_usable(self):
        """Refuse (RunDirError) a path that exists but is not a folder, is a non-empty folder that no run
        wrote, or is a run of another experiment. Writes nothing."""
        from ..safeio import check_parent_is_folder

        p = self.path
        if p.exists() and not p.is_dir():
            raise RunDirError(f"out_dir {p} exists and is not a folder")
        try:
            check_parent_is_folder(p)
        except NotADirectoryError as exc:
            raise RunDirError(f"out_dir {p}: {exc.filename} is a file, not a folder") from None
        if p.is_dir() and any(p.iterdir()) and not is_run_dir(p) and not (p / ".lock").exists():
            raise RunDirError(f"out_dir {p} is a non-empty folder that no rda run wrote (no config.yaml and "
                              "manifest.json in it); nothing was changed: choose a new or empty folder")
        if is_run_dir(p):
            try:
                other = json.loads((p / "manifest.json").read_text()).get("experiment")
            except (OSError, ValueError, AttributeError):
                other = None
            if other and self.experiment and other != self.experiment:
                raise RunDirError(f"out_dir {p} holds an 'rda {other}' run, not 'rda {self.experiment}'; "
                                  "choose another folder")
        return self

    # ------------------------------------------------------------ lock
    def _lock_path(self):
        return self.path / ".lock"

    def acquire_lock(self):
        """Take ``.lock`` (PID and host). A live owner on this host makes it a RunDirError; a dead one's lock
        is taken over with a warning."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _now()}
        lock = self._lock_path()
        for _ in range(3):
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    owner = json.loads(lock.read_text())
                    pid, host = int(owner["pid"]), str(owner["host"])
                except (OSError, ValueError, KeyError, TypeError):
                    owner, pid, host = None, None, None
                if owner is not None and host != me["host"]:
                    raise RunDirError(f"run folder {self.path} is in use by process {pid} on host {host} "
                                      f"(its lock file {lock}); if that process is gone, delete the lock file")
                if pid is not None and pid != me["pid"] and _pid_alive(pid):
                    raise RunDirError(f"run folder {self.path} is in use by process {pid} on this host "
                                      f"(since {owner.get('start')}); wait for it to finish or use another folder")
                self.warn(f"taking over the lock of {self.path} left by "
                          + (f"process {pid}, which is no longer running" if pid else "an unreadable lock file"))
                try:
                    lock.unlink()
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps(me))
            self._lock = me
            return self
        raise RunDirError(f"run folder {self.path}: could not take its lock file {lock}")

    def release_lock(self):
        if self._lock is None:
            return
        lock = self._lock_path()
        try:
            owner = json.loads(lock.read_text())
            if owner.get("pid") == self._lock["pid"] and owner.get("host") == self._lock["host"]:
                lock.unlink()
        except (OSError, ValueError, AttributeError):
            pass
        self._lock = None

    # ------------------------------------------------------------ opening
    def open(self, identity_keys_ignored=IDENTITY_KEYS_IGNORED):
        """Create the folder, or check that an existing one was written with the same config; take its lock."""
        from ..safeio import make_dirs

        self.check_usable()
        self.created = make_dirs(self.path)
        self.acquire_lock()
        try:
            self._open(identity_keys_ignored)
        except BaseException:
            self.release_lock()
            raise
        return self

    def discard_if_empty(self):
        """Remove the folders this run created if no cell was finished in them (after a failure)."""
        import shutil

        from ..safeio import remove_dirs_if_empty

        if not self.created or any(self.cells_dir.glob("*.json")):
            return
        shutil.rmtree(self.path, ignore_errors=True)
        remove_dirs_if_empty(self.created[:-1])

    def _open(self, identity_keys_ignored):
        cfg_file = self.path / "config.yaml"
        if cfg_file.exists():
            try:
                old = yaml.safe_load(cfg_file.read_text()) or {}
            except yaml.YAMLError:
                raise ConfigError(f"{cfg_file} is not valid YAML; use another `out_dir`") from None
            a = {k: v for k, v in old.items() if k not in identity_keys_ignored}
            b = {k: v for k, v in self.config.items() if k not in identity_keys_ignored}
            diff = _first_difference(a, b)
            if diff:
                key, was, now = diff
                raise ConfigError(
                    f"{self.path} holds a run made with another config ('{key}' was {was!r}, now {now!r}); "
                    "use another `out_dir` or run_name, or delete that folder"
                )
        self.cells_dir.mkdir(parents=True, exist_ok=True)
        if not cfg_file.exists():
            atomic_write_text(cfg_file, dump_config(self.config))
        manifest = self.manifest()
        manifest.setdefault("experiment", self.experiment)
        manifest.setdefault("seed", self.config.get("seed"))
        manifest["versions"] = _versions()
        manifest["git_commit"] = _git_commit()
        manifest["host"] = {"cpu_count": os.cpu_count(), "platform": platform.platform()}
        manifest.setdefault("sessions", []).append({"start": _now(), "end": None})
        self._write_manifest(manifest)

    def manifest(self):
        f = self.path / "manifest.json"
        try:
            m = json.loads(f.read_text()) if f.exists() else {}
        except (OSError, ValueError):
            m = {}  # a damaged manifest is rewritten: it holds provenance only, no results
        return m if isinstance(m, dict) else {}

    def _write_manifest(self, manifest):
        atomic_write_text(self.path / "manifest.json", json.dumps(manifest, indent=1))

    def finish(self, **extra):
        manifest = self.manifest()
        if manifest.get("sessions"):
            manifest["sessions"][-1]["end"] = _now()
        manifest["start"] = manifest["sessions"][0]["start"] if manifest.get("sessions") else None
        manifest["end"] = _now()
        manifest.update(extra)
        self._write_manifest(manifest)
        self.release_lock()

    # ------------------------------------------------------------ cells
    def cell_problem(self, name, cell, listed=None):
        """Why the cell read from ``cells/<name>.json`` is invalid, or None. ``listed``: the cell as the
        config lists it (its descriptor keys must match)."""
        if not isinstance(cell, dict):
            return f"not a JSON object ({type(cell).__name__})"
        if cell.get("id") != name:
            return f"its id is {cell.get('id')!r}, not the file name {name!r}"
        fp = cell.get(FINGERPRINT_KEY)
        if fp is not None and fp != self.fingerprint:
            return f"written with another config (fingerprint {fp!r}, this run's is {self.fingerprint!r})"
        for key, value in (listed or {}).items():
            if key == "warm_from" or key not in cell:  # required keys are the experiment's check_cell's business
                continue
            if cell[key] != value and not (cell[key] is None and value is None):
                return f"key {key!r} is {cell[key]!r}, the config lists {value!r}"
        if self.check_cell is not None:
            return self.check_cell(cell)
        return None

    def _read(self, name):
        """``(cell, problem)`` for ``cells/<name>.json``; cell is None when the file is unreadable."""
        f = self.cells_dir / f"{name}.json"
        try:
            return json.loads(f.read_text()), None
        except FileNotFoundError:
            return None, "missing"
        except UnicodeDecodeError:
            return None, "not UTF-8 text"
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg} at line {exc.lineno})"
        except OSError as exc:
            return None, f"unreadable ({exc.strerror})"

    def set_aside(self, name, problem):
        """Move ``cells/<name>.json`` (and its ``.npz``) to ``cells/invalid/``, never overwriting, and warn."""
        self.invalid_dir.mkdir(parents=True, exist_ok=True)
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        for suffix in (".json", ".npz"):
            src = self.cells_dir / f"{name}{suffix}"
            if src.exists():
                dst = self.invalid_dir / f"{name}{suffix}"
                n = 1
                while dst.exists():
                    dst = self.invalid_dir / f"{name}.{stamp}-{n}{suffix}"
                    n += 1
                os.replace(src, dst)
        self.warn(f"cell {name} in {self.cells_dir} is invalid ({problem}); moved to {self.invalid_dir} "
                  "and computed again")

    def has_cell(self, cell_id, listed=None):
        """Whether a valid finished cell ``cell_id`` is on disk; an invalid one is set aside (False)."""
        if not (self.cells_dir / f"{cell_id}.json").exists():
            return False
        cell, problem = self._read(cell_id)
        if problem is None:
            problem = self.cell_problem(cell_id, cell, listed)
        if problem is None:
            return True
        self.set_aside(cell_id, problem)
        return False

    def finished_cells(self):
        """A picklable read-only view of the finished cells' arrays (:class:`~.contract.FinishedCells`)."""
        from .contract import FinishedCells

        return FinishedCells(self.cells_dir)

    def write_cell(self, cell_id, result, arrays=None):
        result = dict(result)
        result[FINGERPRINT_KEY] = self.fingerprint
        if arrays:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            atomic_write_bytes(self.cells_dir / f"{cell_id}.npz", buf.getvalue())
        atomic_write_text(self.cells_dir / f"{cell_id}.json", json.dumps(result, indent=1))

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

    def write_metrics_csv(self, rows, columns):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c) for c in columns})
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())
