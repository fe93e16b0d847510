"""Stage every patch file of a directory: ``ingest_npy_dir``.

File names carry the patch position. The *pattern* says how::

    tile_{x}_{y}.npy        literal text, {x} and {y} integers (may be negative)
    *{x}_{y}.npy            '*' is any text (never a '/'); the default
    slide7/{x}-{y}.npz      with a '/', the pattern matches the path relative
                            to the directory, so subdirectories are searched

Rules, chosen so that what users actually name files parses one way only:

* ``{x}`` and ``{y}`` must each appear exactly once, separated by literal
  text; other ``{...}`` fields are refused.
* A pattern ending in ``.npy`` or ``.npz`` matches both extensions: a .npz
  holding one array is accepted wherever a .npy is (the content, not the
  extension, decides how a file is read).
* After a ``*``, a minus sign belongs to the number only when it does not
  follow a letter or digit: ``tile-12_34.npy`` reads x=12, ``tile_-12_34.npy``
  reads x=-12. With the default ``*{x}_{y}.npy`` the *last two* numbers of a
  name are x and y (``slide3_2048_4096.npy`` -> 2048, 4096).
* Hidden entries (names starting with '.') are ignored; so are files that do
  not end in .npy/.npz. A .npy/.npz whose name does not match is reported
  (warning), not staged; if *no* name matches, that is an error, since the
  pattern is then surely wrong.

Ingest is idempotent: every staged file is one contribution, keyed by its
absolute real path (:mod:`tifwriter_cli.ingest.contribution`). A re-run skips files
staged before with the same size, mtime and placement, so a killed or failed
ingest is simply run again; a file that changed since, or a corrected run
(other ``coords``, ``pattern`` or ``convert``), stages it again and replaces
what it placed before. A file wholly outside the canvas is not recorded.

Files are processed in sorted order. Every file is checked from its header
before its data is read (see :mod:`tifwriter_cli.npyfile`). The pattern syntax is
:mod:`.patterns`; shards are :mod:`.shards`.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InvalidOptionError, PatchError, SourceFileError
from ..slide import canvas_position
from ..vocab import CONVERT_MODES, COORDS, DEFAULT_PATTERN, ON_ERROR
from .contribution import stage_file
from .patterns import PATCH_EXTENSIONS, NamePattern, compile_pattern
from .shards import checked_shard, in_shard

if TYPE_CHECKING:
    from ..spec import CanvasSpec

__all__ = ['IngestReport', 'ingest_npy_dir']

log = logging.getLogger(__name__)

# -- the ingest -----------------------------------------------------------


@dataclasses.dataclass
class IngestReport:
    """What one :func:`ingest_npy_dir` run did. Counts are files."""

    staging: str
    directory: str
    pattern: str
    shard: tuple[int, int] | None = None
    #: The canvas (width, height) the files were staged on.
    canvas: tuple[int, int] = (0, 0)
    #: Files whose name matched the pattern (all shards).
    matched: int = 0
    #: Files staged now (something of them landed on the canvas).
    staged: int = 0
    #: Of ``staged``: files staged before (another placement or content),
    #: whose earlier staging this one replaced.
    replaced: int = 0
    #: Files wholly outside the canvas: nothing landed, nothing recorded
    #: (an earlier staging of such a file is withdrawn).
    outside: int = 0
    #: Why the outside files fell outside, when their names say it:
    #: 'slide' (they look like slide coordinates: coords='slide'),
    #: 'swapped' (x and y look swapped in the pattern), or None.
    outside_hint: str | None = None
    skipped_already_staged: int = 0
    skipped_other_shards: int = 0
    #: .npy/.npz files whose name does not match the pattern.
    unmatched: int = 0
    unmatched_examples: list[str] = dataclasses.field(default_factory=list)
    #: (relative path, message) of every file that could not be staged.
    failures: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    #: True when ``on_error='stop'`` ended the run at a failure.
    stopped_early: bool = False
    #: True when ``stop()`` asked the run to end before all files were done.
    interrupted: bool = False
    #: Bytes of array data read from the staged files.
    bytes_staged: int = 0
    #: Bytes read from files that fell outside.
    bytes_read: int = 0
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        """No file failed, and the run did not mostly miss the canvas."""
        return not self.failures and not self.mostly_outside

    @property
    def mostly_outside(self) -> bool:
        """More than half of the files looked at (not already staged) fell
        wholly outside the canvas: the positions are surely misread."""
        return self.outside > 0 and 2 * self.outside > self.outside + self.staged

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data['shard'] = list(self.shard) if self.shard else None
        data['failures'] = [{'path': p, 'error': m} for p, m in self.failures]
        data['failed'] = self.failed
        data['ok'] = self.ok
        data['mostly_outside'] = self.mostly_outside
        return data


def ingest_npy_dir(
    staging: str | os.PathLike,
    directory: str | os.PathLike,
    *,
    pattern: str = DEFAULT_PATTERN,
    recursive: bool = False,
    on_error: str = 'stop',
    convert: str = 'exact',
    shard: tuple[int, int] | None = None,
    coords: str = 'canvas',
    progress: Callable[[int, int], None] | None = None,
    stop: Callable[[], bool] | None = None,
    publish_every_s: float = 60.0,
) -> IngestReport:
    """Stage the patch files of ``directory`` whose names match ``pattern``.

    ``on_error``: ``'stop'`` ends the run at the first bad file (what was
    staged before stays staged); ``'skip'`` records it and goes on. Either
    way the failures are in the report (and logged), nothing is raised for
    them: check :attr:`IngestReport.ok`. Problems with the run itself (bad
    options, missing directory or staging file, disk full) raise.

    ``shard=(i, n)``: stage only the files of shard i of n (see
    :func:`in_shard`), for n processes or array tasks sharing the work.
    ``coords``: ``'canvas'`` or ``'slide'`` (see :func:`canvas_position`).
    ``progress(done, total)`` is called after each file of this shard.
    ``stop()`` is asked before each file; when it returns True the run ends
    there (``report.interrupted``), publishing what was staged (see
    :func:`tifwriter_cli.termination.sigterm_event`).
    """
    from ..staging import open_staging, read_staging

    started = time.monotonic()
    name_pattern = compile_pattern(pattern)
    if on_error not in ON_ERROR:
        raise InvalidOptionError(f'on_error must be one of {", ".join(ON_ERROR)}, got {on_error!r}')
    if convert not in CONVERT_MODES:
        raise InvalidOptionError(f'convert must be one of {", ".join(CONVERT_MODES)}, got {convert!r}')
    if coords not in COORDS:
        raise InvalidOptionError(f'coords must be one of {", ".join(COORDS)}, got {coords!r}')
    if shard is not None:
        shard = checked_shard(shard)
    root = Path(directory)
    if not root.exists():
        raise InvalidOptionError(f'directory {root} does not exist')
    if not root.is_dir():
        raise InvalidOptionError(f'{root} is not a directory')

    with read_staging(staging) as snapshot:
        spec = snapshot.spec
        current = dict(snapshot.contributions)

    report = IngestReport(str(staging), str(root), pattern, shard, (spec.width, spec.height))
    candidates = _matching_files(root, name_pattern, recursive or name_pattern.matches_relpath, report)
    report.matched = len(candidates)
    todo = [c for c in candidates if in_shard(c[0], shard)]
    report.skipped_other_shards = len(candidates) - len(todo)
    outside: list[tuple[int, int, int, int]] = []  # name x, y and size of files that fell outside

    with open_staging(staging, publish_every_s=publish_every_s) as writer:
        for done, (relpath, x, y) in enumerate(todo, 1):
            if stop is not None and stop():
                report.interrupted = True
                log.warning('stopping: %d of %d file(s) not looked at', len(todo) - done + 1, len(todo))
                break
            path = root / relpath
            try:
                outcome = stage_file(writer, path, x, y, coords=coords, convert=convert, current=current)
            except (SourceFileError, PatchError) as exc:
                message = _without_path_prefix(str(exc), path)
                report.failures.append((relpath, message))
                log.error('%s: %s', path, message)
                if on_error == 'stop':
                    report.stopped_early = True
                    break
            else:
                if outcome.status == 'already':
                    report.skipped_already_staged += 1
                elif outcome.status == 'outside':
                    report.outside += 1
                    report.bytes_read += outcome.nbytes
                    outside.append((x, y, outcome.width, outcome.height))
                    log.debug('%s: wholly outside the canvas, not staged', path)
                else:
                    report.staged += 1
                    report.replaced += outcome.status == 'replaced'
                    report.bytes_staged += outcome.nbytes
            if progress is not None:
                progress(done, len(todo))
    report.outside_hint = _outside_hint(outside, spec, coords)
    report.seconds = time.monotonic() - started
    return report


def _outside_hint(
    outside: list[tuple[int, int, int, int]], spec: CanvasSpec, coords: str
) -> str | None:
    """Why files fell outside, when their names say it: 'slide' (the names
    look like slide coordinates: use coords='slide'), 'swapped' (x and y
    look swapped in the pattern), or None."""
    from ..geometry import clip_to_canvas

    if not outside:
        return None

    def fraction_inside(place) -> float:
        inside = sum(
            clip_to_canvas(*place(x, y), w, h, spec.width, spec.height) is not None
            for x, y, w, h in outside
        )
        return inside / len(outside)

    if coords == 'canvas' and spec.slide_downsample > 1:
        if fraction_inside(lambda x, y: canvas_position(x, y, coords='slide', spec=spec)) > 0.5:
            return 'slide'
    if fraction_inside(lambda x, y: canvas_position(y, x, coords=coords, spec=spec)) > 0.5:
        return 'swapped'
    return None


def _matching_files(
    root: Path, pattern: NamePattern, recursive: bool, report: IngestReport
) -> list[tuple[str, int, int]]:
    """Sorted (relpath, x, y) of the files matching; counts the others in ``report``."""
    found = []
    unmatched = []
    subdirectories = 0
    for relpath, is_dir in _walk(root, recursive):
        if is_dir:
            subdirectories += 1
            # A directory named like a patch is a failure named in the
            # report (staging it fails), not silently passed over.
            position = pattern.coordinates(relpath) if relpath.endswith(PATCH_EXTENSIONS) else None
            if position is not None:
                found.append((relpath, *position))
            continue
        position = pattern.coordinates(relpath)
        if position is not None:
            found.append((relpath, *position))
        elif relpath.endswith(PATCH_EXTENSIONS):
            unmatched.append(relpath)
    report.unmatched = len(unmatched)
    report.unmatched_examples = unmatched[:5]
    if unmatched and not found:
        raise InvalidOptionError(
            f'no file name in {root} matches pattern {pattern.text!r} '
            f'({len(unmatched)} .npy/.npz file(s) do not, e.g. {unmatched[0]!r})'
        )
    if unmatched:
        log.warning(
            '%d .npy/.npz file(s) in %s do not match pattern %r and are not staged, e.g. %s',
            len(unmatched), root, pattern.text, ', '.join(repr(u) for u in unmatched[:3]),
        )
    if not found:
        hint = ''
        if subdirectories and not recursive:
            hint = f' ({subdirectories} subdirectories: use recursive=True to search them)'
        log.warning('no .npy/.npz file in %s%s', root, hint)
    return sorted(found)


def _walk(root: Path, recursive: bool):
    """(relpath with '/', is_dir) of the visible entries under root, sorted."""
    stack = ['']
    while stack:
        prefix = stack.pop()
        try:
            entries = sorted(os.scandir(root / prefix if prefix else root), key=lambda e: e.name)
        except OSError as exc:
            raise SourceFileError(f'{root / prefix}: cannot list: {exc.strerror or exc}') from None
        subdirs = []
        for entry in entries:
            if entry.name.startswith('.'):
                continue
            relpath = f'{prefix}{entry.name}'
            try:
                is_dir = entry.is_dir()  # follows symlinks; recursion below does not
            except OSError:
                is_dir = False
            if is_dir:
                yield relpath, True
                if recursive and not entry.is_symlink():
                    subdirs.append(relpath + '/')
            else:
                # Files, and what is neither file nor directory (a dangling
                # symlink, a symlink loop, a FIFO): those fail when staged,
                # named in the report, instead of vanishing from it.
                yield relpath, False
        stack.extend(reversed(subdirs))


def _without_path_prefix(message: str, path: Path) -> str:
    prefix = f'{path}: '
    return message[len(prefix):] if message.startswith(prefix) else message
