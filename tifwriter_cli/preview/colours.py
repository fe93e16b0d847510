"""Colours of a preview: the fixed label palette, viridis, and how samples become RGB.

A class keeps its colour across files and versions (:data:`LABEL_PALETTE`,
the class table's default palette, visible over H&E), unless the canvas'
class table gives it another;
probabilities go through :data:`VIRIDIS`; images are shown as they are.
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from ..classes import default_colour

__all__ = [
    'BLACK',
    'LABEL_PALETTE',
    'MAX_GUESSED_CLASSES',
    'VIRIDIS',
    'WHITE',
    'colourize',
    'guess_kind',
    'image_rgb',
    'label_colours',
    'range_of',
]

#: Kind guess for a TIFF without provenance: an integer map with at most
#: this many distinct values is taken for labels.
MAX_GUESSED_CLASSES = 32


def _hex_colours(text: str) -> numpy.ndarray:
    return numpy.array(
        [[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in text.split()], dtype=numpy.uint8
    )


def _build_label_palette() -> numpy.ndarray:
    # The class table's default palette (tifwriter_cli.classes): one rule for
    # the colour of a label value, in previews and exported annotations alike,
    # every colour at least 45 Delta E from the H&E stain colours.
    from ..classes import DEFAULT_PALETTE

    palette = _hex_colours(' '.join(DEFAULT_PALETTE))
    palette.setflags(write=False)
    return palette


#: Fixed colour of label classes 0..255 (RGB uint8), visible over H&E.
LABEL_PALETTE: numpy.ndarray = _build_label_palette()


def _build_viridis() -> numpy.ndarray:
    # Viridis (S. van der Walt, N. Smith; CC0), every 8th entry of the
    # 256-entry map in 8-bit RGB; linear interpolation between these 33
    # stops is within 2/255 of the full table on every channel.
    stops = _hex_colours(
        '440154 470d60 48186a 482374 472d7b 453781 424086 3e4989 3b528b 375b8d 33638d '
        '2f6b8e 2c728e 297a8e 26828e 23898e 21918c 1f978b 1f9f88 21a685 27ad81 31b57b '
        '3dbc74 4cc26c 5cc863 6ece58 81d34d 95d840 aadc32 c0df25 d5e21a eae51a fde725'
    ).astype(float)
    positions = numpy.rint(numpy.linspace(0, 255, len(stops)))
    x = numpy.arange(256)
    lut = numpy.stack([numpy.interp(x, positions, stops[:, c]) for c in range(3)], axis=1)
    lut = numpy.rint(lut).astype(numpy.uint8)
    lut.setflags(write=False)
    return lut


#: Perceptual colour map for probabilities, 256 x RGB uint8.
VIRIDIS: numpy.ndarray = _build_viridis()

WHITE = numpy.array([255, 255, 255], dtype=numpy.uint8)
BLACK = numpy.array([0, 0, 0], dtype=numpy.uint8)


def label_colours(classes: numpy.ndarray, table: Any = None) -> numpy.ndarray:
    """RGB of each class value (any integer shape -> shape + (3,)): the class
    table's colour where ``table`` names the value, else the fixed palette's."""
    classes = numpy.asarray(classes, dtype=numpy.int64)
    index = numpy.where(classes < 256, classes, 1 + (classes - 1) % 255)
    rgb = LABEL_PALETTE[numpy.clip(index, 0, 255)]
    if table is not None:
        rgb = numpy.array(rgb)  # a 0-d index is a view of the read-only palette
        for entry in table:
            if entry.colour != default_colour(entry.value):
                rgb[classes == entry.value] = entry.colour
    return rgb


def guess_kind(samples: numpy.ndarray) -> str:
    """What an unlabelled TIFF holds, from its pixels (see module doc)."""
    channels = samples.shape[-1]
    if samples.dtype.kind == 'f':
        return 'probability'
    if channels in (3, 4):
        return 'image'
    if channels == 1 and len(numpy.unique(samples)) <= MAX_GUESSED_CLASSES:
        return 'labels'
    return 'probability'


def colourize(
    samples: numpy.ndarray, data_kind: str, fill: float, table: Any = None
) -> tuple[numpy.ndarray, numpy.ndarray, str, tuple[int, ...], tuple[float, float] | None]:
    """(RGB, opacity 0..1 over a slide, rendering, classes, colour-map range)."""
    channels = samples.shape[-1]
    is_fill = _equals_fill(samples, fill).all(axis=-1)
    if data_kind == 'image':
        rgb, opacity = image_rgb(samples)
        if channels not in (2, 4):
            opacity = numpy.where(is_fill, 0.0, opacity)
        return rgb, opacity, 'rgb', (), None
    if channels == 1 and data_kind == 'probability':
        scaled, value_range = _unit_scale(samples[..., 0])
        index = numpy.rint(numpy.nan_to_num(scaled, nan=0.0) * 255).astype(numpy.intp)
        rgb = VIRIDIS[index]
        opacity = numpy.where(is_fill | numpy.isnan(scaled), 0.0, 1.0)
        return rgb, opacity, 'colormap', (), value_range
    if channels == 1:
        values = samples[..., 0]
        if values.dtype.kind == 'f':
            values = numpy.clip(numpy.nan_to_num(values, nan=0.0), 0, 2**32 - 1)
            values = numpy.floor(values)
        classes = values.astype(numpy.int64)
        rendering = 'labels'
    else:
        # Scores per class: the winning channel is the class.
        classes = numpy.argmax(numpy.nan_to_num(samples, nan=-numpy.inf), axis=-1)
        rendering = 'argmax'
    present = tuple(int(c) for c in numpy.unique(classes))
    opacity = numpy.where(is_fill | (classes == 0), 0.0, 1.0)
    return label_colours(classes, table), opacity, rendering, present, None


def _equals_fill(samples: numpy.ndarray, fill: float) -> numpy.ndarray:
    if isinstance(fill, float) and math.isnan(fill):
        return numpy.isnan(samples) if samples.dtype.kind == 'f' else numpy.zeros(samples.shape, bool)
    return samples == samples.dtype.type(fill)


def range_of(dtype: numpy.dtype) -> tuple[float, float]:
    if dtype.kind == 'f':
        return 0.0, 1.0
    info = numpy.iinfo(dtype)
    return float(info.min), float(info.max)


def _unit_scale(values: numpy.ndarray) -> tuple[numpy.ndarray, tuple[float, float]]:
    """Values mapped to 0..1 over the dtype's range (floats: 0..1), clipped; NaN kept."""
    lo, hi = range_of(values.dtype)
    scaled = (values.astype(numpy.float64) - lo) / (hi - lo)
    return numpy.clip(scaled, 0.0, 1.0), (lo, hi)


def _to_8bit(values: numpy.ndarray) -> numpy.ndarray:
    if values.dtype == numpy.uint8:
        return values
    scaled, _ = _unit_scale(values)
    return numpy.rint(numpy.nan_to_num(scaled, nan=0.0) * 255).astype(numpy.uint8)


def image_rgb(samples: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
    """RGB over white and opacity for 1 (grey), 2 (grey+alpha), 3, 4 (RGBA) or more channels."""
    channels = samples.shape[-1]
    pixels = _to_8bit(samples)
    if channels in (1, 2):
        colour = numpy.repeat(pixels[..., :1], 3, axis=-1)
    else:
        colour = pixels[..., :3]
    opacity = numpy.ones(samples.shape[:2])
    if channels in (2, 4):
        opacity = pixels[..., -1].astype(numpy.float64) / 255
        over_white = colour * opacity[..., None] + 255.0 * (1 - opacity[..., None])
        colour = numpy.rint(over_white).astype(numpy.uint8)
        # Over a slide the alpha itself says how much shows.
    return numpy.ascontiguousarray(colour), opacity
