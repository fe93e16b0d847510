"""export_annotations: label masks to polygons and back.

Every region must come back: rasterising the exported polygons gives the
mask again (per class IoU >= 0.999; at tolerance 0 exactly), with one
polygon per 4-connected region whatever the band and tile seams, at the
right slide pixels for a downsampled heatmap, in files QuPath and ASAP
read.
"""

from __future__ import annotations

import json
import sys
import uuid
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.annotations import export_annotations, place_polygon
from tifwriter_cli.annotations.masks import MaskSource, open_mask
from tifwriter_cli.annotations.trace import trace_regions
from tifwriter_cli.errors import InvalidOptionError, MissingExtraError
from tifwriter_cli.slide import slide_to_canvas
from tifwriter_cli.sources import ArraySource

from ..helpers.readers import asap_unavailable

rasterio_features = pytest.importorskip('rasterio.features', reason='the annotations extra is part of [test]')
shapely_geometry = pytest.importorskip('shapely.geometry')


# -- reference models -----------------------------------------------------------------------
def component_counts(mask: numpy.ndarray, skip=(0,)) -> dict[int, int]:
    """4-connected regions per value: runs of equal pixels in each row, joined
    (union-find) with the runs of equal value they overlap in the row above."""
    parent: list[int] = []

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    above: list[tuple[int, int, int, int]] = []  # (start, end, value, run id)
    values: list[int] = []
    for row in mask:
        edges = numpy.flatnonzero(numpy.diff(row.astype(numpy.int64))) + 1
        starts = [0, *edges.tolist()]
        ends = [*edges.tolist(), len(row)]
        current = []
        j = 0
        for start, end in zip(starts, ends, strict=True):
            run = len(parent)
            parent.append(run)
            value = int(row[start])
            values.append(value)
            while j < len(above) and above[j][1] <= start:
                j += 1
            k = j
            while k < len(above) and above[k][0] < end:
                if above[k][2] == value:
                    parent[find(run)] = find(above[k][3])
                k += 1
            current.append((start, end, value, run))
        above = current
    counts: dict[int, int] = {}
    for run, value in enumerate(values):
        if find(run) == run and value not in skip:
            counts[value] = counts.get(value, 0) + 1
    return counts


def rasterise(polygons: list[tuple[int, object]], shape: tuple[int, int], scale: float = 1.0,
              offset: float = 0.0, exact: bool = True) -> numpy.ndarray:
    """Label image of (value, polygon) drawn at pixel centres. ``exact``: the
    polygons follow pixel edges, so they must not overlap (their areas add up
    to the pixels drawn)."""
    import shapely

    placed = [(shapely.transform(p, lambda xy: (xy + offset) / scale), v) for v, p in polygons]
    if not placed:
        return numpy.zeros(shape, numpy.int64)
    out = rasterio_features.rasterize(placed, out_shape=shape, dtype='int32').astype(numpy.int64)
    if exact:
        assert sum(p.area for p, _ in placed) == pytest.approx(float((out != 0).sum())), 'polygons overlap'
    return out


def iou(a: numpy.ndarray, b: numpy.ndarray) -> float:
    union = numpy.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(numpy.logical_and(a, b).sum() / union)


def geojson_polygons(path: Path) -> list[tuple[str, object]]:
    data = json.loads(path.read_text())
    return [
        (feature['properties']['classification']['name'], shapely_geometry.shape(feature['geometry']))
        for feature in data['features']
    ]


def memory_mask(mask: numpy.ndarray, *, block_rows: int = 16, reads: list | None = None) -> MaskSource:
    def read_rows(top: int, bottom: int) -> numpy.ndarray:
        if reads is not None:
            reads.append(bottom - top)
        return mask[top:bottom]

    return MaskSource(path='memory', width=mask.shape[1], height=mask.shape[0], dtype=mask.dtype,
                      classes=None, level_downsample=1.0, slide_downsample=1.0, fill=0,
                      block_rows=block_rows, read_rows=read_rows, close=lambda: None)


