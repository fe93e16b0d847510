"""Legends drawn beside the picture: class swatches, or a colour bar.

The label legend lists the classes present, one swatch and number per row
(:func:`with_label_legend`; class names would go in its label text); the
colour bar shows viridis with its end values (:func:`with_colour_bar`).
Text is drawn with a tiny built-in 5x7 bitmap font (digits, '.', '-', ' ').
"""

from __future__ import annotations

import math

import numpy

from .colours import BLACK, VIRIDIS, label_colours, range_of

__all__ = ['GLYPH_HEIGHT', 'GLYPH_WIDTH', 'draw_text', 'text_width', 'with_colour_bar', 'with_label_legend']

# -- a tiny bitmap font (5x7) for legends ------------------------------------
_GLYPHS = {
    '0': ('01110', '10001', '10011', '10101', '11001', '10001', '01110'),
    '1': ('00100', '01100', '00100', '00100', '00100', '00100', '01110'),
    '2': ('01110', '10001', '00001', '00010', '00100', '01000', '11111'),
    '3': ('11111', '00010', '00100', '00010', '00001', '10001', '01110'),
    '4': ('00010', '00110', '01010', '10010', '11111', '00010', '00010'),
    '5': ('11111', '10000', '11110', '00001', '00001', '10001', '01110'),
    '6': ('00110', '01000', '10000', '11110', '10001', '10001', '01110'),
    '7': ('11111', '00001', '00010', '00100', '01000', '01000', '01000'),
    '8': ('01110', '10001', '10001', '01110', '10001', '10001', '01110'),
    '9': ('01110', '10001', '10001', '01111', '00001', '00010', '01100'),
    '.': ('00000', '00000', '00000', '00000', '00000', '01100', '01100'),
    '-': ('00000', '00000', '00000', '11111', '00000', '00000', '00000'),
    ' ': ('00000',) * 7,
}
_FONT = {
    char: numpy.array([[bit == '1' for bit in row] for row in rows], dtype=bool)
    for char, rows in _GLYPHS.items()
}
GLYPH_WIDTH, GLYPH_HEIGHT = 5, 7


def text_width(text: str, scale: int) -> int:
    return max(0, len(text) * (GLYPH_WIDTH + 1) - 1) * scale


def draw_text(
    pixels: numpy.ndarray, x: int, y: int, text: str, *, scale: int = 1, colour=BLACK
) -> None:
    """Draw digits (and '.', '-', ' ') with their top-left corner at (x, y)."""
    for number, char in enumerate(text):
        glyph = _FONT[char]
        if scale > 1:
            glyph = numpy.kron(glyph, numpy.ones((scale, scale), dtype=bool))
        left = x + number * (GLYPH_WIDTH + 1) * scale
        region = pixels[y : y + glyph.shape[0], left : left + glyph.shape[1]]
        region[glyph[: region.shape[0], : region.shape[1]]] = colour


def _legend_scale(picture_height: int) -> int:
    return 2 if picture_height >= 400 else 1


def _compose(picture: numpy.ndarray, legend: numpy.ndarray) -> numpy.ndarray:
    height = max(picture.shape[0], legend.shape[0])
    pixels = numpy.full((height, picture.shape[1] + legend.shape[1], 3), 255, numpy.uint8)
    pixels[: picture.shape[0], : picture.shape[1]] = picture
    pixels[: legend.shape[0], picture.shape[1] :] = legend
    return pixels


def with_label_legend(picture: numpy.ndarray, classes: tuple[int, ...]) -> numpy.ndarray:
    """A strip of swatch + class number rows, in columns when they do not fit."""
    scale = _legend_scale(picture.shape[0])
    margin, swatch, gap, row_height = 4 * scale, 9 * scale, 3 * scale, 12 * scale
    count = max(1, len(classes))
    fit = (picture.shape[0] - 2 * margin) // row_height
    rows_per_column = min(count, max(min(count, 10), fit))
    columns = math.ceil(count / rows_per_column)
    label_width = max([text_width(str(c), scale) for c in classes] or [0])
    column_width = swatch + gap + label_width + margin
    legend = numpy.full(
        (2 * margin + rows_per_column * row_height, margin + columns * column_width, 3),
        255,
        numpy.uint8,
    )
    for number, value in enumerate(classes):
        column, row = divmod(number, rows_per_column)
        x = margin + column * column_width
        y = margin + row * row_height
        legend[y : y + swatch, x : x + swatch] = BLACK  # border
        legend[y + 1 : y + swatch - 1, x + 1 : x + swatch - 1] = label_colours(numpy.array(value))
        text_y = y + (swatch - GLYPH_HEIGHT * scale) // 2
        draw_text(legend, x + swatch + gap, text_y, str(value), scale=scale)
    return _compose(picture, legend)


def _format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f'{value:g}'


def with_colour_bar(
    picture: numpy.ndarray, value_range: tuple[float, float] | None, dtype: numpy.dtype
) -> numpy.ndarray:
    """A vertical viridis bar, high values on top, with its end values."""
    scale = _legend_scale(picture.shape[0])
    margin, bar_width, gap = 4 * scale, 10 * scale, 3 * scale
    lo, hi = value_range or range_of(dtype)
    top_label, bottom_label = _format_value(hi), _format_value(lo)
    bar_height = max(64 * scale, picture.shape[0] - 2 * margin)
    label_width = max(text_width(top_label, scale), text_width(bottom_label, scale))
    legend = numpy.full(
        (bar_height + 2 * margin, margin + bar_width + gap + label_width + margin, 3),
        255,
        numpy.uint8,
    )
    levels = numpy.rint(numpy.linspace(255, 0, bar_height)).astype(numpy.intp)
    legend[margin : margin + bar_height, margin : margin + bar_width] = VIRIDIS[levels][:, None]
    text_x = margin + bar_width + gap
    draw_text(legend, text_x, margin, top_label, scale=scale)
    draw_text(legend, text_x, margin + bar_height - GLYPH_HEIGHT * scale, bottom_label, scale=scale)
    return _compose(picture, legend)
