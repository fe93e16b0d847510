"""Checksums of staged data: how corruption is detected before it is finalized.

Every fragment written by this tifwriter (fragment format 2) carries

* per patch, the CRC-32 of its pixels as stored in the canvas dtype
  (C order, before compression), in the index column ``crc32``;
* for the whole fragment, the CRC-32 of its index and source tables,
  in the root attribute ``tables_crc32``.

Readers check the tables' checksum when a fragment's index is loaded and a
patch's checksum each time its pixels are decoded, so a flipped byte on disk
or a truncated copy makes ``finalize``, ``info`` and ``verify`` stop with
:class:`~tifwriter_cli.errors.CorruptFragmentError`, naming the fragment and
the remedy, instead of writing a silently different TIFF. Fragments of
format 1 carry no checksums and are read unchecked.

CRC-32 through imagecodecs' zlib-ng/libdeflate (about 3 GB/s here, outside
the GIL), not zlib's (about 1 GB/s).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy

from ..errors import CorruptFragmentError

__all__ = ['crc32', 'tables_checksum', 'check_tables', 'check_tables_checksum', 'check_patch', 'corrupt']


def crc32(data: Any) -> int:
    """CRC-32 of a buffer (a contiguous array or bytes)."""
    try:
        import imagecodecs

        return int(imagecodecs.deflate_crc32(data)) & 0xFFFFFFFF
    except (ImportError, AttributeError):  # pragma: no cover - imagecodecs is a core dependency
        import zlib

        return zlib.crc32(data) & 0xFFFFFFFF


def tables_checksum(index: numpy.ndarray, sources: Sequence[tuple]) -> int:
    """CRC-32 of a fragment's index rows (as written) and its source records."""
    import zlib

    # zlib, not imagecodecs: tables are small, and a writer publishing only
    # uniform patches then never imports imagecodecs (0.3 s).
    value = zlib.crc32(numpy.ascontiguousarray(index).tobytes())
    text = '\n'.join('\t'.join(str(field) for field in record) for record in sources)
    return zlib.crc32(text.encode('utf-8', 'surrogateescape'), value) & 0xFFFFFFFF


def corrupt(path: Path | str, what: str, sequence: int | None = None) -> CorruptFragmentError:
    """The one message for a damaged fragment: which, what, and the remedy.

    ``sequence`` defaults to the number in the fragment's file name."""
    if sequence is None and Path(path).stem.isdigit():
        sequence = int(Path(path).stem)
    number = sequence if sequence is not None else 'N'
    error = CorruptFragmentError(
        f'fragment {path} is damaged: {what}; nothing was finalized from it; withdraw it with '
        f'unstage(staging, fragment={number}) and re-run the job that wrote it'
    )
    error.sequence = sequence
    return error


def check_tables(
    h5: Any, stored_index: numpy.ndarray, sources: Sequence[tuple], path: Path, sequence: int | None
) -> None:
    """Raise :class:`CorruptFragmentError` if the tables do not match their checksum."""
    from .h5io import read_attribute

    check_tables_checksum(stored_index, sources, read_attribute(h5, 'tables_crc32'), path, sequence)


def check_tables_checksum(
    stored_index: numpy.ndarray, sources: Sequence[tuple], expected: Any, path: Path, sequence: int | None = None
) -> None:
    """Raise :class:`CorruptFragmentError` unless the tables match ``expected``
    (their ``tables_crc32``; None: format 1, no checksums)."""
    if expected is None:
        return
    if tables_checksum(stored_index, sources) != int(expected):
        raise corrupt(path, 'its index does not match its checksum', sequence)


def check_patch(
    pixels: numpy.ndarray, expected: int, path: Path, number: int, sequence: int | None
) -> None:
    """Raise :class:`CorruptFragmentError` if a patch's pixels do not match its checksum."""
    if crc32(numpy.ascontiguousarray(pixels)) != expected:
        raise corrupt(path, f'patch {number} does not match its checksum', sequence)
