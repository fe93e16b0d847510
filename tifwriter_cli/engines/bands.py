"""Tile assembly for the native engine: finding uniform tiles, level-0
segments, and the band buffers of the lower levels (which columns of a band
are known uniform, so their tiles are shared and their downsampling skipped).

The pass that drives them, reading, encoding and writing levels, is
:mod:`.native`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy

from ..tiff.plan import LevelPlan

__all__ = ['MIXED', 'PAGE', 'UNSIGNED', 'RowBuffer', 'Segment', 'touch', 'uniform_run_end', 'uniform_tiles']

#: Bytes between the pages touched to map a segment into memory up front.
PAGE = 4096

UNSIGNED = {1: numpy.uint8, 2: numpy.uint16, 4: numpy.uint32, 8: numpy.uint64}

#: A tile column of a band being filled that holds computed (or differing) pixels.
MIXED = object()


def uniform_tiles(
    band: numpy.ndarray, tile: int, *, known: list[numpy.ndarray | None] | None = None
) -> list[numpy.ndarray | None]:
    """For each tile column of an (H, W, C) band (tiles ``tile`` px wide from
    column 0, the last maybe narrower): its pixel (a (C,) array) when all its
    pixels are bitwise equal, else None. Bitwise, so NaN tiles are uniform.

    ``known``: tile columns already known to be uniform (their value; None
    where unknown). Those are not looked at: their pixels may not be there.
    """
    height, width, channels = band.shape
    count = -(-width // tile)
    results: list[numpy.ndarray | None] = [None] * count if known is None else list(known)
    if height == 0 or width == 0:
        return results
    if known is not None and all(value is not None for value in known):
        return results
    bits = band.view(UNSIGNED[band.itemsize])
    first = bits[0, 0::tile]  # (count, C): each tile's top-left pixel
    full = width // tile
    # Three sample rows (top, middle, bottom) of every tile at once reject
    # nearly all mixed tiles before any whole tile is compared.
    candidate = numpy.ones(count, bool)
    if known is not None:
        candidate[[value is not None for value in known]] = False
    for y in sorted({0, height // 2, height - 1}):
        row = bits[y]
        if full:
            same = row[: full * tile].reshape(full, tile, channels) == first[:full, numpy.newaxis]
            candidate[:full] &= same.all(axis=(1, 2))
        if count > full:
            candidate[full] &= bool((row[full * tile :] == first[full]).all())
    columns = numpy.flatnonzero(candidate)
    row_bytes = tile * channels * band.itemsize
    if (
        known is None
        and columns.size == count
        and height > 1
        and width * channels * band.itemsize % 8 == 0
        and bits.strides[1] == channels * band.itemsize
        and bits.strides[2] == band.itemsize
        and (first == first[0]).all()
    ):
        # Every tile's top row is its first pixel, and all of those are
        # equal (background, fill): the whole band is one value if every
        # row equals the first, compared as 64-bit words in one pass.
        words = bits.reshape(height, -1).view(numpy.uint64)
        if bool((words[1:] == words[0]).all()):
            value = band[0, 0].copy()
            return [value] * count
    for column in columns.tolist():
        x0 = column * tile
        pixels = bits[:, x0 : x0 + tile]
        if height > 1 and pixels.shape[1] * channels * band.itemsize % 8 == 0 and row_bytes % 8 == 0:
            # Every row equal to the first, compared as 64-bit words (the
            # first row is already known to be one value).
            words = pixels.reshape(height, -1).view(numpy.uint64)
            uniform = bool((words[1:] == words[0]).all())
        else:
            uniform = bool((pixels == first[column]).all())
        if uniform:
            results[column] = band[0, x0].copy()
    return results


def uniform_run_end(uniform: list[numpy.ndarray | None], start: int) -> int:
    """The end of the run of tile columns from ``start`` (uniform) that hold
    its value, as :func:`uniform_tiles` lists them (bitwise equal; the same
    object, as a never-written segment's, needs no compare)."""
    value, count = uniform[start], len(uniform)
    key = value.tobytes()
    end = start + 1
    while end < count and (uniform[end] is value or (uniform[end] is not None and uniform[end].tobytes() == key)):
        end += 1
    return end


def touch(segment: numpy.ndarray) -> None:
    """Read one value per memory page so the pages are mapped now.

    A view into a memory-mapped file would otherwise take its page faults
    inside the downsampling and encoding, interleaved with their work,
    which costs several times more than faulting the pages in one go.
    """
    if segment.size and not segment.flags.owndata:
        step = max(1, PAGE // 2 // max(1, segment.strides[1]))
        segment.view(UNSIGNED[segment.itemsize])[:, ::step, 0].max()


@dataclasses.dataclass
class Segment:
    """A level-0 segment as the read thread hands it over."""

    #: The pixels of its mixed tiles (a uniform tile's pixels are never read
    #: and may be stale in a pooled buffer).
    pixels: numpy.ndarray
    #: Per tile column: its value when uniform, else None (uniform_tiles).
    uniform: list[numpy.ndarray | None]
    #: The pooled buffer holding ``pixels`` (None: a view the source gave).
    buffer: numpy.ndarray | None


class RowBuffer:
    """Assembles the downsampled rows of one level into bands of its tile height.

    Rows arrive in order, each group possibly in several column pieces (the
    level-0 segments), downsampled straight into the band (:meth:`regions`).
    A band's buffer has a spare column (and row) so an odd-sized band can be
    completed to even size for the next downsampling without a copy, and
    rows padded to whole 8-byte words (the fast paths of ``downsample2``).
    Buffers of emitted bands come back through :meth:`recycle` once their
    tiles are written, so the process allocates about two per level.
    """

    def __init__(self, level: LevelPlan, channels: int, dtype: numpy.dtype):
        self.level = level
        self.channels = channels
        self.dtype = dtype
        pixel_bytes = channels * dtype.itemsize
        row_pixels = level.width + 1
        while row_pixels * pixel_bytes % 8:
            row_pixels += 1
        self._buffer_shape = (level.tile, row_pixels, channels)
        self._free: list[numpy.ndarray] = []
        #: Called when no buffer is free: may wait for one to be recycled.
        self.reclaim: Any = None
        self._bands: dict[int, numpy.ndarray] = {}  # tile row -> buffer being filled
        #: Per band being filled: each tile column's state (None: nothing
        #: yet; the bytes of the one value every piece so far filled it
        #: with; MIXED), and the fills not written yet (deferred: a tile
        #: that stays uniform is never written, only its value is used).
        self._states: dict[int, list[Any]] = {}
        self._deferred: dict[int, list[tuple[int, int, int, int, numpy.ndarray]]] = {}
        self._values: dict[bytes, numpy.ndarray] = {}
        self.rows_done = 0  # rows complete in every column
        self.next_band = 0  # tile row of the next band to emit

    def band_height(self, band_row: int) -> int:
        return min(self.level.tile, self.level.height - band_row * self.level.tile)

    def regions(self, count: int, x0: int, width: int) -> list[tuple[int, int, numpy.ndarray, Any]]:
        """Where the next ``count`` rows, columns x0..x0+width, go:
        (first row, end row, band view, note) pieces split at band
        boundaries; ``note(a, b, value)`` is told what columns a..b of the
        view get: a uniform ``value`` (then it is not written now), or
        computed pixels (value None, written by the caller)."""
        level = self.level
        if self.rows_done + count > level.height:
            raise RuntimeError(f'level {level.index} got more than its {level.height} rows')
        pieces = []
        done = 0
        while done < count:
            at = self.rows_done + done
            band_row = at // level.tile
            buffer = self._bands.get(band_row)
            if buffer is None:
                if not self._free and self.reclaim is not None:
                    self.reclaim()
                buffer = self._free.pop() if self._free else numpy.empty(self._buffer_shape, self.dtype)
                self._bands[band_row] = buffer
                self._states[band_row] = [None] * level.tiles_across
                self._deferred[band_row] = []
            local = at - band_row * level.tile
            take = min(self.band_height(band_row) - local, count - done)
            note = functools.partial(self._note, band_row, local, local + take, x0)
            pieces.append((done, done + take, buffer[local : local + take, x0 : x0 + width], note))
            done += take
        return pieces

    def _note(self, band_row: int, row0: int, row1: int, x0: int, a: int, b: int, value: Any) -> None:
        if b <= a:
            return
        tile = self.level.tile
        states = self._states[band_row]
        first, last = (x0 + a) // tile, (x0 + b - 1) // tile
        if value is None:
            states[first : last + 1] = [MIXED] * (last + 1 - first)
            return
        key = value.tobytes()
        self._values.setdefault(key, value)
        for column in range(first, last + 1):
            state = states[column]
            if state is None:
                states[column] = key
            elif state is not MIXED and state != key:
                states[column] = MIXED
        self._deferred[band_row].append((row0, row1, x0 + a, x0 + b, value))

    def known_uniform(self, band_row: int, buffer: numpy.ndarray) -> list[numpy.ndarray | None]:
        """An emitted band's tile columns known to be uniform (their value,
        else None); the deferred fills of the other columns are written now."""
        states = self._states.pop(band_row)
        tile = self.level.tile
        for row0, row1, xa, xb, value in self._deferred.pop(band_row):
            column = xa // tile
            while column * tile < xb:
                end = column
                while end * tile < xb and states[end] is MIXED:
                    end += 1
                if end > column:
                    buffer[row0:row1, max(xa, column * tile) : min(xb, end * tile)] = value
                    column = end
                else:
                    column += 1
        return [None if state is MIXED or state is None else self._values[state] for state in states]

    def advance(self, count: int) -> list[tuple[int, numpy.ndarray]]:
        """The next ``count`` rows now have all their columns: the completed
        (tile row, buffer) bands, in order."""
        self.rows_done += count
        emitted = []
        while self.next_band in self._bands:
            if self.next_band * self.level.tile + self.band_height(self.next_band) > self.rows_done:
                break
            emitted.append((self.next_band, self._bands.pop(self.next_band)))
            self.next_band += 1
        return emitted

    def recycle(self, buffer: numpy.ndarray) -> None:
        self._free.append(buffer)

    def check_complete(self) -> None:
        if self._bands or self._states or self.rows_done != self.level.height:
            raise RuntimeError(
                f'level {self.level.index} got {self.rows_done} rows, expected {self.level.height}'
            )
