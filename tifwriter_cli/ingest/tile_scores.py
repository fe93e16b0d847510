"""Tile-score tables: one row per tile (x, y, score...) staged as canvas pixels.

Multiple-instance-learning models (CLAM, TransMIL, slideflow, ...) emit one
score per tile, as a table of tile coordinates and values rather than as
pixel patches. :func:`ingest_table` stages such a table:

* **Formats** (:mod:`tifwriter_cli.ingest.tables`): CSV (a header row,
  then one row per tile; ``.tsv`` is tab-separated), Parquet (needs
  ``pyarrow``: ``pip install 'tifwriter[tables]'``) and HDF5 (each column a
  dataset of one row per tile; CLAM's files hold ``coords`` (N, 2) beside
  the scores, so ``x``/``y`` default to ``coords[0]``/``coords[1]``).
* **Painting**: row (x, y) covers the tile [x, x + P) x [y, y + P) in
  ``coords`` units (P = ``patch_size``): with ``coords='slide'`` slide
  level-0 pixels, mapped to the canvas by the one slide -> canvas rule
  (:func:`tifwriter_cli.slide.canvas_position`), so a tile is P / D canvas
  px a side on a canvas at downsample D - one pixel when D = P (``init
  --like SLIDE --downsample P``), a P x P block at D = 1. P / D must be a
  whole number of canvas pixels. The value columns are the channels.
* **Merging**: tiles on one grid that do not overlap are painted as a few
  rectangles (runs of adjacent tiles); tiles that overlap (a stride
  smaller than P, duplicate rows) are staged one patch each, so the
  canvas' merge rule combines them as it combines any patches.
* **Idempotent**: a table is one contribution (docs/staging-format.md,
  "Contributions"), keyed by its absolute real path; its rectangles are
  the parts ``file:/abs/table.csv#part=N``, all published in one fragment.
  A re-run with the same file and options does nothing; a rewritten table
  or other options stage it again, replacing every part (parts left over
  from a larger earlier run are withdrawn).

Bad rows (a missing or non-numeric value, a fractional coordinate, a value
the canvas cannot hold) raise :class:`~tifwriter_cli.errors.SourceFileError`
naming the row (``line N`` of a CSV, counting the header as line 1; ``row
N`` of Parquet and HDF5 columns, counting from 0) before anything is staged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import time
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy

from ..errors import (
    InvalidOptionError,
    LossyConversionError,
    PatchError,
    SourceFileError,
)
from .contribution import file_fingerprint
from .tables import ScoreTable, read_score_table

__all__ = ['ScoreTable', 'TableReport', 'ingest_table', 'read_score_table', 'table_rectangles']

#: Largest side of a painted rectangle, in canvas px (as patch chunks).
MAX_RECTANGLE_SIDE = 1024
#: Parts of one table's contribution key: ``file:/abs/t.csv#part=3``.
PART_SEPARATOR = '#part='


@dataclasses.dataclass(frozen=True)
class Rectangle:
    """Part of a table painted as one patch: canvas x, y of its corner and
    its tiles' values (rows, cols, C), each tile ``side`` canvas px a side."""

    x: int
    y: int
    cells: numpy.ndarray
    side: int

    @property
    def width(self) -> int:
        return self.cells.shape[1] * self.side

    @property
    def height(self) -> int:
        return self.cells.shape[0] * self.side

    def pixels(self) -> numpy.ndarray:
        """(H, W, C) canvas pixels (made when written: a full-resolution
        canvas' rectangles would not all fit in memory at once)."""
        if self.side == 1:
            return self.cells
        return numpy.repeat(numpy.repeat(self.cells, self.side, axis=0), self.side, axis=1)


def tile_side(patch_size: float, *, coords: str, spec: Any) -> int:
    """Canvas pixels a tile of ``patch_size`` (in ``coords`` units) covers a side."""
    from ..vocab import COORDS

    if coords not in COORDS:
        raise InvalidOptionError(f'coords must be one of {", ".join(COORDS)}, got {coords!r}')
    size = float(patch_size)
    if not math.isfinite(size) or size <= 0:
        raise InvalidOptionError(f'patch size must be a positive number of pixels, got {patch_size!r}')
    downsample = spec.slide_downsample if coords == 'slide' else 1.0
    side = size / downsample
    nearest = round(side)
    if nearest < 1 or abs(side - nearest) > 1e-6 * max(1.0, side):
        raise InvalidOptionError(
            f'a tile of {size:g} {coords} px is {side:g} canvas px at the canvas downsample {downsample:g}: '
            'a tile must cover a whole number of canvas pixels (make the canvas at a downsample dividing '
            'the patch size)'
        )
    return int(nearest)


