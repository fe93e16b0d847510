"""PNG previews (library): sampling, colours, legends, TIFF input, overlay."""

from __future__ import annotations

import sys
from pathlib import Path

import imagecodecs
import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli import preview
from tifwriter_cli.errors import (
    InvalidOptionError,
    NotAStagingFileError,
    OutputExistsError,
    SlideReadError,
    StagingNotFoundError,
)
from tifwriter_cli.preview import (
    LABEL_PALETTE,
    VIRIDIS,
    label_colours,
    render_preview,
    sampling,
    save_png,
)
from tifwriter_cli.slide import canvas_from_slide
from tifwriter_cli.slide_reader import read_slide_geometry
from tifwriter_cli.tiff import read as tiff_read

from tests.helpers.pictures import as_tuple, blend, colours_in, stage
from tests.helpers.slides import SLIDE_LEFT, SLIDE_RIGHT, write_level_tiff


def nearest_reference(canvas: numpy.ndarray, width: int, height: int) -> numpy.ndarray:
    """Pixel-centre nearest neighbour, written as plain Python loops."""
    src_h, src_w = canvas.shape[:2]
    rows = [int((j + 0.5) * src_h / height) for j in range(height)]
    cols = [int((i + 0.5) * src_w / width) for i in range(width)]
    return numpy.array([[canvas[r, c] for c in cols] for r in rows])


@pytest.fixture
def halves(make_staging) -> Path:
    """300 x 200 labels: left half class 1, right half class 2."""
    return stage(
        make_staging,
        [(0, 0, numpy.full((200, 150), 1, numpy.uint8)), (150, 0, numpy.full((200, 150), 2, numpy.uint8))],
        width=300,
        height=200,
    )


# -- palettes ------------------------------------------------------------------
def test_label_palette_is_fixed_and_distinct():
    assert LABEL_PALETTE.shape == (256, 3) and LABEL_PALETTE.dtype == numpy.uint8
    assert len(colours_in(LABEL_PALETTE)) == 256
    # The class table's default palette (one rule; its H&E visibility is tested
    # in tests/test_classes.py): 0 dark grey, then green, amber, dark green, blue.
    from tifwriter_cli.classes import default_colour

    assert [as_tuple(c) for c in LABEL_PALETTE] == [default_colour(v) for v in range(256)]
    background, green, amber, dark_green, blue = (as_tuple(c) for c in LABEL_PALETTE[:5])
    assert max(background) < 64 and len(set(background)) == 1  # dark grey
    assert green[1] > 150 and green[0] < 100 and green[2] < 100
    assert amber[0] > 200 and amber[1] > 150 and amber[2] < 64
    assert dark_green[1] < 100 and dark_green[0] < 32 and dark_green[2] < 32
    assert blue[2] > 150 and blue[0] < 64
    # Far enough apart to tell apart, and away from the legend's white and black.
    lab = LABEL_PALETTE.astype(int)
    distance = numpy.sqrt(((lab[:, None] - lab[None]) ** 2).sum(-1)) + numpy.eye(256) * 1e9
    assert distance[:24, :24].min() > 50 and distance.min() > 15
    assert not {(255, 255, 255), (0, 0, 0)} & colours_in(LABEL_PALETTE)
    assert as_tuple(label_colours(numpy.array(257))) == as_tuple(LABEL_PALETTE[2])


def test_viridis_endpoints_and_middle():
    assert VIRIDIS.shape == (256, 3)
    assert as_tuple(VIRIDIS[0]) == (68, 1, 84)
    assert as_tuple(VIRIDIS[255]) == (253, 231, 37)
    assert numpy.abs(VIRIDIS[128].astype(int) - (33, 145, 140)).max() <= 2
    brightness = VIRIDIS.astype(int) @ [299, 587, 114]
    # Perceptual: ever brighter (8-bit rounding aside, hence every 8th entry).
    assert (numpy.diff(brightness[::8]) > 0).all()


