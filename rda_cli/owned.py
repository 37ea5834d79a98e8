"""The one ownership rule: which folders and files ``rda`` may replace, and how a result is put in place.

A folder ``rda`` writes as a whole (an ``rda detect`` result, a saved model or ensemble) gets
:data:`MANIFEST`, a JSON list of every file under it (relative path, size, SHA-256) and every
sub-folder. **No manifest, no claim:** a folder may be replaced (by ``--force`` or a second ``save``)
only while its manifest is there and its whole tree still matches it: a file or folder the manifest
does not list (``model/my_notes.txt``, ``model/keep/``), a listed file whose size or content changed,
a symlink or any other kind of entry, makes it someone else's, and :func:`ownership_problem` says
which. A listed file that was deleted is no reason to refuse (nothing of the user's is in it).

Every writer of such a folder follows the same three steps:

1. :func:`claim` (before any work): the destination is absent, an empty folder, or a folder rda owns
   (else :class:`NotOwnedError`, one line naming the path); the claim remembers which, and which folder.
2. build the result in :func:`temp_dir` (next to the destination, named with the writer's PID and
   made with the umask's permissions), :func:`write_manifest` last;
3. :func:`place`: put it in place. What was absent is never replaced by what appeared meanwhile (a
   no-replace rename: a second writer loses loudly); an owned folder is replaced only if it is still
   the same folder and still wholly rda's (checked again after moving it aside; else it is put back).

Reading is bounded: the manifest at :data:`MANIFEST_MAX_BYTES`, a walk at :data:`MAX_ENTRIES` entries.
Temporary names (:func:`temp_prefix`) carry the writer's host and PID, so that one left by a killed
process is recognised (:func:`stale_temps`) once :func:`pid_alive` says that process is gone.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path
from typing import NamedTuple

from .errors import RdaError
from .safeio import read_json, rename_noreplace, show_path, umask

__all__ = ["MANIFEST", "MANIFEST_MAX_BYTES", "MAX_ENTRIES", "NotOwnedError", "PlaceError", "Claim", "claim",
           "ownership_problem", "place", "temp_dir", "write_manifest", "sha256_file", "temp_prefix", "stale_temps",
           "remove_stale", "pid_alive"]

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


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_STEM_MAX = 100  # a longer name is shortened (and hashed) in temporary names, which must fit in NAME_MAX (255)


def _stem(name):
    """``name`` as it appears in temporary names: itself, or its first 80 characters and a hash of it."""
    if len(name) <= _STEM_MAX:
        return name
    return f"{name[:80]}~{hashlib.sha256(os.fsencode(name)).hexdigest()[:12]}"


def temp_prefix(name):
    """The prefix of a temporary file or folder for ``name`` made by this process: ``.NAME.rda-HOST-PID-``
    (a long ``name`` shortened and hashed, so that the whole stays within the file-name limit)."""
    return f".{_stem(name)}.rda-{_HOST}-{os.getpid()}-"


def stale_temps(parent, name):
    """Temporary entries for ``name`` in ``parent`` left by processes of this host that no longer run."""
    pattern = re.compile(rf"\.{re.escape(_stem(name))}\.rda-{_HOST}-(\d+)-.*\.tmp\Z")
    out = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return out
    for entry in entries:
        m = pattern.match(entry.name)
        if m and not pid_alive(int(m.group(1))):
            out.append(Path(entry.path))
    return out


def remove_stale(parent, name):
    """Remove what killed runs (SIGKILL, power loss) left for ``name`` in ``parent`` (see :func:`stale_temps`)."""
    for p in stale_temps(parent, name):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def pid_alive(pid):
    """Whether process ``pid`` of this host runs (one we may not signal counts as running; so does a
    value that cannot be judged)."""
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError, TypeError):
        return True
    return True


def temp_dir(dest):
    """A new temporary folder next to ``dest`` (created with the permissions the umask gives, like
    ``mkdir``), after removing those killed writers left for it; the caller puts it in place with
    :func:`place` or removes it."""
    dest = Path(dest)
    remove_stale(dest.parent, dest.name)
    tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(dest.name), suffix=".tmp", dir=dest.parent))
    os.chmod(tmp, 0o777 & ~umask())
    return tmp


# ---------------------------------------------------------------------------- the ownership rule
class NotOwnedError(RdaError):
    """A folder rda may not replace (refused before any work; exit status 2)."""


class PlaceError(RdaError):
    """The destination changed while rda worked (appeared, or is no longer the folder claimed): nothing was
    replaced and the new result discarded (exit status 1)."""

    exit_code = 1


class Claim(NamedTuple):
    """What :func:`claim` found at ``path``: ``state`` ``"absent"``, ``"empty"`` or ``"owned"``; ``ident``
    ``(st_dev, st_ino)`` of an owned folder; ``marker`` the file that folder must hold."""

    path: Path
    state: str
    ident: tuple | None = None
    marker: str | None = None


def ownership_problem(folder, marker=None):
    """None if ``folder`` holds :data:`MANIFEST` and its whole tree is what that lists, each file of its listed
    size and content (``marker``, if given, among the files); else one phrase naming the first entry that
    is not rda's, or the reason (no manifest, no claim)."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file() or (folder / MANIFEST).is_symlink():
        return f"it has no {MANIFEST} (the list of files rda wrote)"
    try:
        files, folders, other = _walk(folder)
    except ValueError as exc:
        return f"it holds {exc}"
    except OSError as exc:
        return f"it cannot be read ({exc.strerror or exc})"
    if other:
        return f"{other[0]} is a link or special file rda did not write"
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
    if marker is not None and not (folder / marker).is_file():
        return f"it has no {marker}"
    return None


