"""The console entry point, quiet about Ctrl-C from the first instant.

A Ctrl-C (or a scheduler's SIGINT) that arrives while Python still imports
click and tifwriter used to print a KeyboardInterrupt traceback. This module
imports nothing but ``signal``, ``sys`` and the exit codes before it installs a handler that
ends the process with the usual one line and exit status 130; once a command
runs, :mod:`.main` takes over (and restores Python's default handler).
"""

from __future__ import annotations

import signal
import sys

from ..errors import EXIT_INTERRUPTED


def _interrupted_while_starting(signum, frame):
    sys.stderr.write('tifwriter: interrupted\n')
    raise SystemExit(EXIT_INTERRUPTED)


def main(argv: list[str] | None = None) -> None:
    """Console entry point (``tifwriter``, ``python -m tifwriter_cli``)."""
    try:
        signal.signal(signal.SIGINT, _interrupted_while_starting)
    except ValueError:  # not the main thread: nothing to guard
        pass
    from .main import main as run

    run(argv)
