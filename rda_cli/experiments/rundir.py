"""A run folder: resolved config, manifest, one small file per finished cell, resume.

Layout of ``results/<experiment>/<run-name>/``::

    config.yaml      the resolved config (after overrides)
    manifest.json    versions, seed, git commit, host, start/end times of each session
    cells/<id>.json  one finished cell (written atomically: temp file + rename)
    cells/<id>.npz   small arrays of that cell for the figures (optional)
    metrics.csv      all finished cells, one row each

A cell's JSON file is written last, so its presence means the cell is complete: re-running on
the same folder reads it back instead of recomputing. A folder written with another config is
refused.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import yaml

from .config import ConfigError, dump_config

__all__ = ["RunDir", "atomic_write_bytes", "atomic_write_text"]


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


class RunDir:
    """The output folder of one experiment run."""

    def __init__(self, path, experiment, config):
        self.path = Path(path)
        self.experiment = experiment
        self.config = config
        self.cells_dir = self.path / "cells"

    # ------------------------------------------------------------ opening
    def open(self, identity_keys_ignored=("run_name",)):
        """Create the folder, or check that an existing one was written with the same config."""
        cfg_file = self.path / "config.yaml"
        if cfg_file.exists():
            try:
                old = yaml.safe_load(cfg_file.read_text()) or {}
            except yaml.YAMLError:
                raise ConfigError(f"{cfg_file} is not valid YAML; use another --out folder") from None
            a = {k: v for k, v in old.items() if k not in identity_keys_ignored}
            b = {k: v for k, v in self.config.items() if k not in identity_keys_ignored}
            diff = _first_difference(a, b)
            if diff:
                key, was, now = diff
                raise ConfigError(
                    f"{self.path} holds a run made with another config ('{key}' was {was!r}, now {now!r}); "
                    "use another --out folder or run_name, or delete that folder"
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
        return self

    def manifest(self):
        f = self.path / "manifest.json"
        return json.loads(f.read_text()) if f.exists() else {}

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

    # ------------------------------------------------------------ cells
    def has_cell(self, cell_id):
        return (self.cells_dir / f"{cell_id}.json").exists()

    def write_cell(self, cell_id, result, arrays=None):
        if arrays:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            atomic_write_bytes(self.cells_dir / f"{cell_id}.npz", buf.getvalue())
        atomic_write_text(self.cells_dir / f"{cell_id}.json", json.dumps(result, indent=1))

    def read_cells(self):
        cells = []
        for f in sorted(self.cells_dir.glob("*.json")):
            try:
                cells.append(json.loads(f.read_text()))
            except (OSError, json.JSONDecodeError):
                continue  # an unreadable cell is recomputed on the next run
        return cells

    def write_metrics_csv(self, rows, columns):
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c) for c in columns})
        atomic_write_text(self.path / "metrics.csv", buf.getvalue())
