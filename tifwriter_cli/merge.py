"""Merge rules: how overlapping patches combine into canvas pixels.

An accumulator covers one rectangular region. Patches are added in publish
order; :meth:`result` gives the merged pixels, with the canvas fill value
wherever nothing was written.

* ``overwrite``: the last added patch wins.
* ``max`` / ``min``: element-wise maximum / minimum of the written values.
* ``mean``: arithmetic mean of the written values, in float64, rounded to
  nearest (ties to even) for integer canvases.
"""

from __future__ import annotations

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


class _Mean(Accumulator):
    def __init__(self, shape, dtype, fill):
        super().__init__(shape, dtype, fill)
        # Integer sums are exact, so their type only has to hold them: 8-bit
        # values in 32 bits and the count in 16 while fewer than 65535
        # patches were added (widened once if ever more are), 16-bit
        # values in 64 bits. Floats (and wider integers) in float64, in add
        # order. Memory per pixel of a uint8 region: 6 bytes, not 12.
        if self.dtype.kind in 'ui' and self.dtype.itemsize == 1:
            self._sum = numpy.zeros(shape, dtype=numpy.int32)
            self._count = numpy.zeros(shape[:2], dtype=numpy.uint16)
        else:
            wide = self.dtype.kind in 'ui' and self.dtype.itemsize == 2
            self._sum = numpy.zeros(shape, dtype=numpy.int64 if wide else numpy.float64)
            self._count = numpy.zeros(shape[:2], dtype=numpy.uint32)
        self._adds = 0

    def add(self, rows, cols, data):
        self._adds += 1
        if self._adds == 65535 and self._count.dtype == numpy.uint16:
            self._sum = self._sum.astype(numpy.int64)
            self._count = self._count.astype(numpy.uint32)
        self._sum[rows, cols] += data
        self._count[rows, cols] += 1

    def result(self):
        out = numpy.empty(self._sum.shape, self.dtype)
        rows_per_chunk = max(1, _MEAN_CHUNK_ELEMENTS // max(1, out[0].size))
        for row in range(0, out.shape[0], rows_per_chunk):
            part = slice(row, row + rows_per_chunk)
            count = self._count[part, :, numpy.newaxis]
            with numpy.errstate(invalid='ignore', divide='ignore'):
                mean = self._sum[part] / numpy.maximum(count, 1)
            if self.dtype.kind != 'f':
                info = numpy.iinfo(self.dtype)
                mean = numpy.clip(numpy.rint(mean), info.min, info.max)
            chunk = out[part]
            chunk[...] = mean
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
