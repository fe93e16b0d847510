"""Run the recipes of the documentation as a user would, and check what they make.

The shell snippets, job scripts and Makefile marked ``<!-- recipe: NAME -->``
in the README and docs/ (see tests/helpers/doc_snippets.py) are extracted verbatim
and run with bash or make in a temporary directory, with the ``tifwriter``
of this interpreter's environment first on PATH. The inputs (prediction
.npy files, slides) are generated here, and every result is compared with a
numpy reference built from those inputs (tests/helpers/reference.py), level by
level.

SLURM is simulated: ``sbatch`` is a stub that records its arguments and
prints a job id; the test then runs the array script once per task with the
SLURM_ARRAY_* variables a real array job has (all tasks at once, as on a
cluster), then the dependent script.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import numpy
import pytest
import tifffile

import tifwriter_cli

from tests.helpers import doc_snippets
from tests.helpers.reference import ReferenceCanvas
from tests.helpers.slides import write_pyramid
from tests.helpers.tiff_reference import model_pyramid, read_levels_tifffile

RECIPES = doc_snippets.recipes()

#: Every recipe in the docs must be run by a test below: a new recipe without
#: a test (or a test whose recipe was renamed away) fails here.
TESTED_RECIPES = {
    'readme-walkthrough',
    'viewing-openslide',
    'guide-heatmap',
    'viewing-asap-check',
    'slurm-submit',
    'slurm-ingest',
    'slurm-finalize',
    'slurm-infer',
    'slurm-infer-job',
    'slurm-infer-submit',
    'makefile',
    'convert-slurm',  # run in tests/cli/test_cli_convert.py
    'convert-make',  # run in tests/cli/test_cli_convert.py
    'guide-classes',
    'guide-argmax',
    'viewing-annotations',
}

SLIDE_MPP = 0.25


def test_every_recipe_in_the_docs_is_run_here():
    assert set(RECIPES) == TESTED_RECIPES


# -- running ----------------------------------------------------------------


def clean_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user shell: our tifwriter first on PATH, no
    TIFWRITER_* or SLURM_* leaking in from the test runner."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(('TIFWRITER_', 'SLURM_', 'MAKE', 'MFLAGS'))
    }
    bin_dir = str(Path(sys.executable).parent)
    env['PATH'] = os.pathsep.join([str(tmp_path / 'fake-bin'), bin_dir, env.get('PATH', '')])
    env.update(extra)
    return env


def run(args, cwd: Path, env: dict[str, str], *, ok: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert result.returncode == 0, (
            f'{args!r} exited {result.returncode}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}'
        )
    return result


def run_bash(snippet: doc_snippets.Snippet, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    assert snippet.language == 'bash', snippet
    # -e: a failing line fails the recipe (as a user would notice).
    return run(['bash', '-e', '-c', snippet.body], cwd, env)


def run_python(snippet: doc_snippets.Snippet, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    assert snippet.language == 'python', snippet
    return run([sys.executable, '-c', snippet.body], cwd, env)


def install_fake_sbatch(tmp_path: Path) -> Path:
    """An ``sbatch`` that records its argv (one JSON line each) and prints a job id."""
    bin_dir = tmp_path / 'fake-bin'
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / 'sbatch-calls.jsonl'
    script = bin_dir / 'sbatch'
    script.write_text(
        f'#!{sys.executable}\n'
        'import json, sys\n'
        f'log = {str(log)!r}\n'
        'with open(log, "a") as fh:\n'
        '    fh.write(json.dumps(sys.argv[1:]) + "\\n")\n'
        'job = 1000 + sum(1 for _ in open(log))\n'
        'print(job if "--parsable" in sys.argv else f"Submitted batch job {job}")\n'
    )
    script.chmod(0o755)
    return log


def sbatch_calls(log: Path) -> list[dict]:
    """Each recorded sbatch call: its script, options, exported variables, job id."""
    calls = []
    for number, line in enumerate(log.read_text().splitlines(), 1):
        argv = json.loads(line)
        options = {}
        for arg in argv[:-1]:
            key, _, value = arg.partition('=')
            options[key] = value
        exports = dict(
            item.split('=', 1) for item in options.get('--export', '').split(',') if '=' in item
        )
        calls.append({'script': argv[-1], 'options': options, 'exports': exports, 'job': 1000 + number})
    return calls


def sbatch_directive(script: str, name: str) -> str:
    match = re.search(rf'^#SBATCH --{name}=(\S+)', script, re.M)
    assert match, f'no #SBATCH --{name} in\n{script}'
    return match.group(1)


def run_array_job(script: Path, cwd: Path, env: dict[str, str], job_id: int) -> list[subprocess.CompletedProcess]:
    """Every task of the array at once, as SLURM would start them."""
    first, last = (int(v) for v in sbatch_directive(script.read_text(), 'array').split('-'))
    count = last - first + 1
    processes = []
    for task in range(first, last + 1):
        task_env = dict(
            env,
            SLURM_JOB_ID=str(job_id + task),
            SLURM_ARRAY_JOB_ID=str(job_id),
            SLURM_ARRAY_TASK_ID=str(task),
            SLURM_ARRAY_TASK_COUNT=str(count),
            SLURM_ARRAY_TASK_MIN=str(first),
            SLURM_ARRAY_TASK_MAX=str(last),
            SLURM_CPUS_PER_TASK=sbatch_directive(script.read_text(), 'cpus-per-task'),
        )
        processes.append(
            subprocess.Popen(['bash', script.name], cwd=cwd, env=task_env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        )
    results = []
    for process in processes:
        stdout, stderr = process.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr))
    for task, result in zip(range(first, last + 1), results, strict=True):
        assert result.returncode == 0, (task, result.stdout, result.stderr)
    return results


def run_job(script: Path, cwd: Path, env: dict[str, str], job_id: int) -> subprocess.CompletedProcess:
    job_env = dict(
        env,
        SLURM_JOB_ID=str(job_id),
        SLURM_CPUS_PER_TASK=sbatch_directive(script.read_text(), 'cpus-per-task'),
    )
    return run(['bash', script.name], cwd, job_env)


# -- inputs and checks --------------------------------------------------------


def make_slide(path: Path, width: int, height: int) -> Path:
    """A small pyramidal RGB slide (tifffile, reduced pages), with a pixel size."""
    image = numpy.full((height, width, 3), 230, numpy.uint8)
    image[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = (200, 120, 180)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_pyramid(path, image, mpp=SLIDE_MPP)


def write_label_tiles(directory: Path, reference: ReferenceCanvas, *, size: int, seed: int) -> int:
    """tile_X_Y.npy on a grid covering the canvas (the last row and column reach past it)."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = numpy.random.default_rng(seed)
    count = 0
    for y in range(0, reference.height, size):
        for x in range(0, reference.width, size):
            # Blocky labels: realistic runs of one class, so 'mode' has work to do.
            blocks = rng.integers(0, 5, (size // 16, size // 16), dtype=numpy.uint8)
            patch = numpy.kron(blocks, numpy.ones((16, 16), numpy.uint8))
            patch[rng.random(patch.shape) < 0.02] = 7  # specks
            numpy.save(directory / f'tile_{x}_{y}.npy', patch)
            reference.write(x, y, patch)
            count += 1
    return count


def assert_tiff_is(path: Path, expected: numpy.ndarray, *, resampling: str, tile: int = 512) -> None:
    """Every level of the TIFF equals the model pyramid of ``expected`` (H, W, C)."""
    levels = read_levels_tifffile(path)
    model = model_pyramid(expected, resampling, tile)
    assert [level.shape for level in levels] == [level.shape for level in model]
    for number, (level, wanted) in enumerate(zip(levels, model, strict=True)):
        assert level.dtype == expected.dtype
        assert numpy.array_equal(level, wanted), f'level {number} of {path} differs'


def assert_info_ok(path: Path, cwd: Path, env: dict[str, str]) -> dict:
    result = run(['tifwriter', 'info', '--json', str(path)], cwd, env)
    report = json.loads(result.stdout)
    assert report['ok'], report['reasons']
    return report


def assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n', path


# -- README --------------------------------------------------------------------


def test_readme_walkthrough_and_the_openslide_snippet(tmp_path):
    env = clean_env(tmp_path)
    reference = ReferenceCanvas(2000, 1500)
    tiles = write_label_tiles(tmp_path / 'predictions', reference, size=512, seed=1)
    fix = numpy.full((300, 300), 9, numpy.uint8)
    numpy.save(tmp_path / 'fix.npy', fix)
    reference.write(1800, -100, fix)  # written after the parallel ingests: it wins

    result = run_bash(RECIPES['readme-walkthrough'], tmp_path, env)

    # Two concurrent shards: every file staged exactly once between them.
    staged = [int(n) for n in re.findall(r'(\d+) staged, 0 already staged, 0 failed, shard', result.stdout)]
    assert len(staged) == 2 and sum(staged) == tiles, result.stdout
    assert 'clipped to x 1800..2000, y 0..200' in result.stdout
    assert f'patches       {tiles + 1} ' in result.stdout  # info on the staging unit
    assert_tiff_is(tmp_path / 'mask.tif', reference.result(), resampling='mode')
    report = assert_info_ok(tmp_path / 'mask.tif', tmp_path, env)
    assert report['spacing_um'] == [0.5, 0.5]
    assert 'verdict       ok' in result.stdout
    assert_png(tmp_path / 'mask.png')

    # docs/viewing.md reads that mask.tif back through OpenSlide.
    shown = run_python(RECIPES['viewing-openslide'], tmp_path, env).stdout.splitlines()
    assert shown[0] == '2 ((2000, 1500), (1000, 750)) (1.0, 2.0)'
    assert shown[1] == 'mpp-x: 0.5'
    level1 = model_pyramid(reference.result(), 'mode', 512)[1][:, :, 0]
    expected = numpy.unique(level1[256:512, 512:768])
    assert shown[2] == str(expected)


# -- docs/guide.md: a heatmap over a slide ---------------------------------------


def test_guide_heatmap_at_downsample_16_and_the_asap_check(tmp_path):
    env = clean_env(tmp_path)
    make_slide(tmp_path / 'slide.tif', 2000, 1500)
    # A model scoring 256 x 256 slide patches, one 16 x 16 heat patch each,
    # named by the slide position of its window.
    reference = ReferenceCanvas(125, 93, merge='mean')  # floor(2000/16) x floor(1500/16) (--edge drop)
    rng = numpy.random.default_rng(2)
    (tmp_path / 'heat').mkdir()
    for y in range(0, 1500, 256):
        for x in range(0, 2000, 256):
            heat = rng.random((16, 16), dtype=numpy.float32)
            numpy.save(tmp_path / 'heat' / f'heat_{x}_{y}.npy', heat)
            reference.write(x // 16, y // 16, numpy.rint(heat.astype(numpy.float64) * 255).astype(numpy.uint8))

    run_bash(RECIPES['guide-heatmap'], tmp_path, env)

    assert_tiff_is(tmp_path / 'heat.tif', reference.result(), resampling='mean')
    report = assert_info_ok(tmp_path / 'heat.tif', tmp_path, env)
    assert report['spacing_um'] == [pytest.approx(SLIDE_MPP * 16)] * 2
    assert report['provenance']['slide_downsample'] == '16'
    assert_png(tmp_path / 'heat.png')

    # docs/viewing.md: 1500 is not a multiple of 16, but the default --edge
    # drop sizes the heatmap floor(slide / 16), so ASAP's overlay panel
    # (integer size ratios) places it exactly; the snippet says so.
    verdict = run_python(RECIPES['viewing-asap-check'], tmp_path, env).stdout
    assert verdict.strip() == 'ASAP overlay scale (16, 16), true downsample 16: exact'

    # The same heatmap with --edge cover (ceil: 125 x 94) breaks ASAP's rule:
    # init warns, and the snippet sees it too.
    cover = tmp_path / 'cover'
    cover.mkdir()
    (cover / 'slide.tif').symlink_to(tmp_path / 'slide.tif')
    init = run(['tifwriter', 'init', 'heat.h5', '--like', 'slide.tif', '--downsample', '16',
                '--edge', 'cover', '--kind', 'probability'], cover, env)
    assert "ASAP's overlay panel will not show it" in init.stderr
    run(['tifwriter', 'finalize', 'heat.h5', 'heat.tif'], cover, env)
    verdict = run_python(RECIPES['viewing-asap-check'], cover, env).stdout
    assert verdict.strip() == 'ASAP overlay scale (16, 15), true downsample 16: ASAP will misplace or hide it'


# -- docs/slurm.md ---------------------------------------------------------------


def slurm_workspace(tmp_path: Path) -> tuple[dict[str, str], Path]:
    env = clean_env(tmp_path)
    log = install_fake_sbatch(tmp_path)
    make_slide(tmp_path / 'slides' / 'slide042.svs', 2000, 1500)  # a generic TIFF, read by content
    for name in ('ingest', 'finalize', 'infer', 'infer-job'):
        RECIPES[f'slurm-{name}'].write_to(tmp_path)
    return env, log


def check_submission(calls: list[dict], array_script: str) -> None:
    assert [call['script'] for call in calls] == [array_script, 'finalize.sbatch']
    array, final = calls
    assert '--parsable' in array['options']
    assert final['options']['--dependency'] == f'afterok:{array["job"]}'
    assert array['exports'] == final['exports'] == {'SLIDE': 'slide042'}
    assert array['options']['--export'].startswith('ALL,')


def test_slurm_array_of_ingests_then_finalize(tmp_path):
    env, log = slurm_workspace(tmp_path)
    reference = ReferenceCanvas(2000, 1500)  # --like the slide at downsample 1
    files = write_label_tiles(tmp_path / 'predictions' / 'slide042', reference, size=512, seed=3)

    run_bash(RECIPES['slurm-submit'], tmp_path, env)
    calls = sbatch_calls(log)
    check_submission(calls, 'ingest.sbatch')
    job_env = dict(env, **calls[0]['exports'])

    tasks = run_array_job(tmp_path / 'ingest.sbatch', tmp_path, job_env, calls[0]['job'])
    # Each task took its own shard from SLURM_ARRAY_TASK_ID / COUNT, and the
    # shards partition the directory.
    count = len(tasks)
    staged = 0
    for task, result in enumerate(tasks):
        match = re.search(rf'(\d+) staged, 0 already staged, 0 failed, shard {task}/{count} ', result.stdout)
        assert match, result.stdout
        staged += int(match.group(1))
    assert staged == files

    finished = run_job(tmp_path / 'finalize.sbatch', tmp_path, job_env, calls[1]['job'])
    assert 'verdict       ok' in finished.stdout
    assert_tiff_is(tmp_path / 'tiffs' / 'slide042.tif', reference.result(), resampling='mode')
    assert_info_ok(tmp_path / 'tiffs' / 'slide042.tif', tmp_path, env)
    assert_png(tmp_path / 'tiffs' / 'slide042.png')

    # A resubmitted array stages nothing twice.
    again = run_array_job(tmp_path / 'ingest.sbatch', tmp_path, job_env, 2000)
    assert all(' 0 staged, ' in result.stdout for result in again)


def load_module(path: Path):
    spec = importlib.util.spec_from_file_location('docs_infer', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_slurm_inference_array_through_the_api_then_finalize(tmp_path):
    env, log = slurm_workspace(tmp_path)

    run_bash(RECIPES['slurm-infer-submit'], tmp_path, env)
    calls = sbatch_calls(log)
    check_submission(calls, 'infer.sbatch')
    job_env = dict(env, **calls[0]['exports'])

    run_array_job(tmp_path / 'infer.sbatch', tmp_path, job_env, calls[0]['job'])
    fragments = tmp_path / 'staging' / 'slide042.h5.fragments'
    published = sorted(fragments.glob('[0-9]*.h5'))
    assert published

    # A resubmitted task predicts nothing again (its patches are recorded).
    run_array_job(tmp_path / 'infer.sbatch', tmp_path, job_env, 2000)
    assert sorted(fragments.glob('[0-9]*.h5')) == published

    run_job(tmp_path / 'finalize.sbatch', tmp_path, job_env, calls[1]['job'])
    infer = load_module(tmp_path / 'infer.py')
    reference = ReferenceCanvas(2000, 1500)
    for y in range(0, 1500, infer.PATCH):
        for x in range(0, 2000, infer.PATCH):
            reference.write(x, y, infer.predict(x, y))
    assert_tiff_is(tmp_path / 'tiffs' / 'slide042.tif', reference.result(), resampling='mode')
    assert_info_ok(tmp_path / 'tiffs' / 'slide042.tif', tmp_path, env)


# -- docs/make.md ------------------------------------------------------------------


def mtimes(root: Path) -> dict[str, int]:
    return {
        str(path.relative_to(root)): path.stat().st_mtime_ns
        for path in sorted(root.rglob('*'))
        if path.is_file() and path.parts[len(root.parts)] in ('staging', 'out')
    }


@pytest.mark.skipif(shutil.which('make') is None, reason='GNU make is not installed')
def test_makefile_builds_each_slide_once_and_only_what_changed(tmp_path):
    env = clean_env(tmp_path)
    RECIPES['makefile'].write_to(tmp_path)
    references = {}
    for name, (width, height) in {'A': (1200, 900), 'B': (700, 1100)}.items():
        make_slide(tmp_path / 'slides' / f'{name}.tif', width, height)
        references[name] = ReferenceCanvas(width, height)
        write_label_tiles(tmp_path / 'predictions' / name, references[name], size=512, seed=ord(name))
    make = ['make', '-j', '2', 'SLIDE_EXT=tif']

    run(make, tmp_path, env)
    for name, reference in references.items():
        assert_tiff_is(tmp_path / 'out' / f'{name}.tif', reference.result(), resampling='mode')
        assert_info_ok(tmp_path / 'out' / f'{name}.tif', tmp_path, env)
        assert_png(tmp_path / 'out' / f'{name}.png')

    # Up to date: make -q agrees, and a second make touches nothing.
    assert run(['make', '-q', 'SLIDE_EXT=tif'], tmp_path, env, ok=False).returncode == 0
    before = mtimes(tmp_path)
    second = run(make, tmp_path, env)
    assert 'Nothing to be done' in second.stdout, second.stdout
    assert mtimes(tmp_path) == before

    # A new prediction for A: A is restaged (that file only), refinalized and
    # re-previewed; B is left alone.
    extra = numpy.full((100, 100), 11, numpy.uint8)
    stamp = tmp_path / 'staging' / 'A.staged'
    new_file = tmp_path / 'predictions' / 'A' / 'tile_1150_850.npy'
    while True:  # a newer time stamp than the stamp file, at the filesystem's resolution
        numpy.save(new_file, extra)
        if new_file.stat().st_mtime_ns > stamp.stat().st_mtime_ns:
            break
    references['A'].write(1150, 850, extra)
    third = run(make, tmp_path, env)
    assert '1 staged, 6 already staged' in third.stdout, third.stdout
    assert 'B.' not in third.stdout
    after = mtimes(tmp_path)
    changed = {path for path in after if after[path] != before.get(path)}
    assert {'staging/A.staged', 'out/A.tif', 'out/A.png'} <= changed
    assert not any(path.startswith(('out/B', 'staging/B')) for path in changed)
    assert_tiff_is(tmp_path / 'out' / 'A.tif', references['A'].result(), resampling='mode')
    assert run(['make', '-q', 'SLIDE_EXT=tif'], tmp_path, env, ok=False).returncode == 0


# -- the README's set-up commands -------------------------------------------------

INSTALL_AND_DEMO = (
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e . && tifwriter demo demo-output'
)
INSTALL_AND_TEST = (
    "python3 -m venv .venv && . .venv/bin/activate && pip install -q -e '.[test]' && ruff check . && python -m pytest"
)


def test_readme_has_the_two_setup_commands_and_ci_runs_the_second():
    readme = (doc_snippets.ROOT / 'README.md').read_text()
    blocks = re.findall(r'^```bash\n(.*?)\n```$', readme, re.M | re.S)
    assert blocks[:2] == [INSTALL_AND_DEMO, INSTALL_AND_TEST]
    ci = (doc_snippets.ROOT / '.ci' / 'run').read_text()
    assert ci.rstrip().splitlines()[-1] == INSTALL_AND_TEST


def test_the_demo_command_of_the_readme(tmp_path):
    """The README's first command after its install: ``tifwriter demo demo-output``."""
    env = clean_env(tmp_path)
    result = run(['tifwriter', 'demo', 'demo-output', '--width', '1500', '--height', '1100'], tmp_path, env)
    out = tmp_path / 'demo-output'
    assert 'verdict       ok' in result.stdout
    assert_info_ok(out / 'demo-labels.tif', tmp_path, env)
    assert_png(out / 'demo-labels.png')
    with tifffile.TiffFile(out / 'demo-labels.tif') as tif:
        level0 = tif.pages[0].asarray()
    with tifwriter_cli.read_staging(out / 'demo-labels.h5') as snapshot:
        assert numpy.array_equal(level0, snapshot.read_canvas()[:, :, 0])
    assert set(numpy.unique(level0)) <= {0, 1, 2, 3}


# -- docs/guide.md and docs/viewing.md: classes, label maps, annotations -------------------


def test_guide_classes_end_to_end(tmp_path):
    env = clean_env(tmp_path)
    reference = ReferenceCanvas(2000, 1500)
    write_label_tiles(tmp_path / 'predictions', reference, size=512, seed=5)
    result = run_bash(RECIPES['guide-classes'], tmp_path, env)
    assert_tiff_is(tmp_path / 'mask.tif', reference.result(), resampling='mode')
    # The tiles hold classes 0..4 and specks of 7; the table names 0..3.
    mask = reference.result()[:, :, 0]
    unnamed = {v: int((mask == v).sum()) for v in (4, 7)}
    assert (f'2 label value(s) the class table does not name: 4 ({unnamed[4]} px), 7 ({unnamed[7]} px)'
            in result.stderr), result.stderr
    assert 'classes       0 background (#282828), 1 tumour (#e41a1c), 2 stroma' in result.stdout  # info
    assert 'labels: classes 0 background,1 tumour,2 stroma,3 necrosis,4,7' in result.stdout  # preview
    assert_png(tmp_path / 'mask.png')
    features = json.loads((tmp_path / 'mask.geojson').read_text())['features']
    names = {f['properties']['classification']['name'] for f in features}
    assert names == {'tumour', 'stroma', 'necrosis', '4', '7'}
    tumour = next(f for f in features if f['properties']['classification']['name'] == 'tumour')
    assert tumour['properties']['classification']['color'] == [0xE4, 0x1A, 0x1C]


def test_guide_argmax_and_threshold(tmp_path):
    env = clean_env(tmp_path)
    rng = numpy.random.default_rng(6)
    probs = numpy.zeros((1500, 2000, 3), numpy.float32)
    (tmp_path / 'probs').mkdir()
    for y in range(0, 1500, 500):
        for x in range(0, 2000, 500):
            blocks = rng.random((10, 10, 3), dtype=numpy.float32)
            tile = numpy.kron(blocks, numpy.ones((50, 50, 1), numpy.float32))
            numpy.save(tmp_path / 'probs' / f'probs_{x}_{y}.npy', tile)
            probs[y : y + 500, x : x + 500] = tile
    run_bash(RECIPES['guide-argmax'], tmp_path, env)
    labels = numpy.argmax(probs, axis=2).astype(numpy.uint8)
    assert_tiff_is(tmp_path / 'labels.tif', labels[:, :, None], resampling='mode')
    assert_tiff_is(tmp_path / 'tumour.tif', (probs[:, :, 1:2] >= 0.5).astype(numpy.uint8), resampling='mode')
    root = ElementTree.parse(tmp_path / 'labels.xml').getroot()
    assert {g.get('Name') for g in root.find('AnnotationGroups')} <= {'tumour', 'stroma', 'tumour hole', 'stroma hole'}
    assert len(root.find('Annotations')) > 10


def test_viewing_annotations_walkthrough_lands_on_the_slide(tmp_path):
    import rasterio.features
    import shapely
    from shapely.geometry import shape

    import tifwriter_cli as tw

    env = clean_env(tmp_path)
    make_slide(tmp_path / 'slide.tif', 2000, 1500)
    run(['tifwriter', 'init', 'mask.h5', '--like', 'slide.tif', '--downsample', '4',
         '--classes', 'background,tumour,stroma,necrosis'], tmp_path, env)
    mask = numpy.zeros((375, 500), numpy.uint8)
    yy, xx = numpy.mgrid[0:375, 0:500]
    mask[(yy - 180) ** 2 + (xx - 200) ** 2 < 120**2] = 1
    mask[(yy - 180) ** 2 + (xx - 200) ** 2 < 40**2] = 0  # a hole
    mask[50:300, 350:480] = 2
    mask[100:102, 10:12] = 3  # 4 px: below --min-area 16
    with tw.open_staging(tmp_path / 'mask.h5') as writer:
        writer.write(0, 0, mask)
    run(['tifwriter', 'finalize', 'mask.h5', 'mask.tif'], tmp_path, env)
    result = run_bash(RECIPES['viewing-annotations'], tmp_path, env)
    assert '1 below --min-area dropped' in result.stdout and '1 mask px = 4' in result.stdout
    features = json.loads((tmp_path / 'mask.geojson').read_text())['features']
    assert sorted(f['properties']['classification']['name'] for f in features) == ['stroma', 'tumour']
    drawn = numpy.zeros_like(mask)
    for feature, value in ((f, {'tumour': 1, 'stroma': 2}[f['properties']['classification']['name']]) for f in features):
        polygon = shapely.transform(shape(feature['geometry']), lambda xy: xy / 4)  # slide -> mask px
        drawn[rasterio.features.rasterize([(polygon, 1)], out_shape=mask.shape, dtype='uint8') == 1] = value
    expected = numpy.where(mask == 3, 0, mask)
    for value in (1, 2):
        both = numpy.logical_and(drawn == value, expected == value).sum()
        assert both / numpy.logical_or(drawn == value, expected == value).sum() >= 0.99
    root = ElementTree.parse(tmp_path / 'mask.xml').getroot()
    assert {g.get('Name') for g in root.find('AnnotationGroups')} == {'tumour', 'tumour hole', 'stroma'}
