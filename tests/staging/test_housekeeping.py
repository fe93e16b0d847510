"""unstage, gc, compact, verify: crash-safe beside running writers and readers.

Real processes: writers publishing as they go, compactions SIGKILLed at
random instants, gc beside live writers. Every end state is compared with a
numpy model of what was written (nothing lost, nothing doubled).
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.housekeeping import compact, gc
from tifwriter_cli.ingest.contribution import file_key
from tifwriter_cli.staging.layout import fragments_dir

from tests.helpers import REPO
from tests.helpers.cli_checks import assert_clean_failure
from tests.helpers.reference import ReferenceCanvas

SIDE = 8
PER_ROW = 40  # slots per row; MAX_PER_WRITER is a multiple
MAX_PER_WRITER = 240
WRITERS = 4
WIDTH, HEIGHT = SIDE * PER_ROW, SIDE * WRITERS * (MAX_PER_WRITER // PER_ROW)


def slot(writer: int, n: int) -> tuple[int, int]:
    return (n % PER_ROW) * SIDE, (writer * (MAX_PER_WRITER // PER_ROW) + n // PER_ROW) * SIDE


def patch(writer: int, n: int) -> numpy.ndarray:
    if n % 4 == 0:  # uniform patches store no pixels: both kinds are folded
        return numpy.full((SIDE, SIDE), 1 + (writer * 37 + n) % 250, numpy.uint8)
    return numpy.random.default_rng(writer * 1000 + n).integers(1, 255, (SIDE, SIDE), dtype=numpy.uint8)


WRITER = textwrap.dedent(
    """
    import os, sys, time
    import tifwriter_cli as tw
    from tests.staging.test_housekeeping import patch, slot, MAX_PER_WRITER
    path, writer, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    written = 0
    with tw.open_staging(path) as staging:
        while written < MAX_PER_WRITER and not os.path.exists(stop):
            staging.write(*slot(writer, written), patch(writer, written))
            written += 1
            if written % 3 == 0:
                staging.flush()
                time.sleep(0.15)
    # (the last ones are published at the end of the with block)
    print(written, flush=True)
    """
)


def model(counts: dict[int, int]) -> numpy.ndarray:
    reference = ReferenceCanvas(WIDTH, HEIGHT, merge='mean')
    for writer, count in counts.items():
        for n in range(count):
            reference.write(*slot(writer, n), patch(writer, n))
    return reference.result()


def check_snapshot(staging: Path, seen: list[int]) -> None:
    """A reader's view: no patch twice, each present patch exact, never fewer than before."""
    with tw.read_staging(staging) as snapshot:
        positions = [(int(p['x']), int(p['y'])) for p in snapshot.patches]
        assert len(positions) == len(set(positions)), 'a patch is doubled'
        assert len(positions) >= seen[-1], f'{len(positions)} patches after {seen[-1]}: lost'
        seen.append(len(positions))
        canvas = snapshot.read_canvas()
    for writer in range(WRITERS):
        for n in range(MAX_PER_WRITER):
            x, y = slot(writer, n)
            if (x, y) in positions:
                numpy.testing.assert_array_equal(canvas[y : y + SIDE, x : x + SIDE, 0], patch(writer, n))


COMPACTOR_SERVER = textwrap.dedent(
    """
    import os, sys
    import h5py, hdf5plugin, imagecodecs
    import tifwriter_cli.staging.merge, tifwriter_cli.staging.reader, tifwriter_cli.staging.fragment
    from tifwriter_cli.housekeeping import compact
    for line in sys.stdin:
        pid = os.fork()
        if pid == 0:
            try:
                compact(sys.argv[1])
            except BaseException:
                import traceback
                traceback.print_exc()
                os._exit(1)
            os._exit(0)
        print(pid, flush=True)
        print(os.waitpid(pid, 0)[1], flush=True)
    """
)


def published_names(staging: Path) -> set[str]:
    return {n for n in os.listdir(fragments_dir(staging)) if not n.startswith('.')}


