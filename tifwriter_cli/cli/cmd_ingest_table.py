"""``tifwriter ingest-table STAGING TABLE``: stage a tile-score table.

One row per tile (CLAM, TransMIL, slideflow, ...): x, y and one value column
per canvas channel; see :mod:`tifwriter_cli.ingest.tile_scores`.
"""

from __future__ import annotations

import json

import click

from ..vocab import COORDS
from .options import convert_opt, json_opt, staging_arg


@click.command('ingest-table')
@staging_arg
@click.argument('table', type=click.Path(dir_okay=False, path_type=str), metavar='TABLE')
@click.option('--x', 'x', default=None, metavar='COL',
              help="Column of the tiles' left edge (HDF5 default: coords[0]).")
@click.option('--y', 'y', default=None, metavar='COL',
              help="Column of the tiles' top edge (HDF5 default: coords[1]).")
@click.option('--value', 'value', required=True, metavar='COL[,COL...]',
              help='Value column(s), one per canvas channel.')
@click.option('--patch-size', type=click.FloatRange(min=0, min_open=True), default=None, metavar='P',
              help='Tile side in --coords units: a tile paints P x P of them (P / D canvas px at downsample D). '
              "Default with --coords slide: the one a CLAM HDF5 records (coords' patch_size x downsample).")
@click.option(
    '--coords', type=click.Choice(COORDS), default='canvas', show_default=True,
    help='canvas: x, y are canvas pixels; slide: slide level-0 pixels, divided by the '
    'canvas downsample (floor).',
)
@convert_opt
@json_opt
@click.pass_context
def command(ctx: click.Context, staging: str, table: str, x: str | None, y: str | None, value: str, patch_size: float,
            coords: str, convert: str, as_json: bool) -> None:
    """Stage TABLE (CSV, Parquet or HDF5), one tile per row.

    Each row paints a P x P tile at its x, y with its value(s): one pixel of
    a canvas made with `init --like SLIDE --downsample P` (with --coords
    slide), a block on a finer one. Tiles that overlap are merged by the
    canvas' rule. A COL of an HDF5 table is a dataset, NAME[i] for column i
    of an (N, K) one (CLAM: --value attention_scores, x and y from coords).

    Idempotent: the table is one contribution; running again with the same
    file and options does nothing, and a rewritten table or other options
    REPLACE what it staged before. A bad row stops the run before anything
    is staged, naming the row.

    \b
    Examples:
      tifwriter ingest-table heat.h5 slide7_scores.h5 --value attention_scores --patch-size 256 --coords slide
      tifwriter ingest-table heat.h5 tiles.csv --x x --y y --value tumor,stroma --patch-size 512 --coords slide
    """
    from ..ingest.tile_scores import ingest_table

    columns = [c.strip() for c in value.split(',')]
    report = ingest_table(staging, table, x=x, y=y, values=columns, patch_size=patch_size,
                          coords=coords, convert=convert)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(_summary(table, staging, report))
    if report.rows and 2 * report.rows_outside > report.rows:
        hint = 'check --x, --y, --patch-size and the canvas size (tifwriter info STAGING)'
        if coords == 'canvas' and report.canvas_downsample > 1:
            hint = 'the canvas has a slide downsample: are they slide coordinates? try --coords slide'
        click.echo(
            f'tifwriter: error: {report.rows_outside} of {report.rows} row(s) fell wholly outside the canvas; {hint}',
            err=True,
        )
        ctx.exit(1)


def _summary(table: str, staging: str, report) -> str:
    if report.status == 'already':
        return f'{table}: already staged ({report.patches} patch(es), unchanged since, same options): nothing to do'
    line = f'{table} -> {staging}: {report.rows} row(s) staged as {report.patches} patch(es)'
    if report.overlapping:
        line += ' (tiles overlap: one patch per row, merged by the canvas rule)'
    if report.status == 'replaced':
        line += ', replacing its earlier staging'
    if report.rows_outside:
        line += f'; {report.rows_outside} row(s) wholly outside the canvas'
    return line
