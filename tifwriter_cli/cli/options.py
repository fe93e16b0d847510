"""Options shared by several subcommands (rasterio's ``rio/options.py`` style)."""

from __future__ import annotations

import click

from ..vocab import CONVERT_MODES

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
