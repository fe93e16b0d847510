"""Legends drawn beside the picture: class swatches, or a colour bar.

The label legend lists the classes present, one swatch and number per row
and its name from the class table (:func:`with_label_legend`); the
colour bar shows viridis with its end values (:func:`with_colour_bar`).
Text is drawn with a tiny built-in 5x7 bitmap font (digits, capitals and
the punctuation class names use; names are shown in capitals).
"""

from __future__ import annotations

import math
from typing import Any

import numpy

from .colours import BLACK, VIRIDIS, label_colours, range_of

__all__ = [
    'GLYPH_HEIGHT', 'GLYPH_WIDTH', 'draw_text', 'legend_text', 'text_width', 'with_colour_bar', 'with_label_legend',
]

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
    # Letters (names are drawn in capitals) and the punctuation class names use.
    'A': ('01110', '10001', '10001', '11111', '10001', '10001', '10001'),
    'B': ('11110', '10001', '10001', '11110', '10001', '10001', '11110'),
    'C': ('01110', '10001', '10000', '10000', '10000', '10001', '01110'),
    'D': ('11100', '10010', '10001', '10001', '10001', '10010', '11100'),
    'E': ('11111', '10000', '10000', '11110', '10000', '10000', '11111'),
    'F': ('11111', '10000', '10000', '11110', '10000', '10000', '10000'),
    'G': ('01110', '10001', '10000', '10111', '10001', '10001', '01111'),
    'H': ('10001', '10001', '10001', '11111', '10001', '10001', '10001'),
    'I': ('01110', '00100', '00100', '00100', '00100', '00100', '01110'),
    'J': ('00111', '00010', '00010', '00010', '00010', '10010', '01100'),
    'K': ('10001', '10010', '10100', '11000', '10100', '10010', '10001'),
    'L': ('10000', '10000', '10000', '10000', '10000', '10000', '11111'),
    'M': ('10001', '11011', '10101', '10101', '10001', '10001', '10001'),
    'N': ('10001', '10001', '11001', '10101', '10011', '10001', '10001'),
    'O': ('01110', '10001', '10001', '10001', '10001', '10001', '01110'),
    'P': ('11110', '10001', '10001', '11110', '10000', '10000', '10000'),
    'Q': ('01110', '10001', '10001', '10001', '10101', '10010', '01101'),
    'R': ('11110', '10001', '10001', '11110', '10100', '10010', '10001'),
    'S': ('01111', '10000', '10000', '01110', '00001', '00001', '11110'),
    'T': ('11111', '00100', '00100', '00100', '00100', '00100', '00100'),
    'U': ('10001', '10001', '10001', '10001', '10001', '10001', '01110'),
    'V': ('10001', '10001', '10001', '10001', '10001', '01010', '00100'),
    'W': ('10001', '10001', '10001', '10101', '10101', '10101', '01010'),
    'X': ('10001', '10001', '01010', '00100', '01010', '10001', '10001'),
    'Y': ('10001', '10001', '10001', '01010', '00100', '00100', '00100'),
    'Z': ('11111', '00001', '00010', '00100', '01000', '10000', '11111'),
    '_': ('00000', '00000', '00000', '00000', '00000', '00000', '11111'),
    '(': ('00010', '00100', '01000', '01000', '01000', '00100', '00010'),
    ')': ('01000', '00100', '00010', '00010', '00010', '00100', '01000'),
    ',': ('00000', '00000', '00000', '00000', '01100', '00100', '01000'),
    ':': ('00000', '01100', '01100', '00000', '01100', '01100', '00000'),
    '/': ('00001', '00010', '00010', '00100', '01000', '01000', '10000'),
    '+': ('00000', '00100', '00100', '11111', '00100', '00100', '00000'),
    '=': ('00000', '00000', '11111', '00000', '11111', '00000', '00000'),
    '%': ('11000', '11001', '00010', '00100', '01000', '10011', '00011'),
    '#': ('01010', '01010', '11111', '01010', '11111', '01010', '01010'),
    '?': ('01110', '10001', '00001', '00010', '00100', '00000', '00100'),
}
_FONT = {
    char: numpy.array([[bit == '1' for bit in row] for row in rows], dtype=bool)
    for char, rows in _GLYPHS.items()
}
GLYPH_WIDTH, GLYPH_HEIGHT = 5, 7


def legend_text(text: str, limit: int = 24) -> str:
    """``text`` as the font draws it: capitals, '?' for characters it lacks,
    at most ``limit`` characters (the last one '.' when cut)."""
    shown = ''.join(char if char in _FONT else '?' for char in text.upper())
    return shown if len(shown) <= limit else shown[: limit - 1] + '.'


def text_width(text: str, scale: int) -> int:
    return max(0, len(text) * (GLYPH_WIDTH + 1) - 1) * scale


def draw_text(
    pixels: numpy.ndarray, x: int, y: int, text: str, *, scale: int = 1, colour=BLACK
) -> None:
    """Draw text in the font (digits, capitals, some punctuation; see
    :func:`legend_text`) with its top-left corner at (x, y)."""
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


def with_label_legend(
    picture: numpy.ndarray, classes: tuple[int, ...], table: Any = None
) -> numpy.ndarray:
    """A strip of swatch + 'number NAME' rows (the name when ``table`` has one),
    in columns when they do not fit; colours from ``table`` where it gives them."""
    scale = _legend_scale(picture.shape[0])
    margin, swatch, gap, row_height = 4 * scale, 9 * scale, 3 * scale, 12 * scale
    count = max(1, len(classes))
    fit = (picture.shape[0] - 2 * margin) // row_height
    rows_per_column = min(count, max(min(count, 10), fit))
    columns = math.ceil(count / rows_per_column)
    labels = [
        legend_text(f'{c} {table.get(c).name}') if table is not None and table.get(c) else str(c)
        for c in classes
    ]
    label_width = max([text_width(label, scale) for label in labels] or [0])
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
        legend[y + 1 : y + swatch - 1, x + 1 : x + swatch - 1] = label_colours(numpy.array(value), table)
        text_y = y + (swatch - GLYPH_HEIGHT * scale) // 2
        draw_text(legend, x + swatch + gap, text_y, labels[number], scale=scale)
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
