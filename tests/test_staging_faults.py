"""The staging unit under faults: full disks, damaged files, absurd inputs (issue 14).

Every failure here must end the same way: one ``tifwriter: error:`` line,
a non-zero exit, no traceback, nothing published lost, no temp file left.
Commands that once crashed (segfaults) run in a subprocess, so a regression
fails the test instead of killing pytest.
"""

from __future__ import annotations

import contextlib
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import tifwriter_cli as tw

ROOT = Path(__file__).resolve().parent.parent


def run_tifwriter(*args, preexec_fn=None, timeout=120, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'tifwriter_cli', *map(str, args)],
        capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn,
        cwd=cwd, env={**os.environ, 'PYTHONPATH': str(ROOT)},
    )


def assert_one_error_line(result: subprocess.CompletedProcess, exit_code: int = 1) -> str:
    """Exit ``exit_code`` (never a signal), one error line on stderr, no traceback."""
    assert result.returncode == exit_code, (result.returncode, result.stderr[-2000:])
    assert 'Traceback' not in result.stderr and 'Exception ignored' not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith('tifwriter: error: '), lines[0]
    return lines[0]


def temp_files(staging: Path) -> list[Path]:
    return sorted(staging.with_name(staging.name + '.fragments').glob('.tmp-*'))


def noise(side: int = 512, seed: int = 0) -> numpy.ndarray:
    return numpy.random.default_rng(seed).integers(0, 255, (side, side), dtype=numpy.uint8)


# -- full disks -------------------------------------------------------------

CAN_MOUNT = os.geteuid() == 0


@contextlib.contextmanager
def small_filesystem(directory: Path, megabytes: int = 20):
    """A tmpfs of ``megabytes`` at ``directory`` (root only), unmounted after."""
    directory.mkdir()
    subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={megabytes}m', 'tmpfs', str(directory)], check=True)
    try:
        yield directory
    finally:
        subprocess.run(['umount', '-l', str(directory)], check=False)


def fill_disk(directory: Path, leave_bytes: int) -> Path:
    """Fill the filesystem of ``directory`` but ``leave_bytes``."""
    filler = directory / 'filler'
    st = os.statvfs(directory)
    free = st.f_bavail * st.f_frsize
    with open(filler, 'wb') as fh:
        fh.truncate(0)
        block = b'\0' * (1 << 20)
        remaining = free - leave_bytes
        while remaining > 0:
            n = min(len(block), remaining)
            fh.write(block[:n])
            remaining -= n
    return filler


@pytest.fixture
def full_disk(tmp_path):
    """(staging path, published canvas) on a nearly full disk: a 20 MB tmpfs
    filled to 172 KB when running as root, else a 100 KB file size limit."""
    if CAN_MOUNT:
        with small_filesystem(tmp_path / 'disk') as disk:
            staging = disk / 's.h5'
            tw.create_staging(staging, tw.CanvasSpec(width=2048, height=2048))
            with tw.open_staging(staging) as writer:
                writer.write(0, 0, noise(256, seed=1))
            numpy.save(disk / 'patch_512_0.npy', noise())
            fill_disk(disk, 172 * 1024)
            yield staging, None, 'no space left on device'
    else:
        staging = tmp_path / 's.h5'
        tw.create_staging(staging, tw.CanvasSpec(width=2048, height=2048))
        with tw.open_staging(staging) as writer:
            writer.write(0, 0, noise(256, seed=1))
        numpy.save(tmp_path / 'patch_512_0.npy', noise())

        def limit():
            import signal

            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

        yield staging, limit, 'file too large'


def expected_first_patch(staging: Path) -> None:
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.fragment_paths) == 1
        numpy.testing.assert_array_equal(snapshot.read_region(0, 0, 256, 256)[:, :, 0], noise(256, seed=1))
        assert not snapshot.read_region(512, 0, 512, 512).any()


def test_full_disk_write_patch_one_line_temp_removed(full_disk):
    staging, limit, reason = full_disk
    result = run_tifwriter('write-patch', staging, staging.parent / 'patch_512_0.npy', '--x', 512, '--y', 0, preexec_fn=limit)
    line = assert_one_error_line(result)
    assert reason in line and str(staging) in line, line
    assert temp_files(staging) == []
    expected_first_patch(staging)


def test_full_disk_ingest_one_line_then_rerun_after_freeing(full_disk):
    staging, limit, reason = full_disk
    result = run_tifwriter('ingest-npy-dir', staging, staging.parent, preexec_fn=limit)
    line = assert_one_error_line(result)
    assert reason in line, line
    assert temp_files(staging) == []
    expected_first_patch(staging)
    # Space freed: the same command stages it (nothing was recorded as staged).
    with contextlib.suppress(FileNotFoundError):
        (staging.parent / 'filler').unlink()
    result = run_tifwriter('ingest-npy-dir', staging, staging.parent)
    assert result.returncode == 0, result.stderr
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_region(512, 0, 512, 512)[:, :, 0], noise())


API_SCRIPT = '''
import sys, numpy
import tifwriter_cli as tw
from tifwriter_cli.errors import StagingWriteError
writer = tw.open_staging(sys.argv[1])
patch = numpy.random.default_rng(0).integers(0, 255, (512, 512), dtype=numpy.uint8)
try:
    writer.write(512, 0, patch)
    writer.flush()
except StagingWriteError as exc:
    print('raised', type(exc).__name__, exc.errno, isinstance(exc, OSError))
writer.close()
print('closed')
'''


def test_full_disk_api_raises_from_write_or_flush(full_disk):
    staging, limit, _ = full_disk
    result = subprocess.run(
        [sys.executable, '-c', API_SCRIPT, str(staging)], capture_output=True, text=True,
        preexec_fn=limit, timeout=120, env={**os.environ, 'PYTHONPATH': str(ROOT)},
    )
    assert result.returncode == 0, result.stderr
    assert 'Exception ignored' not in result.stderr and 'Traceback' not in result.stderr, result.stderr
    assert result.stdout.split('\n')[0].startswith('raised StagingWriteError'), result.stdout
    assert result.stdout.split()[-1] == 'closed'
    assert 'True' in result.stdout
    assert temp_files(staging) == []
    expected_first_patch(staging)


@pytest.mark.skipif(not CAN_MOUNT, reason='needs root to mount a tmpfs (the full-disk case of init)')
def test_full_disk_init_one_line_nothing_left(tmp_path):
    with small_filesystem(tmp_path / 'disk', megabytes=1) as disk:
        fill_disk(disk, 0)
        result = run_tifwriter('init', disk / 'new.h5', '--width', 100, '--height', 100)
        assert 'no space left on device' in assert_one_error_line(result)
        assert sorted(p.name for p in disk.iterdir()) == ['filler']
