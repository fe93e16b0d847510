"""Every writer engine passes the same conformance tests.

The ASAP engine's subclass runs wherever ASAP's Python module
``multiresolutionimageinterface`` was built (``.ci/run`` builds it from
../shared/asap into .cache/asap, see tests/helpers/readers.py); it skips, saying
why, only where it cannot be built (it is on no package registry).
"""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy
import pytest
import tifffile

from tifwriter_cli.engines import get_engine
from tifwriter_cli.finalization import finalize
from tifwriter_cli.sources import ArraySource
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.tiff.inspect import inspect_tiff

from tests.helpers.readers import asap_unavailable, read_levels_asap


def labels_canvas() -> tuple[CanvasSpec, numpy.ndarray]:
    spec = CanvasSpec(width=2500, height=1300, tile_size=256, spacing_x=0.5, kind='labels')
    rng = numpy.random.default_rng(21)
    canvas = numpy.zeros(spec.shape, numpy.uint8)
    for _ in range(40):
        y, x = rng.integers(0, 1300), rng.integers(0, 2500)
        canvas[y : y + rng.integers(10, 400), x : x + rng.integers(10, 400)] = rng.integers(1, 8)
    return spec, canvas


def rgb_canvas() -> tuple[CanvasSpec, numpy.ndarray]:
    spec = CanvasSpec(width=1300, height=700, channels=3, tile_size=128, kind='image', spacing_x=0.25)
    rng = numpy.random.default_rng(22)
    return spec, rng.integers(0, 256, spec.shape).astype(numpy.uint8)


class EngineConformance:
    """What any engine must do; subclasses choose the engine."""

    engine_name: str = ''

    @pytest.fixture
    def engine(self) -> str:
        return self.engine_name

    def check_structure(self, path: Path, spec: CanvasSpec) -> None:
        report = inspect_tiff(path)
        assert report['ok'], report['reasons']
        assert report['readers']['asap']['ok'], report['readers']['asap']
        levels = report['levels']
        assert (levels[0]['width'], levels[0]['height']) == (spec.width, spec.height)
        assert len(levels) >= 2
        for previous, level in pairwise(levels):
            assert level['width'] < previous['width']
            assert level['new_subfile_type'] == 1
        for level in levels:
            assert level['tile_width'] % 16 == 0 and level['tile_height'] % 16 == 0
            assert level['zero_byte_tiles'] == 0
        assert max(levels[-1]['width'], levels[-1]['height']) <= 1024
        assert report['spacing_um'] == pytest.approx([spec.spacing_x, spec.spacing_y], rel=1e-5)
        for word in ('xml', 'XML', 'DICOM'):
            assert word not in report['description']

    def test_labels_level0_exact(self, engine: str, tmp_path: Path) -> None:
        spec, canvas = labels_canvas()
        out = tmp_path / 'labels.tif'
        report = finalize(ArraySource(spec, canvas), out, engine=engine, compression='lzw')
        assert report.engine == engine and out.exists()
        with tifffile.TiffFile(out) as tif:
            numpy.testing.assert_array_equal(tif.pages[0].asarray(), canvas[..., 0])
            # Lower levels hold only labels that exist (nearest or mode).
            present = set(numpy.unique(canvas).tolist())
            for page in tif.pages[1:]:
                assert set(numpy.unique(page.asarray()).tolist()) <= present
        self.check_structure(out, spec)

    def test_rgb_lossless_level0_exact(self, engine: str, tmp_path: Path) -> None:
        spec, canvas = rgb_canvas()
        out = tmp_path / 'rgb.tif'
        finalize(ArraySource(spec, canvas), out, engine=engine, compression='lzw')
        with tifffile.TiffFile(out) as tif:
            numpy.testing.assert_array_equal(tif.pages[0].asarray(), canvas)
            assert int(tif.pages[0].photometric) == 2
        self.check_structure(out, spec)

    def test_asap_reader_sees_every_level(self, engine: str, tmp_path: Path) -> None:
        reason = asap_unavailable()
        if reason:
            pytest.skip(reason)
        spec, canvas = labels_canvas()
        out = tmp_path / 'labels.tif'
        report = finalize(ArraySource(spec, canvas), out, engine=engine, compression='lzw')
        seen = read_levels_asap(out)
        assert seen['dimensions'] == [(w, h) for w, h, _ in report.levels]
        assert seen['spacing'] == pytest.approx((spec.spacing_x, spec.spacing_y), rel=1e-6)
        numpy.testing.assert_array_equal(seen['levels'][0], canvas)
        with tifffile.TiffFile(out) as tif:
            for page, level in zip(tif.pages, seen['levels'], strict=True):
                numpy.testing.assert_array_equal(level[..., 0], page.asarray())

    def test_failure_leaves_nothing(self, engine: str, tmp_path: Path) -> None:
        spec, canvas = labels_canvas()

        class Failing(ArraySource):
            def read_region(self, x, y, width, height):
                if y > 600:
                    raise OSError('disk vanished')
                return super().read_region(x, y, width, height)

        with pytest.raises(OSError, match='disk vanished'):
            finalize(Failing(spec, canvas), tmp_path / 'x.tif', engine=engine)
        assert list(tmp_path.iterdir()) == []


class TestNativeEngine(EngineConformance):
    engine_name = 'native'

    def test_is_available(self) -> None:
        assert get_engine('native').name == 'native'


class TestAsapEngine(EngineConformance):
    engine_name = 'asap'

    @pytest.fixture
    def engine(self) -> str:
        reason = asap_unavailable()
        if reason:
            pytest.skip(reason)
        return 'asap'

    def test_ome_flavor_is_refused_before_any_work(self, engine: str, tmp_path: Path) -> None:
        from tifwriter_cli.errors import InvalidOptionError

        spec, canvas = labels_canvas()
        with pytest.raises(InvalidOptionError, match='the asap engine writes flavor wsi, not ome'):
            finalize(ArraySource(spec, canvas), tmp_path / 'x.tif', engine=engine, flavor='ome')
        assert list(tmp_path.iterdir()) == []
