"""ASAP's writer as an engine: level 0 from us, the pyramid from ASAP.

Uses ``multiresolutionimageinterface`` (ASAP >= 2.1 names). We hand ASAP
full tiles at tile-grid positions, as 1-D contiguous arrays of the exact
canvas dtype (the canvas fill beyond the right/bottom border); ASAP then
builds its own pyramid with its interpolation (NearestNeighbor: top-left
pixel; Linear: 2x2 mean truncated), compresses and writes the TIFF.

Limits, from ASAP itself: compression none/lzw/jpeg only; resampling
nearest or mean only (``mode`` is ours: labels default to nearest here);
one tile size for every level. This engine cannot be tested where ASAP is
not installed (it is not pip-installable).
"""

from __future__ import annotations

import os
from typing import Any

import numpy

from .base import Engine, EngineResult, WriteOptions

__all__ = ['AsapEngine', 'ENGINE_CLASS']


class AsapEngine(Engine):
    name = 'asap'
    compressions = ('none', 'lzw', 'jpeg')
    resamplings = ('nearest', 'mean')
    flavors = ('wsi',)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            import multiresolutionimageinterface  # noqa: F401
        except ImportError as exc:
            return (
                f'ASAP\'s Python module multiresolutionimageinterface is not importable ({exc}); '
                "install ASAP and add its bin directory to PYTHONPATH, or use engine='native'"
            )
        return None

    def default_resampling(self, preferred: str) -> str:
        return 'nearest' if preferred in ('mode', 'nearest') else 'mean'

    def write(self, source: Any, out_path: str | os.PathLike, options: WriteOptions) -> EngineResult:
        import multiresolutionimageinterface as mir

        spec = options.spec
        tile = options.levels[0].tile
        writer = mir.MultiResolutionImageWriter()
        if writer.openFile(os.fspath(out_path)) != 0:
            raise OSError(f'ASAP cannot open {out_path} for writing')
        writer.setTileSize(tile)
        writer.setCompression(
            {
                'none': mir.Compression_RAW,
                'lzw': mir.Compression_LZW,
                'jpeg': mir.Compression_JPEG,
            }[options.compression]
        )
        if options.compression == 'jpeg':
            writer.setJPEGQuality(float(options.quality))
        writer.setDataType(
            {
                'uint8': mir.DataType_UChar,
                'uint16': mir.DataType_UInt16,
                'uint32': mir.DataType_UInt32,
                'float32': mir.DataType_Float,
            }[spec.dtype]
        )
        if spec.channels == 1:
            writer.setColorType(mir.ColorType_Monochrome)
        elif spec.channels == 3:
            writer.setColorType(mir.ColorType_RGB)
        elif spec.channels == 4:
            writer.setColorType(mir.ColorType_RGBA)
        else:
            writer.setColorType(mir.ColorType_Indexed)
            writer.setNumberOfIndexedColors(spec.channels)
        writer.setInterpolation(
            mir.Interpolation_NearestNeighbor
            if options.resampling == 'nearest'
            else mir.Interpolation_Linear
        )
        writer.writeImageInformation(spec.width, spec.height)
        tiles_across = -(-spec.width // tile)
        tiles_down = -(-spec.height // tile)
        dtype = spec.numpy_dtype
        for row in range(tiles_down):
            y = row * tile
            # One band per tile row; read_region fills beyond the canvas.
            band = source.read_region(0, y, tiles_across * tile, tile)
            for col in range(tiles_across):
                x = col * tile
                data = numpy.ascontiguousarray(band[:, x : x + tile], dtype=dtype).ravel()
                writer.writeBaseImagePartToLocation(data, x, y)
        if spec.spacing_x is not None:
            writer.setSpacing(mir.vector_double([spec.spacing_x, spec.spacing_y]))
        writer.finishImage()
        return _describe_written(out_path, tiles_across * tiles_down)


def _describe_written(path: str | os.PathLike, base_tiles: int) -> EngineResult:
    """Levels as ASAP wrote them (it chooses its own pyramid)."""
    import tifffile

    levels = []
    tiles = 0
    with tifffile.TiffFile(path) as tif:
        for page in tif.pages:
            if page.is_tiled:
                levels.append((int(page.imagewidth), int(page.imagelength), int(page.tilewidth)))
                tiles += len(page.dataoffsets)
    return EngineResult(levels=levels, tiles_written=tiles or base_tiles, tiles_stored=tiles or base_tiles)


ENGINE_CLASS = AsapEngine
