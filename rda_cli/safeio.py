"""Writing without surprises: folders made only where asked, removed again after a failure, and
OS errors described in one line.

The rules every command follows (see ``docs/reliability.md``): nothing the user already has is
overwritten or deleted unless it is a result ``rda`` itself wrote and the user asked for it; the
output location is created (and so proven writable) before any work; a failure removes what the
command created and leaves everything else as it was.
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

import numpy as np

from .errors import RdaError

__all__ = ["read_capped", "read_json", "parse_json", "open_regular", "JSON_MAX_DEPTH", "check_regular", "file_kind",
           "missing_dirs", "make_dirs", "remove_dirs_if_empty", "oserror_line", "check_parent_is_folder",
           "is_within", "umask", "rename_noreplace", "show_path", "write_file", "write_json", "write_npz", "write_npy",
           "atomic_write_bytes", "atomic_write_text", "short_name", "temp_prefix", "stale_temps", "remove_stale",
           "remove_tree", "pid_alive"]


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
    """Create ``path`` and its missing parents; return the folders this call created (outermost first): a
    folder another process created meanwhile is not among them, so a cleanup never removes another's."""
    created = []
    for d in missing_dirs(path):
        try:
            os.mkdir(d)
        except FileExistsError:
            if not os.path.isdir(d):
                raise
            continue
        created.append(d)
    if not os.path.isdir(path):
        raise FileExistsError(errno.EEXIST, "exists and is not a folder", str(path))
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
    """``cannot write PATH: No space left on device`` for an OSError (of a rename: its destination)."""
    where = getattr(exc, "filename2", None) or getattr(exc, "filename", None) or None
    where = show_path(where) if where else None
    cause = exc.strerror or (errno.errorcode.get(exc.errno) if exc.errno else None) or str(exc) or type(exc).__name__
    return f"cannot {doing} {where}: {cause}" if where else f"cannot {doing}: {cause}"


def show_path(path):
    """``path`` as text for a one-line message: as it is, or quoted (``'a\\nb'``) when it holds a line break,
    another control character or surrounding spaces, so that a message stays one line and says where."""
    text = str(path)
    if text.isprintable() and text.strip() == text:
        return text
    return repr(text)


