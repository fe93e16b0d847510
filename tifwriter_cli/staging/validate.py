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

from pathlib import Path
from typing import Any

import numpy

from ..errors import CorruptFragmentError, one_line
from ..markers import FRAGMENT_FORMAT_NAME
from ..spec import CanvasSpec
from .canvasfile import check_format_version
from .h5io import attribute_text, read_attribute
from .integrity import corrupt

__all__ = ['check_fragment_index', 'check_patch_dataset', 'foreign_fragment_reason']

#: Index columns every fragment has (``codec`` came later; its absence means blosc).
REQUIRED_FIELDS = ('x', 'y', 'width', 'height', 'uniform', 'value', 'source')


def foreign_fragment_reason(h5: Any, *, path: Path, staging_uid: str) -> str | None:
    """Why the open fragment at ``path`` is not one of this staging unit, or None.

    Raises for a file that is not a fragment of a format this tifwriter reads.
    """
    attrs = {name: read_attribute(h5, name) for name in ('format', 'format_version', 'staging_uid')}
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

    def damaged(why: str) -> Exception:
        return corrupt(path, why)

    missing = [f for f in REQUIRED_FIELDS if f not in (stored_fields or ())]
    if missing:
        raise damaged(f'its index lacks the column(s) {", ".join(missing)}')
    if index.ndim != 1:
        raise damaged(f'its index has shape {index.shape}, not a table')
    if not len(index):
        return
    x, y, w, h = (index[f] for f in ('x', 'y', 'width', 'height'))
    rows = numpy.arange(len(index))

    def first(bad: numpy.ndarray) -> int | None:
        hits = rows[bad]
        return int(hits[0]) if len(hits) else None

    row = first((w < 0) | (h < 0) | (x < 0) | (y < 0) | (x > spec.width - w) | (y > spec.height - h))
    if row is not None:
        raise damaged(
            f'index row {row} places a {int(w[row])} x {int(h[row])} patch at x={int(x[row])}, '
            f'y={int(y[row])}, outside the {spec.width} x {spec.height} canvas'
        )
    row = first((index['uniform'] > 1) | (index['codec'] > 1))  # both unsigned
    if row is not None:
        raise damaged(f'index row {row} has an unknown uniform flag or codec')
    row = first((index['source'] < -1) | (index['source'] >= n_sources))
    if row is not None:
        raise damaged(
            f'index row {row} names source record {int(index["source"][row])}, '
            f'but the fragment has {n_sources}'
        )
    empty = (w == 0) | (h == 0)
    uniform = index['uniform'] == 1
    row = first(empty & ~uniform)
    if row is not None:
        raise damaged(f'index row {row} is an empty patch with pixel data')
    if uniform.any():
        row = first(uniform & ~empty & ~_representable(index['value'], spec.numpy_dtype))
        if row is not None:
            raise damaged(
                f'index row {row} has the uniform value {float(index["value"][row])!r}, '
                f'which a {spec.dtype} canvas cannot hold'
            )
    if patch_names is not None:
        for row in rows[~uniform]:
            if str(int(row)) not in patch_names:
                raise damaged(missing_pixels(int(row)))


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


def load_fragment_tables(
    h5: Any, *, path: Path, spec: CanvasSpec, staging_uid: str
) -> tuple[numpy.ndarray, list[tuple[str, int, int]]] | None:
    """The checked (index, sources) of an open fragment; None for a foreign
    fragment (logged as a warning naming it). Raises for a damaged one."""
    import logging

    import h5py

    from ..errors import TifwriterError
    from .fragment import read_fragment_tables

    try:
        reason = foreign_fragment_reason(h5, path=path, staging_uid=staging_uid)
        if reason is not None:
            logging.getLogger(__name__).warning('fragment %s is skipped: %s', path, reason)
            return None
        index, sources = read_fragment_tables(h5, path=path)  # checksums checked
        stored_fields = h5py.h5d.open(h5.id, b'index').dtype.names  # low level: 5x faster
        check_fragment_index(stored_fields, index, len(sources), None, spec=spec, path=path)
    except TifwriterError:
        raise
    except KeyError as exc:
        raise corrupt(path, f'its tables are incomplete ({one_line(exc)})') from None
    except Exception as exc:  # noqa: BLE001  (HDF5 errors of a damaged file come in many types)
        raise corrupt(path, one_line(exc)) from None
    return index, sources
