"""Reading ``.npy`` and ``.npz`` files without trusting the sizes they declare.

A ``.npy`` header declares a shape and a dtype; NumPy allocates that much before reading. A ``.npz``
file is a zip archive whose directory declares each member's uncompressed size. Both are checked
before any array is allocated, so that a small crafted file cannot take the machine:

- no pickled objects (``allow_pickle=False``) and only boolean or numeric dtypes;
- a ``.npy`` file must hold the bytes its header declares (a 100-byte file declaring 10^12
  elements is refused at once);
- a ``.npz`` member must be stored or deflated (as NumPy writes them), may declare at most
  :data:`DEFLATE_MAX_RATIO` times its compressed size (deflate cannot expand further), and must
  declare at least the bytes its ``.npy`` header needs; a zip of more than :data:`MAX_MEMBERS`
  members is refused;
- no array larger than :func:`memory_cap` (half the machine's physical memory), or than the caller's
  ``cap``, is allocated;
- the file must be a regular file (a FIFO, a device such as ``/dev/zero``, a socket or a folder, also
  behind a symlink, is refused before any read; a FIFO cannot hang the open).

:func:`read_npz` is the reader for files of known content (a model folder's arrays): exactly the
members asked for, each declared shape checked against the expected one before it is inflated.

Memory while reading: the array itself (bounded as above), plus a few KiB of headers.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

from .errors import DataError
from .safeio import open_regular

__all__ = ["ArrayFileError", "memory_cap", "read_npy", "read_npz", "read_zip", "NpzArrays", "DEFLATE_MAX_RATIO",
           "MAX_MEMBERS"]

DEFLATE_MAX_RATIO = 1032  # deflate's largest possible expansion (258-byte matches from 2-bit codes)
MAX_MEMBERS = 1024
MAX_HEADER = 10_000  # bytes of .npy header (NumPy's own default limit)


class ArrayFileError(DataError):
    """An ``.npy`` / ``.npz`` file that declares more than it holds, or holds what rda does not read."""


def memory_cap():
    """The most bytes an array read from a file may take: half the physical memory (1 GiB if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 1 << 30


def _size(n):
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n:.3g} EB"  # pragma: no cover


def _header(fh, where):
    """``(shape, dtype, nbytes)`` from the ``.npy`` header at ``fh``'s position."""
    fmt = np.lib.format
    try:
        version = fmt.read_magic(fh)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, _fortran, dtype = read(fh, max_header_size=MAX_HEADER)
    except (ValueError, EOFError, OSError, SyntaxError, TypeError) as exc:
        raise ArrayFileError(f"{where}: not a readable .npy array ({' '.join(str(exc).split())[:200]})") from None
    if dtype.hasobject:
        raise ArrayFileError(f"{where} has dtype {dtype} (Python objects), expected numbers (rda reads no pickled "
                             "objects)")
    if dtype.kind not in "biuf":
        what = {"U": "text", "S": "bytes", "c": "complex numbers", "M": "dates", "m": "time spans"}.get(dtype.kind)
        raise ArrayFileError(f"{where} has dtype {dtype}{f' ({what})' if what else ''}, expected numbers")
    nbytes = math.prod(shape) * dtype.itemsize
    return shape, dtype, nbytes


def _check_fits(where, shape, dtype, nbytes, available, cap):
    if nbytes > available:
        raise ArrayFileError(f"{where} declares shape {shape} of {dtype} ({_size(nbytes)}) but holds only "
                             f"{_size(available)}: damaged or crafted")
    need = math.prod(shape) * 8  # read as float64
    if max(nbytes, need) > cap:
        raise ArrayFileError(f"{where} declares shape {shape} ({_size(max(nbytes, need))} as float64), more than "
                             f"rda reads into memory ({_size(cap)}, half the physical memory)")


def read_npy(path, cap=None):
    """The array in a ``.npy`` file, after checking its header against the file's size and ``cap``."""
    cap = memory_cap() if cap is None else cap
    with open_regular(path, what="", error=ArrayFileError) as fh:
        shape, dtype, nbytes = _header(fh, str(path))
        available = os.fstat(fh.fileno()).st_size - fh.tell()
        _check_fits(str(path), shape, dtype, nbytes, available, cap)
        fh.seek(0)
        return np.lib.format.read_array(fh, allow_pickle=False, max_header_size=MAX_HEADER)


