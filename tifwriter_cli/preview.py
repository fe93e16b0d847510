"""PNG previews of a staging file or a TIFF, optionally over the slide.

The picture is sampled by nearest neighbour at pixel centres: picture pixel
``j`` (of ``n``) shows source pixel ``floor((j + 0.5) * source_size / n)``.
Nearest never invents a value, which is what labels need, and it is
honest for the other kinds too. Nothing is ever read whole:

* a staging file is read in bands of rows through
  :meth:`StagingSnapshot.read_region`, at most :data:`BAND_BYTES` at a
  time, keeping only the sampled rows and columns of each band, so a
  100k x 100k canvas previews in bounded memory (it takes a while);
* a TIFF is read from the smallest pyramid level whose long side is at
  least the picture's, tile row by tile row.

Colours:

* labels: a fixed colour per class (:data:`LABEL_PALETTE`, 256 entries:
  0 dark grey, 1 red, 2 green, 3 blue, 4 yellow, ..., the 20 distinct
  colours of Sasha Trubetskoy's list, then generated hues), the same in
  every file; classes 256 and up reuse entries 1..255. A legend strip on
  the right lists the classes present in the picture.
* probability (1 channel): viridis over the dtype's range (0..1 for
  floats, clipped), with a colour bar.
* image: RGB as is, RGBA composited over white, 16/32-bit scaled to 8.
* several channels that are not an image (2, 5, ... channels, or scores
  of a probability/labels canvas): the argmax channel, shown as labels.

With ``overlay`` the picture is blended over the slide: class 0 and the
canvas fill value are left transparent so the tissue shows through.
Alignment follows :mod:`tifwriter_cli.slide`: canvas pixel (cx, cy) covers
slide level-0 pixels ``[cx*D, (cx+1)*D)`` (D = the canvas' slide
downsample).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy

from .atomic import atomic_output
from .errors import (
    InvalidOptionError,
    NotAStagingFileError,
    NotATiffError,
    SlideReadError,
    StagingNotFoundError,
)
from .vocab import KINDS

__all__ = [
    'PreviewImage',
    'render_preview',
    'save_png',
    'LABEL_PALETTE',
    'VIRIDIS',
    'label_colours',
    'sample_positions',
    'picture_size',
]

logger = logging.getLogger(__name__)

#: Largest band of source rows held at once (bytes, merge buffers included).
BAND_BYTES = 64 * 2**20
#: TIFF pages up to this size are decoded whole; larger ones tile row by row.
WHOLE_PAGE_BYTES = 64 * 2**20
#: Kind guess for a TIFF without provenance: an integer map with at most
#: this many distinct values is taken for labels.
MAX_GUESSED_CLASSES = 32


# -- colours ---------------------------------------------------------------
def _hex_colours(text: str) -> numpy.ndarray:
    return numpy.array(
        [[int(h[i : i + 2], 16) for i in (0, 2, 4)] for h in text.split()], dtype=numpy.uint8
    )


def _build_label_palette() -> numpy.ndarray:
    # 0: background, dark grey (reads as "nothing" yet differs from black).
    # 1..20: Sasha Trubetskoy's 20 distinct colours, reordered so the first
    # classes get red, green, blue, yellow.
    named = _hex_colours(
        '282828 '
        'e6194b 3cb44b 0082c8 ffe119 f58231 911eb4 46f0f0 f032e6 d2f53c fabebe '
        '008080 e6beff aa6e28 fffac8 800000 aaffc3 808000 ffd8b1 000080 808080'
    )
    # 21..255: farthest-point sampling over an RGB grid (steps of 17),
    # starting from the named colours plus white and black (legend paper
    # and ink): each new colour is the grid point farthest from every colour
    # taken so far (ties: lowest index). Deterministic, so a class keeps its
    # colour across files and versions.
    levels = numpy.arange(0, 256, 17)
    grid = numpy.stack(numpy.meshgrid(levels, levels, levels, indexing='ij'), -1).reshape(-1, 3)
    grid = grid.astype(numpy.float64)
    taken = numpy.concatenate([named, [[255, 255, 255], [0, 0, 0]]]).astype(numpy.float64)
    nearest = numpy.min(((grid[:, None, :] - taken[None, :, :]) ** 2).sum(-1), axis=1)
    generated = []
    for _ in range(256 - len(named)):
        pick = int(numpy.argmax(nearest))
        generated.append(grid[pick])
        nearest = numpy.minimum(nearest, ((grid - grid[pick]) ** 2).sum(-1))
    generated = numpy.array(generated, dtype=numpy.uint8)
    palette = numpy.concatenate([named, generated])
    palette.setflags(write=False)
    return palette


#: Fixed colour of label classes 0..255 (RGB uint8).
LABEL_PALETTE: numpy.ndarray = _build_label_palette()


def _build_viridis() -> numpy.ndarray:
    # Viridis (S. van der Walt, N. Smith; CC0), every 8th entry of the
    # 256-entry map in 8-bit RGB; linear interpolation between these 33
    # stops is within 2/255 of the full table on every channel.
    stops = _hex_colours(
        '440154 470d60 48186a 482374 472d7b 453781 424086 3e4989 3b528b 375b8d 33638d '
        '2f6b8e 2c728e 297a8e 26828e 23898e 21918c 1f978b 1f9f88 21a685 27ad81 31b57b '
        '3dbc74 4cc26c 5cc863 6ece58 81d34d 95d840 aadc32 c0df25 d5e21a eae51a fde725'
    ).astype(float)
    positions = numpy.rint(numpy.linspace(0, 255, len(stops)))
    x = numpy.arange(256)
    lut = numpy.stack([numpy.interp(x, positions, stops[:, c]) for c in range(3)], axis=1)
    lut = numpy.rint(lut).astype(numpy.uint8)
    lut.setflags(write=False)
    return lut


#: Perceptual colour map for probabilities, 256 x RGB uint8.
VIRIDIS: numpy.ndarray = _build_viridis()

_WHITE = numpy.array([255, 255, 255], dtype=numpy.uint8)
_BLACK = numpy.array([0, 0, 0], dtype=numpy.uint8)


def label_colours(classes: numpy.ndarray) -> numpy.ndarray:
    """RGB of each class value (any integer shape -> shape + (3,))."""
    classes = numpy.asarray(classes, dtype=numpy.int64)
    index = numpy.where(classes < 256, classes, 1 + (classes - 1) % 255)
    return LABEL_PALETTE[numpy.clip(index, 0, 255)]


# -- a tiny bitmap font (5x7) for legends ------------------------------------
_GLYPHS = {
    '0': ('01110', '10001', '10011', '10101', '11001', '10001', '01110'),
    '1': ('00100', '01100', '00100', '00100', '00100', '00100', '01110'),
    '2': ('01110', '10001', '00001', '00010', '00100', '01000', '11111'),
    '3': ('11111', '00010', '00100', '00010', '00001', '10001', '01110'),
    '4': ('00010', '00110', '01010', '10010', '11111', '00010', '00010'),
    '5': ('11111', '10000', '11110', '00001', '00001', '10001', '01110'),
    '6': ('00110', '01000', '10000', '11110', '10001', '10001', '01110'),
    '7': ('11111', '00001', '00010', '00100', '01000', '01000', '01000'),
    '8': ('01110', '10001', '10001', '01110', '10001', '10001', '01110'),
    '9': ('01110', '10001', '10001', '01111', '00001', '00010', '01100'),
    '.': ('00000', '00000', '00000', '00000', '00000', '01100', '01100'),
    '-': ('00000', '00000', '00000', '11111', '00000', '00000', '00000'),
    ' ': ('00000',) * 7,
}
_FONT = {
    char: numpy.array([[bit == '1' for bit in row] for row in rows], dtype=bool)
    for char, rows in _GLYPHS.items()
}
GLYPH_WIDTH, GLYPH_HEIGHT = 5, 7


def text_width(text: str, scale: int) -> int:
    return max(0, len(text) * (GLYPH_WIDTH + 1) - 1) * scale


def draw_text(
    pixels: numpy.ndarray, x: int, y: int, text: str, *, scale: int = 1, colour=_BLACK
) -> None:
    """Draw digits (and '.', '-', ' ') with their top-left corner at (x, y)."""
    for number, char in enumerate(text):
        glyph = _FONT[char]
        if scale > 1:
            glyph = numpy.kron(glyph, numpy.ones((scale, scale), dtype=bool))
        left = x + number * (GLYPH_WIDTH + 1) * scale
        region = pixels[y : y + glyph.shape[0], left : left + glyph.shape[1]]
        region[glyph[: region.shape[0], : region.shape[1]]] = colour


# -- geometry ------------------------------------------------------------------
def picture_size(width: int, height: int, size: int) -> tuple[int, int]:
    """(width, height) of a picture whose long side is ``size``, never upscaled."""
    long_side = max(width, height)
    target = min(size, long_side)
    scale = target / long_side
    return max(1, math.floor(width * scale + 0.5)), max(1, math.floor(height * scale + 0.5))


def sample_positions(count: int, extent: int) -> numpy.ndarray:
    """Source index shown by each of ``count`` picture pixels over ``extent`` source pixels."""
    # floor((j + 0.5) * extent / count) in exact integer arithmetic.
    return (2 * numpy.arange(count, dtype=numpy.int64) + 1) * extent // (2 * count)


def _sample_in_bands(
    read_rows: Callable[[int, int], numpy.ndarray],
    rows: numpy.ndarray,
    cols: numpy.ndarray,
    *,
    row_bytes: int,
    out_shape_tail: tuple[int, ...],
    dtype: numpy.dtype,
    budget: int | None = None,
) -> numpy.ndarray:
    """Pixels at rows x cols, reading bands of at most ``budget`` bytes.

    ``rows`` must be non-decreasing. Each band spans consecutive sampled
    rows within the budget (one row at a time when samples are far apart).
    """
    out = numpy.empty((len(rows), len(cols)) + out_shape_tail, dtype=dtype)
    band_rows = max(1, (budget or BAND_BYTES) // max(1, row_bytes))
    start = 0
    while start < len(rows):
        top = int(rows[start])
        stop = int(numpy.searchsorted(rows, top + band_rows, side='left'))
        stop = max(stop, start + 1)
        bottom = int(rows[stop - 1]) + 1
        band = read_rows(top, bottom)
        out[start:stop] = band[rows[start:stop] - top][:, cols]
        start = stop
    return out


# -- TIFF pages ----------------------------------------------------------------
class _TiffPageReader:
    """Rows of one TIFF page as (rows, width, channels), decoding only what is asked."""

    def __init__(self, page: Any):
        self.page = page
        self.width = int(page.imagewidth)
        self.height = int(page.imagelength)
        separate, depth, _, _, contig = page.shaped
        self.channels = int(separate * contig)
        self.dtype = numpy.dtype(page.dtype)
        self._whole: numpy.ndarray | None = None
        self._cached: tuple[int, numpy.ndarray] | None = None
        nbytes = self.width * self.height * self.channels * self.dtype.itemsize
        self._segmented = (
            nbytes > WHOLE_PAGE_BYTES
            and page.planarconfig == 1
            and depth == 1
            and len(page.dataoffsets) > 0
        )
        if self._segmented:
            self._segment_height = int(page.tilelength if page.is_tiled else page.rowsperstrip)
            self._segment_height = max(1, min(self._segment_height, self.height))

    @property
    def row_bytes(self) -> int:
        return self.width * self.channels * self.dtype.itemsize

    def read_rows(self, top: int, bottom: int) -> numpy.ndarray:
        if not self._segmented:
            if self._whole is None:
                data = self.page.asarray()
                data = data.reshape(self.page.shaped)[:, 0]  # (separate, l, w, contig)
                data = numpy.moveaxis(data, 0, -2)  # (l, w, separate, contig)
                self._whole = data.reshape(self.height, self.width, self.channels)
            return self._whole[top:bottom]
        out = numpy.zeros((bottom - top, self.width, self.channels), dtype=self.dtype)
        seg_h = self._segment_height
        for segment_row in range(top // seg_h, (bottom - 1) // seg_h + 1):
            band = self._segment_row(segment_row)
            y0 = segment_row * seg_h
            lo, hi = max(top, y0), min(bottom, y0 + band.shape[0])
            out[lo - top : hi - top] = band[lo - y0 : hi - y0]
        return out

    def _segment_row(self, segment_row: int) -> numpy.ndarray:
        # Consecutive band reads mostly fall in the same tile row: keep one.
        if self._cached is not None and self._cached[0] == segment_row:
            return self._cached[1]
        page = self.page
        seg_h = self._segment_height
        rows = min(seg_h, self.height - segment_row * seg_h)
        band = numpy.zeros((rows, self.width, self.channels), dtype=self.dtype)
        if page.is_tiled:
            across = math.ceil(self.width / page.tilewidth)
            indices = range(segment_row * across, (segment_row + 1) * across)
        else:
            indices = range(segment_row, segment_row + 1)
        decode = page.decode
        extra: dict[str, Any] = {}
        if page.compression in (6, 7, 34892, 33007):  # JPEG flavours
            extra = {'jpegtables': page.jpegtables, 'jpegheader': page.jpegheader}
        fh = page.parent.filehandle
        for index in indices:
            offset, count = page.dataoffsets[index], page.databytecounts[index]
            data = None
            if count:
                with fh.lock:
                    fh.seek(offset)
                    data = fh.read(count)
            segment, position, _ = decode(data, index, **extra)
            if segment is None:
                continue  # a missing tile reads as 0, as in ASAP
            y, x = position[2] - segment_row * seg_h, position[3]
            h = min(segment.shape[1], rows - y)
            w = min(segment.shape[2], self.width - x)
            band[y : y + h, x : x + w] = segment[0, :h, :w].reshape(h, w, self.channels)
        self._cached = (segment_row, band)
        return band


# -- sources -----------------------------------------------------------------
@dataclasses.dataclass
class _Source:
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


def _open_source(path: str) -> _Source:
    if not os.path.exists(path):
        raise StagingNotFoundError(f'{path} does not exist (a staging file is created by create_staging())')
    if os.path.isdir(path):
        raise NotAStagingFileError(f'{path} is a directory, not a staging file or TIFF')
    from .report import sniff

    kind = sniff(path)
    if kind == 'staging':
        return _open_staging_source(path)
    if kind == 'tiff':
        return _open_tiff_source(path)
    raise NotAStagingFileError(f'{path} is neither a tifwriter staging file nor a TIFF')


def _open_staging_source(path: str) -> _Source:
    from .staging import read_staging

    snapshot = read_staging(path)
    spec = snapshot.spec

    def sample(picture_width: int, picture_height: int) -> numpy.ndarray:
        rows = sample_positions(picture_height, spec.height)
        cols = sample_positions(picture_width, spec.width)
        # Merge buffers (mean: float64 sums + counts) cost more than the pixels.
        row_bytes = spec.width * (spec.channels * (spec.numpy_dtype.itemsize + 8) + 4)
        return _sample_in_bands(
            lambda top, bottom: snapshot.read_region(0, top, spec.width, bottom - top),
            rows,
            cols,
            row_bytes=row_bytes,
            out_shape_tail=(spec.channels,),
            dtype=spec.numpy_dtype,
        )

    return _Source(
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


#: Provenance our finalize may write into ImageDescription (key=value,
#: key: value or JSON "key": value are all understood).
_PROVENANCE = re.compile(
    r'["\']?\b(kind|fill|slide_downsample)["\']?\s*[=:]\s*["\']?'
    rf'({"|".join(KINDS)}|[-+0-9.eE]+|nan)',
    re.IGNORECASE,
)


def parse_provenance(description: str) -> dict[str, Any]:
    """kind / fill / slide_downsample found in a TIFF ImageDescription."""
    found: dict[str, Any] = {}
    for key, value in _PROVENANCE.findall(description or ''):
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


def _open_tiff_source(path: str) -> _Source:
    import tifffile

    from .slide import tiff_page_spacing, tiff_pyramid_pages

    try:
        tif = tifffile.TiffFile(path)
    except Exception as exc:
        raise NotATiffError(f'{path} is not a readable TIFF ({_first_line(exc)})') from None
    try:
        pages = tiff_pyramid_pages(tif)
        readers = [_TiffPageReader(page) for page in pages]
    except Exception as exc:
        tif.close()
        if isinstance(exc, NotATiffError):
            raise
        raise NotATiffError(f'{path} is not a readable TIFF ({_first_line(exc)})') from None
    base = readers[0]
    provenance = parse_provenance(pages[0].description)
    spacing = tiff_page_spacing(pages[0])

    def sample(picture_width: int, picture_height: int) -> numpy.ndarray:
        # The smallest level still at least as large as the picture.
        reader = base
        for candidate in readers[1:]:
            if max(candidate.width, candidate.height) >= max(picture_width, picture_height):
                reader = candidate
        rows = sample_positions(picture_height, reader.height)
        cols = sample_positions(picture_width, reader.width)
        try:
            return _sample_in_bands(
                reader.read_rows,
                rows,
                cols,
                row_bytes=reader.row_bytes,
                out_shape_tail=(reader.channels,),
                dtype=reader.dtype,
            )
        except (ValueError, NotImplementedError, OSError) as exc:
            raise NotATiffError(f'{path}: cannot decode the image ({_first_line(exc)})') from None

    return _Source(
        kind='tiff',
        width=base.width,
        height=base.height,
        channels=base.channels,
        dtype=base.dtype,
        data_kind=provenance.get('kind'),
        fill=provenance.get('fill', 0.0),
        spacing=spacing if spacing[0] is not None else None,
        slide_downsample=provenance.get('slide_downsample'),
        sample=sample,
        close=tif.close,
    )


def _guess_kind(samples: numpy.ndarray) -> str:
    """What an unlabelled TIFF holds, from its pixels (see module doc)."""
    channels = samples.shape[-1]
    if samples.dtype.kind == 'f':
        return 'probability'
    if channels in (3, 4):
        return 'image'
    if channels == 1 and len(numpy.unique(samples)) <= MAX_GUESSED_CLASSES:
        return 'labels'
    return 'probability'


# -- rendering -----------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class PreviewImage:
    """A rendered preview: the picture at the top left, the legend to its right."""

    #: (height, width, 3) uint8, picture + legend.
    pixels: numpy.ndarray
    #: Size of the picture part (top-left corner of ``pixels``).
    map_width: int
    map_height: int
    #: What the data is: labels, probability or image.
    kind: str
    #: How it is drawn: 'labels', 'argmax', 'colormap' or 'rgb'.
    rendering: str
    #: Classes shown (labels / argmax), in the legend in this order.
    classes: tuple[int, ...] = ()
    #: Values at the two ends of the colour map (colormap rendering).
    value_range: tuple[float, float] | None = None
    #: Channels of the source.
    channels: int = 1
    #: Size of the source (staging canvas or TIFF level 0).
    source_width: int = 0
    source_height: int = 0
    #: Slide the picture is blended over, if any.
    overlay: str | None = None
    alpha: float = 0.5

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def describe(self) -> str:
        """'labels: classes 0,1,2' and the like."""
        if self.rendering in ('labels', 'argmax'):
            shown = ','.join(str(c) for c in self.classes[:20])
            if len(self.classes) > 20:
                shown += f',... ({len(self.classes)} classes)'
            what = f'classes {shown}' if self.classes else 'no classes'
            text = (
                f'labels: {what}'
                if self.rendering == 'labels'
                else f'{self.kind}, argmax of {self.channels} channels: {what}'
            )
        elif self.rendering == 'colormap':
            lo, hi = self.value_range or (0, 1)
            text = f'{self.kind}: viridis over {lo:g}..{hi:g}'
        else:
            text = f'image ({self.channels} channel{"s" if self.channels > 1 else ""})'
        if self.overlay:
            text += f', over {self.overlay} (alpha {self.alpha:g})'
        return text


def render_preview(
    path: str | os.PathLike,
    *,
    size: int = 1024,
    overlay: str | os.PathLike | None = None,
    alpha: float = 0.5,
) -> PreviewImage:
    """Render a staging file or TIFF as an RGB picture with a legend.

    ``size`` is the picture's long side in pixels (never more than the
    source's); the legend adds a strip on the right. ``overlay``: a slide
    to blend over (``alpha`` = weight of the prediction colours).
    """
    if isinstance(size, bool) or not isinstance(size, (int, numpy.integer)) or size < 1:
        raise InvalidOptionError(f'size must be a positive integer, got {size!r}')
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise InvalidOptionError(f'alpha must be a number from 0 to 1, got {alpha!r}') from None
    if not 0 <= alpha <= 1:
        raise InvalidOptionError(f'alpha must be from 0 to 1, got {alpha:g}')
    path = os.fspath(path)
    slide_geometry = None
    if overlay is not None:
        from .slide import read_slide_geometry

        overlay = os.fspath(overlay)
        slide_geometry = read_slide_geometry(overlay)  # fail early, before sampling
    source = _open_source(path)
    try:
        picture_width, picture_height = picture_size(source.width, source.height, int(size))
        samples = source.sample(picture_width, picture_height)
    finally:
        source.close()
    data_kind = source.data_kind or _guess_kind(samples)
    colours, opacity, rendering, classes, value_range = _colourize(
        samples, data_kind, source.fill
    )
    if slide_geometry is not None:
        slide_rgb = _sample_slide(slide_geometry, source, picture_width, picture_height)
        weight = (alpha * opacity)[..., numpy.newaxis]
        colours = numpy.rint(
            colours.astype(numpy.float32) * weight + slide_rgb.astype(numpy.float32) * (1 - weight)
        ).astype(numpy.uint8)
    if rendering in ('labels', 'argmax'):
        legend_classes = classes
        if slide_geometry is not None:
            # Transparent over the slide: a swatch for them would mislead.
            hidden = {0} | ({source.fill} if rendering == 'labels' else set())
            legend_classes = tuple(c for c in classes if c not in hidden) or classes
        pixels = _with_label_legend(colours, legend_classes)
    elif rendering == 'colormap':
        pixels = _with_colour_bar(colours, value_range, samples.dtype)
    else:
        pixels = colours
    return PreviewImage(
        pixels=pixels,
        map_width=picture_width,
        map_height=picture_height,
        kind=data_kind,
        rendering=rendering,
        classes=classes,
        value_range=value_range,
        channels=source.channels,
        source_width=source.width,
        source_height=source.height,
        overlay=overlay,
        alpha=alpha,
    )


def save_png(image: PreviewImage, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the preview as PNG, atomically (refuses an existing ``out`` unless overwrite;
    ``out`` must end in .png; see :func:`tifwriter_cli.atomic.check_output_path`)."""
    import imagecodecs

    from . import __version__
    from .atomic import check_output_path, png_with_software

    check_output_path(out, overwrite=overwrite, suffix='.png')
    encoded = png_with_software(
        imagecodecs.png_encode(numpy.ascontiguousarray(image.pixels)), f'tifwriter {__version__}'
    )
    with atomic_output(out, overwrite=overwrite) as tmp:
        tmp.write_bytes(encoded)
    return Path(out)


