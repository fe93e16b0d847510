"""Reference slides: their geometry, and canvases that overlay them exactly.

A prediction canvas made "like" a slide covers the whole slide at a lower
resolution: one canvas pixel stands for a ``D x D`` block of slide level-0
pixels (``D`` = :attr:`~tifwriter_cli.spec.CanvasSpec.slide_downsample`)::

    canvas pixel (cx, cy)  <->  slide level-0 area [cx*D, (cx+1)*D) x [cy*D, (cy+1)*D)

Viewers that go by pixel size (QuPath, OpenSlide-based tools) align two
images by their physical size, so the canvas gets the slide's pixel size
times ``D`` and both images start at the same corner. ASAP's overlay panel
ignores pixel sizes: it scales the overlay by the integer ratio
``slide_width // canvas_width`` and shows nothing unless
``slide_height // canvas_height`` gives the same number. So by default
(``edge='drop'``) the canvas is ``floor(slide_width / D)`` pixels wide: for
an integer ``D`` both ratios are then exactly ``D`` (whenever the canvas is
at least ``D`` pixels on each side), and the slide's last partial block
(fewer than ``D`` slide pixels at the right and bottom edges, nearly always
glass) is left out. ``edge='cover'`` sizes it ``ceil(slide_width / D)``
instead: the last column and row cover that partial block, reaching up to
``D - 1`` slide pixels past the slide's edge, but unless the slide's sides
are multiples of ``D`` ASAP's ratio is off by one on an axis and its panel
shows nothing (a warning is logged). Either way nothing is stretched:
every canvas pixel sits exactly on its block.

Slides are read by :func:`tifwriter_cli.slide_reader.read_slide_geometry`
(OpenSlide, else :mod:`tifwriter_cli.tiff.read`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import operator
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .errors import InvalidOptionError
from .vocab import COORDS, EDGES

if TYPE_CHECKING:
    from .spec import CanvasSpec

__all__ = [
    'SlideGeometry',
    'CanvasGeometry',
    'canvas_from_slide',
    'slide_to_canvas',
    'canvas_position',
    'COORDS_CHOICES',
    'canvas_to_slide',
    'EDGE_CHOICES',
]

logger = logging.getLogger(__name__)

#: Relative tolerance under which a computed downsample is taken to be the
#: integer next to it (0.25 um/px slides written as 0.2500001, ...).
_INTEGER_SNAP = 1e-6

#: How a canvas at downsample D meets the slide's right and bottom edges:
#: 'drop' = floor(slide / D) (ASAP's overlay panel places it), 'cover' =
#: ceil(slide / D) (covers the last partial block).
EDGE_CHOICES = EDGES


@dataclasses.dataclass(frozen=True)
class SlideGeometry:
    """Size, pixel size and pyramid of a slide, as a viewer sees it.

    ``width``/``height`` are level 0 in pixels; ``mpp_x``/``mpp_y`` are
    micrometres per level-0 pixel, or None when the file does not say.
    ``level_dimensions`` are (width, height) per level, level 0 first;
    ``level_downsamples`` follow OpenSlide's definition (mean of the width
    and height ratios to level 0). ``reader`` is 'openslide' or 'tifffile'.
    """

    path: str
    width: int
    height: int
    mpp_x: float | None
    mpp_y: float | None
    level_dimensions: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    reader: str

    @property
    def level_count(self) -> int:
        return len(self.level_dimensions)


@dataclasses.dataclass(frozen=True)
class CanvasGeometry:
    """A canvas that overlays a slide: size, spacing and slide downsample."""

    width: int
    height: int
    spacing_x: float | None
    spacing_y: float | None
    #: Slide level-0 pixels per canvas pixel (the same on both axes).
    slide_downsample: float

    def to_spec_fields(self) -> dict[str, Any]:
        """The matching :class:`~tifwriter_cli.spec.CanvasSpec` keyword arguments."""
        return dataclasses.asdict(self)


# -- canvases ------------------------------------------------------------
def canvas_from_slide(
    geometry: SlideGeometry,
    *,
    downsample: float | None = None,
    level: int | None = None,
    spacing: float | None = None,
    edge: str = 'drop',
) -> CanvasGeometry:
    """The canvas overlaying ``geometry`` at a lower resolution.

    Give at most one of:

    * ``downsample`` D (>= 1): canvas pixel = D x D slide level-0 pixels;
      size ``floor(slide / D)`` (at least 1) with ``edge='drop'``, the
      default, which ASAP's overlay panel places exactly for an integer D;
      ``ceil(slide / D)`` with ``edge='cover'`` (covers the slide's last
      partial block, but ASAP's panel may not show it).
    * ``level`` L: the slide's own level-L size, with D the integer
      downsample that produced it (``level == ceil`` or ``floor`` of
      ``slide / D`` on both axes; pyramids are powers of two); when no
      integer explains the level's size, D = slide width / level width.
      The canvas then has exactly the shape OpenSlide's ``read_region``
      gives at that level, so level-L patch coordinates are canvas ones.
      ``edge`` does not apply.
    * ``spacing`` S (micrometres per pixel wanted): D = S / slide mpp-x
      (needs the slide's pixel size), sized by ``edge`` as for downsample.

    None of them: D = 1, the slide's own size. The spacing is always the
    slide's times D on each axis (square blocks; the canvas keeps the
    slide's pixel aspect). A slide without a pixel size gives a canvas
    without one (a warning is logged: viewers then cannot align by
    physical size). A canvas ASAP's overlay panel will not show logs one
    warning saying how to fix it.
    """
    given = [name for name, value in
             (('downsample', downsample), ('level', level), ('spacing', spacing))
             if value is not None]
    if len(given) > 1:
        raise InvalidOptionError(
            f'give only one of downsample, level and spacing, got {" and ".join(given)}'
        )
    if edge not in EDGE_CHOICES:
        raise InvalidOptionError(f'edge must be one of {", ".join(EDGE_CHOICES)}, got {edge!r}')
    if level is not None:
        width, height, factor = _level_canvas(geometry, level)
    else:
        if spacing is not None:
            factor = _downsample_for_spacing(geometry, spacing)
        else:
            factor = _checked_downsample(1.0 if downsample is None else downsample)
        round_up = edge == 'cover'
        width = _divide(geometry.width, factor, round_up=round_up)
        height = _divide(geometry.height, factor, round_up=round_up)
    _warn_unless_asap_overlays(
        geometry, width, height, factor, sized_by='level' if level is not None else edge
    )
    if geometry.mpp_x is None:
        logger.warning(
            'slide %s has no pixel size: the canvas gets none, viewers cannot align it '
            'by physical size',
            geometry.path,
        )
        spacing_x = spacing_y = None
    else:
        spacing_x = geometry.mpp_x * factor
        spacing_y = (geometry.mpp_y or geometry.mpp_x) * factor
        if spacing is not None:
            spacing_x = float(spacing)  # exactly what was asked, no float drift
    return CanvasGeometry(
        width=width,
        height=height,
        spacing_x=spacing_x,
        spacing_y=spacing_y,
        slide_downsample=factor,
    )


def _warn_unless_asap_overlays(
    geometry: SlideGeometry, width: int, height: int, factor: float, *, sized_by: str
) -> None:
    """Log one warning when ASAP's overlay panel would not place this canvas.

    ASAP 2 (VisualizationWorkstationExtensionPlugin.cpp) scales an overlay
    by ``slide // overlay`` per axis, ignoring pixel sizes, and shows it
    only when both ratios are equal. For an integer D the ratio must also
    be D to draw it at the right size; a fractional D cannot be matched by
    an integer ratio at all, so only the equality is checked there.
    """
    scales = (geometry.width // width, geometry.height // height)
    if scales[0] == scales[1] and (not factor.is_integer() or scales[0] == factor):
        return
    if not factor.is_integer():
        remedy = 'an integer downsample (with --edge drop) fixes that'
    elif sized_by == 'cover':
        remedy = '--edge drop (floor(slide / D), the default) fixes that'
    elif sized_by == 'level':
        remedy = f'--downsample {factor:g} (with --edge drop) instead of --level fixes that'
    else:  # drop with an integer D: only a canvas under D pixels on a side gets here
        remedy = 'the canvas is under D pixels on a side; a smaller downsample fixes that'
    logger.warning(
        "canvas %d x %d over slide %s (%d x %d, downsample %g): ASAP's overlay panel will not "
        'show it (it needs slide // canvas to be the same on both axes%s, got %d and %d); %s',
        width, height, geometry.path, geometry.width, geometry.height, factor,
        ' and equal to the downsample' if factor.is_integer() else '',
        scales[0], scales[1], remedy,
    )


def _checked_downsample(value: float) -> float:
    try:
        factor = float(value)
    except (TypeError, ValueError):
        raise InvalidOptionError(f'downsample must be a number, got {value!r}') from None
    if not math.isfinite(factor) or factor <= 0:
        raise InvalidOptionError(f'downsample must be a positive number, got {value!r}')
    factor = _snap(factor)
    if factor < 1:
        raise InvalidOptionError(
            f'downsample must be at least 1 (a canvas cannot be finer than the slide), '
            f'got {factor:g}'
        )
    return factor


def _downsample_for_spacing(geometry: SlideGeometry, spacing: float) -> float:
    try:
        target = float(spacing)
    except (TypeError, ValueError):
        raise InvalidOptionError(f'spacing must be a number, got {spacing!r}') from None
    if not math.isfinite(target) or target <= 0:
        raise InvalidOptionError(
            f'spacing must be a positive number of micrometres per pixel, got {spacing!r}'
        )
    if geometry.mpp_x is None:
        raise InvalidOptionError(
            f'slide {geometry.path} has no pixel size, so a target spacing cannot be '
            'turned into a downsample: give --downsample or --level instead'
        )
    factor = _snap(target / geometry.mpp_x)
    if factor < 1:
        raise InvalidOptionError(
            f'spacing {target:g} um/px is finer than the slide ({geometry.mpp_x:g} um/px); '
            'a canvas cannot be finer than the slide'
        )
    return factor


def _level_canvas(geometry: SlideGeometry, level: Any) -> tuple[int, int, float]:
    try:
        level = operator.index(level)
    except TypeError:
        raise InvalidOptionError(f'level must be an integer, got {level!r}') from None
    if not 0 <= level < geometry.level_count:
        raise InvalidOptionError(
            f'slide {geometry.path} has levels 0 to {geometry.level_count - 1}, not {level} '
            f'({"; ".join(level_summary(geometry))})'
        )
    width, height = geometry.level_dimensions[level]
    return width, height, _level_downsample(geometry.width, geometry.height, width, height)


def _level_downsample(slide_w: int, slide_h: int, level_w: int, level_h: int) -> float:
    """The integer D that turned the slide into this level, else slide_w / level_w."""
    estimate = round(slide_w / level_w)
    for candidate in (estimate, estimate - 1, estimate + 1):
        if candidate >= 1 and all(
            size in (math.floor(full / candidate), math.ceil(full / candidate))
            for full, size in ((slide_w, level_w), (slide_h, level_h))
        ):
            return float(candidate)
    return _snap(slide_w / level_w)


def _snap(factor: float) -> float:
    nearest = round(factor)
    if nearest >= 1 and abs(factor - nearest) <= _INTEGER_SNAP * nearest:
        return float(nearest)
    return factor


def _divide(size: int, factor: float, *, round_up: bool) -> int:
    """ceil or floor of size / factor, at least 1, immune to float noise
    (125.0000000001 and 124.9999999999 are both 125)."""
    if float(factor).is_integer():
        quotient, remainder = divmod(size, int(factor))
        return max(1, quotient + (1 if round_up and remainder else 0))
    quotient = size / factor
    nearest = round(quotient)
    if abs(quotient - nearest) <= 1e-9 * max(1.0, quotient):
        return max(1, int(nearest))
    return max(1, math.ceil(quotient) if round_up else math.floor(quotient))


# -- coordinates -----------------------------------------------------------
def slide_to_canvas(x: Any, y: Any, downsample: float) -> tuple[Any, Any]:
    """Canvas pixel holding slide level-0 pixel (x, y): ``(floor(x / D), floor(y / D))``.

    For writers that receive patch positions in slide level-0 coordinates
    (``--coords slide``): a patch computed for slide area starting at
    (x, y) goes to canvas (cx, cy). The patch data itself must already be at
    canvas resolution. Works on ints (returns ints) and numpy arrays;
    negative positions floor towards minus infinity (the block left of 0).
    Integer D uses exact integer division.
    """
    import numpy

    factor = float(downsample)
    if not math.isfinite(factor) or factor <= 0:
        raise InvalidOptionError(f'downsample must be a positive number, got {downsample!r}')
    result = []
    for value in (x, y):
        if isinstance(value, numpy.ndarray):
            if factor.is_integer() and value.dtype.kind in 'iu':
                result.append(numpy.floor_divide(value, int(factor)))
            else:
                quotient = value / factor
                nearest = numpy.round(quotient)
                snapped = numpy.where(numpy.abs(quotient - nearest) <= _INTEGRAL_TOLERANCE, nearest, quotient)
                result.append(numpy.floor(snapped).astype(numpy.int64))
        elif factor.is_integer() and isinstance(value, (int, numpy.integer)):
            result.append(int(value) // int(factor))
        else:
            quotient = value / factor
            nearest = round(quotient)
            # A quotient meant to be integral (3 / 0.1) comes out a hair
            # off with downsamples binary floats cannot hold exactly.
            result.append(int(nearest) if abs(quotient - nearest) <= _INTEGRAL_TOLERANCE else math.floor(quotient))
    return result[0], result[1]


#: How far from an integer a slide / downsample quotient may be and still be
#: taken as that integer (float error of decimal downsamples like 0.1).
_INTEGRAL_TOLERANCE = 1e-6



#: What ``--coords`` / ``coords=`` accept: where a patch's x, y are given.
COORDS_CHOICES = COORDS


def canvas_position(x: int, y: int, *, coords: str, spec: CanvasSpec) -> tuple[int, int]:
    """Canvas pixel of a patch's top-left corner given in ``coords``: the
    placement rule of write-patch, ingest-npy-dir and the API alike.

    ``slide``: x, y are slide level-0 pixels, mapped by :func:`slide_to_canvas`
    (the canvas pixel containing that slide pixel). The patch's pixels
    themselves are canvas pixels either way.
    """
    if coords not in COORDS_CHOICES:
        raise InvalidOptionError(f'coords must be one of {", ".join(COORDS_CHOICES)}, got {coords!r}')
    if coords == 'canvas' or spec.slide_downsample == 1.0:
        return x, y
    return slide_to_canvas(x, y, spec.slide_downsample)


def canvas_to_slide(cx: Any, cy: Any, downsample: float) -> tuple[Any, Any]:
    """Slide level-0 position of canvas pixel (cx, cy)'s top-left corner (cx*D, cy*D)."""
    factor = float(downsample)
    return cx * factor, cy * factor


def level_summary(geometry: SlideGeometry) -> Sequence[str]:
    """One 'L: WxH (downsample)' string per level, for messages."""
    return [
        f'{i}: {w}x{h} (x{d:g})'
        for i, ((w, h), d) in enumerate(zip(geometry.level_dimensions, geometry.level_downsamples, strict=True))
    ]
