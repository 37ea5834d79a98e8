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
Temporary names (:func:`rda_cli.safeio.temp_prefix`) carry the writer's host and PID, so that one left by a killed
process is recognised and removed (:func:`rda_cli.safeio.remove_stale`) once that process is gone.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
from pathlib import Path
from typing import NamedTuple

from .errors import RdaError
from .safeio import (make_dirs, oserror_line, read_json, remove_dirs_if_empty, remove_stale, remove_tree,
                     rename_noreplace, short_name, show_path, temp_prefix, umask, write_json)

__all__ = ["MANIFEST", "MANIFEST_MAX_BYTES", "MAX_ENTRIES", "NotOwnedError", "PlaceError", "Claim", "claim",
           "ownership_problem", "place", "temp_dir", "write_folder", "write_manifest", "relist", "sha256_file"]

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
    write_json(folder / MANIFEST, {"rda_files": 1, "files": listed, "folders": sorted(folders)})


def relist(folder, names, error=RdaError):
    """After rda rewrote the files ``names`` of ``folder``, update their entries in its manifest (and nothing
    else: a file added meanwhile stays unlisted, so the folder stays someone else's)."""
    folder = Path(folder)
    listing = read_json(folder / MANIFEST, MANIFEST_MAX_BYTES, "manifest", error=error)
    for name in names:
        listing["files"][name] = [(folder / name).stat().st_size, sha256_file(folder / name)]
    write_json(folder / MANIFEST, listing)


def _read_manifest(path):
    d = read_json(path, MANIFEST_MAX_BYTES, "manifest")
    if not (isinstance(d, dict) and d.get("rda_files") == 1 and isinstance(d.get("files"), dict)
            and isinstance(d.get("folders"), list)
            and all(isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and isinstance(v[1], str)
                    for v in d["files"].values())):
        raise RdaError(f"{path} is not a manifest rda wrote")
    return d


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
    old = Path(tempfile.mkdtemp(prefix=f".{short_name(dest.name)}.old-", dir=dest.parent))
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
    remove_tree(old)


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


def write_folder(claimed, fill, what="folder", error=PlaceError, refused=NotOwnedError):
    """Write the folder :func:`claim` claimed, as a whole: its missing parents and a :func:`temp_dir` are made
    (where that fails: ``refused``, one line, before any work), ``fill(tmp)`` writes the files, the manifest
    is added and :func:`place` puts it in place (``error`` if the destination changed meanwhile). After any
    failure or interruption the temporary folder and the parents this call made are removed, and an
    OSError names the file under the destination, not under the temporary folder. Returns ``fill``'s value."""
    dest = Path(claimed.path)
    try:
        created = make_dirs(dest.parent)
        try:
            tmp = temp_dir(dest)
        except BaseException:
            remove_dirs_if_empty(created)
            raise
    except OSError as exc:
        raise refused(f"{what} {show_path(dest)}: {oserror_line(exc, 'create a folder in')}") from None
    try:
        value = fill(tmp)
        write_manifest(tmp)
        place(tmp, claimed, what, error)
    except BaseException as exc:
        remove_tree(tmp)
        remove_dirs_if_empty(created)
        if isinstance(exc, OSError):
            raise _located(exc, tmp, dest) from None
        raise
    return value


def _located(exc, tmp, dest):
    """The OSError ``exc`` met while writing into ``tmp``, naming where the file goes under ``dest`` (or
    ``dest`` itself when the error named no file: a write through a file object, e.g. a full disk)."""
    name = exc.filename
    try:
        where = dest / Path(name).relative_to(tmp) if name else dest
    except ValueError:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), str(where))
