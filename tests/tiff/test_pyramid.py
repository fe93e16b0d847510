"""2x downsampling against a plain per-block reference written with loops."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tifwriter_cli.tiff.plan import plan_pyramid
from tifwriter_cli.tiff.pyramid import downsample2
from tifwriter_cli.vocab import RESAMPLINGS

from tests.helpers.tiff_reference import expected_levels


def reference_downsample(band: numpy.ndarray, method: str) -> numpy.ndarray:
    """Per output pixel and channel, from the pixels its (maybe partial) 2x2 block has.

    Block order: top-left, top-right, bottom-left, bottom-right (only those
    inside the band).
    """
    height, width, channels = band.shape
    out_h, out_w = math.ceil(height / 2), math.ceil(width / 2)
    out = numpy.zeros((out_h, out_w, channels), dtype=band.dtype)
    for i in range(out_h):
        for j in range(out_w):
            for c in range(channels):
                block = [
                    band[y, x, c]
                    for y in (2 * i, 2 * i + 1)
                    for x in (2 * j, 2 * j + 1)
                    if y < height and x < width
                ]
                out[i, j, c] = _reduce(block, method, band.dtype)
    return out


def _reduce(block: list, method: str, dtype: numpy.dtype):
    if method == 'nearest':
        return block[0]
    if method == 'max':
        return max(block)
    if method == 'min':
        return min(block)
    if method == 'mode':
        best, best_count = block[0], 0
        for value in block:  # strictly greater: the first in block order wins ties
            count = sum(1 for other in block if other == value)
            if count > best_count:
                best, best_count = value, count
        return best
    # mean
    if numpy.dtype(dtype).kind == 'f':
        return numpy.float32(sum(float(v) for v in block) / len(block))
    total, n = sum(int(v) for v in block), len(block)
    return (2 * total + n) // (2 * n)  # round half up, exactly


def bands(dtype: str, max_value: int | None = None):
    """(H, W, C) arrays of 1..9 x 1..9 x 1..3; small value ranges make ties."""
    if dtype == 'float32':
        elements = st.floats(-1e6, 1e6, width=32, allow_nan=False, allow_infinity=False)
    else:
        top = numpy.iinfo(dtype).max if max_value is None else max_value
        elements = st.integers(0, top)
    shapes = st.tuples(st.integers(1, 9), st.integers(1, 9), st.integers(1, 3))
    return hnp.arrays(dtype=dtype, shape=shapes, elements=elements)


@pytest.mark.parametrize('method', RESAMPLINGS)
@pytest.mark.parametrize('dtype', ['uint8', 'uint16', 'uint32', 'float32'])
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_downsample_matches_reference(method: str, dtype: str, data) -> None:
    small = data.draw(st.booleans())
    band = data.draw(bands(dtype, max_value=3 if small and dtype != 'float32' else None))
    got = downsample2(band, method)
    expected = reference_downsample(band, method)
    assert got.dtype == band.dtype
    assert got.shape == expected.shape
    assert got.flags.c_contiguous
    if dtype == 'float32' and method == 'mean':
        numpy.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    else:
        numpy.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize('method', ['mode', 'mean', 'max', 'min'])
@pytest.mark.parametrize('dtype, channels', [('uint8', 1), ('uint8', 3), ('uint16', 1), ('float32', 2)])
def test_mostly_uniform_bands(method: str, dtype: str, channels: int) -> None:
    # Label-mask-like content: large flat areas, a few scattered different
    # pixels (the sparse path of mode), odd sizes.
    rng = numpy.random.default_rng(7)
    band = numpy.full((61, 93, channels), 5, dtype=dtype)
    band[20:, 40:] = 2
    specks = rng.random(band.shape[:2]) < 0.01  # ~4 % of blocks mixed
    band[specks] = rng.integers(0, 4, (int(specks.sum()), channels)).astype(dtype)
    got = downsample2(band, method)
    expected = reference_downsample(band, method)
    if dtype == 'float32' and method == 'mean':
        numpy.testing.assert_allclose(got, expected, rtol=1e-6)
    else:
        numpy.testing.assert_array_equal(got, expected)


def test_downsample_accepts_strided_views() -> None:
    rng = numpy.random.default_rng(1)
    big = rng.integers(0, 4, (21, 33, 3)).astype(numpy.uint8)
    view = big[1:18, 2:31:2, ::2]  # odd sizes, non-contiguous
    for method in RESAMPLINGS:
        numpy.testing.assert_array_equal(
            downsample2(view, method), reference_downsample(numpy.ascontiguousarray(view), method)
        )


@pytest.mark.parametrize(
    'block, expected',
    [
        ([[1, 2], [3, 4]], 1),  # all different: top-left (like nearest)
        ([[1, 2], [3, 3]], 3),  # one pair beats singles
        ([[1, 2], [2, 1]], 1),  # two pairs: the pair holding the top-left
        ([[2, 1], [1, 2]], 2),
        ([[1, 2], [3, 2]], 2),  # pair on the right column
        ([[1, 2], [2, 2]], 2),  # triple
        ([[5, 5], [5, 5]], 5),
    ],
)
def test_mode_tie_break_is_block_order(block, expected) -> None:
    band = numpy.array(block, dtype=numpy.uint8)[:, :, numpy.newaxis]
    assert downsample2(band, 'mode')[0, 0, 0] == expected


def test_mode_per_channel_independent() -> None:
    band = numpy.zeros((2, 2, 2), numpy.uint8)
    band[..., 0] = [[1, 2], [2, 3]]  # channel 0: 2 wins
    band[..., 1] = [[7, 7], [8, 9]]  # channel 1: 7 wins
    assert downsample2(band, 'mode')[0, 0].tolist() == [2, 7]


def test_mean_rounds_half_up_not_truncates() -> None:
    band = numpy.array([[0, 1], [1, 1]], numpy.uint8)[:, :, None]  # 0.75 -> 1
    assert downsample2(band, 'mean')[0, 0, 0] == 1
    band = numpy.array([[0, 0], [1, 1]], numpy.uint8)[:, :, None]  # 0.5 -> 1 (half up)
    assert downsample2(band, 'mean')[0, 0, 0] == 1
    band = numpy.array([[0, 0], [0, 1]], numpy.uint8)[:, :, None]  # 0.25 -> 0
    assert downsample2(band, 'mean')[0, 0, 0] == 0
    band = numpy.full((2, 2, 1), 255, numpy.uint8)  # no overflow
    assert downsample2(band, 'mean')[0, 0, 0] == 255
    band = numpy.full((2, 2, 1), 2**32 - 1, numpy.uint32)
    assert downsample2(band, 'mean')[0, 0, 0] == 2**32 - 1


def test_partial_blocks_use_only_their_pixels() -> None:
    # 3 x 3: the right column's blocks have 2 pixels, the corner one has 1.
    band = numpy.array([[0, 0, 10], [0, 0, 20], [30, 40, 50]], numpy.uint8)[:, :, None]
    mean = downsample2(band, 'mean')[..., 0]
    assert mean.tolist() == [[0, 15], [35, 50]]
    assert downsample2(band, 'max')[..., 0].tolist() == [[0, 20], [40, 50]]
    assert downsample2(band, 'min')[..., 0].tolist() == [[0, 10], [30, 50]]
    assert downsample2(band, 'nearest')[..., 0].tolist() == [[0, 10], [30, 50]]
    # A 1 x 2 block [7, 9]: a tie, the first (left) wins.
    assert downsample2(band[2:, 1:], 'mode')[..., 0].tolist() == [[40]]
    assert downsample2(numpy.array([[[7], [9]]], numpy.uint8), 'mode')[0, 0, 0] == 7


def test_float_extremes_ignore_nan_mean_propagates() -> None:
    nan = numpy.nan
    band = numpy.array([[nan, 1.5], [-2.0, nan]], numpy.float32)[:, :, None]
    assert downsample2(band, 'max')[0, 0, 0] == 1.5
    assert downsample2(band, 'min')[0, 0, 0] == -2.0
    assert numpy.isnan(downsample2(band, 'mean')[0, 0, 0])
    assert numpy.isnan(downsample2(numpy.full((2, 2, 1), nan, numpy.float32), 'max')[0, 0, 0])


def test_unknown_method_and_bad_shape_refused() -> None:
    with pytest.raises(ValueError):
        downsample2(numpy.zeros((2, 2, 1), numpy.uint8), 'median')
    with pytest.raises(ValueError):
        downsample2(numpy.zeros((2, 2), numpy.uint8), 'mean')


# -- the plan ----------------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(
    width=st.integers(1, 300_000),
    height=st.integers(1, 300_000),
    tile=st.sampled_from([16, 64, 256, 512, 1024]),
)
def test_plan_rules(width: int, height: int, tile: int) -> None:
    plan = plan_pyramid(width, height, tile)
    assert [(p.width, p.height, p.tile) for p in plan] == expected_levels(width, height, tile)
    for previous, level in pairwise(plan):
        assert level.width < previous.width  # strictly narrower (ASAP)
        assert level.downsample == 2 * previous.downsample
    assert len({level.tile for level in plan}) == 1  # one tile size (large_image)
    for level in plan:
        assert level.tile % 16 == 0 and 16 <= level.tile <= tile
        if min(level.width, level.height) >= 16:
            assert level.tile <= min(level.width, level.height)  # OpenSlide 3.4.1
        else:
            assert level.index == 0 and level.tile == 16  # only a tiny canvas
    last = plan[-1]
    next_short = min(math.ceil(last.width / 2), math.ceil(last.height / 2))
    # Down to 1024 px, unless no tile fits the next level, or (a canvas
    # over ~4x longer than wide) the next level is under the floor of the
    # shared tile: 128 px, or less where the tile or level 0 is smaller.
    floor = min(tile, 128, max(16, min(width, height) // 16 * 16))
    assert max(last.width, last.height) <= 1024 or next_short < 16 or (
        next_short < floor <= last.tile
    )
    if len(plan) == 1 and width >= 4096:
        assert next_short < 16  # ASAP refuses a single level this wide


def test_plan_examples() -> None:
    # One tile for all: the largest that fits the 625 x 469 overview.
    assert [(p.width, p.height, p.tile) for p in plan_pyramid(40000, 30000, 512)] == [
        (40000, 30000, 464),
        (20000, 15000, 464),
        (10000, 7500, 464),
        (5000, 3750, 464),
        (2500, 1875, 464),
        (1250, 938, 464),
        (625, 469, 464),
    ]
    # A strip 10x longer than wide: a 64-px tile would fit 782 x 79; the
    # pyramid stops at 1563 x 157 with a 144-px tile instead.
    assert [(p.width, p.height, p.tile) for p in plan_pyramid(100000, 10000, 512)][-2:] == [
        (3125, 313, 144),
        (1563, 157, 144),
    ]
    assert [(p.width, p.height, p.tile) for p in plan_pyramid(100, 70, 512)] == [(100, 70, 64)]
    assert [(p.width, p.height, p.tile) for p in plan_pyramid(10, 10, 512)] == [(10, 10, 16)]
    # Long and thin: stops before a level under 16 px high.
    assert [(p.width, p.height, p.tile) for p in plan_pyramid(100000, 40, 512)] == [
        (100000, 40, 16),
        (50000, 20, 16),
    ]
