"""What ``tifwriter info`` reports about a staging unit: the facts of a
:class:`~.reader.StagingSnapshot` (sizes, coverage, contributions).

The written area is the exact area of the union of the patch rectangles,
not the sum of patch areas (overlapping windows would count twice).
"""

from __future__ import annotations

import contextlib
import datetime
from typing import Any

import numpy

from .layout import stale_temp_fragments

__all__ = ['snapshot_summary', 'union_area']


def snapshot_summary(snapshot: Any) -> dict[str, Any]:
    """What ``tifwriter info`` reports about a staging file, from a
    :class:`~.reader.StagingSnapshot` (typed Any: the reader imports this
    module, so naming its class here would tie the two in a circle)."""
    spec = snapshot.spec
    p = snapshot.patches
    sizes = []
    last_write = None
    for path in snapshot.fragment_paths:
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            sizes.append(st.st_size)
            last_write = max(last_write or 0.0, st.st_mtime)
    written = union_area(p)
    bbox = None
    if len(p):
        bbox = {
            'x': int(p['x'].min()),
            'y': int(p['y'].min()),
            'x_end': int((p['x'] + p['width']).max()),
            'y_end': int((p['y'] + p['height']).max()),
        }
    return {
        'path': str(snapshot.path),
        'format_version': snapshot.header.format_version,
        'created': snapshot.header.created,
        'tool': snapshot.header.tool,
        # The same key as a TIFF's report (tifwriter_cli.tiff.inspect).
        'spacing_um': [spec.spacing_x, spec.spacing_y] if spec.spacing_x is not None else None,
        'canvas': {
            'width': spec.width,
            'height': spec.height,
            'channels': spec.channels,
            'dtype': spec.dtype,
            'tile_size': spec.tile_size,
            'fill': spec.fill,
            'merge': spec.merge,
            'kind': spec.kind,
            'slide_downsample': spec.slide_downsample,
        },
        'fragments': {
            'count': len(snapshot.fragment_paths),
            'bytes': int(sum(sizes)),
            'unpublished_temp_files': len(stale_temp_fragments(snapshot.fragments_dir)),
            'withdrawn': len(snapshot.withdrawn_fragments),
            # Fragments of another staging unit (copied in, or a stale writer's), skipped.
            'foreign': [str(path) for path in snapshot.skipped_fragments],
        },
        'patches': int(len(p)),
        'uniform_patches': int(p['uniform'].sum()) if len(p) else 0,
        'source_files': len(snapshot.sources),
        'duplicate_source_rows_ignored': snapshot.duplicate_rows,
        'written_pixels': int(written),
        'written_percent': 100.0 * written / (spec.width * spec.height),
        'bbox': bbox,
        'last_write': (
            datetime.datetime.fromtimestamp(last_write, datetime.timezone.utc).isoformat(
                timespec='seconds'
            )
            if last_write
            else None
        ),
    }


def union_area(p: numpy.ndarray) -> int:
    """Exact area covered by the union of the patch rectangles."""
    if not len(p):
        return 0
    xs = numpy.unique(numpy.concatenate([p['x'], p['x'] + p['width']]))
    ys = numpy.unique(numpy.concatenate([p['y'], p['y'] + p['height']]))
    if len(xs) * len(ys) > 50_000_000:
        # Too many distinct edges for an exact grid: sweep row bands instead.
        return _union_area_sweep(p, ys)
    covered = numpy.zeros((len(ys) - 1, len(xs) - 1), dtype=bool)
    ix0 = numpy.searchsorted(xs, p['x'])
    ix1 = numpy.searchsorted(xs, p['x'] + p['width'])
    iy0 = numpy.searchsorted(ys, p['y'])
    iy1 = numpy.searchsorted(ys, p['y'] + p['height'])
    for a, b, c, d in zip(iy0, iy1, ix0, ix1, strict=True):
        covered[a:b, c:d] = True
    areas = numpy.outer(numpy.diff(ys), numpy.diff(xs))
    return int(areas[covered].sum())


def _union_area_sweep(p: numpy.ndarray, ys: numpy.ndarray) -> int:
    total = 0
    x0, x1 = p['x'], p['x'] + p['width']
    y0, y1 = p['y'], p['y'] + p['height']
    for top, bottom in zip(ys[:-1], ys[1:], strict=True):
        active = (y0 <= top) & (y1 >= bottom)
        if not active.any():
            continue
        order = numpy.argsort(x0[active])
        starts, ends = x0[active][order], x1[active][order]
        length, cur_start, cur_end = 0, starts[0], ends[0]
        for s, e in zip(starts[1:], ends[1:], strict=True):
            if s > cur_end:
                length += cur_end - cur_start
                cur_start, cur_end = s, e
            else:
                cur_end = max(cur_end, e)
        length += cur_end - cur_start
        total += int(length) * int(bottom - top)
    return total