# -- known shapes ----------------------------------------------------------------------------
def known_shapes() -> numpy.ndarray:
    """Squares, rings with holes (one with an island), shapes crossing band
    (every 100 rows below) and tile (256 px) seams, touching classes, a
    diagonal contact, a comb whose teeth join only far below a seam."""
    m = numpy.zeros((1100, 1300), numpy.uint8)
    m[20:80, 20:80] = 1                          # square inside one band
    m[150:450, 150:450] = 2                      # ring across three bands and a tile seam
    m[200:400, 200:400] = 0
    m[250:350, 250:350] = 2                      # island in the ring's hole
    m[90:510, 600:700] = 3                       # tall bar across five band seams ...
    m[90:510, 700:800] = 1                       # ... touching class 1 along its whole side
    m[600:610, 600:610] = 3                      # diagonal contact: two regions
    m[610:620, 610:620] = 3
    for x in range(900, 1200, 40):               # comb: teeth in bands above, joined below
        m[520:690, x:x + 20] = 2
    m[690:720, 900:1180] = 2
    m[800:1100, 1000:1300] = 1                   # touching the right and bottom edges
    m[1000:1100, 0:300] = 3
    m[1040:1060, 100:200] = 0                    # hole touching nothing but its class
    return m


@pytest.mark.parametrize('band_rows', [None, 100, 7, 1])
def test_known_shapes_round_trip_exactly(band_rows):
    mask = known_shapes()
    regions = list(trace_regions(memory_mask(mask), band_rows=band_rows))
    counts: dict[int, int] = {}
    for value, polygon in regions:
        assert polygon.is_valid
        counts[value] = counts.get(value, 0) + 1
    assert counts == component_counts(mask)
    back = rasterise(regions, mask.shape)
    numpy.testing.assert_array_equal(back, mask)


def test_reads_only_bands_of_the_asked_height():
    reads: list[int] = []
    mask = known_shapes()
    list(trace_regions(memory_mask(mask, reads=reads), band_rows=64))
    assert max(reads) == 64 and sum(reads) == mask.shape[0]


@st.composite
def shape_masks(draw):
    height, width = draw(st.integers(1, 48)), draw(st.integers(1, 48))
    mask = numpy.zeros((height, width), numpy.uint8)
    for _ in range(draw(st.integers(0, 8))):
        y0, x0 = draw(st.integers(0, height - 1)), draw(st.integers(0, width - 1))
        y1, x1 = draw(st.integers(y0 + 1, height)), draw(st.integers(x0 + 1, width))
        value = draw(st.integers(0, 3))
        mask[y0:y1, x0:x1] = value
        if draw(st.booleans()) and y1 - y0 > 2 and x1 - x0 > 2:  # a ring
            mask[y0 + 1 : y1 - 1, x0 + 1 : x1 - 1] = draw(st.integers(0, 3))
    if draw(st.booleans()):  # speckle: many one-pixel regions and diagonal contacts
        rng = numpy.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        keep = rng.random((height, width)) < draw(st.sampled_from([0.1, 0.5, 0.9]))
        mask = numpy.where(keep, rng.integers(0, 4, (height, width)), mask).astype(numpy.uint8)
    return mask


@settings(max_examples=120, deadline=None)
@given(shape_masks(), st.integers(1, 12))
def test_any_mask_round_trips_with_one_polygon_per_region(mask, band_rows):
    regions = list(trace_regions(memory_mask(mask), band_rows=band_rows))
    counts: dict[int, int] = {}
    for value, _polygon in regions:
        counts[value] = counts.get(value, 0) + 1
    assert counts == component_counts(mask)
    numpy.testing.assert_array_equal(rasterise(regions, mask.shape), mask)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape_masks(), st.integers(1, 12))