class NpzArrays:
    """The arrays of an ``.npz`` file, checked as the module docstring says; use as a context manager.

    ``names``: the members' array names (``.npy`` stripped); :meth:`shape` reads one header;
    :meth:`load` reads one array.
    """

    def __init__(self, path, cap=None, stored_only=False):
        self.path = str(path)
        self.stored_only = stored_only
        self.cap = memory_cap() if cap is None else min(cap, memory_cap())
        fh = open_regular(path, what="", error=ArrayFileError)
        try:
            self._zip = zipfile.ZipFile(fh)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            fh.close()
            raise ArrayFileError(f"{path}: not an .npz (zip) file ({' '.join(str(exc).split())[:200]})") from None
        self._fh = fh
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            self.close()
            raise ArrayFileError(f"{path} holds {len(infos)} members, more than the {MAX_MEMBERS} rda reads")
        size = os.fstat(fh.fileno()).st_size
        lying = [i.filename for i in infos if i.header_offset + i.compress_size > size]
        if lying:
            self.close()
            raise ArrayFileError(f"{path}: member {lying[0]!r} declares more compressed bytes than the file holds: "
                                 "damaged or crafted")
        self._infos = {(i.filename[:-4] if i.filename.endswith(".npy") else i.filename): i for i in infos}
        self.names = list(self._infos)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self._zip.close()
        self._fh.close()

    def _member(self, name):
        info = self._infos[name]
        where = f"{self.path}: array {name!r}"
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise ArrayFileError(f"{where} is compressed with zip method {info.compress_type}; rda reads stored or "
                                 "deflated members (as NumPy writes them)")
        bound = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
            DEFLATE_MAX_RATIO * info.compress_size + 1024
        if info.file_size > bound:
            raise ArrayFileError(f"{where} declares {_size(info.file_size)} uncompressed from "
                                 f"{_size(info.compress_size)}, more than its compression can give: damaged or crafted")
        return info, where

    def shape(self, name):
        """``(shape, dtype)`` from the member's header (a few KiB decompressed)."""
        info, where = self._member(name)
        try:
            with self._zip.open(info) as fh:
                shape, dtype, _ = _header(fh, where)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ArrayFileError(f"{where}: cannot read it ({' '.join(str(exc).split())[:200]})") from None
        return shape, dtype

    def load(self, name, expected=None):
        """The member's array; ``expected``: its shape (``None`` for any length on an axis), checked from the
        header before anything is inflated."""
        info, where = self._member(name)
        try:
            with self._zip.open(info) as fh:
                shape, dtype, nbytes = _header(fh, where)
                if expected is not None and (len(shape) != len(expected) or any(
                        e is not None and s != e for s, e in zip(shape, expected))):
                    want = "(" + ", ".join("n" if e is None else str(e) for e in expected) + ("," if len(expected) == 1
                                                                                             else "") + ")"
                    raise ArrayFileError(f"{where} declares shape {shape}, expected {want}")
                held = min(info.file_size, info.compress_size) if self.stored_only else info.file_size
                _check_fits(where, shape, dtype, nbytes, held - fh.tell(), self.cap)
                fh.seek(0)
                return np.lib.format.read_array(fh, allow_pickle=False, max_header_size=MAX_HEADER)
        except ArrayFileError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ArrayFileError(f"{where}: cannot read it ({' '.join(str(exc).split())[:200]})") from None


def read_npz(path, expected, optional=(), cap=None, finite=True, stored_only=False):
    """``{name: array}`` from the ``.npz`` file ``path`` whose content is known: the members ``expected``
    (a dict ``name -> shape``, ``None`` for any length on an axis, or ``None`` for any shape) and those
    of ``optional`` (names of ``expected``) that it holds, and nothing else.

    Checked before any array is allocated (see the module docstring): a regular file, no pickles,
    each member's declared inflated size against its compression and the bytes its header needs, its
    declared shape against ``expected``, its bytes against ``cap`` (default: :func:`memory_cap`).
    With ``finite``, a float array holding NaN or infinities is refused. With ``stored_only`` (files rda
    wrote with ``np.savez``, which stores its members) a member must hold its declared bytes uncompressed:
    nothing is inflated at all. Every fault is one
    :class:`ArrayFileError` line naming the path; a missing file is FileNotFoundError.
    """
    path = str(path)
    with NpzArrays(path, cap, stored_only) as arrays:
        extra = [k for k in arrays.names if k not in expected]
        if extra:
            raise ArrayFileError(f"{path}: unexpected array {extra[0][:80]!r}")
        missing = [k for k in expected if k not in arrays.names and k not in optional]
        if missing:
            raise ArrayFileError(f"{path}: missing array(s) {', '.join(missing)}")
        out = {k: arrays.load(k, expected[k]) for k in expected if k in arrays.names}
    if finite:
        bad = next((k for k, a in out.items() if a.dtype.kind == "f" and not np.isfinite(a).all()), None)
        if bad is not None:
            raise ArrayFileError(f"{path}: {bad} holds NaN or infinite values")
    return out


def read_zip(path, limit, caps, kind, error, read=()):
    """Check the zip file ``path`` before anything else reads it, and return ``{name: bytes}`` of its members
    ``read``: a regular file within ``limit`` bytes whose members are each named in ``caps`` (once), stored
    or deflated, declaring no more than their cap and than their compression can give, and lying within
    the file. ``kind`` names the file in messages (``"a Keras model file rda wrote"``); faults: ``error``."""
    def one_line(exc):
        return " ".join(str(exc).split())[:200]

    try:
        with open_regular(path, limit, "", error) as fh:
            size = os.fstat(fh.fileno()).st_size
            with zipfile.ZipFile(fh) as z:
                infos = z.infolist()
                if len(infos) > len(caps) or len({i.filename for i in infos}) != len(infos):
                    raise error(f"{path}: holds {len(infos)} members; {kind} holds {', '.join(caps)}, once each")
                for info in infos:
                    cap = caps.get(info.filename)
                    if cap is None:
                        raise error(f"{path}: holds {info.filename[:80]!r}, not a member of {kind}")
                    bound = info.compress_size if info.compress_type == zipfile.ZIP_STORED else \
                        DEFLATE_MAX_RATIO * info.compress_size + 1024
                    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or \
                            info.file_size > min(cap, bound) or info.header_offset + info.compress_size > size:
                        raise error(f"{path}: member {info.filename!r} declares {info.file_size} bytes (from "
                                    f"{info.compress_size} compressed), more than its limit of {cap} bytes or than "
                                    "its compression can give: damaged or crafted")
                return {name: z.read(name) for name in read}  # each within its checked declared size
    except FileNotFoundError:
        raise error(f"{path} does not exist") from None
    except error:
        raise
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise error(f"{path}: not {kind.split(' rda wrote')[0]} ({one_line(exc)})") from None
