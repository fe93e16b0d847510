"""Tile-score tables (CSV, Parquet, HDF5) staged as canvas pixels: the
library (tifwriter_cli.ingest.tile_scores) and ``tifwriter ingest-table``."""

from __future__ import annotations

import csv
import os

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.errors import InvalidOptionError, SourceFileError
from tifwriter_cli.ingest.tile_scores import ingest_table

from ..helpers.cli_checks import assert_clean_failure


def write_csv(path, header, rows):
    with open(path, 'w', newline='') as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def canvas_of(staging):
    with tw.read_staging(staging) as snapshot:
        return snapshot.read_canvas()


def model_heatmap(spec, rows, *, side, downsample=1, coords='canvas'):
    """The canvas the rows must give: each tile painted, no overlaps (numpy, no tifwriter)."""
    canvas = numpy.full((spec.height, spec.width, spec.channels), spec.fill, spec.numpy_dtype)
    for x, y, *values in rows:
        if coords == 'slide':
            x, y = x // downsample, y // downsample
        x0, y0 = max(x, 0), max(y, 0)
        x1, y1 = min(x + side, spec.width), min(y + side, spec.height)
        if x1 > x0 and y1 > y0:
            canvas[y0:y1, x0:x1] = values
    return canvas


def tissue_rows(rng, *, grid, step, holes=0.3, channels=1):
    rows = []
    for gy in range(grid[1]):
        for gx in range(grid[0]):
            if rng.random() >= holes:
                rows.append((gx * step, gy * step, *(int(v) for v in rng.integers(1, 255, channels))))
    return rows


