"""Tile compression (which reader decodes which codec: :mod:`.compat`).

Compressions we write (name -> TIFF Compression tag value):

========  =====  ==============================================================
none      1      raw samples
lzw       5      ASAP's default; lossless; no predictor (see below)
jpeg      7      uint8 with 1 (grey) or 3 channels only; lossy (``quality``).
                 3 channels are stored as tifffile does it: Photometric YCbCr,
                 YCbCrSubSampling (2, 2) (4:2:0 chroma), ReferenceBlackWhite.
deflate   32946  the OLD deflate code: ASAP refuses Adobe Deflate (8)
zstd      50000  not read by ASAP; OpenSlide only if its libtiff has zstd
========  =====  ==============================================================

No horizontal predictor is written: ASAP, OpenSlide and tifffile all honour
Predictor 2 for 8/16-bit integers, but it is not verified here for every
reader, dtype (float needs predictor 3) and codec, and masks compress well
without it. Simpler is safer.

``quality`` (1..100) applies to JPEG only; the lossless codecs use their
library's default level.

Edge tiles are padded to the full tile by the caller; encoders take a
C-contiguous (tile, tile, channels) array and return bytes. Every encoder is
an imagecodecs function, which releases the GIL, so tiles are encoded in
parallel threads. LZW goes through :func:`.lzw.encode_lzw`, which encodes
blocks of uniform rows itself (in a few Python steps) and the rest with
imagecodecs: a valid stream that decodes to the same bytes, made faster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy
from tifffile import COMPRESSION, EXTRASAMPLE, PHOTOMETRIC

from ..errors import InvalidOptionError
from ..vocab import COMPRESSIONS

__all__ = [
    'COMPRESSION_TAGS',
    'TileEncoder',
    'photometric_for',
    'tile_encoder',
]

#: Compressions ``finalize`` writes, by name.
COMPRESSION_TAGS: dict[str, int] = {
    'none': COMPRESSION.NONE,
    'lzw': COMPRESSION.LZW,
    'jpeg': COMPRESSION.JPEG,
    'deflate': COMPRESSION.DEFLATE,  # 32946: ASAP refuses ADOBE_DEFLATE (8)
    'zstd': COMPRESSION.ZSTD,
}

def photometric_for(channels: int, compression: str) -> tuple[int, tuple[int, ...]]:
    """(Photometric, ExtraSamples) for our files.

    1 channel: MinIsBlack; 3: RGB (YCbCr when JPEG); 4: RGB + unassociated
    alpha (ExtraSamples 2); 2 or >4: MinIsBlack with the extra samples
    unspecified (ExtraSamples 0), which ASAP shows as "Indexed" channels.
    """
    if channels == 1:
        return PHOTOMETRIC.MINISBLACK, ()
    if channels == 3:
        return (PHOTOMETRIC.YCBCR if compression == 'jpeg' else PHOTOMETRIC.RGB), ()
    if channels == 4:
        return PHOTOMETRIC.RGB, (EXTRASAMPLE.UNASSALPHA,)
    return PHOTOMETRIC.MINISBLACK, (EXTRASAMPLE.UNSPECIFIED,) * (channels - 1)


@dataclasses.dataclass(frozen=True)
class TileEncoder:
    """Encodes one full tile; also says how the IFD must describe the result."""

    name: str
    tag: int
    photometric: int
    extra_samples: tuple[int, ...]
    #: Additional IFD entries as (tag, TIFF type, values) (JPEG YCbCr tags).
    extra_tags: tuple[tuple[int, int, tuple[Any, ...]], ...]
    encode: Callable[[numpy.ndarray], bytes]
    lossy: bool = False


def check_compression(name: str, *, dtype: numpy.dtype | str, channels: int) -> None:
    """Raise InvalidOptionError when ``name`` cannot store this pixel type."""
    if name not in COMPRESSION_TAGS:
        raise InvalidOptionError(
            f'compression must be one of {", ".join(COMPRESSIONS)}, got {name!r}'
        )
    dtype = numpy.dtype(dtype)
    if name == 'jpeg' and (dtype != numpy.uint8 or channels not in (1, 3)):
        raise InvalidOptionError(
            f'jpeg compression needs uint8 with 1 or 3 channels; this canvas is {dtype} with '
            f'{channels} channel(s) (use lzw or deflate)'
        )


def tile_encoder(
    name: str, *, dtype: numpy.dtype | str, channels: int, quality: int = 90
) -> TileEncoder:
    """The encoder for compression ``name`` and this pixel type."""
    import imagecodecs

    check_compression(name, dtype=dtype, channels=channels)
    if not 1 <= int(quality) <= 100:
        raise InvalidOptionError(f'quality must be 1 to 100, got {quality}')
    quality = int(quality)
    photometric, extra_samples = photometric_for(channels, name)
    extra_tags: tuple[tuple[int, int, tuple[Any, ...]], ...] = ()
    lossy = False
    encode: Callable[[numpy.ndarray], bytes]
    if name == 'none':

        def encode(tile: numpy.ndarray) -> bytes:
            return tile.tobytes()

    elif name == 'lzw':
        from .lzw import encode_lzw

        encode = encode_lzw
    elif name == 'deflate':
        # zlib stream (header + adler32), what TIFF Deflate expects;
        # libdeflate is faster than zlib at the same ratio.
        def encode(tile: numpy.ndarray) -> bytes:
            return imagecodecs.deflate_encode(tile, level=6)

    elif name == 'zstd':
        encode = imagecodecs.zstd_encode
    else:  # jpeg
        lossy = True
        if channels == 3:
            # Mirrors tifffile's JPEG writer (TiffWriter.write, compression
            # 7 with photometric RGB): encode RGB as 4:2:0 YCbCr and say so
            # in the IFD; ReferenceBlackWhite is required for YCbCr.
            extra_tags = (
                (530, 3, (2, 2)),  # YCbCrSubSampling
                (532, 5, (0, 1, 255, 1, 128, 1, 255, 1, 128, 1, 255, 1)),  # ReferenceBlackWhite
            )

            def encode(tile: numpy.ndarray) -> bytes:
                return imagecodecs.jpeg8_encode(
                    tile,
                    level=quality,
                    colorspace='RGB',
                    outcolorspace='YCBCR',
                    subsampling=(2, 2),
                )

        else:

            def encode(tile: numpy.ndarray) -> bytes:
                return imagecodecs.jpeg8_encode(tile[..., 0], level=quality)

    return TileEncoder(
        name=name,
        tag=COMPRESSION_TAGS[name],
        photometric=photometric,
        extra_samples=extra_samples,
        extra_tags=extra_tags,
        encode=encode,
        lossy=lossy,
    )
