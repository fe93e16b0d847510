"""``tifwriter write-patch STAGING PATCH --x X --y Y``: stage one patch.

Meant to be called once per patch from inference jobs, so it imports only
what it needs, lazily (one call stays well under half a second).
"""

from __future__ import annotations

import logging

import click

from ..vocab import COORDS
from .options import convert_opt, staging_arg


@click.command('write-patch')
@staging_arg
@click.argument('patch', type=click.Path(dir_okay=False, path_type=str), metavar='PATCH')
@click.option('--x', 'x', type=int, required=True, help='Column of the patch\'s top-left pixel (may be negative).')
@click.option('--y', 'y', type=int, required=True, help='Row of the patch\'s top-left pixel (may be negative).')
@convert_opt
@click.option(
    '--coords', type=click.Choice(COORDS), default='canvas', show_default=True,
    help='canvas: X, Y are canvas pixels; slide: slide level-0 pixels, divided by the '
    'canvas downsample (floor).',
)
@click.option(
    '--key', default=None, metavar='TEXT',
    help='Contribution key (default: the file\'s absolute path). Staging a key again '
    'replaces its earlier staging; give distinct keys to place one file at several positions.',
)
def command(staging: str, patch: str, x: int, y: int, convert: str, coords: str, key: str | None) -> None:
    """Stage the array in PATCH (.npy, or .npz holding one array) with its
    top-left corner at X, Y.

    The part outside the canvas is cut off; a patch wholly outside stages
    nothing and exits 0 saying so. Exits 0 only once the patch is durably
    published (a concurrent finalize or info sees it).

    One file is one contribution: staging the same file again (a retried
    job, or ingest-npy-dir over its directory) REPLACES its earlier staging
    when it was rewritten or is placed elsewhere, and does nothing when it is
    unchanged at the same place.
    """
    from ..errors import PatchError
    from ..geometry import clip_to_canvas
    from ..ingest.contribution import stage_file
    from ..staging import open_staging, read_staging

    # The file's current record, so a retried call (a requeued job) with the
    # same unchanged file at the same place says so and changes nothing, and
    # a call with another place or content replaces the earlier staging.
    with read_staging(staging) as snapshot:
        current = snapshot.contributions
    # publish_every_s=inf: this writer publishes exactly once, at close.
    with open_staging(staging, publish_every_s=float('inf')) as writer:
        spec = writer.spec
        try:
            outcome = stage_file(
                writer, patch, x, y, coords=coords, convert=convert, current=current, key=key
            )
        except PatchError as exc:
            raise type(exc)(f'{patch}: {exc}') from None
    at = f'x={outcome.x}, y={outcome.y}' + (' (canvas px)' if coords == 'slide' else '')
    if outcome.status == 'already':
        click.echo(f'{patch}: already staged at {at} (unchanged since): nothing to do')
        return
    width, height = outcome.width, outcome.height
    placed = clip_to_canvas(outcome.x, outcome.y, width, height, spec.width, spec.height)
    if placed is None:
        withdrawn = ' (its earlier staging is withdrawn)' if outcome.previous_placement else ''
        logging.getLogger('tifwriter_cli.cli.write_patch').warning(
            '%s lies wholly outside the %d x %d canvas', patch, spec.width, spec.height
        )
        click.echo(f'{patch}: {width} x {height} at {at} is wholly outside the canvas: nothing staged{withdrawn}')
        return
    clipped = (placed.width, placed.height) != (width, height)
    replaced = ''
    if outcome.status == 'replaced':
        replaced = f', replacing its earlier staging ({_placement_words(outcome.previous_placement)})'
    click.echo(
        f'staged {patch}: {width} x {height} at {at}'
        + (
            f', clipped to x {placed.x}..{placed.x + placed.width}, '
            f'y {placed.y}..{placed.y + placed.height}'
            if clipped
            else ''
        )
        + replaced
    )


def _placement_words(placement: str) -> str:
    try:
        x, y, convert = placement.split(',')
    except ValueError:
        return 'earlier version'
    return f'x={x}, y={y}, convert {convert}'
