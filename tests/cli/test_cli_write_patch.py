"""``tifwriter write-patch``: pixels land where the numpy model says, failures are one line."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.staging.layout import fragments_dir

from tests.helpers.cli_checks import assert_clean_failure, assert_usage_error
from tests.helpers.reference import ReferenceCanvas


def canvas_of(staging: Path) -> numpy.ndarray:
    with tw.read_staging(staging) as snapshot:
        return snapshot.read_canvas()


def published(staging: Path) -> list[str]:
    return sorted(n for n in os.listdir(fragments_dir(staging)) if not n.startswith('.'))


def test_patches_land_at_x_y_and_are_clipped(tmp_path, make_staging, run_cli):
    staging = make_staging(width=100, height=80, merge='max')
    a = numpy.random.default_rng(1).integers(0, 200, (30, 40), dtype=numpy.uint8)
    b = numpy.random.default_rng(2).integers(0, 200, (30, 40), dtype=numpy.uint8)
    numpy.save(tmp_path / 'a.npy', a)
    numpy.save(tmp_path / 'b.npy', b)
    first = run_cli('write-patch', staging, tmp_path / 'a.npy', '--x', 10, '--y', 20)
    assert first.exit_code == 0, first.output
    assert first.stdout == f'staged {tmp_path / "a.npy"}: 40 x 30 at x=10, y=20\n'
    second = run_cli('write-patch', staging, tmp_path / 'b.npy', '--x', '-5', '--y', '-7')
    assert second.exit_code == 0, second.output
    assert second.stdout.strip().endswith('40 x 30 at x=-5, y=-7, clipped to x 0..35, y 0..23')
    reference = ReferenceCanvas(100, 80, merge='max')
    reference.write(10, 20, a)
    reference.write(-5, -7, b)
    numpy.testing.assert_array_equal(canvas_of(staging), reference.result())
    assert len(published(staging)) == 2  # each call published (durable) before exiting


def test_negative_values_in_equals_form(tmp_path, make_staging, run_cli):
    staging = make_staging(width=10, height=10)
    numpy.save(tmp_path / 'p.npy', numpy.full((4, 4), 3, numpy.uint8))
    assert run_cli('write-patch', staging, tmp_path / 'p.npy', '--x=-2', '--y=-1').exit_code == 0
    expected = numpy.zeros((10, 10, 1), numpy.uint8)
    expected[:3, :2] = 3
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_wholly_outside_exits_0_with_a_warning_and_stages_nothing(tmp_path, make_staging, run_cli):
    staging = make_staging(width=10, height=10)
    numpy.save(tmp_path / 'p.npy', numpy.ones((4, 4), numpy.uint8))
    result = run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 10, '--y', 0)
    assert result.exit_code == 0
    assert 'wholly outside the canvas: nothing staged' in result.stdout
    assert 'tifwriter: warning:' in result.stderr
    assert published(staging) == []
    assert os.listdir(fragments_dir(staging)) == []  # no temp file left either


def test_npz_multichannel_and_float_canvas(tmp_path, make_staging, run_cli):
    staging = make_staging(width=20, height=20, channels=2, dtype='float32', fill=-1)
    patch = numpy.random.default_rng(3).random((5, 6, 2))  # float64 -> float32 loses digits
    numpy.savez_compressed(tmp_path / 'p.npz', patch)
    refused = run_cli('write-patch', staging, tmp_path / 'p.npz', '--x', 1, '--y', 2)
    assert 'without loss' in assert_clean_failure(refused, 1)
    exact = patch.astype(numpy.float32)
    numpy.savez_compressed(tmp_path / 'p.npz', exact)
    assert run_cli('write-patch', staging, tmp_path / 'p.npz', '--x', 1, '--y', 2).exit_code == 0
    reference = ReferenceCanvas(20, 20, channels=2, dtype='float32', fill=-1)
    reference.write(1, 2, exact)
    numpy.testing.assert_array_equal(canvas_of(staging), reference.result())


def test_convert_scale_and_clip(tmp_path, make_staging, run_cli):
    staging = make_staging(width=8, height=8, kind='probability', merge='overwrite')
    probabilities = numpy.array([[0.0, 0.5, 1.0, 0.25]])
    numpy.save(tmp_path / 'p.npy', probabilities)
    line = assert_clean_failure(run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 0, '--y', 0), 1)
    assert str(tmp_path / 'p.npy') in line and '--convert scale' in line
    assert run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 0, '--y', 0, '--convert', 'scale').exit_code == 0
    numpy.save(tmp_path / 'big.npy', numpy.array([[-3, 300]]))
    assert run_cli('write-patch', staging, tmp_path / 'big.npy', '--x', 0, '--y', 1, '--convert', 'clip').exit_code == 0
    canvas = canvas_of(staging)[:, :, 0]
    assert list(canvas[0, :4]) == [0, 128, 255, 64]  # rint(0.5 * 255) = 128 (ties to even)
    assert list(canvas[1, :2]) == [0, 255]


def test_slide_coordinates_use_the_canvas_downsample(tmp_path, run_cli):
    staging = tmp_path / 'heat.h5'
    tw.create_staging(staging, CanvasSpec(width=32, height=32, slide_downsample=16))
    numpy.save(tmp_path / 'p.npy', numpy.full((4, 4), 5, numpy.uint8))
    result = run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 160, '--y', 77, '--coords', 'slide')
    assert result.exit_code == 0, result.output
    assert 'at x=10, y=4 (canvas px)' in result.stdout
    expected = numpy.zeros((32, 32, 1), numpy.uint8)
    expected[4:8, 10:14] = 5
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


@pytest.mark.parametrize(
    'make_patch, text',
    [
        (None, 'cannot read: No such file'),
        (lambda p: numpy.save(p, numpy.zeros((4, 4, 3), numpy.uint8)), '3 channel(s) but the canvas has 1'),
        (lambda p: numpy.save(p, numpy.zeros((4, 4), object), allow_pickle=True), 'pickled object array'),
        (lambda p: numpy.save(p, numpy.full((4, 4), 256)), 'do not fit uint8'),
        (lambda p: numpy.save(p, numpy.zeros(4, numpy.uint8)), '2-D (H, W) or 3-D'),
        (lambda p: p.write_bytes(b'\x93NUMPY\x01\x00v\x00' + b' ' * 10), 'damaged .npy header'),
        (lambda p: p.write_bytes(b'GIF89a'), 'not a .npy or .npz'),
    ],
)
def test_bad_patch_files(tmp_path, make_staging, run_cli, make_patch, text):
    staging = make_staging(width=10, height=10)
    patch = tmp_path / 'patch.npy'
    if make_patch is not None:
        make_patch(patch)
    line = assert_clean_failure(run_cli('write-patch', staging, patch, '--x', 0, '--y', 0), 1)
    assert str(patch) in line and text in line
    assert published(staging) == [] and os.listdir(fragments_dir(staging)) == []


def test_bad_staging_files(tmp_path, run_cli):
    numpy.save(tmp_path / 'p.npy', numpy.ones((2, 2), numpy.uint8))
    patch = tmp_path / 'p.npy'
    missing = assert_clean_failure(run_cli('write-patch', tmp_path / 'none.h5', patch, '--x', 0, '--y', 0), 1)
    assert 'does not exist' in missing
    (tmp_path / 'text.h5').write_text('hello')
    not_hdf5 = assert_clean_failure(run_cli('write-patch', tmp_path / 'text.h5', patch, '--x', 0, '--y', 0), 1)
    assert 'not a tifwriter staging file' in not_hdf5


@pytest.mark.parametrize(
    'args, text',
    [
        (['--y', '0'], "Missing option '--x'"),
        (['--x', '1.5', '--y', '0'], "'1.5' is not a valid integer"),
        (['--x', '0', '--y', '0', '--convert', 'round'], "'round' is not one of"),
        (['--x', '0', '--y', '0', '--coords', 'level0'], "'level0' is not one of"),
    ],
)
def test_usage_errors(tmp_path, make_staging, run_cli, args, text):
    staging = make_staging(width=10, height=10)
    numpy.save(tmp_path / 'p.npy', numpy.ones((2, 2), numpy.uint8))
    assert_usage_error(run_cli('write-patch', staging, tmp_path / 'p.npy', *args), text)


PATCH = st.tuples(
    st.integers(-12, 40),  # x: left of, inside, right of a 32-wide canvas
    st.integers(-12, 30),  # y
    st.integers(1, 14),  # width
    st.integers(1, 14),  # height
    st.integers(0, 255),  # seed of the values
)


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(merge=st.sampled_from(['overwrite', 'mean', 'max', 'min']), patches=st.lists(PATCH, min_size=1, max_size=5))
def test_random_patches_through_the_cli_equal_the_reference(run_cli, merge, patches):
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        staging = work / 's.h5'
        assert run_cli('init', staging, '--width', 32, '--height', 24, '--fill', 3, '--merge', merge, '--spacing', 1).exit_code == 0
        reference = ReferenceCanvas(32, 24, fill=3, merge=merge)
        for number, (x, y, width, height, seed) in enumerate(patches):
            array = numpy.random.default_rng(seed).integers(0, 256, (height, width), dtype=numpy.uint8)
            numpy.save(work / f'{number}.npy', array)
            result = run_cli('write-patch', staging, work / f'{number}.npy', '--x', x, '--y', y)
            assert result.exit_code == 0, result.output
            reference.write(x, y, array)
        numpy.testing.assert_array_equal(canvas_of(staging), reference.result())


def test_retried_write_patch_is_counted_once(tmp_path, run_cli, make_staging):
    """A requeued job re-running the same write-patch must not skew 'mean'."""
    import numpy as _np

    import tifwriter_cli as _tw

    staging = make_staging(width=4, height=1, merge='mean')
    _np.save(tmp_path / 'a.npy', _np.full((1, 4), 10, _np.uint8))
    _np.save(tmp_path / 'b.npy', _np.full((1, 2), 20, _np.uint8))
    for name in ('a', 'b'):
        assert run_cli('write-patch', staging, tmp_path / f'{name}.npy', '--x', '0', '--y', '0').exit_code == 0
    retried = run_cli('write-patch', staging, tmp_path / 'a.npy', '--x', '0', '--y', '0')
    assert retried.exit_code == 0
    assert retried.stdout.strip() == f'{tmp_path / "a.npy"}: already staged at x=0, y=0 (unchanged since): nothing to do'
    with _tw.read_staging(staging) as snapshot:
        assert snapshot.read_canvas()[0, :, 0].tolist() == [15, 15, 10, 10]
    # The same file at another place is the same contribution, moved (a
    # corrected --x): it replaces its earlier staging, and says so.
    moved = run_cli('write-patch', staging, tmp_path / 'b.npy', '--x', '2', '--y', '0')
    assert moved.exit_code == 0
    assert moved.stdout.rstrip().endswith('replacing its earlier staging (x=0, y=0, convert exact)')
    with _tw.read_staging(staging) as snapshot:
        assert snapshot.read_canvas()[0, :, 0].tolist() == [10, 10, 15, 15]
    # Distinct --key values place one file at several positions.
    assert run_cli('write-patch', staging, tmp_path / 'b.npy', '--x', '0', '--y', '0', '--key', 'b-left').exit_code == 0
    with _tw.read_staging(staging) as snapshot:
        assert snapshot.read_canvas()[0, :, 0].tolist() == [15, 15, 15, 15]
