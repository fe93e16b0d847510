"""downsample2's fast paths against the block-reshape model of tests/helpers/tiff_reference.

The paths: ``mode`` on 64-bit words (four blocks compared at once, the full
rule only on mixed words, rows of mostly mixed words computed whole),
integer ``mean``/``max``/``min`` that add the two rows of each block first,
and ``out=`` into a view of a bigger buffer. Bands here are wide enough to
take them, in every dtype, with and without word alignment, with ties,
NaN and signed zeros where the model defines the answer.
"""

from __future__ import annotations

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tifwriter_cli.tiff import pyramid
from tifwriter_cli.tiff.pyramid import downsample2
from tifwriter_cli.vocab import RESAMPLINGS

from tests.helpers.tiff_reference import model_downsample

DTYPES = ['uint8', 'uint16', 'uint32', 'float32']


def _values(dtype: str, method: str) -> numpy.ndarray:
    """A few values (ties are likely); floats include -0.0 and NaN where the
    model's answer is the defined one: not for max/min (the model uses
    numpy.max, which propagates NaN, where we use fmax), not NaN for mode
    (the model counts NaN as occurring zero times, the rule lets it win as
    a), not -0.0 for mean (numpy's mean starts its sum at +0.0))."""
    if dtype == 'float32':
        values = [0.0, 0.5, 1.0, 3.25]
        if method in ('mode', 'nearest'):
            values.append(-0.0)
        if method in ('mean', 'nearest'):
            values.append(numpy.nan)  # mode with NaN: test_mode_nan_follows_the_rule
        return numpy.array(values, dtype)
    top = numpy.iinfo(dtype).max
    return numpy.array([0, 1, 2, top], dtype)


def make_band(rng: numpy.random.Generator, shape, dtype: str, method: str, content: str) -> numpy.ndarray:
    values = _values(dtype, method)
    height, width, channels = shape
    if content == 'noise':
        return values[rng.integers(0, len(values), shape)]
    band = numpy.empty(shape, dtype)
    band[...] = values[rng.integers(0, len(values), channels)]
    for _ in range(4):  # label regions
        y, x = rng.integers(0, height), rng.integers(0, width)
        band[y : y + rng.integers(1, 30), x : x + rng.integers(1, 90)] = values[
            rng.integers(0, len(values), channels)
        ]
    if content == 'specks':
        specks = rng.random((height, width)) < 0.03
        band[specks] = values[rng.integers(0, len(values), (int(specks.sum()), channels))]
    return band


def assert_bitwise_equal(got: numpy.ndarray, want: numpy.ndarray) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype
    bits = f'u{got.itemsize}'
    numpy.testing.assert_array_equal(got.view(bits), want.view(bits))


@pytest.mark.parametrize('method', RESAMPLINGS)
@pytest.mark.parametrize('dtype', DTYPES)
@settings(max_examples=12, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 260),
    channels=st.sampled_from([1, 1, 2, 3]),
    offset=st.integers(0, 7),
    content=st.sampled_from(['regions', 'specks', 'noise']),
    seed=st.integers(0, 2**32 - 1),
)
def test_wide_bands_match_model(dtype, method, height, width, channels, offset, content, seed) -> None:
    rng = numpy.random.default_rng(seed)
    # A column offset into a bigger array: rows not aligned to 8 bytes.
    big = make_band(rng, (height, width + offset, channels), dtype, method, content)
    band = big[:, offset:]
    got = downsample2(band, method)
    assert got.flags.c_contiguous
    assert_bitwise_equal(got, model_downsample(numpy.ascontiguousarray(band), method))


@pytest.mark.parametrize('method', ['mode', 'mean', 'max', 'min'])
@pytest.mark.parametrize('dtype', DTYPES)
def test_small_chunks_and_many_mixed_words(monkeypatch, dtype: str, method: str) -> None:
    # Tiny chunks: many chunks per band, rows of mostly mixed words next to
    # rows of few, and the mixed-word fix-up done in slices of rows.
    monkeypatch.setattr(pyramid, '_CHUNK_ELEMENTS', 64)
    rng = numpy.random.default_rng(3)
    band = make_band(rng, (48, 200, 1), dtype, method, 'specks')
    band[20:34] = make_band(rng, (14, 200, 1), dtype, method, 'noise')
    assert_bitwise_equal(downsample2(band, method), model_downsample(band, method))


@pytest.mark.parametrize('method', RESAMPLINGS)
@pytest.mark.parametrize('dtype', DTYPES)
def test_out_is_a_view_of_a_bigger_buffer(dtype: str, method: str) -> None:
    rng = numpy.random.default_rng(11)
    band = make_band(rng, (31, 77, 2), dtype, method, 'specks')
    expected = downsample2(band, method)
    buffer = numpy.zeros((20, 50, 2), dtype)
    sentinel = buffer.copy()
    target = buffer[2:18, 5:44]  # (16, 39): rows strided, unaligned start
    assert downsample2(band, method, out=target) is target
    assert_bitwise_equal(target.copy(), expected)
    outside = numpy.ones(buffer.shape[:2], bool)
    outside[2:18, 5:44] = False
    assert_bitwise_equal(buffer[outside], sentinel[outside])


