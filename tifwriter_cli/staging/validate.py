"""Checks a reader makes before trusting a published fragment.

A fragment is a file on disk: it may be damaged (a flipped bit, a truncated
copy), hand-edited, copied in from another staging unit, or written by a
future tifwriter. Trusting its index put uninitialised memory into a TIFF
(a patch dataset smaller than its index row), converted a float64 dataset
silently, and raised IndexError, KeyError or MemoryError from deep inside
finalize. So every index row is checked against the canvas and against the
dataset it names, and anything inconsistent is refused with one line naming
the fragment and the remedy (:func:`.integrity.corrupt`).

* :func:`foreign_fragment_reason`: a fragment of another staging unit (a
  stale writer publishing after ``init --overwrite``) is not damage; the
  reader skips it with a warning instead of refusing the whole unit.
* :func:`check_fragment_index`: the vectorised checks of a whole index, made
  once when a snapshot loads it.
* :func:`check_patch_dataset`: shape and pixel type of one patch dataset,
  made when its pixels are read (the dataset is opened then anyway, so the
  snapshot's load time stays one index read per fragment).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy

from ..errors import CorruptFragmentError, one_line
from ..markers import FRAGMENT_FORMAT_NAME
from ..spec import CanvasSpec
from .canvasfile import check_format_version
from .fragment import INDEX_DTYPE
from .fragment_tables import ATTRIBUTES, FragmentTables, read_hdf5_tables
from .h5io import attribute_text, read_attribute
from .integrity import check_tables_checksum, corrupt, crc32

__all__ = [
    'accept_table_copy',
    'check_fragment_index',
    'check_fragment_indexes',
    'check_patch_dataset',
    'foreign_fragment_reason',
    'load_fragment_tables',
]

#: Index columns every fragment has (``codec`` came later; its absence means blosc).
REQUIRED_FIELDS = ('x', 'y', 'width', 'height', 'uniform', 'value', 'source')


def foreign_fragment_reason(attrs: dict[str, Any], *, path: Path, staging_uid: str) -> str | None:
    """Why the fragment at ``path``, of root attributes ``attrs``, is not one
    of this staging unit, or None.

    Raises for a file that is not a fragment of a format this tifwriter reads.
    """
    fmt = attribute_text(attrs.get('format'))
    if fmt != FRAGMENT_FORMAT_NAME:
        raise CorruptFragmentError(
            f'fragment {path} is not a tifwriter fragment (format {fmt!r}); '
            'remove it from the fragments directory'
        )
    check_format_version(attrs.get('format_version'), what=f'fragment {path} has fragment format')
    uid = attribute_text(attrs.get('staging_uid'))
    if uid != staging_uid:
        return f'it belongs to another staging file (uid {uid}, this one is {staging_uid})'
    return None


def check_fragment_index(
    stored_fields: tuple[str, ...] | None,
    index: numpy.ndarray,
    n_sources: int,
    patch_names: set[str] | None,
    *,
    spec: CanvasSpec,
    path: Path,
) -> None:
    """Refuse a fragment whose index rows do not fit the canvas or its contents.

    ``stored_fields``: the column names of the stored index table;
    ``index``: it, as :data:`~.fragment.INDEX_DTYPE`; ``patch_names``: the
    dataset names under ``/patches``, or None to leave their presence to
    the read (listing them costs as much as reading the index).
    """
    _check_table_shape(stored_fields, index, path=path)
    if len(index):
        for broken, why in _row_rules(index, n_sources, spec):
            hits = numpy.flatnonzero(broken)
            if len(hits):
                raise corrupt(path, why(int(hits[0])))
    if patch_names is not None:
        for row in numpy.flatnonzero(index['uniform'] != 1):
            if str(int(row)) not in patch_names:
                raise corrupt(path, missing_pixels(int(row)))


def check_fragment_indexes(items: Sequence[tuple[tuple[str, ...] | None, numpy.ndarray, int, Path]], *, spec: CanvasSpec) -> None:
    """:func:`check_fragment_index` of many fragments' (stored fields, index,
    source count, path), in one vectorised pass over all their rows: a
    snapshot of 2000 fragments of a few rows each paid numpy's per-call cost
    2000 times (a third of its load). Only a fragment that pass finds a
    broken row in is checked again alone, for the message naming the row."""
    for stored_fields, index, _, path in items:
        _check_table_shape(stored_fields, index, path=path)
    sizes = [len(index) for _, index, _, _ in items]
    if not sum(sizes):
        return
    rows = numpy.empty(sum(sizes), INDEX_DTYPE)
    n_sources = numpy.empty(len(rows), numpy.int64)
    owner = numpy.repeat(numpy.arange(len(items)), sizes)
    start = 0
    for (_, index, count, _), size in zip(items, sizes, strict=True):
        rows[start : start + size] = index
        n_sources[start : start + size] = count
        start += size
    broken = numpy.zeros(len(rows), bool)
    for rule, _ in _row_rules(rows, n_sources, spec):
        broken |= rule
    for item in dict.fromkeys(owner[broken].tolist()):
        stored_fields, index, count, path = items[item]
        check_fragment_index(stored_fields, index, count, None, spec=spec, path=path)


def _check_table_shape(stored_fields: tuple[str, ...] | None, index: numpy.ndarray, *, path: Path) -> None:
    missing = [f for f in REQUIRED_FIELDS if f not in (stored_fields or ())]
    if missing:
        raise corrupt(path, f'its index lacks the column(s) {", ".join(missing)}')
    if index.ndim != 1:
        raise corrupt(path, f'its index has shape {index.shape}, not a table')


def _row_rules(index: numpy.ndarray, n_sources: Any, spec: CanvasSpec) -> list[tuple[numpy.ndarray, Any]]:
    """The rules every index row keeps, in the order they are reported: (the
    rows breaking it, the message for a row). ``n_sources``: the fragment's
    source count, or one per row (rows of many fragments)."""
    x, y, w, h = (index[f] for f in ('x', 'y', 'width', 'height'))
    uniform = index['uniform'] == 1
    empty = (w == 0) | (h == 0)
    source = index['source']
    with numpy.errstate(invalid='ignore'):
        unrepresentable = uniform & ~empty & ~_representable(index['value'], spec.numpy_dtype)
    return [
        (
            (w < 0) | (h < 0) | (x < 0) | (y < 0) | (x > spec.width - w) | (y > spec.height - h),
            lambda row: (
                f'index row {row} places a {int(w[row])} x {int(h[row])} patch at x={int(x[row])}, '
                f'y={int(y[row])}, outside the {spec.width} x {spec.height} canvas'
            ),
        ),
        (
            (index['uniform'] > 1) | (index['codec'] > 1),  # both unsigned
            lambda row: f'index row {row} has an unknown uniform flag or codec',
        ),
        (
            (source < -1) | (source >= n_sources),
            lambda row: (
                f'index row {row} names source record {int(source[row])}, '
                f'but the fragment has {int(numpy.broadcast_to(n_sources, source.shape)[row])}'
            ),
        ),
        (empty & ~uniform, lambda row: f'index row {row} is an empty patch with pixel data'),
        (
            unrepresentable,
            lambda row: (
                f'index row {row} has the uniform value {float(index["value"][row])!r}, '
                f'which a {spec.dtype} canvas cannot hold'
            ),
        ),
    ]


def missing_pixels(number: int) -> str:
    return f'the pixels of patch {number} (dataset /patches/{number}) are missing'


def _representable(values: numpy.ndarray, dtype: numpy.dtype) -> numpy.ndarray:
    if dtype.kind == 'f':
        with numpy.errstate(over='ignore', invalid='ignore'):
            return numpy.isnan(values) | (values.astype(dtype).astype(values.dtype) == values)
    info = numpy.iinfo(dtype)
    with numpy.errstate(invalid='ignore'):
        return (values >= info.min) & (values <= info.max) & (numpy.floor(values) == values)


def check_patch_dataset(
    shape: tuple[int, ...], dtype: numpy.dtype, *, expected_shape: tuple[int, int, int],
    spec: CanvasSpec, path: Path, number: int,
) -> None:
    """Refuse a patch dataset whose shape or pixel type is not its index row's."""
    if tuple(shape) != tuple(expected_shape):
        raise corrupt(
            path, f'patch {number} holds {tuple(shape)} pixels, its index row says {tuple(expected_shape)}'
        )
    if numpy.dtype(dtype) != spec.numpy_dtype:
        raise corrupt(path, f'patch {number} holds {numpy.dtype(dtype)} values, the canvas is {spec.dtype}')


