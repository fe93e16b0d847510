"""``tifwriter info PATH``: report on a staging file or a finished TIFF."""

from __future__ import annotations

import json

import click

from .options import json_opt


@click.command('info')
@click.argument('path', type=click.Path(path_type=str))
@json_opt
def command(path: str, as_json: bool) -> None:
    """Report on a staging file (canvas, fragments, written area) or a TIFF
    (levels, tiles, spacing, and whether ASAP and OpenSlide can open it).

    Exits non-zero when PATH is neither a valid staging file nor a TIFF the
    readers accept.
    """
    import os

    from ..errors import StagingNotFoundError
    from ..info import describe_path

    if not os.path.exists(path):
        raise StagingNotFoundError(f'{path} does not exist (a staging file is created by `tifwriter init`)')
    kind, report, text, exit_code = describe_path(path)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        click.echo(text)
    if exit_code:
        click.get_current_context().exit(exit_code)
