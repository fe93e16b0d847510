"""Slide geometry and canvases made "like" a slide (init --like)."""

from __future__ import annotations

import contextlib
import logging
import math
import sys

import click
import numpy
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from tifwriter_cli.cli.like_options import like_slide_options, resolve_canvas_geometry
from tifwriter_cli.errors import InvalidOptionError, SlideReadError
from tifwriter_cli.slide import (
    SlideGeometry,
    canvas_from_slide,
    canvas_to_slide,
    slide_to_canvas,
)
from tifwriter_cli.slide_reader import read_slide_geometry
from tifwriter_cli.spec import CanvasSpec

from tests.helpers.slides import SLIDE_H, SLIDE_MPP, SLIDE_W, write_pyramid


@pytest.fixture
def no_openslide(monkeypatch):
    """Make `import openslide` fail, as on an install without the test extra."""
    monkeypatch.setitem(sys.modules, 'openslide', None)


# -- reading -------------------------------------------------------------------
def test_openslide_reads_generic_tiff_with_mpp(slide):
    pytest.importorskip('openslide')
    geometry = read_slide_geometry(slide)
    assert geometry.reader == 'openslide'
    assert (geometry.width, geometry.height) == (SLIDE_W, SLIDE_H)
    assert geometry.mpp_x == pytest.approx(SLIDE_MPP)
    assert geometry.mpp_y == pytest.approx(SLIDE_MPP)
    assert geometry.level_dimensions == ((2000, 1500), (1000, 750), (500, 375), (250, 188))
    assert geometry.level_downsamples[:3] == pytest.approx((1.0, 2.0, 4.0))


def test_tifffile_reads_reduced_pages_when_openslide_cannot(tmp_path, slide_image):
    # Stripped, so OpenSlide's generic-tiff refuses it: tifffile takes over.
    path = write_pyramid(tmp_path / 'stripped.tif', slide_image, tiled=False)
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


def test_fallback_when_openslide_is_not_installed(slide, no_openslide):
    geometry = read_slide_geometry(slide)
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


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@contextlib.contextmanager
def slide_warnings():
    """The warnings tifwriter_cli.slide logs inside the block (a list of
    messages). caplog cannot be used inside hypothesis tests."""
    logger = logging.getLogger('tifwriter_cli.slide')
    handler, level = _Records(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.WARNING)
    messages: list[str] = []
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        messages.extend(record.getMessage() for record in handler.records)


def asap_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if "ASAP's overlay panel will not show it" in m]


def asap_shows(slide_w: int, slide_h: int, canvas_w: int, canvas_h: int, downsample: int) -> bool:
    """ASAP 2's overlay rule (VisualizationWorkstationExtensionPlugin.cpp):
    equal integer ratios, here also equal to the true downsample."""
    return slide_w // canvas_w == slide_h // canvas_h == downsample