@pytest.mark.parametrize(('downsample', 'side'), [(256, 1), (64, 4), (1, 256)])
def test_csv_rows_paint_their_tiles_at_the_canvas_downsample(tmp_path, make_staging, downsample, side) -> None:
    # Slide coordinates of 256-px tiles (a CLAM-like grid with holes where
    # there is no tissue): one canvas pixel per row at downsample 256, a
    # 4 x 4 block at 64, the whole 256 x 256 tile at full resolution.
    rng = numpy.random.default_rng(1)
    slide_w, slide_h = 256 * 12, 256 * 9
    staging = make_staging(width=slide_w // downsample, height=slide_h // downsample, slide_downsample=downsample)
    rows = tissue_rows(rng, grid=(12, 9), step=256)
    table = write_csv(tmp_path / 'scores.csv', ['x', 'y', 'score'], rows)
    report = ingest_table(staging, table, x='x', y='y', values=['score'], patch_size=256, coords='slide')
    assert report.status == 'staged' and report.rows == len(rows) and not report.overlapping
    assert report.patches < len(rows) / 2  # runs of tiles, not a patch per row
    spec = tw.read_staging(staging).spec
    expected = model_heatmap(spec, rows, side=side, downsample=downsample, coords='slide')
    numpy.testing.assert_array_equal(canvas_of(staging), expected)


def test_overlapping_tiles_are_merged_by_the_canvas_rule(tmp_path, make_staging) -> None:
    # A stride of half a tile: each tile its own patch, averaged under mean.
    staging = make_staging(width=40, height=10, merge='mean')
    table = write_csv(tmp_path / 't.csv', ['x', 'y', 'v'], [(0, 0, 10), (5, 0, 20), (10, 0, 40)])
    report = ingest_table(staging, table, x='x', y='y', values=['v'], patch_size=10)
    assert report.overlapping and report.patches == 3
    row = canvas_of(staging)[0, :, 0]
    assert row[:5].tolist() == [10] * 5
    assert row[5:10].tolist() == [15] * 5
    assert row[10:15].tolist() == [30] * 5
    assert row[15:20].tolist() == [40] * 5
    assert row[20:].tolist() == [0] * 20


def test_multi_channel_values_and_tsv(tmp_path, make_staging) -> None:
    staging = make_staging(width=4, height=4, channels=2)
    table = tmp_path / 't.tsv'
    table.write_text('y\tx\ttumor\tstroma\n0\t0\t1\t2\n2\t2\t3\t4\n')
    ingest_table(staging, table, x='x', y='y', values=['tumor', 'stroma'], patch_size=2)
    canvas = canvas_of(staging)
    assert canvas[0, 0].tolist() == [1, 2] and canvas[3, 3].tolist() == [3, 4] and canvas[0, 3].tolist() == [0, 0]


def test_rerun_is_idempotent_and_a_corrected_table_replaces_every_part(tmp_path, make_staging) -> None:
    staging = make_staging(width=64, height=64, merge='mean')
    rng = numpy.random.default_rng(2)
    rows = tissue_rows(rng, grid=(8, 8), step=8)
    table = write_csv(tmp_path / 's.csv', ['x', 'y', 's'], rows)
    options = {'x': 'x', 'y': 'y', 'values': ['s'], 'patch_size': 8}
    first = ingest_table(staging, table, **options)
    assert ingest_table(staging, table, **options).status == 'already'
    spec = tw.read_staging(staging).spec
    numpy.testing.assert_array_equal(canvas_of(staging), model_heatmap(spec, rows, side=8))
    # A corrected run: fewer tiles, other scores. Under mean, nothing of the
    # first run may stay averaged in; left-over parts are withdrawn.
    corrected = [(x, y, min(v + 1, 255)) for x, y, v in rows[: len(rows) // 3]]
    write_csv(table, ['x', 'y', 's'], corrected)
    os.utime(table, ns=(1, 1))  # another mtime, whatever the clock's resolution
    second = ingest_table(staging, table, **options)
    assert second.status == 'replaced'
    assert second.withdrawn_parts == max(0, first.patches - second.patches)
    numpy.testing.assert_array_equal(canvas_of(staging), model_heatmap(spec, corrected, side=8))
    assert ingest_table(staging, table, **options).status == 'already'
    # Other options (another value column) stage it again too.
    assert ingest_table(staging, table, **{**options, 'values': ['x']}).status == 'replaced'


@pytest.mark.parametrize(
    ('text', 'message'),
    [
        ('x,y,s\n0,0,1\n8,0,abc\n', "line 3: column 's' is 'abc', not a number"),
        ('x,y,s\n0,0,1\n8,0,\n', "line 3: column 's' is empty"),
        ('x,y,s\n0,0,1\n\n8.5,0,2\n', 'line 4: x = 8.5 is not a whole pixel position'),
        ('x,y,s\n0,0,1\n8,0,300\n', 'line 3: value 300: values 300.0..300.0 do not fit uint8'),
        ('x,y,s\n0,0,0.5\n', "line 2: value 0.5: holds non-integer float64 values"),
    ],
)
def test_a_bad_row_is_named_and_nothing_is_staged(tmp_path, make_staging, text, message) -> None:
    staging = make_staging(width=64, height=64)
    table = tmp_path / 'bad.csv'
    table.write_text(text)
    with pytest.raises(SourceFileError) as caught:
        ingest_table(staging, table, x='x', y='y', values=['s'], patch_size=8)
    assert message in str(caught.value) and str(table) in str(caught.value)
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 0 and not snapshot.fragment_paths


def test_options_that_cannot_work_are_refused(tmp_path, make_staging) -> None:
    staging = make_staging(width=64, height=64, slide_downsample=100)
    table = write_csv(tmp_path / 't.csv', ['x', 'y', 's'], [(0, 0, 1)])
    with pytest.raises(InvalidOptionError, match="no column 'score'; the header has 'x', 'y', 's'"):
        ingest_table(staging, table, x='x', y='y', values=['score'], patch_size=8)
    with pytest.raises(InvalidOptionError, match='2.56 canvas px at the canvas downsample 100'):
        ingest_table(staging, table, x='x', y='y', values=['s'], patch_size=256, coords='slide')
    with pytest.raises(InvalidOptionError, match='2 value column'):
        ingest_table(staging, table, x='x', y='y', values=['s', 's'], patch_size=8)
    with pytest.raises(InvalidOptionError, match='name the x and y columns'):
        ingest_table(staging, table, values=['s'], patch_size=8)


def test_parquet_table(tmp_path, make_staging) -> None:
    import pyarrow  # the test extra installs the tables extra
    from pyarrow import parquet

    staging = make_staging(width=10, height=10, dtype='float32', kind='probability')
    table = tmp_path / 't.parquet'
    parquet.write_table(pyarrow.table({'col': [0, 5], 'row': [0, 5], 'p': [0.25, 0.75]}), table)
    ingest_table(staging, table, x='col', y='row', values=['p'], patch_size=5)
    canvas = canvas_of(staging)[..., 0]
    assert canvas[0, 0] == 0.25 and canvas[9, 9] == 0.75 and canvas[0, 9] == 0


def write_clam_h5(path, coords, scores, *, patch_size=256):
    """Like CLAM's heatmap files: coords (N, 2) int64 with patch attributes, scores (N, 1)."""
    import h5py

    with h5py.File(path, 'w') as h5:
        dataset = h5.create_dataset('coords', data=numpy.asarray(coords, numpy.int64))
        dataset.attrs['patch_size'] = patch_size
        dataset.attrs['patch_level'] = 0
        h5.create_dataset('attention_scores', data=numpy.asarray(scores, numpy.float32).reshape(-1, 1))
    return path


def test_clam_h5_gives_the_heatmap_at_the_right_slide_position(tmp_path, run_cli) -> None:
    # A slide, a heatmap canvas over it at downsample 64 (each 256-px tile
    # a 4 x 4 block), CLAM's h5 ingested with --coords slide, finalized:
    # the TIFF read back holds each score over its tile's slide area.
    import tifffile

    from ..helpers.slides import write_pyramid

    slide = write_pyramid(tmp_path / 'slide.tif', numpy.zeros((1536, 2048, 3), numpy.uint8))
    staging, out = tmp_path / 'heat.h5', tmp_path / 'heat.tif'
    result = run_cli('init', staging, '--like', slide, '--downsample', '64', '--kind', 'probability', '--dtype', 'float32')
    assert result.exit_code == 0, result.output
    rng = numpy.random.default_rng(5)
    coords = [(x, y) for y in range(0, 1536, 256) for x in range(0, 2048, 256) if rng.random() < 0.7]
    scores = rng.random(len(coords)).astype(numpy.float32)
    scores_h5 = write_clam_h5(tmp_path / 'slide_scores.h5', coords, scores)
    result = run_cli('ingest-table', staging, scores_h5, '--value', 'attention_scores', '--patch-size', '256', '--coords', 'slide')
    assert result.exit_code == 0, result.output
    assert f'{len(coords)} row(s) staged' in result.output
    assert run_cli('finalize', staging, out).exit_code == 0
    with tifffile.TiffFile(out) as tif:
        heat = tif.pages[0].asarray()
        resolution = tif.pages[0].tags['XResolution'].value
    assert heat.shape[:2] == (1536 // 64, 2048 // 64)
    # 1 heatmap px = 64 slide px of 0.25 um: 16 um (resolution in px/cm).
    assert 1e4 / (resolution[0] / resolution[1]) == pytest.approx(0.25 * 64)
    expected = numpy.zeros((24, 32), numpy.float32)
    for (x, y), score in zip(coords, scores, strict=True):
        expected[y // 64 : y // 64 + 4, x // 64 : x // 64 + 4] = score
    numpy.testing.assert_array_equal(heat.reshape(24, 32), expected)


def test_cli_ingest_table_errors_are_one_line(tmp_path, make_staging, run_cli) -> None:
    staging = make_staging(width=64, height=64)
    table = tmp_path / 'bad.csv'
    table.write_text('x,y,s\n0,0,1\n8,0,oops\n')
    line = assert_clean_failure(run_cli('ingest-table', staging, table, '--x', 'x', '--y', 'y', '--value', 's', '--patch-size', '8'), 1)
    assert 'line 3' in line
    line = assert_clean_failure(run_cli('ingest-table', staging, table, '--x', 'x', '--y', 'nope', '--value', 's', '--patch-size', '8'), 2)
    assert "no column 'nope'" in line
    table.write_text('x,y,s\n0,0,1\n')
    result = run_cli('ingest-table', staging, table, '--x', 'x', '--y', 'y', '--value', 's', '--patch-size', '8')
    assert result.exit_code == 0 and '1 row(s) staged as 1 patch(es)' in result.output
    result = run_cli('ingest-table', staging, table, '--x', 'x', '--y', 'y', '--value', 's', '--patch-size', '8')
    assert result.exit_code == 0 and 'already staged' in result.output


def test_cli_rows_mostly_outside_exit_1_with_the_likely_cause(tmp_path, make_staging, run_cli) -> None:
    # Slide coordinates given as canvas ones on a canvas at downsample 16.
    staging = make_staging(width=100, height=100, slide_downsample=16)
    table = write_csv(tmp_path / 't.csv', ['x', 'y', 's'], [(x, 512, 1) for x in range(0, 1600, 160)])
    result = run_cli('ingest-table', staging, table, '--x', 'x', '--y', 'y', '--value', 's', '--patch-size', '160')
    line = assert_clean_failure(result, 1)
    assert '10 of 10 row(s) fell wholly outside the canvas' in line and 'try --coords slide' in line
    result = run_cli('ingest-table', staging, table, '--x', 'x', '--y', 'y', '--value', 's', '--patch-size', '160', '--coords', 'slide')
    assert result.exit_code == 0, result.output
    assert canvas_of(staging)[32, ::10, 0].tolist() == [1] * 10


def test_clam_h5_patch_size_defaults_to_what_it_records(tmp_path, make_staging) -> None:
    # CLAM records the patch size at its patch level and that level's downsample.
    import h5py

    staging = make_staging(width=8, height=8, dtype='float32', kind='probability', slide_downsample=512)
    table = write_clam_h5(tmp_path / 's.h5', [(0, 0), (1024, 512)], [0.5, 0.25], patch_size=256)
    with h5py.File(table, 'r+') as h5:
        h5['coords'].attrs['patch_level'] = 1
        h5['coords'].attrs['downsample'] = [2.0, 2.0]  # 256 px at level 1 = 512 slide px
    report = ingest_table(staging, table, values=['attention_scores'], coords='slide')
    assert report.rows == 2
    canvas = canvas_of(staging)[..., 0]
    assert canvas[0, 0] == 0.5 and canvas[1, 2] == 0.25 and canvas.sum() == 0.75
    with pytest.raises(InvalidOptionError, match='give the patch size'):
        ingest_table(make_staging(width=8, height=8), write_csv(tmp_path / 't.csv', ['x', 'y', 's'], [(0, 0, 1)]),
                     x='x', y='y', values=['s'], coords='slide')
