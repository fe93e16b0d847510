"""Reading a TIFF: the one place that opens one with tifffile.

Everything that reads a TIFF - ``info`` (:mod:`.inspect`), ``preview``
(a finished TIFF, or a slide under an overlay) and ``init --like`` (a
slide's geometry, :mod:`tifwriter_cli.slide_reader`) - goes through here:

* :func:`open_tiff` opens a file and turns tifffile's many exception types
  (raised on non-TIFF, truncated or damaged input) into one
  :class:`~tifwriter_cli.errors.NotATiffError`, with a one-line message;
* :func:`pyramid_pages` finds the pyramid's levels, level 0 first, the way
  OpenSlide and ASAP see them;
* :func:`page_spacing` / :func:`spacing_from_resolution` turn the
  resolution tags into micrometres per pixel;
* :func:`parse_provenance` reads the display hints (kind, fill, slide
  downsample) of our ImageDescription (:mod:`.metadata`) or a similar one;
* :func:`sample_page` reads the pixels at given rows and columns of a level
  without decoding it whole (tifffile's ``TiffPage.segments()``; pages up to
  :data:`WHOLE_PAGE_BYTES` through ``asarray()``); :func:`read_window` reads
  a rectangle of a level, decoding only the segments it touches
  (``export-annotations``' bands, ``preview --region``).

The writer (:mod:`.bigtiff`) and the engines do not read through here.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy

from ..errors import NotATiffError, TifwriterError, one_line
from ..vocab import KINDS
from .metadata import parse_description

if TYPE_CHECKING:
    import tifffile

__all__ = [
    'WHOLE_PAGE_BYTES',
    'collect_tifffile_warnings',
    'open_tiff',
    'page_channels',
    'page_spacing',
    'parse_provenance',
    'pyramid_pages',
    'read_window',
    'sample_page',
    'spacing_from_resolution',
    'sub_ifd_pages',
    'tiff_errors',
    'svs_mpp',
]

#: TIFF pages up to this size are decoded whole; larger ones segment by segment.
WHOLE_PAGE_BYTES = 64 * 2**20


@contextlib.contextmanager
def open_tiff(path: str | os.PathLike) -> Iterator[tifffile.TiffFile]:
    """An open ``tifffile.TiffFile``; tifffile's errors become :class:`NotATiffError`.

    Errors raised while the file is open (reading a damaged IFD or tile)
    are wrapped too; our own errors pass through unchanged.
    """
    import tifffile

    path = os.fspath(path)
    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:  # TiffFileError, ValueError, IndexError, EOFError, ...
        raise NotATiffError(f'{path} is not a readable TIFF ({one_line(exc)})') from None
    with tiff_errors(path), tif:
        yield tif


@contextlib.contextmanager
def tiff_errors(path: str | os.PathLike, what: str = 'is a damaged TIFF') -> Iterator[None]:
    """Turn tifffile's and the codecs' errors into NotATiffError('PATH WHAT (why)').

    Our own errors pass through unchanged.
    """
    try:
        yield
    except TifwriterError:
        raise
    except Exception as exc:  # tifffile and the codecs raise many kinds on a damaged file
        raise NotATiffError(f'{os.fspath(path)} {what} ({one_line(exc)})') from None


@contextlib.contextmanager
def collect_tifffile_warnings() -> Iterator[list[str]]:
    """Collect tifffile's logged warnings (one line each) instead of letting them reach stderr."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            # tifffile prefixes the object's repr: keep the words after it.
            messages.append(one_line(ValueError(text.split('> ', 1)[-1])))

    logger = logging.getLogger('tifffile')
    handler = Collect(logging.WARNING)
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


