"""A plain numpy model of the weighted merge and of crop margins.

Written from the documented semantics (docs/guide.md, "Blending sliding
windows"), independently of tifwriter_cli.blending's accumulator: exact
integer arithmetic per pixel, rounding half to even.
"""

from __future__ import annotations

import numpy


def exact_weighted_mean(sums: numpy.ndarray, weights: numpy.ndarray) -> numpy.ndarray:
    """round_half_even(sums / weights) in int64 arithmetic (weights > 0)."""
    weights = numpy.maximum(weights, 1)
    quotient, remainder = numpy.divmod(sums, weights)
    twice = 2 * remainder
    up = (twice > weights) | ((twice == weights) & (quotient % 2 == 1))
    return quotient + up


class WeightedModel:
    """A canvas region under the weighted rule: add (y, x, values, weights)."""

    def __init__(self, height: int, width: int, channels: int, dtype, fill):
        self.dtype = numpy.dtype(dtype)
        self.fill = fill
        integer = self.dtype.kind != 'f'
        self.sums = numpy.zeros((height, width, channels), numpy.int64 if integer else numpy.float64)
        self.weights = numpy.zeros((height, width, 1), numpy.int64)

    def add(self, y: int, x: int, values: numpy.ndarray, weights: numpy.ndarray) -> None:
        h, w = weights.shape
        self.sums[y : y + h, x : x + w] += values.astype(self.sums.dtype) * weights[..., None].astype(self.sums.dtype)
        self.weights[y : y + h, x : x + w] += weights[..., None]

    def result(self) -> numpy.ndarray:
        if self.dtype.kind == 'f':
            with numpy.errstate(invalid='ignore', divide='ignore'):
                merged = self.sums / self.weights
        else:
            merged = exact_weighted_mean(self.sums, self.weights)
        return numpy.where(self.weights == 0, self.fill, merged).astype(self.dtype)


def kept_mask(x: int, y: int, width: int, height: int, margin: int, canvas_width: int, canvas_height: int) -> numpy.ndarray:
    """(height, width) bool: which pixels of a window a crop margin keeps,
    pixel by pixel: each is at least ``margin`` px in from every side that
    does not touch the canvas border."""
    keep = numpy.ones((height, width), bool)
    for row in range(height):
        for col in range(width):
            if x > 0 and col < margin:
                keep[row, col] = False
            if y > 0 and row < margin:
                keep[row, col] = False
            if x + width < canvas_width and col >= width - margin:
                keep[row, col] = False
            if y + height < canvas_height and row >= height - margin:
                keep[row, col] = False
    return keep


def model_weights(shape: str, parameter: float, height: int, width: int, border=(False,) * 4) -> numpy.ndarray:
    """The documented weight maps, from their formulas: separable profiles,
    held at 1 from the peak towards sides on the canvas border, quantised
    to 1..4095."""

    def profile(n: int, start_on_border: bool, end_on_border: bool) -> numpy.ndarray:
        i = numpy.arange(n, dtype=numpy.float64)
        if shape == 'gaussian':
            p = numpy.exp(-0.5 * ((i - (n - 1) / 2) / (parameter * n)) ** 2)
        elif shape == 'linear':
            ramp = int(parameter) or max(1, min(height, width) // 4)
            p = numpy.minimum(1.0, (numpy.minimum(i, n - 1 - i) + 1) / (ramp + 1))
        else:
            p = numpy.ones(n)
        p = p / p.max()
        if start_on_border:
            p[: n // 2] = 1
        if end_on_border:
            p[n // 2 :] = 1
        return p

    top, bottom, left, right = border
    weights = numpy.outer(profile(height, top, bottom), profile(width, left, right))
    return numpy.clip(numpy.rint(weights * 4095), 1, 4095).astype(numpy.int64)


def seam_strength(merged: numpy.ndarray, field: numpy.ndarray) -> float:
    """Largest second difference of the error (merged - field) along rows or
    columns: a seam (a step of height h) shows as h; a smooth change between
    windows, however steep, as its curvature only."""
    error = merged[..., 0].astype(numpy.float64) - field
    return float(max(numpy.abs(numpy.diff(error, 2, axis=0)).max(), numpy.abs(numpy.diff(error, 2, axis=1)).max()))