@pytest.mark.parametrize('edge, size', [('drop', (125, 93)), ('cover', (125, 94))])
def test_heatmap_at_downsample_16_overlays_the_slide_exactly(slide, edge, size):
    geometry = read_slide_geometry(slide)
    with slide_warnings() as messages:
        canvas = canvas_from_slide(geometry, downsample=16, edge=edge)
    # 1500 / 16 = 93.75: drop -> 93 (default), cover -> 94.
    assert (canvas.width, canvas.height) == size
    assert canvas.slide_downsample == 16
    assert canvas.spacing_x == pytest.approx(16 * SLIDE_MPP)
    assert canvas.spacing_y == pytest.approx(16 * SLIDE_MPP)
    # Every canvas pixel sits exactly on its 16 x 16 block of slide pixels;
    # slide pixels past the canvas are only the partial last block (drop).
    for extent, canvas_extent in ((SLIDE_W, canvas.width), (SLIDE_H, canvas.height)):
        slide_px = numpy.arange(extent)
        owner, _ = slide_to_canvas(slide_px, slide_px, canvas.slide_downsample)
        assert owner.min() == 0
        # The slide's last pixel is in the last canvas pixel, or (drop) in the
        # partial block just past it.
        dropped_block = edge == 'drop' and extent % 16 != 0
        assert owner.max() == canvas_extent - 1 + dropped_block
        for c in range(canvas_extent):
            members = slide_px[owner == c]
            assert members[0] == c * 16
            assert members[-1] == min((c + 1) * 16, extent) - 1
            if edge == 'drop':
                assert len(members) == 16  # whole blocks only
            assert canvas_to_slide(c, c, canvas.slide_downsample) == (c * 16, c * 16)
        assert (slide_px >= canvas_extent * 16).sum() == (0 if edge == 'cover' else extent % 16)
    # Same physical extent as the slide, within one canvas pixel: past the
    # slide's edge with cover, short of it with drop.
    for canvas_size, spacing, slide_size in (
        (canvas.width, canvas.spacing_x, SLIDE_W),
        (canvas.height, canvas.spacing_y, SLIDE_H),
    ):
        overshoot = canvas_size * spacing - slide_size * SLIDE_MPP
        if edge == 'cover':
            assert 0 <= overshoot < spacing
        else:
            assert -spacing < overshoot <= 0
    # ASAP's overlay panel: ratios 16 and 16 with drop; 16 and 15 with cover,
    # which says so once.
    assert asap_shows(SLIDE_W, SLIDE_H, canvas.width, canvas.height, 16) == (edge == 'drop')
    warned = asap_warnings(messages)
    if edge == 'drop':
        assert warned == []
    else:
        assert len(warned) == 1 and '--edge drop' in warned[0] and 'got 16 and 15' in warned[0]
    spec = CanvasSpec(**canvas.to_spec_fields(), kind='probability')
    assert spec.slide_downsample == 16 and (spec.width, spec.height) == size


def test_level_uses_the_level_size_and_its_integer_downsample(slide):
    geometry = read_slide_geometry(slide)
    with slide_warnings() as messages:
        canvas = canvas_from_slide(geometry, level=3)
    # OpenSlide says downsample 7.989 (the 188 rows are rounded); the block is 8.
    assert (canvas.width, canvas.height) == (250, 188)
    assert canvas.slide_downsample == 8
    assert canvas.spacing_x == pytest.approx(2.0) and canvas.spacing_y == pytest.approx(2.0)
    # The level keeps its size, but ASAP's ratios are 8 and 7: one warning.
    warned = asap_warnings(messages)
    assert len(warned) == 1 and '--downsample 8' in warned[0] and 'got 8 and 7' in warned[0]
    with slide_warnings() as messages:
        canvas = canvas_from_slide(geometry, level=1)  # 1000 x 750: ratios 2 and 2
    assert (canvas.width, canvas.height) == (1000, 750)
    assert asap_warnings(messages) == []


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
    'spacing, edge, downsample, size',
    [
        (4.0, 'drop', 16, (125, 93)),
        (4.0, 'cover', 16, (125, 94)),
        (1.0, 'drop', 4, (500, 375)),
        (0.25, 'drop', 1, (2000, 1500)),
        (0.5 / 0.8, 'drop', 2.5, (800, 600)),
    ],
)
def test_target_spacing(spacing, edge, downsample, size):
    canvas = canvas_from_slide(geometry_of(2000, 1500), spacing=spacing, edge=edge)
    assert canvas.slide_downsample == pytest.approx(downsample)
    assert (canvas.width, canvas.height) == size
    assert canvas.spacing_x == spacing
    assert canvas.spacing_y == pytest.approx(spacing)


def test_target_spacing_close_to_an_integer_downsample_snaps():
    canvas = canvas_from_slide(geometry_of(2000, 1500, mpp=0.2500001), spacing=4.0)
    assert canvas.slide_downsample == 16 and (canvas.width, canvas.height) == (125, 93)


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
        ({'downsample': 2, 'edge': 'round'}, 'edge must be one of drop, cover'),
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
    assert (canvas.width, canvas.height) == (125, 93)
    assert 'no pixel size' in caplog.text


