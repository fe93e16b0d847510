"""TIFF LZW (Compression 5) tile encoding that skips the work on uniform rows.

Why not just ``imagecodecs.lzw_encode``: LZW is the default compression
(the one ASAP, OpenSlide and every reader decode) and encoding is most of
``finalize``'s CPU time. Measured per 512 x 512 tile
(``python benchmarks/lzw_gain.py``; docs/benchmarks.md, "The LZW encoder"):
:func:`encode_lzw` is 5-6x imagecodecs' encoder on a label blob over
background, 2-2.5x on half background / half noisy classes and 2.7-3.8x on a
float32 band between rows of 0.0; against our compiled encoder alone the
splicing adds 1.2x, 1.0x and 2.6-3.6x on the same tiles.

The fallbacks, each automatic and each giving a valid stream that decodes to
the same bytes: no compiled extension (no C compiler at install), or one
that fails its self-test -> imagecodecs' encoder for the segments; no
segment encoder passing the self-test -> every tile by imagecodecs alone,
unspliced; a segment failing its check -> that tile by imagecodecs alone.
:func:`encoder_name` says which path runs.

``imagecodecs.lzw_encode`` costs the same per input byte whether the bytes
are busy or all zero. Label masks and probability maps are full of rows whose
bytes are all one value (background 0, float 0.0, RGB white), so
:func:`encode_lzw` cuts a tile into row blocks and builds ONE valid LZW
stream from segments::

    [CLEAR codes...] [CLEAR codes...] ... EOI

A TIFF LZW decoder (libtiff, tifffile, imagecodecs, ASAP's) accepts a CLEAR
anywhere: it resets the string table and the code width to 9. Long blocks of
uniform rows are encoded *analytically* (a run of N copies of byte v from a
fresh table is the codes v, 258, 259, ... for strings of length 1, 2, 3, ...
then one code for the rest: O(sqrt(N)) codes, cached), and the other row
blocks by :func:`segment_encoder` (C, releases the GIL). Each CLEAR that
starts a segment is written at the width the decoder expects at that point.

The segment encoder is our own compiled one (``_speedups.c``, an optional
extension built at install: a string table indexed directly by code and
byte over the tile's few distinct byte values, ~1.3-2x imagecodecs' speed on
masks and maps) or, when it is not built, ``imagecodecs.lzw_encode``. Both
write the same bytes, by the rules below, and are checked the same way.

The code widths of imagecodecs' encoder (imcd_lzw_encode) depend only on how
many codes were written since the last CLEAR (:func:`_code_width`; the table
fills after 3838 codes and it writes a CLEAR at 12 bits), and it ends with EOI
plus 1 to 8 zero bits. So from the byte length of its output we know the code
count, the bit length without the EOI and the width of the next code; every
segment is verified (the code where the EOI must be is 257, the padding is
zero, the stream starts with CLEAR) and a once-per-process self-test compares
the segment encoder with :func:`reference_encode` (the rules in pure Python;
the compiled encoder falls back to imagecodecs when it fails). If a check
fails, the whole tile is encoded by imagecodecs alone: correct, just slower.

Splicing at arbitrary bit offsets would mean shifting imagecodecs' output in
Python while holding the GIL, so an analytic segment that precedes an
imagecodecs segment is given a bit length that makes the next segment start
on a byte boundary (:func:`_align_prefix`); imagecodecs' bytes are then
joined as they are.
"""

from __future__ import annotations

import functools
import logging
import math
from bisect import bisect_left
from collections.abc import Callable
from typing import Any

import numpy

__all__ = [
    'MIN_RUN_BYTES',
    'encode_lzw',
    'encoder_name',
    'reference_encode',
    'segment_encoder',
    'splicing_supported',
]

logger = logging.getLogger(__name__)

CLEAR = 256
EOI = 257

#: A block of uniform rows is encoded analytically only from this many bytes
#: on: every splice restarts the string table, so the run and the rows after
#: it compress worse than in one stream. Measured on 512-px tiles of the
#: benchmark label mask (which LZW shrinks ~100x, so a few hundred bytes show):
#: 4 KiB 1.35x faster / 8.0 % larger, 8 KiB 1.34x / 7.2 %, 16 KiB 1.31x /
#: 6.4 %, 64 KiB 1.27x / 4.3 %; float32 maps grow < 0.1 % at any of these.
MIN_RUN_BYTES = 8192

#: Codes written after a CLEAR until imagecodecs' table is full (next code
#: 258 .. 4095); it then writes a CLEAR at 12 bits.
_CODES_PER_TABLE = 3838
#: Bytes of a run of one value that fill a fresh table: strings 1..3838 long.
_RUN_PER_TABLE = _CODES_PER_TABLE * (_CODES_PER_TABLE + 1) // 2


