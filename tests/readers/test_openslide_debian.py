"""Every level of our TIFFs through Debian 12's OpenSlide 3.4.1 (libopenslide0).

That old pair (OpenSlide 3.4.1 + libtiff 4.5) is the strictest reader we
know: it fails on TileByteCount 0, and COMPAT.md reports it reading levels
whose tile is larger than the level as garbage (our plan never writes such
a level except for a canvas under 16 px, which indeed reads wrong here, as
``info`` reports). openslide-bin (4.x) is installed in the test venv,
so the check runs in a separate cached venv holding openslide-python and
numpy but not openslide-bin (~/.cache/tifwriter-tests/), driven through a
subprocess. Skipped only when the library file is absent
(``apt-get install libopenslide0`` provides it; .ci/run installs it).
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy
import pytest

from tifwriter_cli.finalization import finalize
from tifwriter_cli.sources import ArraySource
from tifwriter_cli.spec import CanvasSpec
from tifwriter_cli.tiff.inspect import inspect_tiff

from tests.helpers.tiff_reference import expected_levels, model_pyramid, openslide_expected_rgba, psnr

LIBRARY = sorted(glob.glob('/usr/lib/*/libopenslide.so.0'))

pytestmark = pytest.mark.skipif(
    not LIBRARY, reason="Debian's libopenslide.so.0 (OpenSlide 3.4.1) is not installed"
)

CACHE = Path(os.environ.get('XDG_CACHE_HOME', Path.home() / '.cache')) / 'tifwriter-tests'
VENV = CACHE / 'openslide-debian-venv'

READER = textwrap.dedent(
    """
    import json, sys
    import numpy, openslide
    jobs = json.load(open(sys.argv[1]))
    result = {'version': openslide.__library_version__, 'files': []}
    for job in jobs:
        with openslide.OpenSlide(job['path']) as slide:
            dims = [list(d) for d in slide.level_dimensions]
            for level, size in enumerate(slide.level_dimensions):
                rgba = numpy.asarray(slide.read_region((0, 0), level, size))
                numpy.save(f"{job['prefix']}{level}.npy", rgba)
        result['files'].append({'path': job['path'], 'levels': dims})
    print(json.dumps(result))
    """
)


@pytest.fixture(scope='session')
def debian_python() -> Path:
    """Python of a venv whose openslide-python loads Debian's libopenslide.so.0."""
    python = VENV / 'bin' / 'python'
    marker = VENV / '.tifwriter-ready'
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / '.lock', 'w') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one creator at a time
        if not marker.exists():
            subprocess.run([sys.executable, '-m', 'venv', '--clear', str(VENV)], check=True)
            subprocess.run(
                [str(python), '-m', 'pip', 'install', '-q', 'openslide-python', 'numpy'],
                check=True,
                capture_output=True,
            )
            marker.write_text('ok\n')
    version = subprocess.run(
        [str(python), '-c', 'import openslide; print(openslide.__library_version__)'],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert version.startswith('3.'), f'the cached venv loads OpenSlide {version}, not Debian 3.4'
    return python


def read_with_debian(python: Path, paths: list[Path], work: Path) -> tuple[str, list[list[numpy.ndarray]]]:
    jobs = [{'path': str(p), 'prefix': str(work / f'{p.stem}_level')} for p in paths]
    (work / 'jobs.json').write_text(json.dumps(jobs))
    (work / 'reader.py').write_text(READER)
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    done = subprocess.run(
        [str(python), str(work / 'reader.py'), str(work / 'jobs.json')],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    result = json.loads(done.stdout)
    levels = []
    for job, info in zip(jobs, result['files'], strict=True):
        levels.append([numpy.load(f"{job['prefix']}{n}.npy") for n in range(len(info['levels']))])
    return result['version'], levels


def test_every_level_reads_right_in_openslide_3_4(tmp_path: Path, debian_python: Path) -> None:
    rng = numpy.random.default_rng(11)
    cases: list[tuple[str, CanvasSpec, numpy.ndarray, str, str | None]] = []

    # Labels: partial tiles on both edges; one tile size (320) fitting every level.
    labels = numpy.zeros((1300, 2100, 1), numpy.uint8)
    for _ in range(30):
        y, x = rng.integers(0, 1300), rng.integers(0, 2100)
        labels[y : y + rng.integers(20, 500), x : x + rng.integers(20, 500)] = rng.integers(1, 7)
    labels[rng.random(labels.shape) < 0.002] = 9
    cases.append(('labels', CanvasSpec(width=2100, height=1300, kind='labels', spacing_x=0.5),
                  labels, 'mode', None))
    # A canvas smaller than one tile: level 0 gets a 64 tile.
    tiny = rng.integers(0, 4, (70, 100, 1)).astype(numpy.uint8)
    cases.append(('tiny', CanvasSpec(width=100, height=70, kind='labels'), tiny, 'mode', None))
    # Under 16 px a side: the one layout where a (16-px) tile exceeds the
    # level. OpenSlide 3.4.1 reads it as garbage (COMPAT.md); info says so.
    speck = rng.integers(0, 4, (10, 10, 1)).astype(numpy.uint8)
    cases.append(('speck', CanvasSpec(width=10, height=10, kind='labels'), speck, 'mode', None))
    # 16-bit grey with partial edge tiles (which OpenSlide 4.0.1 misreads).
    grey16 = rng.integers(0, 65536, (1100, 1300, 1)).astype(numpy.uint16)
    cases.append(('grey16', CanvasSpec(width=1300, height=1100, dtype='uint16', tile_size=256,
                                       kind='probability'), grey16, 'mean', None))
    # RGB JPEG (YCbCr 4:2:0).
    yy, xx = numpy.mgrid[0:900, 0:1500]
    rgb = numpy.stack([128 + 100 * numpy.sin(xx / 40), 128 + 100 * numpy.cos(yy / 30),
                       128 + 60 * numpy.sin((xx + yy) / 50)], axis=-1).astype(numpy.uint8)
    cases.append(('rgb', CanvasSpec(width=1500, height=900, channels=3, tile_size=256, kind='image'),
                  rgb, 'mean', 'jpeg'))

    paths = []
    for name, spec, canvas, method, compression in cases:
        path = tmp_path / f'{name}.tif'
        finalize(ArraySource(spec, canvas), path, compression=compression, resampling=method)
        paths.append(path)
    version, read = read_with_debian(debian_python, paths, tmp_path)
    assert version.startswith('3.4')
    for (name, spec, canvas, method, compression), levels in zip(cases, read, strict=True):
        reference = model_pyramid(canvas, method, spec.tile_size)
        assert len(levels) == len(expected_levels(spec.width, spec.height, spec.tile_size)), name
        readable = inspect_tiff(tmp_path / f'{name}.tif')['readers']['openslide_3.4']['ok']
        assert readable == (name != 'speck'), name
        if not readable:
            assert [level.shape[:2] for level in levels] == [want.shape[:2] for want in reference]
            continue
        for number, (got, want) in enumerate(zip(levels, reference, strict=True)):
            if compression == 'jpeg':
                assert psnr(got[..., :3], want) >= 40, (name, number)
            else:
                numpy.testing.assert_array_equal(
                    got, openslide_expected_rgba(want), err_msg=f'{name} level {number}'
                )
