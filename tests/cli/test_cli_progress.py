"""The CLI's progress bars (tifwriter_cli.cli.progress): drawn from the
library's progress(done, total) callback on a terminal, never with -q."""

from __future__ import annotations

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.cli import progress as cli_progress
from tifwriter_cli.cli.options import is_quiet


@pytest.fixture
def on_a_terminal(monkeypatch):
    """stderr as a terminal (CliRunner's is not): the -q check stays the real one."""
    monkeypatch.setattr(cli_progress, 'show_progress', lambda ctx: not is_quiet(ctx))


def staged(make_staging):
    staging = make_staging(width=1500, height=700, tile_size=128, kind='labels')
    with tw.open_staging(staging) as writer:
        writer.write(100, 50, numpy.arange(300 * 400, dtype=numpy.uint8).reshape(300, 400) % 7)
    return staging


def test_finalize_draws_a_tile_bar_on_a_terminal(tmp_path, make_staging, run_cli, on_a_terminal):
    result = run_cli('finalize', staged(make_staging), tmp_path / 'm.tif')
    assert result.exit_code == 0, result.output
    # A bar over every tile of both levels (12 x 6 + 6 x 3 = 90); tqdm
    # redraws at most every 0.1 s and erases it at the end (leave=False).
    assert 'finalize:' in result.stderr and '/90 ' in result.stderr and 'tile/s' in result.stderr, result.stderr
    assert result.stdout.startswith('wrote ')


def test_finalize_quiet_draws_nothing(tmp_path, make_staging, run_cli, on_a_terminal):
    result = run_cli('-q', 'finalize', staged(make_staging), tmp_path / 'm.tif')
    assert result.exit_code == 0, result.output
    assert result.stderr == ''


def test_finalize_off_a_terminal_draws_nothing(tmp_path, make_staging, run_cli):
    result = run_cli('finalize', staged(make_staging), tmp_path / 'm.tif')
    assert result.exit_code == 0, result.output
    assert 'tile/s' not in result.stderr and '%' not in result.stderr


def test_ingest_draws_a_file_bar_on_a_terminal(tmp_path, make_staging, run_cli, on_a_terminal):
    staging = make_staging(width=512, height=512, kind='labels')
    preds = tmp_path / 'preds'
    preds.mkdir()
    for x in (0, 128, 256):
        numpy.save(preds / f'tile_{x}_0.npy', numpy.full((64, 64), 1, numpy.uint8))
    result = run_cli('ingest-npy-dir', staging, preds)
    assert result.exit_code == 0, result.output
    assert '/3 ' in result.stderr and 'file/s' in result.stderr, result.stderr
    quiet = run_cli('-q', 'ingest-npy-dir', staging, preds)
    assert quiet.exit_code == 0 and quiet.stderr == '', quiet.stderr
