"""``tifwriter gc STAGING``: remove what killed writers and commands left behind."""

from __future__ import annotations

import click

from .options import staging_arg


@click.command('gc')
@staging_arg
@click.option(
    '--older-than', 'older_than', type=click.FloatRange(min=0), default=900.0, show_default=True,
    metavar='SECONDS',
    help='A temp file untouched this long is a dead writer\'s, on any node (live writers touch '
    'theirs every minute). On this host, a writer whose process is gone is dead at once.',
)
def command(staging: str, older_than: float) -> None:
    """Delete temp fragments of writers that are gone, fragments withdrawn
    by later ones (a compaction killed before it tidied up), and stray temp
    outputs (.NAME.*.tmp) of killed finalize/preview/init runs beside STAGING.

    Never a live writer's temp fragment: safe while writers run.
    """
    from ..housekeeping import gc

    report = gc(staging, older_than=older_than)
    click.echo(
        f'{staging}: removed {len(report.removed_temp_fragments)} temp fragment(s) of dead writers, '
        f'{len(report.removed_withdrawn_fragments)} withdrawn fragment(s), '
        f'{len(report.removed_temp_outputs)} stray temp output(s); '
        f'kept {len(report.kept_live_temp_fragments)} temp fragment(s) of live writers'
    )
