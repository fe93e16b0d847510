"""``tifwriter write-patch STAGING PATCH --x X --y Y``: stage one patch.

Meant to be called once per patch from inference jobs, so it imports only
what it needs, lazily (one call stays well under half a second).
"""

from __future__ import annotations

import click

from .options import convert_opt, staging_arg


@click.command('write-patch')
@staging_arg
@click.argument('patch', type=click.Path(dir_okay=False, path_type=str), metavar='PATCH')
@click.option('--x', 'x', type=int, required=True, help='Column of the patch\'s top-left pixel (may be negative).')
@click.option('--y', 'y', type=int, required=True, help='Row of the patch\'s top-left pixel (may be negative).')
@convert_opt
@click.option(
    '--coords', type=click.Choice(['canvas', 'slide']), default='canvas', show_default=True,
    help='canvas: X, Y are canvas pixels; slide: slide level-0 pixels, divided by the '
    'canvas downsample (floor).',
)
def command(staging: str, patch: str, x: int, y: int, convert: str, coords: str) -> None:
    """Stage the array in PATCH (.npy, or .npz holding one array) with its
    top-left corner at X, Y.

    The part outside the canvas is cut off; a patch wholly outside stages
    nothing and exits 0 with a warning. Exits 0 only once the patch is
    durably published (a concurrent finalize or info sees it).
    """
    from ..errors import PatchError
    from ..geometry import clip_to_canvas
    from ..ingest import canvas_position
    from ..npyfile import load_array
    from ..staging import open_staging

    # publish_every_s=inf: this writer publishes exactly once, at close.
    with open_staging(staging, publish_every_s=float('inf')) as writer:
        spec = writer.spec
        array = load_array(patch, spec, convert=convert)
        canvas_x, canvas_y = canvas_position(x, y, coords=coords, spec=spec)
        height, width = array.shape[:2]
        # Recorded as a source so a retried call (a requeued job) with the
        # same unchanged file at the same place is counted once. A patch
        # wholly outside stages nothing, so it needs no record either.
        inside = clip_to_canvas(canvas_x, canvas_y, width, height, spec.width, spec.height)
        source = _source_record(patch, canvas_x, canvas_y) if inside else None
        try:
            writer.write(canvas_x, canvas_y, array, convert=convert, source=source)
        except PatchError as exc:
            raise type(exc)(f'{patch}: {exc}') from None
    placed = clip_to_canvas(canvas_x, canvas_y, width, height, spec.width, spec.height)
    at = f'x={canvas_x}, y={canvas_y}' + (' (canvas px)' if coords == 'slide' else '')
    if placed is None:
        # The writer already logged a warning; say what happened on stdout too.
        click.echo(f'{patch}: {width} x {height} at {at} is wholly outside the canvas: nothing staged')
        return
    clipped = (placed.width, placed.height) != (width, height)
    click.echo(
        f'staged {patch}: {width} x {height} at {at}'
        + (
            f', clipped to x {placed.x}..{placed.x + placed.width}, '
            f'y {placed.y}..{placed.y + placed.height}'
            if clipped
            else ''
        )
    )


def _source_record(patch: str, x: int, y: int) -> tuple[str, int, int]:
    import os

    stat = os.stat(patch)
    return (f'{os.path.abspath(patch)}@{x},{y}', stat.st_size, stat.st_mtime_ns)
