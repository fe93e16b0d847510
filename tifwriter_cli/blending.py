"""Sliding-window blending: window weights, crop margins, the weighted merge.

Segmentation models run as sliding windows are worse at a window's border
than at its centre. The best pipelines (nnU-Net, MONAI's sliding-window
inference) therefore weight each window before blending overlaps, or crop
its margins; a plain ``mean`` leaves seams where windows meet. This module
holds the pure parts of that, as used by the ``weighted`` merge rule
(docs/guide.md, "Blending sliding windows"):

* **Weight maps** (:func:`weight_map`): ``flat`` (every pixel weight 1),
  ``gaussian`` (nnU-Net's importance map: a separable Gaussian centred on the
  window, sigma a fraction of each side, default 1/8) and ``linear`` (a
  ramp rising over ``ramp`` px from each edge to 1 inside: a trapezoid,
  default ramp a quarter of the shorter side). Towards a side that touches
  the canvas border the weights stay at 1 (:func:`border_sides`): nothing
  else covers the pixels there, and every window meeting that border would
  otherwise weigh them near 0 alike, blending them flatly. Weights are
  quantised to integers 1..4095 (:data:`WEIGHT_SCALE`, 12 bits) so that
  sums are exact and the merge is order-independent (below); the smallest
  weight is 1/4095, never 0, so a pixel only one window covers keeps its
  value. Explicit weight arrays (API) are numbers in 0..1, quantised the
  same way; weight 0 means "does not contribute".
* **Crop margins** (:func:`crop_window`): a window's outer M px are dropped
  on every side except those that touch or cross the canvas border.
* **The weighted mean** (:class:`tifwriter_cli.staging.merge.WeightedAccumulator`,
  with the other merge rules): per pixel
  ``sum(w_i * v_i) / sum(w_i)`` over the covering patches; for integer
  canvases rounded to nearest, ties to even; pixels with no weight get the
  canvas fill.

Why integer weights: with weights in 0..4095 and 8- or 16-bit values every
product and every sum is an integer held exactly, so the result does not
depend on the order patches are merged in, like ``mean``. 8-bit regions sum
in float32 while every pixel's total weight W stays <= 65535 (sums <= 255 *
65535 < 2**24; checked before each add, widened to float64 past it): the
float32 quotient then rounds like the exact one, since it lies at least
1/(2W) > 2**-17 (half a float32 ulp below 256) from any tie (the argument
of :func:`tifwriter_cli.staging.merge._mean_stages`). Wider canvases sum in float64
(exact for 16-bit values). Measured on a checkerboard of windows, 12 bits
blend as smoothly as float weights (largest second difference of the
error 0.50 against 0.47; 8 bits: 1.6; a plain mean: a seam the height of
the windows' disagreement).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy

from .errors import InvalidOptionError, PatchError
from .vocab import BLEND_SHAPES

__all__ = [
    'BLEND_SHAPES',
    'DEFAULT_SIGMA',
    'WEIGHT_SCALE',
    'Blend',
    'CroppedWindow',
    'border_sides',
    'crop_window',
    'explicit_weights',
    'weight_map',
    'window_placement',
]

#: Gaussian sigma as a fraction of the window side (nnU-Net's and MONAI's 1/8).
DEFAULT_SIGMA = 0.125
#: Weights are integers 0..WEIGHT_SCALE standing for 0..1 (12 bits: see above).
WEIGHT_SCALE = 4095


@dataclasses.dataclass(frozen=True)
class Blend:
    """How one window weighs its pixels in a ``weighted`` canvas.

    ``shape``: ``gaussian`` (``sigma`` a fraction of each side), ``linear``
    (ramps ``ramp`` px wide from each edge; None: a quarter of the window's
    shorter side) or ``flat``.
    """

    shape: str = 'gaussian'
    sigma: float = DEFAULT_SIGMA
    ramp: int | None = None

    def __post_init__(self) -> None:
        if self.shape not in BLEND_SHAPES:
            raise InvalidOptionError(f'blend must be one of {", ".join(BLEND_SHAPES)}, got {self.shape!r}')
        sigma = float(self.sigma)
        if not math.isfinite(sigma) or sigma <= 0:
            raise InvalidOptionError(f'sigma must be a positive fraction of the window side, got {self.sigma!r}')
        object.__setattr__(self, 'sigma', sigma)
        if self.ramp is not None:
            if isinstance(self.ramp, bool) or not isinstance(self.ramp, (int, numpy.integer)) or self.ramp < 1:
                raise InvalidOptionError(f'ramp must be a whole number of pixels >= 1, got {self.ramp!r}')
            object.__setattr__(self, 'ramp', int(self.ramp))

    @classmethod
    def of(cls, value: Blend | str | None) -> Blend:
        """A Blend from a Blend, a shape name, or None (``flat``)."""
        if value is None:
            return cls('flat')
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            return cls(value)
        raise InvalidOptionError(f'blend must be a Blend or one of {", ".join(BLEND_SHAPES)}, got {value!r}')

    @classmethod
    def from_options(cls, shape: str | None, *, sigma: float | None = None, ramp: int | None = None) -> Blend | None:
        """The Blend that ``shape``, ``sigma`` and ``ramp`` give (None: none
        given, the canvas default); refuses a parameter of another shape."""
        if shape is None and sigma is None and ramp is None:
            return None
        shape = shape or ('linear' if ramp is not None else 'gaussian')
        if sigma is not None and shape != 'gaussian':
            raise InvalidOptionError(f"sigma is a parameter of blend='gaussian', not of blend={shape!r}")
        if ramp is not None and shape != 'linear':
            raise InvalidOptionError(f"ramp is a parameter of blend='linear', not of blend={shape!r}")
        return cls(shape, sigma=DEFAULT_SIGMA if sigma is None else sigma, ramp=ramp)

    @property
    def parameter(self) -> float:
        """The one number recorded beside the shape: sigma, the ramp (0: default), or 0."""
        if self.shape == 'gaussian':
            return self.sigma
        if self.shape == 'linear':
            return float(self.ramp or 0)
        return 0.0

    @classmethod
    def from_record(cls, shape: str, parameter: float) -> Blend:
        """Inverse of (:attr:`shape`, :attr:`parameter`)."""
        if shape == 'gaussian':
            return cls('gaussian', sigma=parameter)
        if shape == 'linear':
            return cls('linear', ramp=int(parameter) or None)
        return cls(shape)

    def describe(self) -> str:
        """Short text for a placement record: 'gaussian:0.125', 'linear:32', 'flat'."""
        if self.shape == 'gaussian':
            return f'gaussian:{self.sigma:g}'
        if self.shape == 'linear':
            return f'linear:{self.ramp}' if self.ramp else 'linear'
        return 'flat'


def border_sides(
    x: int, y: int, width: int, height: int, *, canvas_width: int, canvas_height: int
) -> tuple[bool, bool, bool, bool]:
    """Which sides (top, bottom, left, right) of a window touch or cross the
    canvas border: ``y <= 0``, ``y + height >= canvas_height``, ``x <= 0``,
    ``x + width >= canvas_width``. Nothing else covers what lies beyond such
    a side, so it is never cropped and its weights do not fall off."""
    return (y <= 0, y + height >= canvas_height, x <= 0, x + width >= canvas_width)


def window_placement(weight: Any, crop_margin: int) -> str:
    """What a window's weight and crop add to its placement record
    (docs/staging-format.md, "Contributions"): restaging with others replaces.
    '' for the defaults, so records of earlier versions still match."""
    text = ''
    if isinstance(weight, (str, Blend)):
        text += f';blend={Blend.of(weight).describe()}'
    elif weight is not None:
        text += ';blend=array'
    if crop_margin:
        text += f';crop={int(crop_margin)}'
    return text


def weight_map(
    blend: Blend, height: int, width: int, *, border: tuple[bool, bool, bool, bool] = (False,) * 4,
    dtype: Any = numpy.uint16,
) -> numpy.ndarray:
    """The (height, width) weights 1..WEIGHT_SCALE of a window (read-only).

    ``border``: the sides touching the canvas border (:func:`border_sides`),
    towards which the weights stay at their peak instead of falling off.
    ``dtype``: uint16, or float32 as the weighted merge adds them (the same
    integers; cached, so no add converts them again).
    """
    key = (blend.shape, blend.parameter, int(height), int(width), tuple(border))
    if numpy.dtype(dtype) == numpy.float32:
        return _float32_weight_map(*key)
    return _weight_map(*key)


@functools.lru_cache(maxsize=64)
def _float32_weight_map(*key: Any) -> numpy.ndarray:
    weights = _weight_map(*key).astype(numpy.float32)
    weights.setflags(write=False)
    return weights


@functools.lru_cache(maxsize=64)
def _weight_map(
    shape: str, parameter: float, height: int, width: int, border: tuple[bool, bool, bool, bool]
) -> numpy.ndarray:
    # Windows of one run are nearly all the same size: computed once.
    if height < 1 or width < 1:
        raise PatchError(f'a window must be at least 1 x 1 px, got {width} x {height}')
    top, bottom, left, right = border
    if shape == 'flat':
        rows, cols = numpy.ones(height), numpy.ones(width)
    elif shape == 'gaussian':
        rows, cols = _gaussian_profile(height, parameter), _gaussian_profile(width, parameter)
    elif shape == 'linear':
        ramp = int(parameter) or max(1, min(height, width) // 4)
        rows, cols = _ramp_profile(height, ramp), _ramp_profile(width, ramp)
    else:
        raise InvalidOptionError(f'unknown blend {shape!r}')
    rows, cols = _flat_towards(rows, top, bottom), _flat_towards(cols, left, right)
    weights = numpy.outer(rows, cols)
    quantised = numpy.clip(numpy.rint(weights * WEIGHT_SCALE), 1, WEIGHT_SCALE).astype(numpy.uint16)
    quantised.setflags(write=False)
    return quantised


def _flat_towards(profile: numpy.ndarray, start: bool, end: bool) -> numpy.ndarray:
    """The profile held at its peak (1) from the peak to a border side."""
    profile = profile.copy()
    peak = len(profile) // 2
    if start:
        profile[:peak] = 1.0
    if end:
        profile[peak:] = 1.0
    return profile


def _gaussian_profile(n: int, sigma_fraction: float) -> numpy.ndarray:
    """exp(-d^2 / (2 s^2)), d from the window's centre, s = sigma * n; peak 1."""
    distance = numpy.arange(n) - (n - 1) / 2.0
    profile = numpy.exp(-0.5 * (distance / (sigma_fraction * n)) ** 2)
    return profile / profile.max()