def folds(staging: Path, names: set[str]) -> set[str]:
    """Which of ``names`` are compacted fragments (they carry merge_order)."""
    import h5py

    found = set()
    for name in names:
        try:
            with h5py.File(fragments_dir(staging) / name, 'r', locking=False) as h5:
                if 'merge_order' in h5.attrs:
                    found.add(name)
        except OSError:
            pass  # deleted meanwhile
    return found


def test_compact_killed_at_random_instants_beside_writers_and_a_reader(tmp_path, make_staging):
    staging = make_staging(width=WIDTH, height=HEIGHT, merge='mean')
    stop = tmp_path / 'stop'
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    writers = [
        subprocess.Popen([sys.executable, '-c', WRITER, str(staging), str(w), str(stop)],
                         stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        for w in range(WRITERS)
    ]
    reader_errors: list[BaseException] = []
    seen = [0]
    reading = threading.Event()

    def reader() -> None:
        while not reading.wait(0.05):
            try:
                check_snapshot(staging, seen)
            except BaseException as exc:  # reported in the main thread
                reader_errors.append(exc)
                return

    thread = threading.Thread(target=reader)
    thread.start()
    rng = random.Random(20)
    outcomes = {'killed before publishing': 0, 'killed after publishing': 0, 'finished': 0}
    # A server, everything imported once, forks one compactor per trial: the
    # kill instants are then spread over the compaction itself, not imports.
    server = subprocess.Popen([sys.executable, '-c', COMPACTOR_SERVER, str(staging)], env=env, cwd=REPO,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def compaction(kill_after: float | None) -> int:
        """Run one compaction, SIGKILLed after ``kill_after`` s; its wait status."""
        server.stdin.write('go\n')
        server.stdin.flush()
        pid = int(server.stdout.readline())
        if kill_after is not None:
            time.sleep(kill_after)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        return int(server.stdout.readline())

    try:
        time.sleep(0.5)  # some fragments to fold
        started = time.monotonic()
        assert compaction(None) == 0
        duration = time.monotonic() - started  # the kills spread over about one run
        for _ in range(20):
            before = published_names(staging)
            status = compaction(rng.uniform(0, 1.2 * duration))
            if os.WIFSIGNALED(status):
                published = folds(staging, published_names(staging) - before)
                outcomes['killed after publishing' if published else 'killed before publishing'] += 1
            else:
                assert os.WEXITSTATUS(status) == 0
                outcomes['finished'] += 1
        server.stdin.close()
        server.wait(timeout=60)
    finally:
        stop.touch()
        counts = {w: int(p.communicate(timeout=120)[0]) for w, p in enumerate(writers)}
        reading.set()
        thread.join()
    assert not reader_errors, reader_errors[0]
    print(outcomes, 'reader snapshots:', len(seen) - 1, 'patches:', sum(counts.values()))
    assert outcomes['killed before publishing'] >= 1, outcomes
    assert all(p.returncode == 0 for p in writers)
    # Tidy up (what killed compactions left), fold once more, then the end state.
    gc(staging, older_than=0)
    compact(staging)
    newest = max(int(n[:10]) for n in os.listdir(fragments_dir(staging)))
    assert sorted(os.listdir(fragments_dir(staging))) == [f'{newest:010d}.h5']
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == sum(counts.values())
        numpy.testing.assert_array_equal(snapshot.read_canvas(), model(counts))


def test_gc_beside_live_writers(tmp_path, make_staging):
    """gc removes a dead writer's temp fragment (same host: its process is
    gone; other host: no heartbeat) and stray temp outputs, never a live
    writer's; the live writers then publish everything."""
    staging = make_staging(width=WIDTH, height=HEIGHT, merge='mean')
    fragments = fragments_dir(staging)
    env = {**os.environ, 'PYTHONPATH': str(REPO)}
    # A writer SIGKILLed while it holds an unpublished temp fragment.
    holder = subprocess.Popen(
        [sys.executable, '-c', textwrap.dedent("""
            import sys, time, numpy, tifwriter_cli as tw
            w = tw.open_staging(sys.argv[1])
            w.write(0, 0, numpy.ones((8, 8), numpy.uint8))
            print('holding', flush=True)
            time.sleep(60)
        """), str(staging)], stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
    assert holder.stdout.readline().strip() == 'holding'
    holder.kill()
    holder.wait()
    dead_here = [p.name for p in fragments.iterdir() if p.name.startswith('.tmp-')]
    assert len(dead_here) == 1
    # A writer of another node that stopped beating long ago, one that beat just now.
    dead_there = fragments / '.tmp-othernode-4242-0123456789ab.h5'
    live_there = fragments / '.tmp-othernode-4243-0123456789ab.h5'
    for path in (dead_there, live_there):
        path.write_bytes(b'partial')
    old = time.time() - 3600
    os.utime(dead_there, (old, old))
    stray = staging.parent / '.out.tif.abc123.tmp'
    stray.write_bytes(b'half a tiff')
    os.utime(stray, (old, old))
    # Live writers, slowed down so gc surely runs while they hold temp fragments.
    # Each holds an unpublished temp fragment most of the time (50 patches a publish).
    slow = WRITER.replace('written % 3 == 0', 'written % 50 == 0').replace(
        'written += 1\n', 'written += 1\n        time.sleep(0.02)\n')
    stop = tmp_path / 'stop'
    writers = [
        subprocess.Popen([sys.executable, '-c', slow, str(staging), str(w), str(stop)],
                         stdout=subprocess.PIPE, text=True, env=env, cwd=REPO)
        for w in range(WRITERS)
    ]
    deadline = time.monotonic() + 60
    while sum(n.startswith('.tmp-') for n in os.listdir(fragments)) < 3 + 2:  # 2 live writers at least
        assert time.monotonic() < deadline
        time.sleep(0.02)
    report = gc(staging)
    assert sorted(report.removed_temp_fragments) == sorted([dead_here[0], dead_there.name])
    assert report.removed_temp_outputs == [stray.name]
    assert live_there.name in report.kept_live_temp_fragments
    time.sleep(0.3)
    stop.touch()
    counts = {w: int(p.communicate(timeout=120)[0]) for w, p in enumerate(writers)}
    assert all(p.returncode == 0 for p in writers)
    live_there.unlink()
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == sum(counts.values())
        numpy.testing.assert_array_equal(snapshot.read_canvas(), model(counts))


def test_unstage_source_then_finalize(tmp_path, make_staging, run_cli):
    import tifffile

    staging = make_staging(width=32, height=16, merge='mean')
    for run, value in (('run1', 10), ('run2', 30)):
        (tmp_path / run).mkdir()
        numpy.save(tmp_path / run / 't_0_0.npy', numpy.full((16, 16), value, numpy.uint8))
        numpy.save(tmp_path / run / 't_16_0.npy', numpy.full((16, 16), value + 1, numpy.uint8))
        assert run_cli('ingest-npy-dir', staging, tmp_path / run).exit_code == 0
    result = run_cli('unstage', staging, '--source', str(tmp_path / 'run1' / '*'))
    assert result.exit_code == 0 and 'withdrew 2 staged source(s)' in result.stdout
    assert run_cli('finalize', staging, tmp_path / 'o.tif').exit_code == 0
    expected = numpy.zeros((16, 32), numpy.uint8)
    expected[:, :16], expected[:, 16:] = 30, 31
    numpy.testing.assert_array_equal(tifffile.imread(tmp_path / 'o.tif'), expected)
    with tw.read_staging(staging) as snapshot:
        assert set(snapshot.contributions) == {file_key(tmp_path / 'run2' / n) for n in ('t_0_0.npy', 't_16_0.npy')}
    # Staged again afterwards, it counts again (run1 is new to the unit once more).
    again = run_cli('ingest-npy-dir', staging, tmp_path / 'run1')
    assert ': 2 staged' in again.stdout
    assert 'matches' in assert_clean_failure(run_cli('unstage', staging, '--source', '/nowhere/*'), 2)
    assert 'no published fragment 99' in assert_clean_failure(run_cli('unstage', staging, '--fragment', 99), 2)
    assert 'exactly one' in assert_clean_failure(run_cli('unstage', staging), 2)


def test_compact_keeps_merge_order_and_keys(tmp_path, make_staging, run_cli):
    """overwrite merge: a fragment published after a compaction's snapshot
    merges after the folded ones; keys still replace after folding."""
    staging = make_staging(width=8, height=4)
    with tw.open_staging(staging) as w:
        w.write(0, 0, numpy.full((4, 8), 1, numpy.uint8), key='a')
    with tw.open_staging(staging) as w:
        w.write(0, 0, numpy.full((4, 4), 2, numpy.uint8))
    assert run_cli('compact', staging).stdout.strip().endswith('folded 2 fragments into one (2 patch(es) kept)')
    with tw.open_staging(staging) as w:
        w.write(4, 0, numpy.full((4, 4), 3, numpy.uint8))
        w.write(0, 0, numpy.full((4, 2), 5, numpy.uint8), key='a')  # replaces a
    with tw.read_staging(staging) as snapshot:
        assert snapshot.read_canvas()[0, :, 0].tolist() == [5, 5, 2, 2, 3, 3, 3, 3]
    assert run_cli('compact', staging).exit_code == 0
    with tw.read_staging(staging) as snapshot:
        assert snapshot.read_canvas()[0, :, 0].tolist() == [5, 5, 2, 2, 3, 3, 3, 3]
        assert len(snapshot.fragment_paths) == 1 and set(snapshot.contributions) == {'a'}


def test_compact_killed_between_publishing_and_deleting(make_staging, monkeypatch):
    """The narrowest window: the fold is published, some folded fragments
    are not yet deleted. Readers see each patch once; gc deletes the rest."""
    staging = make_staging(width=WIDTH, height=HEIGHT, merge='mean')
    counts = {0: 9, 1: 7}
    for writer, count in counts.items():
        for n in range(count):
            with tw.open_staging(staging) as w:
                w.write(*slot(writer, n), patch(writer, n))
    real_unlink = Path.unlink
    calls = []

    def dies_after_one(self, *args, **kwargs):
        if calls:
            raise KeyboardInterrupt  # as a SIGKILL would stop it, mid-way
        calls.append(self)
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(Path, 'unlink', dies_after_one)
    with pytest.raises(KeyboardInterrupt):
        compact(staging)
    monkeypatch.undo()
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.withdrawn_fragments) == 15  # 16 folded, 1 deleted
        assert len(snapshot.patches) == 16
        numpy.testing.assert_array_equal(snapshot.read_canvas(), model(counts))
    assert len(gc(staging).removed_withdrawn_fragments) == 15
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.fragment_paths) == 1
        numpy.testing.assert_array_equal(snapshot.read_canvas(), model(counts))


def test_two_compactions_at_once_fold_once(make_staging):
    """Two compactions of the same fragments both publish: the later wins,
    nothing is doubled."""
    from tifwriter_cli.staging.fragment_writer import FragmentWriter
    from tifwriter_cli.staging.layout import publish_fragment, temp_fragment_path

    staging = make_staging(width=WIDTH, height=HEIGHT, merge='mean')
    counts = {0: 5}
    for n in range(5):
        with tw.open_staging(staging) as w:
            w.write(*slot(0, n), patch(0, n))
    # A second compaction's result, as if it had folded the same 1..5 meanwhile.
    with tw.read_staging(staging) as snapshot:
        twin = FragmentWriter(temp_fragment_path(snapshot.fragments_dir), staging_uid=snapshot.header.uid,
                              dtype=snapshot.spec.numpy_dtype, withdraws=[1, 2, 3, 4, 5], merge_order=5)
        for p in snapshot.patches:
            twin.add(int(p['x']), int(p['y']), snapshot._checked_pixels(p) if not p['uniform']
                     else numpy.full((SIDE, SIDE, 1), p['value'], numpy.uint8))
        twin.close()
    compact(staging)  # publishes 6 (and deletes 1..5)
    publish_fragment(twin.path)  # 7: the twin lands later
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 5 and snapshot.withdrawn_fragments == [6]
        numpy.testing.assert_array_equal(snapshot.read_canvas(), model(counts))
