"""The readers we judge for, their names, and what each one decodes.

Facts, not rules: the rules that use them are in :mod:`.compat`; both are
described in docs/compatibility.md. Sources: ASAP 2.2's TIFFImage.cpp and
MultiResolutionImageFactory.cpp, OpenSlide's generic-tiff driver, libtiff,
large_image 1.35, Bio-Formats 7.3, QuPath, and our own output read back
through each reader in tests/test_readers.py.

Readers judged (keys of every verdict):

``asap``           ASAP 2.2's own TIFF reader (not its OpenSlide fallback)
``openslide_3.4``  Debian 12's OpenSlide 3.4.1 with libtiff 4.5
``openslide_4``    OpenSlide >= 4.0.1 (openslide-bin)
``large_image``    large_image's ``tiff`` source (what ``large_image.open``
                   picks for .tif; Digital Slide Archive, HistomicsUI)
``bioformats``     Bio-Formats 7.3 (Fiji, QuPath's Bio-Formats server)
``qupath``         QuPath: through OpenSlide when OpenSlide 4 accepts the
                   file, else through Bio-Formats
"""

from __future__ import annotations

import numpy
from tifffile import COMPRESSION

__all__ = [
    'ASAP_SINGLE_LEVEL_MAX_WIDTH',
    'CHAIN_READERS',
    'DECODES',
    'FILE_READERS',
    'FLAVORS',
    'FORBIDDEN_DESCRIPTION_WORDS',
    'OPENSLIDE',
    'READERS',
    'READER_TITLES',
    'compression_name',
    'flavor_advice',
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
#: Readers that read the file themselves (QuPath goes through two of them).
FILE_READERS = tuple(r for r in READERS if r != 'qupath')
#: Readers that follow the top-level IFD chain and ignore SubIFDs.
#: (large_image's tiff source reads either: measured on an OME-TIFF.)
CHAIN_READERS = ('asap', 'openslide_3.4', 'openslide_4')
OPENSLIDE = ('openslide_3.4', 'openslide_4')
#: Flavours we write (``finalize --flavor``) and the readers each is for;
#: the overall verdict follows them. ``wsi`` (default) puts every level in
#: the top-level IFD chain, for ASAP, OpenSlide and large_image; ``ome``
#: writes an OME-TIFF (OME-XML in ImageDescription, the pyramid in
#: SubIFDs), the only layout whose resolutions Bio-Formats sees, and which
#: ASAP ("xml") and OpenSlide (SubIFDs) do not read; large_image reads both.
FLAVORS: dict[str, tuple[str, ...]] = {'wsi': ('asap', 'openslide_4'), 'ome': ('bioformats',)}

#: ASAP opens a one-level TIFF only when it is narrower than this
#: (MultiResolutionImageFactory: ``getLevelDimensions(0)[0] < 4096``).
ASAP_SINGLE_LEVEL_MAX_WIDTH = 4096
#: ASAP's TIFF reader refuses a description containing these (it takes the
#: file for OME-TIFF or DICOM).
FORBIDDEN_DESCRIPTION_WORDS = ('xml', 'XML', 'DICOM')

_EVERYONE = frozenset(FILE_READERS)
_LIBTIFF_AND_BIOFORMATS = frozenset({'openslide_3.4', 'openslide_4', 'large_image', 'bioformats'})

#: Compression -> readers that decode it. ASAP 2.2's TIFF reader: exactly
#: none, LZW, JPEG, Deflate (32946) and Aperio JPEG 2000 RGB
#: (TIFFImage.cpp). OpenSlide and large_image's tiff source go through
#: libtiff (Debian 12's libtiff 4.5 and openslide-bin's have zstd and webp;
#: verified on our zstd output); JPEG 2000 only through OpenSlide's Aperio
#: driver. Bio-Formats' TIFF codecs: none, LZW, JPEG, both Deflate codes,
#: PackBits, zstd (verified on our zstd output; WebP is not claimed here:
#: not verified).
DECODES: dict[int, frozenset[str]] = {
    COMPRESSION.NONE: _EVERYONE,
    COMPRESSION.LZW: _EVERYONE,
    COMPRESSION.JPEG: _EVERYONE,
    COMPRESSION.ADOBE_DEFLATE: _LIBTIFF_AND_BIOFORMATS,
    COMPRESSION.PACKBITS: _LIBTIFF_AND_BIOFORMATS,
    COMPRESSION.DEFLATE: _EVERYONE,
    COMPRESSION.APERIO_JP2000_RGB: frozenset({'asap'}),
    COMPRESSION.ZSTD: _LIBTIFF_AND_BIOFORMATS,
    COMPRESSION.WEBP: frozenset({'openslide_3.4', 'openslide_4', 'large_image'}),
}

#: Our names of the compressions we may meet when inspecting a TIFF (the
#: ones we write are spelled as ``finalize --compression`` takes them).
_NAMES: dict[int, str] = {
    COMPRESSION.NONE: 'none',
    COMPRESSION.CCITTRLE: 'ccitt_rle',
    COMPRESSION.CCITTFAX3: 'ccittfax3',
    COMPRESSION.CCITTFAX4: 'ccittfax4',
    COMPRESSION.LZW: 'lzw',
    COMPRESSION.OJPEG: 'ojpeg',
    COMPRESSION.JPEG: 'jpeg',
    COMPRESSION.ADOBE_DEFLATE: 'adobe_deflate',
    COMPRESSION.PACKBITS: 'packbits',
    COMPRESSION.DEFLATE: 'deflate',
    COMPRESSION.APERIO_JP2000_YCBC: 'jpeg2000_aperio_ycbcr',
    COMPRESSION.APERIO_JP2000_RGB: 'jpeg2000_aperio_rgb',
    COMPRESSION.JPEG2000: 'jpeg2000',
    COMPRESSION.LERC: 'lerc',
    COMPRESSION.LZMA: 'lzma',
    COMPRESSION.ZSTD: 'zstd',
    COMPRESSION.WEBP: 'webp',
    COMPRESSION.JPEGXL: 'jpegxl',
}


def compression_name(tag: int) -> str:
    """'lzw', 'adobe_deflate', ... or 'tag N' for a value we do not know."""
    return _NAMES.get(int(tag), f'tag {int(tag)}')


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
