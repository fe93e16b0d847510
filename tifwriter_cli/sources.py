"""Canvas sources for :func:`tifwriter_cli.finalization.finalize` besides staging files.

Anything with a ``.spec`` (:class:`~tifwriter_cli.spec.CanvasSpec`) and a
``.read_region(x, y, width, height)`` returning an (height, width, channels)
array of the canvas dtype can be finalized. :class:`ArraySource` wraps an
in-memory array (tests, benchmarks, small canvases made in one piece).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy

from .errors import PatchError
from .spec import CanvasSpec

__all__ = ['ArraySource', 'CanvasSource']


@runtime_checkable
class CanvasSource(Protocol):
    spec: CanvasSpec

    def read_region(self, x: int, y: int, width: int, height: int) -> numpy.ndarray: ...


class ArraySource:
    """A whole canvas held in memory as an (H, W) or (H, W, C) array.

    Example::

        spec = CanvasSpec(width=1000, height=800, spacing_x=0.5)
        finalize(ArraySource(spec, labels), 'mask.tif')
    """

    def __init__(self, spec: CanvasSpec, array: numpy.ndarray):
        array = numpy.asarray(array)
        if array.ndim == 2:
            array = array[:, :, numpy.newaxis]
        if array.shape != spec.shape:
            raise PatchError(
                f'array shape {array.shape} does not match the canvas (height, width, '
                f'channels) {spec.shape}'
            )
        if array.dtype != spec.numpy_dtype:
            raise PatchError(f'array dtype {array.dtype} does not match the canvas dtype {spec.dtype}')
        self.spec = spec
        self.array = array

    def read_region(self, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        """Pixels of the region (a view when wholly inside); fill outside the canvas."""
        spec = self.spec
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + width, spec.width), min(y + height, spec.height)
        if x0 == x and y0 == y and x1 == x + width and y1 == y + height:
            return self.array[y:y1, x:x1]
        out = numpy.full((height, width, spec.channels), spec.fill, dtype=spec.numpy_dtype)
        if x1 > x0 and y1 > y0:
            out[y0 - y : y1 - y, x0 - x : x1 - x] = self.array[y0:y1, x0:x1]
        return out

    def __repr__(self) -> str:
        return f'ArraySource({self.spec!r})'
