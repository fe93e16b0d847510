"""Annotation files, written as polygons arrive: QuPath GeoJSON and ASAP XML.

**GeoJSON** (QuPath 0.3 and later import it by drag and drop, or File >
Import objects): one FeatureCollection; each region one Feature with a
``Polygon`` (exterior first, then its holes; rings closed), a UUID ``id``,
and ``properties`` ``{"objectType": "annotation" | "detection",
"classification": {"name": NAME, "color": [r, g, b]}, "isLocked": false}``
- the members QuPath itself writes and reads. Coordinates are pixels of
the image the file is dropped on, origin at its top-left corner, y down.
The collection also carries ``"generator": "tifwriter ..."`` (GeoJSON
allows such foreign members; tifwriter's ``--overwrite`` checks it).

**ASAP XML** (File > Load annotations): ``<ASAP_Annotations>`` with one
``Type="Polygon"`` Annotation per region in the Group of its class, and
one group per class (``Color`` from the class table). ASAP polygons have
no holes: each hole is written as a polygon of the group ``"NAME hole"``.
ASAP's AnnotationToMask gives the mask back with label map {NAME: value,
"NAME hole": 0} drawn class first, holes after (the order the CAMELYON16
files use for their exclusion group; a region lying in a hole of its own
class is then erased with the hole). That tool samples pixel (x, y) at the
point (x, y), its top-left corner, not at its centre: the XML's
coordinates are therefore written half a pixel up and left of the pixel
edges, so that it rebuilds exactly the pixels traced (the half pixel is
invisible in the viewer).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, TextIO
from xml.sax.saxutils import quoteattr

__all__ = ['GeoJsonWriter', 'AsapXmlWriter', 'hole_group', 'writer_for']


class GeoJsonWriter:
    """Streams a QuPath-importable FeatureCollection to ``handle``."""

    def __init__(self, handle: TextIO, *, generator: str, object_type: str = 'annotation'):
        self.handle = handle
        self.object_type = object_type
        self.count = 0
        self._properties: dict[tuple[str, tuple[int, int, int]], str] = {}
        handle.write(f'{{"type": "FeatureCollection", "generator": {json.dumps(generator)}, "features": [')

    def add_many(self, entries: list[tuple[Any, str, tuple[int, int, int]]]) -> int:
        """Write (polygon, class name, colour) features; returns their vertices."""
        import shapely

        if not entries:
            return 0
        geometries = [polygon for polygon, _, _ in entries]
        texts = shapely.to_geojson(geometries)  # GEOS writes the coordinates: fast
        parts = []
        for text, (_, name, colour) in zip(texts.tolist(), entries, strict=True):
            key = (name, colour)
            properties = self._properties.get(key)
            if properties is None:
                properties = self._properties[key] = json.dumps({
                    'objectType': self.object_type,
                    'classification': {'name': name, 'color': list(colour)},
                    'isLocked': False,
                })
            parts.append(
                f'{{"type": "Feature", "id": "{uuid.uuid4()}", "geometry": {text}, "properties": {properties}}}'
            )
        self.handle.write((',\n' if self.count else '\n') + ',\n'.join(parts))
        self.count += len(parts)
        return int(shapely.get_num_coordinates(geometries).sum())

    def close(self) -> None:
        self.handle.write('\n]}\n')


class AsapXmlWriter:
    """Streams ASAP's annotation XML to ``handle`` (groups at the end)."""

    def __init__(self, handle: TextIO, *, generator: str, object_type: str = 'annotation'):
        self.handle = handle
        self.count = 0
        self._groups: dict[str, tuple[int, int, int]] = {}
        handle.write('<?xml version="1.0"?>\n')
        handle.write(f'<!-- {generator.replace("--", "- -")} -->\n')
        handle.write('<ASAP_Annotations>\n\t<Annotations>\n')

    def _annotation(self, ring: Any, group: str, colour: tuple[int, int, int]) -> int:
        import numpy

        # ASAP samples pixels at their top-left corner (module docstring).
        points = numpy.asarray(ring, dtype=numpy.float64) - 0.5
        if len(points) > 1 and (points[0] == points[-1]).all():
            points = points[:-1]  # ASAP closes polygons itself
        self.handle.write(
            f'\t\t<Annotation Name={quoteattr(f"Annotation {self.count}")} Type="Polygon" '
            f'PartOfGroup={quoteattr(group)} Color="{_hex(colour)}">\n\t\t\t<Coordinates>\n'
        )
        self.handle.write(''.join(
            f'\t\t\t\t<Coordinate Order="{order}" X="{x:.10g}" Y="{y:.10g}" />\n'
            for order, (x, y) in enumerate(points.tolist())
        ))
        self.handle.write('\t\t\t</Coordinates>\n\t\t</Annotation>\n')
        self._groups.setdefault(group, colour)
        self.count += 1
        return len(points)

    def add_many(self, entries: list[tuple[Any, str, tuple[int, int, int]]]) -> int:
        """Write (polygon, class name, colour) annotations; returns their vertices."""
        vertices = 0
        for polygon, name, colour in entries:
            vertices += self._annotation(polygon.exterior.coords, name, colour)
            for hole in polygon.interiors:
                vertices += self._annotation(hole.coords, hole_group(name), colour)
        return vertices

    def close(self) -> None:
        self.handle.write('\t</Annotations>\n\t<AnnotationGroups>\n')
        for group, colour in self._groups.items():
            self.handle.write(
                f'\t\t<Group Name={quoteattr(group)} PartOfGroup="None" Color="{_hex(colour)}">\n'
                '\t\t\t<Attributes />\n\t\t</Group>\n'
            )
        self.handle.write('\t</AnnotationGroups>\n</ASAP_Annotations>\n')


def hole_group(name: str) -> str:
    """The ASAP group of a class's holes."""
    return f'{name} hole'


def _hex(colour: tuple[int, int, int]) -> str:
    return '#' + ''.join(f'{c:02X}' for c in colour)


def writer_for(fmt: str) -> type:
    return {'geojson': GeoJsonWriter, 'asap-xml': AsapXmlWriter}[fmt]
