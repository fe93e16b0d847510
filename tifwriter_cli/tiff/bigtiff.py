"""A small streaming BigTIFF writer for tiled pyramids.

Why not tifffile's ``TiffWriter``: it writes one page at a time, its tiles in
order, so a pyramid would need every lower level held in memory (or the
canvas read once per level) until level 0 is done; and it stores every tile's
bytes, however many are identical. This writer takes encoded tiles of any
level in any order, so the native engine (:mod:`tifwriter_cli.engines.native`)
writes all levels in ONE pass over the canvas, and it stores identical tiles
once (a slide's background is one tile repeated thousands of times). The
files are checked against tifffile, OpenSlide, ASAP's reader and the other
readers in the tests (docs/compatibility.md).

Encoded tiles are appended to the file as they come (any level, any order).
Identical encoded tiles are stored once: a digest of the bytes maps to the
offset of the first copy, and every later tile with the same digest points
there (the background of a slide is mostly one tile repeated). At
:meth:`BigTiffWriter.close` one IFD per level is written after the tile data,
level 0 first, every lower level a top-level IFD in the same chain with
NewSubfileType 1 (see docs/compatibility.md), and the header is patched to
point at the first IFD.

With ``ImageInfo.subifds`` (the OME-TIFF flavour) the reduced levels are
instead listed in level 0's SubIFDs tag (type IFD8) and level 0 is the only
IFD of the chain: that is where Bio-Formats looks for an OME-TIFF's
resolutions (and where ASAP and OpenSlide do not).

The writer refuses to close while any tile is missing: readers must never
see a TileByteCount of 0.
"""

from __future__ import annotations

import dataclasses
import fractions
import hashlib
import os
import struct
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy

from .plan import LevelPlan

__all__ = ['BigTiffWriter', 'ImageInfo', 'rational', 'tile_digest']

# TIFF field types.
BYTE, ASCII, SHORT, LONG, RATIONAL, DOUBLE, LONG8, IFD8 = 1, 2, 3, 4, 5, 12, 16, 18
_TYPE_FORMAT = {
    BYTE: 'B', ASCII: 's', SHORT: 'H', LONG: 'I', RATIONAL: 'I', DOUBLE: 'd', LONG8: 'Q', IFD8: 'Q'
}
_TYPE_SIZE = {BYTE: 1, ASCII: 1, SHORT: 2, LONG: 4, RATIONAL: 8, DOUBLE: 8, LONG8: 8, IFD8: 8}

#: Bytes of tile data buffered before a write() system call.
_WRITE_BUFFER = 1 << 20


def tile_digest(data: bytes) -> bytes:
    """Identity of an encoded tile for de-duplication (128-bit BLAKE2b)."""
    return hashlib.blake2b(data, digest_size=16).digest()


def rational(value: float) -> tuple[int, int]:
    """(numerator, denominator), both < 2**32, closest to ``value`` > 0."""
    limit = 2**32 - 1
    value = float(value)
    max_denominator = max(1, min(limit, int(limit / value))) if value > 0 else limit
    fraction = fractions.Fraction(value).limit_denominator(max_denominator)
    numerator, denominator = fraction.numerator, fraction.denominator
    if numerator > limit:  # value itself is >= 2**32
        return limit, 1
    if numerator == 0:
        return 1, limit
    return numerator, denominator


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """Everything the IFDs say besides the tile tables."""

    dtype: str
    channels: int
    compression: int
    photometric: int
    extra_samples: tuple[int, ...] = ()
    #: Extra (tag, type, values) entries on every level (e.g. YCbCr tags).
    extra_tags: tuple[tuple[int, int, tuple[Any, ...]], ...] = ()
    #: Level-0 pixels per centimetre (x, y), or None when spacing is unknown.
    pixels_per_cm: tuple[float, float] | None = None
    description: str = ''
    software: str = ''
    #: Reduced levels in level 0's SubIFDs instead of the IFD chain (OME-TIFF).
    subifds: bool = False