def reference_canvas_size(slide_size: int, factor: float, *, round_up: bool) -> int:
    """Reference model by bisection: the smallest n with n * D >= slide
    (cover) or the largest n with n * D <= slide (drop), at least 1; sizes
    within float noise of a multiple count as that multiple."""
    def reaches(n: int) -> bool:
        return n * factor >= slide_size * (1 - 1e-12)

    def fits(n: int) -> bool:
        return n * factor <= slide_size * (1 + 1e-12)

    hi = 1
    while not reaches(hi):
        hi *= 2
    lo = 0
    # Invariant: not reaches(lo) (or lo == 0), reaches(hi).
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if reaches(mid) else (mid, hi)
    if round_up or fits(hi):
        return max(1, hi)
    return max(1, hi - 1)


def slide_cases(test):
    """Hypothesis over slide sizes, integer and fractional downsamples, pixel sizes."""
    return settings(max_examples=200, deadline=None)(
        given(
            width=st.integers(1, 300_000),
            height=st.integers(1, 300_000),
            downsample=st.one_of(
                st.integers(1, 128).map(float),
                st.floats(1.0, 100.0, allow_nan=False, allow_infinity=False),
            ),
            mpp=st.floats(0.05, 5.0),
        )(test)
    )


@slide_cases
def test_cover_canvas_covers_the_slide_with_less_than_one_block_overshoot(
    width, height, downsample, mpp
):
    canvas = canvas_from_slide(geometry_of(width, height, mpp=mpp), downsample=downsample, edge='cover')
    factor = canvas.slide_downsample
    assert factor == pytest.approx(downsample, rel=1e-6)
    for size, slide_size in ((canvas.width, width), (canvas.height, height)):
        assert size == reference_canvas_size(slide_size, factor, round_up=True)
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


