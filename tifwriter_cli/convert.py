"""Bring a patch into the canvas' shape and pixel type, never silently lossy.

Conversion modes (``--convert`` on the CLI, ``convert=`` in the API):

``exact`` (default)
    Values are stored only if every one is representable in the canvas dtype
    (e.g. int64 labels 0..5 into uint8 are fine, float 0.3 into uint8 or 300
    into uint8 are refused with :class:`~tifwriter_cli.errors.LossyConversionError`).
``scale``
    Floating-point values in [0, 1] are scaled to the integer canvas' full
    range (0..255 for uint8, 0..65535 for uint16, ...) and rounded to
    nearest. Values outside [0, 1] are refused. For a float32 canvas, values
    are stored as they are.
``clip``
    Round to nearest and clip to the dtype's range (explicitly lossy).
"""

from __future__ import annotations

import warnings

import numpy

from .errors import LossyConversionError, PatchError
from .spec import CanvasSpec
from .vocab import CONVERT_MODES

__all__ = ['as_canvas_patch']



def as_canvas_patch(
    array: numpy.ndarray, spec: CanvasSpec, *, convert: str = 'exact'
) -> numpy.ndarray:
    """Return ``array`` as an (H, W, C) array of the canvas dtype.

    Accepts (H, W) for one-channel canvases and (H, W, C) with C matching.
    """
    if convert not in CONVERT_MODES:
        raise PatchError(f'convert must be one of {", ".join(CONVERT_MODES)}, got {convert!r}')
    array = numpy.asarray(array)
    if array.ndim == 2:
        if spec.channels != 1:
            raise PatchError(
                f'patch has shape {array.shape} (1 channel) but the canvas has '
                f'{spec.channels} channels'
            )
        array = array[:, :, numpy.newaxis]
    elif array.ndim == 3:
        if array.shape[2] != spec.channels:
            hint = ''
            if array.shape[0] == spec.channels:
                hint = '; it looks channel-first (C, H, W): pass array.transpose(1, 2, 0)'
            raise PatchError(
                f'patch has {array.shape[2]} channels (shape {array.shape}) but the '
                f'canvas has {spec.channels}{hint}'
            )
    else:
        raise PatchError(f'patch must be 2-D (H, W) or 3-D (H, W, C), got shape {array.shape}')
    if array.dtype.kind not in 'biuf':
        raise PatchError(f'patch dtype {array.dtype} is not numeric')
    target = spec.numpy_dtype
    if array.dtype == target:
        return array
    # NaN and overflow are handled explicitly below; numpy's own
    # RuntimeWarnings ("All-NaN slice", "overflow in cast") would only leak
    # to the user's terminal as noise.
    with numpy.errstate(all='ignore'), warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        if convert == 'scale':
            return _scaled(array, target)
        if convert == 'clip':
            return _clipped(array, target)
        return _exact(array, target, labels=spec.kind == 'labels')


def _overflowing(array: numpy.ndarray, target: numpy.dtype) -> float | None:
    """The largest finite magnitude of ``array`` beyond a float ``target``'s range, or None."""
    if array.dtype.kind != 'f' or array.dtype.itemsize <= target.itemsize or not array.size:
        return None
    finite = numpy.abs(array[numpy.isfinite(array)])
    if finite.size and finite.max() > numpy.finfo(target).max:
        return float(finite.max())
    return None


def _exact(array: numpy.ndarray, target: numpy.dtype, *, labels: bool = False) -> numpy.ndarray:
    if numpy.can_cast(array.dtype, target, casting='safe'):
        return array.astype(target)
    if array.size == 0:
        return array.astype(target)
    if target.kind == 'f':
        too_large = _overflowing(array, target)
        if too_large is not None:
            raise LossyConversionError(
                f'patch values up to {too_large:g} exceed the {target} range '
                f"(±{float(numpy.finfo(target).max):.4g}); use convert='clip' to clip them"
            )
        converted = array.astype(target)
        same = converted.astype(array.dtype) == array
        if array.dtype.kind == 'f':
            same |= numpy.isnan(array)
        if not same.all():
            raise LossyConversionError(
                f'patch values ({array.dtype}) cannot be stored as {target} without loss '
                "(use convert='clip' to round)"
            )
        return converted
    info = numpy.iinfo(target)
    if array.dtype.kind == 'f':
        finite = numpy.isfinite(array).all()
        integral = finite and bool((numpy.floor(array) == array).all())
        if not integral:
            if numpy.isnan(array).all():
                raise LossyConversionError(
                    f'patch holds only NaN, which a {target} canvas cannot store '
                    "(use convert='clip' to store 0)"
                )
            values = array[numpy.isfinite(array)]  # (nanmin warns on all-NaN data)
            low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
            if labels:
                # Scaling would turn probabilities into 256 "classes".
                hint = (
                    ": class labels are integers; for probabilities or heatmaps create the "
                    "canvas with kind='probability' (float32), for labels saved as floats "
                    "use convert='clip'"
                )
            elif 0.0 <= low and high <= 1.0:
                hint = (
                    " (values look like probabilities 0..1: use convert='scale' to map them "
                    f'to 0..{info.max})'
                )
            else:
                hint = " (use convert='clip' to round and clip)"
            raise LossyConversionError(
                f'patch holds non-integer {array.dtype} values that a {target} canvas '
                f'cannot store{hint}'
            )
    low, high = array.min(), array.max()
    if low < info.min or high > info.max:
        raise LossyConversionError(
            f'patch values {low}..{high} do not fit {target} ({info.min}..{info.max}); '
            "use convert='clip' to clip them"
        )
    return array.astype(target)


def _scaled(array: numpy.ndarray, target: numpy.dtype) -> numpy.ndarray:
    if array.dtype.kind != 'f':
        raise PatchError(
            f"convert='scale' maps floats in 0..1; this patch is {array.dtype}"
        )
    if target.kind == 'f':
        too_large = _overflowing(array, target)
        if too_large is not None:
            raise LossyConversionError(
                "convert='scale' stores a float canvas's values as they are; values up to "
                f'{too_large:g} exceed the {target} range (±{float(numpy.finfo(target).max):.4g})'
            )
        return array.astype(target)
    # NaN first: numpy's nanmin/nanmax warn on all-NaN data.
    if numpy.isnan(array).any():
        raise LossyConversionError(
            "convert='scale' cannot store NaN in an integer canvas "
            "(convert='clip' stores NaN as 0; a float32 canvas keeps it)"
        )
    if array.size and not (array.min() >= 0.0 and array.max() <= 1.0):
        raise LossyConversionError(
            "convert='scale' needs values in 0..1; this patch has "
            f'{array.min()}..{array.max()}'
        )
    info = numpy.iinfo(target)
    return numpy.rint(array.astype(numpy.float64) * info.max).astype(target)


def _clipped(array: numpy.ndarray, target: numpy.dtype) -> numpy.ndarray:
    if target.kind == 'f':
        if _overflowing(array, target) is not None:
            # Finite values beyond the range clip to its ends (inf stays inf).
            largest = numpy.finfo(target).max
            finite = numpy.isfinite(array)
            array = numpy.where(finite, numpy.clip(array, -largest, largest), array)
        return array.astype(target)
    info = numpy.iinfo(target)
    values = array
    if array.dtype.kind == 'f':
        values = numpy.nan_to_num(numpy.rint(array), nan=0.0)
    return numpy.clip(values, info.min, info.max).astype(target)