def test_tiff_with_16px_tiles_round_trips_through_geojson(tmp_path_factory, mask, band_rows):
    work = tmp_path_factory.mktemp('geo')
    spec = tw.CanvasSpec(width=mask.shape[1], height=mask.shape[0], tile_size=16, classes='0=bg,1=a,2=b,3=c')
    tw.finalize(ArraySource(spec, mask), work / 'm.tif', workers=1)
    export_annotations(work / 'm.tif', work / 'm.geojson', tolerance=0, band_rows=band_rows)
    names = {'a': 1, 'b': 2, 'c': 3}
    polygons = [(names[name], polygon) for name, polygon in geojson_polygons(work / 'm.geojson')]
    numpy.testing.assert_array_equal(rasterise(polygons, mask.shape), mask)


def test_staging_unit_round_trips_per_class_iou(tmp_path: Path):
    mask = known_shapes()
    path = tmp_path / 'm.h5'
    tw.create_staging(path, tw.CanvasSpec(width=1300, height=1100, tile_size=256,
                                          classes='0=background,1=tumour,2=stroma,3=necrosis'))
    with tw.open_staging(path) as writer:  # patches of 256: the mask arrives in tiles
        for y in range(0, 1100, 256):
            for x in range(0, 1300, 256):
                writer.write(x, y, mask[y : y + 256, x : x + 256])
    names = {'tumour': 1, 'stroma': 2, 'necrosis': 3}
    for tolerance, least in ((0.0, 1.0), (0.5, 0.999)):
        out = tmp_path / f'm{tolerance}.geojson'
        report = export_annotations(path, out, tolerance=tolerance)
        assert report.total == sum(component_counts(mask).values())
        back = rasterise([(names[n], p) for n, p in geojson_polygons(out)], mask.shape, exact=tolerance == 0)
        for value in (1, 2, 3):
            assert iou(back == value, mask == value) >= least, (tolerance, value)


# -- slide coordinates --------------------------------------------------------------------------
def test_downsample_16_heatmap_lands_on_the_right_slide_pixels(tmp_path: Path, run_cli):
    slide = tmp_path / 'slide.tif'
    tifffile.imwrite(slide, numpy.zeros((2400, 3200, 3), numpy.uint8), photometric='rgb', tile=(256, 256),
                     resolution=(40000, 40000), resolutionunit='CENTIMETER')
    staging = tmp_path / 'heat.h5'
    result = run_cli('init', staging, '--like', slide, '--downsample', '16', '--classes', 'bg,tumour')
    assert result.exit_code == 0, result.output
    heat = numpy.zeros((150, 200), numpy.uint8)
    heat[30:50, 10:20] = 1  # canvas pixels x 10..19, y 30..49
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, heat)
    assert run_cli('finalize', staging, tmp_path / 'heat.tif').exit_code == 0
    for source in (staging, tmp_path / 'heat.tif'):
        out = tmp_path / f'{source.suffix[1:]}.geojson'
        result = run_cli('export-annotations', source, '-o', out, '--tolerance', '0')
        assert result.exit_code == 0, result.output
        assert '1 mask px = 16' in result.stdout
        ((name, polygon),) = geojson_polygons(out)
        assert name == 'tumour'
        assert polygon.bounds == (160.0, 480.0, 320.0, 800.0)  # canvas edges x 16
        # The slide pixels just inside the corners belong to the canvas pixels drawn.
        assert slide_to_canvas(160, 480, 16) == (10, 30)
        assert slide_to_canvas(319, 799, 16) == (19, 49)
        assert slide_to_canvas(320, 800, 16) == (20, 50)
    canvas = tmp_path / 'canvas.geojson'
    assert run_cli('export-annotations', staging, '-o', canvas, '--coordinates', 'canvas').exit_code == 0
    assert geojson_polygons(canvas)[0][1].bounds == (10.0, 30.0, 20.0, 50.0)


