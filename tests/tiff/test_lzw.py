"""tifwriter_cli.tiff.lzw: spliced LZW streams decode to the tile's bytes.

Oracles: imagecodecs' encoder and decoder, a strict pure-Python decoder
written here from libtiff's rules (CLEAR anywhere, early change, no
CLEAR right after CLEAR, table never past 4096), and finally libtiff itself
(OpenSlide) and tifffile on finalized files.
"""

from __future__ import annotations

import math
from pathlib import Path

import imagecodecs
import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tifwriter_cli.tiff import lzw
from tifwriter_cli.tiff.lzw import encode_lzw, reference_encode

#: Bytes of a run of one value that fill a fresh string table (strings of
#: length 1 .. 3838, the codes 258 .. 4095): one byte more and the encoder
#: must write a 12-bit CLEAR inside the run.
TABLE_FULL_RUN = 3838 * 3839 // 2


def strict_decode(stream: bytes) -> tuple[bytes, int]:
    """(decoded bytes, number of CLEAR codes) of a TIFF LZW stream, checked strictly."""
    value = int.from_bytes(stream, 'big')
    total = 8 * len(stream)
    position = 0
    out = bytearray()
    clears = 0
    table: list[bytes] | None = None
    previous: bytes | None = None
    width = 9
    while True:
        assert position + width <= total, 'stream ends without EOI'
        code = (value >> (total - position - width)) & ((1 << width) - 1)
        position += width
        if code == 257:
            break
        if code == 256:
            assert table is None or previous is not None, 'CLEAR right after CLEAR'
            clears += 1
            table = [bytes([i]) for i in range(256)] + [b'', b'']
            previous = None
            width = 9
            continue
        assert table is not None, 'stream does not start with CLEAR'
        if previous is None:
            assert code < 256, f'first code after CLEAR is {code}'
            entry = table[code]
        elif code < len(table):
            entry = table[code]
        else:
            assert code == len(table), f'code {code} not in the table ({len(table)})'
            entry = previous + previous[:1]
        out += entry
        if previous is not None:
            table.append(previous + entry[:1])
            assert len(table) <= 4096, 'table overflow without CLEAR'
        previous = entry
        # libtiff's early change: widen when the next free code reaches 2**width - 1.
        if len(table) >= (1 << width) - 1 and width < 12:
            width += 1
    assert total - position < 16 and not value & ((1 << (total - position)) - 1), 'bad padding'
    return bytes(out), clears


def analytic_run(value: int, count: int) -> bytes:
    """The stream of ``count`` bytes ``value`` as built by the analytic path alone."""
    stream = lzw._Stream()
    stream.add_run(value, count, align_next=False)
    return stream.finish()


def segment_count(tile: numpy.ndarray, min_run_bytes: int) -> tuple[int, int]:
    """(uniform row blocks that must be spliced, segments in all), by a plain loop."""
    rows = numpy.ascontiguousarray(tile).reshape(tile.shape[0], -1).view(numpy.uint8)
    min_rows = math.ceil(min_run_bytes / rows.shape[1])
    keys = [int(row[0]) if (row == row[0]).all() else -1 for row in rows]
    blocks, segments, start = 0, 0, 0
    previous_mixed = False
    while start < len(keys):
        end = start
        while end < len(keys) and keys[end] == keys[start]:
            end += 1
        if keys[start] >= 0 and end - start >= min_rows:
            blocks += 1
            segments += 1
            previous_mixed = False
        elif not previous_mixed:
            segments += 1
            previous_mixed = True
        start = end
    return blocks, segments


# -- the rules ----------------------------------------------------------------------


