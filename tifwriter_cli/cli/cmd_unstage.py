"""``tifwriter unstage STAGING (--source GLOB | --fragment N)``: withdraw staged patches."""

from __future__ import annotations

import click

from .options import staging_arg


@click.command('unstage')
@staging_arg
@click.option(
    '--source', 'source', default=None, metavar='GLOB',
    help="Withdraw the staged files whose path matches GLOB (quote it: 'preds/run1/*'); "
    'relative globs are taken from the current directory. Also matches keys (file:/..., API keys).',
)
@click.option(
    '--fragment', 'fragment', type=int, default=None, metavar='N',
    help='Withdraw everything published in fragment N (e.g. a damaged one; error messages name it).',
)
def command(staging: str, source: str | None, fragment: int | None) -> None:
    """Withdraw staged contributions from STAGING, by source or by fragment.

    Publishes a tombstone (a new fragment); nothing is edited, so this is
    safe while writers and readers run. A file staged again afterwards
    counts again.
    """
    from ..errors import InvalidOptionError
    from ..housekeeping import unstage

    if (source is None) == (fragment is None):
        raise InvalidOptionError('give exactly one of --source GLOB or --fragment N')
    withdrawn = unstage(staging, source=source, fragment=fragment)
    if fragment is not None:
        click.echo(f'{staging}: withdrew fragment {fragment}')
    else:
        click.echo(f'{staging}: withdrew {len(withdrawn)} staged source(s) matching {source!r}')
