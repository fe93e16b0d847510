"""A synthetic end-to-end run: what ``tifwriter demo DIR`` does.

It plays a segmentation model over a slide of a few thousand pixels a side:
each 512 x 512 patch (with overlap, as sliding-window inference produces)
is computed independently from a smooth analytic field of blobs, staged at
its free x, y position, then the staging file is finalized to a pyramidal
TIFF and inspected.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy

__all__ = ['DemoReport', 'demo_label_patch', 'run_demo']

log = logging.getLogger(__name__)

#: Label meaning in the demo (class 0 is background).
DEMO_CLASSES = {0: 'background', 1: 'tissue', 2: 'tumour', 3: 'necrosis'}


@dataclasses.dataclass
class DemoReport:
    staging: Path
    tiff: Path
    preview: Path
    patches: int
    width: int
    height: int
    tiff_report: dict[str, Any]


class _BlobField:
    """Sum of gaussian blobs: smooth, seeded, evaluable on any window."""

    def __init__(self, width: int, height: int, count: int, seed: int):
        rng = numpy.random.default_rng(seed)
        self.cx = rng.uniform(0, width, count)
        self.cy = rng.uniform(0, height, count)
        scale = min(width, height)
        self.sigma = rng.uniform(0.03, 0.12, count) * scale
        self.amp = rng.uniform(0.5, 1.0, count)

    def window(self, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        xs = numpy.arange(x, x + width, dtype=numpy.float32)
        ys = numpy.arange(y, y + height, dtype=numpy.float32)
        field = numpy.zeros((height, width), dtype=numpy.float32)
        for cx, cy, sigma, amp in zip(self.cx, self.cy, self.sigma, self.amp, strict=True):
            gx = numpy.exp(-((xs - cx) ** 2) / (2 * sigma**2)).astype(numpy.float32)
            gy = numpy.exp(-((ys - cy) ** 2) / (2 * sigma**2)).astype(numpy.float32)
            if gx.max() < 1e-4 or gy.max() < 1e-4:
                continue
            field += amp * numpy.outer(gy, gx)  # separable: cheap
        return field


def demo_label_patch(
    tissue: _BlobField, tumour: _BlobField, x: int, y: int, size: int
) -> numpy.ndarray:
    """The demo model's uint8 label prediction for one patch window."""
    t = tissue.window(x, y, size, size)
    u = tumour.window(x, y, size, size)
    labels = numpy.zeros((size, size), dtype=numpy.uint8)
    labels[t > 0.45] = 1
    labels[(t > 0.45) & (u > 0.55)] = 2
    labels[(t > 0.45) & (u > 0.95)] = 3
    return labels


def run_demo(
    directory: str | os.PathLike,
    *,
    width: int = 6000,
    height: int = 4000,
    patch_size: int = 512,
    overlap: int = 64,
    spacing: float = 0.5,
    seed: int = 7,
    overwrite: bool = False,
    workers: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> DemoReport:
    """Stage a synthetic label prediction patch by patch and finalize it."""
    from .finalization import finalize
    from .preview import render_preview, save_png
    from .spec import CanvasSpec
    from .staging import create_staging, open_staging
    from .tiff.inspect import inspect_tiff

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    staging_path = directory / 'demo-labels.h5'
    tiff_path = directory / 'demo-labels.tif'
    spec = CanvasSpec(
        width=width, height=height, spacing_x=spacing, kind='labels', merge='overwrite'
    )
    create_staging(staging_path, spec, overwrite=overwrite)
    tissue = _BlobField(width, height, 25, seed)
    tumour = _BlobField(width, height, 12, seed + 1)
    stride = patch_size - overlap
    positions = [
        (x, y)
        for y in range(-overlap // 2, height, stride)
        for x in range(-overlap // 2, width, stride)
    ]
    with open_staging(staging_path) as staging:
        for done, (x, y) in enumerate(positions, 1):
            staging.write(x, y, demo_label_patch(tissue, tumour, x, y, patch_size))
            if progress is not None:
                progress(done, len(positions))
    finalize(staging_path, tiff_path, overwrite=overwrite, workers=workers)
    preview_path = directory / 'demo-labels.png'
    save_png(render_preview(tiff_path, size=1024), preview_path, overwrite=overwrite)
    return DemoReport(
        staging=staging_path,
        tiff=tiff_path,
        preview=preview_path,
        patches=len(positions),
        width=width,
        height=height,
        tiff_report=inspect_tiff(tiff_path),
    )
