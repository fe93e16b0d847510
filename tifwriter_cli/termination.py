"""Signals, handled in one way: :func:`signal_handler`.

Two behaviours are built on it. The CLI turns SIGTERM (a scheduler's time
limit) into an exception that unwinds like Ctrl-C, so every atomic output
removes its temp file (:mod:`tifwriter_cli.cli.main`); a long ingest instead
asks for :func:`sigterm_event`, ends after the current file and keeps what
it staged. The exit statuses are :data:`~.errors.EXIT_TERMINATED` and
:data:`~.errors.EXIT_INTERRUPTED`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ['signal_handler', 'sigterm_event']


@contextlib.contextmanager
def signal_handler(
    signum: int, handler: Callable[[int, Any], None], *, restore: Callable[[Any], Any] | None = None
) -> Iterator[bool]:
    """Handle ``signum`` with ``handler`` while active, then put the previous
    handler back (or ``restore(previous)``). Yields whether it was installed:
    handlers can only be installed from the main thread, elsewhere (an
    embedding application's worker) nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield False
        return
    previous = signal.signal(signum, handler)
    try:
        yield True
    finally:
        signal.signal(signum, previous if restore is None else restore(previous))


@contextlib.contextmanager
def sigterm_event() -> Iterator[threading.Event]:
    """While active, SIGTERM sets the yielded event instead of killing the process.

    Pass ``stop=event.is_set`` to :func:`~tifwriter_cli.ingest.ingest_npy_dir`:
    it then ends after the current file and publishes everything staged, so a
    job stopped by its scheduler's time limit keeps its work and a re-run
    continues from there. (SLURM waits KillWait, 30 s by default, between
    SIGTERM and SIGKILL.) The handler only sets a flag: raising from a signal
    handler could fire inside a garbage-collection callback and be lost.
    """
    event = threading.Event()
    with signal_handler(signal.SIGTERM, lambda signum, frame: event.set()):
        yield event
