"""Reading one patch from a .npy (or single-array .npz) file, safely.

A prediction directory may hold anything: a file truncated by a killed job,
an object array that would unpickle arbitrary code, a header declaring a
terabyte. So :func:`load_array` reads and checks the declared shape and
dtype *before* touching (or allocating for) the data, and never unpickles.

Accepted files:

* ``.npy``: a numeric array (bool, int, uint, float), 2-D ``(H, W)`` or
  3-D ``(H, W, C)``;
* ``.npz`` (``numpy.savez`` / ``savez_compressed``) holding exactly one such
  array.

The format is recognised by the file's first bytes, not its extension. The
header is parsed once, with numpy's own parser; the data is then read
straight into an array of the checked dtype.
Every failure raises :class:`~tifwriter_cli.errors.SourceFileError` (or
:class:`~tifwriter_cli.errors.PatchError` when the array does not fit the
canvas) with a message naming the file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import math
import os
import stat
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO

import numpy
import numpy.lib.format as npy_format

from .errors import PatchError, SourceFileError
from .spec import CanvasSpec

__all__ = ['ArrayHeader', 'MAX_PATCH_BYTES', 'check_header', 'load_array', 'read_header']

#: Largest patch accepted by default (the whole patch is held in memory).
MAX_PATCH_BYTES = 4 << 30
#: .npy header text limit, numpy's own default (guards ``literal_eval``).
MAX_HEADER_SIZE = 10_000

NPY_MAGIC = b'\x93NUMPY'
ZIP_MAGIC = b'PK\x03\x04'
EMPTY_ZIP_MAGIC = b'PK\x05\x06'

#: dtype kinds a canvas can take after conversion: bool, int, uint, float.
NUMERIC_KINDS = 'biuf'


@dataclasses.dataclass(frozen=True)
class ArrayHeader:
    """What a .npy header (or the .npy member of a .npz) declares.

    ``data_bytes_available``: bytes actually present after the header (the
    file or member size minus the header), to detect truncation up front.
    """

    shape: tuple[int, ...]
    dtype: numpy.dtype
    fortran_order: bool
    npz_member: str | None
    data_bytes_available: int

    @property
    def data_bytes(self) -> int:
        """Bytes the declared array occupies (Python int: never overflows)."""
        return math.prod(self.shape) * self.dtype.itemsize

    def describe(self) -> str:
        return f"shape {self.shape}, dtype {self.dtype}"


def read_header(path: str | os.PathLike) -> ArrayHeader:
    """Parse the header of a .npy file or of the one array in a .npz file.

    Reads a few hundred bytes at most; never the array data.
    """
    with _array_stream(path) as (header, _):
        return header


def check_header(
    header: ArrayHeader,
    spec: CanvasSpec | None,
    *,
    path: str | os.PathLike,
    convert: str = 'exact',
    max_bytes: int = MAX_PATCH_BYTES,
) -> None:
    """Refuse, from the header alone, an array that cannot become a patch of ``spec``.

    Checks the dtype (numeric, no objects), the number of dimensions, the
    channels, the size (not empty, at most ``max_bytes``) and that the file
    really holds the declared bytes. With ``spec`` None only the checks that
    do not depend on the canvas are made.
    """
    dtype, shape = header.dtype, header.shape
    if dtype.hasobject:
        raise SourceFileError(
            f'{path}: holds a pickled object array ({header.describe()}); '
            'only numeric arrays are read (pickles can run arbitrary code)'
        )
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise SourceFileError(
            f'{path}: dtype {dtype} is not a plain numeric type (bool, int, uint, float)'
        )
    if len(shape) not in (2, 3):
        raise PatchError(
            f'{path}: a patch must be 2-D (H, W) or 3-D (H, W, C), this array has '
            f'shape {shape}'
        )
    if any(side <= 0 for side in shape):
        raise PatchError(f'{path}: array is empty (shape {shape})')
    if header.data_bytes_available < header.data_bytes:
        raise SourceFileError(
            f'{path}: truncated: the header declares {header.describe()} = '
            f'{header.data_bytes} bytes of data but only {header.data_bytes_available} '
            'are present'
        )
    if header.data_bytes > max_bytes:
        raise SourceFileError(
            f'{path}: declares {header.describe()} = {header.data_bytes} bytes, more than '
            f'the {max_bytes} bytes a patch may have'
        )
    if spec is None:
        return
    channels = 1 if len(shape) == 2 else shape[2]
    if channels != spec.channels:
        hint = ''
        if len(shape) == 3 and shape[0] == spec.channels:
            hint = ' (it looks channel-first (C, H, W); save it as (H, W, C))'
        raise PatchError(
            f'{path}: {header.describe()} has {channels} channel(s) but the canvas '
            f'has {spec.channels}{hint}'
        )
    if convert == 'scale' and dtype.kind != 'f' and spec.numpy_dtype.kind != 'f':
        raise PatchError(
            f"{path}: convert='scale' maps floats in 0..1, this array is {dtype}"
        )


def load_array(
    path: str | os.PathLike,
    spec: CanvasSpec | None = None,
    *,
    convert: str = 'exact',
    max_bytes: int = MAX_PATCH_BYTES,
) -> numpy.ndarray:
    """The array of a .npy / single-array .npz file, checked before it is read.

    See :func:`check_header` for what is refused. The data is then read
    straight into an array of the checked dtype (nothing is ever unpickled).
    Value conversion to the canvas dtype is not done here (see
    :func:`tifwriter_cli.convert.as_canvas_patch`).
    """
    with _array_stream(path) as (header, stream):
        check_header(header, spec, path=path, convert=convert, max_bytes=max_bytes)
        try:
            array = _read_data(stream, header)
        except OSError as exc:
            raise SourceFileError(f'{path}: cannot read: {exc.strerror or exc}') from None
        except (zipfile.BadZipFile, zlib.error) as exc:
            raise SourceFileError(f'{path}: damaged .npz data: {_first_line(exc)}') from None
    if array is None:
        # The header was checked against the file size: it shrank since.
        raise SourceFileError(f'{path}: changed while being read (fewer bytes than declared)')
    return array


@contextlib.contextmanager
def _array_stream(path: str | os.PathLike) -> Iterator[tuple[ArrayHeader, IO[bytes]]]:
    """(header, stream positioned at the array data) of a .npy or single-array .npz."""
    try:
        with _open_regular_file(path) as fh:
            magic = fh.read(len(NPY_MAGIC))
            if magic == NPY_MAGIC:
                size = os.fstat(fh.fileno()).st_size
                yield _parse_npy_header(fh, path, stream_size=size, member=None), fh
                return
            if magic[:4] == ZIP_MAGIC:
                fh.seek(0)
                with zipfile.ZipFile(fh) as archive:
                    info = _single_member(archive, path)
                    with archive.open(info) as member:
                        if member.read(len(NPY_MAGIC)) != NPY_MAGIC:
                            raise SourceFileError(f'{path}: member {info.filename} is not a .npy array')
                        header = _parse_npy_header(
                            member, path, stream_size=info.file_size, member=info.filename
                        )
                        yield header, member
                        return
    except (zipfile.BadZipFile, zlib.error) as exc:
        raise SourceFileError(f'{path}: damaged .npz (zip) file: {_first_line(exc)}') from None
    except OSError as exc:
        raise SourceFileError(f'{path}: cannot read: {exc.strerror or exc}') from None
    if magic[:4] == EMPTY_ZIP_MAGIC:
        raise SourceFileError(f'{path}: .npz file holds no array')
    if not magic:
        raise SourceFileError(f'{path}: file is empty')
    raise SourceFileError(f'{path}: not a .npy or .npz file (starts with {magic!r})')


def _open_regular_file(path: str | os.PathLike) -> IO[bytes]:
    """``open(path, 'rb')``, refusing what is not a regular file.

    Opened non-blocking first and checked with fstat (no race with a
    rename): a FIFO given as a patch blocked ``open()`` forever.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, 'O_NONBLOCK', 0) | getattr(os, 'O_CLOEXEC', 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            what = (
                'a directory' if stat.S_ISDIR(mode)
                else 'a FIFO (named pipe)' if stat.S_ISFIFO(mode)
                else 'a socket' if stat.S_ISSOCK(mode)
                else 'a device' if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                else 'something other than a regular file'
            )
            raise SourceFileError(f'{path}: is {what}, not a .npy/.npz file')
        if hasattr(os, 'set_blocking'):
            os.set_blocking(fd, True)
        return os.fdopen(fd, 'rb')
    except BaseException:
        os.close(fd)
        raise


def _single_member(archive: zipfile.ZipFile, path: str | os.PathLike) -> zipfile.ZipInfo:
    members = [info for info in archive.infolist() if not info.is_dir()]
    if len(members) != 1:
        names = ', '.join(info.filename for info in members[:5])
        raise SourceFileError(
            f'{path}: a .npz must hold exactly one array, this one holds '
            f'{len(members)}' + (f' ({names})' if names else '')
        )
    return members[0]


def _parse_npy_header(
    fh: IO[bytes], path: str | os.PathLike, *, stream_size: int, member: str | None
) -> ArrayHeader:
    """Parse the header after the magic prefix, which the caller has read."""
    where = f'{path}' if member is None else f'{path} (member {member})'
    try:
        version = tuple(fh.read(2))
        if version == (1, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_1_0(
                fh, max_header_size=MAX_HEADER_SIZE
            )
        elif version == (2, 0):
            shape, fortran_order, dtype = npy_format.read_array_header_2_0(
                fh, max_header_size=MAX_HEADER_SIZE
            )
        else:
            # Version 3 exists only for structured dtypes with non-Latin-1
            # field names, which are refused anyway.
            raise SourceFileError(f'{where}: unsupported .npy format version {version}')
        offset = fh.tell()
    except SourceFileError:
        raise
    except (zipfile.BadZipFile, zlib.error, OSError):
        raise
    except Exception as exc:
        # Untrusted bytes through numpy's header parser (literal_eval, and
        # tokenize for Python-2 era headers) fail in many ways; all of them
        # mean the same thing here.
        raise SourceFileError(f'{where}: damaged .npy header: {_first_line(exc)}') from None
    return ArrayHeader(
        shape=tuple(shape),
        dtype=dtype,
        fortran_order=bool(fortran_order),
        npz_member=member,
        data_bytes_available=max(stream_size - offset, 0),
    )


def _read_data(stream: IO[bytes], header: ArrayHeader) -> numpy.ndarray | None:
    """The checked header's array from ``stream``; None if the data is short."""
    count = math.prod(header.shape)
    if isinstance(stream, io.BufferedReader):
        # A real file: fromfile reads straight into the new array.
        flat = numpy.fromfile(stream, dtype=header.dtype, count=count)
        if flat.size != count:
            return None
    else:
        buffer = bytearray(header.data_bytes)
        view = memoryview(buffer)
        got = 0
        while got < len(buffer):
            n = stream.readinto(view[got:])
            if not n:
                return None
            got += n
        flat = numpy.frombuffer(buffer, dtype=header.dtype)
    if header.fortran_order:
        return flat.reshape(header.shape[::-1]).transpose()
    return flat.reshape(header.shape)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
