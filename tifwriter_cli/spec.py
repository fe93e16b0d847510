"""The canvas description: size, pixel type, spacing, merge rule, data kind.

A :class:`CanvasSpec` is immutable and validated on construction, so every
other module may trust it.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy

from .errors import InvalidOptionError
from .vocab import DTYPES, KINDS, MERGE_RULES

__all__ = [
    'CanvasSpec',
    'DTYPES',
    'MERGE_RULES',
    'KINDS',
    'MAX_SIDE',
    'MAX_PIXELS',
    'MIN_SPACING_UM',
    'MAX_SPACING_UM',
]

#: TIFF and sane memory bounds; 2**31 px a side is far beyond any slide.
MAX_SIDE = 2**31 - 1
MAX_CHANNELS = 64
#: Largest canvas: 2**40 px (1.1e12, e.g. 1,048,576 px square) is 30 times
#: the largest slides scanned today (~250k x 150k px). Every command's time
#: and finalize's tile tables grow with the canvas (measured: an empty
#: 200k x 200k canvas finalizes in 22 s), so a canvas of 10**18 px was a
#: MemoryError after minutes, not a TIFF.
MAX_PIXELS = 2**40
#: Level-0 tiles at most (finalize keeps a few bytes per tile per level).
MAX_TILES = 2**28
#: Spacing range in micrometres per pixel. TIFF stores the resolution as a
#: rational of two 32-bit integers in pixels per centimetre: 1e4 / spacing
#: must stay below 2**32 (spacing >= 2.33e-6 um), and every pyramid level's
#: (down to 2**31 times coarser) must stay above 1 / 2**32.
MIN_SPACING_UM = 1e4 / (2**32 - 1)
MAX_SPACING_UM = 1e4


@dataclasses.dataclass(frozen=True)
class CanvasSpec:
    """What the staged canvas is. All sizes in canvas pixels.

    ``spacing_x``/``spacing_y`` are micrometres per pixel, or None when
    unknown (the TIFF then carries no physical size).
    """

    width: int
    height: int
    channels: int = 1
    dtype: str = 'uint8'
    spacing_x: float | None = None
    spacing_y: float | None = None
    tile_size: int = 512
    fill: float = 0
    merge: str = 'overwrite'
    kind: str = 'labels'
    #: Slide level-0 pixels per canvas pixel (> 1 for lower-resolution
    #: heatmaps made with ``init --like SLIDE --downsample D``).
    slide_downsample: float = 1.0
    #: What each label value means (:class:`~tifwriter_cli.classes.ClassTable`;
    #: also given as the text forms of :func:`~tifwriter_cli.classes.parse_classes`).
    classes: Any = None

    def __post_init__(self) -> None:
        for name in ('width', 'height', 'channels', 'tile_size'):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(
                value, (int, numpy.integer)
            ):
                raise InvalidOptionError(f'{name} must be an integer, got {value!r}')
            object.__setattr__(self, name, int(value))
        if not 1 <= self.width <= MAX_SIDE:
            raise InvalidOptionError(f'width must be 1 to {MAX_SIDE}, got {self.width}')
        if not 1 <= self.height <= MAX_SIDE:
            raise InvalidOptionError(f'height must be 1 to {MAX_SIDE}, got {self.height}')
        if self.width * self.height > MAX_PIXELS:
            raise InvalidOptionError(
                f'canvas {self.width} x {self.height} = {self.width * self.height:.3g} px is larger '
                f'than the {MAX_PIXELS:.3g} px (2**40) tifwriter supports'
            )
        if not 1 <= self.channels <= MAX_CHANNELS:
            raise InvalidOptionError(
                f'channels must be 1 to {MAX_CHANNELS}, got {self.channels}'
            )
        dtype = str(numpy.dtype(self.dtype)) if _is_dtype(self.dtype) else self.dtype
        if dtype not in DTYPES:
            raise InvalidOptionError(
                f'dtype must be one of {", ".join(DTYPES)}, got {self.dtype!r}'
            )
        object.__setattr__(self, 'dtype', dtype)
        if self.tile_size < 16 or self.tile_size % 16 or self.tile_size > 4096:
            raise InvalidOptionError(
                'tile size must be a multiple of 16 from 16 to 4096 '
                f'(TIFF readers refuse others), got {self.tile_size}'
            )
        tiles = -(-self.width // self.tile_size) * -(-self.height // self.tile_size)
        if tiles > MAX_TILES:
            raise InvalidOptionError(
                f'canvas {self.width} x {self.height} in {self.tile_size}-px tiles makes {tiles} '
                f'tiles, more than the {MAX_TILES} (2**28) supported; use a larger tile size'
            )
        if self.spacing_y is not None and self.spacing_x is None:
            raise InvalidOptionError('spacing-y needs spacing (x) as well')
        if self.spacing_x is not None and self.spacing_y is None:
            object.__setattr__(self, 'spacing_y', self.spacing_x)
        for name in ('spacing_x', 'spacing_y'):
            value = getattr(self, name)
            if value is None:
                continue
            value = float(value)
            if not math.isfinite(value) or value <= 0:
                raise InvalidOptionError(
                    f'spacing must be a positive number of micrometres per pixel, got {value}'
                )
            if not MIN_SPACING_UM <= value <= MAX_SPACING_UM:
                raise InvalidOptionError(
                    f'spacing {value:g} um/px is outside the {MIN_SPACING_UM:.3g} to '
                    f'{MAX_SPACING_UM:g} um/px a TIFF resolution can carry'
                )
            object.__setattr__(self, name, value)
        if self.merge not in MERGE_RULES:
            raise InvalidOptionError(
                f'merge rule must be one of {", ".join(MERGE_RULES)}, got {self.merge!r}'
            )
        if self.kind not in KINDS:
            raise InvalidOptionError(
                f'kind must be one of {", ".join(KINDS)}, got {self.kind!r}'
            )
        object.__setattr__(self, 'fill', _checked_fill(self.fill, self.dtype))
        downsample = float(self.slide_downsample)
        if not math.isfinite(downsample) or downsample <= 0:
            raise InvalidOptionError(f'downsample must be a positive number, got {downsample}')
        object.__setattr__(self, 'slide_downsample', downsample)
        object.__setattr__(self, 'classes', _checked_classes(self))

    @property
    def numpy_dtype(self) -> numpy.dtype:
        return numpy.dtype(self.dtype)

    @property
    def shape(self) -> tuple[int, int, int]:
        """Canvas shape as (height, width, channels)."""
        return (self.height, self.width, self.channels)

    @property
    def nbytes(self) -> int:
        return self.height * self.width * self.channels * self.numpy_dtype.itemsize

    def to_attrs(self) -> dict[str, Any]:
        """Plain values for HDF5 attributes / JSON (None spacing as 0)."""
        attrs = dataclasses.asdict(self)
        attrs['spacing_x'] = attrs['spacing_x'] or 0.0
        attrs['spacing_y'] = attrs['spacing_y'] or 0.0
        attrs['classes'] = self.classes.to_json() if self.classes is not None else ''
        return attrs

    @classmethod
    def from_attrs(cls, attrs: Any) -> CanvasSpec:
        """Inverse of :meth:`to_attrs`; tolerant of numpy scalar types."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for key in fields:
            if key not in attrs:
                continue
            value = attrs[key]
            if isinstance(value, bytes):
                value = value.decode()
            elif isinstance(value, numpy.generic):
                value = value.item()
            values[key] = value
        for key in ('spacing_x', 'spacing_y'):
            if not values.get(key):
                values[key] = None
        if values.get('classes'):
            from .classes import ClassTable

            values['classes'] = ClassTable.from_json(values['classes'])
        else:
            values.pop('classes', None)
        return cls(**values)

    def replace(self, **changes: Any) -> CanvasSpec:
        return dataclasses.replace(self, **changes)


