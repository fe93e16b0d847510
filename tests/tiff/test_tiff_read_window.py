"""tiff/read.read_window: any window of a page equals the same slice of the
whole page, for tiles, strips, JPEG, missing tiles (read as 0)."""

from __future__ import annotations

import numpy
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tifwriter_cli.tiff.read import read_window


@pytest.fixture(scope='module')
def pages(tmp_path_factory):
    work = tmp_path_factory.mktemp('window')
    rng = numpy.random.default_rng(0)
    grey = rng.integers(0, 200, (300, 410), dtype=numpy.uint8)
    rgb = numpy.kron(rng.integers(0, 255, (30, 41, 3), dtype=numpy.uint8), numpy.ones((10, 10, 1), numpy.uint8))
    made = {}
    tifffile.imwrite(work / 'tiled.tif', grey, tile=(64, 48), compression='zlib')
    made['tiled'] = (work / 'tiled.tif', grey)
    tifffile.imwrite(work / 'strips.tif', grey, rowsperstrip=7)
    made['strips'] = (work / 'strips.tif', grey)
    tifffile.imwrite(work / 'jpeg.tif', rgb, tile=(64, 64), compression='jpeg', photometric='rgb')
    made['jpeg'] = (work / 'jpeg.tif', tifffile.imread(work / 'jpeg.tif'))
    tifffile.imwrite(work / 'planar.tif', numpy.moveaxis(rgb, -1, 0), planarconfig='separate', photometric='rgb')
    made['planar'] = (work / 'planar.tif', rgb)
    return made


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(['tiled', 'strips', 'jpeg', 'planar']), st.data())
def test_window_equals_the_slice_of_the_whole_page(pages, name, data):
    path, whole = pages[name]
    height, width = whole.shape[:2]
    x = data.draw(st.integers(0, width - 1))
    y = data.draw(st.integers(0, height - 1))
    w = data.draw(st.integers(1, width - x))
    h = data.draw(st.integers(1, height - y))
    with tifffile.TiffFile(path) as tif:
        got = read_window(tif.pages[0], x, y, w, h)
    want = whole[y : y + h, x : x + w]
    numpy.testing.assert_array_equal(got, want.reshape(h, w, -1))


def test_outside_the_page_is_refused(pages):
    path, _ = pages['tiled']
    with tifffile.TiffFile(path) as tif, pytest.raises(ValueError, match='not inside'):
        read_window(tif.pages[0], 400, 0, 20, 10)


def test_a_missing_tile_reads_as_zero(tmp_path):
    tiles = [numpy.full((32, 32), 5, numpy.uint8), None, numpy.full((32, 32), 7, numpy.uint8), None]
    tifffile.imwrite(tmp_path / 'missing.tif', iter(tiles), shape=(64, 64), dtype='uint8', tile=(32, 32))
    with tifffile.TiffFile(tmp_path / 'missing.tif') as tif:
        assert list(tif.pages[0].databytecounts)[1] == 0
        got = read_window(tif.pages[0], 16, 16, 40, 40)[:, :, 0]
    want = numpy.zeros((64, 64), numpy.uint8)
    want[:32, :32], want[32:, :32] = 5, 7
    numpy.testing.assert_array_equal(got, want[16:56, 16:56])
