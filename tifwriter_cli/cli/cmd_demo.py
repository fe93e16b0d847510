"""``tifwriter demo DIR``: the whole pipeline on a synthetic slide."""

from __future__ import annotations

import click

from .options import overwrite_opt, show_progress, workers_opt


@click.command('demo')
@click.argument('directory', type=click.Path(file_okay=False, path_type=str), default='tifwriter-demo')
@click.option('--width', type=click.IntRange(min=16), default=6000, show_default=True)
@click.option('--height', type=click.IntRange(min=16), default=4000, show_default=True)
@workers_opt
@overwrite_opt
@click.pass_context
def command(ctx: click.Context, directory: str, width: int, height: int, workers, overwrite: bool) -> None:
    """Make a synthetic label prediction (smooth blobs, 4 classes), stage it
    patch by patch as a sliding-window model would, finalize it to a
    pyramidal TIFF, check it, and print what to open.
    """
    from ..demo import DEMO_CLASSES, run_demo
    from ..info import format_tiff_report

    bar = None
    if show_progress(ctx):
        from tqdm import tqdm

        bar = tqdm(desc='staging patches', unit='patch')

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.total = total
            bar.update(done - bar.n)

    try:
        report = run_demo(directory, width=width, height=height, overwrite=overwrite, workers=workers, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    click.echo(f'staged {report.patches} patches of 512 x 512 into {report.staging}')
    click.echo(format_tiff_report(report.tiff_report))
    classes = ', '.join(f'{k} = {v}' for k, v in DEMO_CLASSES.items())
    click.echo('')
    click.echo(f'Open {report.tiff} in ASAP or QuPath (labels: {classes}).')
    click.echo(f'A picture of it (fixed colour per class, with legend): {report.preview}')
    click.echo(f'Inspect the staging file with: tifwriter info {report.staging}')
