"""What our TIFFs say about themselves: provenance text and display range.

ImageDescription (level 0) carries the provenance as one line of
``key=value`` fields separated by ``'; '``, after the tool name::

    tifwriter 0.1.0; kind=labels; dtype=uint8; channels=1; merge=overwrite;
    resampling=mode; compression=lzw; fill=0; spacing_um=0.25,0.25

and, for a canvas with a class table, ``classes=0:background:282828,...``
(:meth:`tifwriter_cli.classes.ClassTable.to_description_field`).

It must never contain ``xml``, ``XML`` or ``DICOM`` (ASAP's TIFF reader
declines such files): values come from fixed vocabularies and numbers, and
:func:`provenance_description` refuses anything else as a safeguard.

SMinSampleValue / SMaxSampleValue (per channel, level 0) are a display
range hint (ASAP uses them; otherwise it assumes 0..255):

* labels with an integer dtype: 0 .. the largest label present (at least 1,
  so an empty mask still has a non-empty range);
* other integer data: the dtype's full range (uint8 0..255, uint16
  0..65535, ...), since probabilities/images are scaled to it;
* float32 (any kind): the observed minimum .. maximum, NaN ignored; 0..1
  when there are no numbers; max = min + 1 when all values are equal.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

import numpy

from ..spec import CanvasSpec
from .readers import FORBIDDEN_DESCRIPTION_WORDS

__all__ = [
    'FORBIDDEN_DESCRIPTION_WORDS',
    'default_channel_names',
    'needs_sample_stats',
    'ome_description',
    'parse_description',
    'provenance_description',
    'sample_range_hint',
]

_PREFIX = 'tifwriter '


def provenance_description(
    spec: CanvasSpec, *, version: str, resampling: str, compression: str, engine: str = 'native'
) -> str:
    fields: dict[str, Any] = {
        'kind': spec.kind,
        'dtype': spec.dtype,
        'channels': spec.channels,
        'merge': spec.merge,
        'resampling': resampling,
        'compression': compression,
        'fill': format(spec.fill, 'g'),
        'spacing_um': (
            f'{spec.spacing_x:.9g},{spec.spacing_y:.9g}' if spec.spacing_x is not None else 'unknown'
        ),
        'slide_downsample': format(spec.slide_downsample, 'g'),
        'engine': engine,
    }
    if spec.classes is not None:  # percent-encoded: never an ASAP-refused word
        fields['classes'] = spec.classes.to_description_field()
    text = _PREFIX + version + ''.join(f'; {key}={value}' for key, value in fields.items())
    for word in FORBIDDEN_DESCRIPTION_WORDS:
        if word.lower() in text.lower():
            raise ValueError(f'provenance text would contain {word!r}, which ASAP refuses: {text}')
    if not re.fullmatch(r'[ -~]*', text):
        raise ValueError(f'provenance text is not printable ASCII: {text!r}')
    return text


#: OME ``Pixels Type`` of each canvas dtype.
_OME_TYPES = {'uint8': 'uint8', 'uint16': 'uint16', 'uint32': 'uint32', 'float32': 'float'}


def default_channel_names(spec: CanvasSpec) -> list[str]:
    """Names for the OME-XML's channels when the user gives none."""
    if spec.kind == 'image' and spec.channels in (3, 4):
        return ['R', 'G', 'B', 'A'][: spec.channels]
    if spec.channels == 1:
        return [spec.kind]
    return [f'{spec.kind} {number}' for number in range(spec.channels)]


def ome_description(spec: CanvasSpec, *, provenance: str, channel_names: Sequence[str]) -> str:
    """OME-XML for the OME-TIFF flavour: one image, its pixel size, its channels.

    The samples are interleaved (one IFD holds every channel), so the XML has
    ONE Channel element with SamplesPerPixel = channels; Bio-Formats reads
    separate Channel elements as separate planes (verified: 5 named channels
    of one IFD opened as 25). Its Name lists every channel's name. Our
    provenance line goes in the Image's Description (parse_description
    reads it back). ASCII only: micrometre is the default unit.
    """
    from xml.sax.saxutils import escape, quoteattr

    if len(channel_names) != spec.channels:
        raise ValueError(f'{len(channel_names)} channel name(s) for {spec.channels} channel(s)')
    size = ''
    if spec.spacing_x is not None:
        size = f' PhysicalSizeX="{spec.spacing_x:.9g}" PhysicalSizeY="{spec.spacing_y:.9g}"'
    name = ', '.join(str(n) for n in channel_names)
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xsi:schemaLocation="http://www.openmicroscopy.org/Schemas/OME/2016-06 '
        'http://www.openmicroscopy.org/Schemas/OME/2016-06/ome.xsd" '
        f'Creator={quoteattr(provenance.split(";")[0])}>'
        f'<Image ID="Image:0" Name={quoteattr(spec.kind)}>'
        f'<Description>{escape(provenance)}</Description>'
        f'<Pixels ID="Pixels:0" DimensionOrder="XYCZT" Type="{_OME_TYPES[spec.dtype]}" '
        f'SizeX="{spec.width}" SizeY="{spec.height}" SizeC="{spec.channels}" SizeZ="1" '
        f'SizeT="1" Interleaved="true"{size}>'
        f'<Channel ID="Channel:0:0" SamplesPerPixel="{spec.channels}" Name={quoteattr(name)}/>'
        '<TiffData IFD="0" PlaneCount="1"/>'
        '</Pixels></Image></OME>'
    )
    if not re.fullmatch(r'[ -~]*', text):
        raise ValueError('OME-XML must be printable ASCII (channel names too)')
    return text


def parse_description(text: str | None) -> dict[str, str] | None:
    """Our provenance fields (plus 'tool'), or None for someone else's text.

    In an OME-TIFF of ours the fields are in the Image's Description.
    """
    if text and text.startswith('<?xml') and '<Description>tifwriter ' in text:
        from xml.sax.saxutils import unescape

        inner = text.split('<Description>', 1)[1].split('</Description>', 1)[0]
        text = unescape(inner)
    if not text or not text.startswith(_PREFIX):
        return None
    parts = text.split('; ')
    parsed = {'tool': parts[0]}
    for part in parts[1:]:
        key, sep, value = part.partition('=')
        if sep:
            parsed[key] = value
    return parsed


def needs_sample_stats(spec: CanvasSpec) -> bool:
    """Whether the display range depends on the data (else it is the dtype's)."""
    return spec.numpy_dtype.kind == 'f' or spec.kind == 'labels'


def sample_range_hint(
    spec: CanvasSpec,
    minimums: Sequence[float] | None,
    maximums: Sequence[float] | None,
) -> tuple[list[float], list[float]]:
    """Per-channel (SMinSampleValue, SMaxSampleValue); see the module doc."""
    dtype = spec.numpy_dtype
    channels = spec.channels
    if dtype.kind != 'f':
        if spec.kind == 'labels':
            top = [max(1, int(m)) for m in (maximums or [1] * channels)]
            return [0] * channels, top
        return [0] * channels, [int(numpy.iinfo(dtype).max)] * channels
    low: list[float] = []
    high: list[float] = []
    for channel in range(channels):
        lo = float(minimums[channel]) if minimums is not None else math.nan
        hi = float(maximums[channel]) if maximums is not None else math.nan
        if math.isnan(lo) or math.isnan(hi):
            lo, hi = 0.0, 1.0
        elif hi <= lo:
            hi = lo + 1.0
        low.append(lo)
        high.append(hi)
    return low, high
