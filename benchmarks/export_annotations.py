"""Time and memory of ``tifwriter export-annotations`` on large label masks.

    python benchmarks/export_annotations.py                      # 20k x 20k: mask, ragged, many
    python benchmarks/export_annotations.py --size 8000 --kinds mask,ragged,speckle

For each input (seeded generators of benchmarks/_inputs.py, not designed for
this tool: ``mask`` smooth blobs, ``ragged`` multi-scale ragged borders,
``speckle`` ragged plus 3 % salt-and-pepper, ``many`` 40 classes) it finalizes the mask TIFF once,
then runs, each as its own measured process (wall, CPU, peak anonymous
memory of the process tree):

* ``export``: ``tifwriter export-annotations MASK.tif -o OUT.geojson``
  (default tolerance 0.5, band by band);
* ``whole``: the peer without bands: ``rasterio.features.shapes`` over the
  whole level 0 at once (what a script without seam joining does), GeoJSON
  written with json.dumps, no simplification;
* ``floor``: decoding the mask TIFF's level 0 band by band and nothing else
  (the I/O and codec floor under every export).

It prints a table and the ratios export / whole and export / floor.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _inputs import ensure_input  # noqa: E402
from _measure import report_result, run_measured  # noqa: E402


def step_finalize(args: argparse.Namespace) -> None:
    import numpy

    import tifwriter_cli as tw
    from tifwriter_cli.sources import ArraySource

    array = numpy.load(args.array, mmap_mode='r')
    spec = tw.CanvasSpec(width=array.shape[1], height=array.shape[0], spacing_x=0.5, kind='labels',
                         classes=args.classes)
    tw.finalize(ArraySource(spec, array), args.out, overwrite=True)


def step_whole(args: argparse.Namespace) -> None:
    import numpy
    import tifffile
    from rasterio import features

    mask = tifffile.imread(args.mask, key=0)
    count = 0
    with open(args.out, 'w') as handle:
        handle.write('{"type": "FeatureCollection", "features": [')
        for geometry, value in features.shapes(mask, mask=mask != 0, connectivity=4):
            handle.write((',' if count else '') + json.dumps(
                {'type': 'Feature', 'geometry': geometry, 'properties': {'label': int(value)}}))
            count += 1
        handle.write(']}')
    report_result(polygons=count, pixels=int(numpy.prod(mask.shape)))


def step_floor(args: argparse.Namespace) -> None:
    from tifwriter_cli.annotations.masks import open_mask
    from tifwriter_cli.annotations.trace import default_band_rows

    with open_mask(args.mask) as mask:
        rows = default_band_rows(mask)
        for top in range(0, mask.height, rows):
            mask.read_rows(top, min(mask.height, top + rows))


STEPS = {'finalize': step_finalize, 'whole': step_whole, 'floor': step_floor}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--size', type=int, default=20000)
    parser.add_argument('--kinds', default='mask,ragged,many')
    parser.add_argument('--cache', type=Path, default=Path.home() / '.cache' / 'tifwriter-bench')
    parser.add_argument('--seed', type=int, default=20240601, help='the seed run_benchmarks.py uses (shared cache)')
    parser.add_argument('--step', choices=sorted(STEPS))
    parser.add_argument('--array')
    parser.add_argument('--mask')
    parser.add_argument('--out')
    parser.add_argument('--classes', default=','.join(f'c{v}' for v in range(41)))
    args = parser.parse_args()
    if args.step:
        STEPS[args.step](args)
        return
    tifwriter = [sys.executable, '-m', 'tifwriter_cli', '-q']
    rows = []
    with tempfile.TemporaryDirectory(prefix='bench-annotations-') as work:
        work = Path(work)
        for kind in args.kinds.split(','):
            made = ensure_input(args.cache, kind, width=args.size, height=args.size, seed=args.seed,
                                log=lambda m: print(m, file=sys.stderr))
            mask = work / f'{kind}.tif'
            done = run_measured([sys.executable, __file__, '--step', 'finalize', '--array', made.array_path,
                                 '--out', mask])
            assert done.returncode == 0, done.stderr
            measured = {}
            for name, argv in (
                ('export', [*tifwriter, 'export-annotations', mask, '-o', work / f'{kind}.geojson', '--overwrite']),
                ('whole', [sys.executable, __file__, '--step', 'whole', '--mask', mask, '--out', work / f'{kind}-whole.json']),
                ('floor', [sys.executable, __file__, '--step', 'floor', '--mask', mask]),
            ):
                result = run_measured(argv)
                assert result.returncode == 0, (name, result.stderr)
                out = work / (f'{kind}.geojson' if name == 'export' else f'{kind}-whole.json')
                measured[name] = (result, out.stat().st_size if out.exists() else 0)
                rows.append((kind, name, result.wall_s, result.user_s + result.sys_s,
                             result.peak_anon_bytes / 2**20, measured[name][1] / 2**20,
                             result.stdout.strip().splitlines()[-1] if name == 'export' and result.stdout.strip() else ''))
            export, whole, floor = (measured[n][0] for n in ('export', 'whole', 'floor'))
            rows.append((kind, 'ratios', export.wall_s / whole.wall_s, export.wall_s / floor.wall_s,
                         export.peak_anon_bytes / max(1, whole.peak_anon_bytes), 0.0,
                         'export/whole wall, export/floor wall, export/whole memory'))
    print(f'{"input":8} {"step":8} {"wall s":>8} {"cpu s":>8} {"anon MiB":>9} {"out MiB":>8}  note')
    for kind, name, wall, cpu, anon, size, note in rows:
        print(f'{kind:8} {name:8} {wall:8.2f} {cpu:8.2f} {anon:9.1f} {size:8.1f}  {note}')
    print(f'(masks {args.size} x {args.size}, {os.cpu_count()} cores)')


if __name__ == '__main__':
    main()