def _ramp_profile(n: int, ramp: int) -> numpy.ndarray:
    """(d + 1) / (ramp + 1) for a pixel d px in from the nearer edge, 1 from
    d = ramp on; peak 1 (a window narrower than two ramps is a scaled tent)."""
    inward = numpy.minimum(numpy.arange(n), numpy.arange(n)[::-1])
    profile = numpy.minimum(1.0, (inward + 1) / (ramp + 1))
    return profile / profile.max()


def explicit_weights(weights: Any, height: int, width: int) -> numpy.ndarray:
    """An explicit (height, width) weight array in 0..1 as uint16 0..WEIGHT_SCALE."""
    array = numpy.asarray(weights)
    if array.shape != (height, width):
        raise PatchError(f'weight array has shape {array.shape}; the patch is {height} x {width} (H, W)')
    if array.dtype.kind not in 'biuf':
        raise PatchError(f'weight array dtype {array.dtype} is not numeric')
    values = array.astype(numpy.float64)
    if not numpy.isfinite(values).all() or values.min() < 0 or values.max() > 1:
        raise PatchError('weights must be numbers from 0 to 1 (0: the pixel does not contribute)')
    return numpy.rint(values * WEIGHT_SCALE).astype(numpy.uint16)


@dataclasses.dataclass(frozen=True)
class CroppedWindow:
    """What is kept of a window after its crop margin: canvas position and
    size of the kept part, and the slices of the patch array it is."""

    x: int
    y: int
    width: int
    height: int
    rows: slice
    cols: slice


def crop_window(
    x: int, y: int, width: int, height: int, margin: int, *, canvas_width: int, canvas_height: int
) -> CroppedWindow:
    """Drop a window's outer ``margin`` px, except on the sides that touch or
    cross the canvas border (:func:`border_sides`). Raises :class:`PatchError` when the margins
    leave nothing of the window.
    """
    if isinstance(margin, bool) or not isinstance(margin, (int, numpy.integer)) or margin < 0:
        raise InvalidOptionError(f'crop margin must be a whole number of pixels >= 0, got {margin!r}')
    margin = int(margin)
    top, bottom, left, right = (
        0 if touches else margin
        for touches in border_sides(x, y, width, height, canvas_width=canvas_width, canvas_height=canvas_height)
    )
    kept_width, kept_height = width - left - right, height - top - bottom
    if kept_width <= 0 or kept_height <= 0:
        raise PatchError(
            f'a crop margin of {margin} px leaves nothing of a {width} x {height} window at x={x}, y={y}'
        )
    return CroppedWindow(
        x + left, y + top, kept_width, kept_height,
        slice(top, top + kept_height), slice(left, left + kept_width),
    )
