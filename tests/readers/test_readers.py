"""Our TIFFs read back through every reader users open them in.

One file per pixel case (dtype, channels, compression), written once per
module; each reader then checks the level sizes, the pixel size and the
pixels against the in-memory reference (exact when lossless; a lossy file
against tifffile's decoding of it). The readers: ASAP 2.2's own TIFF reader
(built from ../shared/asap, see tests/helpers/readers.py), tiffslide, large_image
and Bio-Formats; tifffile and OpenSlide are covered in test_finalize.py.
A reader missing here skips, saying why and how to get it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy
import pytest

from tifwriter_cli.finalization import finalize
from tifwriter_cli.sources import ArraySource
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.tiff.inspect import inspect_tiff

from tests.helpers import readers
from tests.helpers.tiff_reference import expected_levels, model_pyramid, psnr, read_levels_tifffile


def _blobs(shape: tuple[int, ...], dtype: str, values: Callable, seed: int) -> numpy.ndarray:
    rng = numpy.random.default_rng(seed)
    canvas = numpy.zeros(shape, dtype)
    height, width = shape[:2]
    for _ in range(30):
        y, x = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(20, 500, size=2)
        canvas[y : y + h, x : x + w] = values(rng, canvas[y : y + h, x : x + w].shape)
    return canvas


def _labels(dtype: str) -> Callable:
    def values(rng, shape):
        return rng.integers(1, 7) if rng.random() < 0.7 else rng.integers(0, 7, shape)

    return values


def _noise(dtype: str) -> Callable:
    def values(rng, shape):
        if numpy.dtype(dtype).kind == 'f':
            return rng.random(shape, dtype=numpy.float32)
        return rng.integers(0, numpy.iinfo(dtype).max, shape, endpoint=True)

    return values


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    spec: CanvasSpec
    values: Callable
    compression: str | None = None

    @property
    def lossless(self) -> bool:
        return (self.compression or '') != 'jpeg' and not (
            self.compression is None and self.spec.kind == 'image' and self.spec.dtype == 'uint8'
            and self.spec.channels in (1, 3)
        )


CASES = [
    Case('labels_uint8', CanvasSpec(width=2100, height=1300, tile_size=128, spacing_x=0.5,
                                    kind='labels'), _labels('uint8')),
    Case('labels_uint8_deflate', CanvasSpec(width=1500, height=1100, tile_size=256, spacing_x=0.25,
                                            kind='labels'), _labels('uint8'), 'deflate'),
    Case('probability_uint16', CanvasSpec(width=2100, height=1100, dtype='uint16', tile_size=128,
                                          spacing_x=0.25, spacing_y=0.3, kind='probability'),
         _noise('uint16')),
    Case('labels_uint32', CanvasSpec(width=1500, height=1100, dtype='uint32', tile_size=128,
                                     spacing_x=1.0, kind='labels'), _labels('uint32')),
    Case('probability_float32', CanvasSpec(width=2100, height=1100, dtype='float32', tile_size=128,
                                           spacing_x=0.5, kind='probability'), _noise('float32')),
    Case('rgb_lzw', CanvasSpec(width=1300, height=900, channels=3, tile_size=128, spacing_x=0.5,
                               kind='image'), _noise('uint8'), 'lzw'),
    Case('rgb_jpeg', CanvasSpec(width=1300, height=900, channels=3, tile_size=128, spacing_x=0.5,
                                kind='image'), None),
    Case('rgba_uint8', CanvasSpec(width=1200, height=1100, channels=4, tile_size=128,
                                  spacing_x=0.5, kind='image'), _noise('uint8')),
    Case('two_channels_uint8', CanvasSpec(width=1300, height=900, channels=2, tile_size=128,
                                          spacing_x=0.5, kind='probability'), _noise('uint8')),
    Case('five_channels_float32', CanvasSpec(width=1300, height=900, channels=5, dtype='float32',
                                             tile_size=128, spacing_x=0.5, kind='probability'),
         _noise('float32')),
]


def smooth_rgb(height: int, width: int) -> numpy.ndarray:
    yy, xx = numpy.mgrid[0:height, 0:width].astype(numpy.float64)
    planes = [128 + 100 * numpy.sin(xx / 47.0), 128 + 100 * numpy.cos(yy / 31.0),
              128 + 60 * numpy.sin((xx + yy) / 53.0)]
    return numpy.stack(planes, axis=-1).astype(numpy.uint8)


@dataclasses.dataclass
class Written:
    case: Case
    path: Path
    canvas: numpy.ndarray
    reference: list[numpy.ndarray]  # the model pyramid (lossless cases)
    decoded: list[numpy.ndarray]  # tifffile's reading of every level

    @property
    def spec(self) -> CanvasSpec:
        return self.case.spec


@pytest.fixture(scope='module', params=CASES, ids=lambda case: case.name)
def written(request, tmp_path_factory) -> Written:
    case: Case = request.param
    spec = case.spec
    if case.values is None:
        canvas = smooth_rgb(spec.height, spec.width)
    else:
        canvas = _blobs(spec.shape, spec.dtype, case.values, seed=len(case.name))
    path = tmp_path_factory.mktemp(case.name) / f'{case.name}.tif'
    report = finalize(ArraySource(spec, canvas), path, compression=case.compression, workers=2)
    assert report.levels == expected_levels(spec.width, spec.height, spec.tile_size)
    reference = model_pyramid(canvas, report.resampling, spec.tile_size)
    decoded = read_levels_tifffile(path)
    for number, (got, want) in enumerate(zip(decoded, reference, strict=True)):
        if case.lossless:
            if want.dtype.kind == 'f':
                numpy.testing.assert_allclose(got, want, rtol=1e-6, err_msg=f'level {number}')
            else:
                numpy.testing.assert_array_equal(got, want, err_msg=f'level {number}')
        else:
            assert psnr(got, want) >= 40
    return Written(case, path, canvas, reference, decoded)


def assert_level_pixels(written: Written, number: int, got: numpy.ndarray, reader: str) -> None:
    """Level 0 equals the canvas exactly (lossless); lower levels equal tifffile's."""
    want = written.decoded[number]
    assert got.shape == want.shape, (reader, number, got.shape, want.shape)
    if number == 0 and written.case.lossless:
        numpy.testing.assert_array_equal(got, written.canvas, err_msg=f'{reader} level 0')
    elif written.case.lossless:
        numpy.testing.assert_array_equal(got, want, err_msg=f'{reader} level {number}')
    else:
        # A JPEG decoder of the reader's own (libjpeg through libtiff) may
        # round differently from imagecodecs: within a few levels.
        assert psnr(got, want) >= 45, (reader, number)


