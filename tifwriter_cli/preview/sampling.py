"""Which source pixels a picture shows: nearest neighbour at pixel centres.

Picture pixel ``j`` (of ``n``) shows source pixel
``floor((j + 0.5) * source_size / n)`` (:func:`sample_positions`); sources
that read by rows (a staging file, OpenSlide) are read in bands of at most
:data:`BAND_BYTES` (:func:`sample_in_bands`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy

__all__ = ['BAND_BYTES', 'picture_size', 'sample_in_bands', 'sample_positions']

#: Largest band of source rows held at once (bytes, merge buffers included).
BAND_BYTES = 64 * 2**20


def picture_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) of a picture whose long side is ``size``, never upscaled."""
    long_side = max(width, height)
    target = min(size, long_side)
    scale = target / long_side
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))


def sample_positions(count: int, extent: int) -> numpy.ndarray:
    """Source index shown by each of ``count`` picture pixels over ``extent`` source pixels."""
    # floor((j + 0.5) * extent / count) in exact integer arithmetic.
    return (2 * numpy.arange(count, dtype=numpy.int64) + 1) * extent // (2 * count)


def sample_in_bands(
    read_rows: Callable[[int, int], numpy.ndarray],
    rows: numpy.ndarray,
    cols: numpy.ndarray,
    *,
    row_bytes: int,
    out_shape_tail: tuple[int, ...],
    dtype: numpy.dtype,
    budget: int | None = None,
) -> numpy.ndarray:
    """Pixels at rows x cols, reading bands of at most ``budget`` bytes.

    ``rows`` must be non-decreasing. Each band spans consecutive sampled
    rows within the budget (one row at a time when samples are far apart).
    """
    out = numpy.empty((len(rows), len(cols)) + out_shape_tail, dtype=dtype)
    band_rows = max(1, (budget or BAND_BYTES) // max(1, row_bytes))
    start = 0
    while start < len(rows):
        top = int(rows[start])
        stop = int(numpy.searchsorted(rows, top + band_rows, side='left'))
        stop = max(stop, start + 1)
        bottom = int(rows[stop - 1]) + 1
        band = read_rows(top, bottom)
        out[start:stop] = band[rows[start:stop] - top][:, cols]
        start = stop
    return out
