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

How it is computed (the results do not depend on it): rows are processed a
few at a time so the temporaries stay in the CPU cache. ``mode`` on a
single-channel band compares four blocks at once as 64-bit words (a 2x2
block is uniform when its top pair equals its bottom pair and the pair's
halves are equal, bitwise) and evaluates the full rule only on words
holding a mixed block; integer ``mean``/``max``/``min`` combine the two rows
of each block first (contiguous, every channel at once) and then the
horizontal neighbours. Where the optional compiled module is built
(``_speedups``), integer ``mode`` runs there instead: one pass per channel,
the GIL released, the same rule. Float ``mean``/``max``/``min`` keep the exact order
a, b, c, d of the definitions above, so rounding and NaN/zero signs are
those of that order.
"""

from __future__ import annotations

import sys

import numpy

from ..vocab import RESAMPLINGS

__all__ = ['downsample2', 'halved']


#: Wider integer type holding the sum of four values (plus rounding).
_SUM_DTYPE = {
    numpy.dtype('uint8'): numpy.uint16,
    numpy.dtype('uint16'): numpy.uint32,
    numpy.dtype('uint32'): numpy.uint64,
    numpy.dtype('int8'): numpy.int16,
    numpy.dtype('int16'): numpy.int32,
    numpy.dtype('int32'): numpy.int64,
}

#: Output elements (all channels) computed per chunk of rows: the
#: temporaries of one chunk stay in the CPU's L2 cache.
_CHUNK_ELEMENTS = 1 << 16

_LITTLE_ENDIAN = sys.byteorder == 'little'

try:  # optional compiled kernels (tiff/_speedups.c); numpy below otherwise
    from . import _speedups as _compiled  # type: ignore[attr-defined]
except ImportError:
    _compiled = None


def halved(n: int) -> int:
    """Size of a side after one 2x downsampling: ceil(n / 2)."""
    return (n + 1) // 2


def downsample2(band: numpy.ndarray, method: str, *, out: numpy.ndarray | None = None) -> numpy.ndarray:
    """Downsample an (H, W, C) array by 2 in both directions.

    Returns ``out``, or when it is None a new C-contiguous
    (ceil(H/2), ceil(W/2), C) array of the same dtype. ``out`` may be any
    view of that shape and dtype (e.g. part of the next level's band) that
    does not overlap ``band``. See the module docstring for each method's
    exact rule.
    """
    if band.ndim != 3:
        raise ValueError(f'expected an (H, W, C) array, got shape {band.shape}')
    if method not in RESAMPLINGS:
        raise ValueError(f'unknown resampling {method!r}; one of {", ".join(RESAMPLINGS)}')
    height, width, channels = band.shape
    shape = (halved(height), halved(width), channels)
    if out is None:
        out = numpy.empty(shape, band.dtype)
    elif out.shape != shape or out.dtype != band.dtype:
        raise ValueError(f'out must be {shape} {band.dtype}, got {out.shape} {out.dtype}')
    if height == 0 or width == 0:
        return out
    if method == 'nearest':
        out[...] = band[0::2, 0::2]
        return out
    _REDUCERS[method](_padded_to_even(band), out)
    return out


def _row_chunks(out_rows: int, out_row_elements: int):
    """Slices of output rows, about _CHUNK_ELEMENTS elements each."""
    rows = max(1, _CHUNK_ELEMENTS // max(1, out_row_elements))
    for row in range(0, out_rows, rows):
        yield slice(row, min(row + rows, out_rows))


def _input_rows(rows: slice) -> slice:
    return slice(2 * rows.start, 2 * rows.stop)


def _blocks(plane: numpy.ndarray) -> tuple[numpy.ndarray, ...]:
    """Views of the top-left, top-right, bottom-left, bottom-right pixels of 2x2 blocks."""
    return plane[0::2, 0::2], plane[0::2, 1::2], plane[1::2, 0::2], plane[1::2, 1::2]


# -- mode ----------------------------------------------------------------------
#: Per pixel size: the bits of the first pixel of each horizontal pair in a
#: 64-bit word (the word's pixels, in memory order, pair up as 0-1, 2-3, ...).
_PAIR_LOW_MASK = {
    1: numpy.uint64(0x00FF00FF00FF00FF),
    2: numpy.uint64(0x0000FFFF0000FFFF),
    4: numpy.uint64(0x00000000FFFFFFFF),
}
_UNSIGNED = {1: numpy.uint8, 2: numpy.uint16, 4: numpy.uint32, 8: numpy.uint64}


def _reduce_mode(band: numpy.ndarray, out: numpy.ndarray) -> None:
    if _compiled is not None and band.dtype.kind in 'ui' and band.itemsize in (1, 2, 4, 8):
        # Integers compare alike as unsigned bits: one compiled pass per
        # channel, the GIL released (the float rule needs ==, NaN != NaN).
        for channel in range(band.shape[2]):
            _compiled.mode2x2(band[:, :, channel], out[:, :, channel])
        return
    for channel in range(band.shape[2]):
        plane, target = band[:, :, channel], out[:, :, channel]
        size = plane.itemsize
        word_columns = 0
        if (
            size in _PAIR_LOW_MASK
            and plane.strides[1] == size
            and plane.strides[0] % 8 == 0
            and plane.ctypes.data % 8 == 0
        ):
            # Whole 64-bit words of each row; a tail of < 8 bytes goes below.
            word_columns = plane.shape[1] - plane.shape[1] % (8 // size)
        if word_columns:
            _mode_words(plane[:, :word_columns], target[:, : word_columns // 2])
        if word_columns < plane.shape[1]:
            _mode_blocks(plane[:, word_columns:], target[:, word_columns // 2 :])


def _mode_words(plane: numpy.ndarray, out: numpy.ndarray) -> None:
    """Mode of an (even H, W) plane whose rows are 8-byte aligned whole words."""
    size = plane.itemsize
    pixels = 8 // size  # per word; a word holds pixels // 2 blocks of a row pair
    top = plane[0::2].view(numpy.uint64)
    bottom = plane[1::2].view(numpy.uint64)
    out_rows, words = top.shape
    # A word is mixed when its top and bottom halves differ or any top pair
    # has two different halves (bitwise: a NaN block counts as uniform, and
    # its mode is its top-left pixel either way).
    mixed = numpy.empty((out_rows, words), bool)
    rows = max(1, _CHUNK_ELEMENTS // 2 // words)
    scratch = numpy.empty((rows, words), numpy.uint64)
    differ = numpy.empty((rows, words), bool)
    shift = numpy.uint64(8 * size)
    top_pairs = plane[0::2].view(_UNSIGNED[2 * size])
    out_bits = out.view(_UNSIGNED[size])
    for row in range(0, out_rows, rows):
        t, b = top[row : row + rows], bottom[row : row + rows]
        n = t.shape[0]
        x, flags = scratch[:n], mixed[row : row + n]
        numpy.right_shift(t, shift, out=x)
        numpy.bitwise_xor(x, t, out=x)
        numpy.bitwise_and(x, _PAIR_LOW_MASK[size], out=x)
        numpy.not_equal(x, 0, out=flags)
        numpy.not_equal(t, b, out=differ[:n])
        numpy.logical_or(flags, differ[:n], out=flags)
        # Most blocks of a label mask are uniform; their mode is the
        # top-left pixel: the low-address half of each top pair (a
        # truncating cast of the pair read as one integer twice as wide, on
        # little-endian machines), taken while these rows are in the cache.
        if _LITTLE_ENDIAN:
            numpy.copyto(out_bits[row : row + n], top_pairs[row : row + n], casting='unsafe')
        else:
            out[row : row + n] = plane[2 * row : 2 * (row + n) : 2, 0::2]
        if numpy.count_nonzero(flags) * 4 > flags.size:
            # Mostly mixed (noise, not a mask): the full rule on every block
            # of these rows is cheaper than gathering the words.
            a, b, c, d = _blocks(plane[2 * row : 2 * (row + n)])
            out[row : row + n] = _mode(a, b, c, d)
            flags[...] = False
    # The full rule on the mixed words only (in slices of rows when there are
    # many, so the gathered copies stay small).
    step = out_rows if numpy.count_nonzero(mixed) <= _CHUNK_ELEMENTS else max(1, rows)
    offsets = numpy.arange(pixels // 2)
    for row in range(0, out_rows, step):
        found = numpy.flatnonzero(mixed[row : row + step])
        if not found.size:
            continue
        found_rows, found_words = numpy.divmod(found, words)
        found_rows += row
        t = top[found_rows, found_words].view(plane.dtype).reshape(-1, pixels)
        b = bottom[found_rows, found_words].view(plane.dtype).reshape(-1, pixels)
        values = _mode(t[:, 0::2], t[:, 1::2], b[:, 0::2], b[:, 1::2])
        columns = (found_words * (pixels // 2))[:, numpy.newaxis] + offsets
        out[found_rows[:, numpy.newaxis], columns] = values


def _mode_blocks(plane: numpy.ndarray, out: numpy.ndarray) -> None:
    """Mode of an (even H, even W) plane of any layout, a few rows at a time."""
    for rows in _row_chunks(out.shape[0], out.shape[1]):
        part = plane[_input_rows(rows)]
        a, b, c, d = _blocks(part)
        uniform = a == b
        uniform &= a == c
        uniform &= a == d
        mixed = numpy.flatnonzero(~uniform)
        target = out[rows]
        if mixed.size * 8 > uniform.size:
            target[...] = _mode(a, b, c, d)
            continue
        target[...] = a
        if mixed.size:
            # Few mixed blocks (class borders in a label mask): just those.
            r, k = numpy.divmod(mixed, uniform.shape[1])
            top, bottom, left, right = 2 * r, 2 * r + 1, 2 * k, 2 * k + 1
            target[r, k] = _mode(part[top, left], part[top, right], part[bottom, left], part[bottom, right])


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


# -- mean, max, min --------------------------------------------------------------
def _reduce_mean(band: numpy.ndarray, out: numpy.ndarray) -> None:
    dtype = band.dtype
    if dtype.kind == 'f':
        _per_channel(band, out, _mean_float)
        return
    wide = _SUM_DTYPE.get(dtype)
    if wide is None:
        raise ValueError(f'mean resampling does not support dtype {dtype}')
    channels = band.shape[2]
    for rows in _row_chunks(out.shape[0], out.shape[1] * channels):
        part = band[_input_rows(rows)]
        # Vertical pair sums of whole rows (contiguous, all channels), each
        # plus 1: a pair of them is a + b + c + d + 2, rounded half up by >> 2.
        sums = part[0::2].astype(wide)
        sums += part[1::2]
        sums += 1
        pairs = sums.reshape(sums.shape[0], -1, 2 * channels)
        for channel in range(channels):
            total = pairs[:, :, channel] + pairs[:, :, channels + channel]
            total >>= 2
            out[rows, :, channel] = total


def _mean_float(plane: numpy.ndarray, out: numpy.ndarray) -> None:
    # float64 in block order a + b + c + d (see the module docstring).
    a, b, c, d = _blocks(plane)
    total = a.astype(numpy.float64)
    total += b
    total += c
    total += d
    total *= 0.25
    out[...] = total


def _reduce_extreme(ufunc_int, ufunc_float):
    def reduce(band: numpy.ndarray, out: numpy.ndarray) -> None:
        if band.dtype.kind == 'f':
            _per_channel(band, out, float_blocks)
            return
        # Integers: the order does not matter; the rows first, contiguous.
        channels = band.shape[2]
        for rows in _row_chunks(out.shape[0], out.shape[1] * channels):
            part = band[_input_rows(rows)]
            vertical = ufunc_int(part[0::2], part[1::2])
            pairs = vertical.reshape(vertical.shape[0], -1, 2 * channels)
            for channel in range(channels):
                ufunc_int(pairs[:, :, channel], pairs[:, :, channels + channel], out=out[rows, :, channel])

    def float_blocks(plane: numpy.ndarray, out: numpy.ndarray) -> None:
        a, b, c, d = _blocks(plane)
        ufunc_float(a, b, out=out)
        ufunc_float(out, c, out=out)
        ufunc_float(out, d, out=out)

    return reduce


def _per_channel(band: numpy.ndarray, out: numpy.ndarray, reduce) -> None:
    """``reduce(plane, out_plane)`` on chunks of rows, one channel at a time
    (a last axis of 3 channels makes every ufunc crawl)."""
    for rows in _row_chunks(out.shape[0], out.shape[1]):
        part = band[_input_rows(rows)]
        for channel in range(band.shape[2]):
            reduce(part[:, :, channel], out[rows, :, channel])


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
