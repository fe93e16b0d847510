"""``tifwriter info`` on TIFFs: our output passes, rule-breaking files fail with the reason."""

from __future__ import annotations

import json

import numpy
import pytest
import tifffile

from tifwriter_cli.finalization import finalize
from tifwriter_cli.sources import ArraySource
from tifwriter_cli.spec import CanvasSpec

from tests.helpers.cli_checks import assert_clean_failure

LEVEL0 = (numpy.random.default_rng(1).integers(0, 3, (1100, 2100)) * 100).astype(numpy.uint8)


@pytest.fixture(scope='module')
def ours(tmp_path_factory):
    spec = CanvasSpec(width=2100, height=1100, tile_size=256, spacing_x=0.5, kind='labels')
    path = tmp_path_factory.mktemp('info') / 'mask.tif'
    finalize(ArraySource(spec, (LEVEL0 // 100)[:, :, None]), path)
    return path


def tifffile_pyramid(path, **options):
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(LEVEL0, tile=(256, 256), photometric='minisblack', **options)
        options.pop('description', None)
        tif.write(LEVEL0[::2, ::2], tile=(256, 256), subfiletype=1, photometric='minisblack', **options)
    return path


def test_info_on_our_output(ours, run_cli):
    result = run_cli('info', ours)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert 'levels        3' in out
    assert '2100 x 1100' in out and '1050 x 550' in out and '525 x 275' in out
    assert 'spacing       0.5 x 0.5 um/px' in out
    assert 'kind labels' in out and 'resampling mode' in out
    assert 'verdict       ok' in out
    assert result.stderr == ''


def test_info_json_on_our_output(ours, run_cli):
    result = run_cli('info', ours, '--json')
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report['ok'] is True
    assert [(level['width'], level['height']) for level in report['levels']] == [(2100, 1100), (1050, 550), (525, 275)]
    assert report['spacing_um'] == pytest.approx([0.5, 0.5])
    assert report['readers']['asap']['ok'] and report['readers']['openslide_4']['ok']


@pytest.mark.parametrize(
    'name, make, reason',
    [
        ('strips', lambda p: tifffile.imwrite(p, LEVEL0, photometric='minisblack'), 'strips'),
        (
            'subifds',
            lambda p: _subifd_pyramid(p),
            'SubIFD',
        ),
        ('zlib', lambda p: tifffile_pyramid(p, compression='zlib'), 'adobe_deflate (8)'),
        (
            'xml',
            lambda p: tifffile_pyramid(p, compression='lzw', description='<xml/>', metadata=None),
            "ImageDescription contains 'xml'",
        ),
    ],
)
def test_info_on_rule_breaking_tiffs(tmp_path, run_cli, name, make, reason):
    path = tmp_path / f'{name}.tif'
    make(path)
    result = run_cli('info', path)
    assert result.exit_code == 1
    assert 'verdict       NOT OK' in result.stdout
    verdict = result.stdout.split('verdict       NOT OK', 1)[1]
    assert reason in verdict, result.stdout
    assert 'Traceback' not in result.output


def _subifd_pyramid(path):
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        tif.write(LEVEL0, tile=(256, 256), subifds=1, photometric='minisblack')
        tif.write(LEVEL0[::2, ::2], tile=(256, 256), subfiletype=1, photometric='minisblack')


def test_info_on_non_tiff(tmp_path, run_cli):
    path = tmp_path / 'notes.txt'
    path.write_text('not an image')
    line = assert_clean_failure(run_cli('info', path), 1)
    assert 'neither a tifwriter staging file nor a TIFF' in line


def test_info_on_broken_tiff(tmp_path, run_cli):
    path = tmp_path / 'broken.tif'
    path.write_bytes(b'II*\x00' + b'\xff' * 40)
    line = assert_clean_failure(run_cli('info', path), 1)
    assert 'damaged TIFF' in line or 'not a readable TIFF' in line


def test_info_on_truncated_output(ours, tmp_path, run_cli):
    cut = tmp_path / 'cut.tif'
    cut.write_bytes(ours.read_bytes()[:5000])  # the IFDs are at the end: all lost
    line = assert_clean_failure(run_cli('info', cut), 1)
    assert str(cut) in line


def test_verdict_names_exactly_the_readers_that_accept(tmp_path, run_cli):
    # Issue 8's float32 heatmap: OpenSlide FAILS, so the verdict must not
    # name it among the readers that open the file.
    spec = CanvasSpec(width=2100, height=1100, dtype='float32', tile_size=256, spacing_x=0.5,
                      kind='probability')
    heat = numpy.random.default_rng(2).random(spec.shape, dtype=numpy.float32)
    path = tmp_path / 'heat.tif'
    finalize(ArraySource(spec, heat), path)
    result = run_cli('info', path)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    status = {line[:14].strip(): line[14:].strip() for line in lines
              if line[:14].strip() in ('ASAP 2.2', 'OpenSlide 3.4', 'OpenSlide 4', 'large_image',
                                       'Bio-Formats', 'QuPath')}
    assert status == {'ASAP 2.2': 'ok', 'OpenSlide 3.4': 'FAILS', 'OpenSlide 4': 'FAILS',
                      'large_image': 'ok', 'Bio-Formats': 'FAILS', 'QuPath': 'FAILS'}
    verdict = [line for line in lines if line.startswith('verdict')]
    assert verdict == ['verdict       ok: a tiled pyramidal TIFF (wsi); opens right in ASAP 2.2, large_image']
    report = json.loads(run_cli('info', path, '--json').stdout)
    assert report['accepted_by'] == ['ASAP 2.2', 'large_image']
    assert report['accepted_by'] == [t for t, s in status.items() if s == 'ok']
