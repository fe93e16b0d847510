"""finalize end to end: staging -> TIFF -> read back with tifffile and OpenSlide."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy
import openslide
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.errors import InvalidOptionError, OutputExistsError, StagingNotFoundError
from tifwriter_cli.finalization import finalize
from tifwriter_cli.sources import ArraySource, CanvasSource
from tifwriter_cli.spec import CanvasSpec

from tests.helpers.tiff_reference import (
    check_layout,
    expected_levels,
    model_pyramid,
    openslide_expected_rgba,
    psnr,
    read_levels_openslide,
    read_levels_tifffile,
)


def stage(path: Path, spec: CanvasSpec, patches: list[tuple[int, int, numpy.ndarray]]) -> numpy.ndarray:
    """Create a staging file with ``patches`` (overwrite merge); return the canvas model."""
    tw.create_staging(path, spec)
    canvas = numpy.full(spec.shape, spec.fill, dtype=spec.numpy_dtype)
    with tw.open_staging(path) as writer:
        for x, y, patch in patches:
            writer.write(x, y, patch)
            patch3 = patch if patch.ndim == 3 else patch[:, :, None]
            x0, y0 = max(x, 0), max(y, 0)
            x1 = min(x + patch3.shape[1], spec.width)
            y1 = min(y + patch3.shape[0], spec.height)
            if x1 <= x0 or y1 <= y0:
                continue
            canvas[y0:y1, x0:x1] = patch3[y0 - y : y1 - y, x0 - x : x1 - x]
    return canvas


def label_patches(spec: CanvasSpec, rng: numpy.random.Generator, count: int = 25):
    patches = []
    for _ in range(count):
        h, w = rng.integers(40, 700, size=2)
        x, y = rng.integers(-200, spec.width), rng.integers(-200, spec.height)
        if rng.random() < 0.3:
            patch = rng.integers(0, 6, (h, w)).astype(spec.dtype)  # ragged borders
        else:
            patch = numpy.full((h, w), rng.integers(1, 6), spec.dtype)
        patches.append((int(x), int(y), patch))
    return patches


def smooth_rgb(height: int, width: int, channels: int = 3) -> numpy.ndarray:
    yy, xx = numpy.mgrid[0:height, 0:width].astype(numpy.float64)
    planes = [
        128 + 100 * numpy.sin(xx / 47.0),
        128 + 100 * numpy.cos(yy / 31.0),
        128 + 60 * numpy.sin((xx + yy) / 53.0),
        numpy.where((xx // 300 + yy // 300) % 3 == 0, 0, numpy.where(xx > yy, 255, 128)),
    ]
    return numpy.stack(planes[:channels], axis=-1).astype(numpy.uint8)


def assert_levels_equal(path: Path, reference: list[numpy.ndarray]) -> None:
    read = read_levels_tifffile(path)
    assert len(read) == len(reference)
    for number, (got, want) in enumerate(zip(read, reference, strict=True)):
        assert got.shape == want.shape, number
        numpy.testing.assert_array_equal(got, want, err_msg=f'level {number}')


def assert_openslide_equal(path: Path, reference: list[numpy.ndarray]) -> None:
    read = read_levels_openslide(path)
    assert len(read) == len(reference)
    for number, (got, want) in enumerate(zip(read, reference, strict=True)):
        numpy.testing.assert_array_equal(got, openslide_expected_rgba(want), err_msg=f'level {number}')


# -- round trips through the staging API -------------------------------------------
def test_labels_uint8_round_trip(tmp_path: Path, caplog) -> None:
    spec = CanvasSpec(width=2300, height=1500, tile_size=256, spacing_x=0.5, kind='labels')
    canvas = stage(tmp_path / 's.h5', spec, label_patches(spec, numpy.random.default_rng(0)))
    out = tmp_path / 'labels.tif'
    with caplog.at_level(logging.INFO, logger='tifwriter_cli'):
        report = finalize(tmp_path / 's.h5', out, workers=2)
    assert 'patches from 1 fragments' in caplog.text
    assert report.out == out and out.exists()
    assert (report.compression, report.resampling) == ('lzw', 'mode')
    assert report.levels == expected_levels(2300, 1500, 256)
    assert report.patches == 25 and report.fragments == 1
    assert report.tiles_written == sum(-(-w // t) * -(-h // t) for w, h, t in report.levels)
    assert report.tiles_stored < report.tiles_written  # background shared
    assert report.warnings == []
    check_layout(out, width=2300, height=1500, tile=256, channels=1, dtype='uint8',
                 compression_tag=5, photometric=1, spacing=0.5)
    reference = model_pyramid(canvas, 'mode', 256)
    assert_levels_equal(out, reference)
    assert_openslide_equal(out, reference)
    with openslide.OpenSlide(str(out)) as slide:
        assert float(slide.properties['openslide.mpp-x']) == pytest.approx(0.5, rel=1e-6)
        assert float(slide.properties['openslide.mpp-y']) == pytest.approx(0.5, rel=1e-6)
        assert slide.level_downsamples[1] == pytest.approx(2.0, rel=1e-3)
    import tifffile

    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].tags['SMinSampleValue'].value == 0
        assert tif.pages[0].tags['SMaxSampleValue'].value == int(canvas.max())
    umask = os.umask(0o022)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temp file's 0600


def test_uint16_probability_round_trip(tmp_path: Path) -> None:
    # 2048 wide: whole tiles across every level, because OpenSlide 4.0.1
    # misreads right-edge partial tiles of 16-bit grey images (finalize
    # warns about it; Debian's 3.4.1 reads them right, see
    # test_openslide_debian.py).
    spec = CanvasSpec(width=2048, height=1100, dtype='uint16', tile_size=256, spacing_x=0.25,
                      spacing_y=0.3, kind='probability')
    rng = numpy.random.default_rng(1)
    patches = [(int(x), int(y), rng.integers(0, 65536, (300, 400)).astype(numpy.uint16))
               for x, y in rng.integers(0, 1800, (10, 2))]
    canvas = stage(tmp_path / 's.h5', spec, patches)
    out = tmp_path / 'p16.tif'
    report = finalize(tmp_path / 's.h5', out)
    assert (report.compression, report.resampling) == ('lzw', 'mean')
    assert any('OpenSlide 4' in w and 'right-edge' in w for w in report.warnings)
    check_layout(out, width=2048, height=1100, tile=256, channels=1, dtype='uint16',
                 compression_tag=5, photometric=1, spacing=(0.25, 0.3))
    reference = model_pyramid(canvas, 'mean', 256)
    assert_levels_equal(out, reference)
    assert_openslide_equal(out, reference)
    with openslide.OpenSlide(str(out)) as slide:
        assert float(slide.properties['openslide.mpp-y']) == pytest.approx(0.3, rel=1e-6)


def test_float32_round_trip_tifffile_only(tmp_path: Path, caplog) -> None:
    spec = CanvasSpec(width=1500, height=700, dtype='float32', tile_size=128, kind='probability',
                      fill=float('nan'))
    rng = numpy.random.default_rng(2)
    patches = [(int(x), int(y), rng.random((256, 256)).astype(numpy.float32))
               for x, y in rng.integers(0, 1200, (6, 2))]
    canvas = stage(tmp_path / 's.h5', spec, patches)
    out = tmp_path / 'f32.tif'
    with caplog.at_level(logging.WARNING, logger='tifwriter_cli'):
        report = finalize(tmp_path / 's.h5', out)
    assert any('OpenSlide' in w and 'float' in w for w in report.warnings)
    assert 'OpenSlide' in caplog.text
    check_layout(out, width=1500, height=700, tile=128, channels=1, dtype='float32',
                 compression_tag=5, photometric=1, spacing=None)
    reference = model_pyramid(canvas, 'mean', 128)
    read = read_levels_tifffile(out)
    numpy.testing.assert_array_equal(read[0], reference[0])  # NaN == NaN here
    for got, want in zip(read[1:], reference[1:], strict=True):
        numpy.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    import tifffile

    with tifffile.TiffFile(out) as tif:
        low = tif.pages[0].tags['SMinSampleValue'].value
        high = tif.pages[0].tags['SMaxSampleValue'].value
    assert low == pytest.approx(float(numpy.nanmin(canvas)))
    assert high == pytest.approx(float(numpy.nanmax(canvas)))


def test_rgb_jpeg_default_psnr(tmp_path: Path) -> None:
    spec = CanvasSpec(width=1400, height=1000, channels=3, tile_size=256, kind='image', spacing_x=1.0)
    image = smooth_rgb(1000, 1400)
    canvas = stage(tmp_path / 's.h5', spec, [(0, 0, image)])
    out = tmp_path / 'rgb.tif'
    report = finalize(tmp_path / 's.h5', out)
    assert (report.compression, report.quality, report.resampling) == ('jpeg', 90, 'mean')
    check_layout(out, width=1400, height=1000, tile=256, channels=3, dtype='uint8',
                 compression_tag=7, photometric=6, spacing=1.0)
    reference = model_pyramid(canvas, 'mean', 256)
    # Bound: JPEG q90 with 4:2:0 chroma on smooth content stays above 40 dB
    # (measured ~47 dB); a broken colour conversion gives < 20 dB.
    for got, want in zip(read_levels_tifffile(out), reference, strict=True):
        assert psnr(got, want) >= 40
    for got, want in zip(read_levels_openslide(out), reference, strict=True):
        assert psnr(got[..., :3], want) >= 40
        assert (got[..., 3] == 255).all()


def test_rgb_lzw_exact(tmp_path: Path) -> None:
    spec = CanvasSpec(width=1100, height=500, channels=3, tile_size=128, kind='image')
    rng = numpy.random.default_rng(3)
    image = rng.integers(0, 256, (500, 1100, 3)).astype(numpy.uint8)
    canvas = stage(tmp_path / 's.h5', spec, [(0, 0, image)])
    out = tmp_path / 'rgb_lzw.tif'
    finalize(tmp_path / 's.h5', out, compression='lzw')
    check_layout(out, width=1100, height=500, tile=128, channels=3, dtype='uint8',
                 compression_tag=5, photometric=2, spacing=None)
    reference = model_pyramid(canvas, 'mean', 128)
    assert_levels_equal(out, reference)
    assert_openslide_equal(out, reference)


def test_rgba_uint8(tmp_path: Path) -> None:
    spec = CanvasSpec(width=1200, height=600, channels=4, tile_size=128, kind='image')
    image = smooth_rgb(600, 1200, channels=4)
    canvas = stage(tmp_path / 's.h5', spec, [(0, 0, image)])
    out = tmp_path / 'rgba.tif'
    report = finalize(tmp_path / 's.h5', out)
    assert report.compression == 'lzw'  # jpeg is for 1 or 3 channels
    check_layout(out, width=1200, height=600, tile=128, channels=4, dtype='uint8',
                 compression_tag=5, photometric=2, spacing=None)
    import tifffile

    with tifffile.TiffFile(out) as tif:
        assert tif.pages[0].tags['ExtraSamples'].value == (2,)  # unassociated alpha
    reference = model_pyramid(canvas, 'mean', 128)
    assert_levels_equal(out, reference)
    for got, want in zip(read_levels_openslide(out), reference, strict=True):
        numpy.testing.assert_array_equal(got[..., 3], want[..., 3])
        opaque = want[..., 3] == 255
        numpy.testing.assert_array_equal(got[..., :3][opaque], want[..., :3][opaque])
        assert (got[..., :3][want[..., 3] == 0] == 0).all()


@pytest.mark.parametrize(
    'compression, tag', [('none', 1), ('lzw', 5), ('deflate', 32946), ('zstd', 50000)]
)
def test_lossless_codecs(tmp_path: Path, compression: str, tag: int) -> None:
    spec = CanvasSpec(width=1100, height=300, tile_size=64, kind='labels', spacing_x=0.2431)
    rng = numpy.random.default_rng(4)
    canvas = rng.integers(0, 4, (300, 1100, 1)).astype(numpy.uint8)
    out = tmp_path / f'{compression}.tif'
    report = finalize(ArraySource(spec, canvas), out, compression=compression, resampling='nearest')
    if compression == 'zstd':
        assert any('ASAP' in w for w in report.warnings)
    check_layout(out, width=1100, height=300, tile=64, channels=1, dtype='uint8',
                 compression_tag=tag, photometric=1, spacing=0.2431)
    reference = model_pyramid(canvas, 'nearest', 64)
    assert_levels_equal(out, reference)
    assert_openslide_equal(out, reference)


# -- geometry: odd sizes, tiny canvases, empty canvases ---------------------------------
@settings(max_examples=12, deadline=None)
@given(
    width=st.integers(1, 2300),
    height=st.integers(1, 2300),
    tile=st.sampled_from([32, 64, 256]),
    method=st.sampled_from(['mode', 'mean', 'max', 'nearest']),
    seed=st.integers(0, 2**16),
    segment_tiles=st.sampled_from([1, 3, 10_000]),
)
def test_geometry_against_model(tmp_path_factory, width, height, tile, method, seed, segment_tiles) -> None:
    import tifwriter_cli.engines.native as native

    if width * height > 2_000_000 and tile == 32:
        tile = 64
    rng = numpy.random.default_rng(seed)
    canvas = numpy.zeros((height, width, 1), numpy.uint8)
    for _ in range(10):
        y, x = rng.integers(0, height), rng.integers(0, width)
        canvas[y : y + rng.integers(1, 400), x : x + rng.integers(1, 400)] = rng.integers(0, 9)
    canvas[rng.random(canvas.shape) < 0.01] = 200
    spec = CanvasSpec(width=width, height=height, tile_size=tile, kind='labels')
    out = tmp_path_factory.mktemp('geo') / 'g.tif'
    saved = native._SEGMENT_BYTES
    native._SEGMENT_BYTES = segment_tiles * tile * tile  # level 0 read in segments of N tiles
    try:
        report = finalize(ArraySource(spec, canvas), out, resampling=method, workers=2)
    finally:
        native._SEGMENT_BYTES = saved
    assert report.levels == expected_levels(width, height, tile)
    check_layout(out, width=width, height=height, tile=tile, channels=1, dtype='uint8',
                 compression_tag=5, photometric=1, spacing=None)
    assert_levels_equal(out, model_pyramid(canvas, method, tile))


@pytest.mark.parametrize('width, height, tile', [(100, 70, 64), (10, 10, 16), (16, 700, 16)])
def test_tiny_canvases(tmp_path: Path, width: int, height: int, tile: int) -> None:
    spec = CanvasSpec(width=width, height=height, kind='labels', spacing_x=0.5)
    canvas = stage(tmp_path / 's.h5', spec, [(3, 4, numpy.full((5, 6), 4, numpy.uint8)),
                                             (-2, height - 3, numpy.full((9, 9), 2, numpy.uint8))])
    out = tmp_path / 'tiny.tif'
    report = finalize(tmp_path / 's.h5', out)
    assert report.levels == [(width, height, tile)]
    # Only under 16 px is the tile larger than the level: OpenSlide 3.4.1 misreads it.
    too_small = [w for w in report.warnings if 'OpenSlide 3.4' in w and 'larger than the level' in w]
    assert len(too_small) == (1 if min(width, height) < 16 else 0), report.warnings
    check_layout(out, width=width, height=height, tile=512, channels=1, dtype='uint8',
                 compression_tag=5, photometric=1, spacing=0.5)
    assert_levels_equal(out, [canvas])
    assert_openslide_equal(out, [canvas])


def test_nothing_written_is_all_fill(tmp_path: Path) -> None:
    spec = CanvasSpec(width=2100, height=1300, kind='labels', fill=2, tile_size=256)
    tw.create_staging(tmp_path / 's.h5', spec)
    out = tmp_path / 'empty.tif'
    report = finalize(tmp_path / 's.h5', out)
    assert report.patches == 0 and report.fragments == 0
    # One stored tile per distinct tile size: everything else shares it.
    assert report.tiles_stored == len({t for _, _, t in report.levels})
    levels = read_levels_tifffile(out)
    assert [level.shape[:2] for level in levels] == [(h, w) for w, h, _ in report.levels]
    assert all((level == 2).all() for level in levels)
    assert_openslide_equal(out, levels)


# -- streaming --------------------------------------------------------------------
class RecordingSource(ArraySource):
    def __init__(self, spec, array):
        super().__init__(spec, array)
        self.calls: list[tuple[int, int, int, int]] = []

    def read_region(self, x, y, width, height):
        self.calls.append((x, y, width, height))
        return super().read_region(x, y, width, height)


def test_reads_the_canvas_once_in_tile_bands(tmp_path: Path) -> None:
    spec = CanvasSpec(width=3000, height=1000, tile_size=128, kind='labels')
    canvas = numpy.random.default_rng(5).integers(0, 3, spec.shape).astype(numpy.uint8)
    source = RecordingSource(spec, canvas)
    finalize(source, tmp_path / 'b.tif', workers=2)
    assert [c[1] for c in source.calls] == list(range(0, 1000, 128))
    assert all(c[0] == 0 and c[2] == 3000 and c[3] <= 128 for c in source.calls)
    assert sum(c[3] for c in source.calls) == 1000


def test_wide_canvas_read_in_segments(tmp_path: Path, monkeypatch) -> None:
    # Level 0 of a wide canvas is read and processed a few tiles at a time;
    # the result must not depend on it (odd width: the last segment is odd).
    import tifwriter_cli.engines.native as native

    spec = CanvasSpec(width=2401, height=1203, tile_size=128, kind='labels', spacing_x=0.5)
    rng = numpy.random.default_rng(8)
    canvas = rng.integers(0, 3, spec.shape).astype(numpy.uint8)
    canvas[200:900, 300:2000] = 4
    finalize(ArraySource(spec, canvas), tmp_path / 'whole.tif')
    monkeypatch.setattr(native, '_SEGMENT_BYTES', 3 * 128 * 128)  # 3 tiles per segment
    source = RecordingSource(spec, canvas)
    finalize(source, tmp_path / 'segments.tif', workers=2)
    assert {(c[0], c[2]) for c in source.calls} == {
        (x, min(384, 2401 - x)) for x in range(0, 2401, 384)
    }
    covered = numpy.zeros(spec.shape[:2], int)
    for x, y, w, h in source.calls:
        covered[y : y + h, x : x + w] += 1
    assert (covered == 1).all()  # every pixel read exactly once
    assert (tmp_path / 'whole.tif').read_bytes() == (tmp_path / 'segments.tif').read_bytes()
    assert_levels_equal(tmp_path / 'segments.tif', model_pyramid(canvas, 'mode', 128))


# -- safety -------------------------------------------------------------------------
def _only_expected_files(directory: Path, expected: set[str]) -> None:
    assert {p.name for p in directory.iterdir()} == expected


def test_encoder_failure_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    import tifwriter_cli.engines.native as native

    real = native.tile_encoder
    calls = {'n': 0}

    def failing_encoder(*args, **kwargs):
        encoder = real(*args, **kwargs)

        def encode(tile):
            calls['n'] += 1
            if calls['n'] == 7:
                raise RuntimeError('injected encoder failure')
            return encoder.encode(tile)

        import dataclasses

        return dataclasses.replace(encoder, encode=encode)

    monkeypatch.setattr(native, 'tile_encoder', failing_encoder)
    spec = CanvasSpec(width=1200, height=900, tile_size=128, kind='labels')
    canvas = numpy.random.default_rng(6).integers(0, 3, spec.shape).astype(numpy.uint8)
    out_dir = tmp_path / 'out'
    out_dir.mkdir()
    with pytest.raises(RuntimeError, match='injected'):
        finalize(ArraySource(spec, canvas), out_dir / 'x.tif', workers=2)
    _only_expected_files(out_dir, set())


def test_interrupt_leaves_nothing(tmp_path: Path) -> None:
    spec = CanvasSpec(width=1200, height=900, tile_size=128, kind='labels')
    tw.create_staging(tmp_path / 's.h5', spec)

    class Interrupting(ArraySource):
        def read_region(self, x, y, width, height):
            if y >= 384:
                raise KeyboardInterrupt
            return super().read_region(x, y, width, height)

    canvas = numpy.ones(spec.shape, numpy.uint8)
    with pytest.raises(KeyboardInterrupt):
        finalize(Interrupting(spec, canvas), tmp_path / 'x.tif')
    _only_expected_files(tmp_path, {'s.h5', 's.h5.fragments'})
    # An interrupt from the staging reader itself (the real Ctrl-C spot).
    # The canvas is written, or finalize would not read it at all (never
    # written segments come from the index).
    from tifwriter_cli.staging.reader import StagingSnapshot

    with tw.open_staging(tmp_path / 's.h5') as staging:
        staging.write(0, 0, numpy.full((900, 1200), 2, numpy.uint8))

    # (_merge_region: under read_region and read_region_into alike.)
    original = StagingSnapshot._merge_region
    calls = {'n': 0}

    def interrupted(self, *args):
        calls['n'] += 1
        if calls['n'] == 3:
            raise KeyboardInterrupt
        return original(self, *args)

    StagingSnapshot._merge_region = interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            finalize(tmp_path / 's.h5', tmp_path / 'x.tif')
    finally:
        StagingSnapshot._merge_region = original
    assert calls['n'] >= 3  # (the read thread may have started the next read)
    _only_expected_files(tmp_path, {'s.h5', 's.h5.fragments'})


def test_existing_output_refused_then_overwritten(tmp_path: Path) -> None:
    spec = CanvasSpec(width=300, height=200, kind='labels')
    tw.create_staging(tmp_path / 's.h5', spec)
    out = tmp_path / 'o.tif'
    out.write_bytes(b'precious')
    with pytest.raises(OutputExistsError):
        finalize(tmp_path / 's.h5', out)
    assert out.read_bytes() == b'precious'
    with pytest.raises(OutputExistsError, match='not made by tifwriter'):
        finalize(tmp_path / 's.h5', out, overwrite=True)
    assert out.read_bytes() == b'precious'
    out.unlink()
    finalize(tmp_path / 's.h5', out)
    finalize(tmp_path / 's.h5', out, overwrite=True)
    assert out.read_bytes()[:4] == b'II+\x00'


def test_deterministic_output(tmp_path: Path) -> None:
    spec = CanvasSpec(width=2200, height=1100, tile_size=128, kind='labels', spacing_x=0.5)
    canvas = stage(tmp_path / 's.h5', spec, label_patches(spec, numpy.random.default_rng(7)))
    finalize(tmp_path / 's.h5', tmp_path / 'a.tif', workers=1)
    finalize(tmp_path / 's.h5', tmp_path / 'b.tif', workers=3)
    finalize(ArraySource(spec, canvas), tmp_path / 'c.tif', workers=2)
    a = (tmp_path / 'a.tif').read_bytes()
    assert a == (tmp_path / 'b.tif').read_bytes()  # same bytes whatever the thread timing
    assert a == (tmp_path / 'c.tif').read_bytes()  # staging or array: same file
    assert_levels_equal(tmp_path / 'a.tif', model_pyramid(canvas, 'mode', 128))


def test_options_checked_before_any_work(tmp_path: Path) -> None:
    spec = CanvasSpec(width=300, height=200, kind='labels')
    tw.create_staging(tmp_path / 's.h5', spec)
    out = tmp_path / 'o.tif'
    bad = [
        dict(compression='webp'),
        dict(compression='jpeg'),  # lossy on labels, no force
        dict(resampling='median'),
        dict(quality=0),
        dict(quality=101),
        dict(workers=0),
        dict(engine='gdal'),
    ]
    for options in bad:
        with pytest.raises(InvalidOptionError):
            finalize(tmp_path / 's.h5', out, **options)
        assert not out.exists()
    with pytest.raises(InvalidOptionError, match='is also an input'):
        finalize(tmp_path / 's.h5', tmp_path / 's.h5', overwrite=True)
    assert (tmp_path / 's.h5').read_bytes()[:4] == b'\x89HDF'
    with pytest.raises(StagingNotFoundError):
        finalize(tmp_path / 'missing.h5', out)
    uint16 = CanvasSpec(width=300, height=200, dtype='uint16', kind='image')
    with pytest.raises(InvalidOptionError, match='jpeg'):
        finalize(ArraySource(uint16, numpy.zeros(uint16.shape, numpy.uint16)), out, compression='jpeg')
    assert not out.exists()
    with pytest.raises(InvalidOptionError):
        finalize(object(), out)


def test_forced_jpeg_on_labels_and_mean_warning(tmp_path: Path) -> None:
    spec = CanvasSpec(width=300, height=200, kind='labels')
    canvas = numpy.zeros(spec.shape, numpy.uint8)
    report = finalize(ArraySource(spec, canvas), tmp_path / 'j.tif', compression='jpeg', force=True)
    assert report.compression == 'jpeg'
    assert any('jpeg on labels' in w for w in report.warnings)
    report = finalize(ArraySource(spec, canvas), tmp_path / 'm.tif', resampling='mean')
    assert any('mean resampling on labels' in w for w in report.warnings)


def test_asap_engine_unavailable_is_clear(tmp_path: Path, monkeypatch) -> None:
    import sys

    from tifwriter_cli.errors import EngineUnavailableError

    monkeypatch.setitem(sys.modules, 'multiresolutionimageinterface', None)
    spec = CanvasSpec(width=300, height=200, kind='labels')
    with pytest.raises(EngineUnavailableError, match='multiresolutionimageinterface'):
        finalize(ArraySource(spec, numpy.zeros(spec.shape, numpy.uint8)), tmp_path / 'a.tif',
                 engine='asap')
    assert not (tmp_path / 'a.tif').exists()


def test_progress_is_a_callback_rising_to_the_total(tmp_path: Path, capsys) -> None:
    # A staging file: most segments are never written (skipped through
    # region_is_fill), and their tiles count all the same.
    spec = CanvasSpec(width=1500, height=400, tile_size=128, kind='labels')
    tw.create_staging(tmp_path / 's.h5', spec)
    with tw.open_staging(tmp_path / 's.h5') as writer:
        writer.write(700, 100, numpy.arange(200 * 300, dtype=numpy.uint8).reshape(200, 300) % 5)
    calls: list[tuple[int, int]] = []
    report = finalize(tmp_path / 's.h5', tmp_path / 'p.tif', progress=lambda done, total: calls.append((done, total)))
    done = [d for d, _ in calls]
    assert len(calls) > 1 and done == sorted(set(done)), calls  # strictly rising
    assert {total for _, total in calls} == {report.tiles_written} and done[-1] == report.tiles_written
    assert capsys.readouterr().err == ''  # the library draws nothing


def test_progress_must_be_a_callback(tmp_path: Path) -> None:
    spec = CanvasSpec(width=300, height=200, kind='labels')
    with pytest.raises(InvalidOptionError, match='progress must be a callable'):
        finalize(ArraySource(spec, numpy.zeros(spec.shape, numpy.uint8)), tmp_path / 'p.tif', progress=True)
    assert list(tmp_path.iterdir()) == []


def test_a_source_is_a_canvas_source(tmp_path: Path) -> None:
    spec = CanvasSpec(width=300, height=200, kind='labels')
    canvas = numpy.random.default_rng(3).integers(0, 4, spec.shape).astype(numpy.uint8)

    class DuckTyped:  # .spec and .read_region, but not the interface
        def __init__(self):
            self.spec = spec

        def read_region(self, x, y, width, height):
            return canvas[y : y + height, x : x + width]

    with pytest.raises(InvalidOptionError, match='CanvasSource'):
        finalize(DuckTyped(), tmp_path / 'd.tif')
    assert list(tmp_path.iterdir()) == []

    class Minimal(CanvasSource):  # only what is required: the defaults do the rest
        def __init__(self):
            self.spec = spec

        def read_region(self, x, y, width, height):
            return ArraySource(spec, canvas).read_region(x, y, width, height)

    source = Minimal()
    assert not source.region_is_fill(0, 0, 10, 10)
    assert (source.fragment_count, source.patch_count) == (None, None)
    report = finalize(source, tmp_path / 'm.tif')
    assert (report.fragments, report.patches) == (None, None)
    numpy.testing.assert_array_equal(tifffile.imread(tmp_path / 'm.tif', key=0), canvas[:, :, 0])
    with pytest.raises(TypeError):
        type('NoReadRegion', (CanvasSource,), {})()  # read_region is abstract
