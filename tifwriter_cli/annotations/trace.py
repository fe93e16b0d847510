"""Polygons of every label region, traced band by band in bounded memory.

Each band of full rows is traced with ``rasterio.features.shapes`` (GDAL's
polygonizer: exact pixel-edge outlines, holes kept, 4-connected regions,
as the tests' pixel model). A region that reaches the band's top or bottom
row (a band seam) is only a piece: pieces of one value whose outlines share
a stretch of a seam belong to one region (a union-find over the pieces),
and a region is emitted, as the ``shapely.union_all`` of its pieces, as
soon as no piece of it reaches the last band's bottom seam. A region that
touches no seam is emitted at once.

Memory therefore holds one band, plus the pieces of the regions still open
at the current seam (a region spanning the whole mask stays open to the
end: its own outline is that large). Vertices are pixel corners in the
mask's pixel coordinates (x right, y down; pixel (c, r) is the square
[c, c+1) x [r, r+1)).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy

from .masks import MaskSource

__all__ = ['trace_regions', 'default_band_rows']

#: Bytes of mask pixels per band (GDAL's polygonizer adds a few rows of int32).
BAND_BYTES = 32 * 2**20
#: Pixel types GDAL's polygonizer traces as they are.
_TRACEABLE = ('uint8', 'uint16', 'int16', 'int32', 'float32')


def default_band_rows(mask: MaskSource) -> int:
    """Rows per band: about :data:`BAND_BYTES`, whole storage blocks."""
    rows = BAND_BYTES // max(1, mask.width * mask.dtype.itemsize)
    block = max(1, mask.block_rows)
    return max(block, rows // block * block)


class _Region:
    """Pieces of one region (union-find node)."""

    __slots__ = ('value', 'pieces', 'parent')

    def __init__(self, value: Any, piece: Any):
        self.value = value
        self.pieces = [piece]
        self.parent: _Region | None = None

    def root(self) -> _Region:
        node = self
        while node.parent is not None:
            node = node.parent
        # Path halving is not worth it here: chains are a few bands long.
        return node


def _union(a: _Region, b: _Region) -> _Region:
    a, b = a.root(), b.root()
    if a is b:
        return a
    if len(a.pieces) < len(b.pieces):
        a, b = b, a
    a.pieces.extend(b.pieces)
    b.pieces = []
    b.parent = a
    return a


def _seam_intervals(polygon: Any, y: float) -> list[tuple[float, float]]:
    """x-intervals of the outline's edges lying on the line ``y`` (only the
    exterior can: a hole touching the band edge would not be enclosed)."""
    coords = numpy.asarray(polygon.exterior.coords)
    on = coords[:, 1] == y
    edges = numpy.flatnonzero(on[:-1] & on[1:])
    xs = coords[:, 0]
    return [(min(xs[i], xs[i + 1]), max(xs[i], xs[i + 1])) for i in edges.tolist()]


def _link(above: list[tuple[float, float, _Region]], below: list[tuple[float, float, _Region]]) -> None:
    """Union the regions whose seam intervals (one value, each side's
    intervals disjoint) overlap by a positive length."""
    above.sort(key=lambda item: item[0])
    below.sort(key=lambda item: item[0])
    i = j = 0
    while i < len(above) and j < len(below):
        a0, a1, ra = above[i]
        b0, b1, rb = below[j]
        if min(a1, b1) > max(a0, b0):
            _union(ra, rb)
        if a1 <= b1:
            i += 1
        else:
            j += 1


def trace_regions(
    mask: MaskSource,
    *,
    skip: Iterable[float] = (0,),
    band_rows: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Iterator[tuple[Any, Any]]:
    """(value, shapely Polygon) of every 4-connected region of equal value,
    except values in ``skip`` (and NaN), in mask pixel coordinates.

    ``progress(rows)`` is called after each band with the rows done.
    """
    import shapely
    from affine import Affine
    from rasterio import features

    height = mask.height
    rows = band_rows or default_band_rows(mask)
    skipped = numpy.array(sorted(set(float(v) for v in skip)), dtype=numpy.float64)
    # Open regions at the current seam: value -> [(x0, x1, region)].
    frontier: dict[Any, list[tuple[float, float, _Region]]] = {}

    def finished(regions: Iterable[_Region]) -> Iterator[tuple[Any, Any]]:
        for region in regions:
            pieces = region.pieces
            merged = pieces[0] if len(pieces) == 1 else shapely.union_all(pieces)
            for part in getattr(merged, 'geoms', [merged]):
                if part.geom_type == 'Polygon' and not part.is_empty:
                    yield region.value, part

    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        band, valid = _traceable(mask.read_rows(top, bottom), skipped, mask.path)
        reaching_top: dict[Any, list[tuple[float, float, _Region]]] = collections.defaultdict(list)
        reaching_bottom: dict[Any, list[tuple[float, float, _Region]]] = collections.defaultdict(list)
        new_regions: list[_Region] = []
        transform = Affine(1, 0, 0, 0, 1, top)
        for geometry, value in features.shapes(band, mask=valid, connectivity=4, transform=transform):
            value = int(value) if float(value).is_integer() else float(value)
            polygon = _polygon(geometry)
            _, low, _, high = polygon.bounds
            at_top = top > 0 and low == top
            at_bottom = bottom < height and high == bottom
            if not (at_top or at_bottom):
                yield value, polygon
                continue
            region = _Region(value, polygon)
            new_regions.append(region)
            if at_top:
                reaching_top[value].extend((x0, x1, region) for x0, x1 in _seam_intervals(polygon, top))
            if at_bottom:
                reaching_bottom[value].extend(
                    (x0, x1, region) for x0, x1 in _seam_intervals(polygon, bottom)
                )
        del band, valid
        waiting = [region for items in frontier.values() for _, _, region in items]
        for value, items in reaching_top.items():
            if value in frontier:
                _link(frontier[value], items)
        alive = {id(region.root()) for items in reaching_bottom.values() for _, _, region in items}
        done: dict[int, _Region] = {}
        for region in waiting + new_regions:
            root = region.root()
            if id(root) not in alive:
                done[id(root)] = root
        yield from finished(done.values())
        frontier = {
            value: [(x0, x1, region.root()) for x0, x1, region in items]
            for value, items in reaching_bottom.items()
        }
        if progress is not None:
            progress(bottom)
    # The last band's bottom is the mask's edge: nothing stays open.
    assert not frontier, 'regions left open at the mask edge'


def _polygon(geometry: dict) -> Any:
    """A shapely Polygon of a GeoJSON-like polygon dict, built from numpy
    arrays (shapely.geometry.shape checks every coordinate in Python: 14x
    slower on ragged masks)."""
    import shapely

    rings = [shapely.linearrings(numpy.asarray(ring, dtype=numpy.float64)) for ring in geometry['coordinates']]
    return shapely.polygons(rings[0], holes=rings[1:] or None)


def _traceable(band: numpy.ndarray, skipped: numpy.ndarray, path: str) -> tuple[numpy.ndarray, numpy.ndarray]:
    """The band in a type the polygonizer takes, and the mask of pixels to trace."""
    from ..errors import InvalidOptionError

    valid = ~numpy.isin(band, skipped)
    if band.dtype.kind == 'f':
        valid &= ~numpy.isnan(band)
        band = band.astype(numpy.float32, copy=False)
    elif str(band.dtype) not in _TRACEABLE:
        if band.size and (int(band.max()) > 2**31 - 1 or int(band.min()) < -(2**31)):
            raise InvalidOptionError(f'{path}: label values beyond 2**31 - 1 cannot be traced')
        band = band.astype(numpy.int32)
    return numpy.ascontiguousarray(band), valid
