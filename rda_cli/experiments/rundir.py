"""A run folder: resolved config, manifest, one small file per finished cell, resume.

Layout of ``results/<experiment>/<run-name>/``::

    config.yaml      the resolved config (after overrides)
    manifest.json    versions, seed, git commit, host, start/end times of each session
    cells/<id>.json  one finished cell (written atomically: temp file + rename)
    cells/<id>.npz   small arrays of that cell for the figures (optional)
    cells/invalid/   cells that failed validation when read back (kept, never deleted)
    metrics.csv      all finished cells, one row each
    .lock            while a run is writing: the owner's PID and host

A folder is a run folder only if its ``manifest.json`` says so (the key ``rda_run_folder``, or, for
folders written before that key existed, an ``experiment`` and a ``sessions`` list beside a
``config.yaml``); any other non-empty folder is refused as ``out_dir`` before anything is written.
A folder whose manifest was deleted but whose cells carry this config's fingerprint is recognised
and its manifest rebuilt; one whose ``config.yaml`` was deleted gets it back from a config whose
fingerprint matches its cells and its manifest's. Every file read back is bounded (see
:func:`~.config.read_capped`): ``manifest.json`` at :data:`MANIFEST_MAX_BYTES`, a cell at
:data:`CELL_MAX_BYTES`, ``config.yaml`` at :data:`~.config.CONFIG_MAX_BYTES`.

A cell's JSON file is written last, so its presence means the cell is complete: re-running on
the same folder reads it back instead of recomputing. Every cell read back is validated, and an
invalid one set aside (see :mod:`.cells`). A folder written with another config is refused, and so
is a folder another live process is running in.
"""

from __future__ import annotations

import csv
import datetime as _dt
import hashlib
import io
import json
import os
import platform
import re
import socket
import subprocess
import sys
from pathlib import Path


from ..safeio import atomic_write_text, make_dirs, oserror_line, pid_alive, remove_tree, write_file, write_npz
from .cells import CELL_MAX_BYTES, FINGERPRINT_KEY, CellFiles, read_json
from .config import CONFIG_MAX_BYTES, ConfigError, dump_config, quote, read_yaml

__all__ = ["RunDir", "RunDirError", "config_fingerprint", "is_run_dir"]

IDENTITY_KEYS_IGNORED = ("run_name",)
MARKER_KEY = "rda_run_folder"  # in manifest.json: this folder is an rda run folder (format version)
MARKER_VERSION = 1
MANIFEST_MAX_BYTES = 1 << 20  # 1 MiB (a manifest grows by ~60 bytes a session)
# What a run leaves behind when killed at the wrong instant before its manifest exists: temp files of
# atomic writes and the lock (recognised by its content, see _is_rda_lock); a folder of only these is empty.
_DEBRIS = re.compile(r"\.(manifest\.json|config\.yaml|lock|\.lock)\..+\.tmp")  # .lock's: "..lock.rda-HOST-PID-*.tmp"
_LOCK_TEMPS = (".lock.", "..lock.")  # another run's lock-to-be (never removed by this one)


class RunDirError(ConfigError):
    """The run folder cannot be used (another config, another experiment, in use, not a run folder)."""


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


def _manifest_of(path):
    """The manifest of folder ``path`` (a dict) if it marks an rda run folder, else None."""
    m, _ = read_json(Path(path) / "manifest.json", MANIFEST_MAX_BYTES, "manifest")
    if not isinstance(m, dict):
        return None
    if m.get(MARKER_KEY) is not None:
        return m
    legacy = isinstance(m.get("experiment"), str) and isinstance(m.get("sessions"), list)
    return m if legacy and (Path(path) / "config.yaml").is_file() else None


def is_run_dir(path):
    """Whether ``path`` is a folder an experiment run wrote: its ``manifest.json`` says so (see the module notes)."""
    return Path(path).is_dir() and _manifest_of(path) is not None


def _raw(path):
    """The bytes of a lock file (at most 4 KiB), or None if it cannot be read."""
    from ..safeio import read_capped

    try:
        return read_capped(path, 4096, "lock")
    except (OSError, ValueError):
        return None


