"""Contribution identity: what makes two staged patches "the same contribution".

The rule (docs/staging-format.md, "Contributions"):

* A patch staged from a file (``write-patch``, ``ingest-npy-dir``) is keyed by
  the file's **absolute real path**: ``file:/data/run1/heat/tile_0_512.npy``.
  One file is one contribution, whichever command stages it and wherever it
  places it; files in different directories are different contributions
  even with equal names, sizes and mtimes.
* A patch staged through the API with ``key=`` is keyed by that text; one
  without a key is a contribution of its own.
* Among the records of one key, only the **last** in publish order counts,
  under every merge rule: re-staging replaces, never adds. A last record
  that placed nothing on the canvas is a *withdrawal*. Published fragments
  are never edited: superseded records are skipped at read time.

Each record also carries the file's size and mtime_ns and its *placement*
(canvas x, y and convert mode). A file whose last record has the same size,
mtime and placement is skipped as already staged; any difference (a rewritten
file, a corrected ``--coords`` or ``--pattern``, another ``--convert``)
stages it again, replacing what it placed before.

:func:`stage_file` is the one function both commands stage a file with.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SourceFileError

__all__ = ['FILE_KEY_PREFIX', 'StageOutcome', 'file_fingerprint', 'file_key', 'placement_text', 'stage_file']

FILE_KEY_PREFIX = 'file:'
#: Coordinates beyond this are certainly a misparsed name, not a position.
MAX_COORDINATE = 2**62

#: What a staging did: 'staged' (new key), 'replaced' (a key staged before),
#: 'already' (same file, same placement: nothing done), 'outside' (nothing landed).
STATUSES = ('staged', 'replaced', 'already', 'outside')


@dataclasses.dataclass(frozen=True)
class StageOutcome:
    status: str
    #: Canvas position of the patch's top-left corner (unclipped).
    x: int
    y: int
    #: Patch size in pixels (0 when not read: 'already').
    width: int = 0
    height: int = 0
    #: Bytes of array data read.
    nbytes: int = 0
    #: The placement the key had before ('' if none).
    previous_placement: str = ''


def file_key(path: str | os.PathLike) -> str:
    """The contribution key of a source file: its absolute real path."""
    return FILE_KEY_PREFIX + os.path.realpath(path)


def placement_text(x: int, y: int, convert: str) -> str:
    """How a patch was placed: canvas x, y of its corner and the convert mode."""
    return f'{x},{y},{convert}'


def stage_file(
    writer: Any,
    path: str | os.PathLike,
    x: int,
    y: int,
    *,
    coords: str,
    convert: str,
    current: Mapping[str, tuple[str, int, int, str]],
    key: str | None = None,
    layout: str = 'hwc',
    weight: Any = None,
    crop_margin: int = 0,
) -> StageOutcome:
    """Stage the array of one .npy/.npz file with its corner at (x, y) in ``coords``.

    ``current``: the staging unit's current contributions (a snapshot's
    :attr:`~tifwriter_cli.staging.reader.StagingSnapshot.contributions`).
    ``key`` replaces the file's own key (:func:`file_key`), e.g. to place one
    file at several positions as several contributions. Raises
    :class:`SourceFileError` / :class:`PatchError` before storing anything
    for a bad file.
    """
    from ..geometry import clip_to_canvas
    from ..npyfile import load_array
    from ..slide import canvas_position

    path = Path(path)
    key = file_key(path) if key is None else key
    try:
        key.encode('utf-8')
    except UnicodeEncodeError:
        # Keys are stored as UTF-8; a name the filesystem holds as other
        # bytes could not be recorded (and would sink the whole fragment).
        raise SourceFileError(f'{path}: the file name is not valid UTF-8; rename the file') from None
    if abs(x) > MAX_COORDINATE or abs(y) > MAX_COORDINATE:
        raise SourceFileError(f'{path}: coordinates x={x}, y={y} are out of range')
    canvas_x, canvas_y = canvas_position(x, y, coords=coords, spec=writer.spec)
    from ..blending import window_placement

    placement = placement_text(canvas_x, canvas_y, convert) + (f';layout={layout}' if layout != 'hwc' else '')
    placement += window_placement(weight, crop_margin)
    before = file_fingerprint(path)
    previous = current.get(key)
    if previous is not None and tuple(previous[1:]) == (*before, placement):
        return StageOutcome('already', canvas_x, canvas_y)
    array = load_array(path, writer.spec, convert=convert, layout=layout)
    if file_fingerprint(path) != before:
        # Still being written by the job producing it: the record would
        # not describe what was read. The next run will take it.
        raise SourceFileError(f'{path}: changed while being read (still being written?)')
    # Conversion errors (lossy values) are raised here, before anything is
    # stored; the writer's own OSErrors (disk full) end the whole run.
    height, width = array.shape[1:3] if layout == 'chw' and array.ndim == 3 else array.shape[:2]
    spec = writer.spec
    lands = clip_to_canvas(canvas_x, canvas_y, width, height, spec.width, spec.height) is not None
    # Nothing is recorded for a file that does not land, unless it must
    # withdraw what an earlier staging of it placed.
    record = (key, *before, placement) if lands or previous is not None else None
    inside = writer.write(canvas_x, canvas_y, array, convert=convert, source=record, layout=layout,
                          weight=weight, crop_margin=crop_margin)
    if not inside:
        status = 'outside'
    else:
        status = 'replaced' if previous is not None else 'staged'
    return StageOutcome(
        status, canvas_x, canvas_y, width, height, array.nbytes, previous[3] if previous else ''
    )


def file_fingerprint(path: Path) -> tuple[int, int]:
    """(size, mtime_ns) of a file a contribution is read from: compared
    before and after reading, so a file rewritten mid-read is not staged."""
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceFileError(f'{path}: cannot read: {exc.strerror or exc}') from None
    return st.st_size, st.st_mtime_ns