def test_a_lower_level_is_traced_in_full_resolution_coordinates(tmp_path: Path):
    mask = numpy.zeros((1024, 1536), numpy.uint8)
    mask[256:768, 512:1024] = 1
    mask[400:500, 600:700] = 0  # a hole of even size and place: exact at level 1
    spec = tw.CanvasSpec(width=1536, height=1024, tile_size=256, classes='bg,tumour')
    tw.finalize(ArraySource(spec, mask), tmp_path / 'm.tif')
    with open_mask(tmp_path / 'm.tif', level=1) as source:
        assert source.level_downsample == 2 and source.width == 768
    export_annotations(tmp_path / 'm.tif', tmp_path / 'l1.geojson', level=1, tolerance=0)
    ((_, polygon),) = geojson_polygons(tmp_path / 'l1.geojson')
    assert polygon.bounds == (512.0, 256.0, 1024.0, 768.0) and len(polygon.interiors) == 1
    numpy.testing.assert_array_equal(rasterise([(1, polygon)], mask.shape), mask)


# -- the file formats -----------------------------------------------------------------------------
#: What QuPath (0.3 - 0.5) writes for "Export as GeoJSON" (FeatureCollection)
#: and reads back: features with a Polygon geometry (RFC 7946: closed rings of
#: >= 4 positions), a UUID id, and properties objectType and classification
#: {name, color [r, g, b]} (docs: qupath.readthedocs.io, "Exporting annotations").
QUPATH_FEATURE_COLLECTION = {
    'type': 'object',
    'required': ['type', 'features'],
    'properties': {
        'type': {'const': 'FeatureCollection'},
        'features': {'type': 'array', 'items': {
            'type': 'object',
            'required': ['type', 'id', 'geometry', 'properties'],
            'properties': {
                'type': {'const': 'Feature'},
                'id': {'type': 'string'},
                'geometry': {
                    'type': 'object',
                    'required': ['type', 'coordinates'],
                    'properties': {
                        'type': {'const': 'Polygon'},
                        'coordinates': {'type': 'array', 'minItems': 1, 'items': {
                            'type': 'array', 'minItems': 4,
                            'items': {'type': 'array', 'minItems': 2, 'maxItems': 2,
                                      'items': {'type': 'number'}}}},
                    },
                },
                'properties': {
                    'type': 'object',
                    'required': ['objectType', 'classification'],
                    'properties': {
                        'objectType': {'enum': ['annotation', 'detection']},
                        'isLocked': {'type': 'boolean'},
                        'classification': {
                            'type': 'object',
                            'required': ['name', 'color'],
                            'properties': {
                                'name': {'type': 'string', 'minLength': 1},
                                'color': {'type': 'array', 'minItems': 3, 'maxItems': 3,
                                          'items': {'type': 'integer', 'minimum': 0, 'maximum': 255}},
                            },
                        },
                    },
                },
            },
        }},
    },
}


@pytest.mark.parametrize('object_type', ['annotation', 'detection'])
def test_geojson_follows_qupath_conventions(tmp_path: Path, object_type):
    jsonschema = pytest.importorskip('jsonschema')
    spec = tw.CanvasSpec(width=1300, height=1100, classes='0=background,1=tumour:#e41a1c,2=stroma,3=necrosis')
    tw.finalize(ArraySource(spec, known_shapes()), tmp_path / 'm.tif')
    out = tmp_path / 'm.geojson'
    export_annotations(tmp_path / 'm.tif', out, object_type=object_type)
    data = json.loads(out.read_text())
    jsonschema.validate(data, QUPATH_FEATURE_COLLECTION)
    ids = [feature['id'] for feature in data['features']]
    assert len(set(ids)) == len(ids) and all(uuid.UUID(i) for i in ids)
    for feature in data['features']:
        assert feature['properties']['objectType'] == object_type
        for ring in feature['geometry']['coordinates']:
            assert ring[0] == ring[-1]
        polygon = shapely_geometry.shape(feature['geometry'])
        assert polygon.is_valid
    tumour = [f for f in data['features'] if f['properties']['classification']['name'] == 'tumour']
    assert tumour and tumour[0]['properties']['classification']['color'] == [0xE4, 0x1A, 0x1C]
    assert {f['properties']['classification']['name'] for f in data['features']} == {'tumour', 'stroma', 'necrosis'}


