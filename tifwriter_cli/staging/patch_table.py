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
    duplicate_rows = 0
    contributions: dict[str, Record] = {}
    patch_keys: dict[int, Record] = {}
    tables = []
    sourced_rows = []  # per table: rows that carry a key
    # key -> (table number, row, record) of its LAST staging in merge order
    last_staged: dict[str, tuple[int, int, Record]] = {}
    for _, number, index, sources, (chunk_offsets, chunk_sizes), weighting in loaded:
        table = numpy.zeros(len(index), dtype=PATCH_DTYPE)
        table['fragment'] = number
        table['number'] = numpy.arange(len(index))
        for field in INDEX_FIELDS:
            table[field] = index[field]
        table['weights_crc32'] = -1  # no explicit weight array
        if weighting is not None:
            table['blend'], table['blend_parameter'] = weighting['shape'], weighting['parameter']
            table['weights_crc32'] = weighting['crc32']
            for field in ('window_x', 'window_y', 'window_width', 'window_height'):
                table[field] = weighting[field]
        table['chunk_offset'] = chunk_offsets
        table['chunk_size'] = chunk_sizes
        sourced_rows.append(numpy.flatnonzero(index['source'] >= 0))
        for row_number in sourced_rows[-1]:
            record = sources[int(index['source'][row_number])]
            if record[0] in last_staged:
                duplicate_rows += 1
            last_staged[record[0]] = (len(tables), int(row_number), record)
        tables.append(table)
    if not tables:
        return PatchTable(numpy.zeros(0, dtype=PATCH_DTYPE), {}, {}, duplicate_rows)
    # One key, one contribution (docs/staging-format.md): only the last
    # record of a key counts, under every merge rule, so a retried job,
    # a rewritten file or a corrected re-run replaces what came before;
    # a last record of zero size is a withdrawal (nothing landed).
    keep = [(t['width'] > 0) & (t['height'] > 0) for t in tables]
    for table_number, rows in enumerate(sourced_rows):
        keep[table_number][rows] = False
    current_rows: dict[tuple[int, int], Record] = {}
    for key, (table_number, row_number, record) in last_staged.items():
        table = tables[table_number]
        if table['width'][row_number] > 0 and table['height'][row_number] > 0:
            keep[table_number][row_number] = True
            contributions[key] = record
            current_rows[(table_number, row_number)] = record
    # Row in the patch table -> the key record it is the current staging of.
    offset = 0
    for table_number, k in enumerate(keep):
        for position, row_number in enumerate(numpy.flatnonzero(k)):
            record = current_rows.get((table_number, int(row_number)))
            if record is not None:
                patch_keys[offset + position] = record
        offset += int(k.sum())
    patches = numpy.concatenate([t[k] for t, k in zip(tables, keep, strict=True)])
    return PatchTable(patches, contributions, patch_keys, duplicate_rows)