# -- the pyramid -------------------------------------------------------------
def pyramid_pages(tif: tifffile.TiffFile) -> list[tifffile.TiffPage]:
    """Pages of a TIFF's first image pyramid, level 0 first.

    tifffile's first series gives the levels (SubIFDs, reduced pages, SVS,
    OME ...). When it lists a single level, later top-level pages flagged
    reduced-resolution (NewSubfileType bit 0) and strictly narrower than
    the one before are taken as levels, the way OpenSlide and ASAP do.
    """
    where = tif.filehandle.path or tif.filename  # the whole path, not just the name
    if not tif.series:
        raise NotATiffError(f'{where} holds no image')
    series = tif.series[0]
    pages = [_as_page(level.pages[0]) for level in series.levels if level.pages]
    pages = [p for p in pages if p is not None]
    if not pages or not pages[0].shape:
        raise NotATiffError(f'{where} holds no readable image')
    if len(pages) == 1:
        base = pages[0]
        for page in tif.pages[1:]:
            page = _as_page(page)
            if page is None or not page.is_reduced or not page.shape:
                continue
            # Same pixels, smaller: a level (not a mask or a label image).
            if (
                page.imagewidth < pages[-1].imagewidth
                and page.samplesperpixel == base.samplesperpixel
                and page.dtype == base.dtype
            ):
                pages.append(page)
    return pages


def sub_ifd_pages(tif: tifffile.TiffFile) -> list[tifffile.TiffPage]:
    """Level 0's SubIFDs (an OME-TIFF's reduced levels), in order."""
    import tifffile

    page = tif.pages[0]
    pages = []
    for number, offset in enumerate(page.subifds or ()):
        tif.filehandle.seek(offset)
        pages.append(tifffile.TiffPage(tif, index=(0, number)))
    return pages


def _as_page(page: Any) -> Any:
    if page is None:
        return None
    return page.aspage() if hasattr(page, 'aspage') else page


# -- pixel size ----------------------------------------------------------------
def spacing_from_resolution(
    unit: int | None, x_resolution: float | None, y_resolution: float | None
) -> tuple[float, float] | None:
    """Micrometres per pixel from ResolutionUnit and X/YResolution (pixels per unit).

    Only centimetre and inch units carry a physical size (as in OpenSlide);
    a missing unit, unit 'none' or a missing/zero resolution means unknown.
    """
    import tifffile

    per_unit = {
        tifffile.RESUNIT.INCH: 25400.0,
        tifffile.RESUNIT.CENTIMETER: 10000.0,
    }.get(unit)  # type: ignore[call-overload]
    if per_unit is None or not x_resolution or not y_resolution:
        return None
    return per_unit / x_resolution, per_unit / y_resolution


def page_spacing(page: tifffile.TiffPage) -> tuple[float, float] | None:
    """Micrometres per pixel of a page, from its resolution tags (None: unknown)."""
    unit = tag_value(page, 'ResolutionUnit')
    return spacing_from_resolution(
        None if unit is None else int(unit),
        resolution_ratio(tag_value(page, 'XResolution')),
        resolution_ratio(tag_value(page, 'YResolution')),
    )


def svs_mpp(description: str | None) -> float | None:
    """Aperio SVS: the pixel size in the ImageDescription (``|MPP = 0.25``)."""
    match = re.search(r'\|\s*MPP\s*=\s*([0-9.eE+-]+)', description or '')
    if not match:
        return None
    try:
        mpp = float(match.group(1))
    except ValueError:
        return None
    return mpp if math.isfinite(mpp) and mpp > 0 else None


def tag_value(page: tifffile.TiffPage, name: str, default: Any = None) -> Any:
    tag = page.tags.get(name)
    return default if tag is None else tag.value


def resolution_ratio(value: Any) -> float | None:
    """A RATIONAL tag's value (numerator, denominator) as a float (None if unusable)."""
    if value is None:
        return None
    if isinstance(value, tuple):
        if len(value) != 2 or not value[1]:
            return None
        return value[0] / value[1]
    return float(value)


# -- provenance -----------------------------------------------------------------
#: Display hints in someone else's ImageDescription (key=value, key: value
#: or JSON "key": value are all understood).
_HINTS = re.compile(
    r'["\']?\b(kind|fill|slide_downsample)["\']?\s*[=:]\s*["\']?'
    rf'({"|".join(KINDS)}|[-+0-9.eE]+|nan)',
    re.IGNORECASE,
)


