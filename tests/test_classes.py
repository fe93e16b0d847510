"""The class table: its forms, validation, palette, and its trip through the
staging unit and the TIFF (read back by tifffile, OpenSlide and ASAP)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy
import openslide
import pytest
import tifffile
from hypothesis import given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.classes import (
    DEFAULT_PALETTE,
    HE_REFERENCE,
    ClassTable,
    LabelClass,
    classes_from_provenance,
    default_colour,
    parse_classes,
)
from tifwriter_cli.errors import InvalidOptionError
from tifwriter_cli.sources import ArraySource
from tifwriter_cli.staging import read_canvas
from tifwriter_cli.tiff.metadata import parse_description

from .helpers.cli_checks import assert_clean_failure
from .helpers.readers import asap_opens, asap_unavailable


# -- the forms -------------------------------------------------------------------------
def test_value_name_colour_form():
    table = parse_classes('0=background, 1=tumour:#e41a1c ,2=stroma:#0f0')
    assert [(c.value, c.name) for c in table] == [(0, 'background'), (1, 'tumour'), (2, 'stroma')]
    assert table.colour_of(1) == (0xE4, 0x1A, 0x1C)
    assert table.colour_of(2) == (0, 255, 0)
    assert table.colour_of(0) == default_colour(0)
    assert table.name_of(7) == '7' and table.colour_of(7) == default_colour(7)


def test_names_only_form_numbers_from_zero():
    table = parse_classes('background,tumour,necrosis')
    assert table.values == (0, 1, 2)
    assert table.name_of(2) == 'necrosis'


def test_json_file_forms(tmp_path: Path):
    mapping = tmp_path / 'classes.json'
    mapping.write_text(json.dumps({'0': 'background', '5': {'name': 'tumour, grade 3', 'color': '#112233'}}))
    table = parse_classes(str(mapping))
    assert table.name_of(5) == 'tumour, grade 3' and table.colour_of(5) == (0x11, 0x22, 0x33)
    listed = tmp_path / 'list.JSON'
    listed.write_text(json.dumps([{'value': 2, 'name': 'b', 'colour': [1, 2, 3]}, {'value': 1, 'name': 'a'}]))
    table = parse_classes(str(listed))
    assert table.values == (1, 2) and table.colour_of(2) == (1, 2, 3)
    # What to_list writes is a file parse_classes reads.
    again = tmp_path / 'again.json'
    again.write_text(json.dumps({'classes': table.to_list()}))
    assert parse_classes(str(again)) == table


@pytest.mark.parametrize('text, words', [
    ('0=a,0=b', 'given twice'),
    ('0=a,1=A', 'names must differ'),
    ('0=a,,1=b', 'empty entry'),
    ('0=a,b', 'VALUE=NAME'),
    ('-1=a', 'non-negative integer'),
    ('x=a', 'non-negative integer'),
    ('1=a:#12345', 'not #rrggbb'),
    ('1=', 'empty name'),
    ('1=a\tb', 'control characters'),
    ('missing.json', 'does not exist'),
])
def test_bad_tables_are_one_line_errors(text, words):
    with pytest.raises(InvalidOptionError, match=words):
        parse_classes(text)


def test_bad_json_file(tmp_path: Path):
    path = tmp_path / 'bad.json'
    path.write_text('{"1": 3}')
    with pytest.raises(InvalidOptionError, match='needs a name'):
        parse_classes(str(path))
    path.write_text('{oops')
    with pytest.raises(InvalidOptionError, match='not valid JSON'):
        parse_classes(str(path))


def test_table_must_fit_the_canvas():
    with pytest.raises(InvalidOptionError, match=r'300 do not fit.*0 to 255 \(uint8\)'):
        tw.CanvasSpec(width=10, height=10, classes='0=a,300=b')
    assert tw.CanvasSpec(width=10, height=10, dtype='uint16', classes='0=a,300=b').classes.values == (0, 300)
    with pytest.raises(InvalidOptionError, match='channel numbers 0 to 2'):
        tw.CanvasSpec(width=10, height=10, channels=3, kind='probability', dtype='float32', classes='a,b,c,d')
    with pytest.raises(InvalidOptionError, match='image canvas'):
        tw.CanvasSpec(width=10, height=10, channels=3, kind='image', classes='a,b')


# -- the palette -------------------------------------------------------------------------
def _lab(rgb) -> numpy.ndarray:
    c = numpy.asarray(rgb, dtype=float) / 255
    c = numpy.where(c > 0.04045, ((c + 0.055) / 1.055) ** 2.4, c / 12.92)
    xyz = c @ numpy.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz = xyz / numpy.array([0.95047, 1.0, 1.08883])
    f = numpy.where(xyz > 0.008856, numpy.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return numpy.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def test_default_palette_stays_visible_over_he():
    stains = _lab(list(HE_REFERENCE.values()))
    colours = [default_colour(v) for v in range(1, 300)]
    for value, colour in enumerate(colours, start=1):
        delta = numpy.sqrt(((_lab(colour) - stains) ** 2).sum(-1)).min()
        assert delta >= 45, (value, colour, delta)
    # The first classes are also far from one another (told apart at a glance).
    first = _lab([default_colour(v) for v in range(1, 9)])
    pairwise = numpy.sqrt(((first[:, None] - first[None]) ** 2).sum(-1))
    assert pairwise[numpy.triu_indices(8, 1)].min() >= 40
    # The old first colour (red) was not: it is 20 units from red cells.
    assert numpy.sqrt(((_lab((0xE6, 0x19, 0x4B)) - stains) ** 2).sum(-1)).min() < 25
    assert len(DEFAULT_PALETTE) == 256 and len(set(DEFAULT_PALETTE)) == 256
    assert default_colour(256) == default_colour(1)


# -- the TIFF form ---------------------------------------------------------------------------
names = st.text(
    alphabet=st.characters(blacklist_categories=('Cc', 'Cs', 'Zl', 'Zp', 'Co', 'Cn')), min_size=1, max_size=30
).filter(lambda s: s.strip() and s.strip().isprintable())


@settings(max_examples=200, deadline=None)
@given(st.lists(names, min_size=1, max_size=8, unique_by=lambda s: s.strip().casefold()),
       st.lists(st.integers(0, 2**32 - 1), min_size=8, max_size=8, unique=True))
def test_description_field_round_trips_and_never_holds_asap_words(entries, values):
    table = ClassTable(tuple(
        LabelClass(value, name, default_colour(value)) for value, name in zip(values[: len(entries)], entries, strict=True)
    ))
    field = table.to_description_field()
    assert ClassTable.from_description_field(field) == table
    assert ClassTable.from_json(table.to_json()) == table
    assert all(' ' <= ch <= '~' for ch in field)
    for word in ('xml', 'dicom'):
        assert word not in field.lower()
    assert ';' not in field


def _finalized_with_classes(tmp_path: Path, classes: str) -> tuple[Path, numpy.ndarray, ClassTable]:
    path = tmp_path / 'mask.h5'
    spec = tw.CanvasSpec(width=700, height=500, spacing_x=0.5, tile_size=256, classes=classes)
    tw.create_staging(path, spec)
    labels = numpy.zeros((500, 700), numpy.uint8)
    labels[50:300, 100:600] = 1
    labels[200:450, 300:500] = 2
    with tw.open_staging(path) as writer:
        writer.write(0, 0, labels)
    out = tmp_path / 'mask.tif'
    report = tw.finalize(path, out)
    assert report.unknown_labels == {}
    return out, labels, read_canvas(path).spec.classes


def test_staging_and_tiff_carry_the_table(tmp_path: Path):
    nasty = '0=background,1=tumour (XML-ish; DICOM=no):#e41a1c,2=stróma 50%'
    out, labels, stored = _finalized_with_classes(tmp_path, nasty)
    assert stored == parse_classes(nasty)
    assert stored.name_of(1) == 'tumour (XML-ish; DICOM=no)' and stored.name_of(2) == 'stróma 50%'
    with tifffile.TiffFile(out) as tif:
        description = tif.pages[0].description
        levels = len(tif.pages)
        numpy.testing.assert_array_equal(tif.pages[0].asarray(), labels)
    assert classes_from_provenance(parse_description(description)) == stored
    for word in ('xml', 'XML', 'DICOM'):
        assert word not in description
    with openslide.OpenSlide(str(out)) as slide:
        assert slide.level_count == levels
        assert slide.properties['tiff.ImageDescription'] == description


@pytest.mark.skipif(asap_unavailable() is not None, reason=str(asap_unavailable()))
def test_asap_own_reader_opens_a_file_whose_class_names_say_xml(tmp_path: Path):
    out, _, _ = _finalized_with_classes(tmp_path, '0=bg,1=xml,2=DICOM,3=XmL files')
    assert asap_opens(out)


def test_old_staging_units_without_a_table_still_read(tmp_path: Path):
    import h5py

    path = tmp_path / 'old.h5'
    tw.create_staging(path, tw.CanvasSpec(width=20, height=20))
    with h5py.File(path, 'r+') as h5:
        del h5['canvas'].attrs['classes']  # what tifwriter before class tables wrote
    assert read_canvas(path).spec.classes is None


# -- the CLI ---------------------------------------------------------------------------------
def test_init_classes_then_info(tmp_path: Path, run_cli):
    staging = tmp_path / 'm.h5'
    result = run_cli('init', staging, '--width', '100', '--height', '80', '--classes', 'background,tumour:#e41a1c')
    assert result.exit_code == 0, result.output
    assert '2 classes' in result.stdout
    assert read_canvas(staging).spec.classes.name_of(1) == 'tumour'
    line = 'classes       0 background (#282828), 1 tumour (#e41a1c)'
    assert line in run_cli('info', staging).stdout.splitlines()
    assert run_cli('finalize', staging, tmp_path / 'm.tif').exit_code == 0
    assert line in run_cli('info', tmp_path / 'm.tif').stdout.splitlines()


def test_init_bad_classes_one_line_and_nothing_created(tmp_path: Path, run_cli):
    staging = tmp_path / 'm.h5'
    result = run_cli('init', staging, '--width', '100', '--height', '80', '--classes', '0=a,256=b')
    line = assert_clean_failure(result, 2)
    assert '256' in line
    assert not staging.exists()


def test_finalize_classes_names_an_unnamed_mask(tmp_path: Path, run_cli):
    spec = tw.CanvasSpec(width=64, height=64)
    out = tmp_path / 'named.tif'
    tw.finalize(ArraySource(spec, numpy.ones((64, 64), numpy.uint8)), out, classes='bg,cells')
    with tifffile.TiffFile(out) as tif:
        table = classes_from_provenance(parse_description(tif.pages[0].description))
    assert table.name_of(1) == 'cells'
    assert math.isclose(len(table), 2)
