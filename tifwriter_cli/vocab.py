"""The vocabularies of option values, in one place.

Each tuple is the set of values one option accepts, in the order help texts
list them. The library checks its arguments against these tuples, and the
CLI builds its ``click.Choice`` (and metavars) from them, as rasterio's
``rio`` derives its choices from the library's enums: a value added here is
accepted everywhere at once, and no command keeps its own copy.

This module imports nothing (not numpy, not h5py), so the CLI may import it
at module level and ``tifwriter --help`` stays instant.
"""

from __future__ import annotations

__all__ = [
    'BLEND_SHAPES',
    'ANNOTATION_COORDINATES',
    'ANNOTATION_FORMATS',
    'OBJECT_TYPES',
    'COMPRESSIONS',
    'CONVERT_MODES',
    'COORDS',
    'DEFAULT_PATTERN',
    'DTYPES',
    'EDGES',
    'ENGINES',
    'FLAVORS',
    'KINDS',
    'LAYOUTS',
    'MERGE_RULES',
    'ON_ERROR',
    'RESAMPLINGS',
]

#: Pixel types a canvas may hold (what ASAP and tifffile both read).
DTYPES = ('uint8', 'uint16', 'uint32', 'float32')
#: How overlapping writes combine. ``overwrite``: the last published wins;
#: ``weighted``: a mean weighted per window (sliding-window blending,
#: :mod:`tifwriter_cli.blending`).
MERGE_RULES = ('overwrite', 'mean', 'max', 'min', 'weighted')
#: Weight maps of a window on a ``weighted`` canvas (:mod:`tifwriter_cli.blending`).
BLEND_SHAPES = ('gaussian', 'linear', 'flat')
#: Axis orders a patch may come in: (H, W, C), numpy's and ours; (C, H, W), PyTorch's.
LAYOUTS = ('hwc', 'chw')
#: What the data is; finalize picks resampling and compression from it.
KINDS = ('labels', 'probability', 'image')
#: How patch values become canvas values: ``exact`` refuses what the canvas
#: dtype cannot hold, ``scale`` maps floats 0..1 to the integer range,
#: ``clip`` rounds and clips (:mod:`tifwriter_cli.convert`).
CONVERT_MODES = ('exact', 'scale', 'clip')
#: What patch positions count in: canvas pixels, or slide level-0 pixels
#: (:func:`tifwriter_cli.slide.canvas_position`).
COORDS = ('canvas', 'slide')
#: How a canvas derived from a slide treats the slide's partial last tile.
EDGES = ('drop', 'cover')
#: Tile compressions finalize writes (tags: :mod:`tifwriter_cli.tiff.codecs`).
COMPRESSIONS = ('none', 'lzw', 'jpeg', 'deflate', 'zstd')
#: How each lower pyramid level is made from 2x2 blocks
#: (:mod:`tifwriter_cli.tiff.pyramid`).
RESAMPLINGS = ('nearest', 'mode', 'mean', 'max', 'min')
#: Writer engines (:mod:`tifwriter_cli.engines`, one module each).
ENGINES = ('native', 'asap')
#: TIFF flavours finalize writes (their target readers:
#: :data:`tifwriter_cli.tiff.compat.FLAVORS`).
FLAVORS = ('wsi', 'ome')
#: What ingest does at a bad file.
ON_ERROR = ('stop', 'skip')
#: The ingest file name pattern by default: the last two integers of a
#: name are x and y (``tile_12_34.npy``, ``slideA_-512_0.npz``).
DEFAULT_PATTERN = '*{x}_{y}.npy'
#: What export-annotations writes: QuPath GeoJSON or ASAP XML.
ANNOTATION_FORMATS = ('geojson', 'asap-xml')
#: Where exported polygons are placed: slide level-0 pixels or the canvas'.
ANNOTATION_COORDINATES = ('slide', 'canvas')
#: The QuPath object type of exported features.
OBJECT_TYPES = ('annotation', 'detection')
