"""Test-side models of what a finalized TIFF must contain, written independently
of tifwriter_cli.tiff (block reshapes instead of strided views, counts + argmax
for the majority, the COMPAT.md rules spelled out as assertions).
"""

from __future__ import annotations

import math
from itertools import pairwise
from pathlib import Path

import numpy
import tifffile


def expected_levels(width: int, height: int, tile: int) -> list[tuple[int, int, int]]:
    """(width, height, tile) per level, from the rules in COMPAT.md / issue 10: halve
    (ceil) while the long side is > 1024 and the next short side >= 16; ONE tile
    size on every level (large_image), never larger than a level (OpenSlide 3.4.1):
    the largest multiple of 16 <= tile and <= the smallest short side. Where that
    tile would be under min(tile, 128, level 0's own fit), the pyramid stops before
    the first level shorter than that instead, unless that leaves a single level
    4096 px wide or more (ASAP refuses it)."""

    def fit(sizes: list[tuple[int, int]]) -> int:
        short = min(min(w, h) for w, h in sizes)
        return max(16, min(short, tile) // 16 * 16)

    sizes = [(width, height)]
    while max(sizes[-1]) > 1024:
        w, h = math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)
        if min(w, h) < 16:
            break
        sizes.append((w, h))
    shared = fit(sizes)
    floor = min(tile, 128, fit(sizes[:1]))
    if shared < floor:
        kept = [s for s in sizes if min(s) >= floor] or sizes[:1]
        if len(kept) >= 2 or width < 4096:
            sizes, shared = kept, fit(kept)
    return [(w, h, shared) for w, h in sizes]


def model_downsample(a: numpy.ndarray, method: str) -> numpy.ndarray:
    """Blocks of 2x2 (the last row/column repeated on odd sides) reduced per channel."""
    height, width, channels = a.shape
    p = numpy.pad(a, ((0, height % 2), (0, width % 2), (0, 0)), mode='edge')
    h2, w2 = p.shape[0] // 2, p.shape[1] // 2
    # (h2, w2, C, 4) with the 4 in block order TL, TR, BL, BR.
    blocks = p.reshape(h2, 2, w2, 2, channels).transpose(0, 2, 4, 1, 3).reshape(h2, w2, channels, 4)
    if method == 'nearest':
        return blocks[..., 0]
    if method == 'max':
        return blocks.max(axis=-1)
    if method == 'min':
        return blocks.min(axis=-1)
    if method == 'mean':
        if a.dtype.kind == 'f':
            return blocks.astype(numpy.float64).mean(axis=-1).astype(a.dtype)
        return ((blocks.astype(numpy.int64).sum(axis=-1) + 2) // 4).astype(a.dtype)
    if method == 'mode':
        counts = (blocks[..., :, None] == blocks[..., None, :]).sum(axis=-1)
        first_best = counts.argmax(axis=-1)[..., None]  # argmax: first of the tied
        return numpy.take_along_axis(blocks, first_best, axis=-1)[..., 0]
    raise ValueError(method)


def model_pyramid(canvas: numpy.ndarray, method: str, tile: int) -> list[numpy.ndarray]:
    height, width = canvas.shape[:2]
    levels = [canvas]
    for _ in expected_levels(width, height, tile)[1:]:
        levels.append(model_downsample(levels[-1], method))
    return levels


def read_levels_tifffile(path: Path) -> list[numpy.ndarray]:
    with tifffile.TiffFile(path) as tif:
        out = []
        for page in tif.pages:
            array = page.asarray()
            if array.ndim == 2:
                array = array[:, :, None]
            out.append(array)
        return out


def check_layout(
    path: Path,
    *,
    width: int,
    height: int,
    tile: int,
    channels: int,
    dtype: str,
    compression_tag: int,
    photometric: int,
    spacing: float | tuple[float, float] | None,
) -> None:
    """Assert every COMPAT.md rule on the file's IFDs."""
    levels = expected_levels(width, height, tile)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        pages = list(tif.pages)
        assert [(p.imagewidth, p.imagelength, p.tilewidth) for p in pages] == levels
        assert 'SubIFDs' not in pages[0].tags
        description = pages[0].description
        for word in ('xml', 'XML', 'DICOM'):
            assert word not in description
        assert description.startswith('tifwriter ')
        for number, page in enumerate(pages):
            assert page.is_tiled
            assert page.tilewidth == page.tilelength and page.tilewidth % 16 == 0
            if min(page.imagewidth, page.imagelength) >= 16:
                assert page.tilewidth <= min(page.imagewidth, page.imagelength)
            assert int(page.tags['NewSubfileType'].value) == (0 if number == 0 else 1)
            assert int(page.compression) == compression_tag
            assert int(page.photometric) == photometric
            assert int(page.planarconfig) == 1
            assert page.samplesperpixel == channels
            assert page.dtype == numpy.dtype(dtype)
            assert int(page.sampleformat) == (3 if dtype == 'float32' else 1)
            assert min(page.databytecounts) > 0
            assert max(o + c for o, c in zip(page.dataoffsets, page.databytecounts, strict=True)) <= path.stat().st_size
            if spacing is None:
                assert 'XResolution' not in page.tags
            else:
                assert page.tags['ResolutionUnit'].value == 3
                spacings = spacing if isinstance(spacing, tuple) else (spacing, spacing)
                for tag, um in zip(('XResolution', 'YResolution'), spacings, strict=True):
                    num, den = page.tags[tag].value
                    assert num / den == pytest_approx(10000 / um / 2**number)
        for previous, page in pairwise(pages):
            assert page.imagewidth < previous.imagewidth


def pytest_approx(value: float):
    import pytest

    return pytest.approx(value, rel=1e-7)


def openslide_expected_rgba(level: numpy.ndarray) -> numpy.ndarray:
    """What OpenSlide's read_region returns for our pixels (uint8 RGBA)."""
    channels = level.shape[2]
    data = level
    if data.dtype == numpy.uint16:
        data = (data >> 8).astype(numpy.uint8)  # libtiff's RGBA path keeps the high byte
    out = numpy.empty(level.shape[:2] + (4,), numpy.uint8)
    if channels == 1:
        out[..., :3] = data
        out[..., 3] = 255
    elif channels == 3:
        out[..., :3] = data
        out[..., 3] = 255
    else:
        raise ValueError('use compare_rgba for alpha')
    return out


def read_levels_openslide(path: Path) -> list[numpy.ndarray]:
    import openslide

    with openslide.OpenSlide(str(path)) as slide:
        return [
            numpy.asarray(slide.read_region((0, 0), level, size))
            for level, size in enumerate(slide.level_dimensions)
        ]


def psnr(a: numpy.ndarray, b: numpy.ndarray) -> float:
    mse = ((a.astype(numpy.float64) - b.astype(numpy.float64)) ** 2).mean()
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)
