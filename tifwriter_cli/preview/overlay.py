"""A preview blended over its slide: where each picture pixel falls on the slide.

Alignment follows :mod:`tifwriter_cli.slide`: canvas pixel (cx, cy) covers
slide level-0 pixels ``[cx*D, (cx+1)*D)`` (D = the canvas' slide
downsample). The slide is read at the coarsest level still as fine as one
picture pixel, through OpenSlide when it opened the slide, else through
:mod:`tifwriter_cli.tiff.read`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy

from ..errors import SlideReadError, one_line
from .colours import WHITE, image_rgb
from .sampling import sample_in_bands
from .sources import Source

__all__ = ['sample_slide']

logger = logging.getLogger(__name__)


def _overlay_downsample(source: Source, geometry: Any) -> tuple[float, float]:
    """Slide level-0 pixels per source pixel, on x and y.

    The canvas' own slide downsample when it has one (init --like); else
    the ratio of pixel sizes (how viewers align); else, when the sizes
    match, 1; else the source is stretched over the slide (logged).
    """
    if source.slide_downsample and source.slide_downsample != 1.0:
        return source.slide_downsample, source.slide_downsample
    if source.spacing and geometry.mpp_x:
        return source.spacing[0] / geometry.mpp_x, source.spacing[1] / geometry.mpp_y
    if source.slide_downsample == 1.0 and (source.width, source.height) == (
        geometry.width,
        geometry.height,
    ):
        return 1.0, 1.0
    if (source.width, source.height) != (geometry.width, geometry.height):
        logger.warning(
            'no slide downsample or pixel sizes to align with %s: stretching the picture '
            'over the slide',
            geometry.path,
        )
    return geometry.width / source.width, geometry.height / source.height


def sample_slide(
    geometry: Any, source: Source, picture_width: int, picture_height: int,
    window: tuple[int, int, int, int] | None = None,
) -> numpy.ndarray:
    """Slide RGB under each picture pixel's centre (white past the slide's edges);
    the picture covers the source's ``window`` (x, y, width, height) or all of it."""
    down_x, down_y = _overlay_downsample(source, geometry)
    x0, y0, width, height = window or (0, 0, source.width, source.height)
    # Level-0 slide position under each picture pixel's centre.
    slide_x = (x0 + (numpy.arange(picture_width) + 0.5) * (width / picture_width)) * down_x
    slide_y = (y0 + (numpy.arange(picture_height) + 0.5) * (height / picture_height)) * down_y
    stride = min(width * down_x / picture_width, height * down_y / picture_height)
    if geometry.reader == 'openslide':
        rgb = _sample_with_openslide(geometry, slide_x, slide_y, stride)
    else:
        rgb = _sample_with_tifffile(geometry, slide_x, slide_y, stride)
    inside = (slide_y[:, None] < geometry.height) & (slide_x[None, :] < geometry.width)
    # The canvas may reach up to one canvas pixel past the slide (ceil).
    rgb[~inside] = WHITE
    return rgb


def _best_level(downsamples: Any, stride: float) -> int:
    """The smallest level still at least as fine as one picture pixel."""
    best = 0
    for level, downsample in enumerate(downsamples):
        if downsample <= stride * (1 + 1e-9):
            best = level
    return best


def _sample_with_openslide(
    geometry: Any, slide_x: numpy.ndarray, slide_y: numpy.ndarray, stride: float
) -> numpy.ndarray:
    from ..slide_reader import open_openslide

    slide = open_openslide(geometry.path)
    if slide is None:
        raise SlideReadError(f'cannot read slide {geometry.path} with OpenSlide')
    with slide:
        level = _best_level(slide.level_downsamples, stride)
        downsample = slide.level_downsamples[level]
        level_w, level_h = slide.level_dimensions[level]
        cols = numpy.minimum(numpy.floor(slide_x / downsample).astype(numpy.int64), level_w - 1)
        rows = numpy.minimum(numpy.floor(slide_y / downsample).astype(numpy.int64), level_h - 1)
        left = int(cols.min())  # a --region far right reads only its columns
        read_w = int(cols.max()) + 1 - left

        def read_rows(top: int, bottom: int) -> numpy.ndarray:
            region = slide.read_region(
                (int(round(left * downsample)), int(round(top * downsample))), level,
                (read_w, bottom - top),
            )
            return numpy.asarray(region)

        try:
            rgba = sample_in_bands(
                read_rows,
                rows,
                cols - left,
                row_bytes=read_w * 4 * 2,  # RGBA plus PIL's own copy
                out_shape_tail=(4,),
                dtype=numpy.dtype(numpy.uint8),
            )
        except Exception as exc:  # openslide.OpenSlideError, decoding errors
            raise SlideReadError(
                f'cannot read slide {geometry.path}: {one_line(exc)}'
            ) from None
    # OpenSlide gives transparent pixels outside the scanned area: white.
    colour, opacity = image_rgb(rgba)
    return colour


def _sample_with_tifffile(
    geometry: Any, slide_x: numpy.ndarray, slide_y: numpy.ndarray, stride: float
) -> numpy.ndarray:
    from ..tiff.read import open_tiff, pyramid_pages, sample_page

    try:
        with open_tiff(geometry.path) as tif:
            pages = pyramid_pages(tif)
            dims = [(int(p.imagewidth), int(p.imagelength)) for p in pages]
            level = _best_level(
                [min(geometry.width / w, geometry.height / h) for w, h in dims], stride
            )
            level_w, level_h = dims[level]
            cols = numpy.floor(slide_x * level_w / geometry.width).astype(numpy.int64)
            rows = numpy.floor(slide_y * level_h / geometry.height).astype(numpy.int64)
            samples = sample_page(
                pages[level], numpy.minimum(rows, level_h - 1), numpy.minimum(cols, level_w - 1)
            )
    except SlideReadError:
        raise
    except Exception as exc:  # NotATiffError (damaged), or a decoding error
        raise SlideReadError(f'cannot read slide {geometry.path}: {one_line(exc)}') from None
    colour, _ = image_rgb(samples)
    return colour