def _code_width(index: int) -> int:
    """Bit width of the ``index``-th code (1-based) after a CLEAR.

    The encoder adds a table entry before writing each code and widens when
    the next free code reaches 512/1024/2048 ("early change", as libtiff
    decodes); the code that follows a segment (EOI, or the CLEAR of the next
    segment) obeys the same rule.
    """
    code = 257 + index
    return 9 if code < 512 else 10 if code < 1024 else 11 if code < 2048 else 12


#: _CUM_BITS[j]: bits of the first j codes after a CLEAR, j = 0 .. 3839
#: (index 3839 is the 12-bit CLEAR of a full table, or an EOI right before it).
_CUM_BITS = [0]
for _index in range(1, _CODES_PER_TABLE + 2):
    _CUM_BITS.append(_CUM_BITS[-1] + _code_width(_index))
del _index
#: Bits of one full table after its CLEAR: 3838 codes and the 12-bit CLEAR.
_TABLE_BITS = _CUM_BITS[_CODES_PER_TABLE + 1]


# -- the rules, in plain Python (tests and the self-test) --------------------


def reference_encode(data: bytes) -> bytes:
    """LZW-encode ``data`` exactly as ``imagecodecs.lzw_encode`` does (slow).

    A transcription of imagecodecs' imcd_lzw_encode: CLEAR; codes written
    MSB-first, each after adding its table entry; widths 9..12; a 12-bit
    CLEAR when the next code would be 4096; EOI; then zero bits up to the
    NEXT byte boundary (a whole zero byte when already aligned).
    """
    bits = 0
    nbits = 0

    def write(code: int, width: int) -> None:
        nonlocal bits, nbits
        bits = (bits << width) | code
        nbits += width

    write(CLEAR, 9)
    width = 9
    if data:
        table: dict[tuple[int, int], int] = {}
        omega = data[0]
        next_code = 258
        for byte in data[1:]:
            known = table.get((omega, byte))
            if known is not None:
                omega = known
                continue
            table[(omega, byte)] = next_code
            next_code += 1
            write(omega, width)
            omega = byte
            if next_code == 512:
                width = 10
            elif next_code == 1024:
                width = 11
            elif next_code == 2048:
                width = 12
            elif next_code == 4096:
                write(CLEAR, width)
                table.clear()
                next_code = 258
                width = 9
        write(omega, width)
        width = {511: 10, 1023: 11, 2047: 12}.get(next_code, width)
    write(EOI, width)
    nbytes = nbits // 8 + 1
    return (bits << (8 * nbytes - nbits)).to_bytes(nbytes, 'big')


def _self_test_samples() -> list[bytes]:
    """Inputs that cover every code width, a full table (its 12-bit CLEAR)
    and the padding of both byte alignments."""
    rng = numpy.random.default_rng(20240601)
    return [
        b'',
        b'\x07',
        bytes(100),
        rng.integers(0, 256, 6000, dtype=numpy.uint8).tobytes(),
        numpy.repeat(rng.integers(0, 3, 400, dtype=numpy.uint8), 9).tobytes(),
        numpy.repeat(rng.integers(0, 40, 3000, dtype=numpy.uint8), 3).tobytes(),
        bytes(range(256)) * 40,
    ]


def _follows_the_rules(encode: Callable[[bytes], bytes]) -> bool:
    """Whether ``encode`` matches :func:`reference_encode` on the self-test
    samples and :func:`_parse` reads its output."""
    for sample in _self_test_samples():
        encoded = encode(sample)
        if encoded != reference_encode(sample) or (sample and _parse(encoded) is None):
            return False
    return True


def segment_encoder() -> Callable[[Any], bytes] | None:
    """The LZW encoder of the segments we splice, checked once per process.

    The compiled encoder (``_speedups``, built from ``_speedups.c`` at install when a
    C compiler is there) when it is importable and follows the rules, else
    imagecodecs' when it does; None if neither does (then tiles are encoded
    by imagecodecs alone, unspliced). Both produce the same bytes.
    """
    return _chosen_encoder()[1]


