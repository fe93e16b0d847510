"""Label masks to trace, read band by band: a staging unit or one of our TIFFs.

A :class:`MaskSource` knows the mask's size, its class table, how its
pixels map to slide level-0 pixels (``scale``: level downsample x slide
downsample), and reads full-width bands of rows; nothing reads the whole
mask.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy

from ..errors import InvalidOptionError, NotAStagingFileError

__all__ = ['MaskSource', 'open_mask']


@dataclasses.dataclass
class MaskSource:
    """A 1-channel label mask, read in bands of full rows."""

    path: str
    width: int
    height: int
    dtype: numpy.dtype
    #: Class table (names, colours) or None.
    classes: Any
    #: Mask pixels per canvas pixel side (2**level for pyramid level ``level``).
    level_downsample: float
    #: Slide level-0 pixels per canvas pixel (``init --like --downsample``).
    slide_downsample: float
    fill: float
    #: Rows of one storage block (tile height): bands are multiples of it.
    block_rows: int
    read_rows: Callable[[int, int], numpy.ndarray]
    close: Callable[[], None]

    def __enter__(self) -> MaskSource:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def open_mask(path: str | os.PathLike, *, level: int = 0) -> MaskSource:
    """The label mask of a staging unit or TIFF at ``path`` (pyramid ``level``
    of a TIFF; a staging unit has level 0 only)."""
    from ..info import sniff

    path = os.fspath(path)
    if not os.path.exists(path):
        raise NotAStagingFileError(f'{path} does not exist')
    if os.path.isdir(path):
        raise NotAStagingFileError(f'{path} is a directory, not a staging file or TIFF')
    if isinstance(level, bool) or not isinstance(level, int) or level < 0:
        raise InvalidOptionError(f'level must be a non-negative integer, got {level!r}')
    kind = sniff(path)
    if kind == 'staging':
        if level:
            raise InvalidOptionError('a staging unit has level 0 only; finalize it to trace a lower level')
        return _staging_mask(path)
    if kind == 'tiff':
        return _tiff_mask(path, level)
    raise NotAStagingFileError(f'{path} is neither a tifwriter staging file nor a TIFF')


def _check_labels(path: str, channels: int, dtype: numpy.dtype, kind: str | None) -> None:
    if channels != 1:
        raise InvalidOptionError(
            f'{path} has {channels} channels: annotations are traced from a 1-channel label mask '
            '(finalize argmax=True or threshold= makes one)'
        )
    if kind not in (None, 'labels'):
        raise InvalidOptionError(
            f'{path} holds {kind}, not labels (finalize argmax=True or threshold= makes a label mask)'
        )
    if dtype.kind not in 'iuf':
        raise InvalidOptionError(f'{path}: cannot trace {dtype} pixels')


def _staging_mask(path: str) -> MaskSource:
    from ..staging import read_staging

    snapshot = read_staging(path)
    spec = snapshot.spec
    try:
        _check_labels(path, spec.channels, spec.numpy_dtype, spec.kind)
    except BaseException:
        snapshot.close()
        raise

    def read_rows(top: int, bottom: int) -> numpy.ndarray:
        return snapshot.read_region(0, top, spec.width, bottom - top)[:, :, 0]

    return MaskSource(
        path=path, width=spec.width, height=spec.height, dtype=spec.numpy_dtype,
        classes=spec.classes, level_downsample=1.0, slide_downsample=spec.slide_downsample,
        fill=spec.fill, block_rows=spec.tile_size, read_rows=read_rows, close=snapshot.close,
    )


def _tiff_mask(path: str, level: int) -> MaskSource:
    import contextlib

    from ..classes import classes_from_provenance
    from ..tiff.metadata import parse_description
    from ..tiff.read import open_tiff, page_channels, pyramid_pages, read_window, tiff_errors

    stack = contextlib.ExitStack()
    tif = stack.enter_context(open_tiff(path))
    try:
        with tiff_errors(path):
            pages = pyramid_pages(tif)
        if level >= len(pages):
            raise InvalidOptionError(f'{path} has levels 0 to {len(pages) - 1}, not {level}')
        base, page = pages[0], pages[level]
        width, height, dtype = int(page.imagewidth), int(page.imagelength), numpy.dtype(page.dtype)
        fields = parse_description(base.description) or {}
        _check_labels(path, page_channels(page), dtype, fields.get('kind'))
        classes = classes_from_provenance(fields)
    except BaseException:
        stack.close()
        raise

    def read_rows(top: int, bottom: int) -> numpy.ndarray:
        with tiff_errors(path, 'cannot be decoded'):
            return read_window(page, 0, top, width, bottom - top)[:, :, 0]

    block = int(page.tilelength) if page.is_tiled else int(page.rowsperstrip or 1)
    return MaskSource(
        path=path, width=width, height=height, dtype=dtype,
        classes=classes, level_downsample=_level_downsample(base.imagewidth, page.imagewidth),
        slide_downsample=float(fields.get('slide_downsample', 1.0)),
        fill=float(fields.get('fill', 0.0)), block_rows=max(1, min(block, height)),
        read_rows=read_rows, close=stack.close,
    )


def _level_downsample(base_width: int, level_width: int) -> float:
    """Level-0 pixels per level pixel: the power of two a halving pyramid
    (ours: sizes rounded up) used, else the plain width ratio."""
    import math

    ratio = base_width / level_width
    power = 2.0 ** round(math.log2(ratio))
    return power if abs(ratio - power) <= 0.01 * power else ratio
