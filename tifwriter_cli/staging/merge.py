"""Merge rules: how overlapping patches combine into canvas pixels.

An accumulator covers one rectangular region. Patches are added in publish
order; :meth:`result` gives the merged pixels, with the canvas fill value
wherever nothing was written.

* ``overwrite``: the last added patch wins.
* ``max`` / ``min``: element-wise maximum / minimum of the written values.
* ``mean``: arithmetic mean of the written values, in float64 for float
  canvases; for integer canvases the exact mean rounded to nearest (ties
  to even), from exact integer sums.
* ``weighted``: the mean weighted per pixel by each patch's window weights
  (:class:`WeightedAccumulator`; the weights: :mod:`tifwriter_cli.blending`),
  exact and order-independent for 8- and 16-bit canvases.
"""

from __future__ import annotations

import math

import numpy

__all__ = ['Accumulator', 'WeightedAccumulator', 'new_accumulator']


class Accumulator:
    def __init__(self, shape: tuple[int, int, int], dtype: numpy.dtype, fill: float):
        self.shape = shape
        self.dtype = numpy.dtype(dtype)
        self.fill = fill

    def add(self, rows: slice, cols: slice, data: numpy.ndarray | float) -> None:
        raise NotImplementedError

    def result(self) -> numpy.ndarray:
        raise NotImplementedError


def _given(out: numpy.ndarray | None, shape: tuple[int, int, int], dtype: numpy.dtype) -> numpy.ndarray | None:
    """``out`` checked to fit the region (None: the accumulator makes its own)."""
    if out is not None and (out.shape != tuple(shape) or out.dtype != dtype):
        raise ValueError(f'out is {out.shape} {out.dtype}, the region {tuple(shape)} {dtype}')
    return out


def _filled(out: numpy.ndarray | None, shape: tuple[int, int, int], dtype: numpy.dtype, fill: float) -> numpy.ndarray:
    """``out`` (or a new array) of ``shape``, set to the fill."""
    if _given(out, shape, dtype) is None:
        return numpy.full(shape, fill, dtype=dtype)
    out[...] = fill
    return out


class _Overwrite(Accumulator):
    def __init__(self, shape, dtype, fill, out=None):
        super().__init__(shape, dtype, fill)
        self._out = _filled(out, shape, self.dtype, fill)

    def add(self, rows, cols, data):
        self._out[rows, cols] = data

    def result(self):
        return self._out


class _Extreme(Accumulator):
    def __init__(self, shape, dtype, fill, ufunc, out=None):
        super().__init__(shape, dtype, fill)
        self._ufunc = ufunc
        self._out = _filled(out, shape, self.dtype, fill)
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
    def __init__(self, shape, dtype, fill, out=None):
        super().__init__(shape, dtype, fill)
        self._out = _given(out, shape, self.dtype)
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
        out = numpy.empty(self._sum.shape, self.dtype) if self._out is None else self._out
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


#: Output elements per chunk of rows when the weighted mean becomes pixels.
_CHUNK_ELEMENTS = 1 << 18
#: Largest total weight of one pixel an 8-bit region holds in float32
#: (exact; see the module docstring).
_FLOAT32_MAX_WEIGHT = 65535
#: Side of the cells whose weight bounds spare most adds a look at the pixels.
_BOUND_CELL = 64