def claim(path, marker=None, what="folder", error=NotOwnedError):
    """Check, before any work, that ``path`` may be written as a whole folder: absent, an empty folder, or
    owned by rda (:func:`ownership_problem`). Returns the :class:`Claim` that :func:`place` holds to;
    anything else is ``error`` (one line starting ``what PATH``)."""
    path = Path(path)
    label = f"{what} {show_path(path)}"
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return Claim(path, "absent", None, marker)
    if stat.S_ISLNK(st.st_mode):
        raise error(f"{label} is a symbolic link; it is never replaced: name a new folder")
    if not stat.S_ISDIR(st.st_mode):
        raise error(f"{label} exists and is not a folder; it is not replaced")
    if not any(os.scandir(path)):
        return Claim(path, "empty", (st.st_dev, st.st_ino), marker)
    problem = ownership_problem(path, marker)
    if problem:
        raise error(f"{label} holds files rda did not write ({problem}); it is not replaced: name a new folder")
    return Claim(path, "owned", (st.st_dev, st.st_ino), marker)


def place(tmp, claimed, what="folder", error=PlaceError):
    """Put the finished folder ``tmp`` at ``claimed.path``, replacing only what :func:`claim` found there.

    Absent or empty then: a no-replace rename (an empty folder is replaced only while still empty), so
    a folder or file that appeared meanwhile -- the user's, or another run's result -- stays and
    ``error`` says so. Owned then: that folder is moved aside, checked to be the same folder and still
    wholly rda's, and only then is ``tmp`` renamed in and the old one deleted; otherwise it is put back.
    On ``error``, ``tmp`` is left for the caller to remove."""
    dest = Path(claimed.path)
    label = f"{what} {show_path(dest)}"
    lost = "; it was not replaced and the new result was discarded: run again, with a new folder"
    if claimed.state != "owned" or not os.path.lexists(dest):
        try:
            if claimed.state == "empty" and os.path.lexists(dest):
                _rename_onto_empty(tmp, dest, claimed.ident)
            else:
                rename_noreplace(tmp, dest)
        except FileExistsError:
            raise error(f"{label} appeared or was filled while rda ran{lost}") from None
        return
    # not a temporary name: if this process is killed before the swap ends, nothing deletes what it holds
    old = Path(tempfile.mkdtemp(prefix=f".{_stem(dest.name)}.old-", dir=dest.parent))
    moved = old / "old"
    try:
        os.rename(dest, moved)
    except FileNotFoundError:  # deleted meanwhile: nothing to replace
        os.rmdir(old)
        return place(tmp, claimed._replace(state="absent"), what, error)
    st = os.lstat(moved)
    problem = ("it is no longer the folder that was checked" if (st.st_dev, st.st_ino) != claimed.ident
               else ownership_problem(moved, claimed.marker))
    if problem is None:
        try:
            rename_noreplace(tmp, dest)
        except FileExistsError:
            problem = "another folder appeared in its place"
    if problem is not None:
        try:
            rename_noreplace(moved, dest)
            os.rmdir(old)
            kept = ""
        except OSError:
            kept = f" (the earlier folder is kept as {show_path(moved)})"
        raise error(f"{label} changed while rda ran ({problem}){lost}{kept}")
    shutil.rmtree(old, ignore_errors=True)


def _rename_onto_empty(tmp, dest, ident):
    """Rename ``tmp`` onto the empty folder ``dest`` claimed as ``ident``: the kernel refuses a non-empty one."""
    st = os.lstat(dest)
    if (st.st_dev, st.st_ino) != ident or not stat.S_ISDIR(st.st_mode):
        raise FileExistsError(errno.EEXIST, "replaced meanwhile", str(dest))
    try:
        os.rename(tmp, dest)
    except OSError as exc:
        if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(dest)) from None
        raise