def expected_spacing(spec: CanvasSpec) -> tuple[float, float]:
    return (spec.spacing_x, spec.spacing_y)


# -- ASAP 2.2 (its own TIFF reader) ------------------------------------------
@pytest.fixture(scope='module')
def asap() -> None:
    reason = readers.asap_unavailable()
    if reason:
        pytest.skip(reason)


def test_asap_reads_every_level(written: Written, asap) -> None:
    spec = written.spec
    got = readers.read_levels_asap(written.path)
    plan = expected_levels(spec.width, spec.height, spec.tile_size)
    assert got['dimensions'] == [(w, h) for w, h, _ in plan]
    assert got['downsamples'] == pytest.approx([2.0**k for k in range(len(plan))])
    assert got['channels'] == spec.channels
    assert got['spacing'] == pytest.approx(expected_spacing(spec), rel=1e-6)
    for number, level in enumerate(got['levels']):
        assert_level_pixels(written, number, level, 'ASAP')
    assert inspect_tiff(written.path)['readers']['asap']['ok']


def _tifffile_pyramid(path: Path, level0: numpy.ndarray, levels: int = 2, **options) -> Path:
    import tifffile

    options.setdefault('tile', (256, 256))
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        level = level0
        for number in range(levels):
            extra = dict(options)
            if number:
                extra.pop('description', None)
            tif.write(level, subfiletype=0 if number == 0 else 1, photometric='minisblack',
                      resolution=(20000 / 2**number, 20000 / 2**number), resolutionunit='CENTIMETER',
                      **extra)
            level = numpy.ascontiguousarray(level[::2, ::2])
    return path


FOREIGN = {
    'plain pyramid': lambda p, a: _tifffile_pyramid(p, a),
    'xml in the description': lambda p, a: _tifffile_pyramid(p, a, description='<xml>x</xml>'),
    'adobe deflate': lambda p, a: _tifffile_pyramid(p, a, compression='adobe_deflate'),
    'zstd': lambda p, a: _tifffile_pyramid(p, a, compression='zstd'),
    'single level 4096 wide': lambda p, a: _tifffile_pyramid(
        p, numpy.zeros((300, 4096), numpy.uint8), levels=1),
    'single level 4080 wide': lambda p, a: _tifffile_pyramid(
        p, numpy.zeros((300, 4080), numpy.uint8), levels=1),
    'strips': lambda p, a: _tifffile_pyramid(p, a, tile=None),
}