def _colourize(
    samples: numpy.ndarray, data_kind: str, fill: float
) -> tuple[numpy.ndarray, numpy.ndarray, str, tuple[int, ...], tuple[float, float] | None]:
    """(RGB, opacity 0..1 over a slide, rendering, classes, colour-map range)."""
    channels = samples.shape[-1]
    is_fill = _equals_fill(samples, fill).all(axis=-1)
    if data_kind == 'image':
        rgb, opacity = _image_rgb(samples)
        if channels not in (2, 4):
            opacity = numpy.where(is_fill, 0.0, opacity)
        return rgb, opacity, 'rgb', (), None
    if channels == 1 and data_kind == 'probability':
        scaled, value_range = _unit_scale(samples[..., 0])
        index = numpy.rint(numpy.nan_to_num(scaled, nan=0.0) * 255).astype(numpy.intp)
        rgb = VIRIDIS[index]
        opacity = numpy.where(is_fill | numpy.isnan(scaled), 0.0, 1.0)
        return rgb, opacity, 'colormap', (), value_range
    if channels == 1:
        values = samples[..., 0]
        if values.dtype.kind == 'f':
            values = numpy.clip(numpy.nan_to_num(values, nan=0.0), 0, 2**32 - 1)
            values = numpy.floor(values)
        classes = values.astype(numpy.int64)
        rendering = 'labels'
    else:
        # Scores per class: the winning channel is the class.
        classes = numpy.argmax(numpy.nan_to_num(samples, nan=-numpy.inf), axis=-1)
        rendering = 'argmax'
    present = tuple(int(c) for c in numpy.unique(classes))
    opacity = numpy.where(is_fill | (classes == 0), 0.0, 1.0)
    return label_colours(classes), opacity, rendering, present, None


