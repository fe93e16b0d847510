"""What each reader demands of a TIFF: the one place for reader rules.

The readers, their names and what they decode are in :mod:`.readers`;
the rules that use those facts are here. The writer (:mod:`.plan`,
:mod:`tifwriter_cli.finalization`) and the checker (:mod:`.inspect`) both
take their rules from here.

A rule that a reader trips is a :class:`Problem`: the reader, its kind
(``layout``: anything a writer controls - tiling, tile sizes, level order,
NewSubfileType, SubIFDs, compression, ImageDescription, tile byte counts;
``pixels``: the sample type or colour model, which the data decides) and a
message. A verdict is ``{'ok': bool, 'reasons': [...], 'notes': [...]}``:
reasons make the reader fail (it refuses the file, sees fewer levels, or
shows wrong pixels); notes are worth knowing but harmless.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from typing import Any

import numpy
from tifffile import COMPRESSION, FILETYPE, PHOTOMETRIC, PLANARCONFIG, RESUNIT

from .readers import (
    ASAP_SINGLE_LEVEL_MAX_WIDTH,
    CHAIN_READERS,
    DECODES,
    FILE_READERS,
    FLAVORS,
    FORBIDDEN_DESCRIPTION_WORDS,
    OPENSLIDE,
    READER_TITLES,
    READERS,
    compression_name,
)

__all__ = [
    'LAYOUT',
    'PIXELS',
    'Problem',
    'accepting_readers',
    'judge',
    'plan_problems',
    'reader_problems',
    'reader_warnings',
]

#: Kinds of :class:`Problem`.
LAYOUT, PIXELS = 'layout', 'pixels'

#: Pyramid criterion of the overall verdict: the smallest level's long side
#: at most this, or its short side at most _SHORT_SIDE_LIMIT.
_OVERVIEW_LIMIT = 4096
_SHORT_SIDE_LIMIT = 30


@dataclasses.dataclass(frozen=True)
class Problem:
    """Why one reader will not read a file right."""

    reader: str
    #: LAYOUT (the writer controls it) or PIXELS (the data's type does).
    kind: str
    message: str


def reader_warnings(problems: Iterable[Problem]) -> list[str]:
    """One 'READER will not read this file correctly: a; b' line per reader with problems."""
    messages: dict[str, list[str]] = {}
    for problem in problems:
        messages.setdefault(problem.reader, []).append(problem.message)
    return [
        f'{READER_TITLES[reader]} will not read this file correctly: {"; ".join(messages[reader])}'
        for reader in READERS
        if reader in messages
    ]


def reader_problems(
    *,
    compression_tag: int,
    dtype: numpy.dtype | str,
    channels: int,
    photometric: int,
) -> list[Problem]:
    """Why each reader cannot show pixels of this kind (none: every reader can).

    Covers compression (a LAYOUT problem), sample type and colour model
    (PIXELS); the other layout rules are :func:`judge`'s. ``qupath`` is left
    to :func:`judge` (it depends on the layout too).
    """
    dtype = numpy.dtype(dtype)
    problems: list[Problem] = []

    def pixels(reader: str, message: str) -> None:
        problems.append(Problem(reader, PIXELS, message))

    decoders = DECODES.get(int(compression_tag), frozenset())
    for reader in FILE_READERS:
        if reader not in decoders:
            problems.append(Problem(
                reader, LAYOUT,
                f'cannot decode compression {compression_name(compression_tag)} ({compression_tag})',
            ))
    # ASAP: unsigned 8/16/32-bit or float32 (TIFFImage.cpp); MinIsBlack,
    # RGB with 3 or 4 samples, or YCbCr JPEG; no palette.
    if dtype.str[1:] not in ('u1', 'u2', 'u4', 'f4'):
        pixels('asap', f'sample type {dtype} (ASAP reads uint8/16/32 and float32)')
    if photometric not in (PHOTOMETRIC.MINISBLACK, PHOTOMETRIC.RGB, PHOTOMETRIC.YCBCR):
        pixels('asap', f'photometric {photometric} (ASAP reads MinIsBlack, RGB, YCbCr)')
    elif photometric == PHOTOMETRIC.RGB and channels not in (3, 4):
        pixels('asap', f'RGB with {channels} samples (ASAP reads 3 or 4)')
    elif photometric == PHOTOMETRIC.YCBCR and compression_tag != COMPRESSION.JPEG:
        pixels('asap', 'YCbCr without JPEG compression')
    # OpenSlide decodes through libtiff's RGBA interface: 8 or 16 bits per
    # sample (16 is scaled down to 8), integers only, and a colour model
    # libtiff can turn into RGBA.
    for reader in OPENSLIDE:
        if dtype.kind == 'f':
            pixels(reader, f'{dtype} samples (OpenSlide cannot handle floating point)')
        elif dtype.itemsize > 2:
            pixels(reader, f'{dtype.itemsize * 8}-bit samples (OpenSlide cannot handle 32-bit samples)')
        elif dtype.kind != 'u':
            pixels(reader, f'{dtype} samples (OpenSlide reads unsigned integers)')
        if photometric == PHOTOMETRIC.MINISBLACK and channels > 1:
            pixels(
                reader,
                f'{channels} MinIsBlack samples (OpenSlide shows only the first channel, as grey)',
            )
    if photometric == PHOTOMETRIC.MINISBLACK and (channels > 1 or dtype.itemsize > 1):
        # Verified with OpenSlide 4.0.1 (openslide-bin): in grey images of
        # more than one byte per pixel (16-bit, or several samples) the
        # partial tiles at the right edge of a level read wrong; 3.4.1 with
        # Debian's libtiff reads them correctly, and so does RGB(A).
        pixels(
            'openslide_4',
            'right-edge partial tiles of grey images with more than 8 bits per pixel read wrong '
            '(OpenSlide 4.0.1)',
        )
    # large_image's tiff source and Bio-Formats read every sample type and
    # channel count we write (verified: uint8/16/32, float32, 1-5 channels).
    return problems


def plan_problems(levels: list[tuple[int, int, int]]) -> list[Problem]:
    """Layout problems of a level plan ((width, height, tile) per level).

    Only a canvas under 16 px on a side has any (its tile, at least 16 px,
    is larger than the level); the same rule :func:`judge` applies to files.
    """
    return [
        Problem('openslide_3.4', LAYOUT, _tile_larger_than_level(f'level {number}', tile, tile, width, height))
        for number, (width, height, tile) in enumerate(levels)
        if tile > width or tile > height
    ]


def _tile_larger_than_level(name: str, tile_w: int, tile_h: int, width: int, height: int) -> str:
    return (
        f'{name}: tile {tile_w}x{tile_h} larger than the level {width}x{height} '
        '(OpenSlide 3.4.1 with libtiff 4.5 reads it as garbage)'
    )


# -- judging a file ------------------------------------------------------------
class _Verdicts:
    def __init__(self) -> None:
        self.reasons: dict[str, list[tuple[str, str]]] = {r: [] for r in READERS}
        self.notes: dict[str, list[str]] = {r: [] for r in READERS}

    def fail(self, readers: tuple[str, ...], text: str, kind: str = LAYOUT) -> None:
        for reader in readers:
            if (kind, text) not in self.reasons[reader]:
                self.reasons[reader].append((kind, text))

    def note(self, readers: tuple[str, ...], text: str) -> None:
        for reader in readers:
            if text not in self.notes[reader]:
                self.notes[reader].append(text)

    def ok(self, reader: str) -> bool:
        return not self.reasons[reader]

    def as_dict(self) -> dict[str, Any]:
        return {
            reader: {
                'ok': not self.reasons[reader],
                'reasons': [text for _, text in self.reasons[reader]],
                'notes': list(self.notes[reader]),
            }
            for reader in READERS
        }


ALL = FILE_READERS


def is_ome(description: str) -> bool:
    return '<OME' in description and 'openmicroscopy.org' in description


def judge(
    ifds: list[dict[str, Any]], sub_ifds: list[dict[str, Any]], file_bytes: int
) -> dict[str, Any]:
    """Reader verdicts of a TIFF from its IFDs' facts (see :mod:`.inspect`).

    ``ifds``: the top-level IFDs in chain order; ``sub_ifds``: the reduced
    levels in level 0's SubIFDs. Returns ``{'readers', 'ok', 'reasons',
    'flavor', 'pyramid'}`` where ``pyramid`` is the levels as the flavour's
    readers see them.
    """

    v = _Verdicts()
    top_reasons: list[str] = []
    first = ifds[0]
    levels = [ifd for ifd in ifds if ifd['tiled']]
    others = [ifd for ifd in ifds if not ifd['tiled']]
    description = first['description']
    ome = is_ome(description)
    flavor = 'ome' if ome else 'wsi'
    sub_levels = [ifd for ifd in sub_ifds if ifd['tiled']]
    pyramid = [first] + sub_levels if ome and first['tiled'] else levels

    # -- tiling and the pyramid's shape ---------------------------------------
    if not first['tiled']:
        text = 'level 0 is stored in strips, not tiles'
        v.fail(ALL, text)
        top_reasons.append(text)
    if first['subifds'] and len(levels) <= 1:
        v.fail(
            CHAIN_READERS,
            f'the pyramid is in {first["subifds"]} SubIFD(s), which ASAP and OpenSlide do not '
            'see: they open one level only',
        )
    elif first['subifds']:
        v.note(CHAIN_READERS, 'SubIFDs present: these readers ignore them')
    if not ome and len(levels) > 1:
        v.fail(
            ('bioformats',),
            'not an OME-TIFF: Bio-Formats takes the reduced levels (NewSubfileType 1) for '
            'thumbnails and sees level 0 only (QuPath then builds its own pyramid; --flavor ome '
            'fixes it)',
        )
    elif not ome and first['subifds'] and not levels[1:]:
        v.fail(('bioformats',), 'a SubIFDs pyramid without OME-XML: Bio-Formats sees level 0 only')
    elif ome and first['subifds'] != len(sub_ifds):
        v.fail(('bioformats',), 'level 0 lists SubIFDs that cannot be read')
    in_sub = {id(ifd) for ifd in sub_levels}
    for ifd in levels + sub_levels:
        tile_w, tile_h = ifd['tile_width'], ifd['tile_height']
        name = f'IFD {ifd["ifd"]}'
        readers = ('bioformats', 'large_image') if id(ifd) in in_sub else ALL
        if tile_w % 16 or tile_h % 16:
            v.fail(readers, f'{name}: tile {tile_w}x{tile_h} is not a multiple of 16 (libtiff refuses it)')
        if id(ifd) not in in_sub and (tile_w > ifd['width'] or tile_h > ifd['height']):
            v.fail(
                ('openslide_3.4',),
                _tile_larger_than_level(name, tile_w, tile_h, ifd['width'], ifd['height']),
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
            v.fail(readers, f'{name}: tile data runs past the end of the file (truncated?)')
        if ifd['planar'] != PLANARCONFIG.CONTIG:
            v.fail(readers, f'{name}: PlanarConfiguration {ifd["planar"]} (readers need 1, contiguous)')
        for problem in reader_problems(
            compression_tag=ifd['compression_tag'],
            dtype=ifd['dtype'] or 'uint8',
            channels=ifd['channels'],
            photometric=ifd['photometric'],
        ):
            if problem.reader in readers:
                v.fail((problem.reader,), problem.message, problem.kind)
        if ifd['dtype'] is None:
            v.fail(
                readers,
                f'{name}: unsupported sample layout ({ifd["bits"]} bits, format {ifd["sample_format"]})',
                PIXELS,
            )
    if levels:
        widest = max(levels, key=lambda ifd: ifd['width'])
        if widest is not levels[0] or widest['height'] < max(ifd['height'] for ifd in levels):
            v.fail(ALL, 'level 0 is not the first (largest) image')
        seen_by_large_image = levels if len(levels) > 1 else [first] + sub_levels
        tile = (levels[0]['tile_width'], levels[0]['tile_height'])
        for ifd in seen_by_large_image[1:]:
            if (ifd['tile_width'], ifd['tile_height']) != tile:
                v.fail(
                    ('large_image',),
                    f'IFD {ifd["ifd"]}: tile {ifd["tile_width"]}x{ifd["tile_height"]}, not level '
                    f"0's {tile[0]}x{tile[1]}: large_image ignores that level and rebuilds it from "
                    'a larger one (LANCZOS, which invents label values)',
                )
    if first['new_subfile_type'] & FILETYPE.REDUCEDIMAGE:
        v.note(ALL, f'level 0 has NewSubfileType {first["new_subfile_type"]} (expected 0)')
    for previous, ifd in itertools.pairwise(levels):
        if ifd['width'] >= previous['width']:
            v.fail(
                ('asap',),
                f'IFD {ifd["ifd"]} ({ifd["width"]} px wide) is not narrower than IFD '
                f'{previous["ifd"]} ({previous["width"]} px): ASAP refuses the file',
            )
    if len(levels) == 1 and first['width'] >= ASAP_SINGLE_LEVEL_MAX_WIDTH:
        v.fail(
            ('asap',),
            f'a single level {first["width"]} px wide: ASAP opens a one-level TIFF only when it is '
            f'under {ASAP_SINGLE_LEVEL_MAX_WIDTH} px wide',
        )
    for ifd in levels[1:]:
        if not ifd['new_subfile_type'] & FILETYPE.REDUCEDIMAGE:
            v.fail(
                OPENSLIDE,
                f'IFD {ifd["ifd"]} has NewSubfileType {ifd["new_subfile_type"]}, not 1 '
                '(reduced image): OpenSlide skips that level',
            )
    if others and first['tiled']:
        v.note(ALL, f'{len(others)} untiled IFD(s) (thumbnail/label?) ignored by the readers')

    # -- metadata ---------------------------------------------------------------
    found = [word for word in FORBIDDEN_DESCRIPTION_WORDS if word in description]
    if found:
        v.fail(
            ('asap',),
            f'ImageDescription contains {", ".join(repr(w) for w in found)}: ASAP takes it for '
            'OME-TIFF/DICOM and refuses it',
        )
    unit = first['resolution_unit']
    if ome:
        if 'PhysicalSizeX=' not in description:
            v.note(('bioformats',), 'no PhysicalSizeX in the OME-XML: no pixel size')
    if first['x_resolution'] is None or unit in (None, RESUNIT.NONE):
        v.note(
            CHAIN_READERS + (() if ome else ('bioformats',)),
            'no physical pixel size (XResolution/ResolutionUnit): no mpp, no scale bar',
        )
    elif unit == RESUNIT.INCH:
        v.note(('asap',), 'resolution in inches: ASAP reads it as px/cm, spacing 2.54x off')
    for ifd in levels[1:]:
        if first['x_resolution'] and not ifd['x_resolution']:
            v.note(CHAIN_READERS, f'IFD {ifd["ifd"]} has no resolution tags')
            break

    # -- QuPath: OpenSlide first, then Bio-Formats ------------------------------
    if v.ok('openslide_4'):
        v.note(('qupath',), 'opened through OpenSlide')
    elif v.ok('bioformats'):
        v.note(('qupath',), 'opened through Bio-Formats, with every resolution')
    else:
        v.fail(('qupath',), 'neither OpenSlide (see above) nor Bio-Formats (see above) shows it right')

    # -- pyramid and overall verdict ----------------------------------------------
    if pyramid:
        smallest = min(pyramid, key=lambda ifd: ifd['width'])
        long_side = max(smallest['width'], smallest['height'])
        short_side = min(smallest['width'], smallest['height'])
        if long_side > _OVERVIEW_LIMIT and short_side > _SHORT_SIDE_LIMIT and not top_reasons:
            top_reasons.append(
                f'no pyramid: the smallest level is {smallest["width"]}x{smallest["height"]} '
                f'(needs reduced levels down to {_OVERVIEW_LIMIT} px or less)'
            )
    targets = FLAVORS[flavor]
    for reader in targets:
        texts = [t for c, t in v.reasons[reader] if c == LAYOUT and t not in top_reasons]
        if texts:
            top_reasons.append(f'{READER_TITLES[reader]}: ' + '; '.join(texts))
    if not any(v.ok(reader) for reader in targets) and not top_reasons:
        top_reasons.append(
            'none of ' + ', '.join(READER_TITLES[r] for r in targets) + ' can show these pixels'
        )
    return {
        'readers': v.as_dict(),
        'ok': not top_reasons,
        'reasons': top_reasons,
        'flavor': flavor,
        'pyramid': pyramid,
    }


def accepting_readers(readers: dict[str, dict[str, Any]]) -> list[str]:
    """Titles of the readers whose verdict is ok, in READERS order."""
    return [READER_TITLES[r] for r in READERS if readers[r]['ok']]
