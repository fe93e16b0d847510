"""What a preview reads: a staging file or a TIFF, behind one :class:`Source`.

A staging file is read in bands of rows through
:meth:`StagingSnapshot.read_region` (merged as finalize would merge it),
keeping only the sampled rows and columns of each band, so a 100k x 100k
canvas previews in bounded memory. A TIFF is read from the smallest pyramid
level whose long side is at least the picture's, through
:func:`tifwriter_cli.tiff.read.sample_page`. A ``--region`` option would
narrow what :attr:`Source.sample` reads here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable

import numpy

from ..errors import NotAStagingFileError, StagingNotFoundError
from .sampling import sample_in_bands, sample_positions

__all__ = ['Source', 'open_source']


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
    sample: Callable[[int, int], numpy.ndarray]
    close: Callable[[], None]


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

    def sample(picture_width: int, picture_height: int) -> numpy.ndarray:
        rows = sample_positions(picture_height, spec.height)
        cols = sample_positions(picture_width, spec.width)
        # Merge buffers (mean: float64 sums + counts) cost more than the pixels.
        row_bytes = spec.width * (spec.channels * (spec.numpy_dtype.itemsize + 8) + 4)
        return sample_in_bands(
            lambda top, bottom: snapshot.read_region(0, top, spec.width, bottom - top),
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
    )


def _open_tiff_source(path: str) -> Source:
    from ..tiff.read import (
        open_tiff,
        page_channels,
        page_spacing,
        parse_provenance,
        pyramid_pages,
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

    def sample(picture_width: int, picture_height: int) -> numpy.ndarray:
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
    )