def parse_provenance(description: str | None) -> dict[str, Any]:
    """kind / fill / slide_downsample of a TIFF, from its ImageDescription.

    Ours (:func:`.metadata.parse_description`) are read exactly; in other
    descriptions (or ours without these fields) the same keys are searched.
    """
    ours = parse_description(description) or {}
    pairs = [(key, ours[key]) for key in ('kind', 'fill', 'slide_downsample') if key in ours]
    if not pairs:
        pairs = _HINTS.findall(description or '')
    found: dict[str, Any] = {}
    for key, value in pairs:
        key = key.lower()
        if key in found:
            continue
        if key == 'kind':
            if value.lower() in KINDS:
                found[key] = value.lower()
            continue
        try:
            found[key] = float(value)
        except ValueError:
            pass
    return found


# -- pixels ---------------------------------------------------------------------
def page_channels(page: tifffile.TiffPage) -> int:
    """Samples per pixel as the reader returns them (separate x contiguous)."""
    separate, _, _, _, contig = page.shaped
    return int(separate * contig)


def sample_page(
    page: tifffile.TiffPage, rows: numpy.ndarray, cols: numpy.ndarray
) -> numpy.ndarray:
    """Pixels of ``page`` at ``rows`` x ``cols``: (len(rows), len(cols), channels).

    ``rows`` and ``cols`` must be non-decreasing. A page over
    :data:`WHOLE_PAGE_BYTES` is decoded a segment (tile or strip) at a
    time, keeping only the sampled pixels, so memory stays bounded by the
    result; a missing tile (byte count 0) reads as 0, as in ASAP.
    """
    rows = numpy.asarray(rows, dtype=numpy.int64)
    cols = numpy.asarray(cols, dtype=numpy.int64)
    width, height = int(page.imagewidth), int(page.imagelength)
    channels = page_channels(page)
    dtype = numpy.dtype(page.dtype)
    _, depth, _, _, _ = page.shaped
    segmented = (
        width * height * channels * dtype.itemsize > WHOLE_PAGE_BYTES
        and page.planarconfig == 1
        and depth == 1
        and len(page.dataoffsets) > 0
    )
    if not segmented:
        data = page.asarray().reshape(page.shaped)[:, 0]  # (separate, length, width, contig)
        data = numpy.moveaxis(data, 0, -2).reshape(height, width, channels)
        return data[rows][:, cols]
    out = numpy.zeros((len(rows), len(cols), channels), dtype=dtype)

    def keep_samples(result: tuple[Any, Any, Any]) -> None:
        segment, position, _ = result
        if segment is None:
            return
        top, left = int(position[2]), int(position[3])
        bottom = min(height, top + segment.shape[1])
        right = min(width, left + segment.shape[2])
        r0, r1 = numpy.searchsorted(rows, (top, bottom))
        c0, c1 = numpy.searchsorted(cols, (left, right))
        if r0 < r1 and c0 < c1:
            block = segment[0][rows[r0:r1] - top][:, cols[c0:c1] - left]
            out[r0:r1, c0:c1] = block.reshape(r1 - r0, c1 - c0, channels)

    for _ in page.segments(func=keep_samples):
        pass
    return out

# -- windows ----------------------------------------------------------------------
def read_window(page: Any, x: int, y: int, width: int, height: int) -> numpy.ndarray:
    """Pixels (height, width, channels) of the page's rectangle [x, x + width) x
    [y, y + height), which must lie inside the page.

    Only the segments intersecting it are read (``FileHandle.read_segments``
    with their indices) and decoded (``TiffPage.decode``, JPEG tables passed
    as tifffile does itself); a missing segment (byte count 0) reads as 0, as
    in ASAP. A full-width band of rows is ``read_window(page, 0, top, width,
    rows)``: what export-annotations traces and ``preview --region`` crops,
    in memory bounded by the window.
    """
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
