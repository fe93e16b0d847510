"""``tifwriter convert DIR OUT.tif``: init + ingest-npy-dir + finalize in one go.

The options are those of the three commands, taken from them (one
definition each): the canvas options of ``init`` (``--like SLIDE
--downsample D`` or ``--width/--height``), the naming options of
``ingest-npy-dir`` and the output options of ``finalize``. The library side
is :mod:`tifwriter_cli.directory_to_tiff`.
"""

from __future__ import annotations

from typing import Any

import click

from . import cmd_finalize, cmd_ingest, cmd_init
from .progress import progress_bar

#: Options taken from each command, by parameter name.
_INIT = ('width', 'height', 'channels', 'dtype', 'spacing', 'spacing_y', 'tile_size', 'fill', 'merge',
         'kind', 'like', 'downsample', 'level', 'edge')
_INGEST = ('pattern', 'recursive', 'convert', 'coords')
_FINALIZE = ('compression', 'quality', 'resampling', 'workers', 'overwrite', 'force', 'engine', 'flavor',
             'channel_names')


def _taken(command: click.Command, names: tuple[str, ...]) -> list[click.Parameter]:
    by_name = {param.name: param for param in command.params}
    return [by_name[name] for name in names]


@click.command('convert')
@click.argument('directory', type=click.Path(file_okay=False, path_type=str), metavar='DIR')
@click.argument('out', type=click.Path(dir_okay=False, path_type=str), metavar='OUT.tif')
@click.option(
    '--keep-staging', default=None, metavar='STAGING', type=click.Path(dir_okay=False, path_type=str),
    help='Keep the staging unit at STAGING (reused when it exists for the same canvas: a killed run '
    'started again stages only what is missing) instead of a temp directory beside OUT.',
)
@click.pass_context
def command(ctx: click.Context, directory: str, out: str, keep_staging: str | None, **options: Any) -> None:
    """Write OUT.tif from the .npy/.npz patch files of DIR in one go.

    The same as `init` (a temp staging unit, or --keep-staging), then
    `ingest-npy-dir DIR`, then `finalize OUT.tif`, with their options. No
    TIFF is written unless every file was staged: a bad file stops it
    with one line naming the file.

    \b
    Examples:
      tifwriter convert preds/ heat.tif --like slide.svs --downsample 16 --kind probability --dtype float32
      tifwriter convert masks/ mask.tif --like slide.svs --pattern 'tile_{x}_{y}.npy' --coords slide
    """
    from ..directory_to_tiff import directory_to_tiff
    from ..spec import CanvasSpec

    spec = CanvasSpec(**cmd_init.spec_fields_from_options(options))
    with progress_bar(ctx, unit='tile', desc='finalize') as progress:
        report = directory_to_tiff(
            directory, out, spec, staging=keep_staging,
            pattern=options['pattern'], recursive=options['recursive'], convert=options['convert'],
            coords=options['coords'], overwrite=options['overwrite'],
            compression=options['compression'], quality=options['quality'], resampling=options['resampling'],
            workers=options['workers'], force=options['force'], engine=options['engine'],
            flavor=options['flavor'],
            channel_names=options['channel_names'].split(',') if options['channel_names'] else None,
            progress=progress,
        )
    click.echo(cmd_ingest.format_summary(report.ingest))
    written = report.finalize
    kept = f'; staging kept at {report.staging}' if report.staging else ''
    click.echo(f'wrote {written.out}: {written.width} x {written.height} px, {len(written.levels)} level(s), '
               f'{written.compression}{kept}')


command.params.extend(_taken(cmd_init.command, _INIT) + _taken(cmd_ingest.command, _INGEST)
                      + _taken(cmd_finalize.command, _FINALIZE))
