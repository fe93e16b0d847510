"""The read side: a snapshot of the published fragments, merged on demand.

:class:`StagingSnapshot` lists the fragments published when it is opened and
sees nothing published later (so writers may go on while finalize runs).
It loads every fragment's small index table once and buckets the patches in
a grid, so reading a region costs time in proportion to the patches that
overlap it, not to the number of fragments or patches in the staging file.

Each contribution key counts once: its last record in merge order
(docs/staging-format.md, "Contributions"); fragments withdrawn by later ones
are skipped unopened; checksums are checked as data is read (:mod:`.integrity`).
"""

from __future__ import annotations

import collections
import datetime
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy

from ..errors import (
    CorruptFragmentError,
    NotAStagingFileError,
    StagingChangedError,
    one_line,
)
from ..sources import CanvasSource
from .canvasfile import StagingHeader, read_canvas
from .fragment import decode_chunk
from .fragment_files import FragmentFiles, FragmentVanished
from .fragment_tables import DAMAGED_COPY, FragmentTables, read_table_copy
from .integrity import check_patch, corrupt
from .layout import fragments_dir, published_fragments
from .merge import new_accumulator
from .patch_table import PATCH_DTYPE, build_patch_table
from .summary import snapshot_summary
from .validate import (
    accept_table_copy,
    check_fragment_indexes,
    check_patch_dataset,
    load_fragment_tables,
    missing_pixels,
)
from .weighting import ARRAY, SHAPE_NAMES, PatchWeighting, region_weights, weighting_rows

__all__ = ['StagingSnapshot', 'read_staging', 'PATCH_DTYPE']

#: Side of the grid cells that bucket patches for region queries.
GRID_CELL = 1024

