"""The snapshot's patch table: every live fragment's index rows in merge
order, and the one rule that makes each contribution count once.

One key, one contribution (docs/staging-format.md, "Contributions"): only the
last record of a key in merge order counts, under every merge rule, so a
retried job, a rewritten file or a corrected re-run replaces what came
before; a last record of zero size is a withdrawal (nothing landed).
:class:`~.reader.StagingSnapshot` loads the fragments and calls
:func:`build_patch_table`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy

from .fragment import INDEX_DTYPE

__all__ = ['INDEX_FIELDS', 'PATCH_DTYPE', 'PatchTable', 'build_patch_table']

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
        # Weighted canvases (see .weighting): the weight shape and the window
        # its weights are computed over.
        ('blend', 'u1'),
        ('blend_parameter', '<f8'),
        ('window_x', '<i8'),
        ('window_y', '<i8'),
        ('window_width', '<i8'),
        ('window_height', '<i8'),
        ('weights_crc32', '<i8'),
    ]
)

#: A contribution's record: (key, size, mtime_ns, placement).
Record = tuple[str, int, int, str]


@dataclasses.dataclass
class PatchTable:
    """The current patches of a snapshot and the contributions they are."""

    #: One PATCH_DTYPE row per current patch, in merge order.
    patches: numpy.ndarray
    #: key -> record of each current contribution.
    contributions: dict[str, Record]
    #: Row in :attr:`patches` -> the record of the contribution it is.
    patch_keys: dict[int, Record]
    #: Rows superseded by a later record of the same key.
    duplicate_rows: int


def build_patch_table(loaded: Sequence[tuple[Any, ...]]) -> PatchTable:
    """The patch table of fragments ``loaded`` in merge order, each
    (merge order, fragment number, index, sources, (chunk offsets, chunk
    sizes), weighting or None)."""
    # One table for all fragments, filled slice by slice and column by
    # column: concatenating 2000 structured tables costs numpy a dtype
    # promotion per table (measured: 70 ms of a 2000-fragment snapshot).
    total = sum(len(item[2]) for item in loaded)
    table = numpy.zeros(total, dtype=PATCH_DTYPE)
    table['weights_crc32'] = -1  # no explicit weight array
    duplicate_rows = 0
    # key -> (row in the table, record) of its LAST staging in merge order
    last_staged: dict[str, tuple[int, Record]] = {}
    sourced = numpy.zeros(total, dtype=bool)  # rows that carry a key
    start = 0
    for _, number, index, sources, (chunk_offsets, chunk_sizes), weighting in loaded:
        end = start + len(index)
        rows = table[start:end]
        rows['fragment'] = number
        rows['number'] = numpy.arange(len(index))
        for field in INDEX_FIELDS:
            rows[field] = index[field]
        if weighting is not None:
            rows['blend'], rows['blend_parameter'] = weighting['shape'], weighting['parameter']
            rows['weights_crc32'] = weighting['crc32']
            for field in ('window_x', 'window_y', 'window_width', 'window_height'):
                rows[field] = weighting[field]
        rows['chunk_offset'] = chunk_offsets
        rows['chunk_size'] = chunk_sizes
        source_rows = numpy.flatnonzero(index['source'] >= 0)
        sourced[start + source_rows] = True
        for row_number, source in zip(source_rows.tolist(), index['source'][source_rows].tolist(), strict=True):
            record = sources[source]
            if record[0] in last_staged:
                duplicate_rows += 1
            last_staged[record[0]] = (start + row_number, record)
        start = end
    # One key, one contribution (docs/staging-format.md): only the last
    # record of a key counts, under every merge rule, so a retried job,
    # a rewritten file or a corrected re-run replaces what came before;
    # a last record of zero size is a withdrawal (nothing landed).
    landed = (table['width'] > 0) & (table['height'] > 0)
    keep = landed & ~sourced
    contributions: dict[str, Record] = {}
    current_rows: dict[int, Record] = {}
    for key, (row, record) in last_staged.items():
        if landed[row]:
            keep[row] = True
            contributions[key] = record
            current_rows[row] = record
    # Row in the patch table -> the key record it is the current staging of.
    position = numpy.cumsum(keep) - 1
    patch_keys = {int(position[row]): record for row, record in current_rows.items()}
    return PatchTable(table[keep], contributions, patch_keys, duplicate_rows)
