"""``init --like SLIDE``: a lower-resolution heatmap that overlays the slide."""

from __future__ import annotations

import numpy
import pytest

import tifwriter_cli as tw

from .cli_checks import assert_clean_failure
from .test_slide import SLIDE_H, SLIDE_MPP, SLIDE_W, write_pyramid


@pytest.fixture
def slide(tmp_path):
    image = numpy.zeros((SLIDE_H, SLIDE_W, 3), numpy.uint8)
    image[:, 1008:, 1] = 180  # a vertical edge on a 16-px block boundary
    return write_pyramid(tmp_path / 'slide.tif', image)


def test_like_downsample_16_heatmap_overlays_the_slide(tmp_path, run_cli, slide):
    staging = tmp_path / 'heat.h5'
    result = run_cli('init', staging, '--like', slide, '--downsample', '16',
                     '--kind', 'probability', '--merge', 'mean')
    assert result.exit_code == 0, result.output
    header = tw.staging.read_canvas(staging)
    spec = header.spec
    assert (spec.width, spec.height) == (-(-SLIDE_W // 16), -(-SLIDE_H // 16))  # ceil: 125 x 94
    assert spec.spacing_x == pytest.approx(SLIDE_MPP * 16)
    assert spec.slide_downsample == 16
    assert '1 px = 16 slide px' in result.output

    # A heatmap patch written in slide level-0 coordinates lands on the
    # canvas pixels that cover that slide area.
    patch = numpy.full((10, 10), 200, numpy.uint8)
    numpy.save(tmp_path / 'p.npy', patch)
    result = run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', '1008', '--y', '160',
                     '--coords', 'slide')
    assert result.exit_code == 0, result.output
    with tw.read_staging(staging) as snapshot:
        canvas = snapshot.read_canvas()[:, :, 0]
    ys, xs = numpy.nonzero(canvas)
    assert (xs.min(), ys.min()) == (1008 // 16, 160 // 16)

    # Finalized, the heatmap's physical size equals the slide's (OpenSlide mpp).
    out = tmp_path / 'heat.tif'
    assert run_cli('finalize', staging, out).exit_code == 0
    import openslide

    with openslide.OpenSlide(str(out)) as heat, openslide.OpenSlide(str(slide)) as base:
        heat_w_um = heat.dimensions[0] * float(heat.properties['openslide.mpp-x'])
        base_w_um = base.dimensions[0] * float(base.properties['openslide.mpp-x'])
        assert 0 <= heat_w_um - base_w_um < float(heat.properties['openslide.mpp-x'])
        # Canvas pixel 63 covers slide x 1008..1023: the slide's edge is there.
        region = numpy.asarray(base.read_region((1008, 160), 0, (16, 16)))
        assert (region[..., 1] == 180).all()
        heat_px = numpy.asarray(heat.read_region((63, 10), 0, (1, 1)))
        assert heat_px[0, 0, 0] == 200


@pytest.mark.parametrize(
    'args, message',
    [
        (['--downsample', '4'], '--downsample needs --like'),
        (['--level', '1'], '--level needs --like'),
        (['--like', '{slide}', '--width', '10'], '--width'),
        (['--like', '{slide}', '--downsample', '4', '--level', '1'], 'exclusive'),
        (['--like', '{missing}'], 'missing.tif'),
    ],
)
def test_like_option_errors_are_one_line(tmp_path, run_cli, slide, args, message):
    args = [a.format(slide=slide, missing=tmp_path / 'missing.tif') for a in args]
    if '--like' not in args:
        args += ['--width', '10', '--height', '10']
    result = run_cli('init', tmp_path / 's.h5', *args)
    line = assert_clean_failure(result, 2 if 'missing' not in message else 1)
    assert message in line
    assert not (tmp_path / 's.h5').exists()
