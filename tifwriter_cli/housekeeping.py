"""Housekeeping of a staging unit: unstage, gc, compact, verify.

All four keep the unit's guarantees (docs/staging-format.md): nothing ever
edits a published fragment, so each is safe beside running writers and
readers, and a SIGKILL at any instant loses nothing.

* :func:`unstage` publishes a *tombstone*: withdrawal records for the keys
  matching a glob, or an empty fragment whose ``withdraws`` attribute names
  a fragment to ignore from now on.
* :func:`compact` folds every fragment published so far into one that
  withdraws them and merges at their place (``merge_order``), publishes it,
  then deletes them. Killed before the publish: a temp file is left (gc
  takes it), nothing changed. Killed after: the old fragments are withdrawn,
  hence ignored; gc deletes them.
* :func:`gc` removes temp fragments of writers that are gone, fragments
  withdrawn by a later one, and stray temp outputs (``.NAME.*.tmp``) beside
  the staging file. A writer is gone when (a) it ran on this host and its
  process no longer exists, or (b) its temp file has not been touched for
  ``older_than`` seconds: every writer touches its temp fragment at least
  every :data:`tifwriter_cli.staging.writer.HEARTBEAT_SECONDS` (a heartbeat
  thread), so this also holds for writers on other nodes, where no process
  can be looked up.
* :func:`verify` re-reads every current patch and checks its checksum.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import logging
import os
import re
import time
from pathlib import Path

import numpy

from .errors import CorruptFragmentError, InvalidOptionError

__all__ = ['GcReport', 'VerifyReport', 'compact', 'gc', 'unstage', 'verify', 'DEFAULT_GC_AGE']

log = logging.getLogger(__name__)

#: A temp file untouched this long belongs to a writer that is gone (the
#: heartbeat touches it every minute).
DEFAULT_GC_AGE = 15 * 60.0


# -- unstage ------------------------------------------------------------------


def unstage(
    staging: str | os.PathLike, *, source: str | None = None, fragment: int | None = None
) -> list[str]:
    """Withdraw staged contributions; returns what was withdrawn (keys, or
    'fragment N'). ``source``: a glob over the sources' paths (``'*/run1/*'``;
    a relative glob is taken relative to the current directory) or over their
    keys (``'file:/data/*'``, API keys). ``fragment``: a fragment's sequence
    number (as ``info``/``verify`` and error messages name it)."""
    from .staging.fragment_writer import FragmentWriter
    from .staging.layout import publish_fragment, temp_fragment_path
    from .staging.reader import read_staging

    if (source is None) == (fragment is None):
        raise InvalidOptionError('give exactly one of source (a glob) or fragment (a number)')
    if fragment is not None:
        return [_unstage_fragment(staging, int(fragment))]
    with read_staging(staging) as snapshot:
        keys = sorted(k for k in snapshot.contributions if _key_matches(k, source))
        header = snapshot.header
        spec = snapshot.spec
        directory = snapshot.fragments_dir
    if not keys:
        raise InvalidOptionError(f'no staged source matches {source!r} (tifwriter info lists the sources)')
    writer = FragmentWriter(temp_fragment_path(directory), staging_uid=header.uid, dtype=spec.numpy_dtype)
    try:
        empty = numpy.zeros((0, 0, spec.channels), spec.numpy_dtype)
        for key in keys:
            writer.add(0, 0, empty, source=(key, -1, -1, 'withdrawn'))
        writer.close()
        publish_fragment(writer.path)
    except BaseException:
        writer.discard()
        raise
    return keys


def _unstage_fragment(staging: str | os.PathLike, number: int) -> str:
    from .staging.canvasfile import read_canvas
    from .staging.fragment_writer import FragmentWriter
    from .staging.layout import (
        fragments_dir,
        publish_fragment,
        published_fragments,
        temp_fragment_path,
    )

    header = read_canvas(staging)
    directory = fragments_dir(staging)
    if number not in {n for n, _ in published_fragments(directory)}:
        raise InvalidOptionError(f'{directory} has no published fragment {number}')
    writer = FragmentWriter(
        temp_fragment_path(directory), staging_uid=header.uid, dtype=header.spec.numpy_dtype, withdraws=[number]
    )
    try:
        writer.close()
        publish_fragment(writer.path)
    except BaseException:
        writer.discard()
        raise
    return f'fragment {number}'


def _key_matches(key: str, pattern: str) -> bool:
    from .ingest.contribution import FILE_KEY_PREFIX

    if fnmatch.fnmatchcase(key, pattern):
        return True
    if key.startswith(FILE_KEY_PREFIX) and not pattern.startswith(FILE_KEY_PREFIX):
        path = key[len(FILE_KEY_PREFIX):]
        absolute = pattern if os.path.isabs(pattern) else os.path.join(os.path.realpath('.'), pattern)
        return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, absolute)
    return False


# -- compact ------------------------------------------------------------------


def compact(staging: str | os.PathLike) -> tuple[int, int]:
    """Fold the published fragments into one; returns (fragments folded, patches kept)."""
    from .staging.fragment_writer import FragmentWriter
    from .staging.layout import publish_fragment, temp_fragment_path
    from .staging.reader import read_staging

    with read_staging(staging) as snapshot:
        sequences = list(snapshot.fragment_sequences)
        if len(sequences) < 2:
            return 0, len(snapshot.patches)
        spec = snapshot.spec
        keyed = snapshot.patch_keys
        writer = FragmentWriter(
            temp_fragment_path(snapshot.fragments_dir),
            staging_uid=snapshot.header.uid,
            dtype=spec.numpy_dtype,
            withdraws=sequences,
            merge_order=max(sequences),
        )
        try:
            for i, patch in enumerate(snapshot.patches):
                height, width = int(patch['height']), int(patch['width'])
                if patch['uniform']:
                    pixels = numpy.full((height, width, spec.channels), patch['value'], spec.numpy_dtype)
                else:
                    pixels = snapshot._checked_pixels(patch)  # never fold damaged data
                writer.add(int(patch['x']), int(patch['y']), pixels, source=keyed.get(i),
                           weighting=snapshot.patch_weighting(i))
            writer.close()
            folded = publish_fragment(writer.path)
        except BaseException:
            writer.discard()
            raise
        kept = len(snapshot.patches)
        paths = list(snapshot.fragment_paths)
    # The folded fragments are withdrawn now; deleting them is tidying up
    # (a kill here leaves them for gc). Readers hold their descriptors.
    for path in paths:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    log.info('compacted %d fragments into %s (%d patches)', len(paths), folded.name, kept)
    return len(paths), kept


# -- gc -----------------------------------------------------------------------


@dataclasses.dataclass
class GcReport:
    removed_temp_fragments: list[str] = dataclasses.field(default_factory=list)
    kept_live_temp_fragments: list[str] = dataclasses.field(default_factory=list)
    removed_withdrawn_fragments: list[str] = dataclasses.field(default_factory=list)
    removed_temp_outputs: list[str] = dataclasses.field(default_factory=list)


_TEMP_NAME = re.compile(r'^\.tmp-(?P<host>[A-Za-z0-9_]*)-(?P<pid>\d+)-[0-9a-f]+\.h5$')


def gc(staging: str | os.PathLike, *, older_than: float = DEFAULT_GC_AGE) -> GcReport:
    """Remove what dead writers and killed commands left (see the module docstring)."""
    from .staging.canvasfile import read_canvas
    from .staging.layout import fragments_dir, stale_temp_fragments

    if older_than < 0:
        raise InvalidOptionError(f'older_than must be >= 0 seconds, got {older_than}')
    read_canvas(staging)  # a staging unit, or a clean error
    directory = fragments_dir(staging)
    report = GcReport()
    now = time.time()
    for path in stale_temp_fragments(directory):
        if _writer_gone(path, now, older_than):
            _remove(path, report.removed_temp_fragments)
        else:
            report.kept_live_temp_fragments.append(path.name)
    # Fragments withdrawn by a later one (a compaction killed before it
    # deleted what it folded): never read again. The reader's rule decides.
    from .staging.reader import read_staging

    try:
        with read_staging(staging) as snapshot:
            ignored = set(snapshot.withdrawn_fragments)
            paths = dict(zip(snapshot.fragment_sequences, snapshot.fragment_paths, strict=True))
    except CorruptFragmentError as exc:
        log.warning('withdrawn fragments not looked for: %s', exc)
        ignored, paths = set(), {}
    for sequence in sorted(ignored):
        _remove(paths[sequence], report.removed_withdrawn_fragments)
    # Temp outputs of killed finalize/preview/init runs beside the staging file.
    parent = Path(staging).parent
    for entry in os.scandir(parent):
        if entry.name.startswith('.') and entry.name.endswith('.tmp') and entry.is_file():
            if now - entry.stat().st_mtime > older_than:
                _remove(Path(entry.path), report.removed_temp_outputs)
    return report


def _writer_gone(path: Path, now: float, older_than: float) -> bool:
    from .staging.layout import host_tag

    try:
        age = now - path.stat().st_mtime
    except FileNotFoundError:
        return False  # published or discarded meanwhile
    if age > older_than:
        return True  # no heartbeat: gone, on whatever node
    match = _TEMP_NAME.match(path.name)
    if match is None or match.group('host') != host_tag():
        return False
    return not _pid_alive(int(match.group('pid')))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (killed, not yet reaped) no longer writes.
    try:
        with open(f'/proc/{pid}/stat') as fh:
            return fh.read().rsplit(')', 1)[-1].split()[0] != 'Z'
    except OSError:
        return True


def _remove(path: Path, into: list[str]) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        return
    into.append(path.name)


# -- verify -------------------------------------------------------------------


@dataclasses.dataclass
class VerifyReport:
    fragments: int = 0
    patches: int = 0
    bytes_checked: int = 0
    #: (fragment sequence or None, message) of each damaged fragment.
    damaged: list[tuple[int | None, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.damaged


def verify(staging: str | os.PathLike) -> VerifyReport:
    """Re-read every current patch, checking checksums; damaged fragments are listed, not raised."""
    from .staging.reader import read_staging

    started = time.monotonic()
    report = VerifyReport()
    try:
        # deep: tables through HDF5 too, checked against each table copy.
        snapshot = read_staging(staging, deep=True)
    except CorruptFragmentError as exc:
        report.damaged.append((exc.sequence, str(exc)))
        report.seconds = time.monotonic() - started
        return report
    with snapshot:
        report.fragments = len(snapshot.fragment_paths) - len(snapshot.withdrawn_fragments)
        bad: set[int] = set()
        for patch in snapshot.patches:
            number = int(patch['fragment'])
            if number in bad or patch['uniform'] and not patch['weights_crc32'] >= 0:
                report.patches += 1
                continue
            try:
                if patch['weights_crc32'] >= 0:  # an explicit weight array (weighted canvases)
                    snapshot._explicit_weights(patch)
                pixels = snapshot._checked_pixels(patch) if not patch['uniform'] else numpy.zeros(0)
            except CorruptFragmentError as exc:
                bad.add(number)
                report.damaged.append((snapshot.fragment_sequences[number], str(exc)))
            else:
                report.bytes_checked += pixels.nbytes
            report.patches += 1
    report.seconds = time.monotonic() - started
    return report
