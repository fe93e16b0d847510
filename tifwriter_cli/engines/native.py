"""Our engine: one streaming pass, a downsampling cascade, parallel encoding.

The canvas is read once, top to bottom, one level-0 tile row at a time,
each row in segments of a few whole tiles (read two ahead by a thread of
its own, which also finds the segment's uniform tiles). The segment's
tiles are encoded by worker threads (imagecodecs releases the GIL), and
the segment is downsampled by 2 straight into level 1's band buffer;
whenever a level's band buffer holds a full band of that level's tile
height, the band is encoded and downsampled one level further (the
cascade).

Memory grows with the canvas width times the tile size, never with its
height: one band buffer per lower level (a band's buffer is refilled once
its tiles are written; the encoders have the tiles queued after them to
work on meanwhile) and a few level-0 segment buffers (two read ahead, one
being processed, one finishing; none for a segment of uniform tiles). The
mixed tiles of a fresh array from the source are copied into those reused
buffers and the array is freed at once, and each encoder thread copies its
tiles into one reused buffer, so the big allocations are not repeated and
the heap does not fragment.

Encoded tiles are handed to the BigTIFF writer in submission order (not
completion order): with a bounded window of in-flight tiles this costs no
parallelism, and it makes the file byte-for-byte reproducible.

A tile whose pixels are all one value (bitwise) is found by a vectorised
check of the whole segment or band; it is encoded once per (level tile
size, value) and shared, without a trip through the worker pool, and its
downsampled area is filled with the value's reduction instead of being
computed. The writer also stores identical encoded bytes once.

The segments and band buffers, and the uniform-tile check, are :mod:`.bands`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import functools
import os
import threading
from collections.abc import Iterator
from typing import Any

import numpy

from ..sources import CanvasSource
from ..tiff.bigtiff import BigTiffWriter, ImageInfo, tile_digest
from ..tiff.codecs import tile_encoder
from ..tiff.metadata import needs_sample_stats, sample_range_hint
from ..tiff.pyramid import downsample2, halved
from ..vocab import COMPRESSIONS, RESAMPLINGS
from .bands import RowBuffer, Segment, touch, uniform_run_end, uniform_tiles
from .base import Engine, EngineResult, WriteOptions

__all__ = ['NativeEngine', 'ENGINE_CLASS']

#: Target size of a level-0 segment (a few whole tiles of one tile row).
_SEGMENT_BYTES = 4 << 20

#: Segments read ahead (a segment of uniform tiles holds no memory).
_READ_AHEAD = 2

#: Segments queued at most, never-written ones included (they hold no memory).
_QUEUED_SEGMENTS = 64


class NativeEngine(Engine):
    name = 'native'
    compressions = COMPRESSIONS
    resamplings = RESAMPLINGS

    def write(
        self, source: CanvasSource, out_path: str | os.PathLike, options: WriteOptions
    ) -> EngineResult:
        return _Pipeline(source, out_path, options).run()


ENGINE_CLASS = NativeEngine


class _Pipeline:
    def __init__(self, source: CanvasSource, out_path: str | os.PathLike, options: WriteOptions):
        self.source = source
        self.out_path = out_path
        self.options = options
        self.spec = spec = options.spec
        self.levels = list(options.levels)
        self.dtype = spec.numpy_dtype
        self.method = options.resampling
        self.encoder = tile_encoder(
            options.compression, dtype=self.dtype, channels=spec.channels, quality=options.quality
        )
        self.want_stats = needs_sample_stats(spec)
        self.is_float = self.dtype.kind == 'f'
        self._uniform_cache: dict[tuple[int, bytes], tuple[bytes, bytes]] = {}
        self._reduced_cache: dict[bytes, numpy.ndarray] = {}
        self._stats_seen: set[bytes] = set()  # uniform values whose stats are merged
        self._tile_buffers = threading.local()  # .tile: each worker's tile buffer
        self.minimums: numpy.ndarray | None = None
        self.maximums: numpy.ndarray | None = None
        self.uniform_tiles = 0
        self.buffers = [None] + [RowBuffer(level, spec.channels, self.dtype) for level in self.levels[1:]]
        for index, buffer in enumerate(self.buffers[1:], 1):
            buffer.reclaim = functools.partial(self._reclaim, index)
        # In submission order: futures of tiles being encoded, or the tuples
        # of tiles already resolved (runs of uniform tiles: the last field
        # is the run's length, 0 for an encoded tile).
        self.pending: collections.deque[Any] = collections.deque()
        self.submitted = 0
        self.drained = 0
        # (tiles submitted, level, buffer): band buffers (level >= 1) and
        # level-0 segment buffers (0) to reuse once that many tiles are written.
        self.releases: collections.deque[tuple[int, int, numpy.ndarray]] = collections.deque()
        level0 = self.levels[0]
        # Level 0 is read and processed in segments of whole tile columns
        # (about _SEGMENT_BYTES each) rather than whole bands, so a very
        # wide canvas (160k px) does not hold several 80 MB bands at once.
        tile_bytes = level0.tile * level0.tile * spec.channels * self.dtype.itemsize
        segment_tiles = max(1, min(level0.tiles_across, _SEGMENT_BYTES // tile_bytes))
        segment_width = segment_tiles * level0.tile
        self.segments = [
            (x0, min(x0 + segment_width, spec.width)) for x0 in range(0, spec.width, segment_width)
        ]
        # Reused segment buffers (the read thread takes them, the main
        # thread gives them back).
        self._segment_shape = (level0.tile, min(segment_width, spec.width), spec.channels)
        self._segment_pool: list[numpy.ndarray] = []
        self._pool_lock = threading.Lock()
        # Tiles in flight: two segments' worth (the encoders always have work
        # queued while the next segment is read and downsampled), at least
        # four per worker.
        self.window = max(2 * segment_tiles, 4 * options.workers)
        self._fill = numpy.full((1, 1, spec.channels), spec.fill, dtype=self.dtype)[0, 0]
        self.total_tiles = sum(level.tile_count for level in self.levels)

    # -- the pass ----------------------------------------------------------
    def run(self) -> EngineResult:
        options = self.options
        spec = self.spec
        info = ImageInfo(
            dtype=spec.dtype,
            channels=spec.channels,
            compression=self.encoder.tag,
            photometric=self.encoder.photometric,
            extra_samples=self.encoder.extra_samples,
            extra_tags=self.encoder.extra_tags,
            pixels_per_cm=(
                (10000.0 / spec.spacing_x, 10000.0 / spec.spacing_y)
                if spec.spacing_x is not None
                else None
            ),
            description=options.description,
            software=options.software,
            subifds=options.flavor == 'ome',
        )
        pool = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.workers, thread_name_prefix='tifwriter-encode'
        )
        reader = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix='tifwriter-read'
        )
        writer = BigTiffWriter(self.out_path, self.levels, info)
        self.writer = writer
        try:
            self.pool = pool
            # The next segment is read (and its uniform tiles found) in a
            # thread of its own while this one is encoded and downsampled.
            # (Downsampling there too was slower: with two cores, four busy
            # threads contend for the cores, the caches and the GIL.)
            ahead: collections.deque[Any] = collections.deque()
            parts = self._parts()
            reads = 0  # reads in flight in ``ahead``
            while True:
                # Keep _READ_AHEAD reads in flight; never-written segments
                # need no read (and no trip through the read thread: a
                # sparse 160k canvas has thousands), so they are queued as
                # they come, at most _QUEUED_SEGMENTS of them.
                while reads < _READ_AHEAD and len(ahead) < _QUEUED_SEGMENTS:
                    part = next(parts, None)
                    if part is None:
                        break
                    row, x0, x1, fill = part
                    if fill:
                        ahead.append((row, x0, x1, self._fill_segment(row, x0, x1)))
                    else:
                        ahead.append((row, x0, x1, reader.submit(self._read_segment, row, x0, x1)))
                        reads += 1
                if not ahead:
                    break
                row, x0, x1, segment = ahead.popleft()
                if not isinstance(segment, Segment):
                    segment = segment.result()
                    reads -= 1
                self._submit_segment(row, x0, segment, last=x1 == spec.width)
                if segment.buffer is not None:
                    # Reused once every tile submitted so far is written.
                    self.releases.append((self.submitted, 0, segment.buffer))
                del segment
            for buffer in self.buffers[1:]:
                buffer.check_complete()  # the cascade emitted every band
            self._drain(0)
            minimums = None if self.minimums is None else self.minimums.tolist()
            maximums = None if self.maximums is None else self.maximums.tolist()
            writer.set_sample_range(*sample_range_hint(spec, minimums, maximums))
            writer.close()
        except BaseException:
            for future in self.pending:
                if isinstance(future, concurrent.futures.Future):
                    future.cancel()
            reader.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True, cancel_futures=True)
            writer.abort()
            raise
        finally:
            reader.shutdown(wait=True)
            pool.shutdown(wait=True)
        return EngineResult(
            levels=[(level.width, level.height, level.tile) for level in self.levels],
            tiles_written=writer.tiles_written,
            tiles_stored=writer.tiles_stored,
            extra={'uniform_tiles': self.uniform_tiles, 'bytes_stored': writer.bytes_stored},
        )

    def _parts(self) -> Iterator[tuple[int, int, int, bool]]:
        """The level-0 segments in order: (tile row, x0, x1, never written).
        Adjacent never-written segments of a row are one (a whole row, when
        nothing of it was written: one index query instead of one a segment),
        so the cost of the never-written area follows its rows, not its tiles."""
        level0 = self.levels[0]
        width, source = self.spec.width, self.source
        for row in range(level0.tiles_down):
            y, height = row * level0.tile, self._row_height(row)
            if source.region_is_fill(0, y, width, height):
                yield row, 0, width, True
                continue
            run_start = None  # x0 of the never-written run being gathered
            for x0, x1 in self.segments:
                if source.region_is_fill(x0, y, x1 - x0, height):
                    run_start = x0 if run_start is None else run_start
                    continue
                if run_start is not None:
                    yield row, run_start, x0, True
                    run_start = None
                yield row, x0, x1, False
            if run_start is not None:
                yield row, run_start, width, True

    def _row_height(self, row: int) -> int:
        """Pixel rows of level-0 tile row ``row`` (the last may be short)."""
        tile = self.levels[0].tile
        return min(tile, self.spec.height - row * tile)

    def _fill_segment(self, row: int, x0: int, x1: int) -> Segment:
        """A never-written segment (a staging snapshot's index says so): no
        pixels built; they hold the fill, as read_region would return it."""
        count = -(-(x1 - x0) // self.levels[0].tile)
        shape = (self._row_height(row), x1 - x0, self.spec.channels)
        return Segment(numpy.broadcast_to(self._fill, shape), [self._fill] * count, None)

    def _read_segment(self, row: int, x0: int, x1: int) -> Segment:
        """Level-0 pixels of tile row ``row``, columns x0..x1, and their
        uniform tiles (read thread)."""
        tile = self.levels[0].tile
        y, height = row * tile, self._row_height(row)
        if self.source.fills_buffers:
            # Merged straight into a reused buffer: no segment-sized array
            # allocated (fresh pages to fault in) and copied per read.
            buffer = self._pooled(self._segment_pool, self._segment_shape)
            view = buffer[:height, : x1 - x0]
            self.source.read_region_into(view, x0, y)
            uniform = uniform_tiles(view, tile)
            if all(value is not None for value in uniform):
                with self._pool_lock:
                    self._segment_pool.append(buffer)
                return Segment(numpy.broadcast_to(uniform[0], view.shape), uniform, None)
            return Segment(view, uniform, buffer)
        pixels = self.source.read_region(x0, y, x1 - x0, height)
        expected = (height, x1 - x0, self.spec.channels)
        if pixels.shape != expected or pixels.dtype != self.dtype:
            raise ValueError(
                f'source returned {pixels.shape} {pixels.dtype}, expected {expected} {self.dtype}'
            )
        buffer = None
        if pixels.flags.owndata:
            # A fresh array (a staging file's merged pixels): copy it into a
            # buffer of our own, reused from segment to segment, and free it
            # at once. The source's allocations then all live one read long;
            # kept until the segment's tiles are written, they would be
            # interleaved with the next reads' and fragment the heap (the
            # process would hold far more memory than it uses). Only mixed
            # tiles are copied: nothing reads a uniform tile's pixels (it
            # is encoded and downsampled from its value), so those columns
            # of the buffer keep whatever they held.
            uniform = uniform_tiles(pixels, tile)
            if all(value is not None for value in uniform):
                # Nothing to keep: a stand-in of the right shape, no memory.
                return Segment(numpy.broadcast_to(uniform[0], pixels.shape), uniform, None)
            buffer = self._pooled(self._segment_pool, self._segment_shape)
            view = buffer[:height, : x1 - x0]
            column, count = 0, len(uniform)
            while column < count:
                if uniform[column] is not None:
                    column += 1
                    continue
                end = column + 1
                while end < count and uniform[end] is None:
                    end += 1
                view[:, column * tile : end * tile] = pixels[:, column * tile : end * tile]
                column = end
            return Segment(view, uniform, buffer)
        touch(pixels)
        return Segment(pixels, uniform_tiles(pixels, tile), None)

    def _pooled(self, pool: list[numpy.ndarray], shape: tuple[int, int, int]) -> numpy.ndarray:
        with self._pool_lock:
            if pool:
                return pool.pop()
        return numpy.empty(shape, self.dtype)

    def _submit_segment(self, row: int, x0: int, segment: Segment, *, last: bool) -> None:
        """Queue a level-0 segment's tiles; downsample it into level 1's band."""
        tile = self.levels[0].tile
        queued = self.submitted
        self._submit_tiles(0, row, x0 // tile, segment.pixels, x0, segment.uniform)
        # Write everything queued before this segment's tiles: the encoders
        # work on those while it is downsampled, and the big buffers (the
        # previous segment, lower bands) are free again before we go on.
        self._drain(self.submitted - queued)
        if len(self.levels) > 1:
            # Segments are whole tiles wide (even), so downsampling them one
            # by one equals downsampling the band; only the last may be odd.
            pixels = segment.pixels
            buffer = self.buffers[1]
            rows = halved(pixels.shape[0])
            for first, end, target, note in buffer.regions(rows, x0 // 2, halved(pixels.shape[1])):
                self._downsample(pixels[2 * first : 2 * end], segment.uniform, tile, target, note)
            if last:
                for next_row, band in buffer.advance(rows):
                    self._submit_band(1, next_row, band)

    def _submit_band(self, level_index: int, row: int, buffer: numpy.ndarray) -> None:
        """Encode a whole band of a lower level; cascade to the next level."""
        level = self.levels[level_index]
        row_buffer = self.buffers[level_index]
        height, width = row_buffer.band_height(row), level.width
        band = buffer[:height, :width]
        uniform = uniform_tiles(band, level.tile, known=row_buffer.known_uniform(row, buffer))
        self._submit_tiles(level_index, row, 0, band, 0, uniform)
        if level_index + 1 < len(self.levels):
            # Complete an odd-sized band to even size in the buffer's spare
            # column/row (the replication rule of downsample2) without a copy.
            if width % 2:
                buffer[:height, width] = buffer[:height, width - 1]
            if height % 2:
                buffer[height, : width + width % 2] = buffer[height - 1, : width + width % 2]
            source = buffer[: height + height % 2, : width + width % 2]
            next_buffer = self.buffers[level_index + 1]
            rows = halved(height)
            for first, end, target, note in next_buffer.regions(rows, 0, halved(width)):
                self._downsample(source[2 * first : 2 * end], uniform, level.tile, target, note)
            for next_row, next_band in next_buffer.advance(rows):
                self._submit_band(level_index + 1, next_row, next_band)
        # The buffer is reused once every tile submitted so far is written.
        self.releases.append((self.submitted, level_index, buffer))

    def _downsample(
        self,
        source: numpy.ndarray,
        uniform: list[numpy.ndarray | None],
        tile: int,
        out: numpy.ndarray,
        note: Any,
    ) -> None:
        """downsample2(source) into ``out``; the areas of uniform tiles (tile
        columns of ``source``) get their value's reduction, told to ``note``
        (see RowBuffer.regions), which writes it only where it is needed."""
        width = source.shape[1]
        out_width = out.shape[1]
        column, count = 0, len(uniform)
        while column < count:
            value = uniform[column]
            end = column + 1
            if value is not None:
                # A run of uniform tiles of this value: one (deferred) fill.
                end = uniform_run_end(uniform, column)
                note(column * tile // 2, min(out_width, end * tile // 2), self._reduced(value))
                column = end
                continue
            while end < count and uniform[end] is None:
                end += 1
            x0, x1 = column * tile, min(width, end * tile)
            note(x0 // 2, halved(x1), None)
            downsample2(source[:, x0:x1], self.method, out=out[:, x0 // 2 : halved(x1)])
            column = end

    def _reduced(self, value: numpy.ndarray) -> numpy.ndarray:
        """The downsampled value of a uniform area of ``value``: computed on
        a 2x2 block by downsample2 itself, so it is exactly what the full
        computation gives (float rounding, NaN payloads included)."""
        key = value.tobytes()
        reduced = self._reduced_cache.get(key)
        if reduced is None:
            block = numpy.empty((2, 2, value.shape[0]), self.dtype)
            block[...] = value
            reduced = self._reduced_cache[key] = downsample2(block, self.method)[0, 0]
        return reduced

    def _submit_tiles(
        self,
        level_index: int,
        row: int,
        first_col: int,
        band: numpy.ndarray,
        band_x0: int,
        uniform: list[numpy.ndarray | None],
    ) -> None:
        """Queue the tiles of ``band`` (tile columns first_col..) in order."""
        tile_size = self.levels[level_index].tile
        stats_wanted = level_index == 0 and self.want_stats
        pending = self.pending
        submit = self.pool.submit
        offset, count = 0, len(uniform)
        while offset < count:
            value = uniform[offset]
            if value is None:
                pending.append(submit(self._encode_tile, level_index, row, first_col + offset, band, band_x0))
                offset += 1
                continue
            # A run of uniform tiles of one value: one item, written as one
            # slice of the tile tables (a never-written row is one run).
            end = uniform_run_end(uniform, offset)
            key = value.tobytes()
            data, digest = self._uniform_tile(tile_size, value)
            stats = None
            if stats_wanted and key not in self._stats_seen:
                # A value's extremes are merged once, not per tile (a
                # sparse canvas has ~100k tiles of fill).
                self._stats_seen.add(key)
                stats = (value, value)
            pending.append((level_index, row, first_col + offset, data, digest, stats, end - offset))
            offset = end
        self.submitted += count
        self._drain(self.window)

    def _reclaim(self, level_index: int) -> None:
        """Write tiles until a band buffer of this level is free again (one
        buffer per level instead of two: the encoders are busy meanwhile
        with everything queued before and after that band's tiles)."""
        for count, level, _ in self.releases:
            if level == level_index:
                self._drain(self.submitted - count)
                return

    def _drain(self, keep: int) -> None:
        """Write finished tiles, oldest first, until at most ``keep`` tiles
        are pending (an item is one encoded tile, or a run of uniform ones)."""
        pending = self.pending
        writer = self.writer
        outstanding = self.submitted - self.drained
        while outstanding > keep and pending:
            item = pending.popleft()
            if not isinstance(item, tuple):
                item = item.result()
            level_index, row, col, data, digest, stats, run = item
            writer.write_tile(level_index, row, col, data, digest, count=run or 1)
            if stats is not None:
                self._merge_stats(*stats)
            self.uniform_tiles += run
            outstanding -= run or 1
        written = self.submitted - self.drained - outstanding
        self.drained += written
        releases = self.releases
        while releases and releases[0][0] <= self.drained:
            _, level_index, buffer = releases.popleft()
            if level_index:
                self.buffers[level_index].recycle(buffer)
            else:
                with self._pool_lock:
                    self._segment_pool.append(buffer)
        if written and self.options.progress is not None:
            self.options.progress(self.drained, self.total_tiles)

    # -- worker side -------------------------------------------------------
    def _encode_tile(
        self, level_index: int, row: int, col: int, band: numpy.ndarray, band_x0: int
    ) -> tuple[int, int, int, bytes, bytes, Any, int]:
        """Encode (mixed) tile (row, col) of a level from ``band`` (whose column 0 is band_x0)."""
        tile_size = self.levels[level_index].tile
        x0 = col * tile_size - band_x0
        tile = band[:, x0 : x0 + tile_size]
        # The contiguous copy the encoder needs goes to a buffer this worker
        # thread reuses (encoders return new bytes and keep nothing): no
        # allocation per tile to fragment the heap.
        buffer = getattr(self._tile_buffers, 'tile', None)
        if buffer is None or buffer.shape[0] != tile_size:
            buffer = self._tile_buffers.tile = numpy.empty(
                (tile_size, tile_size, self.spec.channels), self.dtype
            )
        height, width = tile.shape[:2]
        if height < tile_size or width < tile_size:
            # Edge tiles are padded by repeating the last row/column (like
            # numpy.pad mode='edge'): the padding is never shown, and it
            # keeps JPEG edges clean and uniform edge tiles uniform.
            buffer[:height, :width] = tile
            buffer[:height, width:] = tile[:, width - 1 : width]
            buffer[height:] = buffer[height - 1]
        else:
            buffer[...] = tile
        stats = None
        if level_index == 0 and self.want_stats:
            # Over the contiguous copy (3x faster than over the band's
            # strided view); the edge padding repeats pixels of the tile,
            # so the extremes are the tile's own.
            if self.is_float:
                stats = (
                    numpy.fmin.reduce(buffer, axis=(0, 1)),
                    numpy.fmax.reduce(buffer, axis=(0, 1)),
                )
            else:
                stats = (None, buffer.max(axis=(0, 1)))
        data = self.encoder.encode(buffer)
        return level_index, row, col, data, tile_digest(data), stats, 0

    def _uniform_tile(self, tile_size: int, value: numpy.ndarray) -> tuple[bytes, bytes]:
        key = (tile_size, value.tobytes())
        cached = self._uniform_cache.get(key)
        if cached is None:
            # Once per (tile size, value): encoded here, on the main thread.
            tile = numpy.empty((tile_size, tile_size, self.spec.channels), self.dtype)
            tile[...] = value
            data = self.encoder.encode(tile)
            cached = self._uniform_cache[key] = (data, tile_digest(data))
        return cached

    def _merge_stats(self, minimum: Any, maximum: Any) -> None:
        maximum = numpy.asarray(maximum, dtype=self.dtype).reshape(-1)
        if self.is_float:
            minimum = numpy.asarray(minimum, dtype=self.dtype).reshape(-1)
            self.minimums = minimum if self.minimums is None else numpy.fmin(self.minimums, minimum)
            self.maximums = maximum if self.maximums is None else numpy.fmax(self.maximums, maximum)
        else:
            self.maximums = maximum if self.maximums is None else numpy.maximum(self.maximums, maximum)
