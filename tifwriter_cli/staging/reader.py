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
import contextlib
import datetime
import io
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
from .canvasfile import StagingHeader, read_canvas
from .fragment import (
    INDEX_DTYPE,
    chunk_locations,
    decode_chunk,
    fragment_merge_order,
    fragment_withdraws,
)
from .h5io import file_identity, read_attribute
from .integrity import check_patch, corrupt
from .layout import fragments_dir, published_fragments, stale_temp_fragments
from .merge import new_accumulator
from .validate import check_patch_dataset, load_fragment_tables, missing_pixels

__all__ = ['StagingSnapshot', 'read_staging', 'PATCH_DTYPE']

#: The fragment index columns a snapshot's patch table carries (all but the
#: fragment-local ``source`` row): the index format is defined once, in
#: :data:`.fragment.INDEX_DTYPE`.
INDEX_FIELDS = tuple(name for name in INDEX_DTYPE.names if name != 'source')
#: One row per staged patch of the snapshot, in publish (= merge) order.
PATCH_DTYPE = numpy.dtype(
    [
        ('fragment', '<i4'),
        ('number', '<i8'),  # the patch's row in its fragment's index
        *((name, INDEX_DTYPE[name]) for name in INDEX_FIELDS),
        # Where the patch's single chunk lies in its fragment, found when the
        # index is loaded; -1: read it through h5py (see _patch_pixels).
        ('chunk_offset', '<i8'),
        ('chunk_size', '<i8'),
    ]
)

#: Side of the grid cells that bucket patches for region queries.
GRID_CELL = 1024
#: Fragments kept open as h5py Files at once, for the few patches read
#: through h5py (larger than one chunk); nearly all are read with pread.
MAX_OPEN_FRAGMENTS = 128
#: HDF5 chunk cache per open fragment. Small on purpose: patches are mostly
#: read once (the default 1 MiB per file made a 100k x 100k preview grow to
#: 277 MB).
CHUNK_CACHE_BYTES = 256 * 1024
#: At most this many fragment descriptors are held (a snapshot holds one per
#: live fragment, so fragments compacted or replaced under it are still read
#: as they were); past it, or past half the process's open-file limit, the
#: least recently read are closed and reopened by name (and checked to be the
#: same file).
MAX_HELD_DESCRIPTORS = 16384


