"""finalize argmax / threshold (label maps from N channels, staged once) and
the census of label values the class table does not name."""

from __future__ import annotations

from pathlib import Path

import numpy
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import tifwriter_cli as tw
from tifwriter_cli.classes import classes_from_provenance
from tifwriter_cli.errors import InvalidOptionError
from tifwriter_cli.sources import ArraySource
from tifwriter_cli.tiff.metadata import parse_description

from .helpers.cli_checks import assert_clean_failure
from .helpers.tiff_reference import (
    check_layout,
    model_pyramid,
    openslide_expected_rgba,
    read_levels_openslide,
    read_levels_tifffile,
)


def model_argmax(canvas: numpy.ndarray) -> numpy.ndarray:
    """Largest channel, ties to the lowest, NaN smallest (a plain loop model)."""
    best = numpy.zeros(canvas.shape[:2], numpy.uint8)
    top = numpy.full(canvas.shape[:2], -numpy.inf)
    for channel in range(canvas.shape[2]):
        values = canvas[:, :, channel].astype(numpy.float64)
        values = numpy.where(numpy.isnan(values), -numpy.inf, values)
        better = values > top
        best[better] = channel
        top = numpy.where(better, values, top)
    return best


def stage_channels(path: Path, spec: tw.CanvasSpec, rng: numpy.random.Generator) -> numpy.ndarray:
    """Overlapping patches (overwrite rule) over part of the canvas; returns the model canvas."""
    tw.create_staging(path, spec)
    canvas = numpy.full(spec.shape, spec.fill, spec.numpy_dtype)
    with tw.open_staging(path) as writer:
        for _ in range(12):
            h, w = (int(v) for v in rng.integers(50, 600, 2))
            x, y = int(rng.integers(-100, spec.width)), int(rng.integers(-100, spec.height))
            if spec.numpy_dtype.kind == 'f':
                patch = rng.random((h, w, spec.channels), dtype=numpy.float32)
            else:
                patch = rng.integers(0, 256, (h, w, spec.channels)).astype(spec.numpy_dtype)
            writer.write(x, y, patch)
            x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, spec.width), min(y + h, spec.height)
            if x1 > x0 and y1 > y0:
                canvas[y0:y1, x0:x1] = patch[y0 - y : y1 - y, x0 - x : x1 - x]
    return canvas


def assert_pyramid(out: Path, labels: numpy.ndarray, tile: int) -> None:
    reference = model_pyramid(labels[:, :, None], 'mode', tile)
    got = read_levels_tifffile(out)
    assert len(got) == len(reference)
    for number, (level, want) in enumerate(zip(got, reference, strict=True)):
        numpy.testing.assert_array_equal(level, want, err_msg=f'tifffile level {number}')
    for number, (level, want) in enumerate(zip(read_levels_openslide(out), reference, strict=True)):
        numpy.testing.assert_array_equal(level, openslide_expected_rgba(want), err_msg=f'OpenSlide level {number}')


def test_argmax_of_a_staged_probability_canvas(tmp_path: Path):
    spec = tw.CanvasSpec(width=1500, height=1100, channels=4, dtype='float32', kind='probability',
                         merge='overwrite', tile_size=256, spacing_x=0.25,
                         classes='background,tumour,stroma,necrosis')
    canvas = stage_channels(tmp_path / 'p.h5', spec, numpy.random.default_rng(3))
    out = tmp_path / 'labels.tif'
    report = tw.finalize(tmp_path / 'p.h5', out, argmax=True)
    assert report.resampling == 'mode' and report.patches == 12
    check_layout(out, width=1500, height=1100, tile=256, channels=1, dtype='uint8',
                 compression_tag=5, photometric=1, spacing=0.25)
    assert_pyramid(out, model_argmax(canvas), 256)
    with tifffile.TiffFile(out) as tif:
        fields = parse_description(tif.pages[0].description)
    assert fields['kind'] == 'labels' and fields['channels'] == '1'
    assert classes_from_provenance(fields).name_of(3) == 'necrosis'


def test_threshold_of_a_uint8_probability_canvas_through_the_cli(tmp_path: Path, run_cli):
    spec = tw.CanvasSpec(width=1200, height=900, channels=3, kind='probability', merge='overwrite',
                         tile_size=256, fill=200, classes='0=background,1=tumour,2=stroma')
    canvas = stage_channels(tmp_path / 'p.h5', spec, numpy.random.default_rng(4))
    out = tmp_path / 'mask.tif'
    result = run_cli('finalize', tmp_path / 'p.h5', out, '--threshold', '0.5', '--channel', '2')
    assert result.exit_code == 0, result.output
    mask = (canvas[:, :, 2] / 255.0 >= 0.5).astype(numpy.uint8)
    assert mask.min() == 0 and mask.max() == 1
    assert_pyramid(out, mask, 256)
    with tifffile.TiffFile(out) as tif:
        table = classes_from_provenance(parse_description(tif.pages[0].description))
    assert [(c.value, c.name) for c in table] == [(0, 'background'), (1, 'stroma')]


