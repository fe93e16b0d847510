"""``init --like SLIDE``: a lower-resolution heatmap that overlays the slide."""

from __future__ import annotations

import numpy
import pytest

import tifwriter_cli as tw

from tests.helpers.cli_checks import assert_clean_failure, assert_usage_error
from tests.helpers.slides import SLIDE_H, SLIDE_MPP, SLIDE_W


def test_like_downsample_16_heatmap_overlays_the_slide(tmp_path, run_cli, slide):
    staging = tmp_path / 'heat.h5'
    result = run_cli('init', staging, '--like', slide, '--downsample', '16',
                     '--kind', 'probability', '--merge', 'mean')
    assert result.exit_code == 0, result.output
    header = tw.staging.read_canvas(staging)
    spec = header.spec
    assert (spec.width, spec.height) == (SLIDE_W // 16, SLIDE_H // 16)  # floor (--edge drop): 125 x 93
    assert spec.spacing_x == pytest.approx(SLIDE_MPP * 16)
    assert spec.slide_downsample == 16
    assert '1 px = 16 slide px' in result.output
    assert 'ASAP' not in result.stderr  # its overlay panel places it: no warning

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
        # Short of the slide by the dropped partial block only (< 1 canvas px).
        for axis, name in ((0, 'openslide.mpp-x'), (1, 'openslide.mpp-y')):
            heat_um = heat.dimensions[axis] * float(heat.properties[name])
            base_um = base.dimensions[axis] * float(base.properties[name])
            assert 0 <= base_um - heat_um < float(heat.properties[name])
        # ASAP's overlay panel: slide // heatmap is 16 on both axes.
        assert [b // h for b, h in zip(base.dimensions, heat.dimensions, strict=True)] == [16, 16]
        # Canvas pixel 63 covers slide x 1008..1023: the slide's edge is there.
        region = numpy.asarray(base.read_region((1008, 160), 0, (16, 16)))
        assert (region[..., 1] == 180).all()
        heat_px = numpy.asarray(heat.read_region((63, 10), 0, (1, 1)))
        assert heat_px[0, 0, 0] == 200


def test_like_edge_cover_covers_the_last_partial_block_and_warns(tmp_path, run_cli, slide):
    staging = tmp_path / 'heat.h5'
    result = run_cli('init', staging, '--like', slide, '--downsample', '16', '--edge', 'cover')
    assert result.exit_code == 0, result.output
    spec = tw.staging.read_canvas(staging).spec
    assert (spec.width, spec.height) == (-(-SLIDE_W // 16), -(-SLIDE_H // 16))  # ceil: 125 x 94
    assert spec.slide_downsample == 16
    # 1500 // 94 = 15 != 2000 // 125 = 16: ASAP's overlay panel shows nothing.
    warnings = [line for line in result.stderr.splitlines() if 'ASAP' in line]
    assert len(warnings) == 1, result.stderr
    assert "overlay panel will not show it" in warnings[0] and '--edge drop' in warnings[0]
    # The last canvas row covers slide rows 1488..1499 (and 4 px past them).
    assert spec.height * 16 - SLIDE_H == 4

    # --edge drop, spelled out, is the default.
    result = run_cli('init', tmp_path / 'drop.h5', '--like', slide, '--spacing', '4', '--edge', 'drop')
    assert result.exit_code == 0, result.output
    spec = tw.staging.read_canvas(tmp_path / 'drop.h5').spec
    assert (spec.width, spec.height, spec.slide_downsample) == (125, 93, 16)
    assert 'ASAP' not in result.stderr


@pytest.mark.parametrize(
    'args, message',
    [
        (['--downsample', '4'], '--downsample needs --like'),
        (['--level', '1'], '--level needs --like'),
        (['--edge', 'cover'], '--edge needs --like'),
        (['--like', '{slide}', '--level', '1', '--edge', 'drop'], '--edge cannot be combined with --level'),
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


def test_like_edge_rejects_unknown_values(tmp_path, run_cli, slide):
    result = run_cli('init', tmp_path / 's.h5', '--like', slide, '--edge', 'round')
    assert_usage_error(result, "'round' is not one of 'drop', 'cover'")
    assert not (tmp_path / 's.h5').exists()