@pytest.mark.parametrize('name', list(FOREIGN))
def test_info_asap_verdict_is_what_asap_does(tmp_path: Path, name: str, asap) -> None:
    level0 = (numpy.random.default_rng(5).integers(0, 4, (1200, 2200)) * 60).astype(numpy.uint8)
    path = FOREIGN[name](tmp_path / 'f.tif', level0)
    verdict = inspect_tiff(path)['readers']['asap']
    assert verdict['ok'] == readers.asap_opens(path), (name, verdict)


# -- tiffslide -----------------------------------------------------------------
def test_tiffslide_reads_every_level(written: Written) -> None:
    spec = written.spec
    got = readers.read_levels_tiffslide(written.path)
    plan = expected_levels(spec.width, spec.height, spec.tile_size)
    assert got['dimensions'] == [(w, h) for w, h, _ in plan]
    assert got['downsamples'] == pytest.approx([2.0**k for k in range(len(plan))], rel=1e-3)
    assert got['spacing'] == pytest.approx(expected_spacing(spec), rel=1e-6)
    for number, level in enumerate(got['levels']):
        assert_level_pixels(written, number, level, 'tiffslide')


# -- large_image -----------------------------------------------------------------
def test_large_image_uses_every_level_we_wrote(written: Written) -> None:
    """large_image's tiff source (``large_image.open``'s pick for .tif) serves each of our
    levels from its own directory: none rebuilt (LANCZOS would invent labels)."""
    spec = written.spec
    import large_image

    assert large_image.open(str(written.path), noCache=True).name == 'tiff'
    got = readers.read_levels_large_image(written.path, 'tiff')
    plan = expected_levels(spec.width, spec.height, spec.tile_size)
    assert got['size'] == (spec.width, spec.height)
    assert got['tile'] == (plan[0][2], plan[0][2])
    ours = range(got['top'] - len(plan) + 1, got['top'] + 1)
    assert not set(got['rebuilt']) & set(ours), got['rebuilt']
    # Below our overview large_image adds levels of its own (down to one tile).
    assert set(got['rebuilt']) == set(range(got['top'] - len(plan) + 1))
    assert got['spacing'] == pytest.approx(expected_spacing(spec), rel=1e-6)
    for number in range(len(plan)):
        assert_level_pixels(written, number, got['levels'][number], 'large_image')
    assert inspect_tiff(written.path)['readers']['large_image']['ok']


# -- Bio-Formats, and the OME-TIFF flavour -------------------------------------------
@pytest.fixture(scope='module')
def bioformats() -> None:
    reason = readers.bioformats_unavailable()
    if reason:
        pytest.skip(reason)


def test_bioformats_sees_level_0_of_the_default_flavour(written: Written, bioformats) -> None:
    """Bio-Formats reads level 0 exactly with its pixel size, but takes our reduced
    levels for thumbnails: one resolution; info says so."""
    spec = written.spec
    got = readers.read_levels_bioformats(written.path)
    assert got['series'] == 1 and got['channels'] == spec.channels
    assert got['dimensions'] == [(spec.width, spec.height)]
    assert got['spacing'] == pytest.approx(expected_spacing(spec), rel=1e-6)
    assert_level_pixels(written, 0, got['levels'][0], 'Bio-Formats')
    verdicts = inspect_tiff(written.path)['readers']
    assert not verdicts['bioformats']['ok']
    assert verdicts['qupath']['ok'] == verdicts['openslide_4']['ok']


@dataclasses.dataclass
class WrittenOme(Written):
    names: list[str] = dataclasses.field(default_factory=list)


@pytest.fixture(scope='module', params=CASES, ids=lambda case: case.name)
def written_ome(request, tmp_path_factory) -> WrittenOme:
    import tifffile

    case: Case = request.param
    spec = case.spec
    canvas = (smooth_rgb(spec.height, spec.width) if case.values is None
              else _blobs(spec.shape, spec.dtype, case.values, seed=len(case.name)))
    path = tmp_path_factory.mktemp(case.name) / f'{case.name}.ome.tif'
    names = [f'class {c}' for c in range(spec.channels)]
    report = finalize(ArraySource(spec, canvas), path, compression=case.compression, workers=2,
                      flavor='ome', channel_names=names)
    assert any('OME-TIFF flavor' in w for w in report.warnings)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_ome and len(tif.pages) == 1  # the reduced levels are SubIFDs
        decoded = [level.asarray() for level in tif.series[0].levels]
    decoded = [d[:, :, None] if d.ndim == 2 else d for d in decoded]
    reference = model_pyramid(canvas, report.resampling, spec.tile_size)
    return WrittenOme(case, path, canvas, reference, decoded, names)


