"""What sliding-window blending costs: the weighted merge beside ``mean``.

    python benchmarks/blending_cost.py [--repeat 3] [--side 4096]

Overlapping windows (512 px, stride 256: every pixel under 4 windows) staged
through the API, then the whole canvas read (the merge alone) and finalized,
under ``mean`` and under ``weighted`` (Gaussian, linear ramps, explicit
arrays, Gaussian with a 32-px crop margin), for a uint8 and a float32 canvas,
on two generators (smooth noise as a model's heatmap gives, and white
noise). Prints the fastest of --repeat runs, side by side, the ratio to
``mean`` per step, and the target: finalize under weighted (Gaussian)
<= 1.3 x mean.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time

import numpy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _inputs import smooth_noise
from _measure import remove_paths

import tifwriter_cli as tw
from tifwriter_cli.staging.layout import fragments_dir

WINDOW, STRIDE = 512, 256
TARGET = 1.3


def windows(kind: str, side: int, dtype: str) -> list[tuple[int, int, numpy.ndarray]]:
    rng = numpy.random.default_rng(7)
    if kind == 'smooth':
        field = smooth_noise((side, side), 40.0, rng)
        field = (field - field.min()) / (field.max() - field.min())
    else:
        field = rng.random((side, side), dtype=numpy.float32)
    if dtype == 'uint8':
        field = numpy.rint(field * 255).astype(numpy.uint8)
    out = []
    for y in range(0, side - WINDOW + 1, STRIDE):
        for x in range(0, side - WINDOW + 1, STRIDE):
            window = field[y : y + WINDOW, x : x + WINDOW].copy()
            out.append((x, y, window))
    return out


CASES = {
    'mean': ('mean', {}),
    'weighted gaussian': ('weighted', {'weight': 'gaussian'}),
    'weighted linear': ('weighted', {'weight': 'linear'}),
    'weighted array': ('weighted', {'weight': 'array'}),
    'weighted gaussian crop 32': ('weighted', {'weight': 'gaussian', 'crop_margin': 32}),
}


def run(case: str, items, side: int, dtype: str, work: str) -> tuple[float, float, float]:
    merge, options = CASES[case]
    staging = os.path.join(work, 's.h5')
    remove_paths(staging, fragments_dir(staging), os.path.join(work, 'o.tif'))
    tw.create_staging(staging, tw.CanvasSpec(width=side, height=side, dtype=dtype, kind='probability', merge=merge))
    explicit = numpy.random.default_rng(0).random((WINDOW, WINDOW)) * 0.9 + 0.1
    started = time.perf_counter()
    with tw.open_staging(staging) as writer:
        for x, y, window in items:
            kwargs = dict(options)
            if kwargs.get('weight') == 'array':
                kwargs['weight'] = explicit
            writer.write(x, y, window, **kwargs)
    stage = time.perf_counter() - started
    started = time.perf_counter()
    with tw.read_staging(staging) as snapshot:
        for row in range(0, side, 1024):
            snapshot.read_region(0, row, side, 1024)
    read = time.perf_counter() - started
    started = time.perf_counter()
    tw.finalize(staging, os.path.join(work, 'o.tif'), workers=2)
    return stage, read, time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--side', type=int, default=4096)
    args = parser.parse_args()
    logging.getLogger('tifwriter_cli').setLevel(logging.ERROR)
    failed = False
    print(f'{args.side} x {args.side} canvas, {WINDOW}-px windows at stride {STRIDE}; fastest of {args.repeat}')
    print(f'{"input":16} {"case":27} {"stage":>7} {"merge":>7} {"finalize":>8}   ratio to mean: stage merge finalize')
    for dtype in ('uint8', 'float32'):
        for kind in ('smooth', 'white'):
            items = windows(kind, args.side, dtype)
            best: dict[str, list[float]] = {}
            with tempfile.TemporaryDirectory() as work:
                for _ in range(args.repeat):
                    for case in CASES:  # interleaved: a busy moment hits every case
                        times = run(case, items, args.side, dtype, work)
                        best[case] = [min(a, b) for a, b in zip(best.get(case, [float("inf")] * 3), times, strict=True)]
            label = f'{dtype} {kind}'
            for case, times in best.items():
                ratios = ' '.join(f'{t / m:5.2f}' for t, m in zip(times, best["mean"], strict=True))
                print(f'{label:16} {case:27} {times[0]:6.2f}s {times[1]:6.2f}s {times[2]:7.2f}s   {ratios}')
            ratio = best['weighted gaussian'][2] / best['mean'][2]
            verdict = 'PASS' if ratio <= TARGET else 'FAIL'
            failed |= verdict == 'FAIL'
            print(f'{label:16} target: finalize weighted gaussian <= {TARGET} x mean: {ratio:.2f} {verdict}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