def asap_polygons(path: Path) -> tuple[list[tuple[str, object]], dict[str, str]]:
    """(group, polygon) of each ASAP annotation, holes subtracted from the
    polygon of their class that contains them; and group -> colour."""
    from shapely.geometry import Polygon

    root = ElementTree.parse(path).getroot()
    assert root.tag == 'ASAP_Annotations'
    groups = {g.get('Name'): g.get('Color') for g in root.find('AnnotationGroups')}
    outers, holes = [], []
    for annotation in root.find('Annotations'):
        assert annotation.get('Type') == 'Polygon'
        assert annotation.get('PartOfGroup') in groups
        points = sorted(annotation.find('Coordinates'), key=lambda c: int(c.get('Order')))
        ring = [(float(c.get('X')) + 0.5, float(c.get('Y')) + 0.5) for c in points]
        group = annotation.get('PartOfGroup')
        (holes if group.endswith(' hole') else outers).append((group, Polygon(ring)))
    result = []
    for group, outer in outers:
        inside = [h.exterior.coords for g, h in holes if g == f'{group} hole' and outer.contains(h)]
        result.append((group, Polygon(outer.exterior.coords, inside)))
    return result, groups


def test_asap_xml_parses_back_to_the_mask(tmp_path: Path):
    mask = known_shapes()
    spec = tw.CanvasSpec(width=1300, height=1100, classes='0=background,1=tumour:#e41a1c,2=stroma,3=necrosis')
    tw.finalize(ArraySource(spec, mask), tmp_path / 'm.tif')
    out = tmp_path / 'm.xml'
    export_annotations(tmp_path / 'm.tif', out, tolerance=0)
    polygons, groups = asap_polygons(out)
    assert groups['tumour'] == '#E41A1C' and 'stroma hole' in groups and 'tumour hole' not in groups
    names = {'tumour': 1, 'stroma': 2, 'necrosis': 3}
    numpy.testing.assert_array_equal(rasterise([(names[g], p) for g, p in polygons], mask.shape), mask)


@pytest.mark.skipif(asap_unavailable() is not None, reason=str(asap_unavailable()))
def test_asap_itself_loads_the_xml_and_rebuilds_the_mask(tmp_path: Path):
    import multiresolutionimageinterface as mir

    mask = known_shapes()
    mask[250:350, 250:350] = 0  # no island in a hole of its own class (ASAP erases it with the hole)
    spec = tw.CanvasSpec(width=1300, height=1100, classes='0=background,1=tumour,2=stroma,3=necrosis')
    tw.finalize(ArraySource(spec, mask), tmp_path / 'm.tif')
    out = tmp_path / 'm.xml'
    export_annotations(tmp_path / 'm.tif', out, tolerance=0)
    annotations = mir.AnnotationList()
    repository = mir.XmlRepository(annotations)
    repository.setSource(str(out))
    assert repository.load()
    assert len(annotations.getAnnotations()) == sum(component_counts(mask).values()) + 2  # + 2 holes
    assert {g.getName() for g in annotations.getGroups()} == {'tumour', 'stroma', 'necrosis', 'stroma hole', 'necrosis hole'}
    labels = {'tumour': 1, 'stroma': 2, 'necrosis': 3, 'stroma hole': 0, 'necrosis hole': 0}
    rebuilt = tmp_path / 'asap-mask.tif'
    mir.AnnotationToMask().convert(annotations, str(rebuilt), (1300, 1100), (1.0, 1.0), labels,
                                   ('tumour', 'stroma', 'necrosis', 'stroma hole', 'necrosis hole'))
    numpy.testing.assert_array_equal(tifffile.imread(rebuilt, key=0), mask)


