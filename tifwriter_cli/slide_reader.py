"""Reading a slide's geometry: OpenSlide first, then tifffile.

Slides are read through OpenSlide when it is installed and opens the file
(any format it knows, ``.svs``, ``.mrxs``, ``.ndpi``, generic tiled TIFF,
...), otherwise through :mod:`tifwriter_cli.tiff.read` (TIFF only).
OpenSlide is imported lazily: it is an optional dependency. What a
geometry means for a canvas is :mod:`tifwriter_cli.slide`'s.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any

from .errors import SlideReadError
from .slide import SlideGeometry

__all__ = ['open_openslide', 'read_slide_geometry']

logger = logging.getLogger(__name__)


def read_slide_geometry(path: str | os.PathLike) -> SlideGeometry:
    """Geometry of the slide at ``path`` (OpenSlide first, then tifffile).

    Raises :class:`SlideReadError` (one line naming the file) when neither
    reader can open it.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise SlideReadError(f'slide {path} does not exist')
    if os.path.isdir(path):
        # OpenSlide reads some formats from a directory's index file only.
        raise SlideReadError(f'slide {path} is a directory, not a slide file')
    geometry = _read_with_openslide(path)
    if geometry is not None:
        return geometry
    return _read_with_tifffile(path)


def open_openslide(path: str) -> Any | None:
    """An ``openslide.OpenSlide`` for path, or None (not installed, not readable)."""
    try:
        import openslide
    except (ImportError, OSError):
        # OSError: the Python package is there but the C library is not.
        return None
    try:
        return openslide.OpenSlide(path)
    except openslide.OpenSlideError as exc:
        logger.debug('OpenSlide cannot open %s: %s', path, exc)
        return None


def _read_with_openslide(path: str) -> SlideGeometry | None:
    slide = open_openslide(path)
    if slide is None:
        return None
    import openslide

    with slide:
        width, height = slide.dimensions
        mpp_x = _positive_float(slide.properties.get(openslide.PROPERTY_NAME_MPP_X))
        mpp_y = _positive_float(slide.properties.get(openslide.PROPERTY_NAME_MPP_Y))
        if mpp_x is not None and mpp_y is None:
            mpp_y = mpp_x
        if mpp_x is None:
            mpp_y = None
        return SlideGeometry(
            path=path,
            width=int(width),
            height=int(height),
            mpp_x=mpp_x,
            mpp_y=mpp_y,
            level_dimensions=tuple((int(w), int(h)) for w, h in slide.level_dimensions),
            level_downsamples=tuple(float(d) for d in slide.level_downsamples),
            reader='openslide',
        )


def _read_with_tifffile(path: str) -> SlideGeometry:
    from .errors import NotATiffError
    from .tiff.read import open_tiff, page_spacing, pyramid_pages, svs_mpp

    try:
        with open_tiff(path) as tif:
            levels = pyramid_pages(tif)
            page = levels[0]
            mpp_x, mpp_y = page_spacing(page) or (None, None)
            if mpp_x is None and tif.is_svs:
                # Aperio SVS: the pixel size is in the description only.
                mpp_x = mpp_y = svs_mpp(page.description)
            dims = tuple((int(p.imagewidth), int(p.imagelength)) for p in levels)
    except NotATiffError as exc:
        why = str(exc).removeprefix(path).strip()  # 'is not a readable TIFF (...)'
        raise SlideReadError(
            f'cannot read slide {path}: not a format OpenSlide or tifffile reads (tifffile: {why})'
        ) from None
    width, height = dims[0]
    return SlideGeometry(
        path=path,
        width=width,
        height=height,
        mpp_x=mpp_x,
        mpp_y=mpp_y,
        level_dimensions=dims,
        level_downsamples=tuple((width / w + height / h) / 2 for w, h in dims),
        reader='tifffile',
    )


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None