def _is_rda_lock(path):
    lock, _ = read_json(path, 4096, "lock")
    return isinstance(lock, dict) and isinstance(lock.get("pid"), int) and isinstance(lock.get("host"), str)


def _only_debris(folder):
    """Whether every entry of ``folder`` is what an rda run killed before writing its manifest leaves."""
    for entry in Path(folder).iterdir():
        if not os.path.lexists(entry):  # gone meanwhile: another run's temporary file, or a lock it took over
            continue
        if entry.name == ".lock" and entry.is_file() and _is_rda_lock(entry):
            continue
        if _DEBRIS.fullmatch(entry.name) and entry.is_file():
            continue
        return False
    return True


class RunDir(CellFiles):
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
        self.created = []  # the folders open() made (outermost first); emptied by abandon()
        self.removed = False  # whether abandon() removed the run folder
        self._lock = None
        self._recover = None  # set by check_usable: the number of cells whose fingerprint proves the folder ours
        self._stamped = None  # whether the manifest stamps fingerprints (read when first needed)

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
        self._recover = None
        if not p.is_dir() or not any(p.iterdir()) or _only_debris(p):
            return self
        manifest = _manifest_of(p)
        if manifest is None:
            self._check_without_manifest(p)
            return self
        other = manifest.get("experiment")
        if other and self.experiment and other != self.experiment:
            raise RunDirError(f"out_dir {p} holds an 'rda {other}' run, not 'rda {self.experiment}'; "
                              "choose another folder")
        return self

    def cell_fingerprints(self):
        """``{cell name: fingerprint or None}`` of the cell files in ``cells/`` (None: unreadable or none)."""
        out = {}
        for f in sorted(self.cells_dir.glob("*.json")) if self.cells_dir.is_dir() else ():
            cell, _ = read_json(f, CELL_MAX_BYTES, "cell")
            out[f.stem] = cell.get(FINGERPRINT_KEY) if isinstance(cell, dict) else None
        return out

    def _check_without_manifest(self, p):
        """A non-empty folder with no rda manifest: refused, unless its cells prove it is this run's folder
        (each carries this config's fingerprint), in which case :meth:`open` rebuilds the manifest."""
        prints = self.cell_fingerprints()
        has_config = (p / "config.yaml").is_file()
        if not prints and not has_config:
            raise RunDirError(f"out_dir {p} is a non-empty folder that no rda run wrote (no manifest.json of an rda "
                              "run in it); nothing was changed: choose a new or empty folder")
        if prints and set(prints.values()) == {self.fingerprint}:
            self._recover = len(prints)
            return
        seen = sorted({fp for fp in prints.values() if fp}, key=str)
        which = (f"; they carry fingerprint {quote(seen[0])}{' and others' if len(seen) > 1 else ''}, this "
                 f"config's is {self.fingerprint!r}") if seen else ""
        given = f" (`config_path` {p / 'config.yaml'} is still there)" if has_config else ""
        raise RunDirError(
            f"manifest.json is missing from out_dir {p}, which holds {len(prints)} cell file(s)"
            f"{' and a config.yaml' if has_config else ''} of an rda run{which}; nothing was changed. To recover, "
            f"run again with the config that wrote them{given}: when the cells' fingerprints match it, the "
            "manifest is rebuilt and the finished cells are read back")

    # ------------------------------------------------------------ lock
    def _lock_path(self):
        return self.path / ".lock"

    def _create_lock(self, text):
        """Create ``.lock`` holding ``text`` if it does not exist, whole or not at all (FileExistsError if it
        does): :func:`rda_cli.safeio.write_file` without replacing."""
        write_file(self._lock_path(), lambda fh: fh.write(text.encode()), replace=False)

    def acquire_lock(self):
        """Take ``.lock`` (PID and host). A live owner on this host makes it a RunDirError; a dead one's lock
        is taken over with a warning."""
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": _now()}
        lock = self._lock_path()
        for _ in range(3):
            try:
                self._create_lock(json.dumps(me))
            except FileExistsError:
                seen = _raw(lock)
                owner, _ = read_json(lock, 4096, "lock")
                try:
                    pid, host = int(owner["pid"]), str(owner["host"])
                except (ValueError, KeyError, TypeError):
                    owner, pid, host = None, None, None
                hint = (f"; if process {pid} is not an rda run (look with `ps -p {pid}`), delete {lock} and run "
                        "again")
                if owner is not None and host != me["host"]:
                    raise RunDirError(f"run folder {self.path} is in use by process {pid} on host {quote(host)} "
                                      f"(its lock file {lock}); wait for it to finish or use another folder{hint}")
                if pid is not None and pid != me["pid"] and pid_alive(pid):
                    raise RunDirError(f"run folder {self.path} is in use by process {pid} on this host "
                                      f"(since {quote(owner.get('start'))}); wait for it to finish or use another "
                                      f"folder{hint}")
                if self._remove_stale_lock(seen):
                    self.warn(f"taking over the lock of {self.path} left by "
                              + (f"process {pid}, which is no longer running" if pid else "an unreadable lock file"))
                continue
            except OSError as exc:  # a read-only folder or file system, no permission: refused before any work
                raise RunDirError(f"run folder {self.path} cannot be written: {oserror_line(exc, 'create')}") from None
            self._lock = me
            return self
        raise RunDirError(f"run folder {self.path}: could not take its lock file {lock}")

    def _remove_stale_lock(self, seen):
        """Remove ``.lock`` if it still holds the bytes ``seen`` (a dead owner's); False if another process
        changed or took it first. The lock is renamed aside first (only one process can), so a lock a
        live run has just created is never deleted: it is put back if it was moved by mistake."""
        lock = self._lock_path()
        aside = self.path / f".lock.{os.getpid()}.stale.tmp"
        try:
            os.rename(lock, aside)
        except FileNotFoundError:
            return False
        try:
            if _raw(aside) == seen:
                return True
            try:  # another run's fresh lock: back into place, unless yet another has been created since
                os.link(aside, lock)
            except OSError:
                pass
            return False
        finally:
            aside.unlink(missing_ok=True)

    def release_lock(self):
        if self._lock is None:
            return
        lock = self._lock_path()
        owner, _ = read_json(lock, 4096, "lock")
        if isinstance(owner, dict) and owner.get("pid") == self._lock["pid"] and owner.get("host") == self._lock["host"]:
            try:
                lock.unlink()
            except OSError:
                pass
        self._lock = None

    # ------------------------------------------------------------ opening
    def open(self, identity_keys_ignored=IDENTITY_KEYS_IGNORED):
        """Create the folder, or check that an existing one was written with the same config; take its lock."""
        from ..safeio import make_dirs

        self.check_usable()
        try:
            self.created = make_dirs(self.path)
        except OSError as exc:
            raise RunDirError(f"out_dir {self.path}: {oserror_line(exc, 'create a folder in')}") from None
        try:
            self.acquire_lock()
            self._open(identity_keys_ignored)
        except BaseException:
            self.abandon()
            raise
        return self

    def abandon(self):
        """After a failure or an interruption: remove the folder if this run created it, holds its lock and
        finished no cell in it; then release the lock. A run that does not hold the lock (refused: another
        run has it) removes nothing -- not the other's folder, not its lock. Safe to call again."""
        from ..safeio import remove_dirs_if_empty

        created, self.created = self.created, []
        if self._lock is not None and created and created[-1] == self.path \
                and not any(self.cells_dir.glob("*.json")):
            # the lock is held while the folder goes: no other run can have started in it
            remove_tree(self.path)
            self._lock = None
            self.removed = True
        self.release_lock()
        remove_dirs_if_empty(created)

    def _open(self, identity_keys_ignored):
        for entry in self.path.iterdir():  # temp files of writes a kill interrupted (not another run's lock-to-be)
            if _DEBRIS.fullmatch(entry.name) and not entry.name.startswith(_LOCK_TEMPS):
                entry.unlink(missing_ok=True)
        cfg_file = self.path / "config.yaml"
        manifest = self.manifest()
        if cfg_file.exists():
            old = read_yaml(cfg_file, "the run's config", CONFIG_MAX_BYTES)
            a = {k: v for k, v in old.items() if k not in identity_keys_ignored}
            b = {k: v for k, v in self.config.items() if k not in identity_keys_ignored}
            diff = _first_difference(a, b)
            if diff:
                key, was, now = diff
                raise ConfigError(
                    f"{self.path} holds a run made with another config ('{key}' was {quote(was)}, now {quote(now)}); "
                    "use another `out_dir` or run_name, or delete that folder"
                )
        elif manifest:
            self._check_config_may_be_rewritten(manifest)
        if self._recover:
            self.warn(f"manifest.json was missing from {self.path}; rebuilt it, since its {self._recover} cell(s) "
                      "carry this config's fingerprint")
        manifest[MARKER_KEY] = MARKER_VERSION
        manifest[FINGERPRINT_KEY] = self.fingerprint
        manifest.setdefault("experiment", self.experiment)
        manifest.setdefault("seed", self.config.get("seed"))
        manifest["versions"] = _versions()
        manifest["git_commit"] = _git_commit()
        manifest["host"] = {"cpu_count": os.cpu_count(), "platform": platform.platform()}
        manifest.setdefault("sessions", []).append({"start": _now(), "end": None})
        self._write_manifest(manifest)  # first: from here on the folder is recognisably a run folder
        self._stamped = True
        if not cfg_file.exists():
            atomic_write_text(cfg_file, dump_config(self.config))
        make_dirs(self.cells_dir)

    def _check_config_may_be_rewritten(self, manifest):
        """``config.yaml`` is missing from a run folder: it is written again from this config only if the
        manifest's fingerprint and every cell's match it; otherwise RunDirError says how to recover."""
        stamped = manifest.get(FINGERPRINT_KEY)
        prints = self.cell_fingerprints()
        others = sorted({str(fp) for fp in list(prints.values()) + [stamped] if fp and fp != self.fingerprint})
        if others:
            raise RunDirError(
                f"config.yaml is missing from run folder {self.path}, whose manifest and {len(prints)} cell(s) were "
                f"written with another config (fingerprint {quote(others[0])}, this config's is {self.fingerprint!r}); "
                "nothing was changed. To recover, run again with the config that wrote them (`config_path`); "
                "config.yaml is then written again and the finished cells read back")
        if prints:
            self.warn(f"config.yaml was missing from {self.path}; wrote it again from this config, which matches the "
                      f"fingerprint of its {len(prints)} cell(s)")

    def manifest(self):
        """The manifest as a dict (``{}`` if missing or damaged: it holds provenance only, no results)."""
        m, _ = read_json(self.path / "manifest.json", MANIFEST_MAX_BYTES, "manifest")
        return m if isinstance(m, dict) else {}

    def stamps_fingerprints(self):
        """Whether this folder's manifest stamps the config fingerprint (then every cell must carry it)."""
        if self._stamped is None:
            self._stamped = self.manifest().get(FINGERPRINT_KEY) is not None
        return self._stamped

    def _write_manifest(self, manifest):
        atomic_write_text(self.path / "manifest.json", json.dumps(manifest, indent=1))

    def finish(self, **extra):
        """Record the end of this session in the manifest (the lock is released by the caller:
        :meth:`release_lock`, or :meth:`abandon` after a failure)."""
        manifest = self.manifest()
        if manifest.get("sessions"):
            manifest["sessions"][-1]["end"] = _now()
        manifest["start"] = manifest["sessions"][0]["start"] if manifest.get("sessions") else None
        manifest["end"] = _now()
        manifest.update(extra)
        self._write_manifest(manifest)

    # ------------------------------------------------------------ cells
    def finished_cells(self):
        """A picklable read-only view of the finished cells' arrays (:class:`~.contract.FinishedCells`)."""
        from .contract import FinishedCells

        return FinishedCells(self.cells_dir)

    def write_cell(self, cell_id, result, arrays=None):
        result = dict(result)
        result[FINGERPRINT_KEY] = self.fingerprint
        if arrays:
            write_npz(self.cells_dir / f"{cell_id}.npz", compressed=True, **arrays)
        atomic_write_text(self.cells_dir / f"{cell_id}.json", json.dumps(result, indent=1))

    def write_metrics_csv(self, rows, columns):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c) for c in columns})
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())
