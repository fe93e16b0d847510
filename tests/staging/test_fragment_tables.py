"""The table copy a writer appends after a fragment's HDF5 data
(staging/fragment_tables.py): a snapshot loads it without HDF5 and gets the
tables HDF5 holds; where the copy is missing, edited away or damaged, the
tables come from HDF5 and the merged canvas is the same; ``verify`` refuses
a fragment whose two copies disagree."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.housekeeping import compact, unstage, verify
from tifwriter_cli.staging.fragment_files import FragmentFiles
from tifwriter_cli.staging.fragment_tables import (
    DAMAGED_COPY,
    FragmentTables,
    encode_table_copy,
    read_hdf5_tables,
    read_table_copy,
)
from tifwriter_cli.staging.layout import fragments_dir

from tests.helpers.reference import ReferenceCanvas

RNG = numpy.random.default_rng(31)


def fragments(staging: Path) -> list[Path]:
    return sorted(fragments_dir(staging).glob('0*.h5'))


def copy_of(path: Path) -> FragmentTables | str | None:
    fd = os.open(path, os.O_RDONLY)
    try:
        return read_table_copy(fd)
    finally:
        os.close(fd)


def hdf5_tables(path: Path, dtype: str = 'uint8') -> FragmentTables:
    with h5py.File(path, 'r') as h5:
        return read_hdf5_tables(h5, dtype=numpy.dtype(dtype), channels=1)


def _eoa(path: Path) -> int:
    size = path.stat().st_size
    copy = copy_of(path)
    assert isinstance(copy, FragmentTables)
    footer = 24
    with open(path, 'rb') as fh:
        fh.seek(size - footer)
        length = int.from_bytes(fh.read(8), 'little')
    return size - footer - length


@pytest.fixture
def busy_unit(make_staging):
    """A unit of every kind of fragment: plain and keyed writes (uniform,
    compressible, noise), a withdrawal (unstage --fragment), a compaction."""
    staging = make_staging(width=300, height=200)
    reference = ReferenceCanvas(300, 200)
    jobs = [
        [(0, 0, RNG.integers(0, 255, (64, 80), dtype=numpy.uint8), None)],
        [(40, 30, numpy.full((50, 50), 9, numpy.uint8), 'key-a'),
         (100, 0, numpy.tile(numpy.arange(70, dtype=numpy.uint8), (90, 1)), 'key-b')],
        [(250, 150, RNG.integers(0, 4, (80, 80), dtype=numpy.uint8), None)],  # clipped
        [(40, 30, RNG.integers(0, 3, (20, 20), dtype=numpy.uint8), 'key-a')],  # replaces key-a
    ]
    for job in jobs:
        with tw.open_staging(staging) as writer:
            for x, y, array, key in job:
                writer.write(x, y, array, key=key) if key else writer.write(x, y, array)
    return staging, reference, jobs


def canvas(staging: Path) -> numpy.ndarray:
    with tw.read_staging(staging) as snapshot:
        return snapshot.read_canvas()


def test_every_fragment_has_a_copy_equal_to_its_hdf5_tables(busy_unit):
    staging, _, _ = busy_unit
    unstage(staging, fragment=3)
    compact(staging)
    with tw.open_staging(staging) as writer:
        writer.write(5, 5, numpy.full((3, 3), 1, numpy.uint8))
    paths = fragments(staging)
    assert len(paths) >= 2
    seen_fold = False
    for path in paths:
        copy = copy_of(path)
        assert isinstance(copy, FragmentTables), path
        tables = hdf5_tables(path)
        assert copy.same_tables(tables), path
        seen_fold |= copy.merge_order is not None
        # Every pixel chunk the reader can pread is located in the copy too.
        numpy.testing.assert_array_equal(copy.chunk_offsets, tables.chunk_offsets)
    assert seen_fold  # the compacted fragment's merge order travelled in its copy


def test_snapshot_loads_the_copies_without_opening_hdf5(busy_unit, monkeypatch):
    staging, _, _ = busy_unit
    expected = canvas(staging)

    def no_hdf5(self, number):
        raise AssertionError(f'fragment {number} opened through HDF5')

    monkeypatch.setattr(FragmentFiles, 'open_by_name', no_hdf5)
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas(), expected)
        assert snapshot.fragment_count == 4


def test_copy_gives_the_canvas_the_writes_meant(busy_unit):
    staging, reference, jobs = busy_unit
    writes = [write for job in jobs for write in job]
    last = {key: i for i, (_, _, _, key) in enumerate(writes) if key}
    for i, (x, y, array, key) in enumerate(writes):
        if key is None or last[key] == i:  # one key, one contribution: its last staging
            reference.write(x, y, array)
    numpy.testing.assert_array_equal(canvas(staging), reference.result())


@pytest.mark.parametrize('how', ['removed (older tifwriter)', 'edited through HDF5', 'damaged'])
def test_without_a_usable_copy_hdf5_tables_give_the_same_canvas(busy_unit, how):
    staging, _, _ = busy_unit
    expected = canvas(staging)
    for path in fragments(staging):
        if how == 'removed (older tifwriter)':
            os.truncate(path, _eoa(path))
            assert copy_of(path) is None
        elif how == 'edited through HDF5':
            with h5py.File(path, 'r+') as h5:
                h5.attrs['note'] = 1  # any write session: HDF5 truncates to its end
            assert copy_of(path) is None
        else:
            size = path.stat().st_size
            with open(path, 'r+b') as fh:  # a flipped byte inside the copy's payload
                fh.seek(size - 40)
                byte = fh.read(1)
                fh.seek(size - 40)
                fh.write(bytes([byte[0] ^ 0x21]))
            assert copy_of(path) == DAMAGED_COPY
    numpy.testing.assert_array_equal(canvas(staging), expected)
    report = verify(staging)
    if how == 'damaged':
        # The canvas is intact (HDF5's tables), but the files are not: verify
        # says so (tables are loaded newest first; it stops at the first).
        assert [n for n, _ in report.damaged] == [4]
        assert 'table copy (after the HDF5 data) fails its checksum' in report.damaged[0][1]
    else:
        assert report.damaged == []


def test_verify_refuses_a_copy_that_differs_from_hdf5(busy_unit):
    staging, _, _ = busy_unit
    path = fragments(staging)[1]
    tables = hdf5_tables(path)
    tables.sources[0] = ('key-z', *tables.sources[0][1:])  # a copy telling another story
    end = _eoa(path)
    os.truncate(path, end)
    with open(path, 'ab') as fh:
        fh.write(encode_table_copy(tables, hdf5_size=end))
    assert isinstance(copy_of(path), FragmentTables)
    report = verify(staging)
    assert [n for n, _ in report.damaged] == [2]
    assert 'differs from its HDF5 tables' in report.damaged[0][1]


def test_a_flipped_byte_in_hdf5s_index_is_found_with_the_copy_intact(busy_unit):
    from tifwriter_cli.errors import CorruptFragmentError

    staging, _, _ = busy_unit
    path = fragments(staging)[0]
    with h5py.File(path, 'r') as h5:
        offset = h5['index'].id.get_offset()
    with open(path, 'r+b') as fh:
        fh.seek(offset + 3)
        byte = fh.read(1)
        fh.seek(offset + 3)
        fh.write(bytes([byte[0] ^ 0x10]))
    assert isinstance(copy_of(path), FragmentTables)
    with pytest.raises(CorruptFragmentError, match='index does not match its checksum'):
        tw.read_staging(staging)


def test_weighted_units_load_weighting_from_the_copy(make_staging, monkeypatch):
    staging = make_staging(width=64, height=64, dtype='float32', merge='weighted')
    windows = [(x, y, RNG.random((32, 32), dtype=numpy.float32)) for x in (0, 16, 32) for y in (0, 24)]
    with tw.open_staging(staging) as writer:
        for x, y, array in windows[:3]:
            writer.write(x, y, array, weight='gaussian')
    with tw.open_staging(staging) as writer:
        for x, y, array in windows[3:]:
            writer.write(x, y, array, weight=numpy.full((32, 32), 0.25))
    with tw.read_staging(staging, deep=True) as snapshot:
        expected = snapshot.read_canvas()
    for path in fragments(staging):
        copy = copy_of(path)
        assert isinstance(copy, FragmentTables) and copy.weighting is not None
        assert copy.same_tables(hdf5_tables(path, 'float32'))
    monkeypatch.setattr(FragmentFiles, 'open_by_name', lambda self, n: (_ for _ in ()).throw(AssertionError(n)))
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas(), expected)
