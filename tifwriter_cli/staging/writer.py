"""The write side: one :class:`StagingWriter` per writing process.

Each writer owns the temp fragment it appends to; :meth:`StagingWriter.flush`
completes it and publishes it atomically (see :mod:`.layout`). Writers also
publish on their own every ``publish_every_s`` seconds or
``publish_every_bytes`` of raw patch data, so a killed job loses little.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy

from ..convert import as_canvas_patch
from ..errors import (
    NotAStagingFileError,
    PatchError,
    StagingReplacedError,
    StagingWriteError,
    TifwriterError,
)
from ..geometry import clip_to_canvas
from .canvasfile import StagingHeader, read_canvas
from .fragment_writer import FragmentWriter
from .h5io import file_identity
from .layout import fragments_dir, publish_fragment, temp_fragment_path
from .windows import window_weighting

__all__ = ['StagingWriter', 'open_staging']

log = logging.getLogger(__name__)


class StagingWriter:
    """Adds patches to a staging file. Use as a context manager.

    Example::

        with open_staging('slide.h5') as staging:
            staging.write(1024, 2048, prediction)   # free x, y; clipped at borders
    """

    def __init__(
        self,
        path: str | os.PathLike,
        *,
        publish_every_s: float = 60.0,
        publish_every_bytes: int = 1 << 30,
    ):
        # Taken before the header is read: a replacement in between then shows
        # as a changed file at the first identity check, which reads it again.
        self._header_file = _file_identity(Path(path))
        self.header: StagingHeader = read_canvas(path)
        self.spec = self.header.spec
        self.path = Path(path)
        self._dir = fragments_dir(self.path)
        if not self._dir.is_dir():
            raise NotAStagingFileError(
                f'{self.path} has no fragments directory {self._dir} '
                '(was it copied without it?)'
            )
        self._fragment: FragmentWriter | None = None
        self._opened_at = 0.0
        self._publish_every_s = publish_every_s
        self._publish_every_bytes = publish_every_bytes
        self.published: list[Path] = []
        self.patches_written = 0
        self.patches_outside = 0
        self.closed = False
        self._heartbeat: _Heartbeat | None = None

    # -- writing ---------------------------------------------------------
    def write(
        self,
        x: int,
        y: int,
        array: numpy.ndarray,
        *,
        convert: str = 'exact',
        key: str | None = None,
        source: tuple | None = None,
        layout: str = 'hwc',
        weight: Any = None,
        crop_margin: int = 0,
    ) -> bool:
        """Stage ``array`` with its top-left corner at canvas pixel (x, y).

        The patch may reach past any border (x, y may be negative); only the
        part inside the canvas is kept. Returns False (and stores nothing)
        when no part of it is inside. Raises
        :class:`~tifwriter_cli.errors.PatchError` before storing anything
        when the patch does not fit the canvas.

        ``key``: the patch's contribution identity (docs/staging-format.md):
        writing a key again replaces what it staged before, under every merge
        rule, also across processes and runs; a keyed patch wholly outside
        the canvas withdraws the key's earlier patch. Without a key every
        write is a contribution of its own. ``source`` (key, size, mtime_ns
        [, placement]) is the record file stagers use (see
        :mod:`tifwriter_cli.ingest.contribution`).

        ``array``: anything with ``__array__`` (a numpy array, a CPU torch
        tensor), (H, W[, C]), or (C, H, W) with ``layout='chw'``.

        Sliding windows (docs/guide.md, "Blending sliding windows"):
        ``crop_margin`` M drops the window's outer M px except on sides
        touching the canvas border (any merge rule); on a ``weighted``
        canvas ``weight`` is how the window weighs its pixels: a
        :class:`~tifwriter_cli.blending.Blend`, ``'gaussian'`` (the default),
        ``'linear'``, ``'flat'``, or an (H, W) array of weights in 0..1.
        """
        if self.closed:
            raise ValueError('write to a closed StagingWriter')
        patch = as_canvas_patch(array, self.spec, convert=convert, layout=layout)
        x, y = _as_int(x, 'x'), _as_int(y, 'y')
        window = window_weighting(x, y, patch, self.spec, weight=weight, crop_margin=crop_margin)
        x, y, patch = window.x, window.y, window.patch
        if key is not None:
            if source is not None:
                raise TypeError('give key= or source=, not both')
            source = (key, -1, -1, f'{x},{y},{convert}{window.placement_suffix}')
        if source is not None:
            source = _checked_source(source)
        clipped = clip_to_canvas(x, y, patch.shape[1], patch.shape[0], self.spec.width, self.spec.height)
        try:
            if clipped is None:
                self.patches_outside += 1
                log.debug('patch at x=%d, y=%d (%dx%d) lies wholly outside the canvas', x, y, patch.shape[1], patch.shape[0])
                if source is not None:
                    # Nothing lands, but an earlier staging of this key must not
                    # stay: a withdrawal record (counted as nothing staged).
                    self._current_fragment().add(0, 0, patch[:0, :0], source=source)
                inside = False
            else:
                fragment = self._current_fragment()
                cx, cy, (sy, sx) = clipped.x, clipped.y, clipped.patch_slices
                fragment.add(cx, cy, numpy.ascontiguousarray(patch[sy, sx]), source=source,
                             weighting=window.clipped_weighting(sy, sx))
                inside = True
                self.patches_written += 1
        except OSError as exc:
            raise self._drop_fragment(exc, pending=1) from None
        fragment = self._fragment
        if fragment is not None and (
            fragment.nbytes >= self._publish_every_bytes
            or time.monotonic() - self._opened_at >= self._publish_every_s
        ):
            self.flush()
        return inside

    def write_many(self, items: Iterable[tuple[int, int, numpy.ndarray]], **options) -> int:
        """Write (x, y, array) items; returns how many were (partly) inside."""
        return sum(bool(self.write(x, y, a, **options)) for x, y, a in items)

    def _current_fragment(self) -> FragmentWriter:
        if self._fragment is None:
            self._check_identity()
            self._fragment = FragmentWriter(
                temp_fragment_path(self._dir),
                staging_uid=self.header.uid,
                dtype=self.spec.numpy_dtype,
            )
            self._opened_at = time.monotonic()
            if self._heartbeat is None:
                self._heartbeat = _Heartbeat(self)
        return self._fragment

    # -- publishing ------------------------------------------------------
    def flush(self) -> Path | None:
        """Publish what was written so far; durable when this returns."""
        fragment, self._fragment = self._fragment, None
        if fragment is None or len(fragment) == 0:
            if fragment is not None:
                fragment.discard()
            return None
        try:
            fragment.close()
            self._check_identity()
            published = publish_fragment(fragment.path)
            try:
                # Replaced between the check and the link: take it back.
                self._check_identity()
            except StagingReplacedError:
                published.unlink()
                raise
        except OSError as exc:
            self._fragment = fragment
            raise self._drop_fragment(exc) from None
        except BaseException:
            fragment.discard()
            raise
        self.published.append(published)
        log.debug('published %s (%d patches)', published.name, len(fragment))
        return published

    def _drop_fragment(self, exc: OSError, *, pending: int = 0) -> StagingWriteError:
        """Discard the unpublished fragment after a write error; the error to raise.

        ``pending``: patches of the failing write() call, not yet counted.
        """
        fragment, self._fragment = self._fragment, None
        lost = pending + (len(fragment) if fragment is not None else 0)
        if fragment is not None:
            try:
                fragment.discard()
            except OSError:
                pass  # the write error is the news
        if isinstance(exc, StagingWriteError):
            reason = str(exc)
        else:
            reason = exc.strerror or str(exc)
            reason = reason[:1].lower() + reason[1:]
            reason += f' writing {exc.filename}' if exc.filename else ''
        return StagingWriteError(
            f'{self.path}: {reason}: {lost} unpublished patch(es) of this writer were '
            'dropped and its temp file removed; patches published before are intact',
            errno=exc.errno,
            filename=exc.filename,
        )

    def _check_identity(self) -> None:
        """Refuse to write into a staging unit that is no longer the one opened
        (replaced by ``init --overwrite`` since): the patches belong to the old canvas."""
        # The staging file is written once and never modified: while it is the
        # same file (inode, size, mtime) it has the same uid, and a stat costs
        # microseconds where reopening the HDF5 header cost ~12 ms per check.
        if self._header_file is not None and _file_identity(self.path) == self._header_file:
            return
        try:
            uid = read_canvas(self.path).uid
        except TifwriterError as exc:
            uid = f'unreadable: {exc}'
        if uid != self.header.uid:
            raise StagingReplacedError(
                f'{self.path} was replaced (create_staging(overwrite=True)?) after this writer opened it: '
                'its unpublished patches belong to the old canvas and were not staged'
            )

    def close(self) -> None:
        """Publish the remaining patches and close."""
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            self._stop_heartbeat()

    def abort(self) -> None:
        """Drop the unpublished patches (already published ones stay)."""
        fragment, self._fragment = self._fragment, None
        if fragment is not None:
            fragment.discard()
        self.closed = True
        self._stop_heartbeat()

    def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
            self._heartbeat = None

    def __enter__(self) -> StagingWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        # Patches whose write() returned are valid whatever the caller's
        # block raised afterwards; publish them, as a file close would.
        # Only an interrupt (Ctrl-C, SystemExit) drops the unpublished part.
        if exc_type is not None and not issubclass(exc_type, Exception):
            self.abort()
        else:
            self.close()


#: How often a writer touches its temp fragment, so ``tifwriter gc`` (on any
#: node) can tell it is alive: a temp fragment untouched for many heartbeats
#: belongs to a writer that is gone (housekeeping.DEFAULT_GC_AGE).
HEARTBEAT_SECONDS = 60.0


class _Heartbeat:
    """A daemon thread touching the writer's temp fragment every HEARTBEAT_SECONDS."""

    def __init__(self, writer: StagingWriter):
        import threading

        self._writer = writer
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name='tifwriter-heartbeat', daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopped.wait(HEARTBEAT_SECONDS):
            fragment = self._writer._fragment
            if fragment is not None:
                try:
                    os.utime(fragment.path)
                except OSError:
                    pass  # published or discarded meanwhile

    def stop(self) -> None:
        self._stopped.set()


def open_staging(path: str | os.PathLike, **options) -> StagingWriter:
    """Open an existing staging file for writing patches."""
    return StagingWriter(path, **options)


def _file_identity(path: Path) -> tuple[int, int, int, int] | None:
    try:
        return file_identity(os.stat(path))
    except OSError:
        return None


def _checked_source(source: tuple) -> tuple[str, int, int, str]:
    """A source record HDF5 can store (checked now: a bad one at publish
    time would lose the whole unpublished fragment)."""
    if len(source) == 3:
        source = (*source, '')
    key, size, mtime_ns, placement = source
    try:
        str(key).encode('utf-8')
    except UnicodeEncodeError:
        raise PatchError(f'source path {key!r} is not valid UTF-8') from None
    return (str(key), int(size), int(mtime_ns), str(placement))


def _as_int(value: object, name: str) -> int:
    if isinstance(value, (int, numpy.integer)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise PatchError(f'{name} must be an integer pixel position, got {value!r}')