def _cells(pixels: slice, size: int) -> slice:
    """The bound cells a slice of pixels (of an axis of ``size``) touches."""
    start, stop, _ = pixels.indices(size)
    return slice(start // _BOUND_CELL, max(start, stop - 1) // _BOUND_CELL + 1)


class WeightedAccumulator:
    """Weighted mean of the patches added over one region (H, W, C).

    ``add(rows, cols, data, weights)``: ``weights`` the integer (h, w)
    weights 0..WEIGHT_SCALE of the added pixels (:func:`~tifwriter_cli.blending.weight_map`
    sliced, or :func:`~tifwriter_cli.blending.explicit_weights`). Same interface as
    the other accumulators otherwise (the rule: :mod:`tifwriter_cli.blending`).
    """

    def __init__(
        self, shape: tuple[int, int, int], dtype: numpy.dtype, fill: float, out: numpy.ndarray | None = None
    ):
        self.shape = shape
        self.dtype = numpy.dtype(dtype)
        self.fill = fill
        self._out = _given(out, shape, self.dtype)
        small = self.dtype.kind in 'ui' and self.dtype.itemsize == 1
        sum_type = numpy.float32 if small else numpy.float64
        self._sum = numpy.zeros(shape, dtype=sum_type)
        self._weight = numpy.zeros(shape[:2], dtype=sum_type)
        # An upper bound of the total weight of the pixels of each cell of
        # a coarse grid (the sum of the largest weights of the adds touching
        # it): while a cell's is under the float32 limit its pixels need no
        # look; past it, the add first looks at the pixels it changes.
        self._cell_bound = numpy.zeros(
            (-(-shape[0] // _BOUND_CELL), -(-shape[1] // _BOUND_CELL)), numpy.int64
        ) if sum_type == numpy.float32 else None

    def add(self, rows: slice, cols: slice, data: numpy.ndarray | float, weights: numpy.ndarray) -> None:
        if self._sum.dtype == numpy.float32:
            heaviest = int(weights.max()) if weights.size else 0
            cells = self._cell_bound[_cells(rows, self.shape[0]), _cells(cols, self.shape[1])]
            cells += heaviest
            if cells.max(initial=0) > _FLOAT32_MAX_WEIGHT and (
                self._weight[rows, cols].max(initial=0) + heaviest > _FLOAT32_MAX_WEIGHT
            ):
                self._sum = self._sum.astype(numpy.float64)
                self._weight = self._weight.astype(numpy.float64)
        sum_type = self._sum.dtype
        weights = weights.astype(sum_type, copy=False)
        target = self._sum[rows, cols]
        products = self._products(target.shape, sum_type)
        if self.shape[2] == 1:  # 2-D views: no broadcasting of the weights (30 % faster)
            target, products = target[..., 0], products[..., 0]
            data = data[..., 0] if numpy.ndim(data) else data
        else:
            weights = weights[..., numpy.newaxis]
        numpy.multiply(data, weights, out=products, dtype=sum_type)
        target += products
        self._weight[rows, cols] += weights if self.shape[2] == 1 else weights[..., 0]

    def _products(self, shape: tuple[int, ...], sum_type: numpy.dtype) -> numpy.ndarray:
        """A reused buffer for one add's products (no allocation per add)."""
        size = math.prod(shape)
        buffer = getattr(self, '_buffer', None)
        if buffer is None or buffer.dtype != sum_type or buffer.size < size:
            buffer = self._buffer = numpy.empty(max(size, 1 << 18), sum_type)
        return buffer[:size].reshape(shape)
    def result(self) -> numpy.ndarray:
        out = numpy.empty(self._sum.shape, self.dtype) if self._out is None else self._out
        rows_per_chunk = max(1, _CHUNK_ELEMENTS // max(1, out[0].size))
        integer = self.dtype.kind != 'f'
        for row in range(0, out.shape[0], rows_per_chunk):
            part = slice(row, row + rows_per_chunk)
            weight = self._weight[part, :, numpy.newaxis]
            chunk = out[part]
            # 0/0 where nothing weighs (NaN): replaced by the fill below.
            with numpy.errstate(invalid='ignore', divide='ignore'):
                mean = self._sum[part] / weight
                if integer:
                    # A weighted mean of in-range values is in range: no clip.
                    numpy.rint(mean, out=mean)
                numpy.copyto(chunk, mean, casting='unsafe')
            unweighted = weight == 0
            if unweighted.any():
                chunk[numpy.broadcast_to(unweighted, chunk.shape)] = self.fill
        return out


def new_accumulator(
    rule: str, shape: tuple[int, int, int], dtype: numpy.dtype, fill: float, *, out: numpy.ndarray | None = None
) -> Accumulator:
    """An empty accumulator for ``rule`` over a region of ``shape`` (H, W, C);
    ``out``: the buffer its result is written into and returned as (else an
    array of its own)."""
    if rule == 'overwrite':
        return _Overwrite(shape, dtype, fill, out)
    if rule == 'max':
        return _Extreme(shape, dtype, fill, numpy.maximum, out)
    if rule == 'min':
        return _Extreme(shape, dtype, fill, numpy.minimum, out)
    if rule == 'mean':
        return _Mean(shape, dtype, fill, out)
    if rule == 'weighted':
        return WeightedAccumulator(shape, dtype, fill, out)
    raise ValueError(f'unknown merge rule {rule!r}')
