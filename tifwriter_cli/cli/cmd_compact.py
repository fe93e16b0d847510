"""``tifwriter compact STAGING``: fold the published fragments into one."""

from __future__ import annotations

import click

from .options import staging_arg


@click.command('compact')
@staging_arg
def command(staging: str) -> None:
    """Fold every fragment published so far into one (fewer files: faster
    info, finalize and write-patch). Writers and readers keep working
    meanwhile; a kill at any instant loses nothing (run gc afterwards).
    Damaged fragments stop it (unstage them first)."""
    from ..housekeeping import compact

    folded, patches = compact(staging)
    if folded == 0:
        click.echo(f'{staging}: nothing to compact ({patches} patch(es) in at most one fragment)')
    else:
        click.echo(f'{staging}: folded {folded} fragments into one ({patches} patch(es) kept)')