def _equals_fill(samples: numpy.ndarray, fill: float) -> numpy.ndarray:
    if isinstance(fill, float) and math.isnan(fill):
        return numpy.isnan(samples) if samples.dtype.kind == 'f' else numpy.zeros(samples.shape, bool)
    return samples == samples.dtype.type(fill)


def _range_of(dtype: numpy.dtype) -> tuple[float, float]:
    if dtype.kind == 'f':
        return 0.0, 1.0
    info = numpy.iinfo(dtype)
    return float(info.min), float(info.max)


def _unit_scale(values: numpy.ndarray) -> tuple[numpy.ndarray, tuple[float, float]]:
    """Values mapped to 0..1 over the dtype's range (floats: 0..1), clipped; NaN kept."""
    lo, hi = _range_of(values.dtype)
    scaled = (values.astype(numpy.float64) - lo) / (hi - lo)
    return numpy.clip(scaled, 0.0, 1.0), (lo, hi)


def _to_8bit(values: numpy.ndarray) -> numpy.ndarray:
    if values.dtype == numpy.uint8:
        return values
    scaled, _ = _unit_scale(values)
    return numpy.rint(numpy.nan_to_num(scaled, nan=0.0) * 255).astype(numpy.uint8)


def _image_rgb(samples: numpy.ndarray) -> tuple[numpy.ndarray, numpy.ndarray]:
    """RGB over white and opacity for 1 (grey), 2 (grey+alpha), 3, 4 (RGBA) or more channels."""
    channels = samples.shape[-1]
    pixels = _to_8bit(samples)
    if channels in (1, 2):
        colour = numpy.repeat(pixels[..., :1], 3, axis=-1)
    else:
        colour = pixels[..., :3]
    opacity = numpy.ones(samples.shape[:2])
    if channels in (2, 4):
        opacity = pixels[..., -1].astype(numpy.float64) / 255
        over_white = colour * opacity[..., None] + 255.0 * (1 - opacity[..., None])
        colour = numpy.rint(over_white).astype(numpy.uint8)
        # Over a slide the alpha itself says how much shows.
    return numpy.ascontiguousarray(colour), opacity


