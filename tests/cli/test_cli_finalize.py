"""``tifwriter finalize``: summary line, options, clean refusals."""

from __future__ import annotations

import sys

import numpy
import tifffile

import tifwriter_cli as tw

from tests.helpers.cli_checks import assert_clean_failure


def staged_labels(make_staging, **fields):
    fields.setdefault('kind', 'labels')
    staging = make_staging(width=1500, height=700, spacing_x=0.5, tile_size=256, **fields)
    with tw.open_staging(staging) as writer:
        writer.write(100, 50, numpy.full((300, 400), 3, numpy.uint8))
        writer.write(900, 400, numpy.arange(200 * 300, dtype=numpy.uint8).reshape(200, 300) % 5)
    with tw.read_staging(staging) as snapshot:
        canvas = snapshot.read_canvas()
    return staging, canvas


def test_success_summary_and_pixels(tmp_path, make_staging, run_cli):
    staging, canvas = staged_labels(make_staging)
    out = tmp_path / 'mask.tif'
    result = run_cli('finalize', staging, out, '--workers', '2')
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f'wrote {out}: 1500 x 700 px, 2 level(s) down to 750 x 350, lzw, ')
    assert 'tiles' in lines[0] and lines[0].endswith(' s')
    assert result.stderr.strip() == (
        'tifwriter: took 2 patch(es) from the 1 fragment(s) published when finalize '
        'started (later ones are not included)'
    )
    with tifffile.TiffFile(out) as tif:
        assert len(tif.pages) == 2
        numpy.testing.assert_array_equal(tif.pages[0].asarray(), canvas[..., 0])


def test_options_reach_the_file(tmp_path, make_staging, run_cli):
    staging, canvas = staged_labels(make_staging)
    out = tmp_path / 'd.tif'
    result = run_cli('finalize', staging, out, '--compression', 'DEFLATE', '--resampling', 'max')
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(out) as tif:
        assert int(tif.pages[0].compression) == 32946
        assert 'resampling=max' in tif.pages[0].description
        level1 = tif.pages[1].asarray()
    c = canvas[..., 0]  # 1500 x 700: even sides, so every 2x2 block is whole
    expected = numpy.maximum.reduce([c[0::2, 0::2], c[0::2, 1::2], c[1::2, 0::2], c[1::2, 1::2]])
    numpy.testing.assert_array_equal(level1, expected)


def test_bad_options_exit_2_one_line(tmp_path, make_staging, run_cli):
    staging, _ = staged_labels(make_staging)
    out = tmp_path / 'x.tif'
    for args, text in [
        (('--compression', 'webp'), 'compression must be one of none, lzw, jpeg, deflate, zstd'),
        (('--resampling', 'median'), 'resampling must be one of nearest, mode, mean, max, min'),
        (('--quality', '0'), 'quality must be an integer from 1 to 100'),
        (('--engine', 'gdal'), 'engine must be one of native, asap'),
    ]:
        line = assert_clean_failure(run_cli('finalize', staging, out, *args), 2)
        assert text in line
        assert not out.exists()


def test_jpeg_on_labels_refused_unless_forced(tmp_path, make_staging, run_cli):
    staging, _ = staged_labels(make_staging)
    out = tmp_path / 'j.tif'
    line = assert_clean_failure(run_cli('finalize', staging, out, '--compression', 'jpeg'), 2)
    assert 'jpeg' in line and '--force' in line
    assert not out.exists()
    result = run_cli('finalize', staging, out, '--compression', 'jpeg', '--force')
    assert result.exit_code == 0, result.output
    assert 'tifwriter: warning: jpeg on labels (forced)' in result.stderr
    with tifffile.TiffFile(out) as tif:
        assert int(tif.pages[0].compression) == 7


def test_missing_staging_exit_1_one_line(tmp_path, run_cli):
    line = assert_clean_failure(run_cli('finalize', tmp_path / 'nope.h5', tmp_path / 'o.tif'), 1)
    assert 'nope.h5 does not exist' in line
    assert not (tmp_path / 'o.tif').exists()


def test_not_a_staging_file(tmp_path, run_cli):
    bogus = tmp_path / 'bogus.h5'
    bogus.write_text('hello')
    line = assert_clean_failure(run_cli('finalize', bogus, tmp_path / 'o.tif'), 1)
    assert 'not a tifwriter staging file' in line


def test_existing_output_and_overwrite(tmp_path, make_staging, run_cli):
    staging, _ = staged_labels(make_staging)
    out = tmp_path / 'o.tif'
    out.write_text('keep me')
    line = assert_clean_failure(run_cli('finalize', staging, out), 1)
    assert 'exists' in line and '--overwrite' in line
    assert out.read_text() == 'keep me'
    # --overwrite replaces only a TIFF tifwriter wrote, never this file.
    line = assert_clean_failure(run_cli('finalize', staging, out, '--overwrite'), 1)
    assert 'was not made by tifwriter' in line
    assert out.read_text() == 'keep me'
    out.unlink()
    assert run_cli('finalize', staging, out).exit_code == 0
    result = run_cli('finalize', staging, out, '--overwrite')
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b'II+\x00'


