"""``tifwriter init``: the canvas it records, what it refuses, and how."""

from __future__ import annotations

import math

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.staging import read_canvas

from tests.helpers.cli_checks import assert_clean_failure, assert_usage_error


def test_init_records_every_option(tmp_path, run_cli):
    path = tmp_path / 'prob.h5'
    result = run_cli(
        'init', path, '--width', 1000, '--height', 700, '--channels', 3, '--dtype', 'uint16',
        '--spacing', 0.25, '--spacing-y', 0.5, '--tile-size', 256, '--fill', 7,
        '--merge', 'mean', '--kind', 'probability',
    )
    assert result.exit_code == 0, result.output
    expected = CanvasSpec(
        width=1000, height=700, channels=3, dtype='uint16', spacing_x=0.25, spacing_y=0.5,
        tile_size=256, fill=7, merge='mean', kind='probability',
    )
    assert read_canvas(path).spec == expected
    assert result.stdout.splitlines() == [
        f'created {path}: canvas 1000 x 700 px, 3 channels uint16, 0.25 x 0.5 um/px, '
        'tile 256, fill 7, merge mean, kind probability'
    ]
    assert result.stderr == ''
    with tw.read_staging(path) as snapshot:
        assert len(snapshot.patches) == 0


def test_defaults_and_the_missing_spacing_warning(tmp_path, run_cli):
    path = tmp_path / 'mask.h5'
    result = run_cli('init', path, '--width', 50, '--height', 40)
    assert result.exit_code == 0
    assert read_canvas(path).spec == CanvasSpec(width=50, height=40)
    assert 'tifwriter: warning: no --spacing given' in result.stderr
    assert 'QuPath' in result.stderr
    with_spacing = run_cli('init', tmp_path / 'b.h5', '--width', 50, '--height', 40, '--spacing', 0.5)
    assert with_spacing.exit_code == 0 and with_spacing.stderr == ''
    assert read_canvas(tmp_path / 'b.h5').spec.spacing_y == 0.5


def test_mean_on_labels_is_warned_about(tmp_path, run_cli):
    result = run_cli('init', tmp_path / 'a.h5', '--width', 5, '--height', 5, '--spacing', 1, '--merge', 'mean')
    assert result.exit_code == 0
    assert 'averages class numbers' in result.stderr


def test_float_canvas_takes_a_nan_fill(tmp_path, run_cli):
    path = tmp_path / 'f.h5'
    result = run_cli('init', path, '--width', 8, '--height', 8, '--dtype', 'float32', '--fill', 'nan', '--spacing', 1)
    assert result.exit_code == 0, result.output
    assert math.isnan(read_canvas(path).spec.fill)
    with tw.read_staging(path) as snapshot:
        assert numpy.isnan(snapshot.read_canvas()).all()


def test_options_from_environment_variables(tmp_path, run_cli):
    path = tmp_path / 'env.h5'
    result = run_cli('init', path, env={'TIFWRITER_INIT_WIDTH': '64', 'TIFWRITER_INIT_HEIGHT': '32'})
    assert result.exit_code == 0, result.output
    assert (read_canvas(path).spec.width, read_canvas(path).spec.height) == (64, 32)


def test_existing_staging_is_kept_unless_overwrite(tmp_path, run_cli):
    path = tmp_path / 'mask.h5'
    assert run_cli('init', path, '--width', 20, '--height', 20).exit_code == 0
    with tw.open_staging(path) as writer:
        writer.write(0, 0, numpy.full((4, 4), 9, numpy.uint8))
    line = assert_clean_failure(run_cli('init', path, '--width', 30, '--height', 30), 1)
    assert 'exists' in line and '--overwrite' in line
    assert read_canvas(path).spec.width == 20
    with tw.read_staging(path) as snapshot:
        assert len(snapshot.patches) == 1
    result = run_cli('init', path, '--width', 30, '--height', 30, '--overwrite')
    assert result.exit_code == 0, result.output
    assert read_canvas(path).spec.width == 30
    with tw.read_staging(path) as snapshot:
        # The old patches belonged to the old canvas.
        assert len(snapshot.patches) == 0 and (snapshot.read_canvas() == 0).all()


@pytest.mark.parametrize(
    'args, text',
    [
        (['--width', '-5', '--height', '10'], 'width must be 1 to'),
        (['--width', '10', '--height', '0'], 'height must be 1 to'),
        (['--height', '10'], '--width required'),
        ([], '--width and --height required'),
        (['--width', '10', '--height', '10', '--channels', '0'], 'channels must be 1 to'),
        (['--width', '10', '--height', '10', '--tile-size', '100'], 'multiple of 16'),
        (['--width', '10', '--height', '10', '--tile-size', '8192'], 'multiple of 16 from 16 to 4096'),
        (['--width', '10', '--height', '10', '--fill', '300'], 'fill must be an integer from 0 to 255 for uint8, got 300'),
        (['--width', '10', '--height', '10', '--fill', '-1', '--dtype', 'uint16'], 'from 0 to 65535'),
        (['--width', '10', '--height', '10', '--fill', '0.5'], 'fill must be an integer'),
        (['--width', '10', '--height', '10', '--fill', 'inf', '--dtype', 'float32'], 'not exactly representable'),
        (['--width', '10', '--height', '10', '--spacing', '-0.25'], 'spacing must be a positive'),
        (['--width', '10', '--height', '10', '--spacing', '0'], 'spacing must be a positive'),
        (['--width', '10', '--height', '10', '--spacing-y', '0.5'], 'spacing-y needs spacing'),
    ],
)
def test_invalid_canvas_is_one_line_exit_2_and_no_file(tmp_path, run_cli, args, text):
    path = tmp_path / 'bad.h5'
    line = assert_clean_failure(run_cli('init', path, *args), 2)
    assert text in line
    assert not path.exists() and not (tmp_path / 'bad.h5.fragments').exists()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    'args, text',
    [
        (['--dtype', 'int8'], "'int8' is not one of"),
        (['--merge', 'sum'], "'sum' is not one of"),
        (['--kind', 'mask'], "'mask' is not one of"),
        (['--width', 'wide'], "'wide' is not a valid integer"),
        (['--spacing', 'fine'], "'fine' is not a valid float"),
    ],
)
def test_unparsable_values_are_click_usage_errors(tmp_path, run_cli, args, text):
    base = ['--width', '10', '--height', '10']
    assert_usage_error(run_cli('init', tmp_path / 'x.h5', *base, *args), text)
    assert list(tmp_path.iterdir()) == []


def test_unusable_paths(tmp_path, run_cli):
    line = assert_clean_failure(run_cli('init', tmp_path / 'no' / 'x.h5', '--width', 5, '--height', 5), 2)
    assert 'does not exist' in line
    (tmp_path / 'dir.h5').mkdir()
    assert_usage_error(run_cli('init', tmp_path / 'dir.h5', '--width', 5, '--height', 5), 'is a directory')
