"""Rectangles on the canvas: clipping patches at the borders."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ['Clipped', 'clip_to_canvas']


class Clipped(NamedTuple):
    """The part of a patch inside the canvas.

    ``x``, ``y``, ``width``, ``height``: where it lands on the canvas;
    ``patch_slices``: (rows, cols) slices selecting it from the patch.
    """

    x: int
    y: int
    width: int
    height: int
    patch_slices: tuple[slice, slice]


def clip_to_canvas(
    x: int, y: int, width: int, height: int, canvas_width: int, canvas_height: int
) -> Clipped | None:
    """Clip a width x height patch at (x, y) to the canvas; None if nothing is inside."""
    x0, y0 = max(x, 0), max(y, 0)
    x1, y1 = min(x + width, canvas_width), min(y + height, canvas_height)
    if x1 <= x0 or y1 <= y0:
        return None
    return Clipped(
        x0, y0, x1 - x0, y1 - y0, (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))
    )