class StagingSnapshot(CanvasSource):
    """Read-only view of a staging unit as of when it was opened."""

    def __init__(self, path: str | os.PathLike, *, deep: bool = False):
        self.path = Path(path)
        #: Load every fragment's tables through HDF5 and check them against
        #: its table copy (``verify``), instead of loading the copy alone.
        self.deep = deep
        self.header: StagingHeader = read_canvas(self.path)
        self.spec = self.header.spec
        self.fragments_dir = fragments_dir(self.path)
        if not self.fragments_dir.is_dir():
            raise NotAStagingFileError(
                f'{self.path} has no fragments directory {self.fragments_dir}'
            )
        self.opened_at = datetime.datetime.now(datetime.timezone.utc)
        self._files: FragmentFiles | None = None
        self._verified: set[tuple[int, int]] = set()  # (fragment, row) whose checksum matched
        # A fragment may vanish between listing and opening: `compact`
        # publishes its replacement first, then deletes it. Listing again
        # then sees the replacement.
        for attempt in range(_SNAPSHOT_ATTEMPTS):
            try:
                self._take_snapshot()
                break
            except FragmentVanished:
                self.close()
                if attempt == _SNAPSHOT_ATTEMPTS - 1:
                    raise NotAStagingFileError(
                        f'{self.fragments_dir}: fragments keep vanishing while being opened'
                    ) from None

    def _take_snapshot(self) -> None:
        published = published_fragments(self.fragments_dir)
        self.fragment_paths: list[Path] = [p for _, p in published]
        self.fragment_sequences: list[int] = [n for n, _ in published]
        self._files = FragmentFiles(self.path, self.fragment_paths, self.fragment_sequences)
        #: Sequence numbers of published fragments withdrawn by later ones
        #: (or folded twice): never read, gc deletes them.
        self.withdrawn_fragments: list[int] = []
        #: key -> (key, size, mtime_ns, placement) of each current contribution.
        self.contributions: dict[str, tuple[str, int, int, str]] = {}
        #: Row in :attr:`patches` -> the key record of the contribution it is.
        self.patch_keys: dict[int, tuple[str, int, int, str]] = {}
        self.sources: set[tuple[str, int, int]] = set()
        self.duplicate_rows = 0
        #: Fragments of another staging unit, skipped (see validate.py).
        self.skipped_fragments: list[Path] = []
        self.patches = self._load_index()
        # Each patch's (x0, y0, x1, y1), as plain arrays: the overlap queries
        # select from them (a row of the patch table is ~30 fields).
        p = self.patches
        self._extents = numpy.stack([p['x'], p['y'], p['x'] + p['width'], p['y'] + p['height']]).astype(numpy.int64)
        self._grid = self._build_grid()

    # -- loading ---------------------------------------------------------
    def _load_index(self) -> numpy.ndarray:
        # Newest first: which fragments later ones withdraw (unstage
        # --fragment, compact). A withdrawn fragment is never opened, so a
        # damaged one stops blocking reads once it is unstaged. Each live
        # fragment is opened once, its tables read and checked.
        withdrawn: set[int] = set()
        folded: set[int] = set()  # withdrawn by live folds (compacted fragments)
        accepted: list[tuple] = []  # (merge order, number, tables)
        loaded: list[tuple] = []  # (merge order, number, index, sources, chunk locations, weighting)
        for number in reversed(range(len(self.fragment_paths))):
            sequence = self.fragment_sequences[number]
            if sequence in withdrawn:
                continue
            path = self.fragment_paths[number]
            tables = self._load_tables(number)
            if tables is None:  # another staging unit's (logged)
                self.skipped_fragments.append(path)
                continue
            withdraws = {n for n in tables.withdraws if n < sequence}
            is_fold = tables.merge_order is not None
            if is_fold and withdraws & folded:
                # Two compactions ran at once and folded the same fragments:
                # the one published later wins, this one is ignored.
                withdrawn.add(sequence)
                continue
            withdrawn |= withdraws
            if is_fold:
                folded |= withdraws
            accepted.append((tables.merge_order if is_fold else sequence, number, tables))
        # The index rows of every live fragment, checked in one pass.
        check_fragment_indexes(
            [(t.stored_fields, t.index, len(t.sources), self.fragment_paths[n]) for _, n, t in accepted],
            spec=self.spec,
        )
        for merge_order, number, tables in accepted:
            weighting = (
                weighting_rows(tables.weighting, tables.weighting_crc32, tables.index, path=self.fragment_paths[number])
                if self.spec.merge == 'weighted' else None
            )
            chunks = (tables.chunk_offsets, tables.chunk_sizes)
            loaded.append((merge_order, number, tables.index, tables.sources, chunks, weighting))
        self.withdrawn_fragments = sorted(withdrawn & set(self.fragment_sequences))
        loaded.sort(key=lambda item: (item[0], self.fragment_sequences[item[1]]))
        table = build_patch_table(loaded)
        self.contributions = table.contributions
        self.sources = {record[:3] for record in self.contributions.values()}
        self.patch_keys = table.patch_keys
        self.duplicate_rows = table.duplicate_rows
        return table.patches

    def _load_tables(self, number: int) -> FragmentTables | None:
        """The checked tables of fragment ``number`` (None: another unit's;
        its index rows are checked with all the others', by _load_index).

        From the fragment's table copy when it has one it can trust
        (:mod:`.fragment_tables`: two preads, no HDF5), else through HDF5;
        a ``deep`` snapshot (``verify``) reads HDF5's and refuses a copy that
        differs. The descriptor is held from now on: the file may be deleted
        (compacted) while we read, and pixels are read from it with pread.
        """
        path = self.fragment_paths[number]
        fd = self._files.descriptor(number)
        copy = read_table_copy(fd)
        if isinstance(copy, FragmentTables) and not self.deep:
            return accept_table_copy(copy, fd=fd, path=path, staging_uid=self.header.uid)
        h5 = self._files.open_by_name(number)
        try:
            tables = load_fragment_tables(h5, path=path, spec=self.spec, staging_uid=self.header.uid)
        finally:
            h5.close()
        if self.deep and tables is not None and copy is not None:
            # HDF5's tables are what was read; the file is damaged all the same.
            if copy == DAMAGED_COPY:
                raise corrupt(path, 'its table copy (after the HDF5 data) fails its checksum')
            if not copy.same_tables(tables):
                raise corrupt(path, 'its table copy (after the HDF5 data) differs from its HDF5 tables')
        return tables

    def _build_grid(self) -> dict[tuple[int, int], numpy.ndarray]:
        cells: dict[tuple[int, int], list[int]] = collections.defaultdict(list)
        p = self.patches
        cx0 = p['x'] // GRID_CELL
        cy0 = p['y'] // GRID_CELL
        cx1 = (p['x'] + p['width'] - 1) // GRID_CELL
        cy1 = (p['y'] + p['height'] - 1) // GRID_CELL
        for i in range(len(p)):
            for cy in range(cy0[i], cy1[i] + 1):
                for cx in range(cx0[i], cx1[i] + 1):
                    cells[(int(cy), int(cx))].append(i)
        return {key: numpy.array(value, dtype=numpy.int64) for key, value in cells.items()}

    # -- queries ---------------------------------------------------------
    def patches_overlapping(self, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        """Indices into :attr:`patches` of patches overlapping the region, in merge order."""
        if width <= 0 or height <= 0 or not len(self.patches):
            return numpy.zeros(0, dtype=numpy.int64)
        found = [
            self._grid[key]
            for cy in range(y // GRID_CELL, (y + height - 1) // GRID_CELL + 1)
            for cx in range(x // GRID_CELL, (x + width - 1) // GRID_CELL + 1)
            if (key := (cy, cx)) in self._grid
        ]
        if not found:
            return numpy.zeros(0, dtype=numpy.int64)
        candidates = numpy.unique(numpy.concatenate(found)) if len(found) > 1 else found[0]
        return candidates[self._overlap(candidates, x, y, width, height)]

    def _overlap(self, rows: numpy.ndarray, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        """Which patches ``rows`` overlap the region (the one overlap rule)."""
        x0, y0, x1, y1 = self._extents[:, rows]
        return (x0 < x + width) & (x1 > x) & (y0 < y + height) & (y1 > y)

    @property
    def fragment_count(self) -> int:
        return len(self.fragment_paths)

    @property
    def patch_count(self) -> int:
        return len(self.patches)

    def region_is_fill(self, x: int, y: int, width: int, height: int) -> bool:
        """Whether no staged patch overlaps the region: :meth:`read_region`
        would return only the fill there (finalize then builds no pixels)."""
        if width <= 0 or height <= 0:
            return True
        # patches_overlapping without its merge order: the first overlapping
        # patch answers (finalize asks this for every segment of the canvas).
        for cy in range(y // GRID_CELL, (y + height - 1) // GRID_CELL + 1):
            for cx in range(x // GRID_CELL, (x + width - 1) // GRID_CELL + 1):
                cell = self._grid.get((cy, cx))
                if cell is not None and self._overlap(cell, x, y, width, height).any():
                    return False
        return True

    def read_region(self, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        """Merged canvas pixels of a region, shape (height, width, channels).

        The region may reach past the canvas; pixels outside it get the fill.
        """
        spec = self.spec
        accumulator = new_accumulator(spec.merge, (height, width, spec.channels), spec.numpy_dtype, spec.fill)
        return self._merge_region(x, y, width, height, accumulator)

    #: read_region_into merges into the buffer it is given (every rule).
    fills_buffers = True

    def read_region_into(self, out: numpy.ndarray, x: int, y: int) -> None:
        """:meth:`read_region` into ``out``: the merge's result written
        there, with no region-sized array of its own."""
        spec = self.spec
        height, width = out.shape[:2]
        accumulator = new_accumulator(spec.merge, out.shape, spec.numpy_dtype, spec.fill, out=out)
        self._merge_region(x, y, width, height, accumulator)

    def _merge_region(self, x: int, y: int, width: int, height: int, accumulator: Any) -> numpy.ndarray:
        """The patches over a region added to ``accumulator``, in merge order; its result."""
        spec = self.spec
        dtype = spec.numpy_dtype
        weighted = spec.merge == 'weighted'
        for i in self.patches_overlapping(x, y, width, height):
            patch = self.patches[i]
            px, py = int(patch['x']), int(patch['y'])
            x0, x1 = max(x, px), min(x + width, px + int(patch['width']))
            y0, y1 = max(y, py), min(y + height, py + int(patch['height']))
            rows, cols = slice(y0 - y, y1 - y), slice(x0 - x, x1 - x)
            if patch['uniform']:
                data = dtype.type(patch['value'])
            else:
                data = self._checked_pixels(patch)[y0 - py : y1 - py, x0 - px : x1 - px]
            if weighted:
                explicit = self._explicit_weights(patch) if patch['blend'] == ARRAY else None
                weights = region_weights(
                    patch, x0, y0, x1, y1, canvas_width=spec.width, canvas_height=spec.height, explicit=explicit
                )
                accumulator.add(rows, cols, data, weights)
            else:
                accumulator.add(rows, cols, data)
        return accumulator.result()

    def _explicit_weights(self, patch: numpy.void) -> numpy.ndarray:
        """The stored weight array of a patch (weighted canvases), checked once."""
        number, row = int(patch['fragment']), int(patch['number'])
        h5 = self._files.h5(number)
        path = self.fragment_paths[number]
        try:
            weights = h5['weights'][str(row)][()]
        except Exception as exc:  # noqa: BLE001  (missing or damaged: HDF5 errors of many types)
            raise corrupt(path, f'the weights of patch {row} cannot be read: {one_line(exc)}') from None
        if weights.shape != (int(patch['height']), int(patch['width'])):
            raise corrupt(path, f'the weights of patch {row} have shape {weights.shape}, not the patch\'s')
        identity = (number, -1 - row)
        if identity not in self._verified:
            check_patch(weights, int(patch['weights_crc32']), path, row, self.fragment_sequences[number])
            self._verified.add(identity)
        return weights

    def patch_weighting(self, i: int) -> Any:
        """The :class:`~.weighting.PatchWeighting` of row ``i`` of :attr:`patches`
        (weighted canvases; None otherwise), as a writer stores it again."""
        if self.spec.merge != 'weighted':
            return None
        patch = self.patches[i]
        window = tuple(int(patch[f]) for f in ('window_x', 'window_y', 'window_width', 'window_height'))
        if patch['blend'] == ARRAY:
            return PatchWeighting('array', 0.0, window, self._explicit_weights(patch))
        return PatchWeighting(SHAPE_NAMES[int(patch['blend'])], float(patch['blend_parameter']), window)

    def _checked_pixels(self, patch: numpy.void) -> numpy.ndarray:
        """A patch's pixels, checked against its checksum (see :mod:`.integrity`)."""
        number = int(patch['fragment'])
        path, sequence = self.fragment_paths[number], self.fragment_sequences[number]
        try:
            pixels = self._patch_pixels(patch)
        except FragmentVanished:
            # Only past MAX_OPEN_FRAGMENTS, when a closed fragment must be reopened.
            raise NotAStagingFileError(
                f'fragment {path} was removed while this read ran (a compact or gc ran beside '
                'it): run the command again'
            ) from None
        except CorruptFragmentError:
            if not path.exists():
                raise NotAStagingFileError(
                    f'fragment {path} was removed while this read ran (a compact or gc ran '
                    'beside it): run the command again'
                ) from None
            raise
        # Checked once per snapshot: band reads decode a patch once per band
        # it spans, and published fragments never change.
        identity = (number, int(patch['number']))
        if patch['crc32'] >= 0 and identity not in self._verified:
            check_patch(pixels, int(patch['crc32']), path, int(patch['number']), sequence)
            self._verified.add(identity)
        return pixels

    def _patch_pixels(self, patch: numpy.void) -> numpy.ndarray:
        """All pixels of a stored patch, (height, width, channels).

        A patch stored as one chunk (patches up to 1024 px a side: nearly all)
        is read with pread from the held descriptor at the place found when
        the index was loaded, and decoded by imagecodecs, both outside the GIL
        and outside HDF5's global lock, so the encoder threads keep running
        and no h5py File is opened per read. Larger patches, and anything
        unexpected (a dataset of another shape or type, a missing one), go
        through h5py, which also reports what is wrong with them.
        """
        fragment, number = int(patch['fragment']), int(patch['number'])
        shape = (int(patch['height']), int(patch['width']), self.spec.channels)
        try:
            if patch['chunk_offset'] >= 0:
                return self._pread_pixels(fragment, patch, shape)
            return self._h5py_pixels(fragment, number, shape)
        except (CorruptFragmentError, StagingChangedError, MemoryError, FragmentVanished):
            raise
        except Exception as exc:  # a damaged chunk: blosc, HDF5 and reshape errors alike
            raise corrupt(
                self.fragment_paths[fragment], f'patch {number} cannot be read: {one_line(exc)}'
            ) from None

    def _pread_pixels(self, fragment: int, patch: numpy.void, shape: tuple[int, int, int]) -> numpy.ndarray:
        fd = self._files.descriptor(fragment)
        size = int(patch['chunk_size'])
        raw = os.pread(fd, size, int(patch['chunk_offset']))
        if len(raw) != size:
            raise ValueError(f'its chunk ends {size - len(raw)} bytes past the end of the file')
        return decode_chunk(raw, int(patch['codec']), self.spec.numpy_dtype, shape)

    def _h5py_pixels(self, fragment: int, number: int, shape: tuple[int, int, int]) -> numpy.ndarray:
        import h5py

        h5 = self._files.h5(fragment)
        try:
            dataset_id = h5py.h5d.open(h5['patches'].id, str(number).encode())
        except KeyError:
            raise corrupt(self.fragment_paths[fragment], missing_pixels(number)) from None
        check_patch_dataset(
            dataset_id.shape, dataset_id.dtype, expected_shape=shape, spec=self.spec,
            path=self.fragment_paths[fragment], number=number,
        )
        out = numpy.empty(shape, dtype=self.spec.numpy_dtype)
        dataset_id.read(h5py.h5s.ALL, h5py.h5s.ALL, out)
        return out

    def read_canvas(self) -> numpy.ndarray:
        """The whole merged canvas (small canvases and tests only)."""
        return self.read_region(0, 0, self.spec.width, self.spec.height)

    # -- facts -----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """What ``tifwriter info`` reports about a staging file (:mod:`.summary`)."""
        return snapshot_summary(self)

    # -- lifetime --------------------------------------------------------
    def close(self) -> None:
        if self._files is not None:
            self._files.close()

    def __enter__(self) -> StagingSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[numpy.void]:
        return iter(self.patches)


_SNAPSHOT_ATTEMPTS = 20


def read_staging(path: str | os.PathLike, *, deep: bool = False) -> StagingSnapshot:
    """Open a read-only snapshot of a staging unit (``deep``: see
    :attr:`StagingSnapshot.deep`)."""
    return StagingSnapshot(path, deep=deep)
