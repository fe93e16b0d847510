"""The readers our TIFFs must open in, as test oracles (besides tifffile and
OpenSlide, in _tiff_reference.py): ASAP 2.2's own TIFF reader, tiffslide,
large_image and Bio-Formats.

Each ``read_*`` returns the levels as that reader sees them: a list of
(H, W, C) arrays, level 0 first, plus the facts it reports (pixel size,
level sizes). Each ``*_unavailable()`` returns why the reader cannot run
here (a skip reason naming the missing piece and how to get it), or None.

ASAP (``multiresolutionimageinterface``) is on no package registry. It is
found in ``.cache/asap`` under the project root (or ``$TIFWRITER_ASAP_DIR``),
where ``bash ../shared/asap/install.sh .cache/asap`` builds it (``.ci/run``
does); :func:`make_asap_importable` (called by conftest.py) puts its bin
folder on ``sys.path`` and on ``PYTHONPATH`` for subprocesses (the CLI and
benchmark steps).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any

import numpy

REPO = Path(__file__).resolve().parents[1]
ASAP_BUILD_HINT = 'bash ../shared/asap/install.sh .cache/asap (what .ci/run does)'


# -- ASAP --------------------------------------------------------------------
def asap_bin_dir() -> Path:
    return Path(os.environ.get('TIFWRITER_ASAP_DIR') or REPO / '.cache' / 'asap') / 'bin'


def make_asap_importable() -> None:
    """Let this process and its children import ASAP's module when it was built."""
    bin_dir = asap_bin_dir()
    if not (bin_dir / 'multiresolutionimageinterface.py').exists():
        return
    if str(bin_dir) not in sys.path:
        sys.path.append(str(bin_dir))
    paths = [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    if str(bin_dir) not in paths:
        os.environ['PYTHONPATH'] = os.pathsep.join(paths + [str(bin_dir)])


@functools.cache
def asap_unavailable() -> str | None:
    try:
        import multiresolutionimageinterface  # noqa: F401
    except ImportError as exc:
        shared = REPO.parent / 'shared' / 'asap' / 'install.sh'
        where = (
            f'build it with {ASAP_BUILD_HINT}'
            if shared.exists()
            else 'no ../shared/asap to build it from on this machine'
        )
        return f"ASAP's multiresolutionimageinterface is not importable ({exc}): {where}"
    return None


_ASAP_PATCH = {
    1: 'getUCharPatch',
    2: 'getUInt16Patch',
    3: 'getUInt32Patch',
    4: 'getFloatPatch',
}


def read_levels_asap(path: Path) -> dict[str, Any]:
    """Every level through ASAP's own TIFF reader (never its OpenSlide fallback).

    Returns ``{'levels': [arrays], 'dimensions': [(w, h)], 'spacing': (x, y),
    'downsamples': [...], 'channels': n}``; raises AssertionError when ASAP's
    TIFF reader refuses the file.
    """
    import multiresolutionimageinterface as mir

    reader = mir.MultiResolutionImageReader()
    image = reader.open(str(path), 'ASAP TIF')
    assert image is not None, f"ASAP's TIFF reader refuses {path}"
    count = image.getNumberOfLevels()
    dimensions = [tuple(image.getLevelDimensions(level)) for level in range(count)]
    get_patch = getattr(image, _ASAP_PATCH[image.getDataType()])
    levels = []
    for level, (width, height) in enumerate(dimensions):
        # Coordinates are level-0 pixels; sizes are this level's.
        levels.append(numpy.asarray(get_patch(0, 0, width, height, level)))
    return {
        'levels': levels,
        'dimensions': dimensions,
        'spacing': tuple(image.getSpacing()),
        'downsamples': [image.getLevelDownsample(level) for level in range(count)],
        'channels': image.getSamplesPerPixel(),
        'color_type': image.getColorType(),
    }


def asap_opens(path: Path) -> bool:
    """Whether ASAP's own TIFF reader accepts the file."""
    import multiresolutionimageinterface as mir

    return mir.MultiResolutionImageReader().open(str(path), 'ASAP TIF') is not None


# -- tiffslide ---------------------------------------------------------------
def read_levels_tiffslide(path: Path) -> dict[str, Any]:
    """Every level as tiffslide's read_region gives it (the file's dtype and channels)."""
    import tiffslide

    with tiffslide.TiffSlide(str(path)) as slide:
        return {
            'dimensions': [tuple(d) for d in slide.level_dimensions],
            'downsamples': list(slide.level_downsamples),
            'spacing': (
                float(slide.properties['tiffslide.mpp-x']),
                float(slide.properties['tiffslide.mpp-y']),
            ),
            'levels': [
                _as_hwc(slide.read_region((0, 0), level, size, as_array=True))
                for level, size in enumerate(slide.level_dimensions)
            ],
        }


def _as_hwc(array: Any) -> numpy.ndarray:
    array = numpy.asarray(array)
    return array[:, :, None] if array.ndim == 2 else array


# -- large_image ---------------------------------------------------------------
def read_levels_large_image(path: Path, source: str = 'tiff') -> dict[str, Any]:
    """Our levels as large_image's ``source`` (tiff: what ``large_image.open`` picks for
    .tif) serves them, tile by tile, and which of its levels it had to rebuild itself.

    large_image numbers levels from the smallest (z = 0, one tile) up to full
    resolution; ``rebuilt`` lists the z it synthesises from a larger level
    (with PIL LANCZOS) because the file has no usable directory for it.
    """
    import importlib

    module = importlib.import_module(f'large_image_source_{source}')
    tile_source = module.open(str(path), noCache=True)
    metadata = tile_source.getMetadata()
    tile_width, tile_height = metadata['tileWidth'], metadata['tileHeight']
    top = tile_source.levels - 1
    directories = getattr(tile_source, '_tiffDirectories', None)
    rebuilt = (
        [z for z, directory in enumerate(directories) if directory is None]
        if directories is not None
        else []
    )
    levels = []
    z = top
    width, height = metadata['sizeX'], metadata['sizeY']
    while z >= 0:
        rows = []
        for y in range(-(-height // tile_height)):
            row = [
                _as_hwc(tile_source.getTile(x, y, z, numpyAllowed='always'))
                for x in range(-(-width // tile_width))
            ]
            rows.append(numpy.concatenate(row, axis=1))
        levels.append(numpy.concatenate(rows, axis=0)[:height, :width])
        z -= 1
        width, height = -(-width // 2), -(-height // 2)
    return {
        'levels': levels,
        'top': top,
        'rebuilt': rebuilt,
        'tile': (tile_width, tile_height),
        'spacing': (metadata['mm_x'] * 1000, metadata['mm_y'] * 1000),
        'size': (metadata['sizeX'], metadata['sizeY']),
    }
