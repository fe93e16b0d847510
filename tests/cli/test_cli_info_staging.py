"""``tifwriter info`` on staging files: the report's content, and clean refusals."""

from __future__ import annotations

import json
import os

import h5py
import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.ingest import ingest_npy_dir
from tifwriter_cli.staging.layout import fragments_dir

from tests.helpers.cli_checks import assert_clean_failure


@pytest.fixture
def staged(tmp_path, make_staging):
    """A staging file with known patches: two overlapping, one clipped, two uniform."""
    staging = make_staging(width=300, height=200, spacing_x=0.5, merge='max', fill=0)
    with tw.open_staging(staging) as writer:
        writer.write(10, 20, numpy.arange(50 * 40, dtype=numpy.uint32).reshape(40, 50) % 7)
        writer.write(40, 50, numpy.full((30, 30), 3, numpy.uint8))  # uniform, overlaps the first
        writer.write(-10, 190, numpy.ones((20, 20), numpy.uint8) * 2)  # clipped to 10 x 10
    return staging


def test_text_report(staged, run_cli):
    result = run_cli('info', staged)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f'staging file  {staged}  (format v2, created ')
    assert lines[1] == 'canvas        300 x 200 px, 1 channel(s), uint8, kind labels'
    assert lines[2] == 'spacing       0.5 x 0.5 um/px'
    assert lines[3] == 'tile size     512    fill 0    merge max'
    assert lines[4].startswith('fragments     1 published, ')
    assert lines[5] == 'patches       3 (2 uniform), 0 keyed contribution(s)'
    # 50*40 + 30*30 - 20*10 (the overlap) + 10*10
    written = 50 * 40 + 30 * 30 - 20 * 10 + 10 * 10
    assert lines[6] == f'written       {100 * written / 60000:.2f} % of the canvas ({written} px)'
    assert lines[7] == 'bbox          x 0..70, y 20..200'
    assert result.stderr == ''


def test_json_report_matches_the_canvas(staged, run_cli):
    result = run_cli('info', staged, '--json')
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    with tw.read_staging(staged) as snapshot:
        canvas = snapshot.read_canvas()
    # Coverage from the patch rectangles (pixel values may be 0 inside).
    covered = numpy.zeros((200, 300), bool)
    covered[20:60, 10:60] = covered[50:80, 40:70] = covered[190:200, 0:10] = True
    assert report['written_pixels'] == int(covered.sum())
    assert canvas[~covered].max() == 0
    assert report['canvas'] == {
        'width': 300, 'height': 200, 'channels': 1, 'dtype': 'uint8', 'tile_size': 512, 'fill': 0, 'merge': 'max', 'kind': 'labels',
        'slide_downsample': 1.0,
    }
    assert report['spacing_um'] == [0.5, 0.5]  # the key a TIFF's report uses too
    assert (report['patches'], report['uniform_patches'], report['fragments']['count']) == (3, 2, 1)
    assert report['bbox'] == {'x': 0, 'y': 20, 'x_end': 70, 'y_end': 200}


def test_report_after_an_ingest_and_with_a_leftover_temp_file(tmp_path, make_staging, run_cli):
    staging = make_staging(width=64, height=64)
    preds = tmp_path / 'preds'
    preds.mkdir()
    for x in (0, 16, 32):
        numpy.save(preds / f't_{x}_0.npy', numpy.full((16, 16), x // 16 + 1, numpy.uint8))
    ingest_npy_dir(staging, preds)
    (fragments_dir(staging) / '.tmp-host-1-abc.h5').write_bytes(b'partial')
    result = run_cli('info', staging)
    assert result.exit_code == 0
    assert 'patches       3 (3 uniform), 3 keyed contribution(s)' in result.stdout
    assert '1 unpublished temp file(s)' in result.stdout
    assert 'written       18.75 % of the canvas (768 px)' in result.stdout
    assert 'spacing       not set' in result.stdout
    report = json.loads(run_cli('info', staging, '--json').stdout)
    assert report['source_files'] == 3 and report['fragments']['unpublished_temp_files'] == 1


def test_empty_staging(make_staging, run_cli):
    staging = make_staging(width=10, height=10)
    result = run_cli('info', staging)
    assert result.exit_code == 0
    assert 'bbox          nothing written yet' in result.stdout
    assert 'written       0.00 % of the canvas (0 px)' in result.stdout


def test_missing_path(tmp_path, run_cli):
    line = assert_clean_failure(run_cli('info', tmp_path / 'nothing.h5'), 1)
    assert 'does not exist' in line


def test_directory(tmp_path, run_cli):
    line = assert_clean_failure(run_cli('info', tmp_path), 1)
    assert 'is a directory' in line


@pytest.mark.parametrize(
    'content',
    [b'', b'plain text, not a staging file', b'\x93NUMPY\x01\x00'],
)
def test_not_hdf5(tmp_path, run_cli, content):
    path = tmp_path / 'thing.h5'
    path.write_bytes(content)
    line = assert_clean_failure(run_cli('info', path), 1)
    assert 'neither a tifwriter staging file nor a TIFF' in line


def test_damaged_hdf5(tmp_path, run_cli):
    path = tmp_path / 'cut.h5'
    path.write_bytes(b'\x89HDF\r\n\x1a\n' + b'\xff' * 200)
    line = assert_clean_failure(run_cli('info', path), 1)
    assert 'not a tifwriter staging file' in line


def test_hdf5_that_is_not_staging(tmp_path, run_cli):
    path = tmp_path / 'other.h5'
    with h5py.File(path, 'w') as h5:
        h5['data'] = numpy.zeros(4)
    line = assert_clean_failure(run_cli('info', path), 1)
    assert 'HDF5 file but not a tifwriter staging file' in line


def test_staging_without_its_fragments_directory(staged, run_cli):
    os.rename(fragments_dir(staged), f'{staged}.moved')
    line = assert_clean_failure(run_cli('info', staged), 1)
    assert 'no fragments directory' in line


def test_staging_of_another_format_version(tmp_path, make_staging, run_cli):
    staging = make_staging()
    with h5py.File(staging, 'r+') as h5:
        h5.attrs['format_version'] = 99
    line = assert_clean_failure(run_cli('info', staging), 1)
    assert 'format version 99' in line


def test_repeated_source_records_are_reported(make_staging, run_cli):
    # Two ingests racing on one directory both stage a file; the second
    # record is ignored when merging, and info says so.
    staging = make_staging(width=10, height=10, merge='mean')
    for value in (4, 4):
        with tw.open_staging(staging) as writer:
            writer.write(0, 0, numpy.full((2, 2), value, numpy.uint8), source=('t_0_0.npy', 128, 1))
    result = run_cli('info', staging)
    assert 'patches       1 (1 uniform), 1 keyed contribution(s), 1 earlier staging(s) of them replaced' in result.stdout
