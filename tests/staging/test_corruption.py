"""Corruption is detected, never finalized: a flipped byte in patch data or
in an index, or a truncated fragment, stops finalize/info/verify with one
line naming the fragment and the remedy; the output path is untouched."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import h5py
import numpy
import pytest
import tifffile

import tifwriter_cli as tw
from tifwriter_cli.staging.layout import fragments_dir

from tests.helpers.cli_checks import assert_clean_failure
from tests.helpers.reference import ReferenceCanvas

RNG = numpy.random.default_rng(8)
#: Job 1 (fragment 1): noise (stored plainly) and a compressible ramp; job 2 (fragment 2): one patch.
JOB1 = [(0, 0, RNG.integers(0, 255, (32, 32), dtype=numpy.uint8)),
        (32, 0, numpy.tile(numpy.arange(32, dtype=numpy.uint8), (32, 1)))]
JOB2 = [(0, 32, numpy.full((16, 64), 7, numpy.uint8) + RNG.integers(0, 2, (16, 64), dtype=numpy.uint8))]


def run_job(staging, writes):
    with tw.open_staging(staging) as writer:
        for x, y, array in writes:
            writer.write(x, y, array)


def model(*jobs) -> numpy.ndarray:
    reference = ReferenceCanvas(64, 48)
    for job in jobs:
        for x, y, array in job:
            reference.write(x, y, array)
    return reference.result()


@pytest.fixture
def unit(make_staging):
    staging = make_staging(width=64, height=48)
    run_job(staging, JOB1)
    run_job(staging, JOB2)
    return staging


def fragment(staging: Path, number: int) -> Path:
    return fragments_dir(staging) / f'{number:010d}.h5'


def flip(path: Path, offset: int) -> None:
    with open(path, 'r+b') as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0x5A]))


def patch_data_offset(path: Path, number: int) -> int:
    with h5py.File(path, 'r') as h5:
        return h5['patches'][str(number)].id.get_chunk_info(0).byte_offset


def index_offset(path: Path) -> int:
    with h5py.File(path, 'r') as h5:
        return h5['index'].id.get_offset()


def damage(staging: Path, how: str) -> None:
    path = fragment(staging, 1)
    if how == 'plain patch data':
        flip(path, patch_data_offset(path, 0) + 100)
    elif how == 'compressed patch data':
        flip(path, patch_data_offset(path, 1) + 40)
    elif how == 'index':
        flip(path, index_offset(path) + 2)  # row 0's x
    elif how == 'truncated':
        os.truncate(path, os.path.getsize(path) * 2 // 3)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize('how', ['plain patch data', 'compressed patch data', 'index', 'truncated'])
def test_damage_is_detected_never_finalized(tmp_path, unit, run_cli, how):
    out = tmp_path / 'out.tif'
    assert run_cli('finalize', unit, out).exit_code == 0
    before = digest(out)
    damage(unit, how)
    line = assert_clean_failure(run_cli('finalize', unit, out, '--overwrite'), 1)
    assert str(fragment(unit, 1)) in line and 'unstage STAGING --fragment 1' in line, line
    assert digest(out) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith('.out')) == []
    verified = run_cli('verify', unit)
    assert verified.exit_code == 1 and '--fragment 1' in verified.stderr
    info = run_cli('info', unit)
    if how in ('index', 'truncated'):  # info reads tables, not pixels
        assert '--fragment 1' in assert_clean_failure(info, 1)
    else:
        assert info.exit_code == 0
    # The remedy: withdraw the fragment, re-run the job that wrote it.
    assert run_cli('unstage', unit, '--fragment', 1).exit_code == 0
    with tw.read_staging(unit) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas(), model(JOB2))
    run_job(unit, JOB1)
    assert run_cli('verify', unit).exit_code == 0
    assert run_cli('finalize', unit, out, '--overwrite').exit_code == 0
    level0 = tifffile.imread(out)
    # JOB1 re-ran after JOB2 (overwrite merge: later wins; they do not overlap).
    numpy.testing.assert_array_equal(level0[:, :, None], model(JOB2, JOB1))


def test_intact_unit_verifies(unit, run_cli):
    result = run_cli('verify', unit)
    assert result.exit_code == 0, result.output
    assert ': ok: 3 patch(es) in 2 fragment(s)' in result.stdout


def test_damaged_ingest_fragment_unstaged_then_the_ingest_rerun(tmp_path, make_staging, run_cli):
    staging = make_staging(width=64, height=48)
    (tmp_path / 'p').mkdir()
    for x, y, array in JOB1 + JOB2:
        numpy.save(tmp_path / 'p' / f't_{x}_{y}.npy', array)
    assert run_cli('ingest-npy-dir', staging, tmp_path / 'p').exit_code == 0
    flip(fragment(staging, 1), patch_data_offset(fragment(staging, 1), 0) + 7)
    assert '--fragment 1' in assert_clean_failure(run_cli('finalize', staging, tmp_path / 'o.tif'), 1)
    assert not (tmp_path / 'o.tif').exists()
    assert run_cli('unstage', staging, '--fragment', 1).exit_code == 0
    rerun = run_cli('ingest-npy-dir', staging, tmp_path / 'p')
    assert ': 3 staged, 0 already staged' in rerun.stdout
    assert run_cli('finalize', staging, tmp_path / 'o.tif').exit_code == 0
    numpy.testing.assert_array_equal(tifffile.imread(tmp_path / 'o.tif')[:, :, None], model(JOB1, JOB2))
