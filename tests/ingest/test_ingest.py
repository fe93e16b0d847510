"""Library tests of ingest_npy_dir, its file name patterns and the safe .npy loader."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli import npyfile
from tifwriter_cli.errors import InvalidOptionError, PatchError, SourceFileError
from tifwriter_cli.ingest import (
    DEFAULT_PATTERN,
    compile_pattern,
    in_shard,
    ingest_npy_dir,
    parse_shard,
    shard_from_environment,
)
from tifwriter_cli.ingest.contribution import file_key
from tifwriter_cli.slide import canvas_position
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.staging.layout import fragments_dir

from tests.helpers import REPO
from tests.helpers.reference import ReferenceCanvas


def reference_canvas(*, writes, **canvas_fields) -> numpy.ndarray:
    """The plain numpy model's canvas after ``writes`` (x, y, array) in order."""
    reference = ReferenceCanvas(**canvas_fields)
    for x, y, array in writes:
        reference.write(x, y, array)
    return reference.result()


def canvas_of(staging: Path) -> numpy.ndarray:
    with tw.read_staging(staging) as snapshot:
        return snapshot.read_canvas()


def patch_count(staging: Path) -> int:
    with tw.read_staging(staging) as snapshot:
        return len(snapshot.patches)


def random_patches(seed: int, count: int, *, width: int, height: int, side: int = 48, channels: int = 1):
    """(name, x, y, array) of overlapping patches, some reaching past the borders."""
    rng = numpy.random.default_rng(seed)
    patches = []
    for number in range(count):
        x = int(rng.integers(-side // 2, width - side // 2))
        y = int(rng.integers(-side // 2, height - side // 2))
        shape = (side, side) if channels == 1 else (side, side, channels)
        array = rng.integers(0, 250, size=shape, dtype=numpy.uint8)
        patches.append((f'p{number:03d}_{x}_{y}.npy', x, y, array))
    return patches


def save_all(directory: Path, patches) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, _, _, array in patches:
        numpy.save(directory / name, array)


def sorted_writes(patches):
    """The writes in the order ingest processes them: sorted by file name."""
    return [(x, y, a) for name, x, y, a in sorted(patches, key=lambda p: p[0])]


# -- patterns -------------------------------------------------------------


@pytest.mark.parametrize(
    'pattern, name, expected',
    [
        (DEFAULT_PATTERN, '12_34.npy', (12, 34)),
        (DEFAULT_PATTERN, 'tile_12_34.npy', (12, 34)),
        (DEFAULT_PATTERN, 'tile_12_34.npz', (12, 34)),  # .npy pattern accepts .npz twins
        (DEFAULT_PATTERN, 'tile_-512_-4.npy', (-512, -4)),
        (DEFAULT_PATTERN, '-5_7.npy', (-5, 7)),
        (DEFAULT_PATTERN, 'tile-12_34.npy', (12, 34)),  # '-' glued to a word is not a sign
        (DEFAULT_PATTERN, 'slide3_2048_4096.npy', (2048, 4096)),  # the last two numbers
        (DEFAULT_PATTERN, '2024_01_512_1024.npy', (512, 1024)),
        (DEFAULT_PATTERN, 'x12_y34.npy', None),
        (DEFAULT_PATTERN, 'tile_12_34.npy.tmp', None),
        (DEFAULT_PATTERN, 'tile_12_34.png', None),
        (DEFAULT_PATTERN, 'tile_1.5_34.npy', None),
        ('x{x}_y{y}.npy', 'x12_y-34.npy', (12, -34)),
        ('x{x}_y{y}.npy', 'x-12_y34.npy', (-12, 34)),
        ('{y}-{x}.npz', '7--3.npy', (-3, 7)),
        ('tile_{x}_{y}_*.npy', 'tile_1_2_probabilities.npy', (1, 2)),
        ('tile_{x}_{y}_*.npy', 'tile_1_2.npy', None),
        ('tile_{x}_{y}', 'tile_1_2', (1, 2)),
        ('tile_{x}_{y}', 'tile_1_2.npy', None),
        ('*/{x}_{y}.npy', 'run1/5_6.npy', (5, 6)),
        ('*/{x}_{y}.npy', 'run1/sub/5_6.npy', None),  # '*' never crosses '/'
        ('tile_{x}_{y}.npy', 'a/b/tile_3_4.npy', (3, 4)),  # no '/': matches the name
    ],
)
def test_pattern_examples(pattern, name, expected):
    assert compile_pattern(pattern).coordinates(name) == expected


@pytest.mark.parametrize(
    'pattern, complaint',
    [
        ('', 'empty'),
        ('tile_{x}.npy', 'needs a {y}'),
        ('tile_{y}.npy', 'needs a {x}'),
        ('{x}_{y}_{x}.npy', '{x} appears more than once'),
        ('{x}{y}.npy', 'separated'),
        ('{x}_{y}_{z}.npy', 'unknown field {z}'),
        ('{X}_{y}.npy', 'unknown field {X}'),
        ('{x}_{y.npy', "'{' without"),
        ('{x}_{y}}.npy', "'}' without"),
        ('/abs/{x}_{y}.npy', 'relative'),
        ('../{x}_{y}.npy', 'relative'),
        ('{x}_{y}/', 'must end with a file name'),
    ],
)
def test_invalid_patterns_are_refused(pattern, complaint):
    with pytest.raises(InvalidOptionError, match='pattern') as info:
        compile_pattern(pattern)
    assert complaint in str(info.value)


# Text the pattern and the names may contain. Digits are left out on
# purpose: a literal digit next to a field makes a name ambiguous.
LITERAL = st.text(alphabet='abcXYZ_-.', min_size=1, max_size=6)
STAR_TEXT = st.text(alphabet='abcXYZ_.', max_size=6)
COORDINATE = st.integers(min_value=-10**7, max_value=10**7)


@st.composite
def pattern_and_name(draw):
    """A pattern, a name made from it for drawn (x, y), and that (x, y)."""
    x, y = draw(COORDINATE), draw(COORDINATE)
    first, second = draw(st.sampled_from([('x', 'y'), ('y', 'x')]))
    values = {'x': x, 'y': y}
    tokens = []
    lead = draw(st.sampled_from(['', 'text', 'star', 'text+star', 'star+text']))
    for part in lead.split('+') if lead else []:
        tokens.append(('star', draw(STAR_TEXT)) if part == 'star' else ('text', draw(LITERAL)))
    tokens.append(('field', first))
    tokens.append(('text', draw(LITERAL)))
    if draw(st.booleans()):
        tokens.append(('star', draw(STAR_TEXT)))
        tokens.append(('text', draw(LITERAL)))
    tokens.append(('field', second))
    tail = draw(st.sampled_from(['.npy', '.npz', '', 'star.npy', 'text']))
    if tail.startswith('star'):
        tokens.append(('star', draw(STAR_TEXT)))
        tokens.append(('text', '.npy'))
    elif tail == 'text':
        tokens.append(('text', draw(LITERAL)))
    elif tail:
        tokens.append(('text', tail))
    pattern, name = '', ''
    for number, (kind, value) in enumerate(tokens):
        if kind == 'text':
            pattern += value
            name += value
        elif kind == 'star':
            pattern += '*'
            name += value
        else:
            text = str(values[value])
            # The documented rule: after a '*', a '-' glued to a letter is a
            # separator, not a sign; such names are not round-trippable.
            if number and tokens[number - 1][0] == 'star' and text.startswith('-'):
                assume(not name or not name[-1].isalnum())
            pattern += '{' + value + '}'
            name += text
    return pattern, name, (x, y)


@settings(max_examples=300, deadline=None)
@given(pattern_and_name())
def test_pattern_round_trip(case):
    pattern, name, expected = case
    assert compile_pattern(pattern).coordinates(name) == expected


# -- the .npy/.npz loader ------------------------------------------------


def write_npy_header_only(path: Path, shape, dtype='<u1', extra_bytes: int = 16) -> Path:
    """A .npy whose header declares ``shape`` but holding only a few data bytes."""
    with open(path, 'wb') as fh:
        npyfile.npy_format.write_array_header_1_0(
            fh, {'descr': dtype, 'fortran_order': False, 'shape': tuple(shape)}
        )
        fh.write(b'\0' * extra_bytes)
    return path


@pytest.fixture
def no_data_reads(monkeypatch):
    """Fail the test if the loader gets as far as reading array data."""

    def forbidden(*args, **kwargs):
        raise AssertionError('array data was read although the header should have been refused')

    monkeypatch.setattr(npyfile, '_read_data', forbidden)
    monkeypatch.setattr(npyfile.npy_format, 'read_array', forbidden)


def test_huge_declared_shape_in_tiny_file_is_refused_from_the_header(tmp_path, no_data_reads):
    path = write_npy_header_only(tmp_path / 'liar_0_0.npy', (200_000, 200_000))
    with pytest.raises(SourceFileError, match='truncated') as info:
        npyfile.load_array(path, CanvasSpec(width=100, height=100))
    assert str(path) in str(info.value)


def test_absurd_size_is_refused_even_when_the_bytes_are_there(tmp_path, no_data_reads):
    # A sparse file really holding the declared 1 GB: refused by the size cap.
    path = write_npy_header_only(tmp_path / 'big_0_0.npy', (40_000, 25_000), extra_bytes=0)
    with open(path, 'r+b') as fh:
        fh.truncate(os.path.getsize(path) + 40_000 * 25_000)
    with pytest.raises(SourceFileError, match='more than'):
        npyfile.load_array(path, CanvasSpec(width=100, height=100), max_bytes=1 << 29)


def test_pickled_object_array_is_refused_without_unpickling(tmp_path, no_data_reads, monkeypatch):
    import pickle

    path = tmp_path / 'evil_0_0.npy'
    numpy.save(path, numpy.array([[{'a': 1}, None]], dtype=object), allow_pickle=True)
    monkeypatch.setattr(pickle, 'load', lambda *a, **k: pytest.fail('unpickled'))
    with pytest.raises(SourceFileError, match='pickled object array'):
        npyfile.load_array(path, CanvasSpec(width=100, height=100))


@pytest.mark.parametrize(
    'array, spec_fields, error, text',
    [
        (numpy.zeros(10, numpy.uint8), {}, PatchError, '2-D'),
        (numpy.zeros((2, 3, 4, 5), numpy.uint8), {}, PatchError, '2-D'),
        (numpy.zeros((0, 5), numpy.uint8), {}, PatchError, 'empty'),
        (numpy.zeros((4, 4, 3), numpy.uint8), {}, PatchError, '3 channel'),
        (numpy.zeros((4, 4), numpy.uint8), {'channels': 3}, PatchError, '1 channel'),
        (numpy.zeros((3, 8, 8), numpy.uint8), {'channels': 3}, PatchError, 'channel-first'),
        (numpy.zeros((4, 4), numpy.complex64), {}, SourceFileError, 'not a plain numeric'),
        (numpy.zeros((4, 4), 'U3'), {}, SourceFileError, 'not a plain numeric'),
        (numpy.zeros((4, 4), [('a', 'u1'), ('b', 'u1')]), {}, SourceFileError, 'not a plain numeric'),
        (numpy.zeros((4, 4), numpy.int32), {'convert': 'scale'}, PatchError, 'scale'),
    ],
)
def test_header_checks(tmp_path, no_data_reads, array, spec_fields, error, text):
    path = tmp_path / 'bad.npy'
    numpy.save(path, array)
    spec_fields = dict(spec_fields)
    convert = spec_fields.pop('convert', 'exact')
    spec = CanvasSpec(width=50, height=50, **spec_fields)
    with pytest.raises(error, match=text) as info:
        npyfile.load_array(path, spec, convert=convert)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    'content, text',
    [
        (b'', 'empty'),
        (b'hello world, not an array', 'not a .npy or .npz'),
        (b'\x80\x04\x95pickle', 'not a .npy or .npz'),
        (b'\x93NUMPY\x01\x00\x10\x00{broken header  \n', 'damaged .npy header'),
        (b'\x93NUMPY\x09\x00', 'unsupported .npy format version'),
        (b'PK\x03\x04garbage that is not a zip', 'damaged .npz'),
    ],
)
def test_unreadable_files(tmp_path, content, text):
    path = tmp_path / 'x.npy'
    path.write_bytes(content)
    with pytest.raises(SourceFileError, match=text) as info:
        npyfile.load_array(path)
    assert str(path) in str(info.value)


def test_npz_with_one_array_plain_and_compressed(tmp_path):
    array = numpy.arange(60, dtype=numpy.uint16).reshape(6, 10)
    numpy.savez(tmp_path / 'plain.npz', array)
    numpy.savez_compressed(tmp_path / 'small.npz', prediction=array)
    numpy.save(tmp_path / 'fortran.npy', numpy.asfortranarray(array))
    numpy.save(tmp_path / 'bigendian.npy', array.astype('>u2'))
    numpy.savez(tmp_path / 'fortran.npz', numpy.asfortranarray(array))
    for name in ('plain.npz', 'small.npz', 'fortran.npy', 'bigendian.npy', 'fortran.npz'):
        loaded = npyfile.load_array(tmp_path / name, CanvasSpec(width=9, height=9, dtype='uint16'))
        numpy.testing.assert_array_equal(loaded, array)


def test_npz_must_hold_exactly_one_array(tmp_path):
    numpy.savez(tmp_path / 'two.npz', a=numpy.zeros((2, 2)), b=numpy.ones((2, 2)))
    with pytest.raises(SourceFileError, match='exactly one array, this one holds 2'):
        npyfile.load_array(tmp_path / 'two.npz')
    with zipfile.ZipFile(tmp_path / 'text.npz', 'w') as archive:
        archive.writestr('arr_0.npy', b'not an array at all')
    with pytest.raises(SourceFileError, match='not a .npy array'):
        npyfile.load_array(tmp_path / 'text.npz')


def test_truncated_npz_member_is_refused(tmp_path, no_data_reads):
    path = tmp_path / 'cut.npz'
    with zipfile.ZipFile(path, 'w') as archive, archive.open('arr_0.npy', 'w') as member:
        npyfile.npy_format.write_array_header_1_0(
            member, {'descr': '<u1', 'fortran_order': False, 'shape': (1000, 1000)}
        )
        member.write(b'\0' * 10)
    with pytest.raises(SourceFileError, match='truncated'):
        npyfile.load_array(path)


# -- ingest: pixels, order, idempotence ------------------------------------


@pytest.mark.parametrize('merge', ['overwrite', 'mean', 'max', 'min'])
def test_ingest_matches_reference_for_each_merge_rule(tmp_path, make_staging, merge):
    staging = make_staging(width=160, height=120, merge=merge, fill=7)
    patches = random_patches(1, 25, width=160, height=120)
    save_all(tmp_path / 'preds', patches)
    report = ingest_npy_dir(staging, tmp_path / 'preds')
    assert report.ok and report.staged == 25 and report.matched == 25
    assert report.bytes_staged == sum(a.nbytes for *_, a in patches)
    expected = reference_canvas(width=160, height=120, fill=7, merge=merge, writes=sorted_writes(patches))
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_rerun_stages_nothing_new_and_leaves_the_canvas_unchanged(tmp_path, make_staging):
    # merge mean with overlaps: staging any file twice would shift the means.
    staging = make_staging(width=120, height=100, merge='mean')
    patches = random_patches(2, 20, width=120, height=100)
    save_all(tmp_path / 'preds', patches)
    first = ingest_npy_dir(staging, tmp_path / 'preds')
    canvas_before = canvas_of(staging)
    fragments_before = sorted(os.listdir(fragments_dir(staging)))
    second = ingest_npy_dir(staging, tmp_path / 'preds')
    assert (first.staged, second.staged, second.skipped_already_staged) == (20, 0, 20)
    assert sorted(os.listdir(fragments_dir(staging))) == fragments_before
    numpy.testing.assert_array_equal(canvas_of(staging), canvas_before)
    expected = reference_canvas(width=120, height=100, merge='mean', writes=sorted_writes(patches))
    numpy.testing.assert_array_equal(canvas_before, expected)


def test_changed_file_is_staged_again(tmp_path, make_staging):
    staging = make_staging(width=100, height=100, merge='overwrite')
    preds = tmp_path / 'preds'
    preds.mkdir()
    numpy.save(preds / 'a_0_0.npy', numpy.full((10, 10), 1, numpy.uint8))
    ingest_npy_dir(staging, preds)
    numpy.save(preds / 'a_0_0.npy', numpy.full((10, 12), 2, numpy.uint8))
    report = ingest_npy_dir(staging, preds)
    assert report.staged == 1
    assert (canvas_of(staging)[:10, :12, 0] == 2).all()


def test_patches_wholly_outside_are_not_recorded(tmp_path, make_staging):
    staging = make_staging(width=100, height=100)
    preds = tmp_path / 'preds'
    preds.mkdir()
    numpy.save(preds / 'a_500_0.npy', numpy.ones((10, 10), numpy.uint8))
    numpy.save(preds / 'b_-10_-10.npy', numpy.ones((10, 10), numpy.uint8))
    numpy.save(preds / 'c_95_-5.npy', numpy.full((10, 10), 3, numpy.uint8))
    report = ingest_npy_dir(staging, preds)
    assert (report.staged, report.outside) == (1, 2)
    assert report.mostly_outside and not report.ok  # 2 of 3 fell outside
    again = ingest_npy_dir(staging, preds)
    assert (again.staged, again.skipped_already_staged, again.outside) == (0, 1, 2)
    with tw.read_staging(staging) as snapshot:
        assert set(snapshot.contributions) == {file_key(preds / 'c_95_-5.npy')}
    expected = reference_canvas(width=100, height=100, writes=[(95, -5, numpy.full((10, 10), 3))])
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_multichannel_and_npz_and_dtype_conversion(tmp_path, make_staging):
    staging = make_staging(width=64, height=64, channels=3, dtype='uint16')
    preds = tmp_path / 'preds'
    preds.mkdir()
    rng = numpy.random.default_rng(3)
    a = rng.integers(0, 60000, (20, 20, 3)).astype(numpy.int64)  # exact: fits uint16
    b = rng.integers(0, 60000, (20, 30, 3)).astype(numpy.uint16)
    numpy.save(preds / 'a_0_0.npy', a)
    numpy.savez_compressed(preds / 'b_30_40.npz', b)
    report = ingest_npy_dir(staging, preds)
    assert report.staged == 2
    expected = reference_canvas(width=64, height=64, channels=3, dtype='uint16', writes=[(0, 0, a), (30, 40, b)])
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_convert_scale_for_probabilities(tmp_path, make_staging):
    staging = make_staging(width=32, height=32, kind='probability')
    preds = tmp_path / 'preds'
    preds.mkdir()
    probabilities = numpy.linspace(0, 1, 16 * 16, dtype=numpy.float32).reshape(16, 16)
    numpy.save(preds / 'p_4_4.npy', probabilities)
    refused = ingest_npy_dir(staging, preds)
    assert refused.failed == 1 and 'scale' in refused.failures[0][1]
    assert ingest_npy_dir(staging, preds, convert='scale').staged == 1
    expected = numpy.rint(probabilities.astype(numpy.float64) * 255).astype(numpy.uint8)
    numpy.testing.assert_array_equal(canvas_of(staging)[4:20, 4:20, 0], expected)


def test_recursive_and_path_patterns(tmp_path, make_staging):
    preds = tmp_path / 'preds'
    (preds / 'run1').mkdir(parents=True)
    (preds / 'run2' / 'deep').mkdir(parents=True)
    (preds / '.hidden').mkdir()
    numpy.save(preds / 'top_0_0.npy', numpy.full((5, 5), 1, numpy.uint8))
    numpy.save(preds / 'run1' / 'a_10_0.npy', numpy.full((5, 5), 2, numpy.uint8))
    numpy.save(preds / 'run2' / 'deep' / 'b_20_0.npy', numpy.full((5, 5), 3, numpy.uint8))
    numpy.save(preds / '.hidden' / 'c_30_0.npy', numpy.full((5, 5), 4, numpy.uint8))
    numpy.save(preds / '.d_40_0.npy', numpy.full((5, 5), 5, numpy.uint8))

    flat = make_staging(width=50, height=10)
    assert ingest_npy_dir(flat, preds).staged == 1
    deep = make_staging(width=50, height=10)
    report = ingest_npy_dir(deep, preds, recursive=True)
    assert report.staged == 3
    row = canvas_of(deep)[0, :, 0]
    assert list(row[::5]) == [1, 0, 2, 0, 3, 0, 0, 0, 0, 0]
    with tw.read_staging(deep) as snapshot:
        assert {s[0] for s in snapshot.sources} == {
            file_key(preds / p) for p in ('top_0_0.npy', 'run1/a_10_0.npy', 'run2/deep/b_20_0.npy')
        }
    by_path = make_staging(width=50, height=10)
    assert ingest_npy_dir(by_path, preds, pattern='run1/*_{x}_{y}.npy').staged == 1
    assert canvas_of(by_path)[0, 10, 0] == 2


def test_files_are_processed_in_sorted_order(tmp_path, make_staging):
    # With overwrite, the later file wins: sorted by name, not by creation.
    staging = make_staging(width=20, height=20)
    preds = tmp_path / 'preds'
    preds.mkdir()
    for name, value in [('c_0_0.npy', 3), ('a_0_0.npy', 1), ('b_0_0.npy', 2)]:
        numpy.save(preds / name, numpy.full((4, 4), value, numpy.uint8))
    calls = []
    ingest_npy_dir(staging, preds, progress=lambda done, total: calls.append((done, total)))
    assert canvas_of(staging)[0, 0, 0] == 3
    assert calls == [(1, 3), (2, 3), (3, 3)]


# -- bad files: stop and skip ----------------------------------------------


def make_mixed_directory(preds: Path) -> dict[str, numpy.ndarray]:
    """Good and bad files interleaved in sorted order; returns the good ones."""
    preds.mkdir()
    good = {}
    for index, name in enumerate(['a_0_0.npy', 'c_10_0.npy', 'e_20_0.npy', 'g_30_0.npy', 'i_40_0.npy']):
        good[name] = numpy.full((5, 5), index + 1, numpy.uint8)
        numpy.save(preds / name, good[name])
    numpy.save(preds / 'b_50_0.npy', numpy.full((5, 5), 0.5))  # lossy into uint8
    (preds / 'd_60_0.npy').write_bytes(b'not an array')
    write_npy_header_only(preds / 'f_70_0.npy', (500, 500))  # truncated
    numpy.save(preds / 'h_80_0.npy', numpy.zeros((5, 5), object), allow_pickle=True)
    numpy.save(preds / 'j_90_0.npy', numpy.zeros((5, 5, 2), numpy.uint8))  # channels
    return good


BAD_FILES = ['b_50_0.npy', 'd_60_0.npy', 'f_70_0.npy', 'h_80_0.npy', 'j_90_0.npy']


def test_on_error_stop_keeps_what_was_staged_before(tmp_path, make_staging, caplog):
    staging = make_staging(width=100, height=5)
    good = make_mixed_directory(tmp_path / 'preds')
    with caplog.at_level(logging.ERROR, logger='tifwriter_cli'):
        report = ingest_npy_dir(staging, tmp_path / 'preds', on_error='stop')
    assert report.stopped_early and report.staged == 1
    assert [path for path, _ in report.failures] == ['b_50_0.npy']
    assert 'cannot store' in report.failures[0][1]
    assert any('b_50_0.npy' in record.getMessage() for record in caplog.records)
    expected = reference_canvas(width=100, height=5, writes=[(0, 0, good['a_0_0.npy'])])
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_on_error_skip_stages_every_good_file_and_names_every_bad_one(tmp_path, make_staging):
    staging = make_staging(width=100, height=5)
    good = make_mixed_directory(tmp_path / 'preds')
    report = ingest_npy_dir(staging, tmp_path / 'preds', on_error='skip')
    assert not report.stopped_early and report.staged == 5
    assert [path for path, _ in report.failures] == BAD_FILES
    messages = dict(report.failures)
    assert 'not a .npy' in messages['d_60_0.npy']
    assert 'truncated' in messages['f_70_0.npy']
    assert 'pickled' in messages['h_80_0.npy']
    assert '2 channel' in messages['j_90_0.npy']
    writes = [(int(n.split('_')[1]), 0, a) for n, a in good.items()]
    numpy.testing.assert_array_equal(canvas_of(staging), reference_canvas(width=100, height=5, writes=writes))
    # Failed files are not recorded: once fixed, a re-run stages them alone.
    numpy.save(tmp_path / 'preds' / 'b_50_0.npy', numpy.full((5, 5), 9, numpy.uint8))
    again = ingest_npy_dir(staging, tmp_path / 'preds', on_error='skip')
    assert (again.staged, again.skipped_already_staged, again.failed) == (1, 5, 4)


def test_file_changing_while_read_is_a_failure_not_a_wrong_record(tmp_path, make_staging, monkeypatch):
    staging = make_staging(width=20, height=20)
    preds = tmp_path / 'preds'
    preds.mkdir()
    numpy.save(preds / 'a_0_0.npy', numpy.ones((4, 4), numpy.uint8))
    original = npyfile.load_array

    def load_then_append(path, *args, **kwargs):
        array = original(path, *args, **kwargs)
        with open(path, 'ab') as fh:
            fh.write(b'more')
        return array

    monkeypatch.setattr(npyfile, 'load_array', load_then_append)
    report = ingest_npy_dir(staging, preds)
    assert report.failures == [('a_0_0.npy', 'changed while being read (still being written?)')]
    assert patch_count(staging) == 0


# -- directory-level problems ---------------------------------------------


def test_directory_problems(tmp_path, make_staging, caplog):
    staging = make_staging()
    with pytest.raises(InvalidOptionError, match='does not exist'):
        ingest_npy_dir(staging, tmp_path / 'nope')
    with pytest.raises(InvalidOptionError, match='not a directory'):
        ingest_npy_dir(staging, staging)
    (tmp_path / 'empty' / 'sub').mkdir(parents=True)
    with caplog.at_level(logging.WARNING, logger='tifwriter_cli'):
        report = ingest_npy_dir(staging, tmp_path / 'empty')
    assert report.matched == 0 and report.ok
    assert 'recursive' in caplog.text
    named = tmp_path / 'named'
    named.mkdir()
    numpy.save(named / 'x1_y2.npy', numpy.ones((2, 2), numpy.uint8))
    with pytest.raises(InvalidOptionError, match="no file name .* matches pattern .*'x1_y2.npy'"):
        ingest_npy_dir(staging, named)
    assert ingest_npy_dir(staging, named, pattern='x{x}_y{y}.npy').staged == 1


def test_a_few_unmatched_names_are_reported_not_fatal(tmp_path, make_staging, caplog):
    staging = make_staging()
    preds = tmp_path / 'preds'
    preds.mkdir()
    numpy.save(preds / 'tile_1_2.npy', numpy.ones((2, 2), numpy.uint8))
    numpy.save(preds / 'mean.npy', numpy.ones(3))
    (preds / 'notes.txt').write_text('ignored')
    with caplog.at_level(logging.WARNING, logger='tifwriter_cli'):
        report = ingest_npy_dir(staging, preds)
    assert (report.staged, report.unmatched, report.unmatched_examples) == (1, 1, ['mean.npy'])
    assert 'mean.npy' in caplog.text


@pytest.mark.parametrize(
    'options, text',
    [
        ({'on_error': 'ignore'}, 'on_error'),
        ({'convert': 'round'}, 'convert'),
        ({'coords': 'level0'}, 'coords'),
        ({'shard': (2, 2)}, 'shard'),
        ({'pattern': '{x}.npy'}, 'pattern'),
    ],
)
def test_invalid_options_raise_before_anything_is_staged(tmp_path, make_staging, options, text):
    staging = make_staging()
    preds = tmp_path / 'preds'
    preds.mkdir()
    numpy.save(preds / 'a_0_0.npy', numpy.ones((2, 2), numpy.uint8))
    with pytest.raises(InvalidOptionError, match=text):
        ingest_npy_dir(staging, preds, **options)
    assert patch_count(staging) == 0


# -- shards and slide coordinates -----------------------------------------


@settings(max_examples=50, deadline=None)
@given(
    names=st.sets(st.text(alphabet='abc_/-0123456789é', min_size=1, max_size=12), max_size=60),
    count=st.integers(min_value=1, max_value=7),
)
def test_shards_cover_every_file_exactly_once(names, count):
    owners = {name: [i for i in range(count) if in_shard(name, (i, count))] for name in names}
    assert all(len(found) == 1 for found in owners.values())


def test_sharded_ingests_together_equal_one_full_ingest(tmp_path, make_staging):
    patches = random_patches(4, 30, width=100, height=80)
    save_all(tmp_path / 'preds', patches)
    staging = make_staging(width=100, height=80, merge='max')
    reports = [ingest_npy_dir(staging, tmp_path / 'preds', shard=(i, 3)) for i in range(3)]
    assert sum(r.staged for r in reports) == 30
    assert all(r.staged + r.skipped_other_shards == 30 for r in reports)
    expected = reference_canvas(width=100, height=80, merge='max', writes=sorted_writes(patches))
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


@pytest.mark.parametrize(
    'text, expected',
    [('0/1', (0, 1)), ('3/8', (3, 8)), (' 7 / 8 ', (7, 8))],
)
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize('text', ['3', '8/8', '-1/4', '1/0', 'a/b', '1/2/3', ''])
def test_parse_shard_refuses(text):
    with pytest.raises(InvalidOptionError, match='shard'):
        parse_shard(text)


@pytest.mark.parametrize(
    'env, expected',
    [
        ({}, None),
        ({'SLURM_ARRAY_TASK_ID': '3', 'SLURM_ARRAY_TASK_COUNT': '8'}, (3, 8)),
        ({'SLURM_ARRAY_TASK_ID': '1', 'SLURM_ARRAY_TASK_COUNT': '10', 'SLURM_ARRAY_TASK_MIN': '1'}, (0, 10)),
        ({'SLURM_ARRAY_TASK_ID': '10', 'SLURM_ARRAY_TASK_COUNT': '10', 'SLURM_ARRAY_TASK_MIN': '1'}, (9, 10)),
        (
            {'SLURM_ARRAY_TASK_ID': '6', 'SLURM_ARRAY_TASK_COUNT': '4', 'SLURM_ARRAY_TASK_MIN': '0',
             'SLURM_ARRAY_TASK_STEP': '2'},
            (3, 4),
        ),
    ],
)
def test_shard_from_slurm_environment(env, expected):
    assert shard_from_environment(env) == expected


@pytest.mark.parametrize(
    'env',
    [
        {'SLURM_ARRAY_TASK_ID': '3'},
        {'SLURM_ARRAY_TASK_ID': 'x', 'SLURM_ARRAY_TASK_COUNT': '8'},
        {'SLURM_ARRAY_TASK_ID': '9', 'SLURM_ARRAY_TASK_COUNT': '8'},  # e.g. --array=1,5,9
        {'SLURM_ARRAY_TASK_ID': '0', 'SLURM_ARRAY_TASK_COUNT': '8', 'SLURM_ARRAY_TASK_MIN': '1'},
    ],
)
def test_shard_from_unusable_slurm_environment(env):
    """(A task id without a count would otherwise stage every file in every task.)"""
    with pytest.raises(InvalidOptionError, match='shard'):
        shard_from_environment(env)


@pytest.mark.parametrize(
    'downsample, slide_xy, canvas_xy',
    [
        (4.0, (4096, 1024), (1024, 256)),
        (4.0, (1001, -3), (250, -1)),  # floor: the canvas pixel holding that slide pixel
        (2.5, (5, 10), (2, 4)),
        (0.1, (3, 7), (30, 70)),  # 3 / 0.1 is 29.999999999999996 in floats
        (1.0, (-7, 9), (-7, 9)),
    ],
)
def test_canvas_position_from_slide_coordinates(downsample, slide_xy, canvas_xy):
    spec = CanvasSpec(width=10, height=10, slide_downsample=downsample)
    assert canvas_position(*slide_xy, coords='slide', spec=spec) == canvas_xy
    assert canvas_position(*slide_xy, coords='canvas', spec=spec) == slide_xy


def test_ingest_with_slide_coordinates(tmp_path):
    staging = tmp_path / 'heatmap.h5'
    tw.create_staging(staging, CanvasSpec(width=64, height=48, slide_downsample=8, kind='probability'))
    preds = tmp_path / 'preds'
    preds.mkdir()
    rng = numpy.random.default_rng(5)
    writes = []
    for slide_x, slide_y in [(0, 0), (256, 128), (-64, 300), (400, 8)]:
        array = rng.integers(0, 255, (16, 16), dtype=numpy.uint8)
        numpy.save(preds / f'tile_{slide_x}_{slide_y}.npy', array)
        writes.append((f'tile_{slide_x}_{slide_y}.npy', slide_x // 8, slide_y // 8, array))
    assert ingest_npy_dir(staging, preds, coords='slide').staged == 4
    expected = reference_canvas(width=64, height=48, writes=sorted_writes(writes))
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


# -- several processes at once ------------------------------------------------

WORKER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from tifwriter_cli.ingest import ingest_npy_dir
    staging, directory, go, shard = sys.argv[1], sys.argv[2], Path(sys.argv[3]), sys.argv[4]
    while not go.exists():  # start together, to maximise interleaving
        time.sleep(0.005)
    report = ingest_npy_dir(
        staging, directory, publish_every_s=0.0,
        shard=None if shard == 'all' else tuple(int(v) for v in shard.split('/')),
    )
    print(report.staged, report.skipped_already_staged, report.failed)
    """
)


def run_workers(tmp_path: Path, staging: Path, directory: Path, shards: list[str]) -> list[tuple[int, int, int]]:
    go = tmp_path / 'go'
    env = dict(os.environ, PYTHONPATH=str(REPO))
    workers = [
        subprocess.Popen(
            [sys.executable, '-c', WORKER, str(staging), str(directory), str(go), shard],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for shard in shards
    ]
    go.touch()
    results = []
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        results.append(tuple(int(v) for v in out.split()))
    return results


@pytest.mark.slow
def test_four_processes_on_disjoint_shards_equal_the_reference(tmp_path, make_staging):
    patches = random_patches(6, 80, width=200, height=160, side=40)
    save_all(tmp_path / 'preds', patches)
    staging = make_staging(width=200, height=160, merge='mean')
    results = run_workers(tmp_path, staging, tmp_path / 'preds', [f'{i}/4' for i in range(4)])
    assert sum(staged for staged, _, _ in results) == 80
    expected = reference_canvas(width=200, height=160, merge='mean', writes=sorted_writes(patches))
    numpy.testing.assert_array_equal(canvas_of(staging), expected)
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.sources) == 80 and snapshot.duplicate_rows == 0


@pytest.mark.slow
def test_processes_racing_on_the_same_directory_count_each_file_once(tmp_path, make_staging):
    patches = random_patches(7, 60, width=160, height=120, side=40)
    save_all(tmp_path / 'preds', patches)
    staging = make_staging(width=160, height=120, merge='mean')
    results = run_workers(tmp_path, staging, tmp_path / 'preds', ['all', 'all', 'all'])
    # Each racer stages what it did not see published at its start, so files
    # may be staged more than once; the snapshot counts each source once.
    assert all(staged + skipped == 60 for staged, skipped, _ in results)
    expected = reference_canvas(width=160, height=120, merge='mean', writes=sorted_writes(patches))
    numpy.testing.assert_array_equal(canvas_of(staging), expected)
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.sources) == 60
        assert snapshot.duplicate_rows == sum(staged for staged, _, _ in results) - 60
    # A later run finds everything staged.
    assert ingest_npy_dir(staging, tmp_path / 'preds').skipped_already_staged == 60


def test_sigterm_ends_the_run_after_the_current_file_and_a_rerun_completes(tmp_path, make_staging):
    import signal

    from tifwriter_cli.termination import sigterm_event

    staging = make_staging(width=100, height=80, merge='mean')
    patches = random_patches(8, 10, width=100, height=80)
    save_all(tmp_path / 'preds', patches)

    def terminate_after_third(done: int, total: int) -> None:
        if done == 3:
            os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    with sigterm_event() as terminated:
        report = ingest_npy_dir(staging, tmp_path / 'preds', progress=terminate_after_third, stop=terminated.is_set)
    assert signal.getsignal(signal.SIGTERM) is previous
    assert report.interrupted and report.staged == 3 and report.ok
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.sources) == 3
    assert not [n for n in os.listdir(fragments_dir(staging)) if n.startswith('.tmp-')]
    report = ingest_npy_dir(staging, tmp_path / 'preds')
    assert (report.staged, report.skipped_already_staged) == (7, 3)
    expected = reference_canvas(width=100, height=80, merge='mean', writes=sorted_writes(patches))
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_a_file_name_that_is_not_utf8_fails_alone(tmp_path, make_staging):
    staging = make_staging(width=10, height=10)
    preds = tmp_path / 'preds'
    preds.mkdir()
    raw_name = os.fsdecode(b't\xff_1_2.npy')  # a Latin-1 era name on a Linux filesystem
    numpy.save(preds / raw_name, numpy.full((2, 2), 1, numpy.uint8))
    numpy.save(preds / 'é_3_4.npy', numpy.full((2, 2), 2, numpy.uint8))
    report = ingest_npy_dir(staging, preds, on_error='skip')
    assert report.staged == 1
    assert report.failures == [(raw_name, 'the file name is not valid UTF-8; rename the file')]
    with tw.read_staging(staging) as snapshot:
        assert {s[0] for s in snapshot.sources} == {file_key(preds / 'é_3_4.npy')}