def test_reference_encoder_is_imagecodecs_byte_for_byte() -> None:
    rng = numpy.random.default_rng(5)
    inputs = [b'', b'\x00', b'\x01\x02', bytes(3), bytes(range(256)) * 3]
    for size in (2, 10, 255, 300, 600, 1500, 5000, 20000, 60000):
        inputs.append(rng.integers(0, 256, size, dtype=numpy.uint8).tobytes())  # > 4096 codes
        inputs.append(rng.integers(0, 3, size, dtype=numpy.uint8).tobytes())
        blocks = numpy.repeat(rng.integers(0, 4, size // 40 + 1, dtype=numpy.uint8), 40)
        inputs.append(blocks[:size].tobytes())
    for data in inputs:
        assert reference_encode(data) == imagecodecs.lzw_encode(data), len(data)


def test_strict_decoder_reads_imagecodecs_streams() -> None:
    # The test's own decoder must agree with imagecodecs before it judges ours.
    rng = numpy.random.default_rng(6)
    for data in (
        b'\x07',
        rng.integers(0, 256, 12000, dtype=numpy.uint8).tobytes(),
        bytes(70000),
    ):
        decoded, clears = strict_decode(imagecodecs.lzw_encode(data))
        assert decoded == data
        # 12000 random bytes take ~11600 codes: the table fills 3 times.
        assert clears == (4 if len(data) == 12000 else 1)


def test_installed_imagecodecs_follows_the_rules() -> None:
    assert lzw.splicing_supported()


def test_parse_finds_the_eoi_and_rejects_other_streams() -> None:
    rng = numpy.random.default_rng(7)
    for size in (1, 2, 100, 3000, 9000, 30000):
        data = rng.integers(0, 256, size, dtype=numpy.uint8).tobytes()
        encoded = imagecodecs.lzw_encode(data)
        bits, codes = lzw._parse(encoded)
        # The EOI sits at ``bits`` with the width of code number codes + 1.
        width = lzw._code_width(codes + 1)
        tail = int.from_bytes(encoded, 'big') >> (8 * len(encoded) - bits - width)
        assert tail & ((1 << width) - 1) == 257
        assert lzw._parse(encoded[:-2]) is None
        if encoded[-1] == 0:  # a whole byte of padding: a plain encoder's stream is fine too
            assert lzw._parse(encoded[:-1]) == (bits, codes)
        else:
            assert lzw._parse(encoded[:-1]) is None
        assert lzw._parse(encoded + b'\x01') is None
        assert lzw._parse(encoded[:-1] + bytes([encoded[-1] ^ 0x01])) is None
        assert lzw._parse(b'\x00' + encoded[1:]) is None


@pytest.mark.parametrize('value', [0, 1, 127, 255])
def test_analytic_runs_are_imagecodecs_byte_for_byte(value: int) -> None:
    counts = set(range(1, 300))
    for written in (
        252,
        253,
        254,
        255,
        256,
        765,
        766,
        767,
        1789,
        1790,
        1791,
        3836,
        3837,
    ):
        triangle = written * (written + 1) // 2  # strings 1..written, then the rest
        counts.update((triangle - 1, triangle, triangle + 1, triangle + 2))
    for count in sorted(counts):
        data = bytes([value]) * count
        assert analytic_run(value, count) == imagecodecs.lzw_encode(data), count


def test_runs_across_a_full_table() -> None:
    # A run fills the table after TABLE_FULL_RUN bytes; one byte more and a
    # 12-bit CLEAR appears inside the analytic segment.
    for count, clears in (
        (TABLE_FULL_RUN - 1, 1),
        (TABLE_FULL_RUN, 1),
        (TABLE_FULL_RUN + 1, 2),
        (TABLE_FULL_RUN + 2, 2),
        (2 * TABLE_FULL_RUN, 2),
        (2 * TABLE_FULL_RUN + 1, 3),
    ):
        stream = analytic_run(9, count)
        assert stream == imagecodecs.lzw_encode(bytes([9]) * count), count
        decoded, found = strict_decode(stream)
        assert decoded == bytes([9]) * count and found == clears, count
    # A uniform 4096 x 4096 tile: two full tables, all analytic.
    tile = numpy.full((4096, 4096, 1), 200, numpy.uint8)
    stream = encode_lzw(tile)
    assert stream == imagecodecs.lzw_encode(tile)
    assert strict_decode(stream)[1] == 3


# -- spliced tiles ---------------------------------------------------------------------


@st.composite
def tiles_with_uniform_rows(draw: st.DrawFn) -> tuple[numpy.ndarray, int]:
    height = draw(st.sampled_from([16, 32, 48, 64, 128, 256, 512]))
    width = draw(st.sampled_from([16, 32, 64, 128, 256, 512]))
    dtype = numpy.dtype(draw(st.sampled_from(['uint8', 'uint16', 'float32'])))
    channels = draw(st.sampled_from([1, 3]))
    levels = draw(st.sampled_from([2, 5, 256]))  # busy rows: compressible or noise
    rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    raw = rng.integers(0, levels, (height, width * channels * dtype.itemsize), dtype=numpy.uint8)
    blocks = draw(
        st.lists(
            st.tuples(
                st.integers(0, height - 1),
                st.integers(1, height),
                st.sampled_from([0, 1, 63, 128, 255]),
            ),
            max_size=5,
        )
    )
    for start, length, value in blocks:
        raw[start : start + length] = value
    tile = raw.view(dtype).reshape(height, width, channels)
    min_run_bytes = draw(st.sampled_from([1, 40, 100, 4096, lzw.MIN_RUN_BYTES]))
    return tile, min_run_bytes


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiles_with_uniform_rows())
def test_spliced_tiles_decode_to_the_tile(case: tuple[numpy.ndarray, int]) -> None:
    tile, min_run_bytes = case
    stream = encode_lzw(tile, min_run_bytes=min_run_bytes)
    assert imagecodecs.lzw_decode(stream) == tile.tobytes()
    blocks, segments = segment_count(tile, min_run_bytes)
    if blocks == 0:
        assert stream == imagecodecs.lzw_encode(tile)
    if tile.nbytes <= 200_000:
        decoded, clears = strict_decode(stream)
        assert decoded == tile.tobytes()
        # Every segment starts with a CLEAR (more: full tables, alignment).
        assert clears >= segments


def test_large_tiles_cross_full_tables_inside_segments() -> None:
    # 1024 x 1024 noise: each busy segment fills the table several times.
    rng = numpy.random.default_rng(8)
    for dtype, blocks in (
        ('uint8', [(0, 100, 0), (300, 40, 255), (700, 324, 3)]),
        ('uint16', [(10, 20, 0), (500, 1, 7), (900, 50, 0)]),
        ('float32', [(200, 400, 0)]),
    ):
        itemsize = numpy.dtype(dtype).itemsize
        raw = rng.integers(0, 256, (1024, 1024 * itemsize), dtype=numpy.uint8)
        for start, length, value in blocks:
            raw[start : start + length] = value
        tile = raw.view(dtype).reshape(1024, 1024, 1)
        stream = encode_lzw(tile)
        assert stream != imagecodecs.lzw_encode(tile)  # it was spliced
        assert imagecodecs.lzw_decode(stream) == tile.tobytes()


def mixed_prefix(rng: numpy.random.Generator, total_codes: int) -> bytes:
    """Bytes 1..255 whose imagecodecs stream has exactly ``total_codes`` codes (CLEARs aside)."""
    noise = rng.integers(1, 256, 3 * total_codes + 100, dtype=numpy.uint8).tobytes()

    def codes(length: int) -> int:
        bits, in_table = lzw._parse(imagecodecs.lzw_encode(noise[:length]))
        tables = (bits - 9 - lzw._CUM_BITS[in_table]) // lzw._TABLE_BITS
        return tables * lzw._CODES_PER_TABLE + in_table

    low, high = 1, len(noise)  # one more byte adds at most one code: every count is hit
    while low < high:
        middle = (low + high) // 2
        if codes(middle) < total_codes:
            low = middle + 1
        else:
            high = middle
    assert codes(low) == total_codes
    return noise[:low]


@pytest.mark.parametrize(
    'prefix_codes',
    [
        1,
        2,
        253,
        254,
        255,
        765,
        766,
        767,
        1789,
        1790,
        1791,
        3837,
        3838,
        3839,
        3838 + 254,
    ],
)
def test_segment_boundaries_at_every_width_change(prefix_codes: int) -> None:
    # Busy bytes whose last code sits just before / at / after a code-width
    # change (or a full table), then a run, then more busy bytes: the CLEARs
    # between segments must have the widths the decoder expects.
    rng = numpy.random.default_rng(prefix_codes)
    prefix = mixed_prefix(rng, prefix_codes)
    suffix = rng.integers(1, 256, 500, dtype=numpy.uint8).tobytes()
    for run in (64, 100, 32_000, 32_600):
        data = prefix + bytes(run) + suffix
        tile = numpy.frombuffer(data, numpy.uint8).reshape(-1, 1, 1)  # one byte per row
        stream = encode_lzw(tile, min_run_bytes=64)
        decoded, clears = strict_decode(stream)
        assert decoded == data
        assert clears >= 3
        assert imagecodecs.lzw_decode(stream) == data


@pytest.mark.parametrize('run_codes', [2, 30, 253, 254, 255, 256, 766, 767])
def test_runs_ending_at_every_width_change(run_codes: int) -> None:
    # A run whose last code is just before / at a width change, between busy rows.
    rng = numpy.random.default_rng(run_codes)
    written = run_codes - 1
    for count in (written * (written + 1) // 2 + 1, (written + 1) * (written + 2) // 2):
        busy = rng.integers(1, 256, 300, dtype=numpy.uint8).tobytes()
        data = busy + bytes(count + lzw._ALIGN_BYTES) + busy
        tile = numpy.frombuffer(data, numpy.uint8).reshape(-1, 1, 1)
        for min_run in (1, 64):
            stream = encode_lzw(tile, min_run_bytes=min_run)
            assert strict_decode(stream)[0] == data
        # Without the alignment prefix too (the run alone, unaligned splice).
        data = busy + bytes(count) + busy
        tile = numpy.frombuffer(data, numpy.uint8).reshape(-1, 1, 1)
        assert strict_decode(encode_lzw(tile, min_run_bytes=1))[0] == data


def test_short_runs_splice_unaligned() -> None:
    # Runs too short for the alignment prefix: imagecodecs' bytes are shifted.
    rng = numpy.random.default_rng(9)
    tile = rng.integers(0, 256, (64, 16, 1), dtype=numpy.uint8)
    tile[5] = 0
    tile[20:22] = 255
    tile[40] = 3
    stream = encode_lzw(tile, min_run_bytes=1)
    decoded, clears = strict_decode(stream)
    assert decoded == tile.tobytes()
    assert clears == 7  # 3 runs and 4 busy blocks, no prefix


def test_busy_segments_after_long_runs_are_joined_unshifted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The design keeps imagecodecs' bytes as they are (no Python bit shifts
    # holding the GIL): a run longer than the alignment prefix ends where the
    # next busy segment starts on a byte boundary.
    heads: list[int] = []
    original = lzw._Stream.add_encoded

    def spy(self: lzw._Stream, data: bytes, nbits: int, codes: int) -> None:
        heads.append((self.pending_bits + self.widening()) % 8)
        original(self, data, nbits, codes)

    monkeypatch.setattr(lzw._Stream, 'add_encoded', spy)
    rng = numpy.random.default_rng(13)
    for _tile_number in range(40):
        tile = rng.integers(0, 3, (128, 64, 1), dtype=numpy.uint8)
        for _ in range(3):
            start = int(rng.integers(0, 120))
            tile[start : start + int(rng.integers(1, 9))] = int(rng.integers(0, 256))
        stream = encode_lzw(tile, min_run_bytes=lzw._ALIGN_BYTES + 1)
        assert imagecodecs.lzw_decode(stream) == tile.tobytes()
    assert len(heads) > 80 and set(heads) == {0}


def test_whole_uniform_tiles_are_imagecodecs_byte_for_byte() -> None:
    for tile in (
        numpy.zeros((512, 512, 1), numpy.uint8),
        numpy.full((256, 256, 3), 255, numpy.uint8),
        numpy.zeros((512, 512, 1), numpy.float32),
        numpy.full((16, 16, 1), 0x0101, numpy.uint16),
    ):
        assert encode_lzw(tile) == imagecodecs.lzw_encode(tile)


def test_fallback_when_verification_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = numpy.random.default_rng(10)
    tile = rng.integers(0, 4, (512, 512, 1), dtype=numpy.uint8)
    tile[100:300] = 0
    assert encode_lzw(tile) != imagecodecs.lzw_encode(tile)  # normally spliced
    monkeypatch.setattr(lzw, '_parse', lambda data: None)
    stream = encode_lzw(tile)
    assert stream == imagecodecs.lzw_encode(tile)
    assert imagecodecs.lzw_decode(stream) == tile.tobytes()


def test_no_splicing_when_imagecodecs_breaks_the_rules(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tile = numpy.zeros((512, 512, 1), numpy.uint8)
    tile[:10] = 5
    tile[10:12, :7] = 6
    monkeypatch.setattr(lzw, 'segment_encoder', lambda: None)
    assert not lzw.splicing_supported()
    assert encode_lzw(tile) == imagecodecs.lzw_encode(tile)


# -- the compiled segment encoder (optional extension, _speedups.c) ---------------------


def compiled_encoder():  # type: ignore[no-untyped-def]
    """The compiled encoder; skips only where no C compiler could build it."""
    import shutil

    try:
        from tifwriter_cli.tiff import _speedups
    except ImportError:
        if shutil.which('cc') is None and shutil.which('gcc') is None:
            pytest.skip('no C compiler on this machine: the compiled LZW encoder cannot be built')
        raise AssertionError(
            'tifwriter_cli.tiff._speedups is not built although a C compiler is here '
            "(pip install -e '.[test]' builds it; see the install log)"
        ) from None
    return _speedups.lzw_encode


def test_compiled_encoder_is_built_and_chosen() -> None:
    compiled_encoder()
    assert lzw.encoder_name() == 'compiled'
    assert lzw.segment_encoder() is compiled_encoder()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    alphabet=st.sampled_from([1, 2, 3, 5, 32, 33, 64, 200, 256]),
    length=st.integers(0, 12000),
    run=st.one_of(st.integers(1, 50), st.integers(50, 6000)),
    seed=st.integers(0, 2**32 - 1),
)
def test_compiled_encoder_is_imagecodecs_byte_for_byte(
    alphabet: int, length: int, run: int, seed: int
) -> None:
    # Small alphabets take the direct table (and its run ladder: long runs
    # climbed in one step), large ones the hashed one; runs make long
    # strings (many codes reused), lengths cross full tables.
    encode = compiled_encoder()
    rng = numpy.random.default_rng(seed)
    values = rng.choice(256, alphabet, replace=False).astype(numpy.uint8)
    data = numpy.repeat(values[rng.integers(0, alphabet, -(-length // run))], run)[:length].tobytes()
    assert encode(data) == imagecodecs.lzw_encode(data)
    assert imagecodecs.lzw_decode(encode(data)) == data


def test_compiled_encoder_long_inputs() -> None:
    # Many table generations in one call (the stamps, not a reset, retire entries),
    # on both table kinds, and a buffer that is a numpy array, not bytes.
    encode = compiled_encoder()
    rng = numpy.random.default_rng(5)
    for data in (
        rng.integers(0, 256, 3_000_000, dtype=numpy.uint8),
        rng.integers(0, 7, 3_000_000, dtype=numpy.uint8),
        numpy.zeros(TABLE_FULL_RUN * 3 + 17, numpy.uint8),
        rng.random((512, 512), dtype=numpy.float32),
    ):
        assert encode(data) == imagecodecs.lzw_encode(data)
        head = data.reshape(-1).view(numpy.uint8)[:5000]
        assert reference_encode(head.tobytes()) == encode(head)
    with pytest.raises((BufferError, ValueError)):
        encode(numpy.zeros((64, 64), numpy.uint8)[:, ::2])  # not contiguous


@pytest.mark.parametrize('which', ['compiled', 'imagecodecs'])
def test_spliced_tiles_identical_with_either_segment_encoder(
    monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    # The pure path (imagecodecs, what runs where the extension is not built)
    # and the compiled one write the same bytes for the same tile.
    rng = numpy.random.default_rng(21)
    encode = compiled_encoder() if which == 'compiled' else imagecodecs.lzw_encode
    monkeypatch.setattr(lzw, 'segment_encoder', lambda: encode)
    for channels, dtype in ((1, 'uint8'), (3, 'uint8'), (1, 'float32')):
        canvas = banded_canvas(rng, 512, 512, channels, dtype)
        stream = encode_lzw(canvas)
        assert strict_decode(stream)[0] == canvas.tobytes()
        monkeypatch.setattr(lzw, 'segment_encoder', lambda: imagecodecs.lzw_encode)
        assert encode_lzw(canvas) == stream
        monkeypatch.setattr(lzw, 'segment_encoder', lambda: encode)


def test_compiled_encoder_that_breaks_the_rules_is_not_used(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compiled = compiled_encoder()
    real = lzw._follows_the_rules
    monkeypatch.setattr(
        lzw,
        '_follows_the_rules',
        lambda encode: encode is not compiled and real(encode),
    )
    lzw._chosen_encoder.cache_clear()
    try:
        assert lzw.encoder_name() == 'imagecodecs'
        assert lzw.segment_encoder() is imagecodecs.lzw_encode
    finally:
        monkeypatch.undo()
        lzw._chosen_encoder.cache_clear()
    assert lzw.encoder_name() == 'compiled'


# -- through finalize: libtiff (OpenSlide) and tifffile read every level -------------------


def banded_canvas(
    rng: numpy.random.Generator, height: int, width: int, channels: int, dtype: str
) -> numpy.ndarray:
    """Busy pixels with bands of uniform rows (0, the dtype's max, white...)."""
    if dtype == 'float32':
        canvas = rng.random((height, width, channels), dtype=numpy.float32)
        values = (0.0, 1.0)
    else:
        canvas = rng.integers(0, 6, (height, width, channels)).astype(dtype)
        values = (0, numpy.iinfo(dtype).max)
    y = 0
    while y < height:
        band = int(rng.integers(1, 400))
        canvas[y : y + band] = values[int(rng.integers(0, 2))]
        y += band + int(rng.integers(1, 300))
    # Blobs that cross some bands (rows that are uniform only in part).
    for _ in range(10):
        y, x = int(rng.integers(0, height)), int(rng.integers(0, width))
        canvas[y : y + 150, x : x + 150] = 3
    return canvas


@pytest.mark.parametrize(
    'name, channels, dtype, kind, resampling',
    [
        ('labels', 1, 'uint8', 'labels', 'mode'),
        ('rgb', 3, 'uint8', 'image', 'mean'),
        ('float', 1, 'float32', 'probability', 'mean'),
    ],
)
def test_finalized_spliced_tiles_read_back(
    tmp_path: Path, name: str, channels: int, dtype: str, kind: str, resampling: str
) -> None:
    import tifffile

    from tifwriter_cli.finalization import finalize
    from tifwriter_cli.sources import ArraySource
    from tifwriter_cli.spec import CanvasSpec

    from tests.helpers.tiff_reference import (
        model_pyramid,
        openslide_expected_rgba,
        read_levels_openslide,
        read_levels_tifffile,
    )

    rng = numpy.random.default_rng(12)
    height, width, tile_size = 1536, 2048, 256  # every level a whole number of tiles
    canvas = banded_canvas(rng, height, width, channels, dtype)
    spec = CanvasSpec(
        width=width,
        height=height,
        channels=channels,
        dtype=dtype,
        tile_size=tile_size,
        kind=kind,
    )
    path = tmp_path / f'{name}.tif'
    finalize(ArraySource(spec, canvas), path, compression='lzw', resampling=resampling)
    expected = model_pyramid(canvas, resampling, tile_size)
    assert len(expected) == 2

    levels = read_levels_tifffile(path)
    assert len(levels) == len(expected)
    for number, (got, want) in enumerate(zip(levels, expected, strict=True)):
        numpy.testing.assert_array_equal(got, want, err_msg=f'tifffile level {number}')
    if dtype == 'uint8':  # OpenSlide reads no float
        levels = read_levels_openslide(path)
        assert len(levels) == len(expected)
        for number, (got, want) in enumerate(zip(levels, expected, strict=True)):
            numpy.testing.assert_array_equal(
                got, openslide_expected_rgba(want), err_msg=f'OpenSlide level {number}'
            )

    # The file really holds spliced streams (not imagecodecs' own) on every level.
    data = path.read_bytes()
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            spliced = 0
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
                stream = data[offset : offset + count]
                decoded = imagecodecs.lzw_decode(stream)
                spliced += stream != imagecodecs.lzw_encode(decoded)
            assert spliced >= 3, f'only {spliced} spliced tiles on a level'


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    height=st.integers(1, 70),
    row_bytes=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
    min_rows=st.integers(1, 6),
)
def test_uniform_row_blocks_compiled_equal_numpy(
    monkeypatch: pytest.MonkeyPatch, height: int, row_bytes: int, seed: int, min_rows: int
) -> None:
    compiled_encoder()
    rng = numpy.random.default_rng(seed)
    rows = rng.integers(0, 3, (height, row_bytes), dtype=numpy.uint8)
    for y in rng.integers(0, height, height // 2):  # uniform rows, runs of them
        rows[y : y + int(rng.integers(1, 8))] = rng.integers(0, 3)
    row = int(rng.integers(0, height))
    rows[row] = 2
    rows[row, -1] = 1  # differs in the last byte only (the 8-byte loop's tail)
    compiled = lzw._uniform_blocks(rows, min_rows)
    with monkeypatch.context() as patch:
        patch.setattr(lzw, '_compiled', None)
        assert compiled == lzw._uniform_blocks(rows, min_rows)
