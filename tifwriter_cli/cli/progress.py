"""The one progress bar of the CLI: a tqdm bar driven by the library's callback.

The library reports progress as ``progress(done, total)`` and draws nothing
(:data:`tifwriter_cli.engines.Progress`, ``ingest_npy_dir(progress=)``,
``run_demo(progress=)``); every command that shows progress gets its
callback here, so the bar looks and behaves the same everywhere: drawn on
a terminal only, never with ``-q``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import click

from .options import show_progress

__all__ = ['progress_bar']


@contextlib.contextmanager
def progress_bar(
    ctx: click.Context, *, unit: str, desc: str | None = None, leave: bool = False
) -> Iterator[Callable[[int, int], None] | None]:
    """A ``progress(done, total)`` callback drawing a tqdm bar (opened at the
    first call, closed on leaving), or None where no bar is shown."""
    if not show_progress(ctx):
        yield None
        return
    bar: Any = None

    def update(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=total, unit=unit, desc=desc, leave=leave)
        bar.total = total
        bar.update(done - bar.n)

    try:
        yield update
    finally:
        if bar is not None:
            bar.close()
