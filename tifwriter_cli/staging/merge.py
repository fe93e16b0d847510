"""Merge rules: how overlapping patches combine into canvas pixels.

An accumulator covers one rectangular region. Patches are added in publish
order; :meth:`result` gives the merged pixels, with the canvas fill value
wherever nothing was written.

* ``overwrite``: the last added patch wins.
* ``max`` / ``min``: element-wise maximum / minimum of the written values.
* ``mean``: arithmetic mean of the written values, in float64 for float
  canvases; for integer canvases the exact mean rounded to nearest (ties
  to even), from exact integer sums.
"""

from __future__ import annotations

import math

import numpy

__all__ = ['Accumulator', 'new_accumulator']


class Accumulator:
    def __init__(self, shape: tuple[int, int, int], dtype: numpy.dtype, fill: float):
        self.shape = shape
        self.dtype = numpy.dtype(dtype)
        self.fill = fill

    def add(self, rows: slice, cols: slice, data: numpy.ndarray | float) -> None:
        raise NotImplementedError

    def result(self) -> numpy.ndarray:
        raise NotImplementedError


class _Overwrite(Accumulator):
    def __init__(self, shape, dtype, fill):
        super().__init__(shape, dtype, fill)
        self._out = numpy.full(shape, fill, dtype=self.dtype)

    def add(self, rows, cols, data):
        self._out[rows, cols] = data

    def result(self):
        return self._out


class _Extreme(Accumulator):
    def __init__(self, shape, dtype, fill, ufunc):
        super().__init__(shape, dtype, fill)
        self._ufunc = ufunc
        self._out = numpy.full(shape, fill, dtype=self.dtype)
        self._written = numpy.zeros(shape[:2], dtype=bool)

    def add(self, rows, cols, data):
        target = self._out[rows, cols]
        written = self._written[rows, cols]
        if not written.any():
            target[...] = data
        elif written.all():
            self._ufunc(target, data, out=target)
        else:
            merged = self._ufunc(target, data)
            target[...] = numpy.where(written[..., numpy.newaxis], merged, data)
        written[...] = True

    def result(self):
        return self._out


#: Output elements per chunk of rows when a mean is turned into pixels:
#: the float64 temporaries stay small (the region may be a 4 MB segment of
#: uint8, 32 MB as float64).
_MEAN_CHUNK_ELEMENTS = 1 << 18


def _mean_stages(dtype: numpy.dtype) -> list[tuple[float, type, type, bool]]:
    """How a mean's sum and count are held as patches are added.

    Each stage is (most adds, sum type, count type, float32 exact): the
    accumulator starts in the first stage and is widened once whenever
    more patches are added than its stage holds. Integer sums are exact, so
    their types only have to hold them (8-bit values: at most 255 adds in
    16 bits with an 8-bit count; memory and bandwidth per pixel of a uint8
    region: 3 bytes).

    "float32 exact": whether the mean rounds the same through float32 as
    through exact arithmetic. The sum and the count are exact in float32
    (below 2**24), IEEE division is correctly rounded and monotonic, and
    every tie k + 1/2 is representable, so float32 can only differ where
    the exact quotient lies within half an ulp of a tie without being one;
    it lies at least 1/(2 count) from it, which is more than half an ulp
    (2**-17 below 256, 2**-9 below 65536) for count <= 65535 (8-bit values)
    and count <= 255 (16-bit values).
    """
    if dtype.kind in 'ui' and dtype.itemsize == 1:
        small = numpy.uint16 if dtype.kind == 'u' else numpy.int16
        return [
            (255, small, numpy.uint8, True),
            (65535, numpy.int32, numpy.uint16, True),
            (math.inf, numpy.int64, numpy.uint32, False),
        ]
    if dtype.kind in 'ui' and dtype.itemsize == 2:
        return [
            (255, numpy.int32, numpy.uint8, True),
            (32768, numpy.int32, numpy.uint16, False),
            (math.inf, numpy.int64, numpy.uint32, False),
        ]
    # Floats (and wider integers) in float64, summed in add order.
    return [(math.inf, numpy.float64, numpy.uint32, False)]


class _Mean(Accumulator):
    def __init__(self, shape, dtype, fill):
        super().__init__(shape, dtype, fill)
        self._stages = _mean_stages(self.dtype)
        self._stage = 0
        _, sum_type, count_type, _ = self._stages[0]
        self._sum = numpy.zeros(shape, dtype=sum_type)
        self._count = numpy.zeros(shape[:2], dtype=count_type)
        self._adds = 0

    def add(self, rows, cols, data):
        self._adds += 1
        if self._adds > self._stages[self._stage][0]:
            self._stage += 1
            _, sum_type, count_type, _ = self._stages[self._stage]
            self._sum = self._sum.astype(sum_type)
            self._count = self._count.astype(count_type)
        self._sum[rows, cols] += data
        self._count[rows, cols] += 1

    def result(self):
        out = numpy.empty(self._sum.shape, self.dtype)
        float32_exact = self._stages[self._stage][3]
        rows_per_chunk = max(1, _MEAN_CHUNK_ELEMENTS // max(1, out[0].size))
        if float32_exact:
            # In place in two float32 buffers: no float64 temporaries, no
            # clip (a mean of in-range integers rounds into the range).
            chunk_shape = (min(rows_per_chunk, out.shape[0]),) + out.shape[1:]
            sum_buffer = numpy.empty(chunk_shape, numpy.float32)
            count_buffer = numpy.empty(chunk_shape[:2], numpy.float32)
        for row in range(0, out.shape[0], rows_per_chunk):
            part = slice(row, row + rows_per_chunk)
            count = self._count[part, :, numpy.newaxis]
            chunk = out[part]
            if float32_exact:
                mean = sum_buffer[: chunk.shape[0]]
                divisor = count_buffer[: chunk.shape[0]]
                numpy.copyto(mean, self._sum[part], casting='unsafe')
                numpy.copyto(divisor, self._count[part], casting='unsafe')
                # Never-written pixels divide 0 by 0 (NaN): no maximum(count,
                # 1) pass, which costs more than the division; the fill
                # replaces them below.
                with numpy.errstate(invalid='ignore', divide='ignore'):
                    numpy.divide(mean, divisor[..., numpy.newaxis], out=mean)
                    numpy.rint(mean, out=mean)
                    numpy.copyto(chunk, mean, casting='unsafe')
            else:
                with numpy.errstate(invalid='ignore', divide='ignore'):
                    mean = self._sum[part] / numpy.maximum(count, 1)
                if self.dtype.kind != 'f':
                    info = numpy.iinfo(self.dtype)
                    mean = numpy.clip(numpy.rint(mean), info.min, info.max)
                chunk[...] = mean
            if not count.all():
                chunk[numpy.broadcast_to(count == 0, chunk.shape)] = self.fill
        return out


def new_accumulator(
    rule: str, shape: tuple[int, int, int], dtype: numpy.dtype, fill: float
) -> Accumulator:
    """An empty accumulator for ``rule`` over a region of ``shape`` (H, W, C)."""
    if rule == 'overwrite':
        return _Overwrite(shape, dtype, fill)
    if rule == 'max':
        return _Extreme(shape, dtype, fill, numpy.maximum)
    if rule == 'min':
        return _Extreme(shape, dtype, fill, numpy.minimum)
    if rule == 'mean':
        return _Mean(shape, dtype, fill)
    raise ValueError(f'unknown merge rule {rule!r}')
