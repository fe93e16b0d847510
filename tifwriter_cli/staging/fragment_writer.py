"""Writing one fragment: :class:`FragmentWriter` stages patches into a
temp file, checks and compresses them, and closes it with its tables and
their copy (:mod:`.fragment_tables`), ready to be published.

The layout it writes is :mod:`.fragment`'s; the rules it follows (what is
compressed, what is uniform) are here, the writer's alone.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
from pathlib import Path
from typing import Any

import numpy

from ..markers import FRAGMENT_FORMAT_NAME
from .fragment import CODEC_BLOSC_LZ4, CODEC_NONE, INDEX_DTYPE, MAX_CHUNK_SIDE, SOURCE_DTYPE_FIELDS, SourceRecord
from .h5io import GuardedFile, create_hdf5, text_attribute
from .integrity import crc32, tables_checksum
from .layout import FORMAT_VERSION, FRAGMENT_VERSION

__all__ = ['FragmentWriter']


def _blosc_options(dtype: numpy.dtype) -> dict[str, Any]:
    import hdf5plugin

    shuffle = hdf5plugin.Blosc.SHUFFLE if dtype.itemsize > 1 else hdf5plugin.Blosc.NOSHUFFLE
    return dict(hdf5plugin.Blosc(cname='lz4', clevel=5, shuffle=shuffle))


class FragmentWriter:
    """Appends patches to a new temp fragment file; :meth:`close` completes it.

    Every write goes through a :class:`~.h5io.GuardedFile`: a failed write
    (disk full) raises ``OSError`` naming the temp file from :meth:`add` or
    :meth:`close`, after which the fragment can only be discarded.
    """

    def __init__(
        self,
        path: Path,
        *,
        staging_uid: str,
        dtype: numpy.dtype,
        withdraws: list[int] | None = None,
        merge_order: int | None = None,
    ):
        self.path = path
        self._dtype = numpy.dtype(dtype)
        self._rows: list[tuple] = []
        self._sources: list[SourceRecord] = []
        self._weighting: list[tuple] = []  # rows of /weighting (weighted canvases)
        self.nbytes = 0  # raw bytes of patch pixels written
        self._file = GuardedFile(path, exclusive=True)
        try:
            self._h5 = create_hdf5(self._file)
        except BaseException:
            self._file.close()
            path.unlink()
            raise
        self._h5.attrs['format'] = text_attribute(FRAGMENT_FORMAT_NAME)
        self._h5.attrs['format_version'] = FORMAT_VERSION
        self._h5.attrs['staging_uid'] = text_attribute(staging_uid)
        self._h5.attrs['created'] = text_attribute(datetime.datetime.now(datetime.timezone.utc).isoformat())
        self._h5.attrs['writer'] = text_attribute(f'{socket.gethostname()}:{os.getpid()}')
        self._h5.attrs['fragment_version'] = FRAGMENT_VERSION
        if withdraws:
            self._h5.attrs['withdraws'] = numpy.asarray(sorted(withdraws), dtype='<i8')
        if merge_order is not None:
            self._h5.attrs['merge_order'] = int(merge_order)
        self._patches = self._h5.create_group('patches')
        self._compression = _blosc_options(self._dtype)
        self._file.check()

    def __len__(self) -> int:
        return len(self._rows)

    def add(
        self,
        x: int,
        y: int,
        patch: numpy.ndarray,
        *,
        source: SourceRecord | None = None,
        weighting: Any = None,
    ) -> None:
        """Store an already clipped (H, W, C) patch of the canvas dtype at x, y.

        A zero-sized patch with a ``source`` is a withdrawal of its key.
        ``weighting``: its :class:`~.weighting.PatchWeighting` (weighted canvases).
        """
        if weighting is not None:
            self._add_weighting(len(self._rows), weighting)
        height, width = patch.shape[:2]
        source_row = -1
        if source is not None:
            source_row = len(self._sources)
            self._sources.append(source)
        first = patch.flat[0] if patch.size else 0
        # An empty patch (a withdrawal, kept only for its source record)
        # stores no pixels: HDF5 refuses zero-sized chunks.
        if not patch.size or _is_uniform(patch, first):
            self._rows.append((x, y, width, height, 1, float(first), source_row, CODEC_NONE, -1))
            return
        number = len(self._rows)
        chunks = (
            min(height, MAX_CHUNK_SIDE),
            min(width, MAX_CHUNK_SIDE),
            patch.shape[2],
        )
        codec = CODEC_BLOSC_LZ4 if _compresses(patch) else CODEC_NONE
        self._patches.create_dataset(
            str(number),
            data=patch,
            chunks=chunks,
            **(self._compression if codec == CODEC_BLOSC_LZ4 else {}),
        )
        self._file.check()  # before the row: a failed patch is not counted as held
        self._rows.append((x, y, width, height, 0, 0.0, source_row, codec, crc32(patch)))
        self.nbytes += patch.nbytes

    def _add_weighting(self, number: int, weighting: Any) -> None:
        if weighting.weights is not None:
            if 'weights' not in self._h5:
                self._h5.create_group('weights')
            self._h5['weights'].create_dataset(str(number), data=weighting.weights, **self._compression)
            self._file.check()
        self._weighting.append(weighting.row(number))

    def close(self) -> None:
        """Write the tables, close and fsync. The file is then complete."""
        import h5py

        from .weighting import write_weighting

        write_weighting(self._h5, self._weighting)
        index = numpy.array(self._rows, dtype=INDEX_DTYPE)
        self._h5.create_dataset('index', data=index)
        source_dtype = numpy.dtype(
            [('path', h5py.string_dtype())] + SOURCE_DTYPE_FIELDS + [('placement', h5py.string_dtype())]
        )
        sources = numpy.array(self._sources, dtype=source_dtype)
        self._h5.create_dataset('sources', data=sources)
        self._h5.attrs['tables_crc32'] = tables_checksum(index, self._sources)
        self._h5.close()
        self._append_table_copy()
        self._file.sync()
        self._file.close()
        self._file.check()

    def _append_table_copy(self) -> None:
        """Append the copy of the tables that snapshots load without HDF5
        (:mod:`.fragment_tables`), built by reading the closed file back
        the HDF5 way, so both ways give the same tables. Without it (it
        could not be built) the fragment is complete all the same."""
        import h5py

        from .fragment_tables import encode_table_copy, read_hdf5_tables

        self._file.check()
        hdf5_size = os.fstat(self._file.descriptor).st_size
        try:
            with h5py.File(self.path, 'r', locking=False, rdcc_nbytes=0) as h5:
                copy = encode_table_copy(read_hdf5_tables(h5, dtype=self._dtype, channels=None), hdf5_size=hdf5_size)
        except Exception:  # noqa: BLE001  (a speed-up only: readers fall back to HDF5's tables)
            logging.getLogger(__name__).debug('no table copy for %s', self.path, exc_info=True)
            return
        self._file.append(copy)

    def discard(self) -> None:
        """Abandon the fragment: close and delete the temp file."""
        try:
            self._h5.close()
        finally:
            self._file.close()
            try:
                self.path.unlink()
            except FileNotFoundError:
                pass


#: Below this estimated ratio (compressed / raw) a patch is stored compressed.
COMPRESSIBLE_RATIO = 0.85
_SAMPLE_ROWS = 16


def _compresses(patch: numpy.ndarray) -> bool:
    """Does lz4 shrink this patch? Judged on a sample of rows spread over it
    (about 1/30 of a 512-row patch, so the test costs little)."""
    import imagecodecs

    rows = patch.shape[0]
    if rows > 2 * _SAMPLE_ROWS:
        patch = patch[:: rows // _SAMPLE_ROWS]
    sample = numpy.ascontiguousarray(patch)
    itemsize = sample.dtype.itemsize
    # Byte-transposed, as blosc's shuffle stores multi-byte values.
    sample = numpy.ascontiguousarray(sample.view(numpy.uint8).reshape(-1, itemsize).T)
    return len(imagecodecs.lz4_encode(sample)) < COMPRESSIBLE_RATIO * sample.nbytes


def _is_uniform(patch: numpy.ndarray, first: Any) -> bool:
    if patch.dtype.kind == 'f' and numpy.isnan(first):
        return bool(numpy.isnan(patch).all())
    # Cheap early exit for the common textured case before the full compare.
    flat = patch.reshape(-1)
    if flat[-1] != first or flat[flat.size // 2] != first:
        return False
    return bool((flat == first).all())
