"""Options shared by several subcommands (rasterio's ``rio/options.py`` style)."""

from __future__ import annotations

import click

from ..vocab import BLEND_SHAPES, CONVERT_MODES, LAYOUTS

overwrite_opt = click.option(
    '--overwrite', is_flag=True, help='Replace the output if it exists (refused otherwise).'
)

json_opt = click.option('--json', 'as_json', is_flag=True, help='Print JSON instead of text.')

workers_opt = click.option(
    '--workers',
    type=click.IntRange(min=1),
    default=None,
    help='Encoding threads (default: all cores).',
)

convert_opt = click.option(
    '--convert',
    type=click.Choice(CONVERT_MODES),
    default='exact',
    show_default=True,
    help='exact: refuse values the canvas dtype cannot hold; scale: floats 0..1 '
    'to the integer range (0..255 for uint8); clip: round and clip.',
)

layout_opt = click.option(
    '--layout',
    type=click.Choice(LAYOUTS),
    default='hwc',
    show_default=True,
    help='Axis order of 3-D arrays: hwc (H, W, C; numpy) or chw (C, H, W; PyTorch).',
)

def blend_options(function):
    """``--blend``, ``--sigma``, ``--ramp``, ``--crop-margin`` (parameters
    blend, sigma, ramp, crop_margin): the patch as a sliding window."""
    options = [
        click.option(
            '--blend', type=click.Choice(BLEND_SHAPES), default=None,
            help="On a --merge weighted canvas: how the window weighs its pixels (default gaussian).",
        ),
        click.option('--sigma', type=float, default=None, metavar='S',
                     help='--blend gaussian: sigma as a fraction of the window side (default 0.125).'),
        click.option('--ramp', type=click.IntRange(min=1), default=None, metavar='PX',
                     help='--blend linear: ramp width in px (default a quarter of the shorter side).'),
        click.option('--crop-margin', type=click.IntRange(min=0), default=0, metavar='M',
                     help="Drop the window's outer M px, except on sides touching the canvas border.",
                     show_default=True),
    ]
    for option in reversed(options):
        function = option(function)
    return function


classes_opt = click.option(
    '--classes',
    metavar='TABLE|FILE.json',
    default=None,
    help="Class names (and colours) of the label values: '0=background,1=tumour:#e41a1c,...', "
    "'background,tumour,...' (values 0, 1, ...) or a JSON file (docs/guide.md, Class names).",
)

staging_arg = click.argument(
    'staging', type=click.Path(dir_okay=False, path_type=str), metavar='STAGING'
)


def is_quiet(ctx: click.Context) -> bool:
    """Was -q/--quiet given to the group?"""
    return bool((ctx.find_root().obj or {}).get('quiet'))


def show_progress(ctx: click.Context) -> bool:
    """Progress bars only on a terminal and when not --quiet."""
    import sys

    return not is_quiet(ctx) and sys.stderr.isatty()