def test_bioformats_sees_every_resolution_of_the_ome_flavour(written_ome: WrittenOme, bioformats) -> None:
    spec = written_ome.spec
    got = readers.read_levels_bioformats(written_ome.path)
    plan = expected_levels(spec.width, spec.height, spec.tile_size)
    assert got['format'] == 'OME-TIFF' and got['series'] == 1
    assert got['dimensions'] == [(w, h) for w, h, _ in plan]
    assert got['channels'] == spec.channels
    assert got['spacing'] == pytest.approx(expected_spacing(spec), rel=1e-6)
    assert got['channel_names'] == [', '.join(written_ome.names)]
    for number, level in enumerate(got['levels']):
        assert_level_pixels(written_ome, number, level, 'Bio-Formats')
    # Lower levels: tifffile's decoding equals the model pyramid (lossless).
    if written_ome.case.lossless:
        for got_level, want in zip(written_ome.decoded, written_ome.reference, strict=True):
            numpy.testing.assert_allclose(got_level, want, rtol=1e-6)
    report = inspect_tiff(written_ome.path)
    assert report['ok'] and report['flavor'] == 'ome'
    assert report['accepted_by'] == ['large_image', 'Bio-Formats', 'QuPath']
    assert report['provenance']['kind'] == spec.kind


def test_large_image_reads_the_ome_flavour(written_ome: WrittenOme) -> None:
    spec = written_ome.spec
    got = readers.read_levels_large_image(written_ome.path, 'tiff')
    plan = expected_levels(spec.width, spec.height, spec.tile_size)
    ours = range(got['top'] - len(plan) + 1, got['top'] + 1)
    assert not set(got['rebuilt']) & set(ours), got['rebuilt']
    for number in range(len(plan)):
        assert_level_pixels(written_ome, number, got['levels'][number], 'large_image')


def test_asap_and_openslide_refuse_the_ome_flavour(written_ome: WrittenOme, asap) -> None:
    import openslide

    verdicts = inspect_tiff(written_ome.path)['readers']
    assert not verdicts['asap']['ok'] and not readers.asap_opens(written_ome.path)
    assert not verdicts['openslide_4']['ok']
    try:
        with openslide.OpenSlide(str(written_ome.path)) as slide:
            assert slide.level_count == 1  # the SubIFDs are invisible to it
    except openslide.OpenSlideError:
        pass  # or it refuses the pixel type outright


@pytest.mark.parametrize('compression', ['zstd', 'deflate', 'none'])
def test_bioformats_decodes_our_lossless_codecs(tmp_path: Path, compression: str, bioformats) -> None:
    spec = CanvasSpec(width=1100, height=300, tile_size=64, kind='labels', spacing_x=0.25)
    canvas = numpy.random.default_rng(4).integers(0, 4, spec.shape).astype(numpy.uint8)
    path = tmp_path / f'{compression}.tif'
    finalize(ArraySource(spec, canvas), path, compression=compression, flavor='ome')
    got = readers.read_levels_bioformats(path)
    numpy.testing.assert_array_equal(got['levels'][0], canvas)
    assert len(got['levels']) == len(expected_levels(1100, 300, 64))
    assert inspect_tiff(path)['readers']['bioformats']['ok']


def test_large_image_openslide_source_uses_every_level(written: Written) -> None:
    """large_image's openslide source, where OpenSlide 4 shows the pixels (uint8 grey
    and RGB): each of our levels served from its own OpenSlide level, unscaled."""
    spec = written.spec
    if not inspect_tiff(written.path)['readers']['openslide_4']['ok'] or spec.channels == 4:
        # OpenSlide cannot show these pixels (info says so; test_finalize covers
        # RGBA's premultiplied alpha): nothing of large_image's to compare.
        assert spec.channels == 4 or spec.dtype != 'uint8' or spec.channels == 2
        return
    from tests.helpers.tiff_reference import openslide_expected_rgba

    got = readers.read_levels_large_image(written.path, 'openslide')
    plan = expected_levels(spec.width, spec.height, spec.tile_size)
    assert got['size'] == (spec.width, spec.height)
    assert got['spacing'] == pytest.approx(expected_spacing(spec), rel=1e-6)
    import large_image_source_openslide

    source = large_image_source_openslide.open(str(written.path), noCache=True)
    served = source._svslevels[-len(plan):]  # large_image's z for our levels, smallest first
    assert [level['scale'] for level in served] == [1] * len(plan)
    assert [level['svslevel'] for level in served] == list(range(len(plan)))[::-1]
    for number in range(len(plan)):
        want = openslide_expected_rgba(written.decoded[number])
        level = got['levels'][number]
        assert level.shape[:2] == want.shape[:2]
        if written.case.lossless:
            numpy.testing.assert_array_equal(level[..., :3], want[..., :3], err_msg=f'level {number}')
        else:
            assert psnr(level[..., :3], want[..., :3]) >= 45
