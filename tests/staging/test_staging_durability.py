"""Durability and concurrency of the staging unit, with real processes.

* Writers SIGKILLed at random instants lose at most their unpublished
  patches; every acknowledged patch of every earlier writer stays readable.
* Several processes writing one staging file at once give exactly the
  reference canvas.
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.staging.layout import fragments_dir

from tests.helpers import REPO
from tests.helpers.reference import ReferenceCanvas

SLOT = 40  # patches live on a grid of SLOT x SLOT slots, one slot each
GRID = 50  # slots per side -> 2500 patch numbers
CANVAS = SLOT * GRID


def patch_for(number: int) -> numpy.ndarray:
    """Deterministic content of patch ``number`` (mixed uniform/textured)."""
    rng = numpy.random.default_rng(number)
    if number % 3 == 0:
        return numpy.full((SLOT, SLOT), number % 251 + 1, dtype=numpy.uint8)
    return rng.integers(1, 255, (SLOT, SLOT), dtype=numpy.uint8)


def slot_of(number: int) -> tuple[int, int]:
    return (number % GRID) * SLOT, (number // GRID) * SLOT


WRITER = textwrap.dedent(
    """
    import sys
    import tifwriter_cli as tw
    from tests.staging.test_staging_durability import patch_for, slot_of
    path, first, count, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    print('ready', flush=True)  # imported: the kill window starts here
    with tw.open_staging(path) as staging:
        pending = []
        for number in range(first, first + count):
            x, y = slot_of(number)
            staging.write(x, y, patch_for(number))
            pending.append(number)
            if len(pending) == batch:
                staging.flush()
                # Acknowledge only after flush() returned: these are durable now.
                print(' '.join(map(str, pending)), flush=True)
                pending = []
    print(' '.join(map(str, pending)), flush=True)
    """
)


def _spawn_writer(path, first, count, batch):
    return subprocess.Popen(
        [sys.executable, '-c', WRITER, str(path), str(first), str(count), str(batch)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


def test_sigkilled_writers_lose_only_unpublished_patches(make_staging):
    path = make_staging(width=CANVAS, height=CANVAS)
    rng = random.Random(20261125)
    acknowledged: list[int] = []
    next_number = 0
    trials = 20
    for _trial in range(trials):
        count, batch = 90, rng.choice([1, 2, 5])
        writer = _spawn_writer(path, next_number, count, batch)
        next_number += count
        # Kill at a random instant after the imports (which take from 0.3 s
        # to over 1 s on a loaded machine, so a window counted from the
        # spawn could miss every write): opening, mid-write, mid-publish.
        assert writer.stdout.readline() == 'ready\n'
        time.sleep(rng.uniform(0.0, 0.6))
        writer.send_signal(signal.SIGKILL)
        out, _ = writer.communicate()
        for line in out.splitlines():
            acknowledged.extend(int(n) for n in line.split())

        # After every kill, the staging unit opens and all acknowledged
        # patches (of this and every earlier writer) are intact.
        with tw.read_staging(path) as snapshot:
            canvas = snapshot.read_canvas()[:, :, 0]
        for number in acknowledged:
            x, y = slot_of(number)
            numpy.testing.assert_array_equal(
                canvas[y : y + SLOT, x : x + SLOT], patch_for(number), err_msg=f'patch {number} lost'
            )
        # Anything present is a complete, correct patch (no torn data).
        for number in range(next_number):
            x, y = slot_of(number)
            region = canvas[y : y + SLOT, x : x + SLOT]
            if region.any():
                numpy.testing.assert_array_equal(region, patch_for(number))
    # The kills must really have interrupted writers, or this proved nothing.
    assert 0 < len(acknowledged) < next_number
    # A writer killed while it holds an unpublished fragment (one publish at
    # the very end, killed as soon as its temp file exists) leaves that temp
    # file behind: info reports it, and every acknowledged patch is intact.
    fragments = fragments_dir(path)
    temps_before = set(fragments.glob('.tmp-*'))
    writer = _spawn_writer(path, next_number, 90, 90)
    deadline = time.monotonic() + 60
    while not set(fragments.glob('.tmp-*')) - temps_before:
        assert writer.poll() is None and time.monotonic() < deadline
        time.sleep(0.005)
    writer.send_signal(signal.SIGKILL)
    writer.communicate()
    with tw.read_staging(path) as snapshot:
        summary = snapshot.summary()
        canvas = snapshot.read_canvas()[:, :, 0]
    assert summary['fragments']['unpublished_temp_files'] == len(temps_before) + 1
    for number in acknowledged:
        x, y = slot_of(number)
        numpy.testing.assert_array_equal(canvas[y : y + SLOT, x : x + SLOT], patch_for(number))


def test_concurrent_writer_processes_equal_reference(make_staging):
    path = make_staging(width=CANVAS, height=CANVAS, merge='max')
    writers = [_spawn_writer(path, k * 60, 60, 7) for k in range(4)]
    # Plus overlapping writes from this process at the same time.
    reference = ReferenceCanvas(CANVAS, CANVAS, merge='max')
    with tw.open_staging(path) as staging:
        for number in range(240):
            x, y = slot_of(number)
            shifted = numpy.full((SLOT, SLOT), 100, numpy.uint8)
            staging.write(x + SLOT // 2, y, shifted)
            reference.write(x + SLOT // 2, y, shifted)
    for writer in writers:
        assert writer.wait(timeout=120) == 0
    for number in range(240):
        reference.write(*slot_of(number), patch_for(number))
    with tw.read_staging(path) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas(), reference.result())
        assert len(snapshot.fragment_paths) >= 4 * (60 // 7)


@pytest.mark.parametrize('rounds', [3])
def test_fragment_sequence_numbers_never_collide(tmp_path, rounds):
    """Racing publishers each get their own sequence number (link() is exclusive)."""
    from tifwriter_cli.staging.layout import published_fragments

    script = textwrap.dedent(
        """
        import sys, pathlib
        from tifwriter_cli.staging.layout import publish_fragment
        d = pathlib.Path(sys.argv[1])
        for i in range(int(sys.argv[2])):
            tmp = d / f'.tmp-{sys.argv[3]}-{i}.h5'
            tmp.write_bytes(f'{sys.argv[3]}-{i}'.encode())
            publish_fragment(tmp)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, '-c', script, str(tmp_path), '40', f'w{k}'])
        for k in range(4)
    ]
    assert all(p.wait(timeout=120) == 0 for p in procs)
    published = published_fragments(tmp_path)
    contents = sorted(p.read_bytes().decode() for _, p in published)
    assert contents == sorted(f'w{k}-{i}' for k in range(4) for i in range(40))
    assert [seq for seq, _ in published] == list(range(1, 161))
    assert not list(tmp_path.glob('.tmp-*'))
