"""``tifwriter preview``: PNG written, summary line, refusals and one-line errors."""

from __future__ import annotations

from pathlib import Path

import imagecodecs
import numpy
import pytest

from tifwriter_cli.preview import LABEL_PALETTE, VIRIDIS
from tifwriter_cli.slide import canvas_from_slide
from tifwriter_cli.slide_reader import read_slide_geometry

from tests.helpers.pictures import as_tuple, blend, colours_in, stage
from tests.helpers.slides import SLIDE_LEFT, write_level_tiff


@pytest.fixture
def halves(make_staging) -> Path:
    """300 x 200 labels: left half class 1, right half class 2, a class 3 square."""
    canvas = numpy.full((200, 300), 1, numpy.uint8)
    canvas[:, 150:] = 2
    canvas[10:30, 10:30] = 3
    return stage(make_staging, [(0, 0, canvas)], width=300, height=200)


def decode(path: Path) -> numpy.ndarray:
    return imagecodecs.png_decode(path.read_bytes())


def one_error_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('tifwriter: error:')
    assert 'Traceback' not in result.output
    return lines[0]


def test_preview_labels_png_and_summary(run_cli, halves, tmp_path):
    out = tmp_path / 'mask.png'
    result = run_cli('preview', halves, '-o', out, '--size', '150')
    assert result.exit_code == 0, result.output
    pixels = decode(out)
    assert pixels.shape[0] == 100 and pixels.shape[1] > 150  # picture + legend
    assert as_tuple(pixels[50, 40]) == as_tuple(LABEL_PALETTE[1])
    assert as_tuple(pixels[50, 110]) == as_tuple(LABEL_PALETTE[2])
    assert as_tuple(pixels[10, 10]) == as_tuple(LABEL_PALETTE[3])
    legend = colours_in(pixels[:, 150:])
    assert {as_tuple(LABEL_PALETTE[c]) for c in (1, 2, 3)} <= legend
    assert result.stdout.strip() == (
        f'wrote {out} ({pixels.shape[1]}x100, picture 150x100 + legend; labels: classes 1,2,3)'
    )


def test_preview_default_size_never_upscales(run_cli, halves, tmp_path):
    out = tmp_path / 'p.png'
    assert run_cli('preview', halves, '-o', out).exit_code == 0
    pixels = decode(out)
    assert pixels.shape[0] == 200
    assert (pixels[:200, :150] == LABEL_PALETTE[1]).all(-1).sum() == 150 * 200 - 20 * 20


def test_preview_of_a_tiff_probability(run_cli, tmp_path):
    ramp = numpy.repeat(numpy.array([0.0, 1.0], numpy.float32), 32)[None].repeat(16, axis=0)
    tiff = write_level_tiff(tmp_path / 'p.tif', [ramp, ramp[::2, ::2]])
    out = tmp_path / 'p.png'
    result = run_cli('preview', tiff, '-o', out, '--size', '32')
    assert result.exit_code == 0, result.output
    pixels = decode(out)
    assert as_tuple(pixels[4, 2]) == as_tuple(VIRIDIS[0])
    assert as_tuple(pixels[4, 30]) == as_tuple(VIRIDIS[255])
    assert 'probability: viridis over 0..1' in result.stdout


def test_preview_overlay(run_cli, slide, make_staging, tmp_path):  # noqa: F811
    fields = canvas_from_slide(read_slide_geometry(slide), downsample=16).to_spec_fields()
    canvas = numpy.zeros((fields['height'], fields['width']), numpy.uint8)
    canvas[40:60, 10:30] = 2
    staging = stage(make_staging, [(0, 0, canvas)], **fields)
    out = tmp_path / 'over.png'
    result = run_cli('preview', staging, '-o', out, '--overlay', slide, '--alpha', '0.3', '--size', '125')
    assert result.exit_code == 0, result.output
    pixels = decode(out)
    assert as_tuple(pixels[5, 5]) == SLIDE_LEFT
    assert as_tuple(pixels[50, 20]) == blend(LABEL_PALETTE[2], SLIDE_LEFT, 0.3)
    assert f'over {slide} (alpha 0.3)' in result.stdout


def test_existing_output_refused_then_overwritten(run_cli, halves, tmp_path):
    out = tmp_path / 'p.png'
    out.write_bytes(b'precious')
    result = run_cli('preview', halves, '-o', out)
    assert result.exit_code == 1
    assert 'exists' in one_error_line(result)
    assert out.read_bytes() == b'precious'
    # --overwrite replaces only what tifwriter made: not this file ...
    assert 'was not made by tifwriter' in one_error_line(run_cli('preview', halves, '-o', out, '--overwrite'))
    assert out.read_bytes() == b'precious'
    # ... but a preview it wrote, yes.
    out.unlink()
    assert run_cli('preview', halves, '-o', out).exit_code == 0
    assert run_cli('preview', halves, '-o', out, '--overwrite').exit_code == 0
    assert decode(out).shape[0] == 200


def test_output_cannot_be_the_input(run_cli, halves):
    result = run_cli('preview', halves, '-o', halves, '--overwrite')
    assert result.exit_code == 2
    assert 'is also an input' in one_error_line(result)


@pytest.mark.parametrize('case', ['missing', 'text', 'bad-slide', 'missing-slide'])
def test_errors_are_one_line_and_leave_no_output(run_cli, halves, tmp_path, case):
    out = tmp_path / 'out.png'
    text = tmp_path / 'notes.txt'
    text.write_text('hello')
    args = {
        'missing': (tmp_path / 'absent.h5', '-o', out),
        'text': (text, '-o', out),
        'bad-slide': (halves, '-o', out, '--overlay', text),
        'missing-slide': (halves, '-o', out, '--overlay', tmp_path / 'gone.svs'),
    }[case]
    result = run_cli('preview', *args)
    assert result.exit_code == 1
    line = one_error_line(result)
    expected = {
        'missing': 'absent.h5 does not exist',
        'text': 'neither a tifwriter staging file nor a TIFF',
        'bad-slide': 'notes.txt',
        'missing-slide': 'gone.svs does not exist',
    }[case]
    assert expected in line
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.out.png')]


def test_size_and_alpha_ranges(run_cli, halves, tmp_path):
    assert run_cli('preview', halves, '-o', tmp_path / 'a.png', '--size', '4').exit_code == 2
    assert run_cli('preview', halves, '-o', tmp_path / 'a.png', '--alpha', '2').exit_code == 2
    assert not (tmp_path / 'a.png').exists()


def test_preview_listed_in_help(run_cli):
    result = run_cli('preview', '--help')
    assert result.exit_code == 0
    assert '--overlay' in result.output and '--size' in result.output