@slide_cases
def test_drop_canvas_stops_at_the_last_whole_block(width, height, downsample, mpp):
    canvas = canvas_from_slide(geometry_of(width, height, mpp=mpp), downsample=downsample)
    factor = canvas.slide_downsample
    assert factor == pytest.approx(downsample, rel=1e-6)
    for size, slide_size in ((canvas.width, width), (canvas.height, height)):
        assert size == reference_canvas_size(slide_size, factor, round_up=False)
        if slide_size >= factor:
            # The canvas never reaches past the slide, and what it leaves
            # out is less than one block.
            assert size * factor <= slide_size * (1 + 1e-12)
            assert slide_size - size * factor < factor * (1 + 1e-9)
    assert canvas.spacing_x == pytest.approx(mpp * factor)


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(1, 200_000),
    height=st.integers(1, 200_000),
    downsample=st.integers(1, 128),
    edge=st.sampled_from(['drop', 'cover', None]),
)
def test_asap_overlay_rule_holds_for_drop_and_is_warned_about_otherwise(
    width, height, downsample, edge
):
    kwargs = {} if edge is None else {'edge': edge}
    with slide_warnings() as messages:
        canvas = canvas_from_slide(geometry_of(width, height), downsample=downsample, **kwargs)
    if edge == 'cover':
        expected = (-(-width // downsample), -(-height // downsample))
    else:  # drop, the default
        expected = (max(1, width // downsample), max(1, height // downsample))
    assert (canvas.width, canvas.height) == expected
    shown = asap_shows(width, height, canvas.width, canvas.height, downsample)
    if edge != 'cover' and min(expected) >= downsample:
        # floor(W / D) >= D: W // floor(W / D) == D on both axes.
        assert shown
    # One warning exactly when ASAP's overlay panel will not show the canvas.
    warned = asap_warnings(messages)
    assert len(warned) == (0 if shown else 1), (messages, expected)
    if warned and edge == 'cover':
        assert '--edge drop' in warned[0]


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


def test_resolver_with_like(slide):
    base = dict(width=None, height=None, spacing_y=None, like=str(slide))
    by_downsample = resolve_canvas_geometry(**base, spacing=None, downsample=16, level=None)
    by_spacing = resolve_canvas_geometry(**base, spacing=4.0, downsample=None, level=None)
    by_level = resolve_canvas_geometry(**base, spacing=None, downsample=None, level=2)
    same = resolve_canvas_geometry(**base, spacing=None, downsample=None, level=None)
    dropped = resolve_canvas_geometry(**base, spacing=None, downsample=16, level=None, edge='drop')
    covered = resolve_canvas_geometry(**base, spacing=None, downsample=16, level=None, edge='cover')
    covered_by_spacing = resolve_canvas_geometry(
        **base, spacing=4.0, downsample=None, level=None, edge='cover'
    )
    for fields in (by_downsample, by_spacing, dropped):
        assert (fields['width'], fields['height'], fields['slide_downsample']) == (125, 93, 16)
        assert fields['spacing_x'] == pytest.approx(4.0)
    for fields in (covered, covered_by_spacing):
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
        (dict(level=1, edge='cover'), '--edge cannot be combined with --level'),
        (dict(level=1, edge='drop'), '--edge cannot be combined with --level'),
        (dict(downsample=16, edge='round'), 'edge must be one of drop, cover'),
    ],
)
def test_resolver_refuses_conflicts_with_like(slide, kwargs, message):
    fields = dict(width=None, height=None, spacing=None, spacing_y=None, downsample=None, level=None)
    fields.update(kwargs)
    with pytest.raises(InvalidOptionError, match=message):
        resolve_canvas_geometry(like=str(slide), **fields)


@pytest.mark.parametrize(
    'kwargs, message',
    [
        (dict(downsample=4), '--downsample needs --like'),
        (dict(level=1), '--level needs --like'),
        (dict(edge='drop'), '--edge needs --like'),
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


def test_like_slide_options_decorator_feeds_the_resolver(slide):
    @click.command()
    @click.option('--width', type=int)
    @click.option('--height', type=int)
    @click.option('--spacing', type=float)
    @click.option('--spacing-y', type=float)
    @like_slide_options
    def command(width, height, spacing, spacing_y, like, downsample, level, edge):
        fields = resolve_canvas_geometry(
            width=width, height=height, spacing=spacing, spacing_y=spacing_y,
            like=like, downsample=downsample, level=level, edge=edge,
        )
        click.echo(f"{fields['width']} {fields['height']} {fields['slide_downsample']:g}")

    runner = CliRunner()
    result = runner.invoke(command, ['--like', str(slide), '--downsample', '16'])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == '125 93 16'
    result = runner.invoke(
        command, ['--like', str(slide), '--downsample', '16', '--edge', 'cover']
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == '125 94 16'
    result = runner.invoke(command, ['--like', str(slide), '--level', '1'])
    assert result.output.strip() == '1000 750 2'
    result = runner.invoke(command, ['--width', '5', '--height', '6'])
    assert result.output.strip() == '5 6 1'
    result = runner.invoke(command, ['--like', str(slide), '--level', '-1'])
    assert result.exit_code == 2  # click's own range check


@pytest.mark.parametrize('noise', [1 + 1e-15, 1 - 1e-15])
@pytest.mark.parametrize('edge', ['drop', 'cover'])
def test_canvas_geometry_exact_multiples_survive_float_noise(edge, noise):
    # 2000 / (2000 / 125) must be 125 with either edge: neither 126 (cover)
    # nor 124 (drop) through float noise.
    factor = 2000 / 125 * noise
    canvas = canvas_from_slide(geometry_of(2000, 1500), downsample=factor, edge=edge)
    rounding = math.ceil if edge == 'cover' else math.floor
    assert canvas.width == 125 and canvas.height == rounding(1500 / 16)
