"""Smoke test of the benchmark suite: it runs end to end at --scale small.

No timing is asserted (this machine is not a benchmark machine); what is
proven: every step ran and succeeded, the ratio table and the targets were
printed, and the JSON/markdown results agree with what ran. libvips is the
``bench`` extra, not a test dependency: without pyvips the suite must say
so and still pass.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO

SCRIPT = REPO / 'benchmarks' / 'run_benchmarks.py'


def _has_pyvips() -> bool:
    probe = subprocess.run([sys.executable, '-c', 'import pyvips'], capture_output=True)
    return probe.returncode == 0


@pytest.fixture(scope='module')
def small_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp('bench')
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT), '--scale', 'small', '--out', str(out),
            '--cache', str(out / 'cache'), '--startup-runs', '3',
        ],
        capture_output=True,
        text=True,
        cwd=str(out),
        env=dict(os.environ),
        timeout=300,
    )
    return completed, out


@pytest.mark.slow
def test_small_run_succeeds_and_prints_the_ratio_table(small_run) -> None:
    completed, out = small_run
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    stdout = completed.stdout
    assert '\nRatios\n' in stdout and '\nTargets\n' in stdout
    for line in (
        'finalize / libvips (wall)',
        'finalize / codec floor (wall)',
        'ingest / np.save (throughput)',
        'finalize / linear from mask (wall per written pixel)',
        'ragged LZW: finalize wall <= 1.3 x codec floor of its mixed tiles',
        'mean8: finalize under mean <= 1.3 x overwrite (wall)',
        'sparse: finalize wall <= 1.1 x the same data on its own canvas',
        'fragments: finalize wall <= 1.15 x one fragment',
        'tifwriter write-patch: median wall incl. start-up',
    ):
        assert line in stdout
    if not _has_pyvips():
        assert 'libvips: not installed (pip install .[bench])' in stdout


@pytest.mark.slow
def test_small_run_results_files_match_the_steps(small_run) -> None:
    completed, out = small_run
    assert completed.returncode == 0
    results = json.loads((out / 'results.json').read_text())
    steps = {(s['case'], s['step']): s for s in results['steps']}
    expected = [
        (case, step)
        for case in ('mask', 'rgb', 'prob')
        for step in ('np.save', 'ingest', 'api', 'finalize', 'floor')
    ] + [('scale', 'stage (api)'), ('scale', 'finalize')] + [
        # The inputs of the second generator and the work-following cases.
        (case, step) for case in ('ragged', 'speckle', 'many') for step in ('ingest', 'finalize', 'floor')
    ] + [
        (case, f'{step} ({merge})') for case in ('mean32', 'mean8')
        for step in ('stage', 'finalize') for merge in ('overwrite', 'mean')
    ] + [('sparse', 'stage (ingest)'), ('sparse', 'finalize')] + [
        ('fragments', f'{step} ({count})') for step in ('stage', 'finalize') for count in (1, 16)
    ]
    for key in expected:
        step = steps[key]
        assert step['process']['returncode'] == 0, step
        assert step['wall_s'] > 0 and step['peak_anon_mib'] > 0
    # The fragments case really staged 1 and many fragment files.
    assert steps[('fragments', 'stage (1)')]['note'] == '1 fragment files'
    assert steps[('fragments', 'stage (16)')]['note'] == '16 fragment files'
    # The codec floor encoded exactly our TIFF's tile layout.
    for case in ('mask', 'rgb', 'prob', 'ragged'):
        assert steps[(case, 'floor')]['process']['reported']['layout_from'] == 'tifwriter output'
    libvips = steps[('mask', 'libvips')]
    assert ('skipped' in libvips) == (not _has_pyvips())
    # ASAP's writer peer runs wherever ASAP was built (.ci/run builds it).
    from tests.helpers.readers import asap_unavailable

    for case in ('mask', 'rgb', 'prob'):
        asap = steps[(case, 'asap')]
        assert ('skipped' in asap) == (asap_unavailable() is not None), asap
        if 'skipped' not in asap:
            assert asap['process']['returncode'] == 0, asap
    # Every target was evaluated (none left n/a) once its inputs exist.
    statuses = {t['target']: t['status'] for t in results['targets']}
    expected_na = {t for t in statuses if 'libvips' in t} if not _has_pyvips() else set()
    for target, status in statuses.items():
        assert status in (('n/a',) if target in expected_na else ('PASS', 'FAIL')), (target, status)
    markdown = (out / 'results.md').read_text()
    assert '## Targets' in markdown and 'ingest-npy-dir' in markdown
    # Scratch space is removed without --keep.
    assert not (out / 'work').exists()


def test_without_pyvips_the_libvips_peer_is_skipped_with_a_hint(tmp_path: Path) -> None:
    # A pyvips that fails to import, first on the path: as on a machine
    # without the bench extra.
    stub = tmp_path / 'stub'
    stub.mkdir()
    (stub / 'pyvips.py').write_text("raise ImportError('no libvips here')\n")
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(stub), env.get('PYTHONPATH')]))
    out = tmp_path / 'out'
    completed = subprocess.run(
        [
            sys.executable, str(SCRIPT), '--scale', 'small', '--out', str(out),
            '--cache', str(tmp_path / 'cache'), '--cases', 'mask', '--peers', 'libvips',
            '--startup-runs', '1',
        ],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-4000:]
    assert 'libvips: not installed (pip install .[bench])' in completed.stdout
    results = json.loads((out / 'results.json').read_text())
    libvips = [s for s in results['steps'] if s['step'] == 'libvips']
    assert len(libvips) == 1 and 'skipped' in libvips[0] and 'process' not in libvips[0]


# -- the sampler -----------------------------------------------------------
sys.path.insert(0, str(REPO / 'benchmarks'))
import _measure  # noqa: E402

MiB = 1 << 20


def test_peak_anon_counts_a_childs_grandchildren_and_their_cpu() -> None:
    # The child allocates 64 MiB and starts a grandchild that allocates
    # 128 MiB and burns CPU; both hold their memory at the same time.
    grandchild = (
        'import time, numpy; a = numpy.ones(128 << 20, numpy.uint8); '
        't = time.process_time()\n'
        'while time.process_time() - t < 0.3: pass\n'
        'time.sleep(0.3)'
    )
    child = (
        'import subprocess, sys, numpy; a = numpy.ones(64 << 20, numpy.uint8); '
        f'subprocess.run([sys.executable, "-c", {grandchild!r}], check=True)'
    )
    measured = _measure.run_measured([sys.executable, '-c', child])
    assert measured.ok, measured.stderr
    assert measured.peak_anon_bytes >= 192 * MiB
    assert measured.peak_processes == 2
    assert measured.cpu_s >= 0.3  # the grandchild's busy loop is included


def test_peak_anon_ignores_the_page_cache_of_a_memmap(tmp_path: Path) -> None:
    import numpy

    path = tmp_path / 'big.npy'
    numpy.lib.format.open_memmap(path, mode='w+', dtype=numpy.uint8, shape=(256 << 20,))[:] = 7
    reader = (
        'import numpy, time, sys; a = numpy.load(sys.argv[1], mmap_mode="r"); '
        'assert int(a[::4096].sum()) == 7 * (a.size // 4096); s = int(a.sum(dtype=numpy.uint64)); '
        'time.sleep(0.2); print("BENCH_RESULT {\\"total\\": %d}" % s)'
    )
    measured = _measure.run_measured([sys.executable, '-c', reader, str(path)])
    assert measured.ok, measured.stderr
    assert measured.reported == {'total': 7 * (256 << 20)}
    # All 256 MiB were mapped and read (RSS would count them), yet the
    # process's own memory is just the interpreter and numpy.
    assert measured.peak_anon_bytes < 100 * MiB


def test_a_failing_step_reports_its_exit_code_and_stderr() -> None:
    measured = _measure.run_measured([sys.executable, '-c', 'import sys; sys.exit("boom")'])
    assert measured.returncode == 1 and not measured.ok
    assert 'boom' in measured.stderr
