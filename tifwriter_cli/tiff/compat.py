"""What each reader demands of a TIFF: the one place for reader rules.

Sources: /work/shared/COMPAT.md (ASAP 2.2's TIFFImage.cpp and
MultiResolutionImageFactory.cpp, OpenSlide's generic-tiff driver, libtiff,
large_image 1.35, Bio-Formats 7.3, QuPath), and our own output read back
through each reader in tests/test_readers.py. The writer (:mod:`.plan`,
:mod:`tifwriter_cli.finalization`) and the checker (:mod:`.inspect`) both
take their rules from here.

Readers judged (keys of every verdict):

``asap``           ASAP 2.2's own TIFF reader (not its OpenSlide fallback)
``openslide_3.4``  Debian 12's OpenSlide 3.4.1 with libtiff 4.5
``openslide_4``    OpenSlide >= 4.0.1 (openslide-bin)
``large_image``    large_image's ``tiff`` source (what ``large_image.open``
                   picks for .tif; Digital Slide Archive, HistomicsUI)
``bioformats``     Bio-Formats 7.3 (Fiji, QuPath's Bio-Formats server)
``qupath``         QuPath: through OpenSlide when OpenSlide 4 accepts the
                   file, else through Bio-Formats

Flavours we write (``finalize --flavor``): ``wsi`` (default) puts every
level in the top-level IFD chain, for ASAP, OpenSlide and large_image;
``ome`` writes an OME-TIFF (OME-XML in ImageDescription, the pyramid in
SubIFDs), the only layout whose resolutions Bio-Formats sees, and which
ASAP ("xml") and OpenSlide (SubIFDs) do not read; large_image reads both.

A verdict is ``{'ok': bool, 'reasons': [...], 'notes': [...]}``: reasons
make the reader fail (it refuses the file, sees fewer levels, or shows
wrong pixels); notes are worth knowing but harmless.
"""

from __future__ import annotations

from typing import Any

import numpy

__all__ = [
    'ASAP_SINGLE_LEVEL_MAX_WIDTH',
    'FLAVORS',
    'FORBIDDEN_DESCRIPTION_WORDS',
    'READERS',
    'READER_TITLES',
    'compression_name',
    'flavor_advice',
    'judge',
    'plan_problems',
    'reader_problems',
]

READERS = ('asap', 'openslide_3.4', 'openslide_4', 'large_image', 'bioformats', 'qupath')
READER_TITLES = {
    'asap': 'ASAP 2.2',
    'openslide_3.4': 'OpenSlide 3.4',
    'openslide_4': 'OpenSlide 4',
    'large_image': 'large_image',
    'bioformats': 'Bio-Formats',
    'qupath': 'QuPath',
}
#: Readers that follow the top-level IFD chain and ignore SubIFDs.
#: (large_image's tiff source reads either: measured on an OME-TIFF.)
CHAIN_READERS = ('asap', 'openslide_3.4', 'openslide_4')
OPENSLIDE = ('openslide_3.4', 'openslide_4')
#: The readers each flavour is written for; the overall verdict follows them.
FLAVORS: dict[str, tuple[str, ...]] = {'wsi': ('asap', 'openslide_4'), 'ome': ('bioformats',)}

#: ASAP opens a one-level TIFF only when it is narrower than this
#: (MultiResolutionImageFactory: ``getLevelDimensions(0)[0] < 4096``).
ASAP_SINGLE_LEVEL_MAX_WIDTH = 4096
#: ASAP's TIFF reader refuses a description containing these (it takes the
#: file for OME-TIFF or DICOM).
FORBIDDEN_DESCRIPTION_WORDS = ('xml', 'XML', 'DICOM')
#: Pyramid criterion of the overall verdict: the smallest level's long side
#: at most this, or its short side at most _SHORT_SIDE_LIMIT.
_OVERVIEW_LIMIT = 4096
_SHORT_SIDE_LIMIT = 30

#: Photometric interpretation values.
MINISBLACK, RGB, PALETTE, YCBCR = 1, 2, 3, 6

