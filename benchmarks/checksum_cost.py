"""What the staging checksums cost: ingest and finalize with and without them.

    python benchmarks/checksum_cost.py [--repeat 3]

Same inputs both ways; "without" replaces the CRC-32 of each patch (write)
and its check (read) with no-ops. Prints the fastest of --repeat runs of each,
the ratio, and the CRC-32 rate alone (the floor of the added work).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time

import numpy
from _measure import remove_paths  # benchmarks/ is the script's directory

import tifwriter_cli as tw
from tifwriter_cli.staging import fragment, integrity, reader
from tifwriter_cli.staging.layout import fragments_dir

PATCH = 512
GRID = 8  # 8 x 8 patches: a 4096 x 4096 canvas


def inputs(kind: str, directory: str) -> tw.CanvasSpec:
    rng = numpy.random.default_rng(0)
    os.makedirs(directory)
    for j in range(GRID):
        for i in range(GRID):
            if kind == 'labels':  # blobs of 4 classes, 60 % background
                base = rng.integers(0, 4, (PATCH // 32, PATCH // 32), dtype=numpy.uint8)
                base[rng.random(base.shape) < 0.6] = 0
                array = numpy.kron(base, numpy.ones((32, 32), numpy.uint8))
            elif kind == 'float32 heatmap':
                array = rng.random((PATCH, PATCH), dtype=numpy.float32)
            else:  # rgb
                array = rng.integers(0, 256, (PATCH, PATCH, 3), dtype=numpy.uint8)
            numpy.save(os.path.join(directory, f't_{i * PATCH}_{j * PATCH}.npy'), array)
    if kind == 'labels':
        return tw.CanvasSpec(width=GRID * PATCH, height=GRID * PATCH, kind='labels')
    if kind == 'float32 heatmap':
        return tw.CanvasSpec(width=GRID * PATCH, height=GRID * PATCH, kind='probability', dtype='float32')
    return tw.CanvasSpec(width=GRID * PATCH, height=GRID * PATCH, kind='image', channels=3)


@contextlib.contextmanager
def without_checksums():
    saved = fragment.crc32, reader.check_patch
    fragment.crc32 = lambda data: -1  # noqa: E731  (stored as "not checksummed")
    reader.check_patch = lambda *args: None  # noqa: E731
    try:
        yield
    finally:
        fragment.crc32, reader.check_patch = saved


def run(spec, directory, work) -> tuple[float, float]:
    staging = os.path.join(work, 's.h5')
    remove_paths(staging, fragments_dir(staging), os.path.join(work, 'o.tif'))
    tw.create_staging(staging, spec)
    started = time.perf_counter()
    tw.ingest_npy_dir(staging, directory)
    ingest = time.perf_counter() - started
    started = time.perf_counter()
    tw.finalize(staging, os.path.join(work, 'o.tif'), workers=2)
    return ingest, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument('--repeat', type=int, default=3)
    args = parser.parse_args()
    import logging

    logging.getLogger('tifwriter_cli').setLevel(logging.ERROR)  # reader warnings of float32 maps
    sample = numpy.random.default_rng(1).integers(0, 256, 256 << 20, dtype=numpy.uint8)
    started = time.perf_counter()
    integrity.crc32(sample)
    print(f'CRC-32 alone: {sample.nbytes / (time.perf_counter() - started) / 1e9:.2f} GB/s')
    print(f'{"input":18} {"step":9} {"with":>8} {"without":>8} {"ratio":>6}')
    for kind in ('labels', 'float32 heatmap', 'rgb'):
        with tempfile.TemporaryDirectory() as work:
            directory = os.path.join(work, 'in')
            spec = inputs(kind, directory)
            best = {True: [float('inf')] * 2, False: [float('inf')] * 2}
            for _ in range(args.repeat):
                for checked in (True, False):
                    with contextlib.nullcontext() if checked else without_checksums():
                        times = run(spec, directory, work)
                    best[checked] = [min(a, b) for a, b in zip(best[checked], times, strict=True)]
            raw = GRID * GRID * PATCH * PATCH * spec.channels * numpy.dtype(spec.dtype).itemsize
            for step, i in (('ingest', 0), ('finalize', 1)):
                w, wo = best[True][i], best[False][i]
                print(f'{kind:18} {step:9} {w:7.2f}s {wo:7.2f}s {w / wo:6.2f}   ({raw / 1e6:.0f} MB raw)')


if __name__ == '__main__':
    main()
