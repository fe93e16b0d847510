"""The native engine's shortcuts: uniform tiles found per segment/band, their
downsampled areas filled instead of computed, band buffers recycled (stale
pixels must never show), odd bands completed in the buffer's spare column/row.
"""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tifwriter_cli.engines import bands, native
from tifwriter_cli.finalization import finalize
from tifwriter_cli.sources import ArraySource
from tifwriter_cli.spec import CanvasSpec

from tests.helpers.tiff_reference import expected_levels, model_pyramid, read_levels_tifffile


def model_uniform(band: numpy.ndarray, tile: int) -> list[bytes | None]:
    """Per tile column: the first pixel's bytes when every pixel has the same bits."""
    bits = band.view(f'u{band.itemsize}')
    out = []
    for x0 in range(0, band.shape[1], tile):
        pixels = bits[:, x0 : x0 + tile]
        out.append(band[0, x0].tobytes() if (pixels == pixels[0, 0]).all() else None)
    return out


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(['uint8', 'uint16', 'uint32', 'float32']),
    height=st.integers(1, 40),
    width=st.integers(1, 150),
    channels=st.sampled_from([1, 1, 2, 3]),
    tile=st.sampled_from([16, 32]),
    offset=st.integers(0, 5),
    seed=st.integers(0, 2**32 - 1),
)
def test_uniform_tiles_match_model(dtype, height, width, channels, tile, offset, seed) -> None:
    rng = numpy.random.default_rng(seed)
    if dtype == 'float32':
        values = numpy.array([0.0, -0.0, numpy.nan, 1.5], dtype)  # bitwise: +0 != -0, NaN == NaN
    else:
        values = numpy.array([0, 1, numpy.iinfo(dtype).max], dtype)
    big = numpy.empty((height, width + offset, channels), dtype)
    for x0 in range(0, width + offset, tile // 2):
        kind = rng.integers(0, 3)
        area = big[:, x0 : x0 + tile // 2]
        area[...] = values[rng.integers(0, len(values), channels)]
        if kind == 1:  # one odd pixel anywhere (in or out of the sampled rows)
            y, x = rng.integers(0, area.shape[0]), rng.integers(0, area.shape[1])
            area[y, x, rng.integers(0, channels)] = values[rng.integers(0, len(values))]
        elif kind == 2:
            area[...] = values[rng.integers(0, len(values), area.shape)]
    band = big[:, offset:]
    got = bands.uniform_tiles(band, tile)
    assert [None if v is None else v.tobytes() for v in got] == model_uniform(band, tile)
    assert all(v is None or (v.shape == (channels,) and v.dtype == band.dtype) for v in got)


def _blocky_canvas(
    rng: numpy.random.Generator, height: int, width: int, dtype: str, *, nan: bool = True
) -> numpy.ndarray:
    """Large uniform areas with different values band after band (stale pixels
    of a recycled band buffer would show), a few mixed areas, NaN areas."""
    if dtype == 'float32':
        values = numpy.array([0.25, 1.0, numpy.nan if nan else 2.0, 7.5, 3.0], dtype)
    else:
        values = numpy.array([1, 2, 3, 9, numpy.iinfo(dtype).max], dtype)
    canvas = numpy.empty((height, width, 1), dtype)
    for y in range(0, height, 40):
        for x in range(0, width, 150):
            canvas[y : y + 40, x : x + 150] = values[rng.integers(0, len(values))]
    for _ in range(12):
        y, x = rng.integers(0, height), rng.integers(0, width)
        size = rng.integers(1, 90)
        canvas[y : y + size, x : x + size] = values[rng.integers(0, len(values), (min(size, height - y), min(size, width - x), 1))]
    return canvas


class CopyingSource(ArraySource):
    """Returns a fresh array per read, like a staging file (the engine copies
    those into its own recycled segment buffers)."""

    def read_region(self, x, y, width, height):
        return super().read_region(x, y, width, height).copy()


@pytest.mark.parametrize(
    'dtype, method, source',
    [
        ('uint8', 'mode', ArraySource),
        ('uint8', 'mode', CopyingSource),
        ('uint16', 'mean', ArraySource),
        ('uint32', 'max', CopyingSource),
        ('float32', 'mean', CopyingSource),
        ('float32', 'mode', ArraySource),
        ('uint8', 'nearest', ArraySource),
    ],
)
def test_pyramid_with_uniform_areas_and_recycled_bands(tmp_path: Path, monkeypatch, dtype: str, method: str, source) -> None:
    # Odd sizes: level 1 is 1251 x 1149 (odd width: the spare column; odd
    # last band: the spare row). 32-px tiles: dozens of bands per level, so
    # every level's buffers are recycled many times. Level 0 in segments of
    # three tiles (the last of each row narrower, the last row shorter: a
    # recycled segment buffer is used through a smaller view).
    width, height, tile = 2501, 2297, 32
    monkeypatch.setattr(native, '_SEGMENT_BYTES', 3 * tile * tile * numpy.dtype(dtype).itemsize)
    # (No NaN for mode: the model counts NaN as occurring zero times, the
    # rule lets it win as the top-left; see test_pyramid_fast.)
    canvas = _blocky_canvas(numpy.random.default_rng(4), height, width, dtype, nan=method != 'mode')
    kind = 'labels' if method in ('mode', 'nearest') and dtype != 'float32' else 'probability'
    spec = CanvasSpec(width=width, height=height, tile_size=tile, dtype=dtype, kind=kind)
    out = tmp_path / 'p.tif'
    report = finalize(source(spec, canvas), out, resampling=method, compression='none', workers=2)
    assert report.levels == expected_levels(width, height, tile)
    levels = read_levels_tifffile(out)
    for number, (got, want) in enumerate(zip(levels, model_pyramid(canvas, method, tile), strict=True)):
        numpy.testing.assert_array_equal(got, want, err_msg=f'level {number}')


def test_output_is_byte_identical_across_workers_and_segments(tmp_path: Path, monkeypatch) -> None:
    canvas = _blocky_canvas(numpy.random.default_rng(8), 1500, 2100, 'uint8')
    spec = CanvasSpec(width=2100, height=1500, tile_size=64, kind='labels')
    finalize(ArraySource(spec, canvas), tmp_path / 'a.tif', workers=1)
    monkeypatch.setattr(native, '_SEGMENT_BYTES', 5 * 64 * 64)
    finalize(ArraySource(spec, canvas), tmp_path / 'b.tif', workers=3)
    assert (tmp_path / 'a.tif').read_bytes() == (tmp_path / 'b.tif').read_bytes()


@pytest.mark.parametrize('dtype', ['uint8', 'uint16', 'float32'])
def test_uniform_tiles_of_a_band_of_one_value(dtype: str) -> None:
    # The one-pass check of a whole band of one value (fill, background),
    # and its fallback when one pixel somewhere differs.
    band = numpy.full((64, 160, 1), 3, dtype)
    assert [v.tolist() for v in bands.uniform_tiles(band, 32)] == [[3]] * 5
    for y, x in [(40, 70), (63, 159), (1, 0)]:
        odd = band.copy()
        odd[y, x] = 4
        assert [None if v is None else v.tobytes() for v in bands.uniform_tiles(odd, 32)] == model_uniform(odd, 32)


@pytest.mark.parametrize('merge, fill', [('overwrite', 0), ('mean', 7), ('max', 3)])
def test_never_written_segments_are_not_read(tmp_path: Path, monkeypatch, merge: str, fill: int) -> None:
    # A wide canvas with a few written patches: the staging index says which
    # segments were never written; those are not read (no pixels built),
    # and the pyramid still equals the model of the merged canvas.
    import tifwriter_cli as tw
    from tifwriter_cli.staging.reader import StagingSnapshot, read_staging

    width, height, tile = 3000, 1100, 64
    monkeypatch.setattr(native, '_SEGMENT_BYTES', 4 * tile * tile)
    spec = tw.CanvasSpec(width=width, height=height, tile_size=tile, kind='labels', merge=merge, fill=fill)
    path = tmp_path / 's.h5'
    tw.create_staging(path, spec)
    rng = numpy.random.default_rng(3)
    with tw.open_staging(path) as staging:
        for x, y in ((0, 0), (700, 300), (2900, 1000), (1200, 250)):
            staging.write(x, y, rng.integers(0, 4, (150, 130), dtype=numpy.uint8))
    reads = []
    real, merge = StagingSnapshot.read_region, StagingSnapshot._merge_region

    def counting(self, x, y, w, h, accumulator):  # type: ignore[no-untyped-def]
        reads.append((x, y, w, h))  # under read_region and read_region_into alike
        return merge(self, x, y, w, h, accumulator)

    monkeypatch.setattr(StagingSnapshot, '_merge_region', counting)
    out = tmp_path / 's.tif'
    finalize(path, out, compression='lzw', workers=2)
    segments = [(x, y, w, h) for x, y, w, h in reads if w > 1]
    with read_staging(path) as snapshot:
        written = [r for r in segments if not snapshot.region_is_fill(*r)]
        canvas = real(snapshot, 0, 0, width, height)
    assert segments == written  # every segment read holds a patch
    assert 0 < len(segments) < 30  # of 18 * 12 = 216 segments
    for number, (got, want) in enumerate(zip(read_levels_tifffile(out), model_pyramid(canvas, 'mode', tile), strict=True)):
        numpy.testing.assert_array_equal(got, want, err_msg=f'level {number}')


def test_sparse_output_is_byte_identical_across_workers_and_segments(tmp_path: Path, monkeypatch) -> None:
    # Never-written rows are one segment, never-written runs of a written
    # row one each, and their uniform tiles one write each: none of that may
    # change a byte against other segment widths and worker counts.
    import tifwriter_cli as tw

    width, height, tile = 3000, 1400, 64
    spec = tw.CanvasSpec(width=width, height=height, tile_size=tile, kind='labels', fill=2)
    path = tmp_path / 's.h5'
    tw.create_staging(path, spec)
    rng = numpy.random.default_rng(5)
    with tw.open_staging(path) as staging:
        for x, y in ((0, 0), (700, 300), (2900, 1300), (1200, 250), (1900, 700)):
            staging.write(x, y, rng.integers(0, 4, (150, 130), dtype=numpy.uint8))
        staging.write(64, 1000, numpy.full((128, 640), 3, numpy.uint8))  # uniform, not fill
    finalize(path, tmp_path / 'a.tif', compression='lzw', workers=1)
    for segment_tiles, workers in ((1, 3), (3, 2), (7, 1)):
        monkeypatch.setattr(native, '_SEGMENT_BYTES', segment_tiles * tile * tile)
        out = tmp_path / f'b{segment_tiles}.tif'
        finalize(path, out, compression='lzw', workers=workers)
        assert out.read_bytes() == (tmp_path / 'a.tif').read_bytes(), (segment_tiles, workers)
    with tw.read_staging(path) as snapshot:
        canvas = snapshot.read_region(0, 0, width, height)
    for number, (got, want) in enumerate(zip(read_levels_tifffile(tmp_path / 'a.tif'), model_pyramid(canvas, 'mode', tile), strict=True)):
        numpy.testing.assert_array_equal(got, want, err_msg=f'level {number}')
