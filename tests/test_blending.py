"""The blending core: weight maps, crop margins, the weighted accumulator,
against the numpy model in tests/blending_model.py."""

from __future__ import annotations

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tifwriter_cli.blending import (
    WEIGHT_SCALE,
    Blend,
    border_sides,
    crop_window,
    explicit_weights,
    weight_map,
)
from tifwriter_cli.errors import InvalidOptionError, PatchError
from tifwriter_cli.staging.merge import WeightedAccumulator

from .helpers.blending_model import WeightedModel, exact_weighted_mean, kept_mask, seam_strength


@pytest.mark.parametrize('blend', [Blend('gaussian'), Blend('gaussian', sigma=0.3), Blend('linear'), Blend('linear', ramp=5), Blend('flat')])
@pytest.mark.parametrize(('height', 'width'), [(1, 1), (7, 12), (64, 64), (33, 80)])
def test_weight_maps_are_positive_symmetric_and_peak_in_the_centre(blend, height, width) -> None:
    weights = weight_map(blend, height, width)
    assert weights.shape == (height, width) and weights.dtype == numpy.uint16
    assert weights.min() >= 1 and weights.max() == WEIGHT_SCALE
    numpy.testing.assert_array_equal(weights, weights[::-1, :])
    numpy.testing.assert_array_equal(weights, weights[:, ::-1])
    centre = weights[(height - 1) // 2, (width - 1) // 2]
    assert centre == WEIGHT_SCALE
    # Never increasing from the centre outwards, along each axis.
    half = weights[: (height + 1) // 2, : (width + 1) // 2].astype(int)
    assert (numpy.diff(half, axis=0) >= 0).all() and (numpy.diff(half, axis=1) >= 0).all()


def test_gaussian_weights_follow_the_documented_formula() -> None:
    height, width, sigma = 20, 40, 0.125
    weights = weight_map(Blend('gaussian', sigma=sigma), height, width)
    rows = numpy.exp(-0.5 * ((numpy.arange(height) - 9.5) / (sigma * height)) ** 2)
    cols = numpy.exp(-0.5 * ((numpy.arange(width) - 19.5) / (sigma * width)) ** 2)
    expected = numpy.outer(rows / rows.max(), cols / cols.max())
    expected = numpy.clip(numpy.rint(expected * WEIGHT_SCALE), 1, WEIGHT_SCALE)
    numpy.testing.assert_array_equal(weights, expected)


def test_linear_weights_ramp_over_the_margin() -> None:
    weights = weight_map(Blend('linear', ramp=3), 1, 10)[0]
    # (d + 1) / (ramp + 1) for d = 0, 1, 2 px in from the edge, then 1.
    assert weights.tolist() == [1024, 2048, 3071, 4095, 4095, 4095, 4095, 3071, 2048, 1024]
    # Towards a side on the canvas border, no ramp.
    left_border = weight_map(Blend('linear', ramp=3), 1, 10, border=(False, False, True, False))[0]
    assert left_border.tolist() == [4095] * 7 + [3071, 2048, 1024]


def test_border_sides_and_crop_share_one_rule() -> None:
    assert border_sides(0, 5, 10, 10, canvas_width=20, canvas_height=15) == (False, True, True, False)
    kept = crop_window(0, 5, 10, 10, 2, canvas_width=20, canvas_height=15)
    assert (kept.x, kept.y, kept.width, kept.height) == (0, 7, 8, 8)


def test_bad_blend_options_are_refused() -> None:
    with pytest.raises(InvalidOptionError, match='blend must be one of'):
        Blend('cosine')
    with pytest.raises(InvalidOptionError, match='sigma'):
        Blend('gaussian', sigma=0)
    with pytest.raises(InvalidOptionError, match='ramp'):
        Blend('linear', ramp=0)
    with pytest.raises(PatchError, match='0 to 1'):
        explicit_weights(numpy.full((2, 2), 1.5), 2, 2)
    with pytest.raises(PatchError, match='shape'):
        explicit_weights(numpy.ones((3, 2)), 2, 2)


@settings(max_examples=200, deadline=None)
@given(
    x=st.integers(-20, 40), y=st.integers(-20, 40),
    width=st.integers(1, 30), height=st.integers(1, 30),
    margin=st.integers(0, 12),
    canvas_width=st.integers(1, 40), canvas_height=st.integers(1, 40),
)
def test_crop_window_keeps_what_the_model_keeps(x, y, width, height, margin, canvas_width, canvas_height) -> None:
    keep = kept_mask(x, y, width, height, margin, canvas_width, canvas_height)
    if not keep.any():
        with pytest.raises(PatchError, match='leaves nothing'):
            crop_window(x, y, width, height, margin, canvas_width=canvas_width, canvas_height=canvas_height)
        return
    kept = crop_window(x, y, width, height, margin, canvas_width=canvas_width, canvas_height=canvas_height)
    got = numpy.zeros_like(keep)
    got[kept.rows, kept.cols] = True
    numpy.testing.assert_array_equal(got, keep)
    assert (kept.x, kept.y) == (x + kept.cols.start, y + kept.rows.start)
    assert (kept.width, kept.height) == (kept.cols.stop - kept.cols.start, kept.rows.stop - kept.rows.start)


def _window_weights(rng, kind: str, height: int, width: int) -> numpy.ndarray:
    if kind == 'explicit':
        return explicit_weights(rng.random((height, width)) * (rng.random((height, width)) > 0.2), height, width)
    return weight_map(Blend(kind), height, width)


@pytest.mark.parametrize('dtype', ['uint8', 'int8', 'uint16', 'float32'])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_weighted_accumulator_equals_the_model_in_any_order(dtype, data) -> None:
    # Windows of random sizes and weight shapes (explicit ones with zeros),
    # clipped to the region; sometimes more than 255 of them, crossing the
    # float32 -> float64 widening of 8-bit regions; uniform patches as scalars.
    dtype = numpy.dtype(dtype)
    height, width = data.draw(st.integers(1, 8)), data.draw(st.integers(1, 8))
    channels = data.draw(st.sampled_from([1, 3]))
    fill = data.draw(st.sampled_from([0, 5]))
    adds = data.draw(st.sampled_from([1, 2, 7, 255, 256, 300]))
    rng = numpy.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    low, high = (-1000.0, 1000.0) if dtype.kind == 'f' else (numpy.iinfo(dtype).min, numpy.iinfo(dtype).max)
    windows = []
    for _ in range(adds):
        wh, ww = int(rng.integers(1, height + 4)), int(rng.integers(1, width + 4))
        wy, wx = int(rng.integers(-3, height)), int(rng.integers(-3, width))
        weights = _window_weights(rng, str(rng.choice(['gaussian', 'linear', 'flat', 'explicit'])), wh, ww)
        y0, x0 = max(wy, 0), max(wx, 0)
        y1, x1 = min(wy + wh, height), min(wx + ww, width)
        if y1 <= y0 or x1 <= x0:
            continue
        w = weights[y0 - wy : y1 - wy, x0 - wx : x1 - wx]
        if rng.random() < 0.3:
            value = dtype.type(rng.integers(low, high, endpoint=True) if dtype.kind != 'f' else rng.uniform(low, high))
        else:
            value = rng.uniform(low, high, (y1 - y0, x1 - x0, channels)) if dtype.kind == 'f' else rng.integers(low, high, (y1 - y0, x1 - x0, channels), endpoint=True)
            value = value.astype(dtype)
        windows.append((slice(y0, y1), slice(x0, x1), value, w))
    model = WeightedModel(height, width, channels, dtype, fill)
    for rows, cols, value, w in windows:
        model.add(rows.start, cols.start, numpy.broadcast_to(value, (rows.stop - rows.start, cols.stop - cols.start, channels)), w)
    expected = model.result()
    results = []
    for order in (windows, windows[::-1]):
        acc = WeightedAccumulator((height, width, channels), dtype, fill)
        for rows, cols, value, w in order:
            acc.add(rows, cols, value, w)
        results.append(acc.result())
    for got in results:
        assert got.dtype == dtype
        if dtype.kind == 'f':
            numpy.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-3)
        else:
            numpy.testing.assert_array_equal(got, expected)
    if dtype.kind != 'f':
        numpy.testing.assert_array_equal(results[0], results[1])  # order-independent, exactly


def test_weighted_mean_next_to_a_tie_is_exact() -> None:
    # 8-bit, in float32: values 255 and 254 with weights making the exact
    # mean 254.5 +- the smallest step the float32 stage must tell apart.
    # (weight of 255, weight of 254, rounded mean)
    # The nearest non-ties: total weight 65535, the float32 stage's largest.
    cases = ((255, 255, 254), (255, 254, 255), (254, 255, 254), (1, 255, 254), (3, 1, 255), (32768, 32767, 255), (32767, 32768, 254))
    for w255, w254, expected in cases:
        acc = WeightedAccumulator((1, 1, 1), numpy.dtype('uint8'), 0)
        for value, weight in ((255, w255), (254, w254)):
            while weight:  # in adds of at most WEIGHT_SCALE
                step = min(weight, WEIGHT_SCALE)
                acc.add(slice(0, 1), slice(0, 1), numpy.uint8(value), numpy.full((1, 1), step, numpy.uint16))
                weight -= step
        exact = exact_weighted_mean(numpy.array([255 * w255 + 254 * w254]), numpy.array([w255 + w254]))[0]
        assert acc.result()[0, 0, 0] == exact == expected


def test_zero_weight_pixels_get_the_fill() -> None:
    acc = WeightedAccumulator((1, 2, 1), numpy.dtype('uint8'), 9)
    acc.add(slice(0, 1), slice(0, 2), numpy.uint8(100), numpy.array([[0, WEIGHT_SCALE]], numpy.uint16))
    assert acc.result()[0, :, 0].tolist() == [9, 100]


def _checkerboard_of_windows(accumulator_for, *, side: int, stride: int, canvas: int, bias: float, seed: int = 3):
    """Windows over a smooth field, each off by its own random bias (a model
    that is worse at some windows): what blending must not show as seams."""
    rng = numpy.random.default_rng(seed)
    yy, xx = numpy.mgrid[0:canvas, 0:canvas].astype(numpy.float64)
    field = 100 + 20 * numpy.sin(xx / 40) * numpy.cos(yy / 55)
    accumulator = accumulator_for((canvas, canvas, 1))
    for wy in range(0, canvas - side + 1, stride):
        for wx in range(0, canvas - side + 1, stride):
            window = field[wy : wy + side, wx : wx + side] + rng.choice([-bias, bias])
            accumulator(slice(wy, wy + side), slice(wx, wx + side), window[..., None].astype(numpy.float32))
    return field


def test_gaussian_blended_checkerboard_of_windows_shows_no_seam() -> None:
    from tifwriter_cli.staging.merge import new_accumulator

    bias, side, stride, canvas = 10.0, 64, 32, 256
    results = {}
    for rule in ('mean', 'gaussian'):
        if rule == 'mean':
            acc = new_accumulator('mean', (canvas, canvas, 1), numpy.dtype('float32'), 0)
            add = acc.add
        else:
            acc = WeightedAccumulator((canvas, canvas, 1), numpy.dtype('float32'), 0)

            def add(rows, cols, data, acc=acc):
                border = border_sides(cols.start, rows.start, side, side, canvas_width=canvas, canvas_height=canvas)
                acc.add(rows, cols, data, weight_map(Blend('gaussian'), side, side, border=border))

        field = _checkerboard_of_windows(lambda shape, add=add: add, side=side, stride=stride, canvas=canvas, bias=bias)
        results[rule] = seam_strength(acc.result(), field)
    # The criterion sees seams: under mean the error steps by the windows'
    # disagreement (2 x bias, shared by 2 to 4 windows) where a window ends ...
    assert results['mean'] > 0.5 * bias
    # ... and under the Gaussian blend it bends by at most 8 % of the bias
    # per pixel (float weights: 4.7 %).
    assert results['gaussian'] < 0.08 * bias, results
