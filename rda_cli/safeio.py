"""Writing without surprises: folders made only where asked, removed again after a failure, and
OS errors described in one line.

The rules every command follows (see ``docs/reliability.md``): nothing the user already has is
overwritten or deleted unless it is a result ``rda`` itself wrote and the user asked for it; the
output location is created (and so proven writable) before any work; a failure removes what the
command created and leaves everything else as it was.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

__all__ = ["replace_dir", "missing_dirs", "make_dirs", "remove_dirs_if_empty", "oserror_line", "check_parent_is_folder",
           "is_within"]


def missing_dirs(path):
    """The folders that ``mkdir(parents=True)`` would create for ``path``, outermost first."""
    path = Path(os.path.abspath(path))
    out = []
    while not path.exists() and path != path.parent:
        out.append(path)
        path = path.parent
    return out[::-1]


def check_parent_is_folder(path):
    """The nearest existing ancestor of ``path`` as a Path; raises NotADirectoryError if it is a file."""
    p = Path(os.path.abspath(path)).parent
    while not p.exists() and p != p.parent:
        p = p.parent
    if not p.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "a file, not a folder, is on the way", str(p))
    return p


def make_dirs(path):
    """Create ``path`` and its missing parents; return the folders created (outermost first)."""
    created = missing_dirs(path)
    Path(path).mkdir(parents=True, exist_ok=True)
    return created


def remove_dirs_if_empty(dirs):
    """Remove the given folders, innermost first, where they are (still) empty."""
    for d in reversed(list(dirs)):
        try:
            os.rmdir(d)
        except OSError:
            pass


def is_within(path, folder):
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    path, folder = Path(path).resolve(), Path(folder).resolve()
    return path == folder or folder in path.parents


def oserror_line(exc, doing="write"):
    """``cannot write PATH: No space left on device`` for an OSError."""
    where = exc.filename if getattr(exc, "filename", None) else None
    cause = exc.strerror or (errno.errorcode.get(exc.errno) if exc.errno else None) or str(exc) or type(exc).__name__
    return f"cannot {doing} {where}: {cause}" if where else f"cannot {doing}: {cause}"


def replace_dir(tmp, dest):
    """Rename the finished folder ``tmp`` to ``dest``. An existing ``dest`` (the caller has checked that it
    may be replaced) is moved aside first, put back if the rename fails, and deleted only once ``tmp`` is
    in its place."""
    dest = Path(dest)
    if not dest.exists():
        os.replace(tmp, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
    os.replace(dest, old / dest.name)
    try:
        os.replace(tmp, dest)
    except BaseException:
        os.replace(old / dest.name, dest)  # put the earlier folder back
        os.rmdir(old)
        raise
    shutil.rmtree(old, ignore_errors=True)
