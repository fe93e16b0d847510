"""The steps that are not the ``tifwriter`` CLI, each run as its own process.

Usage: ``python benchmarks/_peers.py STEP [options]``. Every step prints one
``BENCH_RESULT {json}`` line (see :mod:`_measure`) with what it did.

Steps:

* ``npsave``: ``np.save`` of every 512-px patch of an input (the raw write
  speed of the same bytes ``ingest-npy-dir`` stages);
* ``api``: the Python API, ``open_staging(...).write(x, y, patch)`` over
  the memmap;
* ``libvips``: ``tiffsave`` of the memmap through pyvips (tiled, pyramid,
  BigTIFF);
* ``floor``: the codec floor: encoding exactly the tiles of our TIFF
  (level 0 and every pyramid level) with the same codec and settings, from
  arrays already in memory, on all cores, no I/O, no merge, no dedup; it
  reports the encode-only wall time;
* ``finalize-array``: ``tifwriter_cli.finalization.finalize`` over an
  ``ArraySource`` wrapping the memmap: our writer from the very source
  libvips reads, without the staging file (tells the staging read's share);
* ``asap``: ASAP's ``MultiResolutionImageWriter`` (when importable);
* ``scale-stage``: stages the scale case (a huge canvas, a fraction of it
  written) through the Python API, from random 512-px windows of a mask.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _inputs import save_patches  # noqa: E402
from _measure import report_result  # noqa: E402

#: Input kind -> the staging canvas kind tifwriter uses for it.
CANVAS_KIND = {'mask': 'labels', 'rgb': 'image', 'prob': 'probability', 'ragged': 'labels', 'speckle': 'labels', 'many': 'labels'}
VIPS_FORMAT = {'uint8': 'uchar', 'uint16': 'ushort', 'uint32': 'uint', 'float32': 'float'}
TIFF_PREDICTOR = {'none': 1, 'horizontal': 2, 'float': 3}


# -- np.save -------------------------------------------------------------
def step_npsave(args: argparse.Namespace) -> None:
    array = numpy.load(args.input, mmap_mode='r')
    started = time.perf_counter()
    saved = save_patches(array, Path(args.out), tile=args.tile)
    buffered = time.perf_counter() - started
    # ingest-npy-dir returns once its fragments are fsync'ed; np.save
    # returns with the data still in the page cache. Make this durable
    # too, so the ratio compares writes, not a write with a memcpy. (The
    # runner syncs before every step, so this flushes this step's data.)
    os.sync()
    report_result(bytes=saved, buffered_s=buffered, sync_s=time.perf_counter() - started - buffered)


# -- Python API ----------------------------------------------------------
def _canvas_for(array: numpy.ndarray, args: argparse.Namespace):
    """The CanvasSpec describing an input array (as the CLI steps' init does)."""
    import tifwriter_cli as tw

    return tw.CanvasSpec(
        width=array.shape[1],
        height=array.shape[0],
        channels=1 if array.ndim == 2 else array.shape[2],
        dtype=str(array.dtype),
        kind=CANVAS_KIND[args.kind],
        tile_size=args.tile,
    )


def step_api(args: argparse.Namespace) -> None:
    import tifwriter_cli as tw

    array = numpy.load(args.input, mmap_mode='r')
    height, width = array.shape[:2]
    spec = _canvas_for(array, args)
    tw.create_staging(args.staging, spec)
    written = 0
    options = {}
    patches = math.ceil(height / args.tile) * math.ceil(width / args.tile)
    if args.fragments:
        # Exactly --fragments fragments (patches spread evenly over them),
        # published by count, not by time or size.
        options = {'publish_every_s': 1e12, 'publish_every_bytes': 1 << 62}
    count = 0
    with tw.open_staging(args.staging, **options) as staging:
        for y in range(0, height, args.tile):
            band = numpy.asarray(array[y : y + args.tile])
            for x in range(0, width, args.tile):
                patch = band[:, x : x + args.tile]
                staging.write(x, y, patch)
                written += patch.nbytes
                count += 1
                if args.fragments and count * args.fragments // patches > (count - 1) * args.fragments // patches:
                    staging.flush()
    report_result(bytes=written)


# -- our writer from the memmap -------------------------------------------
def step_finalize_array(args: argparse.Namespace) -> None:
    import tifwriter_cli as tw
    from tifwriter_cli.sources import ArraySource

    array = numpy.load(args.input, mmap_mode='r')
    height, width = array.shape[:2]
    spec = _canvas_for(array, args)
    # The package's public name, wherever the module behind it lives.
    report = tw.finalize(
        ArraySource(spec, array), args.output, compression=args.compression, quality=args.quality
    )
    report_result(
        seconds=report.seconds,
        tiles_written=report.tiles_written,
        tiles_stored=report.tiles_stored,
        resampling=report.resampling,
    )


# -- libvips -------------------------------------------------------------
def step_libvips(args: argparse.Namespace) -> None:
    import pyvips

    array = numpy.load(args.input, mmap_mode='r')
    height, width = array.shape[:2]
    bands = 1 if array.ndim == 2 else array.shape[2]
    # new_from_memory wraps the memmap without copying: libvips pulls the
    # pages it needs, as it would from an uncompressed file.
    image = pyvips.Image.new_from_memory(array, width, height, bands, VIPS_FORMAT[str(array.dtype)])
    image = image.copy(interpretation='srgb' if bands == 3 else 'b-w')
    options: dict[str, Any] = dict(
        tile=True,
        tile_width=args.tile,
        tile_height=args.tile,
        pyramid=True,
        bigtiff=True,
        compression=args.compression,
        region_shrink=args.region_shrink,
    )
    if args.compression == 'jpeg':
        options['Q'] = args.quality
    else:
        options['predictor'] = args.predictor
    image.tiffsave(args.output, **options)
    report_result(
        concurrency=pyvips.vips_lib.vips_concurrency_get(),
        libvips=f'{pyvips.version(0)}.{pyvips.version(1)}.{pyvips.version(2)}',
        **{k: v for k, v in options.items() if k in ('compression', 'region_shrink', 'predictor', 'Q')},
    )


# -- codec floor ---------------------------------------------------------
def _halve(level: numpy.ndarray, *, labels: bool) -> numpy.ndarray:
    """A 2x smaller level: every other pixel for labels, else a 2x2 mean."""
    if labels:
        return level[::2, ::2]
    height, width = level.shape[0] // 2 * 2, level.shape[1] // 2 * 2
    if height == 0 or width == 0:
        return level[::2, ::2]
    work = numpy.float32 if level.dtype.kind == 'f' else numpy.uint16
    quad = level[0:height:2, 0:width:2].astype(work)
    quad += level[1:height:2, 0:width:2]
    quad += level[0:height:2, 1:width:2]
    quad += level[1:height:2, 1:width:2]
    if level.dtype.kind == 'f':
        return (quad / 4).astype(level.dtype)
    return ((quad + 2) // 4).astype(level.dtype)


def _fit(level: numpy.ndarray, height: int, width: int) -> numpy.ndarray:
    """Crop or zero-pad ``level`` to (height, width): our levels may round
    differently from the simple halving above; the tile count is what matters."""
    out = numpy.zeros((height, width) + level.shape[2:], level.dtype)
    h, w = min(height, level.shape[0]), min(width, level.shape[1])
    out[:h, :w] = level[:h, :w]
    return out


def _layout_from_tiff(path: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Level shapes and tile sizes of every top-level IFD, and codec settings."""
    import tifffile

    levels = []
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            levels.append(
                {'height': page.imagelength, 'width': page.imagewidth,
                 'tile_h': page.tilelength, 'tile_w': page.tilewidth}
            )
        first = tif.pages[0]
        codec = {
            'compression': int(first.compression),
            'predictor': int(first.predictor),
            'photometric': int(first.photometric),
            'subsampling': tuple(first.subsampling or (1, 1)),
        }
    return levels, codec


def _default_layout(height: int, width: int, tile: int) -> list[dict[str, Any]]:
    """Halve until the level fits in one tile (libvips/OpenSlide convention)."""
    levels = []
    while True:
        levels.append({'height': height, 'width': width, 'tile_h': tile, 'tile_w': tile})
        if height <= tile and width <= tile:
            return levels
        height, width = max(1, math.ceil(height / 2)), max(1, math.ceil(width / 2))


def _encoder(codec: dict[str, Any], quality: int, channels: int) -> Callable[[numpy.ndarray], bytes]:
    import imagecodecs

    compression = codec['compression']
    if compression == 7:  # JPEG
        ycbcr = codec['photometric'] == 6
        subsampling = codec['subsampling'] if ycbcr else (1, 1)
        colorspace = 'RGB' if channels == 3 else 'GRAY'
        outcolorspace = 'YCBCR' if ycbcr else colorspace

        def encode(tile: numpy.ndarray) -> bytes:
            return imagecodecs.jpeg8_encode(
                tile, level=quality, colorspace=colorspace,
                outcolorspace=outcolorspace, subsampling=subsampling,
            )

        return encode
    if compression not in (5, 1):
        raise SystemExit(f'floor: compression {compression} not supported here')
    predict = {
        1: None,
        2: imagecodecs.delta_encode,
        3: imagecodecs.floatpred_encode,
    }[codec['predictor']]
    # tifffile's convention: predict along the row, per sample.
    axis = -2 if channels > 1 else -1
    compress = _fastest_lzw() if compression == 5 else bytes

    def encode(tile: numpy.ndarray) -> bytes:
        if predict is not None:
            tile = predict(tile, axis=axis)
        return compress(tile)

    return encode


def _fastest_lzw() -> Callable[[Any], bytes]:
    """The fastest plain LZW encoder here: tifwriter's compiled one when it
    is built (the same bytes as imagecodecs', checked), else imagecodecs'.
    A floor measured with a slower encoder than finalize uses would not be
    the physical limit."""
    import imagecodecs

    try:
        from tifwriter_cli.tiff.lzw import segment_encoder
    except ImportError:
        return imagecodecs.lzw_encode
    return segment_encoder() or imagecodecs.lzw_encode


def _lzw_encoder_name() -> str:
    try:
        from tifwriter_cli.tiff.lzw import encoder_name
    except ImportError:
        return 'imagecodecs'
    return encoder_name()


def step_floor(args: argparse.Namespace) -> None:
    array = numpy.load(args.input, mmap_mode='r')
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    if args.like and Path(args.like).exists():
        layout, codec = _layout_from_tiff(args.like)
        source = 'tifwriter output'
    else:
        layout = _default_layout(height, width, args.tile)
        codec = {
            'compression': 7 if args.compression == 'jpeg' else 5,
            'predictor': TIFF_PREDICTOR[args.predictor],
            'photometric': 6 if args.compression == 'jpeg' else 1,
            'subsampling': (2, 2),
        }
        source = 'default halving (no tifwriter output to copy)'
    encode = _encoder(codec, args.quality, channels)

    # Untimed preparation: every tile as its own contiguous array in memory.
    level = numpy.array(array)
    tiles: list[numpy.ndarray] = []
    for index, spec in enumerate(layout):
        if index:
            level = _halve(level, labels=CANVAS_KIND[args.kind] == 'labels')
        level = _fit(level, spec['height'], spec['width'])
        th, tw = spec['tile_h'], spec['tile_w']
        for y in range(0, spec['height'], th):
            for x in range(0, spec['width'], tw):
                tile = numpy.zeros((th, tw) + level.shape[2:], level.dtype)
                part = level[y : y + th, x : x + tw]
                tile[: part.shape[0], : part.shape[1]] = part
                tiles.append(tile)
    del level

    workers = os.cpu_count() or 1

    def encode_all(batch: list[numpy.ndarray]) -> tuple[float, float, int]:
        cpu0, wall0 = time.process_time(), time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            size = sum(len(data) for data in pool.map(encode, batch))
        return time.perf_counter() - wall0, time.process_time() - cpu0, size

    wall, cpu, encoded = encode_all(tiles)
    # The floor as defined encodes every tile. A writer that encodes each
    # uniform tile once (ours) can go below it; this second figure is the
    # floor for that: every non-uniform tile plus one per uniform content.
    distinct, seen = [], set()
    for tile in tiles:
        flat = tile.reshape(-1)
        if (flat == flat[0]).all():
            key = (tile.shape, flat[:1].tobytes())
            if key in seen:
                continue
            seen.add(key)
        distinct.append(tile)
    distinct_wall, distinct_cpu, _ = encode_all(distinct)
    report_result(
        encode_wall_s=wall,
        encode_cpu_s=cpu,
        distinct_encode_wall_s=distinct_wall,
        distinct_encode_cpu_s=distinct_cpu,
        distinct_tiles=len(distinct),
        tiles=len(tiles),
        levels=len(layout),
        workers=workers,
        bytes_in=sum(t.nbytes for t in tiles),
        bytes_out=encoded,
        layout_from=source,
        lzw_encoder=_lzw_encoder_name() if codec['compression'] == 5 else None,
        codec={k: list(v) if isinstance(v, tuple) else v for k, v in codec.items()},
    )


# -- ASAP ----------------------------------------------------------------
def step_asap(args: argparse.Namespace) -> None:
    import multiresolutionimageinterface as mir

    array = numpy.load(args.input, mmap_mode='r')
    height, width = array.shape[:2]
    channels = 1 if array.ndim == 2 else array.shape[2]
    writer = mir.MultiResolutionImageWriter()
    writer.openFile(args.output)
    writer.setTileSize(args.tile)
    # ASAP >= 2.1 names (Compression_*, DataType_*, ColorType_*, Interpolation_*).
    if args.compression == 'jpeg':
        writer.setCompression(mir.Compression_JPEG)
        writer.setJPEGQuality(float(args.quality))
    else:
        writer.setCompression(mir.Compression_LZW)
    writer.setDataType(mir.DataType_Float if array.dtype == numpy.float32 else mir.DataType_UChar)
    writer.setColorType(mir.ColorType_RGB if channels == 3 else mir.ColorType_Monochrome)
    if CANVAS_KIND[args.kind] == 'labels':
        writer.setInterpolation(mir.Interpolation_NearestNeighbor)
    writer.writeImageInformation(width, height)
    tile = args.tile
    for y in range(0, height, tile):
        band = numpy.asarray(array[y : y + tile])
        for x in range(0, width, tile):
            # ASAP takes whole tiles in raster order, padded at the borders.
            block = numpy.zeros((tile, tile) + array.shape[2:], array.dtype)
            part = band[:, x : x + tile]
            block[: part.shape[0], : part.shape[1]] = part
            writer.writeBaseImagePart(block.ravel())
    writer.finishImage()
    report_result(asap=True)


# -- overlapping windows (heatmaps under mean / overwrite) ---------------
WINDOW = 512
WINDOW_STRIDE = 384


def step_windows_stage(args: argparse.Namespace) -> None:
    """Stage a heatmap as a model writes one: 512-px windows at stride 384
    (so most pixels are covered 2 or 4 times), each window the probability
    input there times a gain of its own (overlaps differ, as neighbouring
    windows' predictions do), under the canvas' merge rule."""
    import tifwriter_cli as tw

    source = numpy.load(args.input, mmap_mode='r')
    size = args.size
    spec = tw.CanvasSpec(
        width=size, height=size, dtype=args.dtype, kind='probability', merge=args.merge, tile_size=args.tile
    )
    tw.create_staging(args.staging, spec)
    rng = numpy.random.default_rng(args.seed)
    limit_y, limit_x = source.shape[0] - WINDOW, source.shape[1] - WINDOW
    windows = 0
    with tw.open_staging(args.staging) as staging:
        for y in range(0, size, WINDOW_STRIDE):
            for x in range(0, size, WINDOW_STRIDE):
                sy, sx = y % max(limit_y, 1), x % max(limit_x, 1)
                window = numpy.array(source[sy : sy + WINDOW, sx : sx + WINDOW], numpy.float32)
                window *= numpy.float32(0.9 + 0.2 * rng.random())
                numpy.clip(window, 0, 1, out=window)
                if args.dtype == 'uint8':
                    window = numpy.rint(window * 255).astype(numpy.uint8)
                staging.write(x, y, window)
                windows += 1
    report_result(windows=windows)


# -- scale case staging --------------------------------------------------
def scale_cells(cells_y: int, cells_x: int, coverage: float, seed: int) -> numpy.ndarray:
    """(row, col) of the grid cells written: a tissue-like blob region
    covering ``coverage`` of the grid (a smooth random field's top quantile)."""
    from _inputs import smooth_noise

    rng = numpy.random.default_rng(seed)
    field = smooth_noise((cells_y, cells_x), max(cells_x, cells_y) / 12, rng)
    count = max(1, round(coverage * field.size))
    chosen = numpy.argsort(field, axis=None)[::-1][:count]
    rows, cols = numpy.unravel_index(numpy.sort(chosen), field.shape)  # raster order
    return numpy.stack([rows, cols], axis=1)


def step_scale_stage(args: argparse.Namespace) -> None:
    import tifwriter_cli as tw

    mask = numpy.load(args.mask, mmap_mode='r')
    tile, size = args.tile, args.size
    cells = math.ceil(size / tile)
    chosen = scale_cells(cells, cells, args.coverage, args.seed)
    rng = numpy.random.default_rng(args.seed + 1)
    # Random (not tile-aligned) 512-px windows of the generated mask: every
    # patch is realistic and distinct, and costs one memmap copy.
    offsets_y = rng.integers(0, mask.shape[0] - tile + 1, len(chosen))
    offsets_x = rng.integers(0, mask.shape[1] - tile + 1, len(chosen))
    spec = tw.CanvasSpec(width=size, height=size, kind='labels', tile_size=tile)
    tw.create_staging(args.staging, spec)
    written = 0
    with tw.open_staging(args.staging) as staging:
        for (row, col), oy, ox in zip(chosen, offsets_y, offsets_x, strict=True):
            patch = numpy.array(mask[oy : oy + tile, ox : ox + tile])
            staging.write(int(col) * tile, int(row) * tile, patch)
            x0, y0 = int(col) * tile, int(row) * tile
            written += min(tile, size - x0) * min(tile, size - y0)
    report_result(patches=len(chosen), written_pixels=written, canvas_pixels=size * size)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        'step',
        choices=['npsave', 'api', 'finalize-array', 'libvips', 'floor', 'asap', 'scale-stage', 'windows-stage'],
    )
    parser.add_argument('--input')
    parser.add_argument('--output')
    parser.add_argument('--out')
    parser.add_argument('--staging')
    parser.add_argument('--kind', choices=sorted(CANVAS_KIND))
    parser.add_argument('--tile', type=int, default=512)
    parser.add_argument('--compression', choices=['lzw', 'jpeg'], default='lzw')
    parser.add_argument('--quality', type=int, default=90)
    parser.add_argument('--predictor', choices=sorted(TIFF_PREDICTOR), default='none')
    parser.add_argument('--region-shrink', default='mean')
    parser.add_argument('--like', help='TIFF whose tile layout and codec the floor copies')
    parser.add_argument('--mask')
    parser.add_argument('--size', type=int)
    parser.add_argument('--coverage', type=float, default=0.25)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--fragments', type=int, default=0, help='api: publish about this many fragments')
    parser.add_argument('--dtype', choices=['float32', 'uint8'], default='float32')
    parser.add_argument('--merge', choices=['mean', 'overwrite'], default='overwrite')
    args = parser.parse_args(argv)
    step = globals()['step_' + args.step.replace('-', '_')]
    step(args)


if __name__ == '__main__':
    main()