def load_fragment_tables(h5: Any, *, path: Path, spec: CanvasSpec, staging_uid: str) -> FragmentTables | None:
    """The tables of an open fragment, read through HDF5 and checked against
    their checksum; None for a foreign fragment (logged as a warning naming
    it). Raises for a damaged one. The index rows are the caller's to check,
    with every other fragment's (:func:`check_fragment_indexes`)."""
    from ..errors import TifwriterError

    try:
        attributes = {name: read_attribute(h5, name) for name in ATTRIBUTES}
        if not _accepted(attributes, path=path, staging_uid=staging_uid):
            return None
        tables = read_hdf5_tables(h5, dtype=spec.numpy_dtype, channels=spec.channels, attributes=attributes)
        check_tables_checksum(tables.stored_index, tables.sources, tables.tables_crc32, path)
    except TifwriterError:
        raise
    except KeyError as exc:
        raise corrupt(path, f'its tables are incomplete ({one_line(exc)})') from None
    except Exception as exc:  # noqa: BLE001  (HDF5 errors of a damaged file come in many types)
        raise corrupt(path, one_line(exc)) from None
    return tables


def accept_table_copy(copy: FragmentTables, *, fd: int, path: Path, staging_uid: str) -> FragmentTables | None:
    """The tables of a fragment's table copy (:mod:`.fragment_tables`), checked
    as :func:`load_fragment_tables` checks HDF5's, plus the bytes of HDF5's
    own index against the CRC-32 the copy holds of them (read from ``fd``)."""
    if not _accepted(copy.attributes, path=path, staging_uid=staging_uid):
        return None
    if copy.index_extent is not None:
        start, size, expected = copy.index_extent
        if crc32(os.pread(fd, size, start)) != expected:
            raise corrupt(path, 'its index does not match its checksum')
    check_tables_checksum(copy.stored_index, copy.sources, copy.tables_crc32, path)
    return copy


def _accepted(attributes: dict[str, Any], *, path: Path, staging_uid: str) -> bool:
    reason = foreign_fragment_reason(attributes, path=path, staging_uid=staging_uid)
    if reason is not None:
        logging.getLogger(__name__).warning('fragment %s is skipped: %s', path, reason)
        return False
    return True
