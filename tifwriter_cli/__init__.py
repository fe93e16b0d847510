"""tifwriter: ML prediction arrays to pyramidal whole-slide-image TIFFs.

Stage patches from any number of processes into an on-disk HDF5 staging
unit, then write one tiled, multi-resolution TIFF that ASAP, OpenSlide,
QuPath and libvips open, aligned with the slide.

Example (runs as is)::

    >>> import numpy, tempfile, os
    >>> import tifwriter_cli as tw
    >>> work = tempfile.mkdtemp()
    >>> spec = tw.CanvasSpec(width=1000, height=700, spacing_x=0.5, kind='labels')
    >>> _ = tw.create_staging(os.path.join(work, 'mask.h5'), spec)
    >>> with tw.open_staging(os.path.join(work, 'mask.h5')) as staging:
    ...     staging.write(-100, 600, numpy.full((256, 256), 2, numpy.uint8))
    True
    >>> with tw.read_staging(os.path.join(work, 'mask.h5')) as snapshot:
    ...     int(snapshot.read_region(0, 650, 10, 10).max())
    2

Heavy modules (h5py, tifffile, imagecodecs) are imported on first use, so
``tifwriter --help`` stays instant.
"""

from __future__ import annotations

from typing import Any

__version__ = '0.1.0'

__all__ = [
    '__version__',
    'CanvasSpec',
    'create_staging',
    'open_staging',
    'read_staging',
    'ingest_npy_dir',
    'ingest_table',
    'stage_dask_array',
    'Blend',
    'finalize',
    'errors',
]

# name -> module that defines it; resolved lazily (PEP 562).
_LAZY = {
    'CanvasSpec': 'tifwriter_cli.spec',
    'create_staging': 'tifwriter_cli.staging',
    'open_staging': 'tifwriter_cli.staging',
    'read_staging': 'tifwriter_cli.staging',
    'StagingWriter': 'tifwriter_cli.staging',
    'StagingSnapshot': 'tifwriter_cli.staging',
    'ingest_npy_dir': 'tifwriter_cli.ingest',
    'finalize': 'tifwriter_cli.finalization',
    'ingest_table': 'tifwriter_cli.ingest.tile_scores',
    'stage_dask_array': 'tifwriter_cli.dask_staging',
    'Blend': 'tifwriter_cli.blending',
}


def __getattr__(name: str) -> Any:
    module_name = _LAZY.get(name)
    if module_name is None:
        if name == 'errors':
            import importlib

            return importlib.import_module('tifwriter_cli.errors')
        raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
    import importlib

    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