def umask():
    """The process umask (read when a file or folder is made, not at import: importing changes nothing)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_STEM_MAX = 100  # a longer name is shortened (and hashed) in temporary names, which must fit in NAME_MAX (255)


def short_name(name):
    """``name`` as it appears in temporary names: itself, or its first 80 characters and a hash of it."""
    if len(name) <= _STEM_MAX:
        return name
    return f"{name[:80]}~{hashlib.sha256(os.fsencode(name)).hexdigest()[:12]}"


def temp_prefix(name):
    """The prefix of a temporary file or folder for ``name`` made by this process: ``.NAME.rda-HOST-PID-``
    (a long ``name`` shortened and hashed, so that the whole stays within the file-name limit)."""
    return f".{short_name(name)}.rda-{_HOST}-{os.getpid()}-"


def stale_temps(parent, name):
    """Temporary entries for ``name`` in ``parent`` left by processes of this host that no longer run."""
    pattern = re.compile(rf"\.{re.escape(short_name(name))}\.rda-{_HOST}-(\d+)-.*\.tmp\Z")
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
    """Remove what killed writers (SIGKILL, power loss) left for ``name`` in ``parent`` (:func:`stale_temps`)."""
    for p in stale_temps(parent, name):
        remove_tree(p)


def remove_tree(path):
    """Remove the file or folder ``path`` (a link itself, never what it points to); what is already gone
    or cannot be removed is left as it is."""
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass


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


_RENAME_NOREPLACE = 1  # linux/fs.h
_renameat2 = None


def _libc_renameat2():
    global _renameat2
    if _renameat2 is None:
        try:
            import ctypes

            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):  # not Linux, or a C library without renameat2
            _renameat2 = False
    return _renameat2


def rename_noreplace(src, dst):
    """Rename ``src`` to ``dst`` only if ``dst`` does not exist (FileExistsError if it does), atomically.

    Linux: ``renameat2(RENAME_NOREPLACE)``. Where the kernel, the file system or the C library cannot
    (or elsewhere): a file is hard-linked into place (exclusive) and its old name removed; a folder is
    renamed with plain ``rename``, which never replaces a file or a non-empty folder (only an empty
    folder, which holds nothing, could be replaced there)."""
    src, dst = os.fspath(src), os.fspath(dst)
    fn = _libc_renameat2()
    if fn:
        import ctypes

        at_fdcwd = -100
        if fn(at_fdcwd, os.fsencode(src), at_fdcwd, os.fsencode(dst), _RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), src, None, dst)
    if os.path.isdir(src) and not os.path.islink(src):
        if os.path.lexists(dst) and not (os.path.isdir(dst) and not os.path.islink(dst)):
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), src, None, dst)
        try:
            os.rename(src, dst)
        except OSError as exc:
            if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
                raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), src, None, dst) from None
            raise
        return
    os.link(src, dst)  # FileExistsError if dst exists
    os.unlink(src)


def write_file(path, fill, replace=True, refused=None):
    """Write the file ``path`` atomically: ``fill(fh)`` writes into a temporary file beside it (binary, named by
    :func:`temp_prefix`, 0666 less the umask), which is flushed to disk (``fsync``) and renamed to ``path``;
    after any failure the temporary file is removed and ``path`` is as it was. The one file writer of rda.

    ``replace=False``: ``path`` must still be absent (a file that appeared meanwhile is kept:
    FileExistsError). ``refused``: an error class for a place where no file can be created (one line
    naming ``path``), raised before ``fill`` runs; without it, the OSError."""
    path = Path(path)
    remove_stale(path.parent, path.name)
    try:
        fd, tmp = tempfile.mkstemp(prefix=temp_prefix(path.name), suffix=".tmp", dir=path.parent)
    except OSError as exc:
        if refused is None:
            raise
        raise refused(f"{show_path(path)}: {oserror_line(exc, 'create a file in')}") from None
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp creates 0600; give it the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fill(fh)
            fh.flush()
            os.fsync(fh.fileno())
        if replace:
            os.replace(tmp, path)
        else:
            rename_noreplace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_json(path, value, **dumps):
    """``value`` as JSON (``indent=1``; ``dumps``: more ``json.dumps`` arguments) into ``path``, atomically."""
    data = json.dumps(value, indent=1, **dumps).encode()
    return write_file(path, lambda fh: fh.write(data))


def _numbers_only(arrays):
    for name, a in arrays.items():
        if np.asarray(a).dtype.hasobject:
            raise TypeError(f"array {name!r} holds Python objects; rda writes numbers only")


def write_npz(path, compressed=False, **arrays):
    """``arrays`` into the ``.npz`` file ``path`` (stored as ``np.savez`` writes, or deflated; no pickles),
    atomically."""
    _numbers_only(arrays)
    save = np.savez_compressed if compressed else np.savez
    return write_file(path, lambda fh: save(fh, **arrays))


def write_npy(path, array):
    """``array`` into the ``.npy`` file ``path`` (no pickles), atomically."""
    _numbers_only({"array": array})
    return write_file(path, lambda fh: np.save(fh, array, allow_pickle=False))


def atomic_write_bytes(path, data: bytes):
    """``data`` into ``path`` by :func:`write_file`, its missing folders made first."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return write_file(path, lambda fh: fh.write(data))


def atomic_write_text(path, text: str):
    return atomic_write_bytes(path, text.encode())


_KIND_OF_FILE = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a device"),
                 (stat.S_ISBLK, "a device"), (stat.S_ISSOCK, "a socket"))


def file_kind(mode):
    """``"a FIFO (named pipe)"``, ``"a folder"``... for a ``st_mode`` that is not a regular file's."""
    return next((name for test, name in _KIND_OF_FILE if test(mode)), "not a regular file")


def check_regular(path, limit, what="file", error=RdaError):
    """``os.stat`` of ``path`` (symlinks followed) if it is a regular file of at most ``limit`` bytes; else
    ``error`` (one line naming ``what`` and the path). Opens nothing: a FIFO or device is never touched.
    FileNotFoundError passes through."""
    st = os.stat(path)
    _check_stat(st, _label(path, what), limit, error)
    return st


def _label(path, what):
    return f"{what} {path}" if what else str(path)


def _check_stat(st, label, limit, error):
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{label} is {file_kind(st.st_mode)}, not a regular file; refused")
    if st.st_size > limit:
        raise error(f"{label} is {st.st_size} bytes, more than the {limit}-byte limit; refused")