# -- options ------------------------------------------------------------------------------------------
def test_min_area_drops_small_regions_and_fills_small_holes():
    from shapely.geometry import Polygon

    ring = Polygon([(0, 0), (10, 0), (10, 10), (0, 10)], [[(2, 2), (4, 2), (4, 4), (2, 4)]])
    assert place_polygon(ring, min_area=101) is None
    filled = place_polygon(ring, min_area=5)
    assert filled.area == 100 and not filled.interiors
    kept = place_polygon(ring, min_area=4)
    assert kept.area == 96 and len(kept.interiors) == 1


def test_tolerance_simplifies_a_staircase_within_tolerance():
    mask = numpy.zeros((200, 200), numpy.uint8)
    yy, xx = numpy.mgrid[0:200, 0:200]
    mask[(yy - 100) ** 2 + (xx - 100) ** 2 < 80**2] = 1
    ((_, exact),) = trace_regions(memory_mask(mask))
    simple = place_polygon(exact, tolerance=1.0)
    assert len(simple.exterior.coords) < len(exact.exterior.coords) / 3
    assert exact.hausdorff_distance(simple) <= 1.0 + 1e-9
    assert iou(rasterise([(1, simple)], mask.shape, exact=False) == 1, mask == 1) >= 0.99


def test_skip_and_class_override(tmp_path: Path):
    mask = numpy.zeros((64, 64), numpy.uint8)
    mask[10:20, 10:20] = 1
    mask[30:40, 30:40] = 2
    spec = tw.CanvasSpec(width=64, height=64)
    tw.finalize(ArraySource(spec, mask), tmp_path / 'm.tif')
    report = export_annotations(tmp_path / 'm.tif', tmp_path / 'a.geojson', skip=(0, 2))
    assert report.polygons == {'1': 1}  # no table: named by value
    report = export_annotations(tmp_path / 'm.tif', tmp_path / 'b.geojson', skip=(), classes='0=glass,1=a:#010203')
    assert report.polygons == {'glass': 1, 'a': 1, '2': 1}


def test_bad_inputs_are_refused_before_any_output(tmp_path: Path):
    probability = tw.CanvasSpec(width=40, height=40, channels=2, kind='probability')
    tw.finalize(ArraySource(probability, numpy.zeros((40, 40, 2), numpy.uint8)), tmp_path / 'p.tif')
    with pytest.raises(InvalidOptionError, match='2 channels.*argmax=True'):
        export_annotations(tmp_path / 'p.tif', tmp_path / 'p.geojson')
    with pytest.raises(InvalidOptionError, match='name the output'):
        export_annotations(tmp_path / 'p.tif', tmp_path / 'p.txt')
    with pytest.raises(InvalidOptionError, match='tolerance= must be a number >= 0'):
        export_annotations(tmp_path / 'p.tif', tmp_path / 'p.geojson', tolerance=-1)
    with pytest.raises(InvalidOptionError, match='levels 0 to 0'):
        export_annotations(tmp_path / 'p.tif', tmp_path / 'p.geojson', level=3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['p.tif']


def test_missing_extra_is_one_clear_line(tmp_path: Path, monkeypatch, run_cli):
    spec = tw.CanvasSpec(width=40, height=40)
    tw.finalize(ArraySource(spec, numpy.ones((40, 40), numpy.uint8)), tmp_path / 'm.tif')
    monkeypatch.setitem(sys.modules, 'shapely', None)  # import shapely now raises ImportError
    with pytest.raises(MissingExtraError, match=r"needs shapely: pip install 'tifwriter\[annotations\]'"):
        export_annotations(tmp_path / 'm.tif', tmp_path / 'm.geojson')
    result = run_cli('export-annotations', tmp_path / 'm.tif', '-o', tmp_path / 'm.geojson')
    assert result.exit_code == 1 and 'Traceback' not in result.output
    assert result.stderr.strip() == "tifwriter: error: exporting annotations needs shapely: pip install 'tifwriter[annotations]'"
    assert not (tmp_path / 'm.geojson').exists()