def test_output_directory_missing(tmp_path, make_staging, run_cli):
    staging, _ = staged_labels(make_staging)
    line = assert_clean_failure(run_cli('finalize', staging, tmp_path / 'no' / 'o.tif'), 2)
    assert 'does not exist' in line


def test_asap_engine_unavailable(tmp_path, make_staging, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, 'multiresolutionimageinterface', None)
    staging, _ = staged_labels(make_staging)
    line = assert_clean_failure(run_cli('finalize', staging, tmp_path / 'a.tif', '--engine', 'asap'), 1)
    assert 'multiresolutionimageinterface' in line
    assert not (tmp_path / 'a.tif').exists()


def test_reader_warnings_on_stderr(tmp_path, make_staging, run_cli):
    staging = make_staging(width=300, height=200, dtype='float32', kind='probability')
    result = run_cli('finalize', staging, tmp_path / 'f.tif')
    assert result.exit_code == 0, result.output
    assert 'tifwriter: warning: OpenSlide 4 will not read this file correctly: float32' in result.stderr
    result = run_cli('-q', 'finalize', staging, tmp_path / 'g.tif')
    assert result.exit_code == 0
    assert 'warning' not in result.stderr


def test_env_var_option(tmp_path, make_staging, run_cli):
    staging, _ = staged_labels(make_staging)
    out = tmp_path / 'z.tif'
    result = run_cli('finalize', staging, out, env={'TIFWRITER_FINALIZE_COMPRESSION': 'zstd'})
    assert result.exit_code == 0, result.output
    with tifffile.TiffFile(out) as tif:
        assert int(tif.pages[0].compression) == 50000


def test_sigterm_leaves_no_output_and_exits_143(tmp_path):
    """A scheduler's time limit (SIGTERM) mid-finalize leaves nothing at OUT.

    (The canvas is large enough that the signal lands mid-write even on a
    loaded machine: one that arrives after the rename would rightly leave OUT.)"""
    import signal
    import subprocess
    import sys
    import time

    import tifwriter_cli as tw

    staging = tmp_path / 'big.h5'
    tw.create_staging(staging, tw.CanvasSpec(width=9000, height=9000))
    rng = numpy.random.default_rng(0)
    with tw.open_staging(staging) as writer:
        for y in range(0, 9000, 1000):
            writer.write(0, y, rng.integers(0, 4, (1000, 9000), dtype=numpy.uint8))
    out = tmp_path / 'big.tif'
    process = subprocess.Popen(
        [sys.executable, '-m', 'tifwriter_cli', 'finalize', str(staging), str(out), '--workers', '1'],
        stderr=subprocess.PIPE, text=True,
    )
    # Wait until the temp output exists: finalize is then mid-write.
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob('.big.tif.*.tmp')):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    assert 'Traceback' not in stderr
    assert stderr.strip().splitlines()[-1].startswith('tifwriter: terminated (SIGTERM)')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['big.h5', 'big.h5.fragments']


def test_quiet_prints_no_snapshot_line(tmp_path, make_staging, run_cli):
    staging, _ = staged_labels(make_staging)
    result = run_cli('-q', 'finalize', staging, tmp_path / 'q.tif')
    assert result.exit_code == 0
    assert result.stderr == ''
    assert result.stdout.startswith('wrote ')


def test_flavor_ome_and_its_refusals(tmp_path, make_staging, run_cli):
    staging, canvas = staged_labels(make_staging)
    out = tmp_path / 'mask.ome.tif'
    result = run_cli('finalize', staging, out, '--flavor', 'ome', '--channel-names', 'tissue class')
    assert result.exit_code == 0, result.output
    assert 'ASAP and OpenSlide do not read this file' in result.stderr
    with tifffile.TiffFile(out) as tif:
        assert tif.is_ome and len(tif.pages) == 1
        assert len(tif.pages[0].subifds) == 1
        assert 'Name="tissue class"' in tif.pages[0].description
        assert 'PhysicalSizeX="0.5"' in tif.pages[0].description
        levels = tif.series[0].levels
        numpy.testing.assert_array_equal(levels[0].asarray(), canvas[..., 0])
        assert levels[1].shape == (350, 750)
    info = run_cli('info', out)
    assert info.exit_code == 0, info.output
    assert 'opens right in large_image, Bio-Formats, QuPath' in info.stdout
    # Refused before any work, nothing written:
    for args, message in (
        (('--channel-names', 'a'), 'with --flavor ome only'),
        (('--flavor', 'ome', '--channel-names', 'a,b'), '2 channel name(s) given for 1 channel(s)'),
        (('--flavor', 'ome', '--channel-names', 'caf\u00e9'), 'ASCII'),
    ):
        bad = tmp_path / 'bad.tif'
        line = assert_clean_failure(run_cli('finalize', staging, bad, *args), 2)
        assert message in line, line
        assert not bad.exists()
