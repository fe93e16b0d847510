"""``tifwriter convert DIR OUT.tif``: init + ingest-npy-dir + finalize in one go."""

from __future__ import annotations

import numpy
import pytest
import tifffile

import tifwriter_cli as tw
from tifwriter_cli.directory_to_tiff import directory_to_tiff

from ..helpers.cli_checks import assert_clean_failure


@pytest.fixture
def small_slide(tmp_path):
    from ..helpers.slides import write_pyramid

    return write_pyramid(tmp_path / 'slide.tif', numpy.zeros((512, 768, 3), numpy.uint8))


def patch_dir(tmp_path, *, step=64, side=64):
    """Patches named by slide coordinates (tile_X_Y.npy) and the canvas they make at downsample 4."""
    directory = tmp_path / 'preds'
    directory.mkdir()
    expected = numpy.zeros((512 // 4, 768 // 4), numpy.uint8)
    rng = numpy.random.default_rng(4)
    for y in range(0, 512, step * 4):
        for x in range(0, 768, step * 4):
            patch = rng.integers(1, 255, (side, side), dtype=numpy.uint8)
            numpy.save(directory / f'tile_{x}_{y}.npy', patch)
            expected[y // 4 : y // 4 + side, x // 4 : x // 4 + side] = patch
    return directory, expected


def leftovers(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.tifwriter'))


def test_convert_writes_the_tiff_of_a_directory_in_one_go(tmp_path, run_cli, small_slide) -> None:
    directory, expected = patch_dir(tmp_path)
    out = tmp_path / 'heat.tif'
    result = run_cli('convert', directory, out, '--like', small_slide, '--downsample', '4', '--coords', 'slide',
                     '--pattern', 'tile_{x}_{y}.npy')
    assert result.exit_code == 0, result.output
    assert '6 staged' in result.output and f'wrote {out}' in result.output
    with tifffile.TiffFile(out) as tif:
        numpy.testing.assert_array_equal(tif.pages[0].asarray().reshape(expected.shape), expected)
        x_resolution = tif.pages[0].tags['XResolution'].value
    assert 1e4 / (x_resolution[0] / x_resolution[1]) == pytest.approx(0.25 * 4)  # the slide's mpp x 4
    assert leftovers(tmp_path) == []  # the temp staging unit is gone


def test_convert_with_a_bad_file_writes_nothing_and_names_it(tmp_path, run_cli, small_slide) -> None:
    directory, _ = patch_dir(tmp_path)
    (directory / 'tile_0_0.npy').write_bytes(b'not an array')
    out = tmp_path / 'heat.tif'
    line = assert_clean_failure(run_cli('convert', directory, out, '--like', small_slide, '--downsample', '4',
                                        '--coords', 'slide'), 1)
    assert 'tile_0_0.npy' in line and 'no TIFF was written' in line
    assert not out.exists() and leftovers(tmp_path) == []
    # Corrected, the same command succeeds.
    numpy.save(directory / 'tile_0_0.npy', numpy.ones((64, 64), numpy.uint8))
    assert run_cli('convert', directory, out, '--like', small_slide, '--downsample', '4', '--coords', 'slide').exit_code == 0
    assert out.exists()


def test_keep_staging_is_reused_by_a_rerun(tmp_path, run_cli, small_slide) -> None:
    directory, expected = patch_dir(tmp_path)
    out, staging = tmp_path / 'heat.tif', tmp_path / 'heat.h5'
    args = ('convert', directory, out, '--like', small_slide, '--downsample', '4', '--coords', 'slide', '--keep-staging', staging)
    assert run_cli(*args).exit_code == 0
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas()[..., 0], expected)
    result = run_cli(*args, '--overwrite')
    assert result.exit_code == 0, result.output
    assert '0 staged' in result.output and '6 already staged' in result.output
    # Another canvas for the kept unit is refused, naming it.
    line = assert_clean_failure(run_cli(*args[:6], '8', *args[7:], '--overwrite'), 2)
    assert 'exists for another canvas' in line


def test_directory_to_tiff_api(tmp_path) -> None:
    directory = tmp_path / 'd'
    directory.mkdir()
    numpy.save(directory / 'p_10_20.npy', numpy.full((5, 5), 7, numpy.uint8))
    report = directory_to_tiff(directory, tmp_path / 'o.tif', tw.CanvasSpec(width=40, height=30))
    assert report.ingest.staged == 1 and report.staging is None
    image = tifffile.imread(tmp_path / 'o.tif')
    assert image[20:25, 10:15].tolist() == [[7] * 5] * 5 and image.sum() == 7 * 25


def _recipe_env(tmp_path):
    import os
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith(('TIFWRITER_', 'SLURM_', 'MAKE', 'MFLAGS'))}
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    env['SLIDE_EXT'] = 'tif'
    return env


def _slides_and_predictions(tmp_path):
    """Two slides (.tif) and their prediction directories; the expected heatmaps at downsample 16."""
    from ..helpers.slides import write_pyramid

    (tmp_path / 'slides').mkdir()
    expected = {}
    for number, (name, (width, height)) in enumerate({'A': (1024, 768), 'B': (768, 1024)}.items()):
        write_pyramid(tmp_path / 'slides' / f'{name}.tif', numpy.zeros((height, width, 3), numpy.uint8))
        directory = tmp_path / 'predictions' / name
        directory.mkdir(parents=True)
        canvas = numpy.zeros((height // 16, width // 16), numpy.float32)
        for y in range(0, height, 256):
            for x in range(0, width, 256):
                patch = numpy.full((16, 16), (number + 1) * 0.1 + (x + y) / 10000, numpy.float32)
                numpy.save(directory / f'tile_{x}_{y}.npy', patch)
                canvas[y // 16 : y // 16 + 16, x // 16 : x // 16 + 16] = patch
        expected[name] = canvas
    return expected


def test_guide_recipe_slurm_array_of_converts(tmp_path) -> None:
    import subprocess

    from ..helpers import doc_snippets

    script = doc_snippets.recipes()['convert-slurm'].write_to(tmp_path)
    expected = _slides_and_predictions(tmp_path)
    env = _recipe_env(tmp_path)
    for task in (0, 1):  # the array's tasks, as SLURM runs them
        result = subprocess.run(['bash', str(script)], cwd=tmp_path, env={**env, 'SLURM_ARRAY_TASK_ID': str(task)},
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    for name, canvas in expected.items():
        numpy.testing.assert_array_equal(tifffile.imread(tmp_path / 'out' / f'{name}.tif'), canvas)
        assert (tmp_path / 'staging' / f'{name}.h5').exists()
    # A requeued task (the same task again) succeeds and stages nothing twice.
    result = subprocess.run(['bash', str(script)], cwd=tmp_path, env={**env, 'SLURM_ARRAY_TASK_ID': '0'},
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and '0 staged, 12 already staged' in result.stdout, result.stdout + result.stderr


def test_guide_recipe_makefile_of_converts(tmp_path) -> None:
    import subprocess

    from ..helpers import doc_snippets

    doc_snippets.recipes()['convert-make'].write_to(tmp_path)
    expected = _slides_and_predictions(tmp_path)
    env = _recipe_env(tmp_path)
    make = ['make', '-j', '2', '-f', 'Makefile.convert', 'SLIDE_EXT=tif']
    result = subprocess.run(make, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name, canvas in expected.items():
        numpy.testing.assert_array_equal(tifffile.imread(tmp_path / 'out' / f'{name}.tif'), canvas)
    again = subprocess.run(make, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert 'Nothing to be done' in again.stdout, again.stdout
