"""``tifwriter finalize STAGING OUT.tif``: write the pyramidal TIFF."""

from __future__ import annotations

import click

from ..vocab import COMPRESSIONS, ENGINES, FLAVORS, RESAMPLINGS
from .options import classes_opt, is_quiet, overwrite_opt, staging_arg, workers_opt
from .progress import progress_bar

# Metavars, not Choices: the library checks the value (and a Choice would
# not let the default come from the canvas kind).
COMPRESSION_CHOICES = '|'.join(COMPRESSIONS)
RESAMPLING_CHOICES = '|'.join(RESAMPLINGS)


@click.command('finalize')
@staging_arg
@click.argument('out', type=click.Path(dir_okay=False, path_type=str), metavar='OUT.tif')
@click.option(
    '--compression',
    metavar=f'[{COMPRESSION_CHOICES}]',
    default=None,
    help='Tile compression. Default from the canvas kind: lzw for labels and '
    'probabilities; jpeg for uint8 images with 1 or 3 channels, else lzw. '
    'deflate is written as code 32946 (ASAP refuses 8); zstd is not read by ASAP.',
)
@click.option(
    '--quality',
    type=int,
    default=90,
    show_default=True,
    help='JPEG quality, 1-100 (jpeg only).',
)
@click.option(
    '--resampling',
    metavar=f'[{RESAMPLING_CHOICES}]',
    default=None,
    help='How each lower level is made from 2x2 blocks. Default: mode for labels '
    '(majority; only existing labels), mean for the rest.',
)
@workers_opt
@overwrite_opt
@click.option('--force', is_flag=True, help='Allow jpeg on labels (lossy: invents labels).')
@click.option(
    '--engine',
    metavar=f'[{"|".join(ENGINES)}]',
    default='native',
    show_default=True,
    help="Writer: ours, or ASAP's multiresolutionimageinterface when installed.",
)
@click.option(
    '--flavor',
    type=click.Choice(FLAVORS, case_sensitive=False),
    default='wsi',
    show_default=True,
    help='wsi: levels in the IFD chain (ASAP, OpenSlide, large_image); ome: an OME-TIFF, pyramid '
    'in SubIFDs (Bio-Formats: QuPath, Fiji, napari).',
)
@click.option(
    '--channel-names',
    metavar='A,B,...',
    default=None,
    help='With --flavor ome: the channel names written into the OME-XML (comma-separated).',
)
@click.option(
    '--argmax', is_flag=True,
    help='Write the uint8 label map of the largest channel (ties: the lowest; NaN lowest) of an '
    'N-channel canvas, instead of the channels.',
)
@click.option(
    '--threshold', type=float, default=None, metavar='T',
    help='Write a 0/1 uint8 mask: 1 where --channel is at least T (a probability 0..1 on an '
    'integer probability canvas, else in stored units; NaN gives 0).',
)
@click.option(
    '--channel', type=int, default=None, metavar='C',
    help='The channel --threshold reads (needed when the canvas has several).',
)
@classes_opt
@click.pass_context
def command(
    ctx: click.Context,
    staging: str,
    out: str,
    compression: str | None,
    quality: int,
    resampling: str | None,
    workers: int | None,
    overwrite: bool,
    force: bool,
    engine: str,
    flavor: str,
    channel_names: str | None,
    argmax: bool,
    threshold: float | None,
    channel: int | None,
    classes: str | None,
) -> None:
    """Write OUT.tif, a tiled pyramidal BigTIFF, from the staging file STAGING.

    Reads a snapshot of what is published now: writers may continue, but
    patches published after finalize starts are not included. STAGING is
    only read; OUT appears complete or not at all.
    """
    from ..finalization import finalize
    from ..info import format_bytes

    with progress_bar(ctx, unit='tile', desc='finalize') as progress:
        report = finalize(
            staging,
            out,
            compression=compression,
            quality=quality,
            resampling=resampling,
            workers=workers,
            overwrite=overwrite,
            progress=progress,
            force=force,
            engine=engine,
            flavor=flavor,
            channel_names=channel_names.split(',') if channel_names is not None else None,
            argmax=argmax,
            threshold=threshold,
            channel=channel,
            classes=classes,
        )
    # With -v the library's info line already said it.
    verbose = (ctx.find_root().obj or {}).get('verbosity', 0) >= 1
    if report.patches is not None and not is_quiet(ctx) and not verbose:
        click.echo(
            f'tifwriter: took {report.patches} patch(es) from the {report.fragments} fragment(s) '
            'published when finalize started (later ones are not included)',
            err=True,
        )
    smallest = report.levels[-1]
    click.echo(
        f'wrote {report.out}: {report.width} x {report.height} px, {len(report.levels)} level(s) '
        f'down to {smallest[0]} x {smallest[1]}, {report.compression}, '
        f'{format_bytes(report.file_bytes)}, {report.tiles_written} tiles '
        f'({report.tiles_stored} stored) in {report.seconds:.1f} s'
    )

