"""What a preview reads: a staging file or a TIFF, behind one :class:`Source`.

A staging file is read in bands of rows through
:meth:`StagingSnapshot.read_region` (merged as finalize would merge it),
keeping only the sampled rows and columns of each band, so a 100k x 100k
canvas previews in bounded memory. A TIFF is read from the smallest pyramid
level whose long side is at least the picture's, through
:func:`tifwriter_cli.tiff.read.sample_page`. A window (``--region``) is
read at level 0, only its rows and columns (a staging region through
``read_region``, a TIFF's through :func:`tifwriter_cli.tiff.read.read_window`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy

from ..errors import NotAStagingFileError, StagingNotFoundError
from .sampling import sample_in_bands, sample_positions

__all__ = ['Source', 'Window', 'open_source']

#: A rectangle of the source: (x, y, width, height) in level-0 pixels.
Window = tuple[int, int, int, int]


@dataclasses.dataclass
class Source:
    kind: str  # 'staging' | 'tiff'
    width: int
    height: int
    channels: int
    dtype: numpy.dtype
    data_kind: str | None  # labels | probability | image, None = guess
    fill: float
    spacing: tuple[float, float] | None
    slide_downsample: float | None
    #: sample(picture_width, picture_height, window=None): nearest samples of
    #: the whole source, or of ``window`` (x, y, width, height; level-0 pixels).
    sample: Callable[..., numpy.ndarray]
    close: Callable[[], None]
    #: The class table (names, colours), or None.
    classes: Any = None


def open_source(path: str) -> Source:
    if not os.path.exists(path):
        raise StagingNotFoundError(f'{path} does not exist (a staging file is created by create_staging())')
    if os.path.isdir(path):
        raise NotAStagingFileError(f'{path} is a directory, not a staging file or TIFF')
    from ..info import sniff

    kind = sniff(path)
    if kind == 'staging':
        return _open_staging_source(path)
    if kind == 'tiff':
        return _open_tiff_source(path)
    raise NotAStagingFileError(f'{path} is neither a tifwriter staging file nor a TIFF')


def _open_staging_source(path: str) -> Source:
    from ..staging import read_staging

    snapshot = read_staging(path)
    spec = snapshot.spec

    def sample(picture_width: int, picture_height: int, window: Window | None = None) -> numpy.ndarray:
        x, y, width, height = window or (0, 0, spec.width, spec.height)
        rows = y + sample_positions(picture_height, height)
        cols = sample_positions(picture_width, width)
        # Merge buffers (mean: float64 sums + counts) cost more than the pixels.
        row_bytes = width * (spec.channels * (spec.numpy_dtype.itemsize + 8) + 4)
        return sample_in_bands(
            lambda top, bottom: snapshot.read_region(x, top, width, bottom - top),
            rows,
            cols,
            row_bytes=row_bytes,
            out_shape_tail=(spec.channels,),
            dtype=spec.numpy_dtype,
        )

    return Source(
        kind='staging',
        width=spec.width,
        height=spec.height,
        channels=spec.channels,
        dtype=spec.numpy_dtype,
        data_kind=spec.kind,
        fill=spec.fill,
        spacing=(spec.spacing_x, spec.spacing_y) if spec.spacing_x else None,
        slide_downsample=spec.slide_downsample,
        sample=sample,
        close=snapshot.close,
        classes=spec.classes,
    )


def _open_tiff_source(path: str) -> Source:
    from ..classes import classes_from_provenance
    from ..tiff.metadata import parse_description
    from ..tiff.read import (
        open_tiff,
        page_channels,
        page_spacing,
        parse_provenance,
        pyramid_pages,
        read_window,
        sample_page,
        tiff_errors,
    )

    stack = contextlib.ExitStack()
    tif = stack.enter_context(open_tiff(path))
    try:
        with tiff_errors(path):
            pages = pyramid_pages(tif)
    except BaseException:
        stack.close()
        raise
    base = pages[0]
    provenance = parse_provenance(base.description)

    def sample(picture_width: int, picture_height: int, window: Window | None = None) -> numpy.ndarray:
        if window is not None:
            # A region: level 0, read window band by band (only its tiles decoded).
            x, y, width, height = window
            rows = y + sample_positions(picture_height, height)
            cols = sample_positions(picture_width, width)
            row_bytes = width * page_channels(base) * numpy.dtype(base.dtype).itemsize
            with tiff_errors(path, 'cannot be decoded'):
                return sample_in_bands(
                    lambda top, bottom: read_window(base, x, top, width, bottom - top),
                    rows,
                    cols,
                    row_bytes=row_bytes,
                    out_shape_tail=(page_channels(base),),
                    dtype=numpy.dtype(base.dtype),
                )
        # The smallest level still at least as large as the picture.
        page = base
        for candidate in pages[1:]:
            if max(candidate.imagewidth, candidate.imagelength) >= max(picture_width, picture_height):
                page = candidate
        rows = sample_positions(picture_height, int(page.imagelength))
        cols = sample_positions(picture_width, int(page.imagewidth))
        with tiff_errors(path, 'cannot be decoded'):
            return sample_page(page, rows, cols)

    return Source(
        kind='tiff',
        width=int(base.imagewidth),
        height=int(base.imagelength),
        channels=page_channels(base),
        dtype=numpy.dtype(base.dtype),
        data_kind=provenance.get('kind'),
        fill=provenance.get('fill', 0.0),
        spacing=page_spacing(base),
        slide_downsample=provenance.get('slide_downsample'),
        sample=sample,
        close=stack.close,
        classes=_table_of(parse_description(base.description), classes_from_provenance),
    )


def _table_of(fields: Any, read: Callable[[Any], Any]) -> Any:
    """The class table of our provenance fields; a damaged one is ignored
    (the picture still renders, by numbers)."""
    from ..errors import InvalidOptionError

    try:
        return read(fields)
    except InvalidOptionError:
        return None