class StagingSnapshot:
    """Read-only view of a staging unit as of when it was opened."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.header: StagingHeader = read_canvas(self.path)
        self.spec = self.header.spec
        self.fragments_dir = fragments_dir(self.path)
        if not self.fragments_dir.is_dir():
            raise NotAStagingFileError(
                f'{self.path} has no fragments directory {self.fragments_dir}'
            )
        self.opened_at = datetime.datetime.now(datetime.timezone.utc)
        self._open: collections.OrderedDict[int, Any] = collections.OrderedDict()
        self._descriptors: collections.OrderedDict[int, int] = collections.OrderedDict()
        self._verified: set[tuple[int, int]] = set()  # (fragment, row) whose checksum matched
        self._file_objects: dict[int, io.FileIO] = {}  # under the h5py Files in _open
        self._max_descriptors = MAX_HELD_DESCRIPTORS
        # A fragment may vanish between listing and opening: `compact`
        # publishes its replacement first, then deletes it. Listing again
        # then sees the replacement.
        for attempt in range(_SNAPSHOT_ATTEMPTS):
            try:
                self._take_snapshot()
                break
            except _FragmentVanished:
                self.close()
                if attempt == _SNAPSHOT_ATTEMPTS - 1:
                    raise NotAStagingFileError(
                        f'{self.fragments_dir}: fragments keep vanishing while being opened'
                    ) from None

    def _take_snapshot(self) -> None:
        published = published_fragments(self.fragments_dir)
        self._max_descriptors = _descriptor_budget(len(published))
        self.fragment_paths: list[Path] = [p for _, p in published]
        self.fragment_sequences: list[int] = [n for n, _ in published]
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
        #: (st_dev, st_ino, st_size, st_mtime_ns) of each fragment as first
        #: opened: a reopen must find the same file (see _same_file).
        self._identities: dict[int, tuple[int, int, int, int]] = {}
        self.patches = self._load_index()
        self._grid = self._build_grid()

    # -- loading ---------------------------------------------------------
    def _load_index(self) -> numpy.ndarray:
        # Newest first: which fragments later ones withdraw (unstage
        # --fragment, compact). A withdrawn fragment is never opened, so a
        # damaged one stops blocking reads once it is unstaged. Each live
        # fragment is opened once, its tables read and checked.
        withdrawn: set[int] = set()
        folded: set[int] = set()  # withdrawn by live folds (compacted fragments)
        loaded: list[tuple] = []  # (merge order, number, index, sources, chunk locations)
        for number in reversed(range(len(self.fragment_paths))):
            sequence = self.fragment_sequences[number]
            if sequence in withdrawn:
                continue
            path = self.fragment_paths[number]
            # Opened by name once, to load its tables and the place of each
            # patch's chunk, then closed: pixels are read from the descriptor
            # with pread, so a read costs the same for 1 or 2000 fragments
            # and no HDF5 caches stay allocated per fragment.
            h5 = self._open_by_name(number)
            try:
                tables_read = load_fragment_tables(h5, path=path, spec=self.spec, staging_uid=self.header.uid)
                if tables_read is None:  # another staging unit's (logged)
                    self.skipped_fragments.append(path)
                    continue
                index, sources = tables_read
                withdraws = {n for n in fragment_withdraws(h5) if n < sequence}
                is_fold = read_attribute(h5, 'merge_order') is not None
                if is_fold and withdraws & folded:
                    # Two compactions ran at once and folded the same fragments:
                    # the one published later wins, this one is ignored.
                    withdrawn.add(sequence)
                    continue
                withdrawn |= withdraws
                if is_fold:
                    folded |= withdraws
                try:
                    # Held from now on: the file may be deleted (compacted) while we read.
                    self._descriptor(number)
                except FileNotFoundError:
                    raise _FragmentVanished(path) from None
                chunks = chunk_locations(h5, index, self.spec)
                loaded.append((fragment_merge_order(h5, sequence), number, index, sources, chunks))
            finally:
                h5.close()
        self.withdrawn_fragments = sorted(withdrawn & set(self.fragment_sequences))
        loaded.sort(key=lambda item: (item[0], self.fragment_sequences[item[1]]))
        tables = []
        sourced_rows = []  # per table: rows that carry a key
        # key -> (table number, row, record) of its LAST staging in merge order
        last_staged: dict[str, tuple[int, int, tuple[str, int, int, str]]] = {}
        for _, number, index, sources, (chunk_offsets, chunk_sizes) in loaded:
            table = numpy.zeros(len(index), dtype=PATCH_DTYPE)
            table['fragment'] = number
            table['number'] = numpy.arange(len(index))
            for field in INDEX_FIELDS:
                table[field] = index[field]
            table['chunk_offset'] = chunk_offsets
            table['chunk_size'] = chunk_sizes
            sourced_rows.append(numpy.flatnonzero(index['source'] >= 0))
            for row_number in sourced_rows[-1]:
                record = sources[int(index['source'][row_number])]
                if record[0] in last_staged:
                    self.duplicate_rows += 1
                last_staged[record[0]] = (len(tables), int(row_number), record)
            tables.append(table)
        if not tables:
            return numpy.zeros(0, dtype=PATCH_DTYPE)
        # One key, one contribution (docs/staging-format.md): only the last
        # record of a key counts, under every merge rule, so a retried job,
        # a rewritten file or a corrected re-run replaces what came before;
        # a last record of zero size is a withdrawal (nothing landed).
        keep = [(t['width'] > 0) & (t['height'] > 0) for t in tables]
        for table_number, rows in enumerate(sourced_rows):
            keep[table_number][rows] = False
        current_rows: dict[tuple[int, int], tuple[str, int, int, str]] = {}
        for key, (table_number, row_number, record) in last_staged.items():
            table = tables[table_number]
            if table['width'][row_number] > 0 and table['height'][row_number] > 0:
                keep[table_number][row_number] = True
                self.contributions[key] = record
                current_rows[(table_number, row_number)] = record
        self.sources = {record[:3] for record in self.contributions.values()}
        # Row in self.patches -> the key record it is the current staging of.
        offset = 0
        for table_number, k in enumerate(keep):
            for position, row_number in enumerate(numpy.flatnonzero(k)):
                record = current_rows.get((table_number, int(row_number)))
                if record is not None:
                    self.patch_keys[offset + position] = record
            offset += int(k.sum())
        return numpy.concatenate([t[k] for t, k in zip(tables, keep, strict=True)])

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

    def _open_by_name(self, number: int) -> Any:
        """The fragment as an h5py File opened by its name (to load its tables)."""
        import h5py
        import hdf5plugin  # noqa: F401  (registers the blosc filter)

        path = self.fragment_paths[number]
        try:
            # No chunk cache: the tables are read once, patch chunks never.
            h5 = h5py.File(path, 'r', locking=False, rdcc_nbytes=0)
        except OSError as exc:
            if not path.exists():
                raise _FragmentVanished(path) from None
            raise corrupt(path, f'it cannot be opened: {one_line(exc)}', self.fragment_sequences[number]) from None
        try:
            self._same_file(number, os.fstat(h5.id.get_vfd_handle()))
        except BaseException:
            h5.close()
            raise
        return h5

    def _fragment(self, number: int) -> Any:
        """The fragment as an h5py File over the held descriptor (for the
        patches pread cannot read), so it is the file the snapshot took even
        if its name was deleted or taken since."""
        import h5py
        import hdf5plugin  # noqa: F401  (registers the blosc filter)

        h5 = self._open.get(number)
        if h5 is not None:
            self._open.move_to_end(number)
            return h5
        path = self.fragment_paths[number]
        try:
            fd = self._descriptor(number)
        except FileNotFoundError:
            raise _FragmentVanished(path) from None
        file_object = io.FileIO(os.dup(fd), 'rb', closefd=True)
        try:
            h5 = h5py.File(file_object, 'r', rdcc_nbytes=CHUNK_CACHE_BYTES)
        except OSError as exc:
            file_object.close()
            raise corrupt(path, f'it cannot be opened: {one_line(exc)}', self.fragment_sequences[number]) from None
        self._open[number] = h5
        self._file_objects[number] = file_object
        if len(self._open) > MAX_OPEN_FRAGMENTS:
            self._close_fragment(next(iter(self._open)))
        return h5

    def _close_fragment(self, number: int) -> None:
        self._open.pop(number).close()
        self._file_objects.pop(number).close()

    def _same_file(self, number: int, st: os.stat_result) -> None:
        """A snapshot holds what it took: a fragment reopened by name (open
        files are limited) must be the file first read, not one that took
        its name since (``init --overwrite`` and new writes)."""
        identity = file_identity(st)
        first = self._identities.setdefault(number, identity)
        if first != identity:
            raise StagingChangedError(
                f'fragment {self.fragment_paths[number]} was replaced while this snapshot of '
                f'{self.path} was being read (init --overwrite?): stopped rather than mix in pixels of another file'
            )

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
        candidates = numpy.unique(numpy.concatenate(found))
        p = self.patches[candidates]
        hit = (
            (p['x'] < x + width)
            & (p['x'] + p['width'] > x)
            & (p['y'] < y + height)
            & (p['y'] + p['height'] > y)
        )
        return candidates[hit]

    def region_is_fill(self, x: int, y: int, width: int, height: int) -> bool:
        """Whether no staged patch overlaps the region: :meth:`read_region`
        would return only the fill there (finalize then builds no pixels)."""
        return not len(self.patches_overlapping(x, y, width, height))

    def read_region(self, x: int, y: int, width: int, height: int) -> numpy.ndarray:
        """Merged canvas pixels of a region, shape (height, width, channels).

        The region may reach past the canvas; pixels outside it get the fill.
        """
        spec = self.spec
        dtype = spec.numpy_dtype
        accumulator = new_accumulator(spec.merge, (height, width, spec.channels), dtype, spec.fill)
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
            accumulator.add(rows, cols, data)
        return accumulator.result()

    def _checked_pixels(self, patch: numpy.void) -> numpy.ndarray:
        """A patch's pixels, checked against its checksum (see :mod:`.integrity`)."""
        number = int(patch['fragment'])
        path, sequence = self.fragment_paths[number], self.fragment_sequences[number]
        try:
            pixels = self._patch_pixels(patch)
        except _FragmentVanished:
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
        except (CorruptFragmentError, StagingChangedError, MemoryError, _FragmentVanished):
            raise
        except Exception as exc:  # a damaged chunk: blosc, HDF5 and reshape errors alike
            raise corrupt(
                self.fragment_paths[fragment], f'patch {number} cannot be read: {one_line(exc)}'
            ) from None

    def _pread_pixels(self, fragment: int, patch: numpy.void, shape: tuple[int, int, int]) -> numpy.ndarray:
        try:
            fd = self._descriptor(fragment)
        except FileNotFoundError:
            raise _FragmentVanished(self.fragment_paths[fragment]) from None
        size = int(patch['chunk_size'])
        raw = os.pread(fd, size, int(patch['chunk_offset']))
        if len(raw) != size:
            raise ValueError(f'its chunk ends {size - len(raw)} bytes past the end of the file')
        return decode_chunk(raw, int(patch['codec']), self.spec.numpy_dtype, shape)

    def _h5py_pixels(self, fragment: int, number: int, shape: tuple[int, int, int]) -> numpy.ndarray:
        import h5py

        h5 = self._fragment(fragment)
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

    def _descriptor(self, fragment: int) -> int:
        fd = self._descriptors.get(fragment)
        if fd is None:
            if len(self._descriptors) >= self._max_descriptors:
                _, oldest = self._descriptors.popitem(last=False)
                os.close(oldest)
            fd = os.open(self.fragment_paths[fragment], os.O_RDONLY)
            try:
                self._same_file(fragment, os.fstat(fd))
            except BaseException:
                os.close(fd)
                raise
            self._descriptors[fragment] = fd
        else:
            self._descriptors.move_to_end(fragment)
        return fd

    def read_canvas(self) -> numpy.ndarray:
        """The whole merged canvas (small canvases and tests only)."""
        return self.read_region(0, 0, self.spec.width, self.spec.height)

    # -- facts -----------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """What ``tifwriter info`` reports about a staging file."""
        spec = self.spec
        p = self.patches
        sizes = []
        last_write = None
        for path in self.fragment_paths:
            with contextlib.suppress(FileNotFoundError):
                st = path.stat()
                sizes.append(st.st_size)
                last_write = max(last_write or 0.0, st.st_mtime)
        written = _union_area(p)
        bbox = None
        if len(p):
            bbox = {
                'x': int(p['x'].min()),
                'y': int(p['y'].min()),
                'x_end': int((p['x'] + p['width']).max()),
                'y_end': int((p['y'] + p['height']).max()),
            }
        return {
            'path': str(self.path),
            'format_version': self.header.format_version,
            'created': self.header.created,
            'tool': self.header.tool,
            # The same key as a TIFF's report (tifwriter_cli.tiff.inspect).
            'spacing_um': [spec.spacing_x, spec.spacing_y] if spec.spacing_x is not None else None,
            'canvas': {
                'width': spec.width,
                'height': spec.height,
                'channels': spec.channels,
                'dtype': spec.dtype,
                'tile_size': spec.tile_size,
                'fill': spec.fill,
                'merge': spec.merge,
                'kind': spec.kind,
                'slide_downsample': spec.slide_downsample,
            },
            'fragments': {
                'count': len(self.fragment_paths),
                'bytes': int(sum(sizes)),
                'unpublished_temp_files': len(stale_temp_fragments(self.fragments_dir)),
                'withdrawn': len(self.withdrawn_fragments),
                # Fragments of another staging unit (copied in, or a stale writer's), skipped.
                'foreign': [str(path) for path in self.skipped_fragments],
            },
            'patches': int(len(p)),
            'uniform_patches': int(p['uniform'].sum()) if len(p) else 0,
            'source_files': len(self.sources),
            'duplicate_source_rows_ignored': self.duplicate_rows,
            'written_pixels': int(written),
            'written_percent': 100.0 * written / (spec.width * spec.height),
            'bbox': bbox,
            'last_write': (
                datetime.datetime.fromtimestamp(last_write, datetime.timezone.utc).isoformat(
                    timespec='seconds'
                )
                if last_write
                else None
            ),
        }

    # -- lifetime --------------------------------------------------------
    def close(self) -> None:
        while self._descriptors:
            _, fd = self._descriptors.popitem()
            os.close(fd)
        while self._open:
            self._close_fragment(next(iter(self._open)))

    def __enter__(self) -> StagingSnapshot:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[numpy.void]:
        return iter(self.patches)