def _checked_classes(spec: CanvasSpec) -> Any:
    """The class table, parsed, and fitting the canvas: label values the dtype
    holds (kind labels), or channel numbers (kind probability: names for
    ``finalize(reduce='argmax')``)."""
    if spec.classes is None:
        return None
    from .classes import parse_classes

    table = parse_classes(spec.classes)
    if table is None:
        return None
    if spec.kind == 'image':
        raise InvalidOptionError('classes name label values or channels; an image canvas has neither')
    if spec.kind == 'probability':
        top, what = spec.channels - 1, f'channel numbers 0 to {spec.channels - 1}'
    elif spec.numpy_dtype.kind == 'f':
        top, what = 2**24, 'integers up to 2**24 (float32 labels)'
    else:
        top = int(numpy.iinfo(spec.numpy_dtype).max)
        what = f'label values 0 to {top} ({spec.dtype})'
    outside = [value for value in table.values if value > top]
    if outside:
        raise InvalidOptionError(
            f'class value(s) {", ".join(map(str, outside[:5]))} do not fit this canvas: classes '
            f'of a {spec.kind} canvas are {what}'
        )
    return table


def _is_dtype(value: Any) -> bool:
    try:
        numpy.dtype(value)
    except TypeError:
        return False
    return True


def _checked_fill(fill: Any, dtype: str) -> float | int:
    """The fill value as a Python number exactly representable in dtype."""
    try:
        value = float(fill)
    except (TypeError, ValueError):
        raise InvalidOptionError(f'fill must be a number, got {fill!r}') from None
    npdtype = numpy.dtype(dtype)
    if npdtype.kind == 'f':
        if math.isnan(value):
            return value
        if not math.isfinite(value) or numpy.float32(value) != value:
            raise InvalidOptionError(f'fill {fill!r} is not exactly representable as {dtype}')
        return value
    info = numpy.iinfo(npdtype)
    if not value.is_integer() or not info.min <= value <= info.max:
        raise InvalidOptionError(
            f'fill must be an integer from {info.min} to {info.max} for {dtype}, got {fill!r}'
        )
    return int(value)
