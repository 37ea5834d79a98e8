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
- no array larger than :func:`memory_cap` (half the machine's physical memory) is allocated.

Memory while reading: the array itself (bounded as above), plus a few KiB of headers.
"""

from __future__ import annotations

import math
import os
import zipfile

import numpy as np

from .data import DataError

__all__ = ["ArrayFileError", "memory_cap", "read_npy", "NpzArrays", "DEFLATE_MAX_RATIO", "MAX_MEMBERS"]

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
    if dtype.hasobject or dtype.kind not in "biuf":
        raise ArrayFileError(f"{where} has dtype {dtype}, expected numbers (rda reads no pickled objects)")
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
    with open(path, "rb") as fh:
        shape, dtype, nbytes = _header(fh, str(path))
        available = os.fstat(fh.fileno()).st_size - fh.tell()
    _check_fits(str(path), shape, dtype, nbytes, available, cap)
    return np.load(path, allow_pickle=False)


class NpzArrays:
    """The arrays of an ``.npz`` file, checked as the module docstring says; use as a context manager.

    ``names``: the members' array names (``.npy`` stripped); :meth:`shape` reads one header;
    :meth:`load` reads one array.
    """

    def __init__(self, path, cap=None):
        self.path = str(path)
        self.cap = memory_cap() if cap is None else cap
        try:
            self._zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as exc:
            raise ArrayFileError(f"{path}: not an .npz (zip) file ({' '.join(str(exc).split())[:200]})") from None
        infos = self._zip.infolist()
        if len(infos) > MAX_MEMBERS:
            self._zip.close()
            raise ArrayFileError(f"{path} holds {len(infos)} members, more than the {MAX_MEMBERS} rda reads")
        size = os.path.getsize(path)
        lying = [i.filename for i in infos if i.header_offset + i.compress_size > size]
        if lying:
            self._zip.close()
            raise ArrayFileError(f"{path}: member {lying[0]!r} declares more compressed bytes than the file holds: "
                                 "damaged or crafted")
        self._infos = {(i.filename[:-4] if i.filename.endswith(".npy") else i.filename): i for i in infos}
        self.names = list(self._infos)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._zip.close()

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

    def load(self, name):
        info, where = self._member(name)
        try:
            with self._zip.open(info) as fh:
                shape, dtype, nbytes = _header(fh, where)
                _check_fits(where, shape, dtype, nbytes, info.file_size - fh.tell(), self.cap)
                fh.seek(0)
                return np.lib.format.read_array(fh, allow_pickle=False, max_header_size=MAX_HEADER)
        except ArrayFileError:
            raise
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise ArrayFileError(f"{where}: cannot read it ({' '.join(str(exc).split())[:200]})") from None