@functools.cache
def _chosen_encoder() -> tuple[str, Callable[[Any], bytes] | None]:
    import imagecodecs

    candidates: list[tuple[str, Callable[[Any], bytes]]] = []
    try:
        from . import _speedups  # type: ignore[attr-defined]
    except ImportError:
        logger.debug('compiled LZW encoder not built: using imagecodecs (slower)')
    else:
        candidates.append(('compiled', _speedups.lzw_encode))
    candidates.append(('imagecodecs', imagecodecs.lzw_encode))
    for name, encode in candidates:
        try:
            if _follows_the_rules(encode):
                return name, encode
        except Exception as exc:  # noqa: BLE001  (any surprise means: do not use it)
            logger.debug('LZW encoder %s failed its self-test: %s', name, exc)
        logger.warning(
            '%s LZW encoder does not follow the expected rules: not used%s',
            name,
            ''
            if name != candidates[-1][0]
            else ' (tiles are encoded without splicing: slower, still correct)',
        )
    return 'imagecodecs (unspliced)', None


def encoder_name() -> str:
    """Which LZW encoder :func:`encode_lzw` uses: 'compiled', 'imagecodecs' or 'imagecodecs (unspliced)'."""
    return _chosen_encoder()[0]


def splicing_supported() -> bool:
    """Whether tiles are spliced (a segment encoder passed its self-test)."""
    return segment_encoder() is not None


# -- reading imagecodecs' output -----------------------------------------------