# -- overlay ---------------------------------------------------------------------
def _overlay_downsample(source: _Source, geometry: Any) -> tuple[float, float]:
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


def _sample_slide(
    geometry: Any, source: _Source, picture_width: int, picture_height: int
) -> numpy.ndarray:
    """Slide RGB under each picture pixel's centre (white past the slide's edges)."""
    down_x, down_y = _overlay_downsample(source, geometry)
    # Level-0 slide position under each picture pixel's centre.
    slide_x = (numpy.arange(picture_width) + 0.5) * (source.width * down_x / picture_width)
    slide_y = (numpy.arange(picture_height) + 0.5) * (source.height * down_y / picture_height)
    stride = min(source.width * down_x / picture_width, source.height * down_y / picture_height)
    if geometry.reader == 'openslide':
        rgb = _sample_with_openslide(geometry, slide_x, slide_y, stride)
    else:
        rgb = _sample_with_tifffile(geometry, slide_x, slide_y, stride)
    inside = (slide_y[:, None] < geometry.height) & (slide_x[None, :] < geometry.width)
    # The canvas may reach up to one canvas pixel past the slide (ceil).
    rgb[~inside] = _WHITE
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
    from .slide import _open_openslide

    slide = _open_openslide(geometry.path)
    if slide is None:
        raise SlideReadError(f'cannot read slide {geometry.path} with OpenSlide')
    with slide:
        level = _best_level(slide.level_downsamples, stride)
        downsample = slide.level_downsamples[level]
        level_w, level_h = slide.level_dimensions[level]
        cols = numpy.minimum(numpy.floor(slide_x / downsample).astype(numpy.int64), level_w - 1)
        rows = numpy.minimum(numpy.floor(slide_y / downsample).astype(numpy.int64), level_h - 1)
        read_w = int(cols.max()) + 1

        def read_rows(top: int, bottom: int) -> numpy.ndarray:
            region = slide.read_region(
                (0, int(round(top * downsample))), level, (read_w, bottom - top)
            )
            return numpy.asarray(region)

        try:
            rgba = _sample_in_bands(
                read_rows,
                rows,
                cols,
                row_bytes=read_w * 4 * 2,  # RGBA plus PIL's own copy
                out_shape_tail=(4,),
                dtype=numpy.dtype(numpy.uint8),
            )
        except Exception as exc:  # openslide.OpenSlideError, decoding errors
            raise SlideReadError(
                f'cannot read slide {geometry.path}: {_first_line(exc)}'
            ) from None
    # OpenSlide gives transparent pixels outside the scanned area: white.
    colour, opacity = _image_rgb(rgba)
    return colour


