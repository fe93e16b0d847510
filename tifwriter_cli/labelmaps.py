"""Label maps finalize derives from a canvas, and its census of label values.

``finalize(argmax=True)`` turns an N-channel canvas (class probabilities or
scores) into a uint8 label map: each pixel gets the number of its largest
channel (ties: the lowest channel; NaN counts as the smallest value, so a
pixel whose channels are all NaN gets 0). ``finalize(threshold=T,
channel=C)`` makes a binary mask: 1 where channel C is at least T, else 0
(NaN gives 0). For a ``probability`` canvas with an integer dtype, T is a
probability in 0..1 and a stored value v stands for ``v / dtype max`` (the
``convert='scale'`` rule: 255 is 1.0 in uint8); otherwise T is compared
with the stored values as they are.

Both read the staged canvas once, while the TIFF is written
(:class:`ReducedSource` wraps the source finalize reads): no second staging
unit, no second pass. The result is a ``labels`` canvas (``mode``
pyramid), named by the class table given, else by the canvas' own table of
channel names.

:class:`LabelCensus` counts, while finalize reads them, the label values
that a canvas' class table does not name; finalize reports them (how many
pixels, which values) instead of writing a TIFF whose legend silently
lacks them.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy

from .classes import ClassTable, LabelClass, parse_classes
from .errors import InvalidOptionError
from .sources import CanvasSource, DerivedSource
from .spec import CanvasSpec

__all__ = ['LabelCensus', 'ReducedSource', 'derive_source', 'reduced_spec']


def reduced_spec(
    spec: CanvasSpec,
    *,
    argmax: bool = False,
    threshold: float | None = None,
    channel: int | None = None,
    classes: Any = None,
) -> tuple[CanvasSpec, Any]:
    """The label canvas a reduction yields and the per-region function that
    makes it (None when nothing is reduced: then only ``classes`` may
    replace the table). Checks every option against the canvas."""
    table = parse_classes(classes) if classes is not None else None
    if argmax and threshold is not None:
        raise InvalidOptionError('give argmax=True or threshold=, not both')
    if channel is not None and threshold is None:
        raise InvalidOptionError('channel= selects the channel of threshold=; give threshold= too')
    if not argmax and threshold is None:
        if table is None:
            return spec, None
        return spec.replace(classes=table), None
    if spec.kind == 'image':
        raise InvalidOptionError('argmax and threshold reduce probabilities or scores, not an image canvas')
    if argmax:
        if spec.channels < 2:
            raise InvalidOptionError(
                f'argmax needs a canvas of 2 or more channels; this one has {spec.channels} '
                '(threshold= makes a mask of one channel)'
            )
        if table is None:
            table = spec.classes  # the canvas' channel names, if any
        reduce = _argmax
        fill_pixel = numpy.full((1, 1, spec.channels), spec.fill, dtype=spec.numpy_dtype)
    else:
        threshold = _checked_threshold(threshold, spec)
        if channel is None:
            if spec.channels != 1:
                raise InvalidOptionError(
                    f'this canvas has {spec.channels} channels: say which to threshold with channel='
                )
            channel = 0
        if isinstance(channel, bool) or not isinstance(channel, (int, numpy.integer)) or not (
            0 <= channel < spec.channels
        ):
            raise InvalidOptionError(f'channel must be 0 to {spec.channels - 1}, got {channel!r}')
        channel = int(channel)
        if table is None and spec.classes is not None and spec.classes.get(channel) is not None:
            name = spec.classes.name_of(channel)
            other = 'background' if name.casefold() != 'background' else 'other'
            table = ClassTable(
                (LabelClass(0, other, spec.classes.colour_of(0) if spec.classes.get(0) else (40, 40, 40)),
                 LabelClass(1, name, spec.classes.colour_of(channel)))
            )
        reduce = _thresholder(threshold, channel, spec)
        fill_pixel = numpy.full((1, 1, spec.channels), spec.fill, dtype=spec.numpy_dtype)
    fill = int(reduce(fill_pixel)[0, 0, 0])
    try:
        derived = spec.replace(channels=1, dtype='uint8', kind='labels', fill=fill, classes=table)
    except InvalidOptionError as exc:
        raise InvalidOptionError(f'classes for the reduced label map: {exc}') from None
    return derived, reduce


def _checked_threshold(value: Any, spec: CanvasSpec) -> float:
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        raise InvalidOptionError(f'threshold must be a number, got {value!r}') from None
    if numpy.isnan(threshold):
        raise InvalidOptionError('threshold must be a number, got NaN')
    if spec.kind == 'probability' and spec.numpy_dtype.kind != 'f' and not 0 <= threshold <= 1:
        top = numpy.iinfo(spec.numpy_dtype).max
        raise InvalidOptionError(
            f'threshold of a {spec.dtype} probability canvas is a probability 0..1 (stored '
            f'{top} is 1.0), got {threshold:g}'
        )
    return threshold


def _argmax(pixels: numpy.ndarray) -> numpy.ndarray:
    if pixels.dtype.kind == 'f':
        pixels = numpy.where(numpy.isnan(pixels), -numpy.inf, pixels)
    return numpy.argmax(pixels, axis=2).astype(numpy.uint8)[:, :, numpy.newaxis]


def _thresholder(threshold: float, channel: int, spec: CanvasSpec):
    if spec.kind == 'probability' and spec.numpy_dtype.kind != 'f':
        # v / max >= T  <=>  v >= T * max; the smallest such integer, exactly.
        top = int(numpy.iinfo(spec.numpy_dtype).max)
        cut = int(numpy.ceil(threshold * top - 1e-9 * top))
        limit = numpy.array(cut, dtype=numpy.int64)

        def reduce(pixels: numpy.ndarray) -> numpy.ndarray:
            return (pixels[:, :, channel : channel + 1] >= limit).astype(numpy.uint8)

        return reduce

    def reduce_float(pixels: numpy.ndarray) -> numpy.ndarray:
        # NaN >= T is False: NaN gives 0.
        return (pixels[:, :, channel : channel + 1] >= threshold).astype(numpy.uint8)

    return reduce_float


class ReducedSource(DerivedSource):
    """A canvas source read through a reduction (see the module docstring)."""

    def __init__(self, source: CanvasSource, spec: CanvasSpec, reduce: Any):
        super().__init__(source, spec)
        self._reduce = reduce

    def read_region(self, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        return self._reduce(self.source.read_region(x, y, width, height))

    # region_is_fill: the source's (its fill reduces to this canvas' fill, reduced_spec).


def derive_source(
    source: CanvasSource,
    *,
    argmax: bool = False,
    threshold: float | None = None,
    channel: int | None = None,
    classes: Any = None,
) -> CanvasSource:
    """``source`` reduced (or renamed by ``classes``) for finalize."""
    spec, reduce = reduced_spec(
        source.spec, argmax=argmax, threshold=threshold, channel=channel, classes=classes
    )
    if reduce is None:
        if spec is source.spec:
            return source
        return ReducedSource(source, spec, lambda pixels: pixels)
    return ReducedSource(source, spec, reduce)


class LabelCensus(DerivedSource):
    """Counts the pixels of label values a class table lacks, as they are read.

    Wraps the source finalize reads (same ``spec``, same pixels); after the
    write, :meth:`unknown` gives {value: pixel count}.
    """

    def __init__(self, source: CanvasSource):
        super().__init__(source)
        self._known = numpy.array(self.spec.classes.values, dtype=numpy.float64)
        self._counts: dict[float, int] = {}
        self._lock = threading.Lock()
        self._fill_known = bool(numpy.isin(float(self.spec.fill), self._known))

    @classmethod
    def applies_to(cls, source: Any) -> bool:
        spec = source.spec
        return spec.kind == 'labels' and spec.classes is not None and spec.channels == 1

    def read_region(self, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        pixels = self.source.read_region(x, y, width, height)
        flat = pixels.reshape(-1)
        unknown = flat[~numpy.isin(flat, self._known)]
        if unknown.size:
            values, counts = numpy.unique(unknown, return_counts=True)
            with self._lock:
                for value, count in zip(values.tolist(), counts.tolist(), strict=True):
                    self._counts[value] = self._counts.get(value, 0) + int(count)
        return pixels

    def region_is_fill(self, x: int, y: int, width: int, height: int) -> bool:
        if not self.source.region_is_fill(x, y, width, height):
            return False
        if not self._fill_known:
            inside_w = max(0, min(x + width, self.spec.width) - max(x, 0))
            inside_h = max(0, min(y + height, self.spec.height) - max(y, 0))
            with self._lock:
                fill = self.spec.fill
                self._counts[fill] = self._counts.get(fill, 0) + inside_w * inside_h
        return True

    def unknown(self) -> dict[int | float, int]:
        """{label value: pixels} of the values the table does not name."""
        return {
            (int(value) if float(value).is_integer() else value): count
            for value, count in sorted(self._counts.items())
        }


def describe_unknown(unknown: dict[Any, int], total_pixels: int) -> str:
    """One line for finalize's report of values outside the class table."""
    pixels = sum(unknown.values())
    shown = ', '.join(f'{value} ({count} px)' for value, count in list(unknown.items())[:10])
    more = f' and {len(unknown) - 10} more' if len(unknown) > 10 else ''
    return (
        f'{pixels} px ({100.0 * pixels / max(1, total_pixels):.3g} %) hold {len(unknown)} label '
        f'value(s) the class table does not name: {shown}{more}; they are drawn and exported '
        'by number (name them with classes=)'
    )
