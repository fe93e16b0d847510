"""What :func:`tifwriter_cli.finalization.finalize` and the writer engines read.

:class:`CanvasSource` is the one interface: a :class:`~tifwriter_cli.spec.CanvasSpec`
and ``read_region(x, y, width, height)``; the rest has a default here, so a
source says only what it knows. The staging snapshot
(:class:`tifwriter_cli.staging.StagingSnapshot`) is one; :class:`ArraySource`
wraps an in-memory array (tests, benchmarks, small canvases made in one
piece). A source that changes what another one returns (e.g. a reduction
of its channels) subclasses it and delegates.
"""

from __future__ import annotations

import abc

import numpy

from .errors import PatchError
from .spec import CanvasSpec

__all__ = ['ArraySource', 'CanvasSource', 'DerivedSource']


class CanvasSource(abc.ABC):
    """A canvas that can be finalized.

    Subclasses set :attr:`spec` and implement :meth:`read_region`. The
    optional capabilities below default to "unknown"; overriding them only
    makes finalize faster or its report fuller, never different pixels.
    """

    #: The canvas: size, pixel type, channels, fill, tile size, spacing.
    spec: CanvasSpec

    @abc.abstractmethod
    def read_region(self, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        """The canvas pixels of a region: shape (height, width, channels),
        the canvas dtype. The region may reach past the canvas; pixels
        outside it are the fill. Called from one reader thread at a time."""

    #: Whether :meth:`read_region_into` merges straight into the buffer it
    #: is given, cheaper than :meth:`read_region` and a copy (the engine then
    #: reads into its reused segment buffers that way).
    fills_buffers: bool = False

    def read_region_into(self, out: numpy.ndarray, x: int, y: int) -> None:
        """:meth:`read_region` of the region ``out`` covers ((height, width,
        channels), the canvas dtype), written into ``out``. Default: a copy."""
        out[...] = self.read_region(x, y, out.shape[1], out.shape[0])

    def region_is_fill(self, x: int, y: int, width: int, height: int) -> bool:
        """True only if :meth:`read_region` would return nothing but the fill
        there (the engine then skips the read). Default: not known, False."""
        return False

    @property
    def fragment_count(self) -> int | None:
        """Staging fragments this source reads (None: not a staging unit)."""
        return None

    @property
    def patch_count(self) -> int | None:
        """Staged patches this source merges (None: not a staging unit)."""
        return None



class DerivedSource(CanvasSource):
    """A source read through another one (a reduction, a census of values).

    It keeps the wrapped source's capabilities: :meth:`region_is_fill` and
    the counts are the wrapped source's, so wrapping never costs finalize
    its skipped reads or its report. ``spec`` defaults to the wrapped one's.
    """

    def __init__(self, source: CanvasSource, spec: CanvasSpec | None = None):
        self.source = source
        self.spec = source.spec if spec is None else spec

    def region_is_fill(self, x: int, y: int, width: int, height: int) -> bool:
        return self.source.region_is_fill(x, y, width, height)

    @property
    def fragment_count(self) -> int | None:
        return self.source.fragment_count

    @property
    def patch_count(self) -> int | None:
        return self.source.patch_count


class ArraySource(CanvasSource):
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