#: Compression tag -> readers that decode it. ASAP 2.2's TIFF reader:
#: exactly 1, 5, 7, 32946 and 33005 (TIFFImage.cpp). OpenSlide and
#: large_image's tiff source go through libtiff (Debian 12's libtiff 4.5 and
#: openslide-bin's have zstd and webp; verified on our zstd output); JPEG
#: 2000 only through OpenSlide's Aperio driver. Bio-Formats' TIFF codecs:
#: none, LZW, JPEG, both Deflate codes, PackBits, zstd (verified on our
#: zstd output; WebP is not claimed here: not verified).
_DECODES: dict[int, set[str]] = {
    1: {'asap', 'openslide_3.4', 'openslide_4', 'large_image', 'bioformats'},
    5: {'asap', 'openslide_3.4', 'openslide_4', 'large_image', 'bioformats'},
    7: {'asap', 'openslide_3.4', 'openslide_4', 'large_image', 'bioformats'},
    8: {'openslide_3.4', 'openslide_4', 'large_image', 'bioformats'},
    32773: {'openslide_3.4', 'openslide_4', 'large_image', 'bioformats'},
    32946: {'asap', 'openslide_3.4', 'openslide_4', 'large_image', 'bioformats'},
    33005: {'asap'},
    50000: {'openslide_3.4', 'openslide_4', 'large_image', 'bioformats'},
    50001: {'openslide_3.4', 'openslide_4', 'large_image'},
}


#: Names of compression tag values we may meet when inspecting a TIFF.
_TAG_NAMES: dict[int, str] = {
    1: 'none',
    2: 'ccitt_rle',
    3: 'ccittfax3',
    4: 'ccittfax4',
    5: 'lzw',
    6: 'ojpeg',
    7: 'jpeg',
    8: 'adobe_deflate',
    32773: 'packbits',
    32946: 'deflate',
    33003: 'jpeg2000_aperio_ycbcr',
    33005: 'jpeg2000_aperio_rgb',
    34712: 'jpeg2000',
    34887: 'lerc',
    34925: 'lzma',
    50000: 'zstd',
    50001: 'webp',
    50002: 'jpegxl',
}


def compression_name(tag: int) -> str:
    return _TAG_NAMES.get(int(tag), f'tag {int(tag)}')


def reader_problems(
    *,
    compression_tag: int,
    dtype: numpy.dtype | str,
    channels: int,
    photometric: int,
    compression_text: str | None = None,
) -> dict[str, list[str]]:
    """Why each reader cannot show pixels of this kind (empty list: it can).

    Covers compression, sample type and colour model; layout rules are
    :func:`judge`'s. ``qupath`` is left to :func:`judge` (it depends on the
    layout too).
    """

    dtype = numpy.dtype(dtype)
    name = compression_text or f'cannot decode compression {compression_name(compression_tag)}'
    decoders = _DECODES.get(int(compression_tag), set())
    problems: dict[str, list[str]] = {reader: [] for reader in READERS if reader != 'qupath'}
    for reader in problems:
        if reader not in decoders:
            problems[reader].append(f'{name} ({compression_tag})')
    # ASAP: unsigned 8/16/32-bit or float32 (TIFFImage.cpp); MinIsBlack,
    # RGB with 3 or 4 samples, or YCbCr JPEG; no palette.
    if dtype.str[1:] not in ('u1', 'u2', 'u4', 'f4'):
        problems['asap'].append(f'sample type {dtype} (ASAP reads uint8/16/32 and float32)')
    if photometric not in (MINISBLACK, RGB, YCBCR):
        problems['asap'].append(f'photometric {photometric} (ASAP reads MinIsBlack, RGB, YCbCr)')
    elif photometric == RGB and channels not in (3, 4):
        problems['asap'].append(f'RGB with {channels} samples (ASAP reads 3 or 4)')
    elif photometric == YCBCR and compression_tag != 7:
        problems['asap'].append('YCbCr without JPEG compression')
    # OpenSlide decodes through libtiff's RGBA interface: 8 or 16 bits per
    # sample (16 is scaled down to 8), integers only, and a colour model
    # libtiff can turn into RGBA.
    for reader in OPENSLIDE:
        if dtype.kind == 'f':
            problems[reader].append(f'{dtype} samples (OpenSlide cannot handle floating point)')
        elif dtype.itemsize > 2:
            problems[reader].append(
                f'{dtype.itemsize * 8}-bit samples (OpenSlide cannot handle 32-bit samples)'
            )
        elif dtype.kind != 'u':
            problems[reader].append(f'{dtype} samples (OpenSlide reads unsigned integers)')
        if photometric == MINISBLACK and channels > 1:
            problems[reader].append(
                f'{channels} MinIsBlack samples (OpenSlide shows only the first channel, as grey)'
            )
    if photometric == MINISBLACK and (channels > 1 or dtype.itemsize > 1):
        # Verified with OpenSlide 4.0.1 (openslide-bin): in grey images of
        # more than one byte per pixel (16-bit, or several samples) the
        # partial tiles at the right edge of a level read wrong; 3.4.1 with
        # Debian's libtiff reads them correctly, and so does RGB(A).
        problems['openslide_4'].append(
            'right-edge partial tiles of grey images with more than 8 bits per pixel read wrong '
            '(OpenSlide 4.0.1)'
        )
    # large_image's tiff source and Bio-Formats read every sample type and
    # channel count we write (verified: uint8/16/32, float32, 1-5 channels).
    return problems


