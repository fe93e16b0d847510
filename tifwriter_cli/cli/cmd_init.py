"""``tifwriter init STAGING``: create a staging file describing the canvas.

The options are gathered into plain CanvasSpec fields by
:func:`spec_fields_from_options`, so an option that derives fields from
elsewhere (``--like SLIDE``: size and spacing from a slide) only has to add
its decorator and fill the fields it knows before the spec is built.
"""

from __future__ import annotations

import logging
from typing import Any

import click

from ..vocab import DTYPES, KINDS, MERGE_RULES
from .like_options import SPACING_HELP, like_slide_options, resolve_canvas_geometry
from .options import classes_opt, overwrite_opt, staging_arg

log = logging.getLogger('tifwriter_cli.cli.init')


@click.command('init')
@staging_arg
@click.option('--width', type=int, default=None, help='Canvas width in pixels (unless --like).')
@click.option('--height', type=int, default=None, help='Canvas height in pixels (unless --like).')
@click.option('--channels', type=int, default=1, show_default=True, help='Values per pixel.')
@click.option(
    '--dtype', type=click.Choice(DTYPES), default='uint8', show_default=True,
    help='Pixel type of the canvas and the TIFF.',
)
@click.option(
    '--spacing', type=float, default=None, metavar='UM',
    help=SPACING_HELP + ' Without any pixel size the TIFF carries no physical size.',
)
@click.option('--spacing-y', type=float, default=None, metavar='UM', help='Pixel height in micrometres.')
@click.option(
    '--tile-size', type=int, default=512, show_default=True,
    help='TIFF tile side: a multiple of 16 from 16 to 4096.',
)
@click.option(
    '--fill', type=float, default=0, show_default=True,
    help='Value of pixels no patch covers (must fit the dtype).',
)
@click.option(
    '--merge', type=click.Choice(MERGE_RULES), default='overwrite', show_default=True,
    help='How overlapping patches combine: overwrite (last published wins), mean, max, min, '
    'weighted (each window weighted by its --blend map when written: sliding-window blending).',
)
@click.option(
    '--kind', type=click.Choice(KINDS), default='labels', show_default=True,
    help='What the values are; finalize picks downsampling and compression from it.',
)
@classes_opt
@like_slide_options
@overwrite_opt
def command(staging: str, overwrite: bool, **options: Any) -> None:
    """Create the staging file STAGING for a canvas of --width x --height pixels.

    Patches are then added with write-patch or ingest-npy-dir, from any number
    of processes, and finalize writes the TIFF. An existing STAGING (and the
    patches staged in it) is replaced only with --overwrite.

    \b
    Examples:
      tifwriter init mask.h5 --width 98304 --height 71680 --spacing 0.25 --kind labels
      tifwriter init heat.h5 --like slide.svs --downsample 16 --kind probability --merge mean
    """
    from ..atomic import check_output_path
    from ..spec import CanvasSpec
    from ..staging import create_staging

    # Before the slide is read: never replace the slide itself, or anything
    # tifwriter did not make.
    check_output_path(staging, overwrite=overwrite, inputs=(options.get('like'),))
    spec = CanvasSpec(**spec_fields_from_options(options))
    create_staging(staging, spec, overwrite=overwrite)
    click.echo(f'created {staging}: {describe_spec(spec)}')
    _warn_about_choices(spec)


def spec_fields_from_options(options: dict[str, Any]) -> dict[str, Any]:
    """CanvasSpec keyword arguments from the parsed options (validated by CanvasSpec)."""
    geometry = resolve_canvas_geometry(
        width=options['width'],
        height=options['height'],
        spacing=options['spacing'],
        spacing_y=options['spacing_y'],
        like=options.get('like'),
        downsample=options.get('downsample'),
        level=options.get('level'),
        edge=options.get('edge'),
    )
    return {
        **geometry,
        'channels': options['channels'],
        'dtype': options['dtype'],
        'tile_size': options['tile_size'],
        # Click parses --fill as a float; an integral one is passed as an
        # int so messages about integer canvases read '300', not '300.0'.
        'fill': int(options['fill']) if float(options['fill']).is_integer() else options['fill'],
        'merge': options['merge'],
        'kind': options['kind'],
        'classes': options.get('classes'),
    }


def describe_spec(spec: Any) -> str:
    """One line: size, pixel type, spacing, tiling, merge rule."""
    channels = f'{spec.channels} channel' + ('s' if spec.channels != 1 else '')
    spacing = (
        f'{spec.spacing_x:g} x {spec.spacing_y:g} um/px' if spec.spacing_x else 'no spacing'
    )
    overlay = (
        f', 1 px = {spec.slide_downsample:g} slide px' if spec.slide_downsample != 1 else ''
    )
    return (
        f'canvas {spec.width} x {spec.height} px{overlay}, {channels} {spec.dtype}, {spacing}, '
        f'tile {spec.tile_size}, fill {spec.fill:g}, merge {spec.merge}, kind {spec.kind}'
        + (f', {len(spec.classes)} classes' if getattr(spec, 'classes', None) else '')
    )


def _warn_about_choices(spec: Any) -> None:
    if spec.spacing_x is None:
        log.warning(
            'no --spacing given: the TIFF will carry no pixel size, so viewers cannot '
            'show micrometres and QuPath cannot calibrate measurements'
        )
    if spec.kind == 'labels' and spec.merge in ('mean', 'weighted'):
        log.warning(
            f'merge {spec.merge} on labels averages class numbers where patches overlap '
            '(e.g. classes 1 and 3 give 2); max or overwrite keep real classes'
        )
