"""Atomic outputs: write to a temp file beside the target, then rename.

A reader (or ``make``) therefore sees either the old output, or no output,
or the complete new one, never a half-written file. On any failure,
including KeyboardInterrupt, the temp file is removed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import InvalidOptionError, NotOursError, OutputExistsError
from .markers import FRAGMENTS_SUFFIX, STAGING_FORMAT_NAME

__all__ = [
    'atomic_output',
    'check_output_path',
    'enclosing_staging_unit',
    'fsync_directory',
    'made_by_tifwriter',
]


def check_output_path(
    path: str | os.PathLike,
    *,
    overwrite: bool,
    inputs: Iterable[str | os.PathLike | None] = (),
    suffix: str | None = None,
) -> Path:
    """The one guard of every output tifwriter writes, checked before any work.

    Refused, each with one line: a directory; a path without ``suffix``
    (e.g. '.png'); a path inside a staging unit's fragments directory; a
    path that is one of ``inputs`` (the staging unit, ``--like``,
    ``--overlay``); an existing file without ``overwrite``; and, even with
    ``overwrite``, an existing file tifwriter did not make
    (:func:`made_by_tifwriter`): ``--overwrite`` never destroys a slide or
    anyone else's TIFF or PNG.
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidOptionError(f'{path} is a directory, not a file path')
    staging = enclosing_staging_unit(path)
    if staging is not None:
        raise InvalidOptionError(
            f'{path} is inside the fragments directory of the staging unit {staging}; '
            'write outputs elsewhere'
        )
    for source in inputs:
        if source is not None and _same_path(path, Path(source)):
            raise InvalidOptionError(f'output {path} is also an input ({source}); choose another output')
    if suffix is not None and path.suffix.lower() != suffix:
        raise InvalidOptionError(f'{path}: the output must be a {suffix} file (name it *{suffix})')
    if path.exists() or path.is_symlink():
        if not overwrite:
            raise OutputExistsError(f'{path} exists (use overwrite=True to replace it)')
        if made_by_tifwriter(path) is None:
            raise NotOursError(
                f'{path} exists and was not made by tifwriter: overwrite=True only replaces '
                "tifwriter's own outputs (a staging file, a TIFF, PNG or annotation file it wrote); "
                'move or delete it yourself'
            )
    parent = path.parent if str(path.parent) else Path('.')
    if not parent.is_dir():
        raise InvalidOptionError(f'directory {parent} does not exist')
    if not os.access(parent, os.W_OK):
        raise InvalidOptionError(f'directory {parent} is not writable')
    return path


_HDF5_SIGNATURE = b'\x89HDF\r\n\x1a\n'
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
_TIFF_SIGNATURES = (b'II*\x00', b'MM\x00*', b'II+\x00', b'MM\x00+')
#: The text tifwriter's PNGs carry (tEXt chunk 'Software') and its TIFFs
#: start their Software tag / ImageDescription with.
PROVENANCE_PREFIX = 'tifwriter'


def enclosing_staging_unit(path: str | os.PathLike) -> Path | None:
    """The staging file whose fragments directory holds ``path``, if any."""
    directory = Path(os.path.realpath(Path(path).parent if str(Path(path).parent) else '.'))
    for folder in (directory, *directory.parents):
        if folder.name.endswith(FRAGMENTS_SUFFIX) and len(folder.name) > len(FRAGMENTS_SUFFIX):
            staging = folder.with_name(folder.name[: -len(FRAGMENTS_SUFFIX)])
            if staging.is_file():
                return staging
    return None


def made_by_tifwriter(path: str | os.PathLike) -> str | None:
    """'staging', 'tiff', 'png' or 'annotations' when tifwriter made the file at ``path``
    (by its format marker or provenance), else None. Cheap: reads headers only."""
    try:
        with open(path, 'rb') as fh:
            head = fh.read(8)
    except OSError:
        return None
    try:
        if head == _HDF5_SIGNATURE:
            import h5py

            with h5py.File(path, 'r', locking=False) as h5:
                fmt = h5.attrs.get('format')
            fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
            return 'staging' if fmt == STAGING_FORMAT_NAME else None
        if head[:4] in _TIFF_SIGNATURES:
            from .tiff.read import open_tiff

            with open_tiff(path) as tif:
                page = tif.pages.first
                texts = (page.software or '', page.description or '')
            return 'tiff' if any(t.startswith(PROVENANCE_PREFIX) for t in texts) else None
        if head == _PNG_SIGNATURE:
            return 'png' if png_software(path).startswith(PROVENANCE_PREFIX) else None
        if head[:1] in (b'{', b'<'):
            return 'annotations' if _annotation_file_ours(path) else None
    except Exception:  # unreadable, truncated: certainly not something we can vouch for
        return None
    return None


