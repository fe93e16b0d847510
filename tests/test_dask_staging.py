"""stage_dask_array on a dask.distributed LocalCluster with worker processes:
equal to the reference, and a worker killed mid-run loses and doubles nothing."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.staging.layout import fragments_dir

dask_array = pytest.importorskip('dask.array', reason='dask is the dask extra (in the test extra)')
distributed = pytest.importorskip('distributed', reason='dask.distributed is the dask extra (in the test extra)')

CHUNK = 32


def predict(block: numpy.ndarray, block_info=None, delay: float = 0.0) -> numpy.ndarray:
    """A stand-in model: a deterministic value field of the block's position,
    slow on purpose (a worker must be killed while blocks are in flight)."""
    (row0, row1), (col0, col1) = block_info[0]['array-location'][:2]
    if delay:
        time.sleep(delay)
    yy, xx = numpy.mgrid[row0:row1, col0:col1]
    return ((xx * 7 + yy * 3) % 251).astype(numpy.uint8)


def reference(height: int, width: int) -> numpy.ndarray:
    yy, xx = numpy.mgrid[0:height, 0:width]
    return ((xx * 7 + yy * 3) % 251).astype(numpy.uint8)


@pytest.fixture(scope='module')
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=40)
    with cluster, distributed.Client(cluster) as client:
        yield client


def lazy_predictions(height, width, delay=0.0):
    zeros = dask_array.zeros((height, width), dtype=numpy.uint8, chunks=CHUNK)
    return zeros.map_blocks(predict, delay=delay, dtype=numpy.uint8)


def test_staged_dask_array_equals_the_reference(client, make_staging) -> None:
    staging = make_staging(width=150, height=100, merge='mean')
    array = lazy_predictions(96, 128)
    report = tw.stage_dask_array(array, staging, x=10, y=-40)
    assert report.blocks == 12 and report.staged == 8  # the top row of blocks lies above the canvas
    expected = numpy.zeros((100, 150), numpy.uint8)
    expected[0:56, 10:138] = reference(96, 128)[40:]
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas()[..., 0], expected)
        assert len(snapshot.fragment_paths) == 12  # one fragment per block, by its worker
    # Run again (a rerun of the pipeline): replaced block by block, not averaged in twice.
    tw.stage_dask_array(array * 0 + 200, staging, x=10, y=-40)
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 8
        assert (snapshot.read_canvas()[0:56, 10:138] == 200).all()
    # Another chunking under the same key: the blocks it no longer has are withdrawn.
    report = tw.stage_dask_array(array.rechunk(48), staging, x=10, y=-40)
    assert report.withdrawn > 0
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas()[..., 0], expected)


def test_worker_killed_mid_run_loses_and_doubles_nothing(client, make_staging) -> None:
    # As soon as a block is published, its worker is SIGKILLed: the results
    # it held are lost, so dask runs those tasks again (staging the same
    # blocks again), and the blocks it was computing are retried elsewhere.
    import h5py

    staging = make_staging(width=128, height=128, merge='mean')
    fragments = fragments_dir(staging)
    array = lazy_predictions(128, 128, delay=0.3)  # 16 blocks
    killed: list[int] = []

    def kill_first_publisher() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            published = sorted(p for p in fragments.glob('*.h5') if not p.name.startswith('.'))
            if published:
                with h5py.File(published[0], 'r') as h5:
                    pid = int(h5.attrs['writer'].decode().rsplit(':', 1)[1])
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_first_publisher)
    killer.start()
    report = tw.stage_dask_array(array, staging)
    killer.join()
    assert killed, 'no worker was killed: the test did not test anything'
    assert report.blocks == 16
    records: dict[str, int] = {}
    for path in fragments.glob('*.h5'):
        if not path.name.startswith('.'):
            with h5py.File(path, 'r') as h5:
                for row in h5['sources'][()]:
                    key = row['path'].decode()
                    records[key] = records.get(key, 0) + 1
    assert len(records) == 16
    assert max(records.values()) >= 2, 'no block was staged twice: no retry after a publish happened'
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 16  # each block counts once
        numpy.testing.assert_array_equal(snapshot.read_canvas()[..., 0], reference(128, 128))


def test_channel_first_dask_array(client, make_staging) -> None:
    staging = make_staging(width=64, height=64, channels=3)
    chw = dask_array.from_array(numpy.arange(3 * 64 * 64, dtype=numpy.uint32).reshape(3, 64, 64) % 256, chunks=(1, 32, 32))
    tw.stage_dask_array(chw.astype(numpy.uint8), staging, layout='chw')
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas(), (numpy.arange(3 * 64 * 64).reshape(3, 64, 64) % 256).transpose(1, 2, 0))
