"""2x downsampling of an (H, W, C) band: one pyramid level to the next.

Each output pixel summarises one 2x2 block of input pixels, taken in the
block order top-left (a), top-right (b), bottom-left (c), bottom-right (d).
Channels are treated independently (``mode`` picks per channel, so a
multi-channel pixel may combine values from different input pixels).

Odd sizes: the output is ceil(H/2) x ceil(W/2). The blocks of the last
column (odd W) and/or last row (odd H) are partial; they use only the
pixels they have: a 1x2 or 2x1 block its two pixels, the 1x1 corner block
its one pixel. This is implemented by replicating the last column/row, which
gives exactly that result for every method (a replicated pixel counts twice,
like its partner, so means, majorities, extremes and the first-in-block-order
tie-break are unchanged).

Methods:

``nearest``
    The top-left pixel of each block (ASAP's NearestNeighbor).
``mode``
    The value occurring most often in the block. Ties are broken by the
    block order: among the values with the highest count, the one that
    occurs first in a, b, c, d wins. So four different values give ``a``
    (like ``nearest``), two pairs give the pair containing ``a``. Only
    values present in the block can result: safe for labels. For floats the
    comparison is ``==`` (NaN never equals itself, so it only wins as ``a``).
``mean``
    The arithmetic mean. Integers are rounded to nearest, halves up
    (``(a + b + c + d + 2) // 4``), never truncated; floats are computed in
    float64 and stored as float32 (NaN propagates).
``max`` / ``min``
    Element-wise extremes; for floats NaN is ignored unless all four are NaN
    (``numpy.fmax``/``fmin``).

Every method works on strided views (``band[0::2, 0::2]`` ...) so a band is
processed at memory speed; the only copy made is the one-column/row padding
for odd sizes.
"""

from __future__ import annotations

import numpy

__all__ = ['RESAMPLING_METHODS', 'downsample2', 'halved']

RESAMPLING_METHODS = ('nearest', 'mode', 'mean', 'max', 'min')

#: Wider integer type holding the sum of four values (plus rounding).
_SUM_DTYPE = {
    numpy.dtype('uint8'): numpy.uint16,
    numpy.dtype('uint16'): numpy.uint32,
    numpy.dtype('uint32'): numpy.uint64,
    numpy.dtype('int8'): numpy.int16,
    numpy.dtype('int16'): numpy.int32,
    numpy.dtype('int32'): numpy.int64,
}


def halved(n: int) -> int:
    """Size of a side after one 2x downsampling: ceil(n / 2)."""
    return (n + 1) // 2


