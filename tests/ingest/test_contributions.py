"""Contribution identity: sequences users live through end with the intended data.

Each test runs a mistaken or retried sequence through the CLI, finalizes,
and compares the TIFF's level 0 with a plain numpy model of what the user
meant (tests/helpers/reference.py), under the merge rule where the mistake shows.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.ingest.contribution import file_key
from tifwriter_cli.slide import canvas_position, slide_to_canvas

from tests.helpers.reference import ReferenceCanvas


def finalized_level0(staging: Path, run_cli) -> numpy.ndarray:
    out = staging.with_suffix('.tif')
    result = run_cli('finalize', staging, out, '--overwrite', '--compression', 'none')
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(out) as tif:
        level0 = tif.series[0].levels[0].asarray()
    return level0.reshape(level0.shape[0], level0.shape[1], -1)


def model(writes, **canvas) -> numpy.ndarray:
    reference = ReferenceCanvas(**canvas)
    for x, y, array in writes:
        reference.write(x, y, array)
    return reference.result()


def save_tiles(directory: Path, tiles: dict[tuple[int, int], numpy.ndarray], name='heat_{x}_{y}.npy'):
    directory.mkdir(parents=True, exist_ok=True)
    for (x, y), array in tiles.items():
        numpy.save(directory / name.format(x=x, y=y), array)


def random_tiles(seed: int, positions, size=16, dtype=numpy.uint8):
    rng = numpy.random.default_rng(seed)
    return {p: rng.integers(1, 250, (size, size)).astype(dtype) for p in positions}


def test_wrong_coords_then_fixed(tmp_path, make_staging, run_cli):
    """Slide coordinates in names, --coords forgotten: every file falls
    outside; exit 1 with ONE line naming the fix; nothing recorded, so the
    corrected run stages everything."""
    staging = make_staging(width=64, height=48, slide_downsample=16, merge='mean', kind='probability', dtype='float32')
    positions = [(16 * x, 16 * y) for x in (0, 16, 32, 48) for y in (0, 16, 32)]
    tiles = {p: a.astype(numpy.float32) / 250 for p, a in random_tiles(1, positions).items()}
    save_tiles(tmp_path / 'heat', tiles)
    mistaken = run_cli('ingest-npy-dir', staging, tmp_path / 'heat', '--pattern', 'heat_{x}_{y}.npy')
    assert mistaken.exit_code == 1
    assert mistaken.stderr.strip().splitlines() == [
        'tifwriter: error: 11 of 12 file(s) fell wholly outside the 64 x 48 canvas (nothing of them '
        'was staged); their names look like slide coordinates: try --coords slide'
    ]
    fixed = run_cli('ingest-npy-dir', staging, tmp_path / 'heat', '--pattern', 'heat_{x}_{y}.npy', '--coords', 'slide')
    assert fixed.exit_code == 0, fixed.output
    assert ': 11 staged, 1 already staged' in fixed.stdout  # (0, 0) is the same place either way
    intended = model([(x // 16, y // 16, a) for (x, y), a in tiles.items()], width=64, height=48, dtype='float32', merge='mean')
    numpy.testing.assert_array_equal(finalized_level0(staging, run_cli), intended)


def test_swapped_pattern_then_fixed(tmp_path, make_staging, run_cli):
    staging = make_staging(width=96, height=64, merge='mean')
    positions = [(x, y) for x in (0, 16, 32, 48, 64, 80) for y in (0, 16, 32, 48)]
    tiles = random_tiles(2, positions)
    save_tiles(tmp_path / 'p', tiles, 'tile_{x}_{y}.npy')
    swapped = run_cli('ingest-npy-dir', staging, tmp_path / 'p', '--pattern', 'tile_{y}_{x}.npy')
    # 16 of 24 land (swapped), 8 fall outside: a minority, exit 0.
    assert swapped.exit_code == 0, swapped.output
    fixed = run_cli('ingest-npy-dir', staging, tmp_path / 'p', '--pattern', 'tile_{x}_{y}.npy')
    assert fixed.exit_code == 0, fixed.output
    intended = model([(x, y, a) for (x, y), a in tiles.items()], width=96, height=64, merge='mean')
    numpy.testing.assert_array_equal(finalized_level0(staging, run_cli), intended)


def test_corrected_convert_replaces(tmp_path, make_staging, run_cli):
    staging = make_staging(width=32, height=32, merge='mean')
    alone = make_staging(width=32, height=32, merge='mean')
    (tmp_path / 'p').mkdir()
    numpy.save(tmp_path / 'p' / 'a_0_0.npy', numpy.full((8, 8), 0.75, numpy.float32))
    assert run_cli('ingest-npy-dir', staging, tmp_path / 'p', '--convert', 'clip').exit_code == 0
    assert run_cli('ingest-npy-dir', staging, tmp_path / 'p', '--convert', 'scale').exit_code == 0
    assert run_cli('ingest-npy-dir', alone, tmp_path / 'p', '--convert', 'scale').exit_code == 0
    numpy.testing.assert_array_equal(finalized_level0(staging, run_cli), finalized_level0(alone, run_cli))
    again = run_cli('ingest-npy-dir', staging, tmp_path / 'p', '--convert', 'scale')
    assert ': 0 staged, 1 already staged' in again.stdout


def test_mean_with_a_rewritten_file(tmp_path, make_staging, run_cli):
    """A retried task rewrites its file (new content, new mtime): it counts
    once, as its new content."""
    staging = make_staging(width=48, height=32, merge='mean')
    first = random_tiles(3, [(0, 0), (16, 0), (8, 8)])
    save_tiles(tmp_path / 'p', first, 't_{x}_{y}.npy')
    assert run_cli('ingest-npy-dir', staging, tmp_path / 'p').exit_code == 0
    rewritten = random_tiles(4, [(8, 8)])
    path = tmp_path / 'p' / 't_8_8.npy'
    numpy.save(path, rewritten[(8, 8)])
    os.utime(path, ns=(os.stat(path).st_atime_ns, os.stat(path).st_mtime_ns + 10**9))
    again = run_cli('ingest-npy-dir', staging, tmp_path / 'p')
    assert ': 1 staged (1 replacing their earlier staging), 2 already staged' in again.stdout
    intended = model([(x, y, a) for (x, y), a in {**first, **rewritten}.items()], width=48, height=32, merge='mean')
    numpy.testing.assert_array_equal(finalized_level0(staging, run_cli), intended)


@pytest.mark.parametrize('merge', ['mean', 'max', 'min', 'overwrite'])
@pytest.mark.parametrize('first', ['write-patch', 'ingest-npy-dir'])
def test_same_file_via_both_commands_counts_once(tmp_path, make_staging, run_cli, merge, first):
    """One file staged by write-patch and by ingest-npy-dir at the same place
    is one contribution: under mean, t_8_8 is averaged in once where it
    overlaps t_0_0 (counted twice it would weigh 2/3 there, not 1/2)."""
    staging = make_staging(width=40, height=40, merge=merge)
    tiles = random_tiles(5, [(0, 0), (8, 8)])
    save_tiles(tmp_path / 'p', tiles, 't_{x}_{y}.npy')
    one = tmp_path / 'p' / 't_8_8.npy'
    if first == 'write-patch':
        result = run_cli('write-patch', staging, one, '--x', 8, '--y', 8)
        assert result.exit_code == 0, result.output
        ingest = run_cli('ingest-npy-dir', staging, tmp_path / 'p')
        assert ': 1 staged, 1 already staged' in ingest.stdout
    else:
        ingest = run_cli('ingest-npy-dir', staging, tmp_path / 'p')
        assert ': 2 staged, 0 already staged' in ingest.stdout
        again = run_cli('write-patch', staging, one, '--x', 8, '--y', 8)
        assert again.exit_code == 0 and 'already staged' in again.stdout, again.output
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.contributions) == 2 and file_key(one) in snapshot.contributions
        assert len(snapshot.patches) == 2
    intended = model([(x, y, a) for (x, y), a in tiles.items()], width=40, height=40, merge=merge)
    if merge == 'overwrite':  # the later staging wins the overlap (an "already staged" adds nothing)
        order = [(8, 8), (0, 0)] if first == 'write-patch' else [(0, 0), (8, 8)]
        intended = model([(x, y, tiles[x, y]) for x, y in order], width=40, height=40)
    numpy.testing.assert_array_equal(finalized_level0(staging, run_cli), intended)


def test_same_file_alone_counts_once_under_mean(tmp_path, make_staging, run_cli):
    """The single-patch case: the canvas is the patch itself, and the staging
    holds one patch for it (a double would be invisible in the pixels here)."""
    staging = make_staging(width=24, height=24, merge='mean', fill=0)
    save_tiles(tmp_path / 'p', random_tiles(8, [(4, 4)]), 't_{x}_{y}.npy')
    one = tmp_path / 'p' / 't_4_4.npy'
    assert run_cli('write-patch', staging, one, '--x', 4, '--y', 4).exit_code == 0
    assert ': 0 staged, 1 already staged' in run_cli('ingest-npy-dir', staging, tmp_path / 'p').stdout
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 1 and list(snapshot.contributions) == [file_key(one)]
    numpy.testing.assert_array_equal(
        finalized_level0(staging, run_cli), model([(4, 4, numpy.load(one))], width=24, height=24, merge='mean')
    )


def test_same_file_slide_and_canvas_coords_at_the_same_place_counts_once(tmp_path, make_staging, run_cli):
    """The placement is recorded in canvas pixels: write-patch --x 3 --y 2 and
    ingest of heat_30_20.npy --coords slide at D = 10 are the same place."""
    staging = make_staging(width=24, height=24, merge='mean', slide_downsample=10)
    tiles = random_tiles(9, [(30, 20), (0, 0)], size=8)
    save_tiles(tmp_path / 'p', tiles)
    assert run_cli('write-patch', staging, tmp_path / 'p' / 'heat_30_20.npy', '--x', 3, '--y', 2).exit_code == 0
    ingest = run_cli('ingest-npy-dir', staging, tmp_path / 'p', '--pattern', 'heat_{x}_{y}.npy', '--coords', 'slide')
    assert ': 1 staged, 1 already staged' in ingest.stdout, ingest.output
    intended = model([(3, 2, tiles[30, 20]), (0, 0, tiles[0, 0])], width=24, height=24, merge='mean')
    numpy.testing.assert_array_equal(finalized_level0(staging, run_cli), intended)


def test_same_file_rewritten_between_the_commands_replaces(tmp_path, make_staging, run_cli):
    """A retried job rewrote the file after write-patch staged it: ingest
    replaces the old staging; under mean only the new content counts."""
    staging = make_staging(width=32, height=32, merge='mean')
    old = random_tiles(10, [(0, 0), (8, 8)])
    save_tiles(tmp_path / 'p', old, 't_{x}_{y}.npy')
    one = tmp_path / 'p' / 't_8_8.npy'
    assert run_cli('write-patch', staging, one, '--x', 8, '--y', 8).exit_code == 0
    new = numpy.full((16, 16), 77, numpy.uint8)
    numpy.save(one, new)
    os.utime(one, ns=(os.stat(one).st_atime_ns, os.stat(one).st_mtime_ns + 10**9))
    ingest = run_cli('ingest-npy-dir', staging, tmp_path / 'p')
    assert ingest.exit_code == 0, ingest.output
    assert ': 2 staged (1 replacing their earlier staging), 0 already staged' in ingest.stdout
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.contributions) == 2 and snapshot.duplicate_rows == 1  # the old row, withdrawn
    intended = model([(0, 0, old[0, 0]), (8, 8, new)], width=32, height=32, merge='mean')
    numpy.testing.assert_array_equal(finalized_level0(staging, run_cli), intended)


def test_two_directories_with_equal_names_sizes_and_mtimes(tmp_path, make_staging, run_cli):
    """An ensemble: A/ and B/ hold the same names, equal sizes, equal mtimes
    (cp -p); they are two contributions each, and the mean is of both."""
    staging = make_staging(width=32, height=32, merge='mean')
    a = random_tiles(6, [(0, 0), (8, 16)])
    b = random_tiles(7, [(0, 0), (8, 16)])
    save_tiles(tmp_path / 'A', a, 't_{x}_{y}.npy')
    save_tiles(tmp_path / 'B', b, 't_{x}_{y}.npy')
    for name in os.listdir(tmp_path / 'A'):
        shutil.copystat(tmp_path / 'A' / name, tmp_path / 'B' / name)
        assert os.stat(tmp_path / 'A' / name).st_mtime_ns == os.stat(tmp_path / 'B' / name).st_mtime_ns
    assert run_cli('ingest-npy-dir', staging, tmp_path / 'A').exit_code == 0
    second = run_cli('ingest-npy-dir', staging, tmp_path / 'B')
    assert ': 2 staged, 0 already staged' in second.stdout
    intended = model(
        [(x, y, t) for tiles in (a, b) for (x, y), t in tiles.items()], width=32, height=32, merge='mean'
    )
    numpy.testing.assert_array_equal(finalized_level0(staging, run_cli), intended)


def test_a_file_moved_outside_withdraws_its_earlier_staging(tmp_path, make_staging, run_cli):
    staging = make_staging(width=32, height=32)
    (tmp_path / 'p').mkdir()
    numpy.save(tmp_path / 'p' / 'a.npy', numpy.full((8, 8), 9, numpy.uint8))
    assert run_cli('write-patch', staging, tmp_path / 'p' / 'a.npy', '--x', 4, '--y', 4).exit_code == 0
    moved = run_cli('write-patch', staging, tmp_path / 'p' / 'a.npy', '--x', 40, '--y', 4)
    assert 'its earlier staging is withdrawn' in moved.stdout
    with tw.read_staging(staging) as snapshot:
        assert snapshot.contributions == {} and len(snapshot.patches) == 0
        assert (snapshot.read_canvas() == 0).all()


@pytest.mark.parametrize('merge', ['overwrite', 'max', 'min', 'mean'])
def test_api_key_replaces_under_every_merge_rule(make_staging, merge):
    staging = make_staging(width=8, height=4, merge=merge)
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.full((4, 4), 50, numpy.uint8), key='job-7')
        writer.write(2, 0, numpy.full((4, 4), 10, numpy.uint8))
    with tw.open_staging(staging) as writer:  # the retried job, other output
        writer.write(0, 0, numpy.full((4, 4), 30, numpy.uint8), key='job-7')
    intended = model(
        [(0, 0, numpy.full((4, 4), 30)), (2, 0, numpy.full((4, 4), 10))], width=8, height=4, merge=merge
    )
    if merge == 'overwrite':  # the retry published last: it wins where they overlap
        intended = model([(2, 0, numpy.full((4, 4), 10)), (0, 0, numpy.full((4, 4), 30))], width=8, height=4)
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas(), intended)
        assert set(snapshot.contributions) == {'job-7'} and snapshot.duplicate_rows == 1


_DOWNSAMPLES = st.sampled_from([0.1, 0.25, 0.3, 0.5, 1.5, 2.0, 2.2, 2.5, 3.0, 4.0, 7.5, 16.0, 32.0])


@settings(max_examples=200, deadline=None)
@given(x=st.integers(-10**6, 10**6), y=st.integers(-10**6, 10**6), downsample=_DOWNSAMPLES)
def test_slide_to_canvas_is_one_rule(x, y, downsample):
    """The slide -> canvas rule: floor(x / D) in exact decimal arithmetic, the
    same for the API (slide_to_canvas) and the commands (canvas_position)."""
    from fractions import Fraction

    expected = tuple(int((Fraction(v) / Fraction(repr(downsample))).__floor__()) for v in (x, y))
    spec = tw.CanvasSpec(width=10, height=10, slide_downsample=downsample)
    assert slide_to_canvas(x, y, downsample) == expected
    assert canvas_position(x, y, coords='slide', spec=spec) == expected
    arrays = slide_to_canvas(numpy.array([x]), numpy.array([y]), downsample)
    assert (int(arrays[0][0]), int(arrays[1][0])) == expected


@pytest.mark.parametrize('downsample, slide_xy', [(0.1, (3, 7)), (2.5, (5, 11)), (4.0, (401, 3)), (16.0, (-1, 33))])
def test_write_patch_and_ingest_place_slide_coordinates_alike(tmp_path, make_staging, run_cli, downsample, slide_xy):
    staging = make_staging(width=120, height=120, slide_downsample=downsample)
    x, y = slide_xy
    (tmp_path / 'p').mkdir()
    numpy.save(tmp_path / 'p' / f't_{x}_{y}.npy', numpy.full((2, 2), 5, numpy.uint8))
    cx, cy = slide_to_canvas(x, y, downsample)
    wrote = run_cli('write-patch', staging, tmp_path / 'p' / f't_{x}_{y}.npy', '--x', x, '--y', y, '--coords', 'slide')
    assert f'at x={cx}, y={cy} (canvas px)' in wrote.stdout
    with tw.read_staging(staging) as snapshot:
        assert snapshot.contributions[file_key(tmp_path / 'p' / f't_{x}_{y}.npy')][3] == f'{cx},{cy},exact'
    ingest = run_cli('ingest-npy-dir', staging, tmp_path / 'p', '--coords', 'slide')
    assert ': 0 staged, 1 already staged' in ingest.stdout  # the same placement


def test_empty_directory_and_empty_canvas_warn(tmp_path, make_staging, run_cli):
    staging = make_staging(width=16, height=16)
    (tmp_path / 'empty').mkdir()
    result = run_cli('ingest-npy-dir', staging, tmp_path / 'empty')
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [f'tifwriter: warning: no .npy/.npz file in {tmp_path / "empty"}']
    finalized = run_cli('finalize', staging, tmp_path / 'o.tif')
    assert finalized.exit_code == 0
    assert 'tifwriter: warning: nothing is staged on this canvas' in finalized.stderr


def test_mostly_outside_is_one_line_not_one_per_file(tmp_path, make_staging, run_cli):
    """Positions swapped by the pattern on a wide canvas: one summary line, exit 1."""
    staging = make_staging(width=200, height=20)
    save_tiles(tmp_path / 'p', random_tiles(9, [(x, 0) for x in range(40, 200, 10)], size=10), 't_{x}_{y}.npy')
    result = run_cli('ingest-npy-dir', staging, tmp_path / 'p', '--pattern', 't_{y}_{x}.npy')
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        'tifwriter: error: 16 of 16 file(s) fell wholly outside the 200 x 20 canvas (nothing of them was '
        'staged); x and y look swapped: try the pattern with {x} and {y} exchanged'
    ]
    with tw.read_staging(staging) as snapshot:
        assert snapshot.fragment_paths == [] and snapshot.contributions == {}