class BigTiffWriter:
    """Write a tiled pyramid to ``path``: tiles first, IFDs at close.

    Example::

        with BigTiffWriter(path, levels, info) as tiff:
            for level, row, col, data in encoded_tiles:
                tiff.write_tile(level, row, col, data)
            tiff.set_sample_range(minimums, maximums)
        # leaving the block without an exception writes the IFDs
    """

    def __init__(self, path: str | os.PathLike, levels: Sequence[LevelPlan], info: ImageInfo):
        self.levels = list(levels)
        self.info = info
        self._dtype = numpy.dtype(info.dtype)
        self._offsets = [numpy.zeros(level.tile_count, dtype='<u8') for level in self.levels]
        self._counts = [numpy.zeros(level.tile_count, dtype='<u8') for level in self.levels]
        self._stored: dict[bytes, tuple[int, int]] = {}
        self._sample_range: tuple[Sequence[float], Sequence[float]] | None = None
        self._subifd_offsets: list[int] = []
        self.tiles_written = 0
        self.bytes_stored = 0
        self._fh: BinaryIO = open(path, 'wb', buffering=_WRITE_BUFFER)  # noqa: SIM115
        # Header; the first-IFD offset (bytes 8..16) is patched at close.
        self._fh.write(b'II' + struct.pack('<HHHQ', 43, 8, 0, 0))
        self._position = 16
        self.closed = False

    # -- tiles -----------------------------------------------------------
    @property
    def tiles_stored(self) -> int:
        """Distinct encoded tiles actually in the file."""
        return len(self._stored)

    def write_tile(
        self, level: int, row: int, col: int, data: bytes, digest: bytes | None = None, *, count: int = 1
    ) -> None:
        """Record tile (row, col) of ``level``, or with ``count`` the run of
        tiles (row, col) .. (row, col + count - 1) that share ``data`` (a
        run of uniform tiles: a sparse 160k canvas has ~100k of them, set in
        one slice instead of one call each); bytes already stored are shared."""
        if not data:
            raise ValueError('empty tile data (readers refuse TileByteCount 0)')
        plan = self.levels[level]
        if not (0 <= row < plan.tiles_down and 0 <= col and count >= 1 and col + count <= plan.tiles_across):
            raise IndexError(f'tile ({row}, {col}) x {count} outside level {level}')
        key = digest if digest is not None else tile_digest(data)
        stored = self._stored.get(key)
        if stored is None:
            stored = (self._position, len(data))
            self._fh.write(data)
            self._position += len(data)
            self.bytes_stored += len(data)
            self._stored[key] = stored
        index = row * plan.tiles_across + col
        self._offsets[level][index : index + count] = stored[0]
        self._counts[level][index : index + count] = stored[1]
        self.tiles_written += count

    def set_sample_range(self, minimums: Sequence[float], maximums: Sequence[float]) -> None:
        """Per-channel SMinSampleValue / SMaxSampleValue for level 0."""
        if len(minimums) != self.info.channels or len(maximums) != self.info.channels:
            raise ValueError('one minimum and one maximum per channel')
        self._sample_range = (list(minimums), list(maximums))

    # -- finishing -------------------------------------------------------
    def close(self) -> None:
        """Write the IFD chain and the header's first-IFD offset."""
        if self.closed:
            return
        for level, counts in zip(self.levels, self._counts, strict=True):
            missing = int((counts == 0).sum())
            if missing:
                raise RuntimeError(f'{missing} tile(s) of level {level.index} were never written')
        fh = self._fh
        if self._position % 8:
            pad = 8 - self._position % 8
            fh.write(b'\0' * pad)
            self._position += pad
        first_ifd = self._position
        if self.info.subifds and len(self.levels) > 1:
            # An IFD's size does not depend on where it goes: place them all,
            # then write level 0 with its SubIFDs pointing at the others.
            self._subifd_offsets = [0] * (len(self.levels) - 1)
            position = first_ifd
            offsets = []
            for level in self.levels:
                offsets.append(position)
                position += self._ifd(level, position, True)[1]
            self._subifd_offsets = offsets[1:]
        for number, level in enumerate(self.levels):
            is_last = self.info.subifds or number == len(self.levels) - 1
            block, size = self._ifd(level, self._position, is_last)
            fh.write(block)
            self._position += size
        fh.seek(8)
        fh.write(struct.pack('<Q', first_ifd))
        fh.close()
        self.closed = True

    def abort(self) -> None:
        """Close the file without finishing it (the caller removes it)."""
        if not self.closed:
            self.closed = True
            self._fh.close()

    def __enter__(self) -> BigTiffWriter:
        return self

    def __exit__(self, exc_type: object, *rest: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- IFDs ------------------------------------------------------------
    def _entries(self, level: LevelPlan) -> list[tuple[int, int, Any]]:
        info = self.info
        dtype = self._dtype
        channels = info.channels
        bits = dtype.itemsize * 8
        sample_format = 3 if dtype.kind == 'f' else 1
        entries: list[tuple[int, int, Any]] = [
            (254, LONG, (0 if level.index == 0 else 1,)),  # NewSubfileType
            (256, LONG, (level.width,)),
            (257, LONG, (level.height,)),
            (258, SHORT, (bits,) * channels),
            (259, SHORT, (info.compression,)),
            (262, SHORT, (info.photometric,)),
            (277, SHORT, (channels,)),
            (284, SHORT, (1,)),  # PlanarConfiguration: contiguous
            (322, LONG, (level.tile,)),
            (323, LONG, (level.tile,)),
            (324, LONG8, self._offsets[level.index]),
            (325, LONG8, self._counts[level.index]),
            (339, SHORT, (sample_format,) * channels),
        ]
        if level.index == 0 and info.description:
            entries.append((270, ASCII, info.description))
        if level.index == 0 and info.subifds and len(self.levels) > 1:
            entries.append((330, IFD8, tuple(self._subifd_offsets)))
        if info.software:
            entries.append((305, ASCII, info.software))
        if info.pixels_per_cm is not None:
            # Pixels per cm at this level: level-0 value / downsample.
            x, y = (v / level.downsample for v in info.pixels_per_cm)
            entries += [
                (282, RATIONAL, rational(x)),
                (283, RATIONAL, rational(y)),
                (296, SHORT, (3,)),  # ResolutionUnit: centimetre
            ]
        if info.extra_samples:
            entries.append((338, SHORT, info.extra_samples))
        if level.index == 0 and self._sample_range is not None:
            minimums, maximums = self._sample_range
            if dtype.kind == 'f':
                kind = DOUBLE
            elif dtype.itemsize <= 2:
                kind = SHORT
            else:
                kind = LONG
            convert = float if kind == DOUBLE else int
            entries += [
                (340, kind, tuple(convert(v) for v in minimums)),
                (341, kind, tuple(convert(v) for v in maximums)),
            ]
        entries += [(tag, kind, tuple(values)) for tag, kind, values in info.extra_tags]
        entries.sort(key=lambda entry: entry[0])
        return entries

    def _ifd(self, level: LevelPlan, position: int, is_last: bool) -> tuple[bytes, int]:
        """The IFD of ``level`` placed at ``position``, followed by its long values."""
        entries = self._entries(level)
        ifd_size = 8 + 20 * len(entries) + 8
        padding = -ifd_size % 8  # keeps long values and the next IFD 8-aligned
        head = [struct.pack('<Q', len(entries))]
        tail: list[bytes] = [b'\0' * padding]
        tail_position = position + ifd_size + padding
        for tag, kind, values in entries:
            data, count = _pack(kind, values)
            if len(data) <= 8:
                head.append(struct.pack('<HHQ', tag, kind, count) + data.ljust(8, b'\0'))
            else:
                head.append(struct.pack('<HHQQ', tag, kind, count, tail_position))
                if len(data) % 8:
                    data += b'\0' * (8 - len(data) % 8)
                tail.append(data)
                tail_position += len(data)
        next_ifd = 0 if is_last else tail_position
        head.append(struct.pack('<Q', next_ifd))
        block = b''.join(head + tail)
        return block, len(block)


def _pack(kind: int, values: Any) -> tuple[bytes, int]:
    """(little-endian bytes, TIFF count) of a field's values."""
    if kind == ASCII:
        data = values.encode('ascii', 'replace') + b'\0'
        return data, len(data)
    if isinstance(values, numpy.ndarray):
        array = values.astype('<u8' if kind == LONG8 else values.dtype, copy=False)
        return array.tobytes(), len(array)
    fmt = _TYPE_FORMAT[kind]
    count = len(values) // 2 if kind == RATIONAL else len(values)
    return struct.pack(f'<{len(values)}{fmt}', *values), count