def _descriptor_budget(fragments: int) -> int:
    """How many fragment descriptors a snapshot of ``fragments`` may hold:
    all of them if the open-file limit allows (raising the soft limit up to
    the hard one, as a process holding many files should), within
    :data:`MAX_HELD_DESCRIPTORS`, leaving half the limit to the rest."""
    wanted = min(MAX_HELD_DESCRIPTORS, fragments)
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and soft < 2 * wanted + 256:
            target = 2 * wanted + 256 if hard == resource.RLIM_INFINITY else min(hard, 2 * wanted + 256)
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
                soft = target
        if soft == resource.RLIM_INFINITY:
            return max(wanted, 1)
        return max(1, min(wanted, soft // 2))
    except ImportError:  # pragma: no cover - not on POSIX
        return max(1, min(wanted, 128))


class _FragmentVanished(Exception):
    """A listed fragment was deleted before it was opened (compacted)."""


_SNAPSHOT_ATTEMPTS = 20


def read_staging(path: str | os.PathLike) -> StagingSnapshot:
    """Open a read-only snapshot of a staging unit."""
    return StagingSnapshot(path)


def _union_area(p: numpy.ndarray) -> int:
    """Exact area covered by the union of the patch rectangles."""
    if not len(p):
        return 0
    xs = numpy.unique(numpy.concatenate([p['x'], p['x'] + p['width']]))
    ys = numpy.unique(numpy.concatenate([p['y'], p['y'] + p['height']]))
    if len(xs) * len(ys) > 50_000_000:
        # Too many distinct edges for an exact grid: sweep row bands instead.
        return _union_area_sweep(p, ys)
    covered = numpy.zeros((len(ys) - 1, len(xs) - 1), dtype=bool)
    ix0 = numpy.searchsorted(xs, p['x'])
    ix1 = numpy.searchsorted(xs, p['x'] + p['width'])
    iy0 = numpy.searchsorted(ys, p['y'])
    iy1 = numpy.searchsorted(ys, p['y'] + p['height'])
    for a, b, c, d in zip(iy0, iy1, ix0, ix1, strict=True):
        covered[a:b, c:d] = True
    areas = numpy.outer(numpy.diff(ys), numpy.diff(xs))
    return int(areas[covered].sum())


def _union_area_sweep(p: numpy.ndarray, ys: numpy.ndarray) -> int:
    total = 0
    x0, x1 = p['x'], p['x'] + p['width']
    y0, y1 = p['y'], p['y'] + p['height']
    for top, bottom in zip(ys[:-1], ys[1:], strict=True):
        active = (y0 <= top) & (y1 >= bottom)
        if not active.any():
            continue
        order = numpy.argsort(x0[active])
        starts, ends = x0[active][order], x1[active][order]
        length, cur_start, cur_end = 0, starts[0], ends[0]
        for s, e in zip(starts[1:], ends[1:], strict=True):
            if s > cur_end:
                length += cur_end - cur_start
                cur_start, cur_end = s, e
            else:
                cur_end = max(cur_end, e)
        length += cur_end - cur_start
        total += int(length) * int(bottom - top)
    return total
