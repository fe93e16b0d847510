"""preview with a class table (legend names, table colours) and ``--region``
(a full-resolution crop of a staging unit or TIFF, over the slide)."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.classes import parse_classes
from tifwriter_cli.preview import LABEL_PALETTE, render_preview
from tifwriter_cli.preview.colours import label_colours
from tifwriter_cli.preview.legend import draw_text, legend_text
from tifwriter_cli.slide import canvas_from_slide
from tifwriter_cli.slide_reader import read_slide_geometry
from tifwriter_cli.sources import ArraySource

from tests.helpers.pictures import as_tuple, blend, colours_in, stage
from tests.helpers.slides import SLIDE_EDGE, SLIDE_LEFT, SLIDE_RIGHT

TABLE = '0=background,1=tumour:#112233,2=stroma'


def labelled_tiff(tmp_path: Path, canvas: numpy.ndarray, classes: str = TABLE) -> Path:
    spec = tw.CanvasSpec(width=canvas.shape[1], height=canvas.shape[0], tile_size=64, classes=classes)
    out = tmp_path / 'mask.tif'
    tw.finalize(ArraySource(spec, canvas), out, overwrite=True)
    return out


def test_legend_names_and_table_colours(tmp_path: Path):
    canvas = numpy.zeros((200, 300), numpy.uint8)
    canvas[:, 100:200] = 1
    canvas[:, 200:] = 2
    image = render_preview(labelled_tiff(tmp_path, canvas), size=300)
    assert image.names == {0: 'background', 1: 'tumour', 2: 'stroma'}
    assert 'classes 0 background,1 tumour,2 stroma' in image.describe()
    picture = image.pixels[:200, :300]
    assert as_tuple(picture[10, 150]) == (0x11, 0x22, 0x33)     # the table's colour
    assert as_tuple(picture[10, 250]) == as_tuple(LABEL_PALETTE[2])  # the default one
    legend = image.pixels[:, 300:]
    assert (0x11, 0x22, 0x33) in colours_in(legend)
    # The second row's text is '1 TUMOUR', drawn in the legend's font.
    scale, margin, swatch, gap, row = 1, 4, 9, 3, 12
    text = legend_text('1 tumour')
    expected = numpy.full((7, len(text) * 6), 255, numpy.uint8)[..., None].repeat(3, -1)
    draw_text(expected, 0, 0, text, scale=scale)
    top = margin + row + (swatch - 7) // 2
    left = margin + swatch + gap
    numpy.testing.assert_array_equal(legend[top : top + 7, left : left + expected.shape[1]], expected)


def test_legend_text_is_what_the_font_can_draw():
    assert legend_text('Tumour (grade 3)') == 'TUMOUR (GRADE 3)'
    assert legend_text('stróma') == 'STR?MA'
    assert legend_text('x' * 40) == 'X' * 23 + '.'


def test_label_colours_take_the_table_and_keep_the_palette_elsewhere():
    table = parse_classes('1=a:#010203,2=b')
    got = label_colours(numpy.array([[0, 1, 2, 300]]), table)
    assert [as_tuple(c) for c in got[0]] == [
        as_tuple(LABEL_PALETTE[0]), (1, 2, 3), as_tuple(LABEL_PALETTE[2]), as_tuple(LABEL_PALETTE[1 + 299 % 255])]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_region_is_the_full_resolution_crop(tmp_path_factory, make_staging, data):
    work = tmp_path_factory.mktemp('region')
    rng = numpy.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    canvas = rng.integers(0, 4, (150, 230)).astype(numpy.uint8)
    x = data.draw(st.integers(0, 229))
    y = data.draw(st.integers(0, 149))
    w = data.draw(st.integers(1, 230 - x))
    h = data.draw(st.integers(1, 150 - y))
    expected = label_colours(canvas[y : y + h, x : x + w])
    staging = stage(make_staging, [(0, 0, canvas)], width=230, height=150)
    for path in (staging, labelled_tiff(work, canvas, classes='a,b,c,d')):
        image = render_preview(path, size=1024, region=(x, y, w, h))
        assert (image.map_width, image.map_height) == (w, h)
        numpy.testing.assert_array_equal(image.pixels[:h, :w], expected)
        assert image.region == (x, y, w, h)


def test_region_larger_than_size_is_sampled_down(tmp_path: Path, make_staging):
    canvas = numpy.zeros((400, 600), numpy.uint8)
    canvas[:, 300:] = 1
    staging = stage(make_staging, [(0, 0, canvas)], width=600, height=400)
    image = render_preview(staging, size=100, region=(200, 0, 200, 400))
    assert (image.map_width, image.map_height) == (50, 100)
    assert as_tuple(image.pixels[50, 10]) == as_tuple(LABEL_PALETTE[0])
    assert as_tuple(image.pixels[50, 40]) == as_tuple(LABEL_PALETTE[1])


@pytest.mark.parametrize('region, words', [
    ((0, 0, 0, 10), 'at least 1'),
    ((290, 0, 20, 10), 'not inside the 300 x 200 canvas'),
    ((-1, 0, 10, 10), 'not inside'),
    ((0.5, 0, 10, 10), 'four integers'),
])
def test_bad_regions(make_staging, region, words):
    from tifwriter_cli.errors import InvalidOptionError

    with pytest.raises(InvalidOptionError, match=words):
        render_preview(make_staging(), region=region)


def test_region_over_the_slide_through_the_cli(run_cli, slide, make_staging, tmp_path):
    fields = canvas_from_slide(read_slide_geometry(slide), downsample=4).to_spec_fields()
    canvas = numpy.zeros((fields['height'], fields['width']), numpy.uint8)
    canvas[:, 240:260] = 2  # a stripe across the slide's colour edge (x = 1008 = 252 * 4)
    staging = stage(make_staging, [(0, 0, canvas)], **fields)
    out = tmp_path / 'seam.png'
    result = run_cli('preview', staging, '-o', out, '--overlay', slide, '--alpha', '0.5',
                     '--region', '230,100,40,30')
    assert result.exit_code == 0, result.output
    assert 'region x 230..270, y 100..130' in result.stdout
    pixels = imagecodecs.png_decode(out.read_bytes())
    assert pixels.shape[0] == 30
    # Picture column j is canvas column 230 + j, over slide x (230 + j + 0.5) * 4.
    assert as_tuple(pixels[5, 0]) == SLIDE_LEFT                         # class 0: the slide shows
    assert as_tuple(pixels[5, 39]) == SLIDE_RIGHT
    assert as_tuple(pixels[5, 15]) == blend(LABEL_PALETTE[2], SLIDE_LEFT, 0.5)   # canvas x 245
    assert as_tuple(pixels[5, 25]) == blend(LABEL_PALETTE[2], SLIDE_RIGHT, 0.5)  # canvas x 255
    assert SLIDE_EDGE == 252 * 4
    bad = run_cli('preview', staging, '-o', tmp_path / 'x.png', '--region', '1,2,3')
    assert bad.exit_code == 2 and '--region takes X,Y,W,H' in bad.stderr
