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

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from ..errors import NotATiffError, one_line
from ..report import format_bytes
from .compat import READER_TITLES, accepting_readers, compression_name, judge
from .metadata import parse_description

__all__ = ['inspect_tiff', 'format_tiff_report']

_PHOTOMETRIC_NAMES = {
    0: 'MinIsWhite',
    1: 'MinIsBlack',
    2: 'RGB',
    3: 'Palette',
    4: 'Mask',
    5: 'Separated',
    6: 'YCbCr',
    8: 'CIELab',
}

def inspect_tiff(path: str | os.PathLike) -> dict[str, Any]:
    """Levels, pixel type, spacing, provenance and reader verdicts of a TIFF."""
    import tifffile

    path = os.fspath(path)
    with _tifffile_warnings() as warnings:
        try:
            tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, ValueError, IndexError, KeyError, EOFError) as exc:
            raise NotATiffError(f'{path} is not a readable TIFF ({one_line(exc)})') from None
        try:
            with tif:
                ifds = [_ifd_facts(page, number) for number, page in enumerate(tif.pages)]
                sub_ifds = _sub_ifd_facts(tif) if ifds and ifds[0]['subifds'] else []
                is_bigtiff = tif.is_bigtiff
        except Exception as exc:  # tifffile raises many kinds on a damaged file
            raise NotATiffError(f'{path} is a damaged TIFF ({one_line(exc)})') from None
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


