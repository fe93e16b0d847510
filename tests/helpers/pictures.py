"""Colour checks on rendered pictures (previews, overlays) and a staging shorthand."""

from __future__ import annotations

from pathlib import Path

import numpy

import tifwriter_cli as tw


def stage(make_staging, patches, **spec_fields) -> Path:
    path = make_staging(**spec_fields)
    with tw.open_staging(path) as writer:
        for x, y, array in patches:
            writer.write(x, y, array)
    return path


def colours_in(pixels: numpy.ndarray) -> set[tuple[int, int, int]]:
    return {tuple(int(v) for v in c) for c in pixels.reshape(-1, 3)}


def as_tuple(colour) -> tuple[int, int, int]:
    return tuple(int(v) for v in colour)


def blend(colour, slide_colour, alpha):
    return tuple(
        int(numpy.rint(numpy.float32(c) * numpy.float32(alpha) + numpy.float32(s) * numpy.float32(1 - alpha)))
        for c, s in zip(colour, slide_colour, strict=True)
    )