def plan_problems(levels: list[tuple[int, int, int]]) -> dict[str, list[str]]:
    """Layout problems of a level plan ((width, height, tile) per level), by reader.

    Only a canvas under 16 px on a side has any (its tile, at least 16 px,
    is larger than the level); the same rule :func:`judge` applies to files.
    """
    problems: dict[str, list[str]] = {}
    for number, (width, height, tile) in enumerate(levels):
        if tile > width or tile > height:
            problems.setdefault('openslide_3.4', []).append(
                f'level {number}: tile {tile}x{tile} larger than the level {width}x{height} '
                '(OpenSlide 3.4.1 with libtiff 4.5 reads it as garbage)'
            )
    return problems


def flavor_advice(*, dtype: numpy.dtype | str, channels: int, flavor: str) -> str | None:
    """Which flavour suits which viewer for data OpenSlide cannot show (None otherwise).

    QuPath opens uint8 grey/RGB(A) through OpenSlide; float32, uint16, uint32
    and multi-channel data only through Bio-Formats, which sees the pyramid
    of an OME-TIFF only.
    """
    dtype = numpy.dtype(dtype)
    if not (dtype != numpy.uint8 or channels not in (1, 3, 4)):
        return None
    what = f'{dtype} with {channels} channel(s)'
    if flavor == 'ome':
        return (
            f'{what}: this OME-TIFF gives QuPath, Fiji and napari (Bio-Formats) every resolution; '
            'ASAP and OpenSlide do not read it (use --flavor wsi for them)'
        )
    return (
        f'{what}: QuPath and Fiji open this only through Bio-Formats, which sees level 0 alone '
        '(QuPath then builds its own pyramid); --flavor ome writes an OME-TIFF they read with '
        'every resolution (but ASAP and OpenSlide do not)'
    )


# -- judging a file ------------------------------------------------------------
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


ALL = tuple(r for r in READERS if r != 'qupath')


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
            v.fail(readers, f'{name}: tile data runs past the end of the file (truncated?)')
        if ifd['planar'] != 1:
            v.fail(readers, f'{name}: PlanarConfiguration {ifd["planar"]} (readers need 1, contiguous)')
        compression_text = f'cannot decode compression {compression_name(ifd["compression_tag"])}'
        problems = reader_problems(
            compression_tag=ifd['compression_tag'],
            dtype=ifd['dtype'] or 'uint8',
            channels=ifd['channels'],
            photometric=ifd['photometric'],
            compression_text=compression_text,
        )
        for reader, texts in problems.items():
            if reader not in readers:
                continue
            for text in texts:
                category = LAYOUT if text.startswith(compression_text) else PIXELS
                v.fail((reader,), text, category)
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
    if first['new_subfile_type'] & 1:
        v.note(ALL, f'level 0 has NewSubfileType {first["new_subfile_type"]} (expected 0)')
    for previous, ifd in zip(levels, levels[1:], strict=False):
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
        if not ifd['new_subfile_type'] & 1:
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
    if first['x_resolution'] is None or unit in (None, 1):
        v.note(
            CHAIN_READERS + (() if ome else ('bioformats',)),
            'no physical pixel size (XResolution/ResolutionUnit): no mpp, no scale bar',
        )
    elif unit == 2:
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