def test_out_of_the_wrong_shape_or_dtype_is_refused() -> None:
    band = numpy.zeros((4, 6, 1), numpy.uint8)
    with pytest.raises(ValueError):
        downsample2(band, 'mode', out=numpy.zeros((2, 2, 1), numpy.uint8))
    with pytest.raises(ValueError):
        downsample2(band, 'mode', out=numpy.zeros((2, 3, 1), numpy.uint16))


def test_mode_words_on_a_label_mask() -> None:
    # The case the word path is for: wide, aligned, few mixed blocks, every
    # tie pattern of the rule along the borders.
    rng = numpy.random.default_rng(5)
    band = numpy.zeros((64, 1024, 1), numpy.uint8)
    for _ in range(30):
        y, x = rng.integers(0, 64), rng.integers(0, 1024)
        band[y : y + rng.integers(1, 20), x : x + rng.integers(1, 200)] = rng.integers(0, 4)
    band[rng.random(band.shape) < 0.002] = 7
    assert_bitwise_equal(downsample2(band, 'mode'), model_downsample(band, 'mode'))


@pytest.mark.parametrize('dtype', ['uint16', 'uint32', 'float32'])
def test_non_native_byte_order(dtype: str) -> None:
    # The word path moves bytes; it must not assume the native byte order.
    rng = numpy.random.default_rng(9)
    swapped = numpy.dtype(dtype).newbyteorder()
    for method in ('mode', 'nearest', 'max', 'min'):
        band = make_band(rng, (12, 64, 1), dtype, method, 'specks').astype(swapped)
        got = downsample2(band, method)
        assert got.dtype == swapped
        assert_bitwise_equal(got.astype(dtype), model_downsample(band, method).astype(dtype))


def _mode_rule(a: float, b: float, c: float, d: float) -> float:
    """The module docstring's rule, with Python's == (NaN equals nothing)."""
    if a == b or a == c or a == d:
        return a
    if b == c or b == d:
        return b
    if c == d:
        return c
    return a


@pytest.mark.parametrize('chunk', [64, 1 << 16])
def test_mode_nan_follows_the_rule(monkeypatch, chunk: int) -> None:
    # NaN blocks are bitwise uniform for the word path, NaN never equals
    # anything for the rule: both give what the rule gives, on every path
    # (words, rows of mostly mixed words, unaligned blocks).
    monkeypatch.setattr(pyramid, '_CHUNK_ELEMENTS', chunk)
    rng = numpy.random.default_rng(21)
    values = numpy.array([numpy.nan, 0.5, -0.0, 0.0], numpy.float32)
    band = values[rng.integers(0, 4, (40, 130, 1))]
    band[:10] = numpy.nan
    band[10:20, :64] = values[rng.integers(0, 2, (10, 64, 1))]
    for view in (band, band[:, 1:]):
        got = downsample2(view, 'mode')[..., 0]
        padded = numpy.pad(view[..., 0], ((0, view.shape[0] % 2), (0, view.shape[1] % 2)), mode='edge')
        for i in range(got.shape[0]):
            for j in range(got.shape[1]):
                a, b = padded[2 * i, 2 * j], padded[2 * i, 2 * j + 1]
                c, d = padded[2 * i + 1, 2 * j], padded[2 * i + 1, 2 * j + 1]
                want = numpy.float32(_mode_rule(a, b, c, d))
                assert got[i, j].tobytes() == want.tobytes(), (i, j, a, b, c, d, got[i, j])


@settings(max_examples=40, deadline=None)
@given(
    dtype=st.sampled_from(['uint8', 'uint16', 'uint32', 'int16', 'uint64']),
    height=st.integers(1, 40),
    width=st.integers(1, 300),
    channels=st.sampled_from([1, 1, 3]),
    offset=st.integers(0, 7),
    content=st.sampled_from(['regions', 'specks', 'noise']),
    seed=st.integers(0, 2**32 - 1),
)
def test_integer_mode_compiled_and_numpy_paths_agree(dtype, height, width, channels, offset, content, seed) -> None:
    # Integer mode runs in the optional compiled module where it is built
    # (tiff/_speedups.c), else in numpy: both give the model's answer.
    import shutil

    if pyramid._compiled is None:
        if shutil.which('cc') is None and shutil.which('gcc') is None:
            pytest.skip('no C compiler on this machine: the compiled module cannot be built')
        raise AssertionError('tifwriter_cli.tiff._speedups is not built although a C compiler is here')
    rng = numpy.random.default_rng(seed)
    values = numpy.array([0, 1, 2, numpy.iinfo(dtype).max], dtype)
    big = make_band(rng, (height, width + offset, channels), 'uint8', 'mode', content)
    band = values[big[:, offset:] % 4]
    band = band if channels == 1 else band[:, :, ::-1]  # negative channel stride
    want = model_downsample(numpy.ascontiguousarray(band), 'mode')
    compiled = downsample2(band, 'mode')
    saved, pyramid._compiled = pyramid._compiled, None
    try:
        plain = downsample2(band, 'mode')
    finally:
        pyramid._compiled = saved
    assert_bitwise_equal(compiled, want)
    assert_bitwise_equal(plain, want)