def open_regular(path, limit=float("inf"), what="file", error=RdaError):
    """``path`` opened for binary reading if it is a regular file of at most ``limit`` bytes, else ``error``
    (one line). Opened with ``O_NONBLOCK`` and checked with ``fstat`` (a FIFO cannot hang the open; a
    FIFO, device, socket or folder is refused before any read). FileNotFoundError passes through."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except IsADirectoryError:
        raise error(f"{_label(path, what)} is a folder, not a file") from None
    try:
        _check_stat(os.fstat(fd), _label(path, what), limit, error)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_capped(path, limit, what="file", error=RdaError):
    """The bytes of the regular file ``path``, at most ``limit`` of them, read without blocking or growing.

    The file is opened with ``O_NONBLOCK`` (a FIFO cannot hang the open), checked with ``fstat`` (a
    FIFO, device, socket or folder is refused before any read), and at most ``limit + 1`` bytes are
    read (a file that grows past ``limit`` while read is refused too). Raises ``error`` (one line
    naming ``what`` and the path) for these; FileNotFoundError and other OSErrors pass through.
    """
    with open_regular(path, limit, what, error) as fh:
        fd = fh.fileno()
        chunks, size = [], 0
        while size <= limit:
            try:
                chunk = os.read(fd, limit + 1 - size)
            except BlockingIOError:  # pragma: no cover - regular files do not block
                raise OSError(errno.EAGAIN, "would block", str(path)) from None
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    if size > limit:
        raise error(f"{_label(path, what)} grew past the {limit}-byte limit while being read; refused")
    return b"".join(chunks)


def read_json(path, limit, what="file", error=RdaError, finite=False):
    """The JSON value in the regular file ``path`` (at most ``limit`` bytes, UTF-8; see :func:`read_capped`).
    Anything unreadable -- not a regular file, too large, or what :func:`parse_json` refuses -- is one
    ``error`` line naming the path; a missing file too. The one JSON reader of rda."""
    try:
        data = read_capped(path, limit, what, error)
    except FileNotFoundError:
        raise error(f"{_label(path, what)} does not exist") from None
    except OSError as exc:
        raise error(f"{_label(path, what)}: {oserror_line(exc, 'read')}") from None
    return parse_json(data, _label(path, what), error, finite)


JSON_MAX_DEPTH = 64  # nesting of any JSON file rda reads (its own files nest at most 4 deep)


class _DuplicateKey(ValueError):
    pass


def _object(pairs):
    """A JSON object's dict; a key that appears twice is refused (``json`` would keep the last silently)."""
    d = dict(pairs)
    if len(d) != len(pairs):
        seen = set()
        raise _DuplicateKey(next(k for k, _ in pairs if k in seen or seen.add(k)))
    return d


def _no_constant(literal):
    raise ValueError(f"non-finite number {literal}")


def _finite_float(text):
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} overflows a float")
    return value


def _too_deep(value, limit):
    """Whether ``value`` nests lists and objects deeper than ``limit`` (walked without recursion)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        children = v.values() if isinstance(v, dict) else v
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def parse_json(data, where, error=RdaError, finite=False):
    """``json.loads(data)`` with every failure one ``error`` line starting with ``where``: not UTF-8, not
    JSON, a key twice in one object, nesting deeper than :data:`JSON_MAX_DEPTH`, an integer of more digits
    than Python converts; with ``finite``, also ``NaN``/``Infinity`` literals and numbers that overflow a
    float (``1e999``)."""
    extra = dict(parse_constant=_no_constant, parse_float=_finite_float) if finite else {}
    try:
        value = json.loads(data.decode("utf-8-sig") if isinstance(data, bytes) else data, object_pairs_hook=_object,
                           **extra)
    except UnicodeDecodeError:
        raise error(f"{where}: not UTF-8 text") from None
    except RecursionError:
        raise error(f"{where}: nested too deeply (more than {JSON_MAX_DEPTH} levels)") from None
    except _DuplicateKey as exc:
        raise error(f"{where}: key {str(exc)[:80]!r} appears twice in one object") from None
    except ValueError as exc:  # JSONDecodeError, or an integer of more digits than Python converts
        raise error(f"{where}: not valid JSON ({' '.join(str(exc).split())[:200]})") from None
    if isinstance(value, (dict, list)) and _too_deep(value, JSON_MAX_DEPTH):
        raise error(f"{where}: nested too deeply (more than {JSON_MAX_DEPTH} levels)")
    return value
