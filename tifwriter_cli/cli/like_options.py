"""``init --like SLIDE``: take the canvas size and pixel size from a slide.

Usage in a command (``cmd_init``)::

    @click.command('init')
    ...
    @click.option('--spacing', type=float, default=None, help=SPACING_HELP)
    @like_slide_options
    def command(..., width, height, spacing, spacing_y, like, downsample, level, edge, ...):
        geometry = resolve_canvas_geometry(
            width=width, height=height, spacing=spacing, spacing_y=spacing_y,
            like=like, downsample=downsample, level=level, edge=edge,
        )
        spec = CanvasSpec(**geometry, channels=..., dtype=..., ...)

``--spacing`` stays the command's own option: without ``--like`` it is the
canvas pixel size, with ``--like`` the target pixel size (exclusive with
``--downsample`` / ``--level``). :func:`resolve_canvas_geometry` checks how
they combine (its messages name the flags) and turns them into CanvasSpec
fields; the geometry itself is the library's
(:func:`tifwriter_cli.slide.canvas_from_slide`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import click

from ..errors import InvalidOptionError
from ..slide import EDGE_CHOICES, canvas_from_slide
from ..slide_reader import read_slide_geometry

__all__ = ['like_slide_options', 'resolve_canvas_geometry', 'SPACING_HELP']

#: Help text for init's ``--spacing`` that explains its meaning with --like.
SPACING_HELP = (
    'Micrometres per canvas pixel (x; y too unless --spacing-y). With --like: the '
    'target pixel size; the downsample is SPACING / the slide\'s pixel size.'
)


def like_slide_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--like SLIDE``, ``--downsample D``, ``--level L`` and ``--edge``
    (parameters ``like``, ``downsample``, ``level``, ``edge``; None when not
    given, so the resolver can refuse them without --like; edge None means
    drop)."""
    options = [
        click.option(
            '--like',
            'like',
            type=click.Path(dir_okay=False, path_type=str),
            default=None,
            metavar='SLIDE',
            help='Make the canvas overlay this slide (any OpenSlide format or TIFF): size '
            'and pixel size from the slide, at --downsample, --level or --spacing. '
            'Excludes --width/--height.',
        ),
        click.option(
            '--downsample',
            type=float,
            default=None,
            metavar='D',
            help='With --like: one canvas pixel per D x D slide pixels; canvas size '
            'floor(slide / D) (see --edge), pixel size slide x D. Default 1.',
        ),
        click.option(
            '--level',
            type=click.IntRange(min=0),
            default=None,
            metavar='L',
            help="With --like: the size and downsample of the slide's pyramid level L.",
        ),
        click.option(
            '--edge',
            type=click.Choice(EDGE_CHOICES),
            default=None,
            help='With --like --downsample/--spacing: drop (default) sizes the canvas '
            "floor(slide / D), so ASAP's overlay panel places it exactly; cover sizes it "
            "ceil(slide / D), covering the slide's last partial block, but ASAP's overlay "
            'panel may not show it.',
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def resolve_canvas_geometry(
    *,
    width: int | None,
    height: int | None,
    spacing: float | None,
    spacing_y: float | None,
    like: str | os.PathLike | None,
    downsample: float | None,
    level: int | None,
    edge: str | None = None,
) -> dict[str, Any]:
    """CanvasSpec fields (width, height, spacing_x, spacing_y, slide_downsample)
    from ``init``'s geometry options.

    Without ``like``: width and height are required and ``spacing`` /
    ``spacing_y`` are the canvas' own pixel size (as before); downsample and
    level are refused (they mean nothing without a slide).

    With ``like`` SLIDE: the size comes from the slide, so width and height
    are refused (an override would silently misalign the canvas), and
    ``spacing`` means the TARGET micrometres per pixel, one of
    ``spacing`` / ``downsample`` / ``level`` at most (none: the slide's
    own resolution); ``spacing_y`` is refused (the y pixel size follows
    the slide's). ``edge`` ('drop' or 'cover', None = 'drop') sizes a
    downsample or spacing canvas (see :func:`tifwriter_cli.slide.canvas_from_slide`); it is
    refused with ``level`` (the level's own size) and without ``like``.
    """
    if like is None:
        for name, value in (('--downsample', downsample), ('--level', level), ('--edge', edge)):
            if value is not None:
                raise InvalidOptionError(f'{name} needs --like SLIDE')
        missing = [name for name, value in (('--width', width), ('--height', height))
                   if value is None]
        if missing:
            raise InvalidOptionError(
                f'{" and ".join(missing)} required (or --like SLIDE to take the size '
                'from a slide)'
            )
        return {
            'width': width,
            'height': height,
            'spacing_x': spacing,
            'spacing_y': spacing_y,
            'slide_downsample': 1.0,
        }
    given = [name for name, value in (('--width', width), ('--height', height))
             if value is not None]
    if given:
        raise InvalidOptionError(
            f'{" and ".join(given)} cannot be combined with --like (the size comes from '
            'the slide; use --downsample, --level or --spacing to choose the resolution)'
        )
    if spacing_y is not None:
        raise InvalidOptionError(
            '--spacing-y cannot be combined with --like (the y pixel size follows the slide)'
        )
    chosen = [name for name, value in
              (('--spacing', spacing), ('--downsample', downsample), ('--level', level))
              if value is not None]
    if len(chosen) > 1:
        raise InvalidOptionError(
            f'{" and ".join(chosen)} are exclusive with --like: give one resolution'
        )
    if edge is not None and level is not None:
        raise InvalidOptionError(
            "--edge cannot be combined with --level (the canvas takes the level's own size)"
        )
    geometry = read_slide_geometry(like)
    canvas = canvas_from_slide(
        geometry, downsample=downsample, level=level, spacing=spacing,
        edge='drop' if edge is None else edge,
    )
    return canvas.to_spec_fields()
