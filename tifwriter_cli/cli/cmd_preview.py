"""``tifwriter preview STAGING|TIFF -o out.png``: a PNG thumbnail with a legend."""

from __future__ import annotations

import click

from .options import overwrite_opt


@click.command('preview')
@click.argument('path', type=click.Path(path_type=str), metavar='STAGING|TIFF')
@click.option(
    '-o',
    '--output',
    'output',
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    metavar='OUT.png',
    help='PNG to write (refused if it exists, unless --overwrite).',
)
@click.option(
    '--size',
    type=click.IntRange(min=16, max=16384),
    default=1024,
    show_default=True,
    help='Long side of the picture in pixels (never more than the canvas); the legend '
    'adds a strip on the right.',
)
@click.option(
    '--overlay',
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    metavar='SLIDE',
    help='Blend over this slide (OpenSlide formats or TIFF); class 0 and the fill value '
    'stay transparent.',
)
@click.option(
    '--alpha',
    type=click.FloatRange(0.0, 1.0),
    default=0.5,
    show_default=True,
    help='Weight of the prediction colours over the slide (with --overlay).',
)
@click.option(
    '--region',
    default=None,
    metavar='X,Y,W,H',
    help='Only this rectangle of the canvas (canvas pixels), at full resolution (one picture pixel '
    'per canvas pixel when it fits --size); over the same place of the slide with --overlay. '
    'For checking patch seams.',
)
@overwrite_opt
def command(
    path: str, output: str, size: int, overlay: str | None, alpha: float, region: str | None,
    overwrite: bool,
) -> None:
    """Render a staging file or a TIFF as a PNG for a quick look.

    \b
    Labels get a fixed colour per class (the same in every file) and a legend;
    probabilities the viridis colour map with a colour bar; images their own
    colours. Several channels that are not an image show their argmax.

    \b
    Example:
      tifwriter preview mask.h5 -o mask.png --overlay slide.svs --alpha 0.4
    """
    import os

    from ..atomic import check_output_path
    from ..errors import StagingNotFoundError
    from ..preview import render_preview, save_png

    if not os.path.exists(path):
        raise StagingNotFoundError(f'{path} does not exist (a staging file is created by `tifwriter init`)')
    # Refuse a bad output before the (possibly long) rendering.
    out = check_output_path(output, overwrite=overwrite, inputs=(path, overlay), suffix='.png')
    window = None
    if region is not None:
        from ..errors import InvalidOptionError

        parts = region.split(',')
        if len(parts) != 4 or not all(p.strip().lstrip('-').isdigit() for p in parts):
            raise InvalidOptionError(f'--region takes X,Y,W,H (four integers), got {region!r}')
        window = tuple(int(p) for p in parts)
    image = render_preview(path, size=size, overlay=overlay, alpha=alpha, region=window)
    save_png(image, out, overwrite=overwrite)
    legend = '' if image.width == image.map_width else f', picture {image.map_width}x{image.map_height} + legend'
    click.echo(f'wrote {output} ({image.width}x{image.height}{legend}; {image.describe()})')
