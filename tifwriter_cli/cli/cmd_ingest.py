"""``tifwriter ingest-npy-dir STAGING DIR``: stage every patch file of a directory."""

from __future__ import annotations

import json
import logging
from typing import Any

import click

from ..vocab import COORDS, DEFAULT_PATTERN, ON_ERROR
from .options import convert_opt, json_opt, show_progress, staging_arg

log = logging.getLogger('tifwriter_cli.cli.ingest')


@click.command('ingest-npy-dir')
@staging_arg
@click.argument('directory', type=click.Path(path_type=str), metavar='DIR')
@click.option(
    '--pattern', default=DEFAULT_PATTERN, show_default=True,
    help='File names: {x}, {y} integer fields, * any text; a .npy pattern also matches .npz. '
    "With a '/', matches paths relative to DIR.",
)
@click.option('--recursive', is_flag=True, help='Search subdirectories of DIR too.')
@click.option(
    '--on-error', type=click.Choice(ON_ERROR), default='stop', show_default=True,
    help='At a bad file, stop (what was staged stays staged), or skip it and go on. '
    'Either way the exit status is 1 if any file failed.',
)
@convert_opt
@click.option(
    '--shard', default=None, metavar='I/N|slurm|all',
    help='Stage only shard I of N (I from 0; files split by a hash of their path) for N '
    'parallel tasks. Default: inside a SLURM array job, the array task\'s shard '
    '(SLURM_ARRAY_TASK_ID - MIN of COUNT), else all files. "slurm" insists on the SLURM '
    'shard; "all" stages every file even inside an array job.',
)
@click.option(
    '--coords', type=click.Choice(COORDS), default='canvas', show_default=True,
    help='canvas: x, y in names are canvas pixels; slide: slide level-0 pixels, divided by '
    'the canvas downsample (floor).',
)
@json_opt
@click.pass_context
def command(
    ctx: click.Context,
    staging: str,
    directory: str,
    pattern: str,
    recursive: bool,
    on_error: str,
    convert: str,
    shard: str | None,
    coords: str,
    as_json: bool,
) -> None:
    """Stage the .npy/.npz files of DIR whose names give their position.

    The default pattern takes the last two integers of a name as x and y
    (tile_2048_-512.npy, slide7_2048_512.npz). Files are staged in sorted
    order; a .npy/.npz whose name does not match is reported, not staged.

    Idempotent: files already staged (same file, size, mtime and placement)
    are skipped, so an interrupted or failed run is simply run again. A file
    staged before with other content, or by a run with other --coords,
    --pattern or --convert, is staged again and REPLACES its earlier staging
    (one file is one contribution). Any number of runs may go on at once, on
    shards of DIR or even on the same files.

    \b
    Exit status: 0 when every file was staged or already staged (also when
    there was nothing new), 1 when any file failed or when most files fell
    wholly outside the canvas (one line says why), 2 for bad options,
    143 when stopped by SIGTERM (what was staged until then is kept).

    \b
    Examples:
      tifwriter ingest-npy-dir mask.h5 preds/ --pattern 'tile_{x}_{y}.npy'
      tifwriter ingest-npy-dir mask.h5 preds/ --shard 3/8     # task 3 of 8
    """
    from ..errors import IngestTerminated
    from ..ingest import ingest_npy_dir
    from ..termination import sigterm_event

    resolved_shard = _resolve_shard(shard)
    with sigterm_event() as terminated, _progress_bar(ctx) as progress:
        report = ingest_npy_dir(
            staging,
            directory,
            pattern=pattern,
            recursive=recursive,
            on_error=on_error,
            convert=convert,
            shard=resolved_shard,
            coords=coords,
            progress=progress,
            stop=terminated.is_set,
        )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo(format_summary(report))
    if report.interrupted:
        raise IngestTerminated(
            'terminated (SIGTERM): the files staged so far are kept; '
            'run the same command again to stage the rest'
        )
    if report.mostly_outside:
        click.echo(f'tifwriter: error: {outside_sentence(report)}', err=True)
        ctx.exit(1)
    if not report.ok:
        # Each failure was logged as an error line naming its file.
        ctx.exit(1)


def _resolve_shard(text: str | None) -> tuple[int, int] | None:
    from ..errors import InvalidOptionError
    from ..ingest import parse_shard, shard_from_environment

    if text is not None and text.strip().lower() == 'all':
        return None
    if text is not None and text.strip().lower() != 'slurm':
        return parse_shard(text)
    shard = shard_from_environment()
    if shard is None and text is not None:
        raise InvalidOptionError(
            '--shard slurm: not in a SLURM array job (SLURM_ARRAY_TASK_ID and '
            'SLURM_ARRAY_TASK_COUNT are not set)'
        )
    if shard is not None:
        log.info(
            'SLURM array task: staging shard %d/%d (--shard all stages every file)', *shard
        )
    return shard


class _progress_bar:
    """A tqdm bar on a terminal; a no-op callback elsewhere."""

    def __init__(self, ctx: click.Context):
        self._enabled = show_progress(ctx)
        self._bar: Any = None

    def __enter__(self):
        if not self._enabled:
            return None
        return self._update

    def _update(self, done: int, total: int) -> None:
        if self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit='file', leave=False)
        self._bar.update(done - self._bar.n)

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.close()


#: What the library's outside_hint means, in CLI flags.
_OUTSIDE_HINTS = {
    'slide': 'their names look like slide coordinates: try --coords slide',
    'swapped': 'x and y look swapped: try the pattern with {x} and {y} exchanged',
}


def outside_sentence(report: Any) -> str:
    """'2183 of 2183 files fell wholly outside the 1875 x 1500 canvas; ...'"""
    looked_at = report.outside + report.staged
    width, height = report.canvas
    sentence = (
        f'{report.outside} of {looked_at} file(s) fell wholly outside the {width} x {height} '
        'canvas (nothing of them was staged)'
    )
    hint = _OUTSIDE_HINTS.get(report.outside_hint or '')
    if hint:
        return f'{sentence}; {hint}'
    return f'{sentence}; check --pattern, --coords and the canvas size (tifwriter info STAGING)'


def format_summary(report: Any) -> str:
    """One line: what was staged, skipped, failed; volume and rate."""
    counts = [
        f'{report.staged} staged' + (f' ({report.replaced} replacing their earlier staging)' if report.replaced else ''),
        f'{report.skipped_already_staged} already staged',
        f'{report.failed} failed',
    ]
    if report.outside:
        counts.append(f'{report.outside} wholly outside the canvas (not staged)')
    if report.shard is not None:
        counts.append(
            f'shard {report.shard[0]}/{report.shard[1]} '
            f'({report.skipped_other_shards} file(s) left to other shards)'
        )
    if report.unmatched:
        counts.append(f'{report.unmatched} not matching the pattern')
    megabytes = report.bytes_staged / 1e6
    # A rate over a fraction of a second says nothing.
    rate = f', {megabytes / report.seconds:.0f} MB/s' if report.seconds >= 0.5 and report.staged else ''
    line = (
        f'{report.directory} -> {report.staging}: {", ".join(counts)} '
        f'({megabytes:.1f} MB in {report.seconds:.1f} s{rate})'
    )
    if report.interrupted:
        line += '; interrupted before the end'
    if report.stopped_early:
        line += '; stopped at the first bad file (--on-error skip goes on past bad files)'
    return line
