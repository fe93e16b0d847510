"""A fragment's tables, and the copy of them its writer appends after the HDF5 data.

A snapshot needs, of every live fragment, its attributes (format, staging
uid, withdrawals, merge order), its index and source tables, the weighting
table of a weighted canvas, and the byte place of each patch's chunk. Read
through HDF5 that cost ~1.7 ms a fragment (open, seven attributes, two
tables, a chunk query per patch): 3.4 s before the first pixel for a unit
staged by 2000 jobs, one core busy, where the same data in one fragment
loads in milliseconds. So the writer, once its HDF5 file is closed and
complete, appends a **table copy** after it, and a snapshot loads a
fragment with two ``pread`` calls and no HDF5::

    [HDF5 file, as h5py closed it: hdf5_size bytes]
    [payload: u32 header length, JSON header, index rows (INDEX_DTYPE),
     chunk offsets (int64), chunk sizes (int64), stored weighting rows]
    [footer, 24 bytes: u64 payload length, u32 CRC-32 of the payload,
     u32 copy version, 8 bytes magic b'TWTABLES']

Why this is safe:

* HDF5 ignores bytes past its end of allocation when reading (every
  tifwriter, older ones included, and h5py, h5dump, HDFView read the file as
  before), and truncates them when a file opened for writing is closed:
  any edit through HDF5 removes the copy, and the reader falls back to
  HDF5's tables.
* The copy is written from the file as a reader would read it (the writer
  reopens it read-only and loads its tables the HDF5 way), so both ways give
  the same tables; ``verify`` loads both and refuses a fragment where they
  differ.
* A copy that is missing (fragments of earlier versions), truncated, of an
  unknown version, or fails its CRC is ignored: the fragment is loaded
  through HDF5, where real damage is reported as before. A flipped byte in
  HDF5's own index, which the copy makes unused, is still found: the copy
  holds the place and CRC-32 of that dataset's bytes, read back at load.
* Patch pixels are read from the places it gives and checked against each
  patch's CRC-32, as before.
"""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from typing import Any

import numpy

from .fragment import INDEX_DTYPE, SourceRecord, chunk_locations, normalised_index, read_dataset, read_sources
from .h5io import attribute_text, read_attribute
from .integrity import crc32
from .weighting import WEIGHTING_DTYPE

__all__ = ['COPY_VERSION', 'DAMAGED_COPY', 'FragmentTables', 'encode_table_copy', 'read_hdf5_tables', 'read_table_copy']

MAGIC = b'TWTABLES'
#: Version of the table copy's layout (not of the fragment format).
COPY_VERSION = 1
_FOOTER = struct.Struct('<QII8s')
_HEADER_LENGTH = struct.Struct('<I')
#: A table copy larger than this is not trusted (and not read into memory).
_MAX_PAYLOAD = 1 << 30
#: The root attributes a snapshot reads (besides withdraws, merge_order and the checksums).
ATTRIBUTES = ('format', 'format_version', 'staging_uid', 'fragment_version')


@dataclasses.dataclass
class FragmentTables:
    """Everything a snapshot loads of one fragment, from HDF5 or from its copy."""

    #: The root attributes of ATTRIBUTES as stored (None where absent).
    attributes: dict[str, Any]
    withdraws: list[int]
    merge_order: int | None
    #: The index as stored (older fragments lack columns) and as INDEX_DTYPE.
    stored_index: numpy.ndarray
    index: numpy.ndarray
    sources: list[SourceRecord]
    tables_crc32: int | None
    chunk_offsets: numpy.ndarray
    chunk_sizes: numpy.ndarray
    #: The stored /weighting rows (weighted canvases) and their CRC-32, or None.
    weighting: numpy.ndarray | None
    weighting_crc32: int | None
    #: (byte offset, size, CRC-32) of HDF5's /index data (a contiguous
    #: dataset), so a flipped byte there is found without HDF5; or None.
    index_extent: tuple[int, int, int] | None
    #: True when loaded from the table copy.
    from_copy: bool = False

    @property
    def stored_fields(self) -> tuple[str, ...]:
        return tuple(self.stored_index.dtype.names or ())

    def plain_attributes(self) -> dict[str, Any]:
        return {name: _plain(self.attributes.get(name)) for name in ATTRIBUTES}

    def same_tables(self, other: FragmentTables) -> bool:
        """Whether two loads of one fragment (its copy, HDF5) agree."""
        return (
            self.plain_attributes() == other.plain_attributes()
            and self.withdraws == other.withdraws
            and self.merge_order == other.merge_order
            and self.stored_index.dtype == other.stored_index.dtype
            and self.stored_index.tobytes() == other.stored_index.tobytes()
            and self.sources == other.sources
            and self.tables_crc32 == other.tables_crc32
            and numpy.array_equal(self.chunk_offsets, other.chunk_offsets)
            and numpy.array_equal(self.chunk_sizes, other.chunk_sizes)
            and _same_optional(self.weighting, other.weighting)
            and self.weighting_crc32 == other.weighting_crc32
        )