@settings(max_examples=40, deadline=None)
@given(
    arrays(numpy.float32, st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(2, 5)),
           elements=st.sampled_from([0.0, 0.25, 0.5, 1.0, numpy.nan, -1.0])),
    st.floats(-1, 1.5),
)
def test_argmax_and_threshold_equal_the_model(tmp_path_factory, canvas, threshold):
    work = tmp_path_factory.mktemp('reduce')
    spec = tw.CanvasSpec(width=canvas.shape[1], height=canvas.shape[0], channels=canvas.shape[2],
                         dtype='float32', kind='probability', tile_size=16)
    source = ArraySource(spec, canvas)
    tw.finalize(source, work / 'a.tif', argmax=True, workers=1)
    numpy.testing.assert_array_equal(tifffile.imread(work / 'a.tif', key=0), model_argmax(canvas))
    tw.finalize(source, work / 't.tif', threshold=threshold, channel=1, workers=1)
    expected = numpy.where(numpy.isnan(canvas[:, :, 1]), 0, canvas[:, :, 1] >= threshold)
    numpy.testing.assert_array_equal(tifffile.imread(work / 't.tif', key=0), expected.astype(numpy.uint8))


@pytest.mark.parametrize('options, words', [
    ({'argmax': True, 'threshold': 0.5}, 'not both'),
    ({'channel': 1}, 'give threshold= too'),
    ({'threshold': 0.5}, 'say which to threshold'),
    ({'threshold': 0.5, 'channel': 3}, 'channel must be 0 to 2'),
    ({'threshold': 2.0, 'channel': 0}, 'probability 0..1'),
    ({'argmax': True, 'classes': '0=a,300=b'}, 'reduced label map'),
])
def test_bad_reductions_are_refused_before_any_output(tmp_path: Path, options, words):
    spec = tw.CanvasSpec(width=32, height=32, channels=3, kind='probability')
    out = tmp_path / 'out.tif'
    with pytest.raises(InvalidOptionError, match=words):
        tw.finalize(ArraySource(spec, numpy.zeros((32, 32, 3), numpy.uint8)), out, **options)
    assert list(tmp_path.iterdir()) == []


def test_argmax_of_one_channel_is_a_cli_error(tmp_path: Path, run_cli, make_staging):
    staging = make_staging(kind='probability')
    result = run_cli('finalize', staging, tmp_path / 'x.tif', '--argmax')
    line = assert_clean_failure(result, 2)
    assert 'argmax needs a canvas of 2 or more channels' in line and '--threshold' in line
    assert not (tmp_path / 'x.tif').exists()


# -- the census ---------------------------------------------------------------------------
def test_unknown_label_values_are_reported_with_counts(tmp_path: Path, run_cli):
    path = tmp_path / 'm.h5'
    tw.create_staging(path, tw.CanvasSpec(width=800, height=600, tile_size=256, classes='1=tumour,2=stroma'))
    labels = numpy.full((300, 400), 1, numpy.uint8)
    labels[:10, :10] = 7
    labels[100:120, 0:5] = 9
    with tw.open_staging(path) as writer:
        writer.write(0, 0, labels)
    report = tw.finalize(path, tmp_path / 'a.tif')
    # 0 is the fill of the 800 x 600 - 300 x 400 unwritten pixels: not named either.
    assert report.unknown_labels == {0: 800 * 600 - 300 * 400, 7: 100, 9: 100}
    result = run_cli('finalize', path, tmp_path / 'b.tif')
    assert result.exit_code == 0
    assert '3 label value(s) the class table does not name: 0 (360000 px), 7 (100 px), 9 (100 px)' in result.stderr
    assert '--classes' in result.stderr
    # Named, nothing to report.
    result = run_cli('finalize', path, tmp_path / 'c.tif', '--classes', '0=bg,1=tumour,2=stroma,7=x,9=y')
    assert result.exit_code == 0 and 'does not name' not in result.stderr
    assert tifffile.imread(tmp_path / 'c.tif', key=0)[5, 5] == 7


def test_no_table_no_census(tmp_path: Path):
    spec = tw.CanvasSpec(width=40, height=40)
    report = tw.finalize(ArraySource(spec, numpy.full((40, 40), 5, numpy.uint8)), tmp_path / 'a.tif')
    assert report.unknown_labels == {} and report.warnings == []
