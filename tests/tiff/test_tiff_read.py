"""tiff/read.py: the one TIFF reader - levels, spacing, provenance, sampled pixels, errors."""

from __future__ import annotations

import math

import numpy
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

from tifwriter_cli.errors import NotATiffError
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.tiff import read
from tifwriter_cli.tiff.metadata import provenance_description

RNG = numpy.random.default_rng(5)
LEVEL0 = RNG.integers(0, 255, size=(200, 330, 3), dtype=numpy.uint8)


@pytest.fixture(scope='module')
def tiffs(tmp_path_factory):
    """The same RGB image stored tiled with zlib, tiled with JPEG (YCbCr) and in strips."""
    folder = tmp_path_factory.mktemp('read')
    paths = {}
    for name, options in {
        'zlib': {'tile': (64, 64), 'compression': 'zlib'},
        'jpeg': {'tile': (64, 64), 'compression': 'jpeg'},
        'strips': {'rowsperstrip': 24, 'compression': 'zlib'},
    }.items():
        paths[name] = folder / f'{name}.tif'
        tifffile.imwrite(paths[name], LEVEL0, photometric='rgb', **options)
    return paths


def reference(path) -> numpy.ndarray:
    return tifffile.imread(path)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(['zlib', 'jpeg', 'strips']),
    rows=st.lists(st.integers(0, 199), min_size=1, max_size=30),
    cols=st.lists(st.integers(0, 329), min_size=1, max_size=30),
)
def test_sampled_pixels_equal_the_whole_page(tiffs, monkeypatch_module, name, rows, cols):
    rows, cols = numpy.sort(rows), numpy.sort(cols)
    whole = reference(tiffs[name])
    with read.open_tiff(tiffs[name]) as tif:
        page = read.pyramid_pages(tif)[0]
        monkeypatch_module.setattr(read, 'WHOLE_PAGE_BYTES', 0)  # segment by segment
        segmented = read.sample_page(page, rows, cols)
        monkeypatch_module.setattr(read, 'WHOLE_PAGE_BYTES', 2**40)  # asarray()
        decoded_whole = read.sample_page(page, rows, cols)
    expected = whole[rows][:, cols]
    assert numpy.array_equal(segmented, expected)
    assert numpy.array_equal(decoded_whole, expected)


@pytest.fixture(scope='module')
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_pyramid_pages_and_spacing(tmp_path):
    path = tmp_path / 'pyramid.tif'
    base = numpy.zeros((256, 512), numpy.uint8)
    with tifffile.TiffWriter(path) as tif:
        tif.write(base, tile=(64, 64), resolution=(40000, 20000), resolutionunit='CENTIMETER')
        tif.write(base[::2, ::2], tile=(64, 64), subfiletype=1, resolution=(20000, 10000),
                  resolutionunit='CENTIMETER')
        tif.write(base[::4, ::4], tile=(32, 32), subfiletype=1)
    with read.open_tiff(path) as tif:
        pages = read.pyramid_pages(tif)
        assert [(p.imagewidth, p.imagelength) for p in pages] == [(512, 256), (256, 128), (128, 64)]
        assert read.page_spacing(pages[0]) == pytest.approx((0.25, 0.5))
        assert read.page_spacing(pages[1]) == pytest.approx((0.5, 1.0))
        assert read.page_spacing(pages[2]) is None  # no resolution unit: unknown


def test_spacing_units():
    assert read.spacing_from_resolution(2, 101600.0, 101600.0) == pytest.approx((0.25, 0.25))  # inch
    assert read.spacing_from_resolution(3, 40000.0, 40000.0) == pytest.approx((0.25, 0.25))  # cm
    assert read.spacing_from_resolution(1, 40000.0, 40000.0) is None  # unit 'none'
    assert read.spacing_from_resolution(3, 0.0, 40000.0) is None
    assert read.svs_mpp('Aperio Image Library v10 |AppMag = 20|MPP = 0.4990') == pytest.approx(0.499)
    assert read.svs_mpp('no pixel size here') is None


def test_provenance_of_ours_and_of_others():
    spec = CanvasSpec(width=10, height=10, kind='probability', dtype='float32', fill=math.nan,
                      slide_downsample=16.0)
    ours = provenance_description(spec, version='9.9', resampling='mean', compression='lzw')
    found = read.parse_provenance(ours)
    assert found['kind'] == 'probability' and found['slide_downsample'] == 16.0
    assert math.isnan(found['fill'])
    assert read.parse_provenance('{"kind": "labels", "fill": 3}') == {'kind': 'labels', 'fill': 3.0}
    assert read.parse_provenance(None) == {}


@pytest.mark.parametrize('content', [b'plain text, not a TIFF\n', b'', b'II*\x00\xff\xff\xff\x7f'])
def test_unreadable_files_raise_one_line(tmp_path, content):
    path = tmp_path / 'bad.tif'
    path.write_bytes(content)
    with pytest.raises(NotATiffError) as info:
        with read.open_tiff(path) as tif:
            read.pyramid_pages(tif)
    assert str(path) in str(info.value) and '\n' not in str(info.value)


def test_damaged_tiles_raise_one_line(tmp_path):
    path = tmp_path / 'cut.tif'
    tifffile.imwrite(path, LEVEL0, tile=(64, 64), compression='zlib', photometric='rgb')
    with tifffile.TiffFile(path) as tif:
        first = tif.pages[0].dataoffsets[0]
    data = bytearray(path.read_bytes())
    data[first : first + 64] = b'\xff' * 64  # corrupt the first tile's zlib stream
    path.write_bytes(bytes(data))
    with pytest.raises(NotATiffError) as info:
        with read.open_tiff(path) as tif:
            read.sample_page(read.pyramid_pages(tif)[0], numpy.arange(5), numpy.arange(5))
    assert 'damaged TIFF' in str(info.value) and '\n' not in str(info.value)