def _sample_with_tifffile(
    geometry: Any, slide_x: numpy.ndarray, slide_y: numpy.ndarray, stride: float
) -> numpy.ndarray:
    import tifffile

    from .slide import tiff_pyramid_pages

    try:
        with tifffile.TiffFile(geometry.path) as tif:
            pages = tiff_pyramid_pages(tif)
            dims = [(int(p.imagewidth), int(p.imagelength)) for p in pages]
            level = _best_level(
                [min(geometry.width / w, geometry.height / h) for w, h in dims], stride
            )
            reader = _TiffPageReader(pages[level])
            level_w, level_h = dims[level]
            cols = numpy.floor(slide_x * level_w / geometry.width).astype(numpy.int64)
            rows = numpy.floor(slide_y * level_h / geometry.height).astype(numpy.int64)
            samples = _sample_in_bands(
                reader.read_rows,
                numpy.minimum(rows, level_h - 1),
                numpy.minimum(cols, level_w - 1),
                row_bytes=reader.row_bytes,
                out_shape_tail=(reader.channels,),
                dtype=reader.dtype,
            )
    except SlideReadError:
        raise
    except Exception as exc:
        raise SlideReadError(f'cannot read slide {geometry.path}: {_first_line(exc)}') from None
    colour, _ = _image_rgb(samples)
    return colour


