"""Slide geometry and canvases made "like" a slide (init --like)."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import click
import numpy
import pytest
import tifffile
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tifwriter_cli.cli.like_options import like_slide_options
from tifwriter_cli.errors import InvalidOptionError, SlideReadError
from tifwriter_cli.slide import (
    SlideGeometry,
    canvas_from_slide,
    canvas_to_slide,
    read_slide_geometry,
    resolve_canvas_geometry,
    slide_to_canvas,
)
from tifwriter_cli.spec import CanvasSpec

SLIDE_W, SLIDE_H, SLIDE_MPP = 2000, 1500, 0.25


def write_pyramid(
    path: Path,
    level0: numpy.ndarray,
    *,
    mpp: float | None = SLIDE_MPP,
    unit: str = 'CENTIMETER',
    tiled: bool = True,
    subifds: bool = False,
    downsamples=(2, 4, 8),
) -> Path:
    """A pyramid written with tifffile: reduced pages (NewSubfileType 1) or SubIFDs.

    Tiled with reduced top-level pages is what OpenSlide opens as
    'generic-tiff'; stripped files are for tifffile only.
    """
    per_unit = {'CENTIMETER': 1e4, 'INCH': 25400.0}[unit]
    photometric = 'rgb' if level0.ndim == 3 and level0.shape[2] == 3 else 'minisblack'

    def extra(factor: int) -> dict:
        if mpp is None:
            return {}
        res = per_unit / (mpp * factor)
        return {'resolution': (res, res), 'resolutionunit': unit}

    tile = {'tile': (64, 64)} if tiled else {}
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            level0,
            photometric=photometric,
            subifds=len(downsamples) if subifds else None,
            **tile,
            **extra(1),
        )
        for factor in downsamples:
            tif.write(
                level0[::factor, ::factor],
                photometric=photometric,
                subfiletype=1,
                **tile,
                **extra(factor),
            )
    return path


@pytest.fixture
def rgb_slide() -> numpy.ndarray:
    image = numpy.zeros((SLIDE_H, SLIDE_W, 3), numpy.uint8)
    image[..., 0] = 200
    image[:, 1008:, 1] = 180  # a vertical edge on a 16-px block boundary (63 * 16)
    return image


@pytest.fixture
def openslide_slide(tmp_path, rgb_slide) -> Path:
    return write_pyramid(tmp_path / 'slide.tif', rgb_slide)


@pytest.fixture
def no_openslide(monkeypatch):
    """Make `import openslide` fail, as on an install without the test extra."""
    monkeypatch.setitem(sys.modules, 'openslide', None)


# -- reading -------------------------------------------------------------------
def test_openslide_reads_generic_tiff_with_mpp(openslide_slide):
    pytest.importorskip('openslide')
    geometry = read_slide_geometry(openslide_slide)
    assert geometry.reader == 'openslide'
    assert (geometry.width, geometry.height) == (SLIDE_W, SLIDE_H)
    assert geometry.mpp_x == pytest.approx(SLIDE_MPP)
    assert geometry.mpp_y == pytest.approx(SLIDE_MPP)
    assert geometry.level_dimensions == ((2000, 1500), (1000, 750), (500, 375), (250, 188))
    assert geometry.level_downsamples[:3] == pytest.approx((1.0, 2.0, 4.0))


def test_tifffile_reads_reduced_pages_when_openslide_cannot(tmp_path, rgb_slide):
    # Stripped, so OpenSlide's generic-tiff refuses it: tifffile takes over.
    path = write_pyramid(tmp_path / 'stripped.tif', rgb_slide, tiled=False)
    geometry = read_slide_geometry(path)
    assert geometry.reader == 'tifffile'
    assert (geometry.width, geometry.height) == (SLIDE_W, SLIDE_H)
    assert geometry.mpp_x == pytest.approx(SLIDE_MPP)
    assert geometry.level_dimensions == ((2000, 1500), (1000, 750), (500, 375), (250, 188))
    assert geometry.level_downsamples[:3] == pytest.approx((1.0, 2.0, 4.0))


def test_tifffile_reads_subifd_levels_and_inch_units(tmp_path, no_openslide):
    image = numpy.zeros((1500, 2000), numpy.uint8)
    path = write_pyramid(
        tmp_path / 'sub.tif', image, mpp=0.5, unit='INCH', subifds=True, downsamples=(2, 4)
    )
    geometry = read_slide_geometry(path)
    assert geometry.reader == 'tifffile'
    assert geometry.mpp_x == pytest.approx(0.5)
    assert geometry.mpp_y == pytest.approx(0.5)
    assert geometry.level_dimensions == ((2000, 1500), (1000, 750), (500, 375))


def test_fallback_when_openslide_is_not_installed(openslide_slide, no_openslide):
    geometry = read_slide_geometry(openslide_slide)
    assert geometry.reader == 'tifffile'
    assert geometry.level_dimensions == ((2000, 1500), (1000, 750), (500, 375), (250, 188))
    assert geometry.mpp_x == pytest.approx(SLIDE_MPP)


def test_no_resolution_unit_means_no_pixel_size(tmp_path, no_openslide):
    path = write_pyramid(tmp_path / 'nounit.tif', numpy.zeros((64, 80), numpy.uint8), mpp=None)
    geometry = read_slide_geometry(path)
    assert geometry.mpp_x is None and geometry.mpp_y is None


@pytest.mark.parametrize('content', [b'not a slide at all\n', b''])
def test_unreadable_slide_is_one_line_naming_the_file(tmp_path, content):
    path = tmp_path / 'notes.txt'
    path.write_bytes(content)
    with pytest.raises(SlideReadError) as info:
        read_slide_geometry(path)
    message = str(info.value)
    assert str(path) in message and '\n' not in message


def test_missing_slide(tmp_path):
    with pytest.raises(SlideReadError, match='does not exist'):
        read_slide_geometry(tmp_path / 'absent.svs')


# -- canvases ------------------------------------------------------------------
def geometry_of(width, height, mpp=SLIDE_MPP, levels=None) -> SlideGeometry:
    levels = levels or [(width, height)]
    return SlideGeometry(
        path='slide.svs',
        width=width,
        height=height,
        mpp_x=mpp,
        mpp_y=mpp,
        level_dimensions=tuple(levels),
        level_downsamples=tuple((width / w + height / h) / 2 for w, h in levels),
        reader='openslide',
    )


def test_heatmap_at_downsample_16_overlays_the_slide_exactly(openslide_slide):
    geometry = read_slide_geometry(openslide_slide)
    canvas = canvas_from_slide(geometry, downsample=16)
    assert (canvas.width, canvas.height) == (125, 94)  # 1500 / 16 = 93.75 -> 94
    assert canvas.slide_downsample == 16
    assert canvas.spacing_x == pytest.approx(16 * SLIDE_MPP)
    assert canvas.spacing_y == pytest.approx(16 * SLIDE_MPP)
    # Every slide pixel belongs to exactly the canvas pixel whose block holds it.
    for extent, canvas_extent in ((SLIDE_W, canvas.width), (SLIDE_H, canvas.height)):
        slide_px = numpy.arange(extent)
        owner, _ = slide_to_canvas(slide_px, slide_px, canvas.slide_downsample)
        assert owner.min() == 0 and owner.max() == canvas_extent - 1
        for c in range(canvas_extent):
            members = slide_px[owner == c]
            assert members[0] == c * 16
            assert members[-1] == min((c + 1) * 16, extent) - 1
            assert canvas_to_slide(c, c, canvas.slide_downsample) == (c * 16, c * 16)
    # Same physical extent as the slide, within one canvas pixel (the ceil).
    for size, spacing, slide_size in (
        (canvas.width, canvas.spacing_x, SLIDE_W),
        (canvas.height, canvas.spacing_y, SLIDE_H),
    ):
        overshoot = size * spacing - slide_size * SLIDE_MPP
        assert 0 <= overshoot < spacing
    spec = CanvasSpec(**canvas.to_spec_fields(), kind='probability')
    assert spec.slide_downsample == 16 and spec.width == 125


def test_level_uses_the_level_size_and_its_integer_downsample(openslide_slide):
    geometry = read_slide_geometry(openslide_slide)
    canvas = canvas_from_slide(geometry, level=3)
    # OpenSlide says downsample 7.989 (the 188 rows are rounded); the block is 8.
    assert (canvas.width, canvas.height) == (250, 188)
    assert canvas.slide_downsample == 8
    assert canvas.spacing_x == pytest.approx(2.0) and canvas.spacing_y == pytest.approx(2.0)


@pytest.mark.parametrize(
    'levels, expected',
    [
        ([(2001, 1501), (1001, 751), (501, 376)], [1, 2, 4]),  # ceil-rounded levels
        ([(2001, 1501), (1000, 750), (500, 375)], [1, 2, 4]),  # floor-rounded levels
        ([(2000, 1500), (1333, 1000)], [1, 2000 / 1333]),  # no integer explains it
    ],
)
def test_level_downsample_inference(levels, expected):
    geometry = geometry_of(*levels[0], levels=levels)
    for level, downsample in enumerate(expected):
        canvas = canvas_from_slide(geometry, level=level)
        assert (canvas.width, canvas.height) == levels[level]
        assert canvas.slide_downsample == pytest.approx(downsample)
        assert canvas.spacing_x == pytest.approx(SLIDE_MPP * downsample)


def test_level_out_of_range_lists_the_levels():
    geometry = geometry_of(2000, 1500, levels=[(2000, 1500), (1000, 750)])
    with pytest.raises(InvalidOptionError, match=r'levels 0 to 1.*1: 1000x750'):
        canvas_from_slide(geometry, level=2)


@pytest.mark.parametrize(
    'spacing, downsample, size',
    [(4.0, 16, (125, 94)), (1.0, 4, (500, 375)), (0.25, 1, (2000, 1500)), (0.5 / 0.8, 2.5, (800, 600))],
)
def test_target_spacing(spacing, downsample, size):
    canvas = canvas_from_slide(geometry_of(2000, 1500), spacing=spacing)
    assert canvas.slide_downsample == pytest.approx(downsample)
    assert (canvas.width, canvas.height) == size
    assert canvas.spacing_x == spacing
    assert canvas.spacing_y == pytest.approx(spacing)


def test_target_spacing_close_to_an_integer_downsample_snaps():
    canvas = canvas_from_slide(geometry_of(2000, 1500, mpp=0.2500001), spacing=4.0)
    assert canvas.slide_downsample == 16 and (canvas.width, canvas.height) == (125, 94)


def test_default_is_the_slide_itself():
    canvas = canvas_from_slide(geometry_of(2000, 1500))
    assert (canvas.width, canvas.height, canvas.slide_downsample) == (2000, 1500, 1)
    assert canvas.spacing_x == SLIDE_MPP


@pytest.mark.parametrize(
    'kwargs, message',
    [
        ({'downsample': 2, 'level': 0}, 'only one of'),
        ({'downsample': 0.5}, 'at least 1'),
        ({'downsample': -3}, 'positive'),
        ({'downsample': float('nan')}, 'positive'),
        ({'spacing': 0.1}, 'finer than the slide'),
        ({'spacing': 0}, 'positive'),
    ],
)
def test_invalid_canvas_options(kwargs, message):
    with pytest.raises(InvalidOptionError, match=message):
        canvas_from_slide(geometry_of(2000, 1500), **kwargs)


def test_target_spacing_needs_the_slide_pixel_size():
    with pytest.raises(InvalidOptionError, match='no pixel size'):
        canvas_from_slide(geometry_of(2000, 1500, mpp=None), spacing=4.0)


def test_slide_without_pixel_size_gives_canvas_without_one(caplog):
    with caplog.at_level(logging.WARNING, logger='tifwriter_cli.slide'):
        canvas = canvas_from_slide(geometry_of(2000, 1500, mpp=None), downsample=16)
    assert canvas.spacing_x is None and canvas.spacing_y is None
    assert (canvas.width, canvas.height) == (125, 94)
    assert 'no pixel size' in caplog.text


@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(1, 300_000),
    height=st.integers(1, 300_000),
    downsample=st.one_of(
        st.integers(1, 128).map(float),
        st.floats(1.0, 100.0, allow_nan=False, allow_infinity=False),
    ),
    mpp=st.floats(0.05, 5.0),
)
def test_canvas_covers_the_slide_with_less_than_one_block_overshoot(width, height, downsample, mpp):
    canvas = canvas_from_slide(geometry_of(width, height, mpp=mpp), downsample=downsample)
    factor = canvas.slide_downsample
    assert factor == pytest.approx(downsample, rel=1e-6)
    for size, slide_size in ((canvas.width, width), (canvas.height, height)):
        # Reference model: the smallest n with n * D >= slide size.
        n = 1
        while n * factor < slide_size * (1 - 1e-12):
            n *= 2
        lo, hi = n // 2, n
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if mid * factor < slide_size * (1 - 1e-12):
                lo = mid
            else:
                hi = mid
        assert size == max(1, hi)
        # The last slide pixel lands in the last canvas pixel (with a
        # fractional D the last canvas pixel may start inside that slide pixel).
        last, _ = slide_to_canvas(slide_size - 1, 0, factor)
        if factor.is_integer():
            assert last == size - 1
        else:
            assert size - 2 <= last <= size - 1
    assert canvas.spacing_x == pytest.approx(mpp * factor)
    physical = canvas.width * canvas.spacing_x
    assert width * mpp * (1 - 1e-9) <= physical < (width * mpp + canvas.spacing_x) * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(
    xs=st.lists(st.integers(-10**9, 10**9), min_size=1, max_size=50),
    downsample=st.integers(1, 300),
)
def test_slide_to_canvas_is_floor_division(xs, downsample):
    array = numpy.array(xs, dtype=numpy.int64)
    cx, cy = slide_to_canvas(array, array[::-1].copy(), downsample)
    assert cx.tolist() == [x // downsample for x in xs]
    assert cy.tolist() == [x // downsample for x in xs[::-1]]
    assert slide_to_canvas(xs[0], -1, float(downsample)) == (xs[0] // downsample, -1)


def test_slide_to_canvas_fractional_downsample():
    assert slide_to_canvas(4, 5, 2.5) == (1, 2)
    assert slide_to_canvas(-1, 0, 2.5) == (-1, 0)
    cx, _ = slide_to_canvas(numpy.array([0.0, 2.4, 2.5, 7.49]), numpy.zeros(4), 2.5)
    assert cx.tolist() == [0, 0, 1, 2]


# -- the init resolver ---------------------------------------------------------
def test_resolver_without_like_is_the_plain_geometry():
    fields = resolve_canvas_geometry(
        width=300, height=200, spacing=0.5, spacing_y=0.6, like=None, downsample=None, level=None
    )
    assert fields == {
        'width': 300,
        'height': 200,
        'spacing_x': 0.5,
        'spacing_y': 0.6,
        'slide_downsample': 1.0,
    }


def test_resolver_with_like(openslide_slide):
    base = dict(width=None, height=None, spacing_y=None, like=str(openslide_slide))
    by_downsample = resolve_canvas_geometry(**base, spacing=None, downsample=16, level=None)
    by_spacing = resolve_canvas_geometry(**base, spacing=4.0, downsample=None, level=None)
    by_level = resolve_canvas_geometry(**base, spacing=None, downsample=None, level=2)
    same = resolve_canvas_geometry(**base, spacing=None, downsample=None, level=None)
    for fields in (by_downsample, by_spacing):
        assert (fields['width'], fields['height'], fields['slide_downsample']) == (125, 94, 16)
        assert fields['spacing_x'] == pytest.approx(4.0)
    assert (by_level['width'], by_level['height'], by_level['slide_downsample']) == (500, 375, 4)
    assert (same['width'], same['height'], same['slide_downsample']) == (2000, 1500, 1)
    assert same['spacing_x'] == pytest.approx(SLIDE_MPP)
    CanvasSpec(**by_level)  # valid CanvasSpec fields


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(width=10, height=None), '--width cannot be combined with --like'),
        (dict(width=10, height=10), '--width and --height cannot be combined'),
        (dict(spacing_y=0.5), '--spacing-y cannot be combined'),
        (dict(spacing=4.0, downsample=16), '--spacing and --downsample are exclusive'),
        (dict(downsample=16, level=1), '--downsample and --level are exclusive'),
    ],
)
def test_resolver_refuses_conflicts_with_like(openslide_slide, kwargs, message):
    fields = dict(width=None, height=None, spacing=None, spacing_y=None, downsample=None, level=None)
    fields.update(kwargs)
    with pytest.raises(InvalidOptionError, match=message):
        resolve_canvas_geometry(like=str(openslide_slide), **fields)


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(downsample=4), '--downsample needs --like'),
        (dict(level=1), '--level needs --like'),
        (dict(width=None), '--width required'),
        (dict(width=None, height=None), '--width and --height required'),
    ],
)
def test_resolver_without_like_refuses(kwargs, message):
    fields = dict(width=100, height=100, spacing=None, spacing_y=None, downsample=None, level=None)
    fields.update(kwargs)
    with pytest.raises(InvalidOptionError, match=message):
        resolve_canvas_geometry(like=None, **fields)


def test_resolver_unreadable_slide(tmp_path):
    bad = tmp_path / 'bad.svs'
    bad.write_text('nope')
    with pytest.raises(SlideReadError, match='bad.svs'):
        resolve_canvas_geometry(
            width=None, height=None, spacing=None, spacing_y=None, like=str(bad),
            downsample=2, level=None,
        )


def test_like_slide_options_decorator_feeds_the_resolver(openslide_slide):
    @click.command()
    @click.option('--width', type=int)
    @click.option('--height', type=int)
    @click.option('--spacing', type=float)
    @click.option('--spacing-y', type=float)
    @like_slide_options
    def command(width, height, spacing, spacing_y, like, downsample, level):
        fields = resolve_canvas_geometry(
            width=width, height=height, spacing=spacing, spacing_y=spacing_y,
            like=like, downsample=downsample, level=level,
        )
        click.echo(f"{fields['width']} {fields['height']} {fields['slide_downsample']:g}")

    runner = CliRunner()
    result = runner.invoke(command, ['--like', str(openslide_slide), '--downsample', '16'])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == '125 94 16'
    result = runner.invoke(command, ['--like', str(openslide_slide), '--level', '1'])
    assert result.output.strip() == '1000 750 2'
    result = runner.invoke(command, ['--width', '5', '--height', '6'])
    assert result.output.strip() == '5 6 1'
    result = runner.invoke(command, ['--like', str(openslide_slide), '--level', '-1'])
    assert result.exit_code == 2  # click's own range check


def test_canvas_geometry_matches_math_ceil_for_exact_multiples():
    # 2000 / (2000 / 125) must not become 126 through float noise.
    factor = 2000 / 125 * (1 + 1e-15)
    canvas = canvas_from_slide(geometry_of(2000, 1500), downsample=factor)
    assert canvas.width == 125 and canvas.height == math.ceil(1500 / 16)
