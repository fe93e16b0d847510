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
``--downsample`` / ``--level``). The rules live in the library
(:func:`tifwriter_cli.slide.resolve_canvas_geometry`), re-exported here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..slide import EDGE_CHOICES, resolve_canvas_geometry

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