def test_sample_positions_are_pixel_centres():
    for extent in (1, 7, 300, 1001):
        for count in (1, 3, extent, max(1, extent // 3)):
            expected = [int((j + 0.5) * extent / count) for j in range(count)]
            assert preview.sample_positions(count, extent).tolist() == expected


@pytest.mark.parametrize(
    'width, height, size, expected',
    [(300, 200, 150, (150, 100)), (200, 300, 150, (100, 150)), (300, 200, 5000, (300, 200)),
     (100_000, 3, 1024, (1024, 1)), (301, 200, 100, (100, 66))],
)
def test_picture_size(width, height, size, expected):
    assert preview.picture_size(width, height, size) == expected


# -- staging input -------------------------------------------------------------
def test_labels_halves_have_their_palette_colours_and_a_legend(halves):
    image = render_preview(halves, size=150)
    assert (image.map_width, image.map_height) == (150, 100)
    assert image.rendering == 'labels' and image.classes == (1, 2)
    picture = image.pixels[: image.map_height, : image.map_width]
    assert (picture[:, :75] == LABEL_PALETTE[1]).all()
    assert (picture[:, 75:] == LABEL_PALETTE[2]).all()
    legend = image.pixels[:, image.map_width :]
    assert legend.shape[1] > 0
    found = colours_in(legend)
    assert as_tuple(LABEL_PALETTE[1]) in found and as_tuple(LABEL_PALETTE[2]) in found
    assert as_tuple(LABEL_PALETTE[0]) not in found  # only classes present
    assert image.describe() == 'labels: classes 1,2'


def test_random_labels_match_a_nearest_reference(make_staging):
    rng = numpy.random.default_rng(5)
    canvas = rng.integers(0, 6, size=(61, 97), dtype=numpy.uint8)
    path = stage(make_staging, [(0, 0, canvas)], width=97, height=61)
    image = render_preview(path, size=40)
    assert (image.map_width, image.map_height) == (40, 25)
    expected = label_colours(nearest_reference(canvas, 40, 25))
    assert numpy.array_equal(image.pixels[:25, :40], expected)
    assert image.classes == tuple(sorted(set(nearest_reference(canvas, 40, 25).ravel().tolist())))


def test_bounded_band_reads_give_the_same_picture(make_staging, monkeypatch):
    rng = numpy.random.default_rng(7)
    canvas = rng.integers(0, 4, size=(300, 220), dtype=numpy.uint8)
    path = stage(make_staging, [(0, 0, canvas[:150]), (0, 150, canvas[150:])], width=220, height=300)
    whole = render_preview(path, size=100)
    heights = []
    original = tw.StagingSnapshot.read_region

    def spy(self, x, y, width, height):
        heights.append(height)
        return original(self, x, y, width, height)

    monkeypatch.setattr(tw.StagingSnapshot, 'read_region', spy)
    row_bytes = 220 * (1 * (1 + 8) + 4)
    monkeypatch.setattr(sampling, 'BAND_BYTES', 5 * row_bytes)
    banded = render_preview(path, size=100)
    assert numpy.array_equal(banded.pixels, whole.pixels)
    assert max(heights) <= 5 and len(heights) >= 100 // 5
    expected = label_colours(nearest_reference(canvas, 73, 100))
    assert numpy.array_equal(banded.pixels[:100, :73], expected)


def test_fill_and_overlaps_follow_the_staging_merge(make_staging):
    # Merge 'max' and fill 9: the preview shows what finalize would write.
    path = stage(
        make_staging,
        [(0, 0, numpy.full((10, 10), 3, numpy.uint8)), (5, 5, numpy.full((10, 10), 2, numpy.uint8))],
        width=20, height=20, merge='max', fill=9,
    )
    image = render_preview(path, size=20)
    with tw.read_staging(path) as snapshot:
        expected = label_colours(snapshot.read_canvas()[..., 0])
    assert numpy.array_equal(image.pixels[:20, :20], expected)
    assert image.classes == (2, 3, 9)


@pytest.mark.parametrize(
    'dtype, values, indices',
    [
        ('float32', [0.0, 1.0, 0.5, 2.0, -1.0], [0, 255, 128, 255, 0]),
        ('uint8', [0, 255, 128, 64, 1], [0, 255, 128, 64, 1]),
        ('uint16', [0, 65535, 257 * 128, 257, 30000], [0, 255, 128, 1, round(30000 / 65535 * 255)]),
    ],
)
def test_probability_colour_map(make_staging, dtype, values, indices):
    stripes = numpy.repeat(numpy.array(values, dtype=dtype), 10)[None, :].repeat(4, axis=0)
    path = stage(make_staging, [(0, 0, stripes)], width=50, height=4, dtype=dtype, kind='probability')
    image = render_preview(path, size=50)
    assert image.rendering == 'colormap'
    picture = image.pixels[:4, :50]
    for stripe, index in enumerate(indices):
        assert (picture[:, stripe * 10 : stripe * 10 + 10] == VIRIDIS[index]).all(), stripe
    # The colour bar: both ends of the map, top = high values.
    legend = image.pixels[:, 50:]
    found = colours_in(legend)
    assert as_tuple(VIRIDIS[0]) in found and as_tuple(VIRIDIS[255]) in found
    column = legend[:, numpy.flatnonzero((legend == VIRIDIS[255]).all(-1).any(0))[0]]
    bar_rows = [r for r in range(len(column)) if as_tuple(column[r]) in colours_in(VIRIDIS)]
    assert as_tuple(column[bar_rows[0]]) == as_tuple(VIRIDIS[255])
    assert as_tuple(column[bar_rows[-1]]) == as_tuple(VIRIDIS[0])


def test_rgb_image_passes_through(make_staging):
    rng = numpy.random.default_rng(1)
    canvas = rng.integers(0, 256, size=(40, 60, 3), dtype=numpy.uint8)
    path = stage(make_staging, [(0, 0, canvas)], width=60, height=40, channels=3, kind='image')
    image = render_preview(path, size=60)
    assert image.rendering == 'rgb'
    assert image.pixels.shape == (40, 60, 3)  # no legend for images
    assert numpy.array_equal(image.pixels, canvas)


def test_rgba_over_white_and_uint16_scaled(make_staging):
    rgba = numpy.zeros((2, 3, 4), numpy.uint8)
    rgba[:, 0] = (200, 100, 50, 255)  # opaque
    rgba[:, 1] = (200, 100, 50, 0)  # transparent: white
    rgba[:, 2] = (0, 0, 0, 128)  # half black over white
    path = stage(make_staging, [(0, 0, rgba)], width=3, height=2, channels=4, kind='image')
    picture = render_preview(path).pixels
    assert as_tuple(picture[0, 0]) == (200, 100, 50)
    assert as_tuple(picture[0, 1]) == (255, 255, 255)
    assert as_tuple(picture[0, 2]) == (127, 127, 127)
    rgb16 = numpy.array([[[65535, 0, 257 * 10]]], numpy.uint16)
    path = stage(make_staging, [(0, 0, rgb16)], width=1, height=1, channels=3, dtype='uint16', kind='image')
    assert as_tuple(render_preview(path).pixels[0, 0]) == (255, 0, 10)


def test_multichannel_probabilities_show_the_argmax(make_staging):
    rng = numpy.random.default_rng(3)
    scores = rng.random((30, 40, 5)).astype(numpy.float32)
    path = stage(
        make_staging, [(0, 0, scores)], width=40, height=30, channels=5, dtype='float32',
        kind='probability',
    )
    image = render_preview(path, size=40)
    assert image.rendering == 'argmax'
    winners = scores.argmax(axis=-1)
    assert numpy.array_equal(image.pixels[:30, :40], label_colours(winners))
    assert image.classes == tuple(sorted(set(winners.ravel().tolist())))
    assert 'argmax of 5 channels' in image.describe()


def test_many_classes_legend_in_columns(make_staging):
    canvas = numpy.arange(60, dtype=numpy.uint8).reshape(6, 10).repeat(4, 0).repeat(4, 1)
    path = stage(make_staging, [(0, 0, canvas)], width=40, height=24)
    image = render_preview(path, size=40)
    assert image.classes == tuple(range(60))
    legend = image.pixels[:, 40:]
    assert {as_tuple(LABEL_PALETTE[c]) for c in range(60)} <= colours_in(legend)
    assert image.height < 60 * 12  # wrapped into columns, not one tall strip


# -- TIFF input ----------------------------------------------------------------
def test_tiff_uses_the_smallest_level_at_least_the_size(tmp_path):
    # Each level holds its own class so the picture tells which level was read.
    sizes = [(400, 640), (200, 320), (100, 160), (50, 80)]
    levels = [numpy.full(shape, number + 1, numpy.uint8) for number, shape in enumerate(sizes)]
    path = write_level_tiff(tmp_path / 'p.tif', levels, description='kind=labels')
    for size, expected_class in ((640, 1), (321, 1), (320, 2), (161, 2), (100, 3), (16, 4)):
        image = render_preview(path, size=size)
        assert image.classes == (expected_class,), size
        assert image.map_width == min(size, 640)


def test_tiff_labels_match_reference_and_tile_decoding(tmp_path, monkeypatch):
    rng = numpy.random.default_rng(11)
    level0 = rng.integers(0, 5, size=(300, 410), dtype=numpy.uint8)
    path = write_level_tiff(
        tmp_path / 'l.tif', [level0, level0[::2, ::2]], compression='zlib'
    )
    whole = render_preview(path, size=300)  # level 0 (level 1 is 205 wide)
    expected = label_colours(nearest_reference(level0, 300, 220))
    assert numpy.array_equal(whole.pixels[:220, :300], expected)
    assert whole.kind == 'labels'  # guessed: 5 distinct uint8 values
    # Force the tile-by-tile path (big pages) and the band limit.
    monkeypatch.setattr(tiff_read, 'WHOLE_PAGE_BYTES', 0)
    monkeypatch.setattr(sampling, 'BAND_BYTES', 410 * 3)
    tiled = render_preview(path, size=300)
    assert numpy.array_equal(tiled.pixels, whole.pixels)
    stripped = write_level_tiff(tmp_path / 's.tif', [level0], tiled=False, rowsperstrip=7)
    assert numpy.array_equal(render_preview(stripped, size=300).pixels, whole.pixels)


@pytest.mark.parametrize('compression', ['jpeg', 'lzw', None])
def test_tiff_rgb_tile_decoding_equals_whole_page_decoding(tmp_path, monkeypatch, compression):
    rng = numpy.random.default_rng(2)
    rgb = numpy.kron(rng.integers(0, 256, (12, 17, 3), dtype=numpy.uint8), numpy.ones((8, 8, 1), numpy.uint8))
    path = write_level_tiff(tmp_path / 'rgb.tif', [rgb], photometric='rgb', compression=compression)
    whole = render_preview(path, size=80)
    assert whole.rendering == 'rgb' and whole.pixels.shape == (56, 80, 3)
    monkeypatch.setattr(tiff_read, 'WHOLE_PAGE_BYTES', 0)
    assert numpy.array_equal(render_preview(path, size=80).pixels, whole.pixels)
    if compression != 'jpeg':  # lossless: the exact pixels
        assert numpy.array_equal(whole.pixels, nearest_reference(rgb, 80, 56))


@pytest.mark.parametrize(
    'data, description, rendering',
    [
        (numpy.linspace(0, 1, 64 * 64, dtype=numpy.float32).reshape(64, 64), None, 'colormap'),
        (numpy.arange(64 * 64, dtype=numpy.uint16).reshape(64, 64) % 200, None, 'colormap'),
        (numpy.zeros((64, 64, 3), numpy.uint8), None, 'rgb'),
        (numpy.arange(64 * 64).reshape(64, 64).astype(numpy.uint8) % 4, None, 'labels'),
        (numpy.arange(64 * 64).reshape(64, 64).astype(numpy.uint8) % 4, 'tifwriter kind=probability', 'colormap'),
    ],
)
def test_tiff_kind_from_provenance_or_guess(tmp_path, data, description, rendering):
    path = write_level_tiff(tmp_path / 'k.tif', [data], description=description)
    assert render_preview(path, size=64).rendering == rendering


def test_parse_provenance_formats():
    assert tiff_read.parse_provenance('tifwriter 0.1 kind=labels fill=255 slide_downsample=16') == {
        'kind': 'labels', 'fill': 255.0, 'slide_downsample': 16.0,
    }
    assert tiff_read.parse_provenance('{"kind": "probability", "fill": 0}') == {
        'kind': 'probability', 'fill': 0.0,
    }
    assert tiff_read.parse_provenance('') == {}


def test_preview_of_a_finalized_tiff(make_staging, tmp_path):
    finalize = pytest.importorskip('tifwriter_cli.finalization').finalize
    canvas = numpy.zeros((200, 300), numpy.uint8)
    canvas[:, 150:] = 2
    canvas[50:100, 20:60] = 1
    path = stage(make_staging, [(0, 0, canvas)], width=300, height=200, spacing_x=0.5)
    out = tmp_path / 'final.tif'
    finalize(path, out)
    image = render_preview(out, size=300)
    assert numpy.array_equal(image.pixels[:200, :300], label_colours(canvas))
    assert image.classes == (0, 1, 2)
    # Few distinct values would be guessed as labels: the provenance says otherwise.
    path = stage(make_staging, [(0, 0, canvas * 100)], width=300, height=200, kind='probability')
    finalize(path, tmp_path / 'prob.tif')
    image = render_preview(tmp_path / 'prob.tif', size=300)
    assert image.rendering == 'colormap'
    assert numpy.array_equal(image.pixels[:200, :300], VIRIDIS[canvas * 100])


# -- overlay -------------------------------------------------------------------
@pytest.fixture
def heatmap(request, make_staging, slide) -> tuple[Path, numpy.ndarray]:
    """A labels heatmap --like the slide at downsample 16: 125 x 93 (--edge
    drop, the default), or 125 x 94 when parametrized indirectly with 'cover'."""
    edge = getattr(request, 'param', 'drop')
    fields = canvas_from_slide(read_slide_geometry(slide), downsample=16, edge=edge).to_spec_fields()
    canvas = numpy.zeros((fields['height'], fields['width']), numpy.uint8)
    canvas[40:60, 50:80] = 1  # straddles the slide's colour edge (canvas x 63)
    path = stage(make_staging, [(0, 0, canvas)], **fields)
    return path, canvas


@pytest.mark.parametrize('heatmap', ['drop', 'cover'], indirect=True)
@pytest.mark.parametrize('reader', ['openslide', 'tifffile'])
def test_overlay_blends_classes_and_shows_the_slide_under_background(
    heatmap, slide, reader, monkeypatch
):
    if reader == 'tifffile':
        monkeypatch.setitem(sys.modules, 'openslide', None)
    else:
        pytest.importorskip('openslide')
    path, canvas = heatmap
    height = canvas.shape[0]  # 93 (drop) or 94 (cover: the last row covers slide rows 1488..1499)
    image = render_preview(path, size=125, overlay=slide, alpha=0.4)
    assert (image.map_width, image.map_height) == (125, height)
    picture = image.pixels[:height, :125].astype(int)
    red = as_tuple(LABEL_PALETTE[1])
    for cy, cx in ((10, 10), (height - 1, 62), (45, 40)):  # background, left of the edge
        assert as_tuple(picture[cy, cx]) == SLIDE_LEFT
    for cy, cx in ((10, 63), (height - 1, 124), (45, 100)):  # background, right of the edge
        assert as_tuple(picture[cy, cx]) == SLIDE_RIGHT
    assert as_tuple(picture[45, 62]) == blend(red, SLIDE_LEFT, 0.4)  # class 1, last block left
    assert as_tuple(picture[45, 63]) == blend(red, SLIDE_RIGHT, 0.4)  # first block right
    assert image.classes == (0, 1)
    assert 'over' in image.describe() and 'alpha 0.4' in image.describe()


def test_overlay_of_a_finalized_heatmap_uses_its_slide_downsample(heatmap, slide, tmp_path):
    finalize = pytest.importorskip('tifwriter_cli.finalization').finalize
    path, canvas = heatmap
    finalize(path, tmp_path / 'heat.tif')
    from_tiff = render_preview(tmp_path / 'heat.tif', size=125, overlay=slide, alpha=0.4)
    from_staging = render_preview(path, size=125, overlay=slide, alpha=0.4)
    assert numpy.array_equal(from_tiff.pixels, from_staging.pixels)


def test_overlay_at_reduced_size_reads_a_coarser_slide_level(heatmap, slide):
    path, _ = heatmap
    image = render_preview(path, size=50, overlay=slide, alpha=1.0)
    assert (image.map_width, image.map_height) == (50, 37)  # 125 x 93 scaled by 0.4
    picture = image.pixels[:37, :50]
    # alpha 1: classes opaque; background still the slide.
    assert as_tuple(picture[2, 2]) == SLIDE_LEFT
    assert as_tuple(picture[2, 48]) == SLIDE_RIGHT
    # Picture column 24 shows canvas column 61 (slide x 976..992), column 25
    # canvas column 63 (slide 1008..1024): the slide edge falls between them.
    assert as_tuple(picture[2, 24]) == SLIDE_LEFT
    assert as_tuple(picture[2, 25]) == SLIDE_RIGHT
    assert as_tuple(picture[19, 22]) == as_tuple(LABEL_PALETTE[1])


def test_overlay_aligns_by_pixel_size_without_a_slide_downsample(heatmap, slide, make_staging):
    path, canvas = heatmap
    # Same canvas made by hand (no --like): spacing 4 um/px = 16 x 0.25.
    by_hand = stage(make_staging, [(0, 0, canvas)], width=125, height=93, spacing_x=4.0)
    expected = render_preview(path, size=125, overlay=slide)
    assert numpy.array_equal(render_preview(by_hand, size=125, overlay=slide).pixels, expected.pixels)


def test_overlay_leaves_class_0_and_the_fill_transparent(slide, make_staging):
    fields = canvas_from_slide(read_slide_geometry(slide), downsample=16).to_spec_fields()
    written = numpy.zeros((40, 40), numpy.uint8)  # class 0, written
    written[20:, :] = 3
    path = stage(make_staging, [(0, 0, written)], fill=9, **fields)  # the rest stays 9
    picture = render_preview(path, size=125, overlay=slide, alpha=0.5).pixels
    assert as_tuple(picture[5, 5]) == SLIDE_LEFT  # class 0
    assert as_tuple(picture[80, 100]) == SLIDE_RIGHT  # fill 9, never written
    assert as_tuple(picture[30, 5]) == blend(LABEL_PALETTE[3], SLIDE_LEFT, 0.5)
    # The legend lists the drawn class only: 0 and the fill are see-through.
    image = render_preview(path, size=125, overlay=slide, alpha=0.5)
    assert image.classes == (0, 3, 9)
    legend = colours_in(image.pixels[:, 125:])
    assert as_tuple(LABEL_PALETTE[3]) in legend
    assert not {as_tuple(LABEL_PALETTE[0]), as_tuple(LABEL_PALETTE[9])} & legend


def test_overlay_probability_fill_transparent(slide, make_staging):
    fields = canvas_from_slide(read_slide_geometry(slide), downsample=16).to_spec_fields()
    values = numpy.full((10, 10), 255, numpy.uint8)
    path = stage(make_staging, [(0, 0, values)], kind='probability', **fields)
    picture = render_preview(path, size=125, overlay=slide, alpha=0.5).pixels
    assert as_tuple(picture[5, 5]) == blend(VIRIDIS[255], SLIDE_LEFT, 0.5)
    assert as_tuple(picture[50, 50]) == SLIDE_LEFT  # fill 0


def test_overlay_unreadable_slide(halves, tmp_path):
    bad = tmp_path / 'slide.svs'
    bad.write_text('not a slide')
    with pytest.raises(SlideReadError, match='slide.svs'):
        render_preview(halves, overlay=bad)


# -- output and errors ---------------------------------------------------------
def test_save_png_round_trip_and_refusal(halves, tmp_path):
    image = render_preview(halves, size=100)
    out = tmp_path / 'p.png'
    save_png(image, out)
    decoded = imagecodecs.png_decode(out.read_bytes())
    assert numpy.array_equal(decoded, image.pixels)
    with pytest.raises(OutputExistsError):
        save_png(image, out)
    smaller = render_preview(halves, size=50)
    save_png(smaller, out, overwrite=True)
    assert numpy.array_equal(imagecodecs.png_decode(out.read_bytes()), smaller.pixels)
    assert smaller.map_width == 50
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != '.h5' and p.is_file()) == ['p.png']


def test_input_errors(tmp_path, halves):
    with pytest.raises(StagingNotFoundError, match='does not exist'):
        render_preview(tmp_path / 'absent.h5')
    text = tmp_path / 'x.txt'
    text.write_text('hello')
    with pytest.raises(NotAStagingFileError, match='neither'):
        render_preview(text)
    with pytest.raises(NotAStagingFileError, match='directory'):
        render_preview(tmp_path)
    with pytest.raises(InvalidOptionError):
        render_preview(halves, size=0)
    with pytest.raises(InvalidOptionError):
        render_preview(halves, alpha=1.5)