def _parse(data: bytes) -> tuple[int, int] | None:
    """(bits before the EOI, codes since the last CLEAR) of an imagecodecs stream.

    Every code is at least 9 bits, so the byte length fixes the code count;
    the result is verified by reading the code where the EOI must be. None
    when the stream is not as expected.
    """
    size = len(data)
    if size < 3 or data[0] != 0x80 or data[1] & 0x80:  # must start with a 9-bit CLEAR
        return None
    # Bits after the leading CLEAR, EOI included: imagecodecs pads 1..8 zero
    # bits (a plain encoder 0..7): [8*size - 17, 8*size - 9]. Two code counts
    # are at least 9 bits apart, so at most one fits this window.
    high = 8 * size - 9
    low = high - 8
    for tables in sorted({max(low - 1, 0) // _TABLE_BITS, max(high - 1, 0) // _TABLE_BITS}):
        base = tables * _TABLE_BITS
        index = bisect_left(_CUM_BITS, low - base)
        if 2 <= index <= _CODES_PER_TABLE + 1 and _CUM_BITS[index] <= high - base:
            break
    else:
        return None
    eoi_at = 9 + base + _CUM_BITS[index - 1]
    width = _CUM_BITS[index] - _CUM_BITS[index - 1]
    first_byte = eoi_at >> 3
    tail = int.from_bytes(data[first_byte:], 'big')
    after = 8 * (size - first_byte) - (eoi_at & 7) - width  # padding bits
    if (tail >> after) & ((1 << width) - 1) != EOI or tail & ((1 << after) - 1):
        return None
    return eoi_at, index - 1


# -- analytic segments -----------------------------------------------------------


@functools.cache
def _ascending_codes() -> tuple[int, int]:
    """(bits, bit count) of the codes 258, 259, ..., 4094 at indices 2 .. 3838.

    Within a run of one byte value the code at index i (i >= 2) is always
    256 + i: the string of length i, added to the table by the code before.
    """
    text = ''.join(
        format(256 + index, f'0{_code_width(index)}b') for index in range(2, _CODES_PER_TABLE + 1)
    )
    return int(text, 2), len(text)


@functools.lru_cache(maxsize=4096)
def _run_segment(value: int, count: int) -> tuple[int, int, int]:
    """CLEAR + the codes of ``count`` (>= 1) bytes ``value`` from a fresh table.

    Returns (bits, bit count, codes since the last CLEAR). The greedy parse
    emits strings of length 1, 2, 3, ...: code ``value``, then 258, 259, ...;
    after 3838 codes the table is full: a 12-bit CLEAR and the rest of the
    run starts over. Byte-identical to imagecodecs (tested).
    """
    ascending, ascending_bits = _ascending_codes()
    bits, nbits = CLEAR, 9
    remaining = count
    while remaining > _RUN_PER_TABLE:
        bits = (((bits << 9 | value) << ascending_bits | ascending) << 12) | CLEAR
        nbits += 9 + ascending_bits + 12
        remaining -= _RUN_PER_TABLE
    # m strings of length 1..m (the last one written needs one byte after
    # it), then the rest, 1 <= rest <= m + 1, as one code.
    written = (math.isqrt(8 * (remaining - 1) + 1) - 1) // 2
    rest = remaining - written * (written + 1) // 2
    if written >= 1:
        bits = bits << 9 | value
        nbits += 9
    if written >= 2:
        take = _CUM_BITS[written] - 9
        bits = bits << take | (ascending >> (ascending_bits - take))
        nbits += take
    width = _code_width(written + 1)
    bits = bits << width | (value if rest == 1 else 256 + rest)
    return bits, nbits + width, written + 1


#: Bytes of a run spent on an alignment prefix, and the code counts it can
#: have (8 consecutive counts of 9-bit codes: every bit length mod 8).
_ALIGN_BYTES = 36
_ALIGN_CODES = range(9, 17)


@functools.lru_cache(maxsize=2048)
def _align_prefix(value: int, codes: int) -> tuple[int, int, int]:
    """CLEAR + ``codes`` 9-bit codes for 36 bytes ``value`` (same result as _run_segment).

    Strings of length 1..5 (codes value, 258..261: 15 bytes), then the other
    21 bytes in ``codes - 5`` pieces of at most 6 bytes (6 is code 262, which
    the 6th code adds; 1 is the literal). Followed by a fresh segment, this
    lets a run's bit length hit any residue mod 8 for a few bytes.
    """
    pieces = codes - 5
    short, extra = divmod(_ALIGN_BYTES - 15, pieces)
    lengths = [1, 2, 3, 4, 5] + [short + 1] * extra + [short] * (pieces - extra)
    bits = CLEAR
    for length in lengths:
        bits = bits << 9 | (value if length == 1 else 256 + length)
    return bits, 9 * (codes + 1), codes


# -- the spliced stream -------------------------------------------------------------


class _Stream:
    """Bits MSB-first: whole bytes in ``parts``, at most 7 bits pending."""

    __slots__ = ('codes', 'parts', 'pending', 'pending_bits')

    def __init__(self) -> None:
        self.parts: list[bytes | memoryview] = []
        self.pending = 0
        self.pending_bits = 0
        #: Codes since the last CLEAR: the next segment's CLEAR is written at
        #: _code_width(codes + 1) (9 at the start).
        self.codes = 0

    def widening(self) -> int:
        """Zero bits that turn the next segment's 9-bit CLEAR into a CLEAR of the right width."""
        return _code_width(self.codes + 1) - 9

    def add_bits(self, bits: int, nbits: int, codes: int) -> None:
        """Append a segment that starts with a 9-bit CLEAR."""
        shift = self.widening() + nbits
        total = self.pending_bits + shift
        combined = (self.pending << shift) | bits
        keep = total & 7
        if total >= 8:
            self.parts.append((combined >> keep).to_bytes(total >> 3, 'big'))
        self.pending = combined & ((1 << keep) - 1)
        self.pending_bits = keep
        self.codes = codes

    def add_encoded(self, data: bytes, nbits: int, codes: int) -> None:
        """Append the first ``nbits`` bits of an imagecodecs stream (without its EOI)."""
        head = self.pending_bits + self.widening()
        if head & 7:
            # Not byte-aligned (short run before it): shift it in Python.
            self.add_bits(int.from_bytes(data, 'big') >> (8 * len(data) - nbits), nbits, codes)
            return
        if head:
            self.parts.append((self.pending << self.widening()).to_bytes(head >> 3, 'big'))
        whole = nbits >> 3
        self.parts.append(memoryview(data)[:whole])
        keep = nbits & 7
        self.pending = data[whole] >> (8 - keep) if keep else 0
        self.pending_bits = keep
        self.codes = codes

    def add_run(self, value: int, count: int, *, align_next: bool) -> None:
        """Append ``count`` bytes ``value``; if ``align_next``, end where the
        next segment (after its CLEAR's widening) starts on a byte boundary."""
        bits, nbits, codes = _run_segment(value, count)
        if align_next and count > _ALIGN_BYTES:
            residue = (self.pending_bits + self.widening() + nbits + _code_width(codes + 1) - 9) & 7
            if residue:
                # A prefix of c 9-bit codes adds 9 (its CLEAR) + 9c bits to
                # the shorter run's (whose CLEAR is 9 bits: c + 1 <= 17).
                bits, nbits, codes = _run_segment(value, count - _ALIGN_BYTES)
                residue = (
                    self.pending_bits + self.widening() + nbits + _code_width(codes + 1) - 9
                ) & 7
                prefix_codes = next(c for c in _ALIGN_CODES if (residue + 1 + c) & 7 == 0)
                self.add_bits(*_align_prefix(value, prefix_codes))
        self.add_bits(bits, nbits, codes)

    def finish(self) -> bytes:
        """EOI, then zero bits to the next byte boundary (1..8, as imagecodecs)."""
        width = _code_width(self.codes + 1)
        total = self.pending_bits + width
        nbytes = total // 8 + 1
        self.parts.append(
            (((self.pending << width) | EOI) << (8 * nbytes - total)).to_bytes(nbytes, 'big')
        )
        return b''.join(self.parts)


# -- tiles ---------------------------------------------------------------------------

_REPEAT_BYTE = numpy.uint64(0x0101010101010101)

try:  # the compiled helpers (optional, see segment_encoder)
    from . import _speedups as _compiled  # type: ignore[attr-defined]
except ImportError:
    _compiled = None


def _uniform_blocks(rows: numpy.ndarray, min_rows: int) -> list[tuple[int, int, int]]:
    """(first row, end row, byte) of each block of >= min_rows rows all of one byte.

    ``rows`` is the tile as a (height, row bytes) uint8 array.
    """
    height, row_bytes = rows.shape
    if height < min_rows:
        return []
    if _compiled is not None:
        key = numpy.frombuffer(_compiled.uniform_rows(rows, row_bytes), numpy.int16)
        if int(numpy.count_nonzero(key >= 0)) < min_rows:
            return []
        return _blocks_of(key, height, min_rows)
    if row_bytes % 8 == 0:
        # 8 bytes at a time: each row against its first byte repeated.
        words = rows.view(numpy.uint64)
        repeated = rows[:, 0].astype(numpy.uint64) * _REPEAT_BYTE
        middle, last = words[:, words.shape[1] // 2], words[:, -1]
    else:
        words, repeated = rows, rows[:, 0]
        middle, last = rows[:, row_bytes // 2], rows[:, -1]
    # Busy tiles (no uniform rows) leave after this cheap look at two
    # columns: the full comparison costs ~3 % of an encode.
    if int(numpy.count_nonzero((middle == repeated) & (last == repeated))) < min_rows:
        return []
    uniform = (words == repeated[:, None]).all(axis=1)
    if int(numpy.count_nonzero(uniform)) < min_rows:
        return []
    return _blocks_of(numpy.where(uniform, rows[:, 0].astype(numpy.int16), -1), height, min_rows)


def _blocks_of(key: numpy.ndarray, height: int, min_rows: int) -> list[tuple[int, int, int]]:
    """(first row, end row, byte) of the runs of >= min_rows rows of one
    uniform value in ``key`` (per row: its byte, or -1)."""
    starts = numpy.flatnonzero(numpy.concatenate(([True], key[1:] != key[:-1])))
    ends = numpy.append(starts[1:], height)
    keep = (key[starts] >= 0) & (ends - starts >= min_rows)
    return [
        (int(start), int(end), int(value))
        for start, end, value in zip(starts[keep], ends[keep], key[starts[keep]], strict=True)
    ]


def encode_lzw(tile: numpy.ndarray, *, min_run_bytes: int = MIN_RUN_BYTES) -> bytes:
    """The TIFF LZW stream of ``tile``'s bytes in C order (no predictor).

    Decodes to exactly what ``imagecodecs.lzw_encode(tile)`` decodes to.
    Blocks of at least ``min_run_bytes`` bytes in whole rows whose bytes all
    have one value (rows: the first axis) are encoded analytically; the rest
    by imagecodecs. Thread-safe.
    """
    import imagecodecs

    tile = numpy.ascontiguousarray(tile)
    if tile.ndim == 0 or tile.size == 0:
        return imagecodecs.lzw_encode(tile.tobytes())
    rows = tile.reshape(-1).view(numpy.uint8).reshape(tile.shape[0], -1)
    row_bytes = rows.shape[1]
    encode = segment_encoder()
    if encode is None:
        return imagecodecs.lzw_encode(tile)
    blocks = _uniform_blocks(rows, max(1, -(-int(min_run_bytes) // row_bytes)))
    if not blocks:
        return encode(tile)
    stream = _Stream()
    done = 0  # rows encoded so far
    height = rows.shape[0]
    for number, (start, end, value) in enumerate(blocks):
        if start > done and not _add_encoded(stream, rows[done:start], encode):
            return imagecodecs.lzw_encode(tile)
        # Byte-align only what imagecodecs encodes next, not another run.
        next_start = blocks[number + 1][0] if number + 1 < len(blocks) else height
        stream.add_run(value, (end - start) * row_bytes, align_next=next_start > end)
        done = end
    if done < height and not _add_encoded(stream, rows[done:], encode):
        return imagecodecs.lzw_encode(tile)
    return stream.finish()


def _add_encoded(stream: _Stream, rows: numpy.ndarray, encode: Callable[[Any], bytes]) -> bool:
    """Encode ``rows`` into ``stream``; False if the encoder's output is unexpected."""
    data = encode(rows)
    parsed = _parse(data)
    if parsed is None:
        logger.warning(
            'unexpected LZW segment output (%d bytes): tile encoded without splicing',
            len(data),
        )
        return False
    stream.add_encoded(data, *parsed)
    return True
