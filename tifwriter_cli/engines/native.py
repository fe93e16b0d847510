"""Our engine: one streaming pass, a downsampling cascade, parallel encoding.

The canvas is read once, top to bottom, in bands of level-0 tile rows. Each
band is cut into tiles that worker threads encode (imagecodecs releases the
GIL), and it is downsampled by 2 into the next level's row buffer; whenever
that buffer holds a full band of its level's tile height, the same happens
one level down (the cascade). Memory therefore grows with the canvas width
times the tile size, never with its height.

Encoded tiles are handed to the BigTIFF writer in submission order (not
completion order): with a bounded window of in-flight tiles this costs no
parallelism, and it makes the file byte-for-byte reproducible.

A tile whose pixels are all one value is encoded once per (level tile size,
value) and shared; the writer also stores identical encoded bytes once.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
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

log = logging.getLogger(__name__)


class NativeEngine(Engine):
    name = 'native'
    compressions = COMPRESSIONS
    resamplings = RESAMPLING_METHODS

    def write(self, source: Any, out_path: str | os.PathLike, options: WriteOptions) -> EngineResult:
        return _Pipeline(source, out_path, options).run()


ENGINE_CLASS = NativeEngine


class _RowBuffer:
    """Collects downsampled rows of one level and hands out full tile bands."""

    def __init__(self, level: LevelPlan, channels: int, dtype: numpy.dtype):
        self.level = level
        self._rows: list[numpy.ndarray] = []
        self._count = 0
        self.next_row = 0  # tile row of the next band handed out
        self.rows_done = 0

    def add(self, rows: numpy.ndarray) -> list[tuple[int, numpy.ndarray]]:
        self._rows.append(rows)
        self._count += rows.shape[0]
        bands = []
        tile = self.level.tile
        while self._count >= tile:
            stacked = self._rows[0] if len(self._rows) == 1 else numpy.concatenate(self._rows)
            bands.append(self._emit(stacked[:tile]))
            rest = stacked[tile:]
            self._rows = [rest] if rest.shape[0] else []
            self._count = rest.shape[0]
        return bands

    def finish(self) -> tuple[int, numpy.ndarray] | None:
        """The last, partial band (None when the rows ended on a band edge)."""
        if not self._count:
            band = None
        else:
            stacked = self._rows[0] if len(self._rows) == 1 else numpy.concatenate(self._rows)
            band = self._emit(stacked)
        if self.rows_done != self.level.height:
            raise RuntimeError(
                f'level {self.level.index} got {self.rows_done} rows, expected {self.level.height}'
            )
        return band

    def _emit(self, band: numpy.ndarray) -> tuple[int, numpy.ndarray]:
        row = self.next_row
        self.next_row += 1
        self.rows_done += band.shape[0]
        return row, band


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
        # Two level-0 bands of tiles in flight: the next band is read (and
        # the cascade downsampled) while the current one is encoded.
        self.window = 2 * level0.tiles_across + 2 * options.workers
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
            # The next band is read in a thread of its own while this one is
            # cut, downsampled and handed to the encoders.
            ahead = reader.submit(self._read_band, 0)
            for row in range(level0.tiles_down):
                band = ahead.result()
                if row + 1 < level0.tiles_down:
                    ahead = reader.submit(self._read_band, row + 1)
                self._submit_band(0, row, band)
            for index in range(1, len(self.levels)):
                last = self.buffers[index].finish()
                if last is not None:
                    self._submit_band(index, *last)
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

    def _read_band(self, row: int) -> numpy.ndarray:
        """Level-0 tile row ``row`` from the source: all columns, tile-height rows."""
        level0 = self.levels[0]
        y = row * level0.tile
        height = min(level0.tile, self.spec.height - y)
        band = self.source.read_region(0, y, self.spec.width, height)
        expected = (height, self.spec.width, self.spec.channels)
        if band.shape != expected or band.dtype != self.dtype:
            raise ValueError(
                f'source returned {band.shape} {band.dtype}, expected {expected} {self.dtype}'
            )
        return band

    def _submit_band(self, level_index: int, row: int, band: numpy.ndarray) -> None:
        level = self.levels[level_index]
        submit = self.pool.submit
        for col in range(level.tiles_across):
            self.pending.append(submit(self._encode_tile, level_index, row, col, band))
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
        self, level_index: int, row: int, col: int, band: numpy.ndarray
    ) -> tuple[int, int, int, bytes, bytes, Any, bool]:
        tile_size = self.levels[level_index].tile
        x0 = col * tile_size
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
