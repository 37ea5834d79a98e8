"""Which folders hold only ``rda``'s own files: a manifest of what was written, checked before a replacement.

A folder ``rda`` writes as a whole (an ``rda detect`` result, a saved model) gets :data:`MANIFEST`, a
JSON list of every file under it (relative path, size, SHA-256) and every sub-folder. Such a folder
may be replaced (by ``--force`` or a second ``save``) only while its whole tree still matches: a file
or folder the manifest does not list (``model/my_notes.txt``, ``model/keep/``), a listed file whose
size or content changed, a symlink or any other kind of entry, makes it someone else's, and
:func:`tree_problem` says which. A listed file that was deleted is no reason to refuse (nothing of
the user's is in it). Folders written before manifests existed are checked against a fixed
``layout`` (the names rda writes, level by level, regular files only).

Reading is bounded: the manifest at :data:`MANIFEST_MAX_BYTES`, a walk at :data:`MAX_ENTRIES` entries.
The module also names temporary files and folders so that one left by a killed process can be
recognised as such (:func:`temp_prefix`, :func:`stale_temps`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
from pathlib import Path

from .errors import RdaError
from .safeio import read_json

__all__ = ["MANIFEST", "MANIFEST_MAX_BYTES", "MAX_ENTRIES", "write_manifest", "tree_problem", "sha256_file",
           "temp_prefix", "stale_temps"]

MANIFEST = ".rda-files.json"
MANIFEST_MAX_BYTES = 1 << 20  # 1 MiB: a detect result lists about 15 files
MAX_ENTRIES = 10_000  # a folder with more entries than this is not one rda wrote
_CHUNK = 1 << 20


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _walk(folder):
    """``(files, folders, other)`` under ``folder``: relative POSIX paths, not following symlinks; raises
    ValueError past :data:`MAX_ENTRIES` entries."""
    files, folders, other, n = [], [], [], 0
    for root, dirs, names in os.walk(folder, followlinks=False):
        rel = Path(root).relative_to(folder)
        for name in dirs + names:
            n += 1
            if n > MAX_ENTRIES:
                raise ValueError(f"more than {MAX_ENTRIES} entries")
            p = Path(root) / name
            r = (rel / name).as_posix()
            mode = os.lstat(p).st_mode
            if stat.S_ISDIR(mode):
                folders.append(r)
            elif stat.S_ISREG(mode):
                files.append(r)
            else:
                other.append(r)
        dirs[:] = [d for d in dirs if not os.path.islink(Path(root) / d)]
    return files, folders, other


def write_manifest(folder):
    """Write :data:`MANIFEST` into ``folder``, listing every file and folder under it now."""
    folder = Path(folder)
    files, folders, _ = _walk(folder)
    listed = {f: [os.path.getsize(folder / f), sha256_file(folder / f)] for f in sorted(files) if f != MANIFEST}
    text = json.dumps({"rda_files": 1, "files": listed, "folders": sorted(folders)}, indent=1)
    (folder / MANIFEST).write_text(text)


def _read_manifest(path):
    d = read_json(path, MANIFEST_MAX_BYTES, "manifest")
    if not (isinstance(d, dict) and d.get("rda_files") == 1 and isinstance(d.get("files"), dict)
            and isinstance(d.get("folders"), list)
            and all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)
                    for v in d["files"].values())):
        raise RdaError(f"{path} is not a manifest rda wrote")
    return d


def tree_problem(folder, layout=None):
    """None if every entry under ``folder`` is rda's own, else one phrase naming the first that is not.

    With :data:`MANIFEST` in ``folder``: the files and folders it lists, each file of its listed size
    and content. Without one, ``layout`` (a dict ``name -> None`` for a file or ``name -> dict`` for a
    folder, nested) says what rda writes; no ``layout`` and no manifest: nothing is rda's.
    """
    folder = Path(folder)
    try:
        files, folders, other = _walk(folder)
    except ValueError as exc:
        return f"it holds {exc}"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if other:
        return f"{other[0]} is a link or special file rda did not write"
    if (folder / MANIFEST).is_file():
        try:
            m = _read_manifest(folder / MANIFEST)
        except RdaError as exc:
            return str(exc)
        extra = sorted(set(folders) - set(m["folders"]))
        if extra:
            return f"{extra[0]}/ is a folder rda did not write"
        for f in sorted(files):
            if f == MANIFEST:
                continue
            if f not in m["files"]:
                return f"{f} is a file rda did not write"
            size, digest = m["files"][f]
            try:
                changed = os.path.getsize(folder / f) != size or sha256_file(folder / f) != digest
            except OSError as exc:
                return f"{f} cannot be read ({exc.strerror or exc})"
            if changed:
                return f"{f} was changed since rda wrote it"
        return None
    if layout is None:
        return f"it has no {MANIFEST} (the list of files rda wrote)"
    for f in files + folders:
        node = layout
        for part in f.split("/"):
            node = node.get(part, KeyError) if isinstance(node, dict) else KeyError
        if node is KeyError or (f in folders) != isinstance(node, dict):
            return f"{f}{'/' if f in folders else ''} is not something rda wrote"
    return None


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]


def temp_prefix(name):
    """The prefix of a temporary file or folder for ``name`` made by this process: ``.NAME.rda-HOST-PID-``."""
    return f".{name}.rda-{_HOST}-{os.getpid()}-"


def stale_temps(parent, name):
    """Temporary entries for ``name`` in ``parent`` left by processes of this host that no longer run."""
    pattern = re.compile(rf"\.{re.escape(name)}\.rda-{_HOST}-(\d+)-.*\.tmp\Z")
    out = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return out
    for entry in entries:
        m = pattern.match(entry.name)
        if m and not _alive(int(m.group(1))):
            out.append(Path(entry.path))
    return out


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True
