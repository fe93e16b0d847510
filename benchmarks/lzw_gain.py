"""What tifwriter's LZW tile encoder gains over a plain LZW encoder, per tile.

``python benchmarks/lzw_gain.py`` times, fastest of 30, one 512 x 512 tile of
three shapes (a label blob on background, half background / half noisy
classes, a float32 band between rows of 0.0) through
``tifwriter_cli.tiff.lzw.encode_lzw`` (analytic uniform rows spliced with the
segment encoder), the segment encoder alone on the whole tile (our compiled
one when built, else imagecodecs') and ``imagecodecs.lzw_encode``; it prints
the ratios. Every output is checked to decode to the tile. Results:
docs/benchmarks.md ("The LZW encoder").
"""

from __future__ import annotations

import time

import imagecodecs
import numpy

from tifwriter_cli.tiff import lzw

TILE = 512


def label_blob(rng: numpy.random.Generator) -> numpy.ndarray:
    tile = numpy.zeros((TILE, TILE, 1), numpy.uint8)
    yy, xx = numpy.mgrid[:TILE, :TILE]
    tile[((yy - 300) ** 2 + (xx - 260) ** 2) < 120**2] = 2
    return tile


def half_background(rng: numpy.random.Generator) -> numpy.ndarray:
    tile = numpy.zeros((TILE, TILE, 1), numpy.uint8)
    tile[TILE // 2 :] = rng.integers(0, 4, (TILE // 2, TILE, 1))
    return tile


def float32_band(rng: numpy.random.Generator) -> numpy.ndarray:
    tile = numpy.zeros((TILE, TILE, 1), numpy.float32)
    tile[200:320] = rng.random((120, TILE, 1), numpy.float32)
    return tile


def fastest(encode, tile: numpy.ndarray, runs: int = 30) -> float:
    best = float('inf')
    for _ in range(runs):
        start = time.perf_counter()
        encode(tile)
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    rng = numpy.random.default_rng(0)
    plain = lzw.segment_encoder() or imagecodecs.lzw_encode
    print(f'segment encoder: {lzw.encoder_name()}')
    for make in (label_blob, half_background, float32_band):
        tile = numpy.ascontiguousarray(make(rng))
        for encode in (lzw.encode_lzw, plain, imagecodecs.lzw_encode):
            assert imagecodecs.lzw_decode(encode(tile)) == tile.tobytes()
        ours, alone, theirs = (fastest(f, tile) for f in (lzw.encode_lzw, plain, imagecodecs.lzw_encode))
        print(
            f'{make.__name__:16s} encode_lzw {ours * 1e3:6.2f} ms | segment encoder alone '
            f'{alone * 1e3:6.2f} ms ({alone / ours:.1f}x) | imagecodecs {theirs * 1e3:6.2f} ms '
            f'({theirs / ours:.1f}x)'
        )


if __name__ == '__main__':
    main()
