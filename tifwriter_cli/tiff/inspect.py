"""``info`` on a TIFF: its levels, and whether ASAP and OpenSlide accept it.

Each reader gets a verdict ``{'ok': bool, 'reasons': [...], 'notes': [...]}``
checked against /work/shared/COMPAT.md (and ASAP 2.2's TIFFImage.cpp,
OpenSlide's generic-tiff driver). ``reasons`` make the reader fail (it
refuses the file, sees fewer levels, or shows wrong pixels); ``notes`` are
worth knowing but harmless to opening it (no pixel size, inch units, ...).

Readers judged: ``asap`` (ASAP 2.2's own TIFF reader), ``openslide_3.4``
(Debian 12's OpenSlide 3.4.1 with libtiff 4.5) and ``openslide_4``
(OpenSlide >= 4.0.1).

Top-level ``ok`` (what ``tifwriter info`` exits 0 for) means: a tiled
pyramidal TIFF that the current readers accept as laid out. Precisely, all
of these hold:

1. level 0 (the first IFD) is tiled, and the pyramid is not hidden in
   SubIFDs;
2. it is pyramidal: the smallest level's long side is <= 4096 px, or its
   short side is <= 30 px (halving it again would leave no room for a
   16-px tile);
3. neither ASAP nor OpenSlide 4 has a *layout* reason to fail: anything
   a writer controls (tiling, tile sizes, level order, NewSubfileType,
   compression, ImageDescription, tile byte counts, ...);
4. at least one of ASAP and OpenSlide 4 accepts it completely.

So a float32 or uint32 mask (OpenSlide cannot show 32-bit samples at all,
ASAP reads it) is ok, but Adobe Deflate (8), zstd, or ``xml`` in the
description (ASAP refuses the file) are not. OpenSlide 3.4's verdict is
reported but does not decide ``ok`` (its limits, e.g. tiles larger than a
small level, are those of an old release).
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import Any, Iterator

from ..errors import NotATiffError
from ..report import format_bytes
from .codecs import READERS, compression_name, reader_problems
from .metadata import FORBIDDEN_DESCRIPTION_WORDS, parse_description

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
_READER_TITLES = {'asap': 'ASAP 2.2', 'openslide_3.4': 'OpenSlide 3.4', 'openslide_4': 'OpenSlide 4'}
#: Pyramid criterion (module docstring, rule 2).
_OVERVIEW_LIMIT = 4096
_SHORT_SIDE_LIMIT = 30

LAYOUT, PIXELS = 'layout', 'pixels'


class _Verdicts:
    def __init__(self) -> None:
        self.reasons: dict[str, list[tuple[str, str]]] = {r: [] for r in READERS}
        self.notes: dict[str, list[str]] = {r: [] for r in READERS}

    def fail(self, readers: tuple[str, ...], text: str, category: str = LAYOUT) -> None:
        for reader in readers:
            if (category, text) not in self.reasons[reader]:
                self.reasons[reader].append((category, text))

    def note(self, readers: tuple[str, ...], text: str) -> None:
        for reader in readers:
            if text not in self.notes[reader]:
                self.notes[reader].append(text)

    def layout_ok(self, reader: str) -> bool:
        return all(category != LAYOUT for category, _ in self.reasons[reader])

    def as_dict(self) -> dict[str, Any]:
        return {
            reader: {
                'ok': not self.reasons[reader],
                'reasons': [text for _, text in self.reasons[reader]],
                'notes': list(self.notes[reader]),
            }
            for reader in READERS
        }


ALL = READERS
OPENSLIDE = ('openslide_3.4', 'openslide_4')


def inspect_tiff(path: str | os.PathLike) -> dict[str, Any]:
    """Levels, pixel type, spacing, provenance and reader verdicts of a TIFF."""
    import tifffile

    path = os.fspath(path)
    with _tifffile_warnings() as warnings:
        try:
            tif = tifffile.TiffFile(path)
        except (tifffile.TiffFileError, ValueError, IndexError, KeyError, EOFError) as exc:
            raise NotATiffError(f'{path} is not a readable TIFF ({_one_line(exc)})') from None
        try:
            with tif:
                ifds = [_ifd_facts(page, number) for number, page in enumerate(tif.pages)]
                is_bigtiff = tif.is_bigtiff
        except Exception as exc:  # tifffile raises many kinds on a damaged file
            raise NotATiffError(f'{path} is a damaged TIFF ({_one_line(exc)})') from None
    if not ifds:
        why = f' ({warnings[0]})' if warnings else ''
        raise NotATiffError(f'{path} is a damaged TIFF: no readable image{why}')
    report = _judge(path, ifds, is_bigtiff)
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
            messages.append(_one_line(ValueError(text.split('> ', 1)[-1])))

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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


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
        'chunks': set(zip(offsets.tolist(), counts.tolist())) - {(0, 0)},
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


def _spacing_um(ifd: dict[str, Any]) -> list[float] | None:
    """Micrometres per pixel from the resolution tags (cm or inch units only)."""
    per_unit = {3: 10000.0, 2: 25400.0}.get(ifd['resolution_unit'] or 0)
    if per_unit is None or not ifd['x_resolution'] or not ifd['y_resolution']:
        return None
    return [per_unit / ifd['x_resolution'], per_unit / ifd['y_resolution']]


def _judge(path: str, ifds: list[dict[str, Any]], is_bigtiff: bool) -> dict[str, Any]:
    v = _Verdicts()
    top_reasons: list[str] = []
    file_bytes = os.path.getsize(path)
    first = ifds[0]
    levels = [ifd for ifd in ifds if ifd['tiled']]
    others = [ifd for ifd in ifds if not ifd['tiled']]

    # -- tiling and the pyramid's shape ---------------------------------------
    if not first['tiled']:
        text = 'level 0 is stored in strips, not tiles'
        v.fail(ALL, text)
        top_reasons.append(text)
    if first['subifds'] and len(levels) <= 1:
        text = (
            f'the pyramid is in {first["subifds"]} SubIFD(s), which ASAP and OpenSlide do not '
            'see: they open one level only'
        )
        v.fail(ALL, text)
        top_reasons.append(text)
    elif first['subifds']:
        v.note(ALL, 'SubIFDs present: readers ignore them')
    for ifd in levels:
        tile_w, tile_h = ifd['tile_width'], ifd['tile_height']
        name = f'IFD {ifd["ifd"]}'
        if tile_w % 16 or tile_h % 16:
            v.fail(ALL, f'{name}: tile {tile_w}x{tile_h} is not a multiple of 16 (libtiff refuses it)')
        if tile_w > ifd['width'] or tile_h > ifd['height']:
            v.fail(
                ('openslide_3.4',),
                f'{name}: tile {tile_w}x{tile_h} larger than the level {ifd["width"]}x{ifd["height"]} '
                '(OpenSlide 3.4.1 with libtiff 4.5 reads it as garbage)',
            )
        if ifd['zero_byte_tiles']:
            v.fail(
                ('openslide_3.4',),
                f'{name}: {ifd["zero_byte_tiles"]} tile(s) with byte count 0 '
                '(OpenSlide before 4.0.1 fails the read)',
            )
            v.note(('openslide_4',), f'{name}: {ifd["zero_byte_tiles"]} missing tile(s) shown transparent')
            v.note(('asap',), f'{name}: {ifd["zero_byte_tiles"]} missing tile(s) read as 0')
        if ifd['data_end'] > file_bytes:
            v.fail(ALL, f'{name}: tile data runs past the end of the file (truncated?)')
        if ifd['planar'] != 1:
            v.fail(ALL, f'{name}: PlanarConfiguration {ifd["planar"]} (readers need 1, contiguous)')
        problems = reader_problems(
            compression_tag=ifd['compression_tag'],
            dtype=ifd['dtype'] or 'uint8',
            channels=ifd['channels'],
            photometric=ifd['photometric'],
        )
        compression_text = f'cannot decode compression {compression_name(ifd["compression_tag"])}'
        for reader, texts in problems.items():
            for text in texts:
                category = LAYOUT if text.startswith(compression_text) else PIXELS
                v.fail((reader,), text, category)
        if ifd['dtype'] is None:
            v.fail(ALL, f'{name}: unsupported sample layout ({ifd["bits"]} bits, format {ifd["sample_format"]})', PIXELS)
    if levels:
        widest = max(levels, key=lambda ifd: ifd['width'])
        if widest is not levels[0] or widest['height'] < max(ifd['height'] for ifd in levels):
            v.fail(ALL, 'level 0 is not the first (largest) image')
    if first['new_subfile_type'] & 1:
        v.note(ALL, f'level 0 has NewSubfileType {first["new_subfile_type"]} (expected 0)')
    for previous, ifd in zip(levels, levels[1:]):
        if ifd['width'] >= previous['width']:
            v.fail(
                ('asap',),
                f'IFD {ifd["ifd"]} ({ifd["width"]} px wide) is not narrower than IFD '
                f'{previous["ifd"]} ({previous["width"]} px): ASAP refuses the file',
            )
    if len(levels) == 1 and first['width'] >= 4096:
        v.fail(
            ('asap',),
            f'a single level {first["width"]} px wide: ASAP opens a one-level TIFF only when it is '
            'under 4096 px wide',
        )
    for ifd in levels[1:]:
        if not ifd['new_subfile_type'] & 1:
            v.fail(
                OPENSLIDE,
                f'IFD {ifd["ifd"]} has NewSubfileType {ifd["new_subfile_type"]}, not 1 '
                '(reduced image): OpenSlide skips that level',
            )
    if others and first['tiled']:
        v.note(ALL, f'{len(others)} untiled IFD(s) (thumbnail/label?) ignored by the readers')

    # -- metadata ---------------------------------------------------------------
    description = first['description']
    found = [word for word in FORBIDDEN_DESCRIPTION_WORDS if word in description]
    if found:
        v.fail(
            ('asap',),
            f'ImageDescription contains {", ".join(repr(w) for w in found)}: ASAP takes it for '
            'OME-TIFF/DICOM and refuses it',
        )
    spacing = _spacing_um(first) if first else None
    unit = first['resolution_unit']
    if first['x_resolution'] is None or unit in (None, 1):
        v.note(ALL, 'no physical pixel size (XResolution/ResolutionUnit): no mpp, no scale bar')
    elif unit == 2:
        v.note(('asap',), 'resolution in inches: ASAP reads it as px/cm, spacing 2.54x off')
    for ifd in levels[1:]:
        if first['x_resolution'] and not ifd['x_resolution']:
            v.note(ALL, f'IFD {ifd["ifd"]} has no resolution tags')
            break

    # -- pyramid and top-level verdict -----------------------------------------
    if levels:
        smallest = levels[-1] if len(levels) == 1 else min(levels, key=lambda ifd: ifd['width'])
        long_side = max(smallest['width'], smallest['height'])
        short_side = min(smallest['width'], smallest['height'])
        if long_side > _OVERVIEW_LIMIT and short_side > _SHORT_SIDE_LIMIT and not top_reasons:
            top_reasons.append(
                f'no pyramid: the smallest level is {smallest["width"]}x{smallest["height"]} '
                f'(needs reduced levels down to {_OVERVIEW_LIMIT} px or less)'
            )
    for reader in ('asap', 'openslide_4'):
        texts = [t for c, t in v.reasons[reader] if c == LAYOUT and t not in top_reasons]
        if texts:
            top_reasons.append(f'{_READER_TITLES[reader]}: ' + '; '.join(texts))
    if v.reasons['asap'] and v.reasons['openslide_4'] and not top_reasons:
        top_reasons.append('neither ASAP nor OpenSlide 4 can show these pixels')

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
    for ifd in ifds:
        chunks |= ifd['chunks']
    return {
        'path': path,
        'format': 'BigTIFF' if is_bigtiff else 'TIFF',
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
        'spacing_um': spacing,
        'resolution_unit': {1: 'none', 2: 'inch', 3: 'centimeter'}.get(unit or 1, str(unit)),
        'description': description,
        'provenance': parse_description(description),
        'sample_range': (
            {'min': first['sample_min'], 'max': first['sample_max']}
            if first['sample_min'] is not None or first['sample_max'] is not None
            else None
        ),
        'tiles': {
            'referenced': sum(ifd['tiles'] for ifd in ifds),
            'stored': len(chunks),
        },
        'readers': v.as_dict(),
        'ok': not top_reasons,
        'reasons': top_reasons,
    }


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
        lines.append(f'{_READER_TITLES[reader]:<14}{status}')
        for reason in verdict['reasons']:
            lines.append(f'    - {reason}')
        for note in verdict['notes']:
            lines.append(f'    note: {note}')
    if r['ok']:
        lines.append('verdict       ok: a tiled pyramidal TIFF that ASAP and OpenSlide accept')
    else:
        lines.append('verdict       NOT OK')
        for reason in r['reasons']:
            lines.append(f'    - {reason}')
    return '\n'.join(lines)

