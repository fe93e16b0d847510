"""A window of one TIFF page, decoding only the tiles (or strips) it touches.

``read_window(page, x, y, width, height)`` returns the (height, width,
channels) pixels of the page's rectangle [x, x + width) x [y, y + height).
Only the segments intersecting it are read (``FileHandle.read_segments``
with their indices) and decoded (``TiffPage.decode``, JPEG tables passed
as tifffile does itself); a missing segment (byte count 0) reads as 0, as
in ASAP. A full-width band of rows is ``read_window(page, 0, top, page
width, rows)``: what export-annotations traces and ``preview --region``
crops, in memory bounded by the window.
"""

from __future__ import annotations

from typing import Any

import numpy

__all__ = ['read_window']


def read_window(page: Any, x: int, y: int, width: int, height: int) -> numpy.ndarray:
    """Pixels of the window (it must lie inside the page)."""
    page_width, page_height = int(page.imagewidth), int(page.imagelength)
    if not (0 <= x and 0 <= y and width > 0 and height > 0
            and x + width <= page_width and y + height <= page_height):
        raise ValueError(
            f'window {x},{y},{width},{height} is not inside the {page_width} x {page_height} page'
        )
    separate, depth, _, _, contig = page.shaped
    channels = int(separate * contig)
    dtype = numpy.dtype(page.dtype)
    if page.planarconfig != 1 or depth != 1 or not len(page.dataoffsets):
        data = page.asarray().reshape(page.shaped)[:, 0]
        data = numpy.moveaxis(data, 0, -2).reshape(page_height, page_width, channels)
        return numpy.ascontiguousarray(data[y : y + height, x : x + width])
    if page.is_tiled:
        seg_w, seg_h = int(page.tilewidth), int(page.tilelength)
    else:
        seg_w, seg_h = page_width, int(page.rowsperstrip or page_height)
    across = -(-page_width // seg_w)
    indices = [
        row * across + column
        for row in range(y // seg_h, (y + height - 1) // seg_h + 1)
        for column in range(x // seg_w, (x + width - 1) // seg_w + 1)
    ]
    out = numpy.zeros((height, width, channels), dtype=dtype)
    tif = page.parent
    offsets = [page.dataoffsets[i] for i in indices]
    counts = [page.databytecounts[i] for i in indices]
    for data, index in tif.filehandle.read_segments(offsets, counts, indices, lock=tif.filehandle.lock):
        segment, position, _ = page.decode(
            data, index, jpegtables=page.jpegtables, jpegheader=page.jpegheader
        )
        if segment is None:
            continue  # missing: stays 0
        top, left = int(position[2]), int(position[3])
        rows = slice(max(top, y), min(top + segment.shape[1], y + height, page_height))
        cols = slice(max(left, x), min(left + segment.shape[2], x + width, page_width))
        if rows.start >= rows.stop or cols.start >= cols.stop:
            continue
        block = segment[0, rows.start - top : rows.stop - top, cols.start - left : cols.stop - left]
        out[rows.start - y : rows.stop - y, cols.start - x : cols.stop - x] = block.reshape(
            rows.stop - rows.start, cols.stop - cols.start, channels
        )
    return out
