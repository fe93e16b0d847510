"""The staging unit under faults: full disks, damaged files, absurd inputs (issue 14).

Every failure here must end the same way: one ``tifwriter: error:`` line,
a non-zero exit, no traceback, nothing published lost, no temp file left.
Commands that once crashed (segfaults) run in a subprocess, so a regression
fails the test instead of killing pytest.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.staging.layout import READABLE_FORMAT_VERSIONS, fragments_dir

from tests.helpers import REPO

#: A format version no tifwriter wrote (this one reads READABLE_FORMAT_VERSIONS).
UNKNOWN_VERSION = max(READABLE_FORMAT_VERSIONS) + 1


def run_tifwriter(*args, preexec_fn=None, timeout=120, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, '-m', 'tifwriter_cli', *map(str, args)],
        capture_output=True, text=True, timeout=timeout, check=False, preexec_fn=preexec_fn,
        cwd=cwd, env={**os.environ, 'PYTHONPATH': str(REPO)},
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
    return sorted(fragments_dir(staging).glob('.tmp-*'))


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
        [sys.executable, '-c', API_SCRIPT, str(staging)], capture_output=True, text=True, check=False,
        preexec_fn=limit, timeout=120, env={**os.environ, 'PYTHONPATH': str(REPO)},
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


# -- things that are not patch files (items 3, 12) ----------------------------


def test_fifo_to_write_patch_fails_at_once(make_staging, tmp_path):
    staging = make_staging()
    fifo = tmp_path / 'patch.npy'
    os.mkfifo(fifo)
    result = run_tifwriter('write-patch', staging, fifo, '--x', 0, '--y', 0, timeout=60)
    line = assert_one_error_line(result)
    assert 'FIFO' in line and str(fifo) in line, line
    assert temp_files(staging) == []
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 0


def test_ingest_names_what_is_not_a_patch_file(make_staging, tmp_path, run_cli):
    staging = make_staging()
    patches = tmp_path / 'patches'
    patches.mkdir()
    numpy.save(patches / 'ok_0_0.npy', numpy.full((4, 4), 7, numpy.uint8))
    (patches / 'dangling_10_0.npy').symlink_to(patches / 'missing.npy')
    (patches / 'loop_20_0.npy').symlink_to(patches / 'loop_20_0.npy')
    os.mkfifo(patches / 'fifo_30_0.npy')
    (patches / 'dir_40_0.npy').mkdir()
    result = run_cli('ingest-npy-dir', staging, patches, '--on-error', 'skip', '--json')
    assert result.exit_code == 1, result.output
    import json

    report = json.loads(result.stdout)
    failed = {f['path']: f['error'] for f in report['failures']}
    assert sorted(failed) == ['dangling_10_0.npy', 'dir_40_0.npy', 'fifo_30_0.npy', 'loop_20_0.npy']
    assert 'FIFO' in failed['fifo_30_0.npy'] and 'directory' in failed['dir_40_0.npy']
    assert report['staged'] == 1
    # Each failure is one error line naming its file; no traceback.
    errors = [line for line in result.stderr.splitlines() if line.startswith('tifwriter: error:')]
    assert len(errors) == 4 and 'Traceback' not in result.stderr
    with tw.read_staging(staging) as snapshot:
        assert snapshot.read_region(0, 0, 4, 4).min() == 7


# -- sequence numbers (item 4) -----------------------------------------------


def test_sequence_number_at_its_limit_refused_not_looping(make_staging, tmp_path):
    staging = make_staging()
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, noise(32))
    fragments = fragments_dir(staging)
    (fragments / '9999999999.h5').write_bytes((fragments / '0000000001.h5').read_bytes())
    numpy.save(tmp_path / 'p.npy', noise(32, seed=5))
    for _ in range(2):  # the second publish once looped forever
        result = run_tifwriter('write-patch', staging, tmp_path / 'p.npy', '--x', 64, '--y', 0, timeout=60)
        line = assert_one_error_line(result)
        assert '9999999999' in line and str(fragments) in line, line
        assert temp_files(staging) == []
    assert sorted(p.name for p in fragments.iterdir()) == ['0000000001.h5', '9999999999.h5']
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_region(0, 0, 32, 32)[:, :, 0], noise(32))


# -- a unit replaced under a writer or a reader (items 5, 6) -------------------


def test_stale_writer_refused_after_init_overwrite(make_staging):
    from tifwriter_cli.errors import StagingReplacedError

    staging = make_staging()
    spec = tw.CanvasSpec(width=300, height=200)
    before = tw.open_staging(staging)          # opened, nothing written yet
    during = tw.open_staging(staging)
    during.write(0, 0, noise(16, seed=2))      # holds an unpublished fragment
    tw.create_staging(staging, spec, overwrite=True)
    with tw.open_staging(staging) as fresh:
        fresh.write(100, 0, noise(16, seed=3))
    with pytest.raises(StagingReplacedError, match='replaced'):
        before.write(0, 0, noise(16, seed=4))
    before.abort()
    with pytest.raises(StagingReplacedError, match='replaced'):
        during.close()
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.fragment_paths) == 1 and not snapshot.skipped_fragments
        canvas = snapshot.read_canvas()[:, :, 0]
    numpy.testing.assert_array_equal(canvas[:16, 100:116], noise(16, seed=3))
    assert not canvas[:16, :16].any()
    assert temp_files(staging) == []


def test_reader_skips_a_foreign_fragment_with_a_warning(make_staging, run_cli, caplog):
    staging, other = make_staging(), make_staging()
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, noise(16, seed=1))
    with tw.open_staging(other) as writer:
        writer.write(0, 0, noise(16, seed=9))
    fragments = fragments_dir(staging)
    foreign = fragments / '0000000002.h5'
    foreign.write_bytes((fragments_dir(other) / '0000000001.h5').read_bytes())
    result = run_cli('info', staging)
    assert result.exit_code == 0, result.output
    assert f'fragment {foreign} is skipped: it belongs to another staging file' in result.stderr
    assert '1 of another staging unit skipped' in result.stdout  # counted, not only logged
    as_json = run_cli('info', staging, '--json')
    assert json.loads(as_json.stdout)['fragments']['foreign'] == [str(foreign)]
    with tw.read_staging(staging) as snapshot:
        assert snapshot.skipped_fragments == [foreign]
        numpy.testing.assert_array_equal(snapshot.read_region(0, 0, 16, 16)[:, :, 0], noise(16, seed=1))


def test_snapshot_never_mixes_in_files_that_took_its_fragments_names(make_staging, monkeypatch):
    from tifwriter_cli.errors import StagingChangedError
    from tifwriter_cli.staging import fragment_files

    monkeypatch.setattr(fragment_files, 'MAX_HELD_DESCRIPTORS', 1)  # force reopening by name
    staging = make_staging()
    spec = tw.CanvasSpec(width=300, height=200)
    for k in range(3):
        with tw.open_staging(staging) as writer:
            writer.write(50 * k, 0, noise(40, seed=k))
    with tw.read_staging(staging) as snapshot:
        tw.create_staging(staging, spec, overwrite=True)
        for k in range(3):
            with tw.open_staging(staging) as writer:
                writer.write(50 * k, 0, noise(40, seed=10 + k))
        with pytest.raises(StagingChangedError, match='was replaced while'):
            snapshot.read_canvas()


def test_snapshot_over_many_fragments_reads_what_it_took_while_they_are_compacted(make_staging):
    """More fragments than MAX_OPEN_FRAGMENTS, one holding a patch larger than
    one chunk (read through h5py): compacted (deleted) and then the whole unit
    replaced under an open snapshot, which still reads exactly what it took."""
    from tifwriter_cli.housekeeping import compact
    from tifwriter_cli.staging import fragment_files

    count = fragment_files.MAX_OPEN_FRAGMENTS + 8
    side, step = 24, 40
    staging = make_staging(width=1200, height=1200)
    expected = numpy.zeros((1200, 1200), numpy.uint8)
    big = noise(1100, seed=99)  # > 1024 px: several chunks
    with tw.open_staging(staging) as writer:
        writer.write(30, 30, big)
    expected[30:1130, 30:1130] = big
    for k in range(count):
        x, y = step * (k % 29), step * (k // 29)
        with tw.open_staging(staging) as writer:
            writer.write(x, y, noise(side, seed=k))  # over the big patch: merge order counts
        expected[y : y + side, x : x + side] = noise(side, seed=k)
    fragments = fragments_dir(staging)
    names = sorted(fragments.glob('*.h5'))
    assert len(names) == count + 1
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_region(0, 0, 600, 600)[:, :, 0], expected[:600, :600])
        compact(staging)  # publishes the fold, then deletes every fragment the snapshot took
        assert not any(name.exists() for name in names)
        numpy.testing.assert_array_equal(snapshot.read_canvas()[:, :, 0], expected)
        tw.create_staging(staging, tw.CanvasSpec(width=1200, height=1200), overwrite=True)
        for k in range(3):
            with tw.open_staging(staging) as writer:
                writer.write(0, 0, noise(64, seed=50 + k))  # takes the names 1, 2, 3
        numpy.testing.assert_array_equal(snapshot.read_canvas()[:, :, 0], expected)
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_region(0, 0, 64, 64)[:, :, 0], noise(64, seed=52))


# -- damaged fragments (items 7, 9, 13) ---------------------------------------


@pytest.fixture
def one_fragment(make_staging, tmp_path):
    """A staging unit with one fragment: patch 0 textured 64x64 at (0, 0),
    patch 1 uniform at (100, 0), both with a source record; and its path."""
    staging = make_staging(width=256, height=128)
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.tile(numpy.arange(64, dtype=numpy.uint8), (64, 1)), source=('a.npy', 1, 1))
        writer.write(100, 0, numpy.full((32, 32), 9, numpy.uint8), source=('b.npy', 1, 1))
    return staging, fragments_dir(staging) / '0000000001.h5'


def _damage(fragment: Path, how: str) -> None:
    import h5py

    from tifwriter_cli.staging.fragment import read_fragment_tables
    from tifwriter_cli.staging.integrity import tables_checksum

    with h5py.File(fragment, 'r+') as h5:
        index = h5['index'][()]
        if how == 'smaller dataset':
            del h5['patches/0']
            h5['patches'].create_dataset('0', data=numpy.zeros((32, 64, 1), numpy.uint8))
        elif how == 'float64 dataset':
            del h5['patches/0']
            h5['patches'].create_dataset('0', data=numpy.zeros((64, 64, 1), numpy.float64))
        elif how == 'missing dataset':
            del h5['patches/0']
        elif how == 'missing source record':
            index['source'][1] = 5
        elif how == 'huge width':
            index['width'][0] = 10**9
        elif how == 'value beyond dtype':
            index['value'][1] = 1e10
        elif how == 'no index':
            del h5['index']
        elif how == 'fragment version':
            h5.attrs['format_version'] = UNKNOWN_VERSION
        if how in ('missing source record', 'huge width', 'value beyond dtype'):
            # Rows that are wrong yet consistent with their checksum (a buggy
            # or hand-made writer): validation, not the checksum, must refuse them.
            del h5['index']
            h5['index'] = index
            h5.attrs['tables_crc32'] = tables_checksum(index, read_fragment_tables(h5)[1])


DAMAGES = {
    'smaller dataset': 'patch 0 holds (32, 64, 1) pixels',
    'float64 dataset': 'patch 0 holds float64 values',
    'missing dataset': 'pixels of patch 0',
    'missing source record': 'source record 5',
    'huge width': 'outside the 256 x 128 canvas',
    'value beyond dtype': 'uniform value',
    'no index': 'its tables are incomplete',
    'fragment version': f'fragment format version {UNKNOWN_VERSION}',
}


@pytest.mark.parametrize('how', sorted(DAMAGES))
def test_damaged_fragment_refused_naming_it(one_fragment, how, run_cli, tmp_path):
    from tests.helpers.cli_checks import assert_clean_failure

    staging, fragment = one_fragment
    _damage(fragment, how)
    out = tmp_path / 'out.tif'
    result = run_cli('finalize', staging, out)
    line = assert_clean_failure(result, 1)
    assert str(fragment) in line and DAMAGES[how] in line, line
    assert not out.exists() and not list(tmp_path.glob('.out.tif*'))


def test_damaged_blosc_chunk_named_by_finalize_and_preview(make_staging, run_cli, tmp_path):
    import h5py

    from tests.helpers.cli_checks import assert_clean_failure

    staging = make_staging(width=256, height=256)
    labels = numpy.zeros((128, 128), numpy.uint8)
    labels[20:90, 10:100] = 3
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, labels)
    fragment = fragments_dir(staging) / '0000000001.h5'
    with h5py.File(fragment, 'r') as h5:
        info = h5['patches/0'].id.get_chunk_info(0)
        assert h5['index']['codec'][0] == 1  # blosc-lz4
    data = bytearray(fragment.read_bytes())
    for k in range(16, info.size):
        data[info.byte_offset + k] ^= 0x5A
    fragment.write_bytes(bytes(data))
    for args in (('finalize', staging, tmp_path / 'o.tif'), ('preview', staging, '-o', tmp_path / 'o.png')):
        line = assert_clean_failure(run_cli(*args), 1)
        assert f'fragment {fragment} is damaged: patch 0' in line, line
    assert not list(tmp_path.glob('o.*')) and not list(tmp_path.glob('.o.*'))


@pytest.mark.parametrize('value', [1.5, 'abc', numpy.array([1, 2]), UNKNOWN_VERSION, None])
def test_staging_format_version_checked_strictly(make_staging, run_cli, value):
    import h5py

    from tests.helpers.cli_checks import assert_clean_failure

    staging = make_staging()
    with h5py.File(staging, 'r+') as h5:
        if value is None:
            del h5.attrs['format_version']
        else:
            h5.attrs['format_version'] = value
    line = assert_clean_failure(run_cli('info', staging), 1)
    assert 'staging format version' in line and 'reads versions 1, 2' in line, line


def test_bit_flips_in_a_staging_header_never_crash(make_staging, tmp_path):
    import random

    staging = make_staging()
    original = staging.read_bytes()
    reference = run_tifwriter('info', staging, '--json')
    assert reference.returncode == 0
    rng = random.Random(14)
    outcomes = {'refused': 0, 'unchanged': 0}
    for _ in range(12):
        data = bytearray(original)
        # Flip bits where the file holds something (the rest is padding).
        position = rng.choice([i for i, b in enumerate(original) if b])
        data[position] ^= 1 << rng.randrange(8)
        staging.write_bytes(bytes(data))
        result = run_tifwriter('info', staging, '--json')
        if result.returncode == 0:
            assert result.stdout == reference.stdout  # never a silently different canvas
            outcomes['unchanged'] += 1
        else:
            assert 'damaged' in assert_one_error_line(result) or 'not a tifwriter' in result.stderr
            outcomes['refused'] += 1
    assert outcomes['refused'] > 0, outcomes


# -- signals (item 14) ----------------------------------------------------------


def test_ctrl_c_swallowed_by_a_cleanup_callback_still_ends_the_run(make_staging, tmp_path, run_cli, monkeypatch):
    """A KeyboardInterrupt raised inside a weakref callback (h5py cleanup) is
    lost by Python ("Exception ignored"); the run must still exit 130."""
    import signal
    import weakref

    from tifwriter_cli.ingest import directory as ingest

    staging = make_staging()
    patches = tmp_path / 'patches'
    patches.mkdir()
    for k in range(3):
        numpy.save(patches / f'p_{k * 10}_0.npy', numpy.full((4, 4), k + 1, numpy.uint8))
    original = ingest.stage_file

    class Handle:
        pass

    def stage_then_interrupt_inside_a_callback(*args, **kwargs):
        outcome = original(*args, **kwargs)
        handle = Handle()
        weakref.finalize(handle, signal.raise_signal, signal.SIGINT)
        del handle  # the callback runs now; the handler raises inside it
        return outcome

    monkeypatch.setattr(ingest, 'stage_file', stage_then_interrupt_inside_a_callback)
    result = run_cli('ingest-npy-dir', staging, patches)
    assert result.exit_code == 130, result.output
    assert 'tifwriter: interrupted' in result.stderr
    assert 'Exception ignored' not in result.stderr and 'Traceback' not in result.stderr


STARTUP_SCRIPT = '''
import os, signal, sys

class SignalWhileImportingClick:
    def find_spec(self, name, path=None, target=None):
        if name == 'click':
            os.kill(os.getpid(), signal.SIGINT)
        return None

sys.meta_path.insert(0, SignalWhileImportingClick())
sys.argv = ['tifwriter', 'info', 'nothing.h5']
from tifwriter_cli.cli.launch import main
main()
'''


def test_ctrl_c_during_start_up_one_line_no_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, '-c', STARTUP_SCRIPT], capture_output=True, text=True, timeout=60, check=False,
        cwd=tmp_path, env={**os.environ, 'PYTHONPATH': str(REPO)},
    )
    assert result.returncode == 130, result.stderr
    assert result.stderr == 'tifwriter: interrupted\n'


# -- a symlinked output (item 15) ------------------------------------------------


def test_overwrite_of_a_symlinked_output_replaces_the_link_not_its_target(make_staging, run_cli, tmp_path):
    """Decided (docs/troubleshooting.md): OUT is the name the user gave; with
    --overwrite the new file takes that name and the link's target is left
    as it was (never written through, never half-written)."""
    staging = make_staging(width=64, height=64)
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.full((64, 64), 5, numpy.uint8))
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    target = elsewhere / 'kept.tif'
    # A TIFF of tifwriter's own (--overwrite refuses to replace anything else).
    assert run_cli('finalize', staging, target).exit_code == 0
    kept = target.read_bytes()
    link = tmp_path / 'out.tif'
    link.symlink_to(target)
    refused = run_cli('finalize', staging, link)
    assert refused.exit_code == 1 and 'exists' in refused.stderr
    result = run_cli('finalize', staging, link, '--overwrite')
    assert result.exit_code == 0, result.output
    assert not link.is_symlink() and link.is_file()
    assert target.read_bytes() == kept
    import tifffile

    with tifffile.TiffFile(link) as tif:
        assert tif.pages[0].asarray().min() == 5


# -- absurd inputs (items 8, 10, 11) ------------------------------------------------


@pytest.mark.parametrize(
    ('options', 'expected'),
    [
        (('--spacing', '1e-10'), 'outside the 2.33e-06 to 10000 um/px'),
        (('--spacing', '1e-320'), 'outside the 2.33e-06 to 10000 um/px'),
        (('--spacing', '0.25', '--spacing-y', '1e5'), 'outside the 2.33e-06 to 10000 um/px'),
        (('--width', '1000000000', '--height', '1000000000'), 'larger than the 1.1e+12 px'),
        (('--width', '1048576', '--height', '1048576', '--tile-size', '16'), 'use a larger tile size'),
    ],
)
def test_init_refuses_what_the_tiff_cannot_carry(run_cli, tmp_path, options, expected):
    from tests.helpers.cli_checks import assert_clean_failure

    args = ['init', tmp_path / 's.h5', '--width', '100', '--height', '100', *options]
    line = assert_clean_failure(run_cli(*args), 2)
    assert expected in line, line
    assert list(tmp_path.iterdir()) == []


def test_extreme_spacings_inside_the_range_reach_the_tiff(make_staging, run_cli, tmp_path):
    import tifffile

    for spacing in (2.4e-6, 9999.0):
        staging = make_staging(width=64, height=64, spacing_x=spacing)
        out = tmp_path / f'{spacing}.tif'
        assert run_cli('finalize', staging, out).exit_code == 0
        with tifffile.TiffFile(out) as tif:
            numerator, denominator = tif.pages[0].tags['XResolution'].value
        assert abs(1e4 / (numerator / denominator) - spacing) / spacing < 1e-6


@pytest.mark.parametrize(
    ('values', 'canvas', 'convert', 'expected'),
    [
        (numpy.full((8, 8), 1e300), 'float32', 'scale', 'exceed the float32 range'),
        (numpy.full((8, 8), 1e300), 'float32', 'exact', 'exceed the float32 range'),
        (numpy.full((8, 8), numpy.nan), 'uint8', 'exact', 'only NaN'),
        (numpy.full((8, 8), numpy.nan), 'uint8', 'scale', 'cannot store NaN'),
    ],
)
def test_convert_refuses_overflow_and_nan_without_numpy_warnings(make_staging, run_cli, tmp_path, values, canvas, convert, expected):
    from tests.helpers.cli_checks import assert_clean_failure

    staging = make_staging(dtype=canvas)
    numpy.save(tmp_path / 'p.npy', values)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # a leaked numpy warning fails the test
        result = run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 0, '--y', 0, '--convert', convert)
    assert expected in assert_clean_failure(result, 1)
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 0


def test_convert_clip_of_huge_floats_into_float32_clips(make_staging, run_cli, tmp_path):
    staging = make_staging(dtype='float32')
    numpy.save(tmp_path / 'p.npy', numpy.array([[1e300, -1e300], [numpy.inf, 0.5]]))
    assert run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 0, '--y', 0, '--convert', 'clip').exit_code == 0
    with tw.read_staging(staging) as snapshot:
        got = snapshot.read_region(0, 0, 2, 2)[:, :, 0]
    largest = numpy.finfo(numpy.float32).max
    numpy.testing.assert_array_equal(got, numpy.array([[largest, -largest], [numpy.inf, 0.5]], numpy.float32))


def test_units_written_before_these_changes_are_still_read(tmp_path):
    """HDF5 1.8 format, variable-length string attributes, no codec column:
    what tifwriter wrote before (the checks accept it)."""
    import h5py
    import hdf5plugin

    staging = tmp_path / 'old.h5'
    spec = tw.CanvasSpec(width=64, height=64)
    with h5py.File(staging, 'w') as h5:
        h5.attrs.update({'format': 'tifwriter-staging', 'format_version': 1, 'uid': 'u1',
                         'created': 'then', 'tool': 'tifwriter 0.1'})
        canvas = h5.create_group('canvas')
        for key, value in spec.to_attrs().items():
            canvas.attrs[key] = value
    fragments = tmp_path / 'old.h5.fragments'
    fragments.mkdir()
    with h5py.File(fragments / '0000000001.h5', 'w') as h5:
        h5.attrs.update({'format': 'tifwriter-staging-fragment', 'format_version': 1, 'staging_uid': 'u1'})
        index = numpy.array(
            [(0, 0, 16, 16, 0, 0.0, -1), (16, 0, 8, 8, 1, 4.0, -1)],
            dtype=[('x', '<i8'), ('y', '<i8'), ('width', '<i8'), ('height', '<i8'),
                   ('uniform', 'u1'), ('value', '<f8'), ('source', '<i8')],
        )
        h5['index'] = index
        h5.create_group('patches').create_dataset(
            '0', data=noise(16)[:, :, None], chunks=(16, 16, 1), **hdf5plugin.Blosc(cname='lz4')
        )
        h5['sources'] = numpy.zeros(0, dtype=[('path', h5py.string_dtype()), ('size', '<i8'), ('mtime_ns', '<i8')])
    with tw.read_staging(staging) as snapshot:
        canvas = snapshot.read_canvas()[:, :, 0]
        assert snapshot.summary()['format_version'] == 1  # the unit's own, not this tifwriter's
    numpy.testing.assert_array_equal(canvas[:16, :16], noise(16))
    assert (canvas[:8, 16:24] == 4).all()
