"""inspect_tiff: facts and reader verdicts, on our output and on rule-breaking TIFFs."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import tifffile

from tifwriter_cli.errors import NotATiffError
from tifwriter_cli.finalization import finalize
from tifwriter_cli.info import format_tiff_report
from tifwriter_cli.sources import ArraySource
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.tiff.inspect import inspect_tiff

RNG = numpy.random.default_rng(0)
LEVEL0 = (RNG.integers(0, 4, (1200, 2200)) * 60).astype(numpy.uint8)


def pyramid(level0: numpy.ndarray, count: int = 2) -> list[numpy.ndarray]:
    levels = [level0]
    for _ in range(count - 1):
        levels.append(numpy.ascontiguousarray(levels[-1][::2, ::2]))
    return levels


def write_with_tifffile(path: Path, levels, *, subfiletypes=None, **options) -> Path:
    """A top-level-IFD pyramid written by tifffile with the given options."""
    options.setdefault('tile', (256, 256))
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        for number, level in enumerate(levels):
            subfiletype = (0 if number == 0 else 1) if subfiletypes is None else subfiletypes[number]
            extra = dict(options)
            if number:
                extra.pop('description', None)
            tif.write(level, subfiletype=subfiletype, photometric='minisblack', **extra)
    return path


@pytest.fixture(scope='module')
def ours(tmp_path_factory) -> tuple[Path, dict]:
    spec = CanvasSpec(width=2200, height=1200, tile_size=256, spacing_x=0.25, kind='labels')
    canvas = numpy.zeros(spec.shape, numpy.uint8)
    canvas[100:400, 100:700] = 3
    path = tmp_path_factory.mktemp('ours') / 'ours.tif'
    report = finalize(ArraySource(spec, canvas), path)
    return path, report


def test_our_output_is_ok(ours) -> None:
    path, written = ours
    r = inspect_tiff(path)
    assert r['ok'] and r['reasons'] == []
    assert all(r['readers'][reader]['ok'] for reader in ('asap', 'openslide_3.4', 'openslide_4'))
    assert [(level['width'], level['height'], level['tile_width']) for level in r['levels']] == written.levels
    assert [level['downsample'] for level in r['levels']] == [1.0, 2.0, 2200 / 550]
    assert r['levels'][1]['new_subfile_type'] == 1
    assert r['spacing_um'] == pytest.approx([0.25, 0.25])
    assert r['levels'][2]['spacing_um'] == pytest.approx([1.0, 1.0])
    assert r['dtype'] == 'uint8' and r['channels'] == 1 and r['photometric'] == 'MinIsBlack'
    assert r['compression'] == 'lzw' and r['levels'][0]['compression_tag'] == 5
    assert r['provenance']['kind'] == 'labels' and r['provenance']['resampling'] == 'mode'
    assert r['provenance']['tool'].startswith('tifwriter ')
    assert r['sample_range'] == {'min': [0.0], 'max': [3.0]}
    assert r['tiles'] == {'referenced': written.tiles_written, 'stored': written.tiles_stored}
    text = format_tiff_report(r)
    assert 'spacing       0.25 x 0.25 um/px' in text
    assert 'verdict       ok' in text
    assert '2200 x 1200' in text


def test_stripped_tiff_fails(tmp_path: Path) -> None:
    path = tmp_path / 'strips.tif'
    tifffile.imwrite(path, LEVEL0, photometric='minisblack')
    r = inspect_tiff(path)
    assert not r['ok']
    assert any('strips' in reason for reason in r['reasons'])
    assert not any(v['ok'] for v in r['readers'].values())


def test_subifd_pyramid_fails(tmp_path: Path) -> None:
    path = tmp_path / 'subifds.tif'
    levels = pyramid(LEVEL0, 3)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(levels[0], tile=(256, 256), subifds=2, photometric='minisblack')
        for level in levels[1:]:
            tif.write(level, tile=(256, 256), subfiletype=1, photometric='minisblack')
    r = inspect_tiff(path)
    assert not r['ok']
    assert any('SubIFD' in reason for reason in r['reasons'])


def test_adobe_deflate_fails_for_asap(tmp_path: Path) -> None:
    path = write_with_tifffile(tmp_path / 'zlib.tif', pyramid(LEVEL0), compression='zlib')
    r = inspect_tiff(path)
    assert r['levels'][0]['compression_tag'] == 8
    assert not r['ok']
    assert not r['readers']['asap']['ok']
    assert r['readers']['openslide_4']['ok']
    assert any('adobe_deflate' in reason for reason in r['reasons'])


def test_xml_description_fails_for_asap(tmp_path: Path) -> None:
    path = write_with_tifffile(
        tmp_path / 'xml.tif', pyramid(LEVEL0), compression='lzw',
        description='<?xml version="1.0"?><OME/>', metadata=None,
    )
    r = inspect_tiff(path)
    assert not r['ok']
    assert any("'xml'" in reason for reason in r['readers']['asap']['reasons'])
    assert r['readers']['openslide_4']['ok']


def test_levels_not_narrower_and_without_subfile_type(tmp_path: Path) -> None:
    same = write_with_tifffile(tmp_path / 'same.tif', [LEVEL0, LEVEL0], compression='lzw')
    r = inspect_tiff(same)
    assert not r['ok'] and any('not narrower' in reason for reason in r['readers']['asap']['reasons'])
    plain = write_with_tifffile(tmp_path / 'plain.tif', pyramid(LEVEL0), compression='lzw',
                                subfiletypes=[0, 0])
    r = inspect_tiff(plain)
    assert not r['ok']
    assert any('NewSubfileType' in reason for reason in r['readers']['openslide_4']['reasons'])


def test_missing_tiles_fail_only_old_openslide(tmp_path: Path) -> None:
    path = tmp_path / 'missing.tif'
    data = numpy.zeros((512, 512), numpy.uint8)

    def tiles():
        yield numpy.ones((256, 256), numpy.uint8)
        yield None  # byte count 0
        yield numpy.ones((256, 256), numpy.uint8)
        yield None

    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(tiles(), shape=data.shape, dtype=data.dtype, tile=(256, 256), photometric='minisblack')
    r = inspect_tiff(path)
    assert r['levels'][0]['zero_byte_tiles'] == 2
    assert not r['readers']['openslide_3.4']['ok']
    assert r['readers']['openslide_4']['ok'] and r['readers']['asap']['ok']
    assert r['ok']  # OpenSlide 3.4 does not decide the verdict


def test_float32_ok_though_openslide_cannot(tmp_path: Path) -> None:
    path = write_with_tifffile(tmp_path / 'f.tif', pyramid(LEVEL0.astype(numpy.float32)), compression='lzw')
    r = inspect_tiff(path)
    assert r['ok']
    assert r['readers']['asap']['ok']
    assert not r['readers']['openslide_4']['ok']
    assert any('float' in reason for reason in r['readers']['openslide_4']['reasons'])


def test_flat_large_image_is_not_a_pyramid(tmp_path: Path) -> None:
    flat = numpy.zeros((300, 5000), numpy.uint8)
    path = write_with_tifffile(tmp_path / 'flat.tif', [flat], compression='lzw')
    r = inspect_tiff(path)
    assert not r['ok'] and any('no pyramid' in reason for reason in r['reasons'])


def test_no_resolution_is_a_note_not_a_failure(tmp_path: Path) -> None:
    path = write_with_tifffile(tmp_path / 'nores.tif', pyramid(LEVEL0), compression='lzw')
    r = inspect_tiff(path)
    assert r['ok'] and r['spacing_um'] is None
    assert any('pixel size' in note for note in r['readers']['asap']['notes'])


def test_inch_resolution(tmp_path: Path) -> None:
    path = write_with_tifffile(tmp_path / 'inch.tif', pyramid(LEVEL0), compression='lzw',
                               resolution=(101600, 101600), resolutionunit='INCH')
    r = inspect_tiff(path)
    assert r['spacing_um'] == pytest.approx([0.25, 0.25])
    assert any('inches' in note for note in r['readers']['asap']['notes'])


def test_not_a_tiff(tmp_path: Path) -> None:
    path = tmp_path / 'x.tif'
    path.write_bytes(b'II*\x00' + b'\xff' * 40)
    with pytest.raises(NotATiffError):
        inspect_tiff(path)
    path.write_text('plain text')
    with pytest.raises(NotATiffError):
        inspect_tiff(path)


def test_truncated_tiff_fails(ours, tmp_path: Path) -> None:
    path, _ = ours
    data = path.read_bytes()
    # Keep the header and the IFDs (at the end) but lose tile data: the
    # offsets then point past the end of a shorter file.
    cut = tmp_path / 'cut.tif'
    cut.write_bytes(data[:16])
    with pytest.raises(NotATiffError):
        inspect_tiff(cut)
