"""``tifwriter ingest-npy-dir``: summary, exit codes, shards, SLURM arrays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.cli import cmd_ingest
from tifwriter_cli.ingest import DEFAULT_PATTERN
from tifwriter_cli.ingest.contribution import file_key

from tests.helpers.cli_checks import assert_clean_failure, assert_usage_error
from tests.helpers.reference import ReferenceCanvas

SLURM_VARIABLES = (
    'SLURM_ARRAY_TASK_ID', 'SLURM_ARRAY_TASK_COUNT', 'SLURM_ARRAY_TASK_MIN', 'SLURM_ARRAY_TASK_STEP',
)


@pytest.fixture(autouse=True)
def outside_slurm(monkeypatch):
    """These tests must not depend on running inside a SLURM array job."""
    for name in SLURM_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def canvas_of(staging: Path) -> numpy.ndarray:
    with tw.read_staging(staging) as snapshot:
        return snapshot.read_canvas()


def make_predictions(directory: Path, count: int, *, width: int, height: int, seed: int = 0):
    """Patch files named tile_<x>_<y>.npy; returns the writes in sorted file order."""
    rng = numpy.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    named = []
    for _ in range(count):
        x, y = int(rng.integers(-8, width)), int(rng.integers(-8, height))
        array = rng.integers(0, 255, (16, 16), dtype=numpy.uint8)
        name = f'tile_{x}_{y}.npy'
        numpy.save(directory / name, array)
        named.append((name, x, y, array))
    unique = {name: (x, y, a) for name, x, y, a in named}  # a repeated name was overwritten
    return [unique[name] for name in sorted(unique)]


def reference_of(writes, **canvas) -> numpy.ndarray:
    reference = ReferenceCanvas(**canvas)
    for x, y, array in writes:
        reference.write(x, y, array)
    return reference.result()


def test_ingest_then_rerun(tmp_path, make_staging, run_cli):
    staging = make_staging(width=80, height=60, merge='mean')
    writes = make_predictions(tmp_path / 'preds', 20, width=80, height=60)
    n = len(writes)
    first = run_cli('ingest-npy-dir', staging, tmp_path / 'preds')
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith(f'{tmp_path / "preds"} -> {staging}: {n} staged, 0 already staged, 0 failed')
    assert len(first.stdout.splitlines()) == 1
    expected = reference_of(writes, width=80, height=60, merge='mean')
    numpy.testing.assert_array_equal(canvas_of(staging), expected)
    again = run_cli('ingest-npy-dir', staging, tmp_path / 'preds')
    assert again.exit_code == 0  # nothing new is not an error: re-runs are normal
    assert f': 0 staged, {n} already staged, 0 failed' in again.stdout
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_json_report(tmp_path, make_staging, run_cli):
    staging = make_staging(width=40, height=40)
    writes = make_predictions(tmp_path / 'preds', 5, width=40, height=40)
    (tmp_path / 'preds' / 'notes.npy').write_bytes(b'')
    result = run_cli('ingest-npy-dir', staging, tmp_path / 'preds', '--json')
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report['staged'] == len(writes) and report['failed'] == 0 and report['ok'] is True
    assert report['unmatched'] == 1 and report['unmatched_examples'] == ['notes.npy']
    assert report['bytes_staged'] == 16 * 16 * len(writes)
    assert report['shard'] is None and report['pattern'] == DEFAULT_PATTERN


def test_help_default_pattern_is_the_library_default():
    assert cmd_ingest.DEFAULT_PATTERN == DEFAULT_PATTERN


def make_bad_directory(directory: Path) -> None:
    directory.mkdir()
    numpy.save(directory / 'a_0_0.npy', numpy.full((4, 4), 1, numpy.uint8))
    (directory / 'b_4_0.npy').write_bytes(b'\x93NUMPY garbage')
    numpy.save(directory / 'c_8_0.npy', numpy.full((4, 4), 3, numpy.uint8))
    numpy.save(directory / 'd_12_0.npy', numpy.full((4, 4), 0.5))
    numpy.save(directory / 'e_16_0.npy', numpy.full((4, 4), 5, numpy.uint8))


def test_bad_file_stops_by_default(tmp_path, make_staging, run_cli):
    staging = make_staging(width=20, height=4)
    make_bad_directory(tmp_path / 'preds')
    result = run_cli('ingest-npy-dir', staging, tmp_path / 'preds')
    line = assert_clean_failure(result, 1)
    assert str(tmp_path / 'preds' / 'b_4_0.npy') in line and 'unsupported .npy format version' in line
    assert ': 1 staged, 0 already staged, 1 failed' in result.stdout
    assert 'stopped at the first bad file' in result.stdout
    assert list(canvas_of(staging)[0, ::4, 0]) == [1, 0, 0, 0, 0]


def test_on_error_skip_names_every_bad_file(tmp_path, make_staging, run_cli):
    staging = make_staging(width=20, height=4)
    make_bad_directory(tmp_path / 'preds')
    result = run_cli('ingest-npy-dir', staging, tmp_path / 'preds', '--on-error', 'skip')
    assert result.exit_code == 1
    assert 'Traceback' not in result.output
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 2 and all(e.startswith('tifwriter: error: ') for e in errors)
    assert 'b_4_0.npy' in errors[0] and 'd_12_0.npy' in errors[1]
    assert ': 3 staged, 0 already staged, 2 failed' in result.stdout
    assert list(canvas_of(staging)[0, ::4, 0]) == [1, 0, 3, 0, 5]


@pytest.mark.parametrize(
    'args, text',
    [
        (['--pattern', 'tile_{x}.npy'], 'needs a {y} field'),
        (['--pattern', 'tile_{x}_{y}_{z}.npy'], 'unknown field {z}'),
        (['--pattern', 'x{x}_y{y}.npy'], 'no file name'),
        (['--shard', '3'], 'shard must be I/N'),
        (['--shard', '4/4'], 'shard 4/4'),
        (['--shard', '1/0'], 'shard 1/0'),
        (['--shard', 'x/y'], 'shard must be I/N'),
        (['--shard', 'slurm'], 'not in a SLURM array job'),
    ],
)
def test_bad_options_are_one_line_exit_2(tmp_path, make_staging, run_cli, args, text):
    staging = make_staging(width=20, height=20)
    make_predictions(tmp_path / 'preds', 3, width=20, height=20)
    line = assert_clean_failure(run_cli('ingest-npy-dir', staging, tmp_path / 'preds', *args), 2)
    assert text in line
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 0


def test_bad_paths(tmp_path, make_staging, run_cli):
    staging = make_staging(width=20, height=20)
    make_predictions(tmp_path / 'preds', 2, width=20, height=20)
    line = assert_clean_failure(run_cli('ingest-npy-dir', staging, tmp_path / 'nope'), 2)
    assert 'directory' in line and 'does not exist' in line
    line = assert_clean_failure(run_cli('ingest-npy-dir', tmp_path / 'none.h5', tmp_path / 'preds'), 1)
    assert 'does not exist' in line
    (tmp_path / 'x.h5').write_bytes(b'\x89HDF\r\n\x1a\n' + b'\0' * 100)
    line = assert_clean_failure(run_cli('ingest-npy-dir', tmp_path / 'x.h5', tmp_path / 'preds'), 1)
    assert 'not a tifwriter staging file' in line
    assert_usage_error(run_cli('ingest-npy-dir', staging, tmp_path / 'preds', '--on-error', 'ignore'), "'ignore'")


def test_channel_mismatch_is_reported_per_file(tmp_path, make_staging, run_cli):
    staging = make_staging(width=20, height=20, channels=3)
    make_predictions(tmp_path / 'preds', 2, width=20, height=20)
    line = assert_clean_failure(run_cli('ingest-npy-dir', staging, tmp_path / 'preds'), 1)
    assert 'has 1 channel(s) but the canvas has 3' in line


def test_recursive_flag(tmp_path, make_staging, run_cli):
    staging = make_staging(width=20, height=20)
    (tmp_path / 'preds' / 'sub').mkdir(parents=True)
    numpy.save(tmp_path / 'preds' / 'sub' / 'a_2_3.npy', numpy.full((2, 2), 4, numpy.uint8))
    flat = run_cli('ingest-npy-dir', staging, tmp_path / 'preds')
    assert flat.exit_code == 0 and ': 0 staged' in flat.stdout
    assert '--recursive' in flat.stderr
    deep = run_cli('ingest-npy-dir', staging, tmp_path / 'preds', '--recursive')
    assert deep.exit_code == 0 and ': 1 staged' in deep.stdout
    assert canvas_of(staging)[3, 2, 0] == 4


def test_slurm_array_task_picks_its_shard(tmp_path, make_staging, run_cli):
    staging = make_staging(width=60, height=60, merge='max')
    writes = make_predictions(tmp_path / 'preds', 30, width=60, height=60)
    results = []
    for task in (1, 2, 3):  # --array=1-3
        env = {'SLURM_ARRAY_TASK_ID': str(task), 'SLURM_ARRAY_TASK_COUNT': '3', 'SLURM_ARRAY_TASK_MIN': '1'}
        result = run_cli('-v', 'ingest-npy-dir', staging, tmp_path / 'preds', env=env)
        assert result.exit_code == 0, result.output
        assert f'shard {task - 1}/3' in result.stdout
        assert f'SLURM array task: staging shard {task - 1}/3' in result.stderr
        results.append(result)
    staged = [int(r.stdout.split(': ')[1].split(' staged')[0]) for r in results]
    assert sum(staged) == len(writes)
    numpy.testing.assert_array_equal(canvas_of(staging), reference_of(writes, width=60, height=60, merge='max'))


def test_shard_all_overrides_the_slurm_environment(tmp_path, make_staging, run_cli):
    staging = make_staging(width=60, height=60)
    writes = make_predictions(tmp_path / 'preds', 10, width=60, height=60)
    env = {'SLURM_ARRAY_TASK_ID': '0', 'SLURM_ARRAY_TASK_COUNT': '4'}
    result = run_cli('ingest-npy-dir', staging, tmp_path / 'preds', '--shard', 'all', env=env)
    assert result.exit_code == 0 and f': {len(writes)} staged' in result.stdout
    assert 'shard ' not in result.stdout.split(': ', 1)[1]


def test_array_tasks_as_concurrent_processes(tmp_path, make_staging):
    """The documented SLURM recipe, as real processes running at once."""
    staging = make_staging(width=120, height=100, merge='mean')
    writes = make_predictions(tmp_path / 'preds', 40, width=120, height=100, seed=9)
    base_env = {k: v for k, v in os.environ.items() if k not in SLURM_VARIABLES}
    tasks = [
        subprocess.Popen(
            [sys.executable, '-m', 'tifwriter_cli', 'ingest-npy-dir', str(staging), str(tmp_path / 'preds')],
            env=dict(base_env, SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_TASK_COUNT='4', SLURM_ARRAY_TASK_MIN='0'),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for task in range(4)
    ]
    for task in tasks:
        out, err = task.communicate(timeout=120)
        assert task.returncode == 0, err
        assert '0 failed' in out
    expected = reference_of(writes, width=120, height=100, merge='mean')
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_sigterm_exits_143_keeping_what_was_staged(tmp_path, make_staging, run_cli, monkeypatch):
    import signal

    from tifwriter_cli.ingest import directory as ingest

    staging = make_staging(width=60, height=60)
    make_predictions(tmp_path / 'preds', 8, width=60, height=60)
    original = ingest.stage_file
    calls = []

    def stage_then_terminate(*args, **kwargs):
        calls.append(file_key(args[1]))
        outcome = original(*args, **kwargs)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler's time limit would
        return outcome

    monkeypatch.setattr(ingest, 'stage_file', stage_then_terminate)
    result = run_cli('ingest-npy-dir', staging, tmp_path / 'preds')
    assert result.exit_code == 143 and 'Traceback' not in result.output
    assert result.stderr.splitlines()[-1].startswith('tifwriter: error: terminated (SIGTERM)')
    assert ': 2 staged, 0 already staged, 0 failed' in result.stdout
    assert 'interrupted before the end' in result.stdout
    with tw.read_staging(staging) as snapshot:
        assert {source[0] for source in snapshot.sources} == set(calls)