@contextlib.contextmanager
def _tifffile_warnings() -> Iterator[list[str]]:
    """Collect tifffile's logged warnings instead of letting them reach stderr."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            text = record.getMessage()
            # tifffile prefixes the object's repr: keep the words after it.
            messages.append(one_line(ValueError(text.split('> ', 1)[-1])))

    logger = logging.getLogger('tifffile')
    handler = Collect(logging.WARNING)
    saved = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = saved


def _tag(page: Any, name: str, default: Any = None) -> Any:
    tag = page.tags.get(name)
    return default if tag is None else tag.value


def _ifd_facts(page: Any, number: int) -> dict[str, Any]:
    """Plain facts of one top-level IFD."""
    import numpy

    counts = numpy.asarray(page.databytecounts, dtype=numpy.uint64)
    offsets = numpy.asarray(page.dataoffsets, dtype=numpy.uint64)
    resolution_unit = _tag(page, 'ResolutionUnit')
    x_resolution = _tag(page, 'XResolution')
    y_resolution = _tag(page, 'YResolution')
    smin = _tag(page, 'SMinSampleValue')
    smax = _tag(page, 'SMaxSampleValue')
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
        'new_subfile_type': int(_tag(page, 'NewSubfileType', 0)),
        'subifds': len(_tag(page, 'SubIFDs', ()) or ()),
        'description': page.description or '',
        'software': page.software or '',
        'resolution_unit': int(resolution_unit) if resolution_unit is not None else None,
        'x_resolution': _ratio(x_resolution),
        'y_resolution': _ratio(y_resolution),
        'sample_min': _as_list(smin),
        'sample_max': _as_list(smax),
        'tiles': int(len(counts)),
        'zero_byte_tiles': int((counts == 0).sum()),
        'data_end': int((offsets + counts).max()) if len(counts) else 0,
        'chunks': set(zip(offsets.tolist(), counts.tolist(), strict=True)) - {(0, 0)},
    }


def _sub_ifd_facts(tif: Any) -> list[dict[str, Any]]:
    """Facts of level 0's SubIFDs (an OME-TIFF's reduced levels), in order."""
    import tifffile

    page = tif.pages[0]
    facts = []
    for number, offset in enumerate(page.subifds or ()):
        tif.filehandle.seek(offset)
        sub = tifffile.TiffPage(tif, index=(0, number))
        facts.append(_ifd_facts(sub, f'0 SubIFD {number}'))
    return facts


def _spacing_um(ifd: dict[str, Any]) -> list[float] | None:
    """Micrometres per pixel from the resolution tags (cm or inch units only)."""
    per_unit = {3: 10000.0, 2: 25400.0}.get(ifd['resolution_unit'] or 0)
    if per_unit is None or not ifd['x_resolution'] or not ifd['y_resolution']:
        return None
    return [per_unit / ifd['x_resolution'], per_unit / ifd['y_resolution']]


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
        'photometric': _PHOTOMETRIC_NAMES.get(first['photometric'], str(first['photometric'])),
        'compression': compression_name(first['compression_tag']),
        'spacing_um': _spacing_um(first),
        'resolution_unit': {1: 'none', 2: 'inch', 3: 'centimeter'}.get(unit or 1, str(unit)),
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


def _ratio(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        if len(value) != 2 or not value[1]:
            return None
        return value[0] / value[1]
    return float(value)


def _as_list(value: Any) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, bytes):  # BYTE-typed (ASAP's writer stores them so)
        return [float(v) for v in value]
    if isinstance(value, (tuple, list)):
        return [float(v) for v in value]
    return [float(value)]


def format_tiff_report(r: dict[str, Any]) -> str:
    """The report as text for people."""
    spacing = (
        f'{r["spacing_um"][0]:.6g} x {r["spacing_um"][1]:.6g} um/px'
        if r['spacing_um']
        else 'unknown (no resolution in cm or inch)'
    )
    lines = [
        f'TIFF          {r["path"]}  ({r["format"]}, {format_bytes(r["file_bytes"])})',
        f'pixels        {r["dtype"]}, {r["channels"]} channel(s), {r["photometric"]}, '
        f'{r["compression"]}',
        f'spacing       {spacing}',
    ]
    if r['provenance']:
        p = r['provenance']
        lines.append(
            f'written by    {p.get("tool")}: kind {p.get("kind", "?")}, merge {p.get("merge", "?")}, '
            f'resampling {p.get("resampling", "?")}'
        )
    elif r['description']:
        text = r['description'].replace('\n', ' ')
        lines.append(f'description   {text[:100]}{"..." if len(text) > 100 else ""}')
    if r['sample_range']:
        low, high = (
            ', '.join(f'{value:g}' for value in r['sample_range'][key] or []) or '?'
            for key in ('min', 'max')
        )
        lines.append(f'display range {low} .. {high} (SMin/SMaxSampleValue)')
    lines.append(f'levels        {len(r["levels"])}')
    for number, level in enumerate(r['levels']):
        lines.append(
            f'  {number}: {level["width"]:>7} x {level["height"]:<7} '
            f'downsample {level["downsample"]:<8.4g} tile {level["tile_width"]}x{level["tile_height"]}'
            f'  {level["compression"]}'
            + (f'  {level["zero_byte_tiles"]} missing tile(s)' if level['zero_byte_tiles'] else '')
        )
    for other in r['other_ifds']:
        lines.append(f'  (IFD {other["ifd"]}: {other["width"]} x {other["height"]}, not tiled)')
    lines.append(f'tiles         {r["tiles"]["referenced"]} referenced, {r["tiles"]["stored"]} stored')
    for reader, verdict in r['readers'].items():
        status = 'ok' if verdict['ok'] else 'FAILS'
        lines.append(f'{READER_TITLES[reader]:<14}{status}')
        for reason in verdict['reasons']:
            lines.append(f'    - {reason}')
        for note in verdict['notes']:
            lines.append(f'    note: {note}')
    accepted = ', '.join(r['accepted_by']) or 'no reader judged here'
    if r['ok']:
        lines.append(f'verdict       ok: a tiled pyramidal TIFF ({r["flavor"]}); opens right in {accepted}')
    else:
        lines.append(f'verdict       NOT OK (opens right in: {accepted})')
        for reason in r['reasons']:
            lines.append(f'    - {reason}')
    return '\n'.join(lines)