# -- legends -------------------------------------------------------------------
def _legend_scale(picture_height: int) -> int:
    return 2 if picture_height >= 400 else 1


def _compose(picture: numpy.ndarray, legend: numpy.ndarray) -> numpy.ndarray:
    height = max(picture.shape[0], legend.shape[0])
    pixels = numpy.full((height, picture.shape[1] + legend.shape[1], 3), 255, numpy.uint8)
    pixels[: picture.shape[0], : picture.shape[1]] = picture
    pixels[: legend.shape[0], picture.shape[1] :] = legend
    return pixels


def _with_label_legend(picture: numpy.ndarray, classes: tuple[int, ...]) -> numpy.ndarray:
    """A strip of swatch + class number rows, in columns when they do not fit."""
    scale = _legend_scale(picture.shape[0])
    margin, swatch, gap, row_height = 4 * scale, 9 * scale, 3 * scale, 12 * scale
    count = max(1, len(classes))
    fit = (picture.shape[0] - 2 * margin) // row_height
    rows_per_column = min(count, max(min(count, 10), fit))
    columns = math.ceil(count / rows_per_column)
    label_width = max([text_width(str(c), scale) for c in classes] or [0])
    column_width = swatch + gap + label_width + margin
    legend = numpy.full(
        (2 * margin + rows_per_column * row_height, margin + columns * column_width, 3),
        255,
        numpy.uint8,
    )
    for number, value in enumerate(classes):
        column, row = divmod(number, rows_per_column)
        x = margin + column * column_width
        y = margin + row * row_height
        legend[y : y + swatch, x : x + swatch] = _BLACK  # border
        legend[y + 1 : y + swatch - 1, x + 1 : x + swatch - 1] = label_colours(numpy.array(value))
        text_y = y + (swatch - GLYPH_HEIGHT * scale) // 2
        draw_text(legend, x + swatch + gap, text_y, str(value), scale=scale)
    return _compose(picture, legend)


