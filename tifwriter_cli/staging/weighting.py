"""How a patch of a ``weighted`` canvas stores its blending weights.

A weighted patch is a window of a sliding-window run; its weights depend on
the whole window (a Gaussian centred on it), not on the part left after
clipping at the canvas border. So a fragment stores, beside its index, a
table ``/weighting`` with one row per weighted patch (docs/staging-format.md,
"Weighted patches")::

    patch            the patch's row in /index
    shape            0 flat, 1 gaussian, 2 linear, 3 array
    parameter        gaussian: sigma (a fraction of the side); linear: the
                     ramp in px (0: a quarter of the shorter side)
    window_x, _y,    the window (after its crop margin, before clipping)
    _width, _height  in canvas px: the weights are computed over it
    crc32            of /weights/<patch> (shape 3), else -1

Parametric weights are recomputed when read (:func:`tifwriter_cli.blending.weight_map`,
cached per window size: nearly free); only explicit weight arrays are
stored, as ``/weights/<patch>`` (uint16 0..4095, clipped like the patch). The
table has its own checksum, the root attribute ``weighting_crc32``.
"""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any

import numpy

from ..blending import Blend, border_sides, weight_map

__all__ = ['SHAPE_CODES', 'WEIGHTING_DTYPE', 'PatchWeighting', 'weighting_rows', 'region_weights']

WEIGHTING_DTYPE = numpy.dtype(
    [
        ('patch', '<i8'),
        ('shape', 'u1'),
        ('parameter', '<f8'),
        ('window_x', '<i8'),
        ('window_y', '<i8'),
        ('window_width', '<i8'),
        ('window_height', '<i8'),
        ('crc32', '<i8'),
    ]
)
SHAPE_CODES = {'flat': 0, 'gaussian': 1, 'linear': 2, 'array': 3}
SHAPE_NAMES = {code: name for name, code in SHAPE_CODES.items()}
ARRAY = SHAPE_CODES['array']


@dataclasses.dataclass(frozen=True)
class PatchWeighting:
    """The weights of one stored patch: a parametric shape over its window,
    or an explicit array (``weights``, the stored part's (h, w) uint16)."""

    shape: str
    parameter: float
    window: tuple[int, int, int, int]  # x, y, width, height
    weights: numpy.ndarray | None = None

    @classmethod
    def of_blend(cls, blend: Blend, window: tuple[int, int, int, int]) -> PatchWeighting:
        return cls(blend.shape, blend.parameter, window)

    def row(self, patch: int) -> tuple:
        from .integrity import crc32

        checksum = crc32(numpy.ascontiguousarray(self.weights)) if self.weights is not None else -1
        return (patch, SHAPE_CODES[self.shape], float(self.parameter), *self.window, checksum)


def weighting_checksum(table: numpy.ndarray) -> int:
    return zlib.crc32(numpy.ascontiguousarray(table).tobytes()) & 0xFFFFFFFF


def write_weighting(h5: Any, rows: list[tuple]) -> None:
    """Write the /weighting table of a fragment being closed (if it has rows)."""
    if not rows:
        return
    table = numpy.array(rows, dtype=WEIGHTING_DTYPE)
    h5.create_dataset('weighting', data=table)
    h5.attrs['weighting_crc32'] = weighting_checksum(table)


def weighting_rows(
    stored: numpy.ndarray | None, expected_crc32: int | None, index: numpy.ndarray, *, path: Any
) -> numpy.ndarray:
    """The (len(index),) weighting rows of a fragment, one per patch, from
    its stored /weighting table (None: it has none) and that table's CRC-32:
    patches without a row (any canvas but a weighted one) weigh flat over
    their own rectangle. Raises CorruptFragmentError for a damaged table."""
    from .integrity import corrupt

    rows = numpy.zeros(len(index), dtype=WEIGHTING_DTYPE)
    rows['patch'] = numpy.arange(len(index))
    rows['window_x'], rows['window_y'] = index['x'], index['y']
    rows['window_width'], rows['window_height'] = index['width'], index['height']
    rows['crc32'] = -1
    if stored is None:
        return rows
    if expected_crc32 is None or weighting_checksum(stored) != int(expected_crc32):
        raise corrupt(path, 'its weighting table does not match its checksum')
    if stored.dtype != WEIGHTING_DTYPE:
        raise corrupt(path, 'its weighting table has unknown columns')
    numbers = stored['patch']
    if len(numbers) and (numbers.min() < 0 or numbers.max() >= len(index)):
        raise corrupt(path, 'its weighting table names patches it does not hold')
    if not numpy.isin(stored['shape'], list(SHAPE_NAMES)).all():
        raise corrupt(path, 'its weighting table holds an unknown weight shape')
    for field in WEIGHTING_DTYPE.names:
        rows[field][numbers] = stored[field]
    return rows


def region_weights(
    patch: Any, x0: int, y0: int, x1: int, y1: int, *, canvas_width: int, canvas_height: int,
    explicit: numpy.ndarray | None = None,
) -> numpy.ndarray:
    """The (y1 - y0, x1 - x0) weights of canvas region [x0, x1) x [y0, y1)
    of a stored patch (a snapshot row with the weighting fields);
    ``explicit``: its stored weight array (shape 3)."""
    if patch['blend'] == ARRAY:
        px, py = int(patch['x']), int(patch['y'])
        return explicit[y0 - py : y1 - py, x0 - px : x1 - px]
    wx, wy = int(patch['window_x']), int(patch['window_y'])
    ww, wh = int(patch['window_width']), int(patch['window_height'])
    blend = Blend.from_record(SHAPE_NAMES[int(patch['blend'])], float(patch['blend_parameter']))
    border = border_sides(wx, wy, ww, wh, canvas_width=canvas_width, canvas_height=canvas_height)
    weights = weight_map(blend, wh, ww, border=border, dtype=numpy.float32)
    return weights[y0 - wy : y1 - wy, x0 - wx : x1 - wx]
