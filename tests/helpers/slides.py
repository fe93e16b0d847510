"""Slides and TIFF inputs written with tifffile, for the tests that read them.

``write_pyramid`` makes what OpenSlide opens as a 'generic-tiff' slide (or a
stripped/SubIFD variant for tifffile only); ``write_level_tiff`` a plain
multi-page TIFF. The shared ``slide`` fixture (tests/conftest.py) is
``write_pyramid`` of a SLIDE_W x SLIDE_H image whose colour changes from
SLIDE_LEFT to SLIDE_RIGHT at x = SLIDE_EDGE.
"""

from __future__ import annotations

from pathlib import Path

import numpy
import tifffile

SLIDE_W, SLIDE_H, SLIDE_MPP = 2000, 1500, 0.25


def write_pyramid(
    path: Path,
    level0: numpy.ndarray,
    *,
    mpp: float | None = SLIDE_MPP,
    unit: str = 'CENTIMETER',
    tiled: bool = True,
    subifds: bool = False,
    downsamples=(2, 4, 8),
) -> Path:
    """A pyramid written with tifffile: reduced pages (NewSubfileType 1) or SubIFDs.

    Tiled with reduced top-level pages is what OpenSlide opens as
    'generic-tiff'; stripped files are for tifffile only.
    """
    per_unit = {'CENTIMETER': 1e4, 'INCH': 25400.0}[unit]
    photometric = 'rgb' if level0.ndim == 3 and level0.shape[2] == 3 else 'minisblack'

    def extra(factor: int) -> dict:
        if mpp is None:
            return {}
        res = per_unit / (mpp * factor)
        return {'resolution': (res, res), 'resolutionunit': unit}

    tile = {'tile': (64, 64)} if tiled else {}
    with tifffile.TiffWriter(path) as tif:
        tif.write(
            level0,
            photometric=photometric,
            subifds=len(downsamples) if subifds else None,
            **tile,
            **extra(1),
        )
        for factor in downsamples:
            tif.write(
                level0[::factor, ::factor],
                photometric=photometric,
                subfiletype=1,
                **tile,
                **extra(factor),
            )
    return path

SLIDE_LEFT, SLIDE_RIGHT = (200, 40, 40), (40, 180, 200)
SLIDE_EDGE = 1008  # on a 16-px block boundary: 63 * 16


def write_level_tiff(path: Path, levels: list[numpy.ndarray], *, description=None, tiled=True, **kw):
    with tifffile.TiffWriter(path) as tif:
        for number, data in enumerate(levels):
            tif.write(
                data,
                tile=(32, 32) if tiled else None,
                subfiletype=1 if number else 0,
                description=description if number == 0 else None,
                metadata=None,
                **kw,
            )
    return path