def _format_value(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f'{value:g}'


def _with_colour_bar(
    picture: numpy.ndarray, value_range: tuple[float, float] | None, dtype: numpy.dtype
) -> numpy.ndarray:
    """A vertical viridis bar, high values on top, with its end values."""
    scale = _legend_scale(picture.shape[0])
    margin, bar_width, gap = 4 * scale, 10 * scale, 3 * scale
    lo, hi = value_range or _range_of(dtype)
    top_label, bottom_label = _format_value(hi), _format_value(lo)
    bar_height = max(64 * scale, picture.shape[0] - 2 * margin)
    label_width = max(text_width(top_label, scale), text_width(bottom_label, scale))
    legend = numpy.full(
        (bar_height + 2 * margin, margin + bar_width + gap + label_width + margin, 3),
        255,
        numpy.uint8,
    )
    levels = numpy.rint(numpy.linspace(255, 0, bar_height)).astype(numpy.intp)
    legend[margin : margin + bar_height, margin : margin + bar_width] = VIRIDIS[levels][:, None]
    text_x = margin + bar_width + gap
    draw_text(legend, text_x, margin, top_label, scale=scale)
    draw_text(legend, text_x, margin + bar_height - GLYPH_HEIGHT * scale, bottom_label, scale=scale)
    return _compose(picture, legend)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
