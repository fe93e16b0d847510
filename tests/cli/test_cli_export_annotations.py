"""``tifwriter export-annotations``: the command line, its output guard and its failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.sources import ArraySource

from ..helpers.cli_checks import assert_clean_failure

pytest.importorskip('rasterio.features', reason='the annotations extra is part of [test]')


@pytest.fixture
def mask_tif(tmp_path: Path) -> Path:
    mask = numpy.zeros((300, 400), numpy.uint8)
    mask[20:120, 30:200] = 1
    mask[150:280, 100:380] = 2
    mask[160:170, 110:120] = 0  # a 100 px hole
    mask[5:8, 390:393] = 2  # a 9 px speck
    spec = tw.CanvasSpec(width=400, height=300, spacing_x=0.5, classes='0=background,1=tumour,2=stroma')
    tw.finalize(ArraySource(spec, mask), tmp_path / 'mask.tif')
    return tmp_path / 'mask.tif'


def test_geojson_and_xml_with_a_summary_line(mask_tif: Path, run_cli):
    out = mask_tif.with_name('a.geojson')
    result = run_cli('export-annotations', mask_tif, '-o', out, '--min-area', '50')
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f'wrote {out}: 2 polygon(s) (tumour 1, stroma 1), 1 below --min-area dropped')
    features = json.loads(out.read_text())['features']
    assert [len(f['geometry']['coordinates']) for f in features] == [1, 2]  # the hole kept
    result = run_cli('export-annotations', mask_tif, '-o', mask_tif.with_name('a.xml'), '--min-area', '200')
    assert result.exit_code == 0 and 'asap-xml' in result.stdout
    text = mask_tif.with_name('a.xml').read_text()
    assert 'PartOfGroup="stroma hole"' not in text  # 100 px hole filled at --min-area 200
    result = run_cli('export-annotations', mask_tif, '-o', mask_tif.with_name('x.out'), '--format', 'asap-xml',
                     '--object-type', 'detection', '--skip', 'none')
    assert result.exit_code == 0, result.output
    assert 'background' in result.stdout


def test_existing_output_refused_then_replaced_with_overwrite(mask_tif: Path, run_cli):
    out = mask_tif.with_name('a.geojson')
    assert run_cli('export-annotations', mask_tif, '-o', out).exit_code == 0
    first = out.read_text()
    line = assert_clean_failure(run_cli('export-annotations', mask_tif, '-o', out, '--skip', '0,1'), 1)
    assert 'exists (use --overwrite' in line and out.read_text() == first
    result = run_cli('export-annotations', mask_tif, '-o', out, '--skip', '0,1', '--overwrite')
    assert result.exit_code == 0 and 'tumour' not in out.read_text()


def test_overwrite_never_replaces_someone_elses_file(mask_tif: Path, run_cli):
    for name, text in (('theirs.geojson', '{"type": "FeatureCollection", "features": []}'),
                       ('theirs.xml', '<?xml version="1.0"?>\n<ASAP_Annotations/>')):
        other = mask_tif.with_name(name)
        other.write_text(text)
        line = assert_clean_failure(run_cli('export-annotations', mask_tif, '-o', other, '--overwrite'), 1)
        assert 'not made by tifwriter' in line and other.read_text() == text


def test_interrupted_export_leaves_nothing(mask_tif: Path, run_cli, monkeypatch):
    from tifwriter_cli.annotations import writers

    write = writers.GeoJsonWriter.add_many

    def interrupted(self, entries):
        write(self, entries)  # half of the file is written, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(writers.GeoJsonWriter, 'add_many', interrupted)
    result = run_cli('export-annotations', mask_tif, '-o', mask_tif.with_name('a.geojson'))
    assert result.exit_code == 130
    assert sorted(p.name for p in mask_tif.parent.iterdir()) == ['mask.tif']


@pytest.mark.parametrize('args, code, words', [
    (['missing.tif', '-o', 'a.geojson'], 1, 'does not exist'),
    (['mask.tif', '-o', 'mask.tif', '--format', 'geojson'], 2, 'also an input'),
    (['mask.tif', '-o', 'a.geojson', '--skip', 'one'], 2, '--skip takes label values'),
    (['mask.tif', '-o', 'a.geojson', '--tolerance', '-1'], 2, '--tolerance must be a number >= 0'),
    (['mask.tif', '-o', 'a.geojson', '--classes', '0=a,0=b'], 2, 'given twice'),
])
def test_bad_input_is_one_line_and_writes_nothing(mask_tif: Path, run_cli, monkeypatch, args, code, words):
    monkeypatch.chdir(mask_tif.parent)
    line = assert_clean_failure(run_cli('export-annotations', *args), code)
    assert words in line, line
    assert sorted(p.name for p in mask_tif.parent.iterdir()) == ['mask.tif']
