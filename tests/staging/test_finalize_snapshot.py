"""finalize reads a snapshot and never modifies the staging unit."""

from __future__ import annotations

import hashlib

import numpy
import tifffile

import tifwriter_cli as tw
from tifwriter_cli.staging.layout import fragments_dir
from tifwriter_cli.staging.reader import StagingSnapshot


def _digest_unit(path):
    """Names and contents of the staging file and its fragments."""
    files = [path] + sorted(fragments_dir(path).iterdir())
    return {f.name: hashlib.sha256(f.read_bytes()).hexdigest() for f in files}


def test_patches_published_during_finalize_are_not_included(make_staging, tmp_path, monkeypatch):
    staging = make_staging(width=64, height=64, spacing_x=1.0)
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.full((32, 32), 1, numpy.uint8))
    before = _digest_unit(staging)

    # (_merge_region: under read_region and read_region_into alike.)
    original = StagingSnapshot._merge_region
    published_meanwhile = []

    def read_region_while_a_writer_publishes(self, *args):
        if not published_meanwhile:
            with tw.open_staging(staging) as late_writer:
                late_writer.write(32, 32, numpy.full((32, 32), 2, numpy.uint8))
            published_meanwhile.append(True)
        return original(self, *args)

    monkeypatch.setattr(StagingSnapshot, '_merge_region', read_region_while_a_writer_publishes)
    out = tmp_path / 'first.tif'
    tw.finalize(staging, out)
    assert published_meanwhile
    level0 = tifffile.imread(out, key=0)
    assert level0[:32, :32].min() == 1 and level0[32:, 32:].max() == 0

    monkeypatch.setattr(StagingSnapshot, '_merge_region', original)
    # finalize changed nothing it read; the late writer only added a fragment.
    after = _digest_unit(staging)
    assert {k: after[k] for k in before} == before and len(after) == len(before) + 1
    tw.finalize(staging, tmp_path / 'second.tif')
    assert tifffile.imread(tmp_path / 'second.tif', key=0)[32:, 32:].min() == 2
