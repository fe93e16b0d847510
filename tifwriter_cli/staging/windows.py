"""A written patch as a sliding window: its crop margin and its weights.

The one place where :meth:`StagingWriter.write`'s ``crop_margin`` and
``weight`` become the stored patch and its :class:`~.weighting.PatchWeighting`
(the rules themselves are in :mod:`tifwriter_cli.blending`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy

from ..blending import Blend, crop_window, explicit_weights, window_placement
from ..errors import PatchError
from .weighting import PatchWeighting

__all__ = ['Window', 'window_weighting']


@dataclasses.dataclass(frozen=True)
class Window:
    """What is staged of a window: its corner, its pixels after the crop
    margin, and how it weighs them (None: not a weighted canvas)."""

    x: int
    y: int
    patch: numpy.ndarray
    blend: Blend | None
    weights: numpy.ndarray | None  # explicit weights, cropped like the patch
    placement_suffix: str  # ';blend=...;crop=M' for the placement record; '' for defaults

    def clipped_weighting(self, rows: slice, cols: slice) -> PatchWeighting | None:
        """The weighting of the part [rows, cols] of the window that is stored."""
        if self.blend is None and self.weights is None:
            return None
        window = (self.x, self.y, self.patch.shape[1], self.patch.shape[0])
        if self.weights is not None:
            return PatchWeighting('array', 0.0, window, numpy.ascontiguousarray(self.weights[rows, cols]))
        return PatchWeighting.of_blend(self.blend, window)


def window_weighting(
    x: int, y: int, patch: numpy.ndarray, spec: Any, *, weight: Any = None, crop_margin: int = 0
) -> Window:
    """Apply ``crop_margin`` to the (H, W, C) ``patch`` at (x, y) and resolve ``weight``."""
    weights = None
    blend = None
    if weight is not None and spec.merge != 'weighted':
        raise PatchError(_not_weighted(spec))
    if weight is not None and not isinstance(weight, (str, Blend)):
        weights = explicit_weights(weight, patch.shape[0], patch.shape[1])
    elif spec.merge == 'weighted':
        blend = Blend.of(weight if weight is not None else 'gaussian')
    if crop_margin:
        kept = crop_window(x, y, patch.shape[1], patch.shape[0], crop_margin,
                           canvas_width=spec.width, canvas_height=spec.height)
        x, y, patch = kept.x, kept.y, patch[kept.rows, kept.cols]
        if weights is not None:
            weights = weights[kept.rows, kept.cols]
    return Window(x, y, patch, blend, weights, window_placement(weight, crop_margin))


def _not_weighted(spec: Any) -> str:
    return (
        f"blend weights need a canvas created with merge='weighted' (this one merges by {spec.merge!r})"
    )
