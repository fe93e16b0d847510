"""Rendering a preview: sample the source, colour it, blend it, add the legend."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import numpy

from ..atomic import atomic_output
from ..errors import InvalidOptionError
from .colours import colourize, guess_kind
from .legend import with_colour_bar, with_label_legend
from .overlay import sample_slide
from .sampling import picture_size
from .sources import open_source

__all__ = ['PreviewImage', 'render_preview', 'save_png']


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
    #: The rectangle shown (x, y, width, height; canvas pixels), or None: all.
    region: tuple[int, int, int, int] | None = None
    #: Class names of the legend (value -> name), from the class table.
    names: dict[int, str] = dataclasses.field(default_factory=dict)

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    def describe(self) -> str:
        """'labels: classes 0,1,2' and the like."""
        if self.rendering in ('labels', 'argmax'):
            shown = ','.join(
                f'{c} {self.names[c]}' if c in self.names else str(c) for c in self.classes[:20]
            )
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
        if self.region:
            x, y, width, height = self.region
            text += f', region x {x}..{x + width}, y {y}..{y + height}'
        if self.overlay:
            text += f', over {self.overlay} (alpha {self.alpha:g})'
        return text


def render_preview(
    path: str | os.PathLike,
    *,
    size: int = 1024,
    overlay: str | os.PathLike | None = None,
    alpha: float = 0.5,
    region: tuple[int, int, int, int] | None = None,
) -> PreviewImage:
    """Render a staging file or TIFF as an RGB picture with a legend.

    ``size`` is the picture's long side in pixels (never more than the
    source's); the legend adds a strip on the right. ``overlay``: a slide
    to blend over (``alpha`` = weight of the prediction colours).
    ``region``: (x, y, width, height) in canvas pixels (level 0): only that
    rectangle, at full resolution (one picture pixel per canvas pixel when it
    fits ``size``), over the same place of the slide with ``overlay``.
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
        from ..slide_reader import read_slide_geometry

        overlay = os.fspath(overlay)
        slide_geometry = read_slide_geometry(overlay)  # fail early, before sampling
    source = open_source(path)
    try:
        window = checked_region(region, source.width, source.height)
        shown_w, shown_h = (window[2], window[3]) if window else (source.width, source.height)
        picture_width, picture_height = picture_size(shown_w, shown_h, int(size))
        samples = source.sample(picture_width, picture_height, window)
    finally:
        source.close()
    data_kind = source.data_kind or guess_kind(samples)
    table = source.classes if data_kind in ('labels', 'probability') else None
    colours, opacity, rendering, classes, value_range = colourize(
        samples, data_kind, source.fill, table
    )
    if slide_geometry is not None:
        slide_rgb = sample_slide(slide_geometry, source, picture_width, picture_height, window)
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
        pixels = with_label_legend(colours, legend_classes, table)
    elif rendering == 'colormap':
        pixels = with_colour_bar(colours, value_range, samples.dtype)
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
        region=window,
        names={c: table.name_of(c) for c in classes if table.get(c)} if table is not None else {},
    )


def checked_region(region: Any, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``region`` as (x, y, width, height) inside a width x height canvas, or None."""
    if region is None:
        return None
    try:
        x, y, w, h = (int(v) for v in region)
        if any(int(v) != v for v in region):
            raise ValueError
    except (TypeError, ValueError):
        raise InvalidOptionError(f'region must be four integers x, y, width, height, got {region!r}') from None
    if w < 1 or h < 1:
        raise InvalidOptionError(f'region width and height must be at least 1, got {w} x {h}')
    if x < 0 or y < 0 or x + w > width or y + h > height:
        raise InvalidOptionError(
            f'region x {x}..{x + w}, y {y}..{y + h} is not inside the {width} x {height} canvas'
        )
    return x, y, w, h


def save_png(image: PreviewImage, out: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write the preview as PNG, atomically (refuses an existing ``out`` unless overwrite;
    ``out`` must end in .png; see :func:`tifwriter_cli.atomic.check_output_path`)."""
    import imagecodecs

    from .. import __version__
    from ..atomic import check_output_path, png_with_software

    check_output_path(out, overwrite=overwrite, suffix='.png')
    encoded = png_with_software(
        imagecodecs.png_encode(numpy.ascontiguousarray(image.pixels)), f'tifwriter {__version__}'
    )
    with atomic_output(out, overwrite=overwrite) as tmp:
        tmp.write_bytes(encoded)