def _same_optional(a: numpy.ndarray | None, b: numpy.ndarray | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _as_int(value: Any) -> int | None:
    return None if value is None else int(numpy.asarray(value).reshape(()))


# -- through HDF5 -------------------------------------------------------------


def read_hdf5_tables(
    h5: Any, *, dtype: numpy.dtype, channels: int | None, attributes: dict[str, Any] | None = None
) -> FragmentTables:
    """The tables of an open fragment, read through HDF5 (unchecked: see
    :func:`.validate.load_fragment_tables`). ``channels``: the canvas's, or
    None to accept each patch dataset's own (the writer's reading back);
    ``attributes``: those of ATTRIBUTES, if already read."""
    import h5py

    if attributes is None:
        attributes = {name: read_attribute(h5, name) for name in ATTRIBUTES}
    withdraws = [int(n) for n in numpy.atleast_1d(read_attribute(h5, 'withdraws', []))]
    stored = read_dataset(h5, 'index')
    index = normalised_index(stored)
    sources = read_sources(h5)
    offsets, sizes = chunk_locations(h5, index, dtype=dtype, channels=channels)
    weighting = read_dataset(h5, 'weighting') if h5.id.links.exists(b'weighting') else None
    extent = None
    dataset_id = h5py.h5d.open(h5.id, b'index')
    start, size = dataset_id.get_offset(), dataset_id.get_storage_size()
    if start is not None and size == stored.nbytes and size:
        extent = (int(start), int(size), crc32(numpy.ascontiguousarray(stored)))
    return FragmentTables(
        attributes=attributes,
        withdraws=withdraws,
        merge_order=_as_int(read_attribute(h5, 'merge_order')),
        stored_index=stored,
        index=index,
        sources=sources,
        tables_crc32=_as_int(read_attribute(h5, 'tables_crc32')),
        chunk_offsets=offsets,
        chunk_sizes=sizes,
        weighting=weighting,
        weighting_crc32=_as_int(read_attribute(h5, 'weighting_crc32')),
        index_extent=extent,
    )


def _plain(value: Any) -> Any:
    """An attribute value as JSON can carry it (text, int, None; else repr)."""
    if value is None:
        return None
    if isinstance(value, bytes | str):
        return attribute_text(value)
    array = numpy.asarray(value)
    if array.shape == () and array.dtype.kind in 'iub':
        return int(array)
    if array.shape == () and array.dtype.kind == 'S':
        return attribute_text(array[()])
    # Anything else (an array, a float): kept as its repr, so that
    # check_format_version refuses it with the value shown.
    return {'unreadable': repr(array.tolist())}


# -- the copy -----------------------------------------------------------------


def encode_table_copy(tables: FragmentTables, *, hdf5_size: int) -> bytes:
    """The bytes to append to a complete fragment of ``hdf5_size`` bytes."""
    if tables.stored_index.dtype != INDEX_DTYPE:
        raise ValueError('a table copy is written for current fragments only')
    header = {
        'hdf5_size': int(hdf5_size),
        'attributes': tables.plain_attributes(),
        'withdraws': tables.withdraws,
        'merge_order': tables.merge_order,
        'sources': [list(record) for record in tables.sources],
        'tables_crc32': tables.tables_crc32,
        'rows': len(tables.index),
        'weighting_rows': None if tables.weighting is None else len(tables.weighting),
        'weighting_crc32': tables.weighting_crc32,
        'index_extent': None if tables.index_extent is None else list(tables.index_extent),
    }
    text = json.dumps(header, separators=(',', ':')).encode('ascii')  # surrogates escaped
    parts = [
        _HEADER_LENGTH.pack(len(text)),
        text,
        numpy.ascontiguousarray(tables.index).tobytes(),
        tables.chunk_offsets.astype('<i8').tobytes(),
        tables.chunk_sizes.astype('<i8').tobytes(),
    ]
    if tables.weighting is not None:
        parts.append(numpy.ascontiguousarray(tables.weighting, dtype=WEIGHTING_DTYPE).tobytes())
    payload = b''.join(parts)
    return payload + _FOOTER.pack(len(payload), crc32(payload), COPY_VERSION, MAGIC)


#: What :func:`read_table_copy` returns for a copy that is there but cannot
#: be trusted (fails its CRC, or its header does not fit the file).
DAMAGED_COPY = 'damaged'


def read_table_copy(fd: int) -> FragmentTables | str | None:
    """The table copy at the end of the fragment open as ``fd``; None where
    there is none (fragments of earlier versions, edited through HDF5,
    truncated) and :data:`DAMAGED_COPY` where one ends the file but cannot
    be trusted. Either way the caller loads the tables through HDF5."""
    try:
        size = os.fstat(fd).st_size
        if size < _FOOTER.size:
            return None
        footer = os.pread(fd, _FOOTER.size, size - _FOOTER.size)
        length, crc, version, magic = _FOOTER.unpack(footer)
        if magic != MAGIC:
            return None
        if version != COPY_VERSION:
            return None  # a later tifwriter's layout: HDF5's tables are the same
        if length > min(_MAX_PAYLOAD, size - _FOOTER.size):
            return DAMAGED_COPY
        payload = os.pread(fd, length, size - _FOOTER.size - length)
        if len(payload) != length or crc32(payload) != crc:
            return DAMAGED_COPY
        return _decode(payload, hdf5_size=size - _FOOTER.size - length)
    except (OSError, ValueError, KeyError, TypeError, struct.error, UnicodeDecodeError):
        return DAMAGED_COPY


def _decode(payload: bytes, *, hdf5_size: int) -> FragmentTables:
    (text_length,) = _HEADER_LENGTH.unpack_from(payload)
    start = _HEADER_LENGTH.size
    header = json.loads(payload[start : start + text_length])
    if header['hdf5_size'] != hdf5_size:
        raise ValueError('the copy does not start where its HDF5 file ends')
    position = start + text_length
    rows = int(header['rows'])

    def take(dtype: Any, count: int) -> numpy.ndarray:
        nonlocal position
        dtype = numpy.dtype(dtype)
        end = position + dtype.itemsize * count
        if count < 0 or end > len(payload):
            raise ValueError('table copy shorter than its header says')
        array = numpy.frombuffer(payload, dtype=dtype, count=count, offset=position).copy()
        position = end
        return array

    index = take(INDEX_DTYPE, rows)
    offsets = take('<i8', rows).astype(numpy.int64)
    sizes = take('<i8', rows).astype(numpy.int64)
    weighting_rows = header['weighting_rows']
    weighting = None if weighting_rows is None else take(WEIGHTING_DTYPE, int(weighting_rows))
    if position != len(payload):
        raise ValueError('table copy longer than its header says')
    extent = header['index_extent']
    return FragmentTables(
        attributes=dict(header['attributes']),
        withdraws=[int(n) for n in header['withdraws']],
        merge_order=header['merge_order'],
        stored_index=index,
        index=index,
        sources=[(str(k), int(s), int(m), str(p)) for k, s, m, p in header['sources']],
        tables_crc32=header['tables_crc32'],
        chunk_offsets=offsets,
        chunk_sizes=sizes,
        weighting=weighting,
        weighting_crc32=header['weighting_crc32'],
        index_extent=None if extent is None else (int(extent[0]), int(extent[1]), int(extent[2])),
        from_copy=True,
    )
