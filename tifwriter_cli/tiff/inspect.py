"""``info`` on a TIFF: its levels, and which readers open it right.

Reads the facts of every IFD (and of level 0's SubIFDs, an OME-TIFF's
pyramid) with tifffile; the verdicts come from the rules in :mod:`.compat`,
one per reader: ``asap``, ``openslide_3.4``, ``openslide_4``,
``large_image``, ``bioformats``, ``qupath``. ``accepted_by`` names exactly
the readers whose verdict is ok.

Top-level ``ok`` (what ``tifwriter info`` exits 0 for) means: a tiled
pyramidal TIFF that the readers of its flavour accept as laid out.
Precisely, all of these hold:

1. level 0 (the first IFD) is tiled;
2. it is pyramidal: the smallest level's long side is <= 4096 px, or its
   short side is <= 30 px (halving it again would leave no room for a
   16-px tile);
3. the flavour's readers - ASAP and OpenSlide 4 for a plain (``wsi``) TIFF,
   Bio-Formats for an OME-TIFF - have no *layout* reason to fail: anything
   a writer controls (tiling, tile sizes, level order, NewSubfileType,
   SubIFDs, compression, ImageDescription, tile byte counts, ...);
4. at least one of them accepts it completely.

So a float32 or uint32 mask (OpenSlide cannot show 32-bit samples at all,
ASAP reads it) is ok, but Adobe Deflate (8), zstd, or ``xml`` in the
description of a plain TIFF (ASAP refuses the file) are not. The other
readers' verdicts are reported but do not decide ``ok``.
"""

from __future__ import annotations

import os
from typing import Any

from ..errors import NotATiffError
from .compat import accepting_readers, judge
from .metadata import parse_description
from .read import (
    collect_tifffile_warnings,
    open_tiff,
    resolution_ratio,
    spacing_from_resolution,
    sub_ifd_pages,
    tag_value,
)
from .readers import compression_name

__all__ = ['inspect_tiff']

def _photometric_name(value: int) -> str:
    """'MinIsBlack', 'RGB', ... (the TIFF 6 spelling), or the number for others."""
    from tifffile import PHOTOMETRIC

    names = {
        PHOTOMETRIC.MINISWHITE: 'MinIsWhite',
        PHOTOMETRIC.MINISBLACK: 'MinIsBlack',
        PHOTOMETRIC.RGB: 'RGB',
        PHOTOMETRIC.PALETTE: 'Palette',
        PHOTOMETRIC.MASK: 'Mask',
        PHOTOMETRIC.SEPARATED: 'Separated',
        PHOTOMETRIC.YCBCR: 'YCbCr',
        PHOTOMETRIC.CIELAB: 'CIELab',
    }
    return names.get(value, str(value))  # type: ignore[call-overload]


def _resolution_unit_name(value: int | None) -> str:
    from tifffile import RESUNIT

    try:
        return RESUNIT(value or RESUNIT.NONE).name.lower()
    except ValueError:
        return str(value)


def _spacing_um(ifd: dict[str, Any]) -> list[float] | None:
    """Micrometres per pixel from the resolution tags (cm or inch units only)."""
    spacing = spacing_from_resolution(ifd['resolution_unit'], ifd['x_resolution'], ifd['y_resolution'])
    return list(spacing) if spacing else None


def inspect_tiff(path: str | os.PathLike) -> dict[str, Any]:
    """Levels, pixel type, spacing, provenance and reader verdicts of a TIFF."""
    path = os.fspath(path)
    with collect_tifffile_warnings() as warnings, open_tiff(path) as tif:
        ifds = [_ifd_facts(page, number) for number, page in enumerate(tif.pages)]
        sub_ifds = (
            [_ifd_facts(sub, f'0 SubIFD {n}') for n, sub in enumerate(sub_ifd_pages(tif))]
            if ifds and ifds[0]['subifds']
            else []
        )
        is_bigtiff = tif.is_bigtiff
    if not ifds:
        why = f' ({warnings[0]})' if warnings else ''
        raise NotATiffError(f'{path} is a damaged TIFF: no readable image{why}')
    report = _report(path, ifds, sub_ifds, is_bigtiff)
    if warnings:
        # tifffile read past damage (e.g. a broken IFD chain): the readers
        # would stumble there too.
        report['tifffile_warnings'] = warnings
        report['ok'] = False
        report['reasons'].append(f'damaged TIFF structure: {warnings[0]}')
    return report


