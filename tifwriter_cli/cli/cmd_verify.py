"""``tifwriter verify STAGING``: re-read every staged patch and check its checksum."""

from __future__ import annotations

import click

from .options import staging_arg
from .wording import in_cli_words


@click.command('verify')
@staging_arg
@click.pass_context
def command(ctx: click.Context, staging: str) -> None:
    """Re-read every current patch of STAGING, checking checksums.

    Exit 0 when all is intact; 1 with one line per damaged fragment, naming
    the remedy (unstage --fragment N, then re-run the job that wrote it).
    """
    from ..housekeeping import verify

    report = verify(staging)
    for _, message in report.damaged:
        click.echo(f'tifwriter: error: {in_cli_words(message)}', err=True)
    state = 'ok' if report.ok else f'{len(report.damaged)} damaged fragment(s)'
    click.echo(
        f'{staging}: {state}: {report.patches} patch(es) in {report.fragments} fragment(s), '
        f'{report.bytes_checked / 1e6:.1f} MB checked in {report.seconds:.1f} s'
    )
    if not report.ok:
        ctx.exit(1)
