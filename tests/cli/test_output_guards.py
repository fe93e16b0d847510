"""--overwrite never destroys what is not ours; outputs never land on an input.

One guard (tifwriter_cli.atomic.check_output_path) serves every command that
writes; these tests drive each command at each kind of thing it must spare.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import h5py
import imagecodecs
import numpy
import pytest
import tifffile

from tifwriter_cli.atomic import made_by_tifwriter
from tifwriter_cli.staging.layout import fragments_dir

from tests.helpers.cli_checks import assert_clean_failure


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def foreign_tiff(tmp_path):
    path = tmp_path / 'theirs.tif'
    tifffile.imwrite(path, numpy.ones((32, 32), numpy.uint8), tile=(16, 16))
    return path


@pytest.fixture
def foreign_png(tmp_path):
    path = tmp_path / 'theirs.png'
    path.write_bytes(imagecodecs.png_encode(numpy.ones((8, 8, 3), numpy.uint8)))
    return path


@pytest.fixture
def staged(tmp_path, make_staging, run_cli):
    staging = make_staging(width=64, height=48)
    numpy.save(tmp_path / 'p.npy', numpy.full((8, 8), 3, numpy.uint8))
    assert run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 0, '--y', 0).exit_code == 0
    return staging


def test_init_like_the_slide_itself_is_refused(slide, run_cli):
    before = digest(slide)
    for extra in ((), ('--overwrite',)):
        line = assert_clean_failure(run_cli('init', slide, '--like', slide, '--downsample', '16', *extra), 2)
        assert 'is also an input' in line
    assert digest(slide) == before


@pytest.mark.parametrize('victim', ['slide', 'foreign_tiff', 'foreign_png'])
def test_overwrite_spares_files_tifwriter_did_not_make(request, tmp_path, staged, run_cli, victim):
    path = request.getfixturevalue(victim)
    before = digest(path)
    attempts = [
        ('init', path, '--width', 10, '--height', 10, '--overwrite'),
        ('finalize', staged, path, '--overwrite'),
    ]
    if path.suffix == '.png':
        attempts.append(('preview', staged, '-o', path, '--overwrite'))
    for args in attempts:
        line = assert_clean_failure(run_cli(*args), 1)
        assert 'was not made by tifwriter' in line and 'move or delete it yourself' in line
    assert digest(path) == before


def test_overwrite_replaces_our_own_outputs(tmp_path, staged, run_cli):
    out, png = tmp_path / 'out.tif', tmp_path / 'out.png'
    for _ in range(2):
        assert run_cli('finalize', staged, out, '--overwrite').exit_code == 0
        assert run_cli('preview', out, '-o', png, '--overwrite').exit_code == 0
    assert made_by_tifwriter(out) == 'tiff' and made_by_tifwriter(png) == 'png'
    assert made_by_tifwriter(staged) == 'staging'
    again = tmp_path / 'again.h5'
    assert run_cli('init', again, '--width', 8, '--height', 8).exit_code == 0
    assert run_cli('init', again, '--width', 9, '--height', 9, '--overwrite').exit_code == 0


def test_init_overwrite_refuses_a_foreign_hdf5_and_foreign_fragments(tmp_path, run_cli):
    theirs = tmp_path / 'data.h5'
    with h5py.File(theirs, 'w') as h5:
        h5['x'] = numpy.arange(3)
    before = digest(theirs)
    assert 'was not made by tifwriter' in assert_clean_failure(
        run_cli('init', theirs, '--width', 8, '--height', 8, '--overwrite'), 1
    )
    assert digest(theirs) == before
    lonely = tmp_path / 'unit.h5'
    (tmp_path / 'unit.h5.fragments').mkdir()
    (tmp_path / 'unit.h5.fragments' / 'notes.txt').write_text('mine')
    assert 'did not write' in assert_clean_failure(
        run_cli('init', lonely, '--width', 8, '--height', 8, '--overwrite'), 1
    )
    assert (tmp_path / 'unit.h5.fragments' / 'notes.txt').read_text() == 'mine'


def test_outputs_on_inputs_or_inside_fragments_are_refused(tmp_path, staged, slide, run_cli):
    fragments = fragments_dir(staged)
    before = sorted(p.name for p in fragments.iterdir())
    cases = [
        (('finalize', staged, staged, '--overwrite'), 'is also an input'),
        (('finalize', staged, fragments / 'out.tif'), 'inside the fragments directory'),
        (('preview', staged, '-o', fragments / 'p.png'), 'inside the fragments directory'),
        (('preview', staged, '-o', tmp_path / 'p.tif'), 'must be a .png file'),
        (('preview', staged, '-o', tmp_path / 'o.png', '--overlay', slide), None),
    ]
    for args, message in cases:
        result = run_cli(*args)
        if message is None:
            assert result.exit_code == 0, result.output
            continue
        assert message in assert_clean_failure(result, 2)
    assert sorted(p.name for p in fragments.iterdir()) == before
    assert not (tmp_path / 'p.tif').exists()
    # --overlay given as the output: refused before anything is read.
    shot = tmp_path / 'shot.png'
    assert run_cli('preview', staged, '-o', shot).exit_code == 0
    before = digest(shot)
    assert 'is also an input' in assert_clean_failure(
        run_cli('preview', staged, '-o', shot, '--overlay', shot, '--overwrite'), 2
    )
    assert digest(shot) == before