def downsample2(band: numpy.ndarray, method: str) -> numpy.ndarray:
    """Downsample an (H, W, C) array by 2 in both directions.

    Returns a new C-contiguous (ceil(H/2), ceil(W/2), C) array of the same
    dtype. See the module docstring for each method's exact rule.
    """
    if band.ndim != 3:
        raise ValueError(f'expected an (H, W, C) array, got shape {band.shape}')
    if method not in RESAMPLING_METHODS:
        raise ValueError(f'unknown resampling {method!r}; one of {", ".join(RESAMPLING_METHODS)}')
    height, width, channels = band.shape
    if height == 0 or width == 0:
        return numpy.empty((halved(height), halved(width), channels), band.dtype)
    if method == 'nearest':
        return numpy.ascontiguousarray(band[0::2, 0::2])
    band = _padded_to_even(band)
    out = numpy.empty((band.shape[0] // 2, band.shape[1] // 2, channels), band.dtype)
    reduce = _REDUCERS[method]
    # A few output rows at a time keep the temporaries in the CPU cache, and
    # one channel at a time keeps numpy's inner loops long (a last axis of
    # 3 channels makes every ufunc crawl).
    rows = max(1, _CHUNK_ELEMENTS // out.shape[1])
    for row in range(0, out.shape[0], rows):
        for channel in range(channels):
            reduce(
                band[2 * row : 2 * (row + rows), :, channel],
                out[row : row + rows, :, channel],
            )
    return out


#: Output elements per chunk and channel (see downsample2).
_CHUNK_ELEMENTS = 1 << 16


def _blocks(plane: numpy.ndarray) -> tuple[numpy.ndarray, ...]:
    """Views of the top-left, top-right, bottom-left, bottom-right pixels of 2x2 blocks."""
    return plane[0::2, 0::2], plane[0::2, 1::2], plane[1::2, 0::2], plane[1::2, 1::2]


def _reduce_mode(plane: numpy.ndarray, out: numpy.ndarray) -> None:
    a, b, c, d = _blocks(plane)
    uniform = _uniform_blocks(plane, a, b, c, d)
    mixed = numpy.flatnonzero(~uniform)
    if mixed.size * 8 > uniform.size:
        out[...] = _mode(a, b, c, d)
        return
    out[...] = a
    if not mixed.size:
        return
    # Few mixed blocks (class borders in a label mask): compute just those.
    rows, cols = numpy.divmod(mixed, uniform.shape[1])
    top, bottom, left, right = 2 * rows, 2 * rows + 1, 2 * cols, 2 * cols + 1
    out[rows, cols] = _mode(plane[top, left], plane[top, right], plane[bottom, left], plane[bottom, right])


def _uniform_blocks(plane, a, b, c, d) -> numpy.ndarray:
    """(H/2, W/2) bool: the block's four values are equal."""
    pair_type = _PAIR_TYPES.get(2 * plane.itemsize)
    if pair_type is not None and plane.strides[1] == plane.itemsize:
        # Two horizontal neighbours read as one wider integer: the block is
        # uniform when its top pair equals its bottom pair and the pair's
        # halves are equal (bitwise, so NaN blocks count as uniform too).
        top = plane[0::2].view(pair_type)
        bottom = plane[1::2].view(pair_type)
        shift = pair_type(plane.itemsize * 8)
        swapped = top >> shift
        swapped |= top << shift
        uniform = top == bottom
        uniform &= top == swapped
        return uniform
    uniform = a == b
    uniform &= a == c
    uniform &= a == d
    return uniform


_PAIR_TYPES = {2: numpy.uint16, 4: numpy.uint32, 8: numpy.uint64}


def _reduce_mean(plane: numpy.ndarray, out: numpy.ndarray) -> None:
    out[...] = _mean(*_blocks(plane))


def _reduce_extreme(ufunc_int, ufunc_float):
    def reduce(plane: numpy.ndarray, out: numpy.ndarray) -> None:
        ufunc = ufunc_float if plane.dtype.kind == 'f' else ufunc_int
        a, b, c, d = _blocks(plane)
        ufunc(a, b, out=out)
        ufunc(out, c, out=out)
        ufunc(out, d, out=out)

    return reduce


_REDUCERS = {
    'mode': _reduce_mode,
    'mean': _reduce_mean,
    'max': _reduce_extreme(numpy.maximum, numpy.fmax),
    'min': _reduce_extreme(numpy.minimum, numpy.fmin),
}


def _padded_to_even(band: numpy.ndarray) -> numpy.ndarray:
    """Replicate the last row/column when a side is odd (see module doc)."""
    height, width, _ = band.shape
    pad_rows, pad_cols = height % 2, width % 2
    if not pad_rows and not pad_cols:
        return band
    padded = numpy.empty((height + pad_rows, width + pad_cols, band.shape[2]), band.dtype)
    padded[:height, :width] = band
    if pad_cols:
        padded[:height, width] = band[:, width - 1]
    if pad_rows:
        padded[height] = padded[height - 1]
    return padded


def _mode(a, b, c, d) -> numpy.ndarray:
    # Majority of four with the block-order tie-break reduces to: the answer
    # is a, unless a occurs once only and some other value occurs twice or
    # more; then it is b if b has a partner (b == c or b == d), else c (c == d).
    # (If a has a partner, no other value can beat a's count without a tie
    # that a wins by coming first.)
    a_alone = a != b
    a_alone &= a != c
    a_alone &= a != d
    b_pairs = b == c
    b_pairs |= b == d
    c_pairs = c == d
    out = numpy.array(a, copy=True, order='C')
    take_b = a_alone & b_pairs
    numpy.copyto(out, b, where=take_b)
    take_c = a_alone
    take_c &= ~b_pairs
    take_c &= c_pairs
    numpy.copyto(out, c, where=take_c)
    return out


def _mean(a, b, c, d) -> numpy.ndarray:
    dtype = a.dtype
    if dtype.kind == 'f':
        total = a.astype(numpy.float64)
        total += b
        total += c
        total += d
        total *= 0.25
        return total.astype(dtype)
    wide = _SUM_DTYPE.get(dtype)
    if wide is None:
        raise ValueError(f'mean resampling does not support dtype {dtype}')
    total = a.astype(wide)
    total += b
    total += c
    total += d
    total += 2
    total //= 4
    return total.astype(dtype)
