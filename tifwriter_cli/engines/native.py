"""Our engine: one streaming pass, a downsampling cascade, parallel encoding.

The canvas is read once, top to bottom, one level-0 tile row at a time,
each row in segments of a few whole tiles (read ahead by a thread of its
own). Each segment is cut into tiles that worker threads encode
(imagecodecs releases the GIL), and it is downsampled by 2 into level 1's
row buffer; whenever a level's buffer holds a full band of that level's
tile height, the band is encoded and downsampled one level further (the
cascade). Memory therefore grows with the canvas width times the tile size
(about two bands per lower level plus a few level-0 segments), never with
its height.

Encoded tiles are handed to the BigTIFF writer in submission order (not
completion order): with a bounded window of in-flight tiles this costs no
parallelism, and it makes the file byte-for-byte reproducible.

A tile whose pixels are all one value is encoded once per (level tile size,
value) and shared; the writer also stores identical encoded bytes once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import threading
from typing import Any

import numpy

from ..tiff.bigtiff import BigTiffWriter, ImageInfo, tile_digest
from ..tiff.codecs import COMPRESSIONS, tile_encoder
from ..tiff.metadata import needs_sample_stats, sample_range_hint
from ..tiff.plan import LevelPlan
from ..tiff.pyramid import RESAMPLING_METHODS, downsample2
from .base import Engine, EngineResult, WriteOptions

__all__ = ['NativeEngine', 'ENGINE_CLASS']

#: Target size of a level-0 segment (a few whole tiles of one tile row).
_SEGMENT_BYTES = 8 << 20


class NativeEngine(Engine):
    name = 'native'
    compressions = COMPRESSIONS
    resamplings = RESAMPLING_METHODS

    def write(self, source: Any, out_path: str | os.PathLike, options: WriteOptions) -> EngineResult:
        return _Pipeline(source, out_path, options).run()


ENGINE_CLASS = NativeEngine


class _RowBuffer:
    """Assembles the downsampled rows of one level into bands of its tile height.

    Rows arrive in order, each group possibly in several column pieces (the
    level-0 segments). Each band is a fresh array (tiles of emitted bands
    are still being encoded), filled in place: no concatenation copies.
    """

    def __init__(self, level: LevelPlan, channels: int, dtype: numpy.dtype):
        self.level = level
        self.channels = channels
        self.dtype = dtype
        self._bands: dict[int, numpy.ndarray] = {}  # tile row -> band being filled
        self.rows_done = 0  # rows complete in every column
        self.next_band = 0  # tile row of the next band to emit

    def add(
        self, rows: numpy.ndarray, x0: int = 0, *, complete: bool = True
    ) -> list[tuple[int, numpy.ndarray]]:
        """Place ``rows`` at columns x0.. of the next rows; return completed bands.

        ``complete`` says these rows now have all their columns (the last
        piece of a group); only then do they count and bands get emitted.
        """
        level = self.level
        tile = level.tile
        count = rows.shape[0]
        if self.rows_done + count > level.height:
            raise RuntimeError(f'level {level.index} got more than its {level.height} rows')
        done_in = 0
        while done_in < count:
            at = self.rows_done + done_in
            band_row = at // tile
            band = self._bands.get(band_row)
            if band is None:
                height = min(tile, level.height - band_row * tile)
                band = self._bands[band_row] = numpy.empty(
                    (height, level.width, self.channels), self.dtype
                )
            local = at - band_row * tile
            take = min(band.shape[0] - local, count - done_in)
            band[local : local + take, x0 : x0 + rows.shape[1]] = rows[done_in : done_in + take]
            done_in += take
        if not complete:
            return []
        self.rows_done += count
        emitted = []
        while self.next_band in self._bands:
            band = self._bands[self.next_band]
            if self.next_band * tile + band.shape[0] > self.rows_done:
                break
            emitted.append((self.next_band, self._bands.pop(self.next_band)))
            self.next_band += 1
        return emitted

    def check_complete(self) -> None:
        if self._bands or self.rows_done != self.level.height:
            raise RuntimeError(
                f'level {self.level.index} got {self.rows_done} rows, expected {self.level.height}'
            )


class _Pipeline:
    def __init__(self, source: Any, out_path: str | os.PathLike, options: WriteOptions):
        self.source = source
        self.out_path = out_path
        self.options = options
        self.spec = spec = options.spec
        self.levels = list(options.levels)
        self.dtype = spec.numpy_dtype
        self.encoder = tile_encoder(
            options.compression, dtype=self.dtype, channels=spec.channels, quality=options.quality
        )
        self.want_stats = needs_sample_stats(spec)
        self.is_float = self.dtype.kind == 'f'
        # Uniform tiles compare as unsigned integers so NaN fill is uniform too.
        self.compare_dtype = numpy.dtype(f'u{self.dtype.itemsize}')
        self._uniform_cache: dict[tuple[int, bytes], tuple[bytes, bytes]] = {}
        self._uniform_lock = threading.Lock()
        self.minimums: numpy.ndarray | None = None
        self.maximums: numpy.ndarray | None = None
        self.uniform_tiles = 0
        self.buffers = [None] + [_RowBuffer(level, spec.channels, self.dtype) for level in self.levels[1:]]
        self.pending: collections.deque[concurrent.futures.Future] = collections.deque()
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
        # Tiles in flight: two segments' worth (the encoders always have work
        # queued while the next segment is read and downsampled), at least
        # four per worker.
        self.window = max(2 * segment_tiles, 4 * options.workers)
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
        )
        progress = None
        if options.progress:
            from tqdm import tqdm

            progress = tqdm(total=self.total_tiles, unit='tile', desc='finalize', leave=False)
        self.progress = progress
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
            level0 = self.levels[0]
            # The next segment is read in a thread of its own while this one
            # is cut into tiles, downsampled and handed to the encoders.
            parts = [(row, x0, x1) for row in range(level0.tiles_down) for x0, x1 in self.segments]
            ahead = reader.submit(self._read_segment, *parts[0])
            for number, (row, x0, x1) in enumerate(parts):
                segment = ahead.result()
                if number + 1 < len(parts):
                    ahead = reader.submit(self._read_segment, *parts[number + 1])
                self._submit_segment(row, x0, segment, last=x1 == spec.width)
            for buffer in self.buffers[1:]:
                buffer.check_complete()  # the cascade emitted every band
            self._drain(0)
            minimums = None if self.minimums is None else self.minimums.tolist()
            maximums = None if self.maximums is None else self.maximums.tolist()
            writer.set_sample_range(*sample_range_hint(spec, minimums, maximums))
            writer.close()
        except BaseException:
            for future in self.pending:
                future.cancel()
            reader.shutdown(wait=True, cancel_futures=True)
            pool.shutdown(wait=True, cancel_futures=True)
            writer.abort()
            raise
        finally:
            reader.shutdown(wait=True)
            pool.shutdown(wait=True)
            if progress is not None:
                progress.close()
        return EngineResult(
            levels=[(level.width, level.height, level.tile) for level in self.levels],
            tiles_written=writer.tiles_written,
            tiles_stored=writer.tiles_stored,
            extra={'uniform_tiles': self.uniform_tiles, 'bytes_stored': writer.bytes_stored},
        )

    def _read_segment(self, row: int, x0: int, x1: int) -> numpy.ndarray:
        """Level-0 pixels of tile row ``row``, columns x0..x1."""
        level0 = self.levels[0]
        y = row * level0.tile
        height = min(level0.tile, self.spec.height - y)
        segment = self.source.read_region(x0, y, x1 - x0, height)
        expected = (height, x1 - x0, self.spec.channels)
        if segment.shape != expected or segment.dtype != self.dtype:
            raise ValueError(
                f'source returned {segment.shape} {segment.dtype}, expected {expected} {self.dtype}'
            )
        return segment

    def _submit_segment(self, row: int, x0: int, segment: numpy.ndarray, *, last: bool) -> None:
        """Encode a level-0 segment's tiles; feed its downsampled pixels to level 1."""
        tile = self.levels[0].tile
        submit = self.pool.submit
        first_col = x0 // tile
        for col in range(first_col, first_col + -(-segment.shape[1] // tile)):
            self.pending.append(submit(self._encode_tile, 0, row, col, segment, x0))
        self._drain(self.window)
        if len(self.levels) > 1:
            # Segments are whole tiles wide (even), so downsampling them one
            # by one equals downsampling the band; only the last may be odd.
            smaller = downsample2(segment, self.options.resampling)
            for next_row, next_band in self.buffers[1].add(smaller, x0 // 2, complete=last):
                self._submit_band(1, next_row, next_band)

    def _submit_band(self, level_index: int, row: int, band: numpy.ndarray) -> None:
        """Encode a whole band of a lower level; cascade to the next level."""
        level = self.levels[level_index]
        submit = self.pool.submit
        for col in range(level.tiles_across):
            self.pending.append(submit(self._encode_tile, level_index, row, col, band, 0))
        self._drain(self.window)
        if level_index + 1 < len(self.levels):
            smaller = downsample2(band, self.options.resampling)
            for next_row, next_band in self.buffers[level_index + 1].add(smaller):
                self._submit_band(level_index + 1, next_row, next_band)

    def _drain(self, keep: int) -> None:
        """Write finished tiles, oldest first, until at most ``keep`` are pending."""
        pending = self.pending
        writer = self.writer
        written = 0
        while len(pending) > keep:
            level_index, row, col, data, digest, stats, uniform = pending.popleft().result()
            writer.write_tile(level_index, row, col, data, digest)
            if stats is not None:
                self._merge_stats(*stats)
            self.uniform_tiles += uniform
            written += 1
        if written and self.progress is not None:
            self.progress.update(written)

    # -- worker side -------------------------------------------------------
    def _encode_tile(
        self, level_index: int, row: int, col: int, band: numpy.ndarray, band_x0: int
    ) -> tuple[int, int, int, bytes, bytes, Any, bool]:
        """Encode tile (row, col) of a level from ``band`` (whose column 0 is band_x0)."""
        tile_size = self.levels[level_index].tile
        x0 = col * tile_size - band_x0
        tile = band[:, x0 : x0 + tile_size]
        stats = None
        first = tile[0, 0]
        if self._is_uniform(tile):
            data, digest = self._uniform_tile(tile_size, first)
            if level_index == 0 and self.want_stats:
                stats = (first, first)
            return level_index, row, col, data, digest, stats, True
        if level_index == 0 and self.want_stats:
            if self.is_float:
                stats = (
                    numpy.fmin.reduce(tile, axis=(0, 1)),
                    numpy.fmax.reduce(tile, axis=(0, 1)),
                )
            else:
                stats = (None, tile.max(axis=(0, 1)))
        height, width = tile.shape[:2]
        if height < tile_size or width < tile_size:
            # Edge tiles are padded by repeating the last row/column: the
            # padding is never shown, and it keeps JPEG edges clean and
            # uniform edge tiles uniform.
            tile = numpy.pad(
                tile, ((0, tile_size - height), (0, tile_size - width), (0, 0)), mode='edge'
            )
        else:
            tile = numpy.ascontiguousarray(tile)
        data = self.encoder.encode(tile)
        return level_index, row, col, data, tile_digest(data), stats, False

    def _is_uniform(self, tile: numpy.ndarray) -> bool:
        view = tile.view(self.compare_dtype)
        first = view[0:1, 0:1]
        # Cheap early exit on the first row before comparing the whole tile.
        return bool((view[0] == first[0]).all()) and bool((view == first).all())

    def _uniform_tile(self, tile_size: int, value: numpy.ndarray) -> tuple[bytes, bytes]:
        key = (tile_size, value.tobytes())
        cached = self._uniform_cache.get(key)
        if cached is None:
            tile = numpy.empty((tile_size, tile_size, self.spec.channels), self.dtype)
            tile[...] = value
            data = self.encoder.encode(tile)
            cached = (data, tile_digest(data))
            with self._uniform_lock:
                cached = self._uniform_cache.setdefault(key, cached)
        return cached

    def _merge_stats(self, minimum: Any, maximum: Any) -> None:
        maximum = numpy.asarray(maximum, dtype=self.dtype).reshape(-1)
        if self.is_float:
            minimum = numpy.asarray(minimum, dtype=self.dtype).reshape(-1)
            self.minimums = minimum if self.minimums is None else numpy.fmin(self.minimums, minimum)
            self.maximums = maximum if self.maximums is None else numpy.fmax(self.maximums, maximum)
        else:
            self.maximums = maximum if self.maximums is None else numpy.maximum(self.maximums, maximum)