def _ifd_facts(page: Any, number: int) -> dict[str, Any]:
    """Plain facts of one top-level IFD."""
    import numpy

    counts = numpy.asarray(page.databytecounts, dtype=numpy.uint64)
    offsets = numpy.asarray(page.dataoffsets, dtype=numpy.uint64)
    resolution_unit = tag_value(page, 'ResolutionUnit')
    x_resolution = tag_value(page, 'XResolution')
    y_resolution = tag_value(page, 'YResolution')
    smin = tag_value(page, 'SMinSampleValue')
    smax = tag_value(page, 'SMaxSampleValue')
    return {
        'ifd': number,
        'width': int(page.imagewidth),
        'height': int(page.imagelength),
        'tiled': bool(page.is_tiled),
        'tile_width': int(page.tilewidth) if page.is_tiled else None,
        'tile_height': int(page.tilelength) if page.is_tiled else None,
        'compression_tag': int(page.compression),
        'photometric': int(page.photometric),
        'channels': int(page.samplesperpixel),
        'bits': int(page.bitspersample),
        'sample_format': int(page.sampleformat),
        'dtype': str(page.dtype) if page.dtype is not None else None,
        'planar': int(page.planarconfig),
        'new_subfile_type': int(tag_value(page, 'NewSubfileType', 0)),
        'subifds': len(tag_value(page, 'SubIFDs', ()) or ()),
        'description': page.description or '',
        'software': page.software or '',
        'resolution_unit': int(resolution_unit) if resolution_unit is not None else None,
        'x_resolution': resolution_ratio(x_resolution),
        'y_resolution': resolution_ratio(y_resolution),
        'sample_min': _as_list(smin),
        'sample_max': _as_list(smax),
        'tiles': int(len(counts)),
        'zero_byte_tiles': int((counts == 0).sum()),
        'data_end': int((offsets + counts).max()) if len(counts) else 0,
        'chunks': set(zip(offsets.tolist(), counts.tolist(), strict=True)) - {(0, 0)},
    }


def _report(
    path: str, ifds: list[dict[str, Any]], sub_ifds: list[dict[str, Any]], is_bigtiff: bool
) -> dict[str, Any]:
    file_bytes = os.path.getsize(path)
    first = ifds[0]
    verdict = judge(ifds, sub_ifds, file_bytes)
    levels = verdict['pyramid']
    others = [ifd for ifd in ifds if not ifd['tiled']]
    description = first['description']
    unit = first['resolution_unit']
    level0_width = first['width']
    level_rows = [
        {
            'ifd': ifd['ifd'],
            'width': ifd['width'],
            'height': ifd['height'],
            'downsample': level0_width / ifd['width'],
            'tile_width': ifd['tile_width'],
            'tile_height': ifd['tile_height'],
            'compression': compression_name(ifd['compression_tag']),
            'compression_tag': ifd['compression_tag'],
            'new_subfile_type': ifd['new_subfile_type'],
            'tiles': ifd['tiles'],
            'zero_byte_tiles': ifd['zero_byte_tiles'],
            'spacing_um': _spacing_um(ifd),
        }
        for ifd in levels
    ]
    chunks: set[tuple[int, int]] = set()
    for ifd in ifds + sub_ifds:
        chunks |= ifd['chunks']
    return {
        'path': path,
        'format': 'BigTIFF' if is_bigtiff else 'TIFF',
        'flavor': verdict['flavor'],
        'file_bytes': file_bytes,
        'levels': level_rows,
        'other_ifds': [
            {'ifd': ifd['ifd'], 'width': ifd['width'], 'height': ifd['height'], 'tiled': False}
            for ifd in others
        ],
        'dtype': first['dtype'],
        'channels': first['channels'],
        'photometric': _photometric_name(first['photometric']),
        'compression': compression_name(first['compression_tag']),
        'spacing_um': _spacing_um(first),
        'resolution_unit': _resolution_unit_name(unit),
        'description': description,
        'provenance': parse_description(description),
        'sample_range': (
            {'min': first['sample_min'], 'max': first['sample_max']}
            if first['sample_min'] is not None or first['sample_max'] is not None
            else None
        ),
        'tiles': {
            'referenced': sum(ifd['tiles'] for ifd in ifds + sub_ifds),
            'stored': len(chunks),
        },
        'readers': verdict['readers'],
        'accepted_by': accepting_readers(verdict['readers']),
        'ok': verdict['ok'],
        'reasons': verdict['reasons'],
    }


def _as_list(value: Any) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # BYTE-typed (ASAP's writer stores them so)
        return [float(v) for v in value]
    if isinstance(value, (tuple, list)):
        return [float(v) for v in value]
    return [float(value)]
