"""atomic_output: all or nothing at the target path, umask permissions."""

from __future__ import annotations

import os

import pytest

from tifwriter_cli.atomic import atomic_output
from tifwriter_cli.errors import InvalidOptionError, OutputExistsError


def test_success_renames_with_umask_permissions(tmp_path):
    target = tmp_path / 'out.bin'
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        tmp.write_bytes(b'data')
        assert not target.exists()
    assert target.read_bytes() == b'data'
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
    assert os.listdir(tmp_path) == ['out.bin']


@pytest.mark.parametrize('failure', [RuntimeError('boom'), KeyboardInterrupt()])
def test_failure_leaves_nothing(tmp_path, failure):
    target = tmp_path / 'out.bin'
    with pytest.raises(type(failure)):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b'partial')
            raise failure
    assert os.listdir(tmp_path) == []


def test_failure_keeps_the_old_output(tmp_path):
    import imagecodecs
    import numpy

    from tifwriter_cli.atomic import png_with_software

    target = tmp_path / 'out.png'  # an output of ours: --overwrite may replace it
    old = png_with_software(imagecodecs.png_encode(numpy.zeros((2, 2), numpy.uint8)), 'tifwriter test')
    target.write_bytes(old)
    with pytest.raises(RuntimeError):
        with atomic_output(target, overwrite=True) as tmp:
            tmp.write_bytes(b'new')
            raise RuntimeError
    assert target.read_bytes() == old
    assert os.listdir(tmp_path) == ['out.png']


def test_overwrite_refuses_what_tifwriter_did_not_make(tmp_path):
    from tifwriter_cli.errors import NotOursError

    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')
    with pytest.raises(NotOursError, match='not made by tifwriter'):
        with atomic_output(target, overwrite=True) as tmp:
            tmp.write_bytes(b'new')
    assert target.read_bytes() == b'old'
    assert os.listdir(tmp_path) == ['out.bin']


def test_existing_output_refused_before_any_work(tmp_path):
    target = tmp_path / 'out.bin'
    target.write_bytes(b'old')
    with pytest.raises(OutputExistsError, match='overwrite=True'):
        with atomic_output(target):
            pytest.fail('the body must not run')
    assert target.read_bytes() == b'old'


def test_output_created_meanwhile_is_not_clobbered(tmp_path):
    target = tmp_path / 'out.bin'
    with pytest.raises(OutputExistsError):
        with atomic_output(target) as tmp:
            tmp.write_bytes(b'mine')
            target.write_bytes(b'theirs')  # another process won the race
    assert target.read_bytes() == b'theirs'
    assert sorted(os.listdir(tmp_path)) == ['out.bin']


@pytest.mark.parametrize('where', ['missing-dir/out.bin', '.'])
def test_bad_target_paths(tmp_path, where):
    with pytest.raises(InvalidOptionError):
        with atomic_output(tmp_path / where):
            pass
