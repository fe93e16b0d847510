"""The ``tifwriter`` group: lazy subcommand loading and error-to-exit mapping."""

from __future__ import annotations

import contextlib
import importlib
import logging
import signal
import sys

import click

from .. import __version__
from ..errors import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    Terminated,
    TifwriterError,
    one_line,
)
from ..termination import signal_handler
from .wording import in_cli_words

# Subcommand name -> module in this package defining ``command``. Loaded
# only when invoked, so ``tifwriter --help`` never imports numpy or h5py.
SUBCOMMANDS = {
    'init': ('cmd_init', 'Create a staging file describing the canvas.'),
    'write-patch': ('cmd_write_patch', 'Stage one .npy patch at x, y.'),
    'ingest-npy-dir': ('cmd_ingest', 'Stage every .npy/.npz of a directory (idempotent).'),
    'ingest-table': ('cmd_ingest_table', 'Stage a tile-score table (CSV, Parquet, HDF5; idempotent).'),
    'finalize': ('cmd_finalize', 'Write the pyramidal TIFF from a staging file.'),
    'convert': ('cmd_convert', 'A directory of patches to a TIFF in one go (init + ingest + finalize).'),
    'info': ('cmd_info', 'Report on a staging file or a TIFF; check reader compatibility.'),
    'preview': ('cmd_preview', 'Render a PNG thumbnail of a staging file or TIFF.'),
    'demo': ('cmd_demo', 'Run the whole pipeline on a synthetic slide.'),
    'unstage': ('cmd_unstage', 'Withdraw staged patches by source glob or fragment.'),
    'gc': ('cmd_gc', 'Remove temp files of dead writers and killed commands.'),
    'compact': ('cmd_compact', 'Fold the published fragments into one.'),
    'verify': ('cmd_verify', 'Re-read every staged patch and check its checksum.'),
    'export-annotations': ('cmd_export_annotations', 'Trace a label mask into QuPath GeoJSON or ASAP XML.'),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(SUBCOMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        entry = SUBCOMMANDS.get(name)
        if entry is None:
            return None
        module = importlib.import_module(f'{__package__}.{entry[0]}')
        return module.command

    def invoke(self, ctx: click.Context):
        # The one place where expected failures become one line + exit code.
        try:
            with _sigterm_unwinds(), _interrupts_never_swallowed() as interrupted:
                result = super().invoke(ctx)
            if interrupted:
                # Swallowed on the way: still an interrupted (or terminated) run.
                raise Terminated() if any(isinstance(e, Terminated) for e in interrupted) else KeyboardInterrupt
            return result
        except Terminated:
            click.echo('tifwriter: terminated (SIGTERM); no output was left half-written', err=True)
            ctx.exit(EXIT_TERMINATED)
        except TifwriterError as exc:
            click.echo(f'tifwriter: error: {in_cli_words(one_line(exc))}', err=True)
            ctx.exit(exc.exit_code)
        except OSError as exc:
            # Disk full, permission denied, ...: the environment, not a bug.
            name = f' {exc.filename}:' if getattr(exc, 'filename', None) else ''
            reason = one_line(exc.strerror or exc)
            click.echo(f'tifwriter: error:{name} {reason[:1].lower()}{reason[1:]}', err=True)
            ctx.exit(EXIT_FAILURE)
        except KeyboardInterrupt:
            click.echo('tifwriter: interrupted', err=True)
            ctx.exit(EXIT_INTERRUPTED)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table above: listing must not import the modules.
        rows = [(name, SUBCOMMANDS[name][1]) for name in SUBCOMMANDS]
        with formatter.section('Commands'):
            formatter.write_dl(rows)


@contextlib.contextmanager
def _sigterm_unwinds():
    """Turn SIGTERM (a scheduler's time limit) into an exception while a
    command runs, so atomic outputs remove their temp files as on Ctrl-C.
    (ingest-npy-dir installs its own, gentler handler for its duration.)"""

    def raise_terminated(signum, frame):
        raise Terminated()

    with signal_handler(signal.SIGTERM, raise_terminated):
        yield


@contextlib.contextmanager
def _interrupts_never_swallowed():
    """While a command runs, Ctrl-C raises KeyboardInterrupt as usual, and is
    remembered: one raised inside a garbage-collection or weakref callback
    (h5py's object cleanup) is only printed as "Exception ignored" and lost,
    and a run then ended with exit 0 (2 of 7 interrupted ingests). The yielded
    list is non-empty after any Ctrl-C; those unraisable reports are muted."""
    interrupted: list[KeyboardInterrupt] = []

    def on_sigint(signum, frame):
        interrupted.append(KeyboardInterrupt())
        raise KeyboardInterrupt

    def unraisable(report):
        # Terminated (SIGTERM) is a KeyboardInterrupt too, and keeps its exit status.
        if isinstance(report.exc_value, KeyboardInterrupt):
            interrupted.append(report.exc_value)
            return
        previous_hook(report)

    def python_handler_after(previous):
        # Python's own handler afterwards, not launch.py's start-up one.
        if getattr(previous, '__name__', '') == '_interrupted_while_starting':
            return signal.default_int_handler
        return previous

    with signal_handler(signal.SIGINT, on_sigint, restore=python_handler_after) as installed:
        if not installed:  # not the main thread
            yield interrupted
            return
        previous_hook = sys.unraisablehook
        sys.unraisablehook = unraisable
        try:
            yield interrupted
        finally:
            sys.unraisablehook = previous_hook


class _OneLineFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f'tifwriter: {record.levelname.lower()}: {in_cli_words(one_line(record.getMessage()))}'


def _configure_logging(verbosity: int) -> None:
    level = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter())
    root = logging.getLogger('tifwriter_cli')
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    # tifffile logs damaged files itself; our one-line errors say it better.
    logging.getLogger('tifffile').setLevel(logging.CRITICAL)


@click.group(cls=LazyGroup, context_settings={'help_option_names': ['-h', '--help']})
@click.version_option(__version__, '--version', prog_name='tifwriter')
@click.option('-v', '--verbose', count=True, help='More log output (-vv for debug).')
@click.option('-q', '--quiet', is_flag=True, help='Only errors; no progress bars.')
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """Turn ML prediction arrays into pyramidal whole-slide-image TIFFs.

    \b
    Typical run:
      tifwriter init mask.h5 --width 98304 --height 71680 --spacing 0.25 --kind labels
      tifwriter ingest-npy-dir mask.h5 predictions/ --pattern 'tile_{x}_{y}.npy'
      tifwriter finalize mask.h5 mask.tif
      tifwriter info mask.tif

    Every option may also be given as an environment variable
    TIFWRITER_<COMMAND>_<OPTION>, e.g. TIFWRITER_FINALIZE_WORKERS=8.
    """
    ctx.ensure_object(dict)
    ctx.obj['quiet'] = quiet
    ctx.obj['verbosity'] = -1 if quiet else verbose
    _configure_logging(ctx.obj['verbosity'])


def main(argv: list[str] | None = None) -> None:
    """Console entry point."""
    cli.main(args=argv, prog_name='tifwriter', auto_envvar_prefix='TIFWRITER')