def png_software(path: str | os.PathLike) -> str:
    """The 'Software' tEXt of a PNG ('' if none), from the chunks before IDAT."""
    import struct

    with open(path, 'rb') as fh:
        fh.seek(8)
        while True:
            header = fh.read(8)
            if len(header) < 8:
                return ''
            length, kind = struct.unpack('>I4s', header)
            if kind in (b'IDAT', b'IEND'):
                return ''
            data = fh.read(length)
            fh.seek(4, os.SEEK_CUR)  # CRC
            if kind == b'tEXt':
                keyword, _, text = data.partition(b'\0')
                if keyword == b'Software':
                    return text.decode('latin-1')


#: How our annotation files begin (annotations/writers.py writes them).
_ANNOTATION_HEADS = (b'{"type": "FeatureCollection", "generator": "tifwriter ', b'<?xml version="1.0"?>\n<!-- tifwriter ')


def _annotation_file_ours(path: str | os.PathLike) -> bool:
    with open(path, 'rb') as fh:
        head = fh.read(80)
    return any(head.startswith(marker) for marker in _ANNOTATION_HEADS)


def png_with_software(encoded: bytes, software: str) -> bytes:
    """A PNG with a 'Software' tEXt chunk inserted after IHDR (our provenance)."""
    import struct
    import zlib

    if encoded[:8] != _PNG_SIGNATURE:
        raise ValueError('not a PNG')
    ihdr_end = 8 + 8 + struct.unpack('>I', encoded[8:12])[0] + 4
    data = b'Software\0' + software.encode('latin-1')
    chunk = struct.pack('>I', len(data)) + b'tEXt' + data + struct.pack('>I', zlib.crc32(b'tEXt' + data))
    return encoded[:ihdr_end] + chunk + encoded[ihdr_end:]


def _same_path(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return os.path.realpath(a) == os.path.realpath(b)


def fsync_directory(path: str | os.PathLike) -> None:
    """Make a rename in ``path`` durable (best effort on odd filesystems)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_output(
    path: str | os.PathLike, *, overwrite: bool = False, fsync: bool = True
) -> Iterator[Path]:
    """Yield a temp path in the target's directory; rename it to ``path`` on success.

    Example::

        with atomic_output('out.tif', overwrite=True) as tmp:
            write_everything(tmp)
    """
    path = check_output_path(path, overwrite=overwrite)
    # SIGTERM/SIGINT held off until the temp file is inside the try below:
    # a signal between its creation and the try would leave it behind.
    blocked = _block_signals()
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f'.{path.name}.', suffix='.tmp', dir=path.parent or '.'
        )
    except BaseException:
        _unblock_signals(blocked)
        raise
    tmp = Path(tmp_name)
    try:
        os.close(fd)
        _unblock_signals(blocked)
        # mkstemp creates 0600; an output is shared like any file the user
        # writes, so give it the permissions the umask allows.
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        if fsync:
            with open(tmp, 'rb+') as fh:
                os.fsync(fh.fileno())
        # Checked again: another process may have created it meanwhile.
        if path.exists() and not overwrite:
            raise OutputExistsError(f'{path} exists (use overwrite=True to replace it)')
        os.replace(tmp, path)
        if fsync:
            fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _block_signals() -> object:
    import signal

    try:
        return signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    except (AttributeError, OSError, ValueError):  # platforms without it
        return None


def _unblock_signals(previous: object) -> None:
    import signal

    if previous is not None:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _umask() -> int:
    """The process umask (read without changing it where Linux allows)."""
    try:
        with open('/proc/self/status') as fh:
            for line in fh:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