def table_rectangles(
    table: ScoreTable, *, patch_size: float, coords: str, spec: Any, convert: str = 'exact'
) -> tuple[list[Rectangle], bool]:
    """The patches painting ``table`` on the canvas of ``spec``, and whether
    the tiles overlap (then one patch per row, for the merge rule)."""
    from ..convert import as_canvas_patch
    from ..slide import canvas_position

    side = tile_side(patch_size, coords=coords, spec=spec)
    if table.values.shape[1] != spec.channels:
        raise InvalidOptionError(
            f'{table.values.shape[1]} value column(s) for a canvas of {spec.channels} channel(s): '
            'give one value column per channel'
        )
    pixels = _converted_values(table, spec, convert, as_canvas_patch)  # (N, C)
    cx, cy = canvas_position(table.x.astype(numpy.int64), table.y.astype(numpy.int64), coords=coords, spec=spec)
    cx, cy = numpy.asarray(cx, numpy.int64), numpy.asarray(cy, numpy.int64)
    origin_x, origin_y = int(cx.min()), int(cy.min())
    on_grid = not ((cx - origin_x) % side).any() and not ((cy - origin_y) % side).any()
    cells_x, cells_y = (cx - origin_x) // side, (cy - origin_y) // side
    if on_grid:
        grid_width = int(cells_x.max()) + 1
        flat = cells_y * grid_width + cells_x
        on_grid = len(numpy.unique(flat)) == len(flat)  # a duplicate row overlaps itself
    if not on_grid:
        # Overlapping tiles: each its own patch, merged by the canvas' rule.
        rectangles = [
            Rectangle(int(x), int(y), pixels[i : i + 1, numpy.newaxis], side)
            for i, (x, y) in enumerate(zip(cx, cy, strict=True))
        ]
        return rectangles, True
    grid_height = int(cells_y.max()) + 1
    present = numpy.zeros((grid_height, grid_width), bool)
    present[cells_y, cells_x] = True
    grid = numpy.zeros((grid_height, grid_width, spec.channels), spec.numpy_dtype)
    grid[cells_y, cells_x] = pixels
    rectangles = []
    for row0, row1, col0, col1 in _cover_with_rectangles(present, max(1, MAX_RECTANGLE_SIDE // side)):
        cells = grid[row0:row1, col0:col1]
        rectangles.append(Rectangle(origin_x + col0 * side, origin_y + row0 * side, cells, side))
    return rectangles, False


def _converted_values(table: ScoreTable, spec: Any, convert: str, as_canvas_patch: Callable) -> numpy.ndarray:
    """The value rows as the canvas dtype; a value that cannot be stored is
    reported with its row (found by bisection, on the failing path only)."""
    values = table.values
    try:
        return as_canvas_patch(values[:, numpy.newaxis, :], spec, convert=convert)[:, 0, :]
    except (LossyConversionError, PatchError) as exc:
        first_error = exc
    low, high = 0, len(values)  # values[:high] fails, values[:low] passes
    while high - low > 1:
        middle = (low + high) // 2
        try:
            as_canvas_patch(values[:middle, numpy.newaxis, :], spec, convert=convert)
            low = middle
        except (LossyConversionError, PatchError):
            high = middle
    row = high - 1
    try:
        as_canvas_patch(values[row : row + 1, numpy.newaxis, :], spec, convert=convert)
    except (LossyConversionError, PatchError) as exc:
        first_error = exc
    shown = ', '.join(f'{v:g}' for v in values[row])
    message = str(first_error).replace('patch holds', 'holds').replace('patch values', 'values')
    raise SourceFileError(f'{table.path}: {table.describe_row(row)}: value {shown}: {message}') from None


def _cover_with_rectangles(present: numpy.ndarray, max_cells: int) -> list[tuple[int, int, int, int]]:
    """Disjoint rectangles (row0, row1, col0, col1) covering exactly the True
    cells: runs along each row, merged downwards while the run below is the
    same; no side longer than ``max_cells``."""
    open_runs: dict[tuple[int, int], int] = {}  # (col0, col1) -> first row
    done: list[tuple[int, int, int, int]] = []
    for row in range(present.shape[0] + 1):
        runs = set(_runs(present[row], max_cells)) if row < present.shape[0] else set()
        for run, first in list(open_runs.items()):
            if run not in runs or row - first >= max_cells:
                done.append((first, row, *run))
                del open_runs[run]
        for run in runs:
            open_runs.setdefault(run, row)
    return sorted(done)


def _runs(line: numpy.ndarray, max_cells: int) -> list[tuple[int, int]]:
    padded = numpy.concatenate([[False], line, [False]])
    edges = numpy.flatnonzero(padded[1:] != padded[:-1])
    runs = []
    for start, stop in zip(edges[::2], edges[1::2], strict=True):
        for piece in range(int(start), int(stop), max_cells):
            runs.append((piece, min(piece + max_cells, int(stop))))
    return runs


@dataclasses.dataclass
class TableReport:
    """What :func:`ingest_table` did."""

    table: str
    staging: str
    #: 'staged' (new), 'replaced' (staged before, replaced), 'already'
    #: (same file, same options: nothing done).
    status: str
    rows: int = 0
    patches: int = 0
    #: Rows whose tile lies wholly outside the canvas.
    rows_outside: int = 0
    #: Tiles overlap: one patch per row, merged by the canvas' rule.
    overlapping: bool = False
    #: Parts of an earlier staging no longer needed, withdrawn.
    withdrawn_parts: int = 0
    #: The canvas' slide downsample (to tell slide coordinates given as canvas ones).
    canvas_downsample: float = 1.0
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def ingest_table(
    staging: str | os.PathLike,
    table_path: str | os.PathLike,
    *,
    x: str | None = None,
    y: str | None = None,
    values: Sequence[str],
    patch_size: float | None = None,
    coords: str = 'canvas',
    convert: str = 'exact',
) -> TableReport:
    """Stage a tile-score table (see the module docstring). Idempotent.

    ``patch_size`` None: the one the table records (CLAM's HDF5), with
    ``coords='slide'``.
    """
    from ..geometry import clip_to_canvas
    from ..staging import open_staging, read_staging
    from .contribution import file_key

    started = time.monotonic()
    table_path = Path(table_path)
    values = list(values)
    with read_staging(staging) as snapshot:
        spec = snapshot.spec
        current = dict(snapshot.contributions)
    base_key = file_key(table_path)
    prefix = base_key + PART_SEPARATOR
    earlier = {key: record for key, record in current.items() if key.startswith(prefix)}
    options = json.dumps([x, y, values, None if patch_size is None else float(patch_size), coords, convert], separators=(',', ':'))
    digest = f'{zlib.crc32(options.encode()):08x}'
    fingerprint = file_fingerprint(table_path)
    report = TableReport(str(table_path), str(staging), 'staged', canvas_downsample=spec.slide_downsample)
    if earlier and _already_staged(earlier, fingerprint, digest):
        report.status = 'already'
        report.patches = len(earlier)
        report.seconds = time.monotonic() - started
        return report
    table = read_score_table(table_path, x=x, y=y, values=values)
    if patch_size is None:
        if table.patch_size is None or coords != 'slide':
            raise InvalidOptionError(
                f'{table_path}: give the patch size (the table records none'
                + (')' if table.patch_size is None else "; the one it records is in slide pixels: coords='slide')")
            )
        patch_size = table.patch_size
    rectangles, report.overlapping = table_rectangles(table, patch_size=patch_size, coords=coords, spec=spec, convert=convert)
    if file_fingerprint(table_path) != fingerprint:
        raise SourceFileError(f'{table_path}: changed while being read (still being written?)')
    report.rows = len(table)
    report.rows_outside = _rows_outside(table, patch_size=patch_size, coords=coords, spec=spec)
    # Parts are the rectangles that land (a part wholly outside is not
    # recorded, so an unchanged re-run finds every part it recorded).
    landing = [
        r for r in rectangles
        if clip_to_canvas(r.x, r.y, r.width, r.height, spec.width, spec.height) is not None
    ]
    suffix = f';table={digest};parts={len(landing)}'
    # One fragment, published once: a run killed before the end changes nothing.
    with open_staging(staging, publish_every_s=math.inf, publish_every_bytes=1 << 62) as writer:
        for number, rectangle in enumerate(landing):
            record = (f'{prefix}{number}', *fingerprint, f'{rectangle.x},{rectangle.y},{convert}{suffix}')
            writer.write(rectangle.x, rectangle.y, rectangle.pixels(), source=record)
            report.patches += 1
        for key in sorted(set(earlier) - {f'{prefix}{n}' for n in range(len(landing))}):
            _withdraw(writer, (key, *fingerprint, f'withdrawn{suffix}'))
            report.withdrawn_parts += 1
    report.status = 'replaced' if earlier else 'staged'
    report.seconds = time.monotonic() - started
    return report


def _already_staged(earlier: dict[str, tuple[str, int, int, str]], fingerprint: tuple[int, int], digest: str) -> bool:
    """Every current part records this file and these options, and all parts are there."""
    suffixes = {record[3].partition(';')[2] for record in earlier.values()}
    if len(suffixes) != 1:
        return False
    (suffix,) = suffixes
    match = re.fullmatch(r'table=([0-9a-f]{8});parts=(\d+)', suffix)
    return (
        match is not None
        and match.group(1) == digest
        and int(match.group(2)) == len(earlier)
        and all(tuple(record[1:3]) == fingerprint for record in earlier.values())
    )


def _withdraw(writer: Any, record: tuple[str, int, int, str]) -> None:
    """Withdraw a key: a keyed patch wholly outside the canvas records that
    nothing of it lands (docs/staging-format.md, "Contributions")."""
    spec = writer.spec
    writer.write(spec.width, spec.height, numpy.zeros((1, 1, spec.channels), spec.numpy_dtype), source=record)


def _rows_outside(table: ScoreTable, *, patch_size: float, coords: str, spec: Any) -> int:
    from ..slide import canvas_position

    side = tile_side(patch_size, coords=coords, spec=spec)
    cx, cy = canvas_position(table.x.astype(numpy.int64), table.y.astype(numpy.int64), coords=coords, spec=spec)
    cx, cy = numpy.asarray(cx), numpy.asarray(cy)
    outside = (cx + side <= 0) | (cy + side <= 0) | (cx >= spec.width) | (cy >= spec.height)
    return int(outside.sum())
