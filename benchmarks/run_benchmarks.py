#!/usr/bin/env python3
"""tifwriter's benchmark suite: one command, every number, same machine.

    python benchmarks/run_benchmarks.py [--out DIR] [--scale small|full]
        [--cases mask,rgb,prob,scale160k] [--peers libvips,floor,asap] [--keep]

For each case (a 40k x 40k uint8 label mask, a 20k x 20k RGB image, a 20k x
20k float32 probability map, at --scale full) it times, each step as its own
process (see _measure.py for what is measured and how):

* staging 512-px patch files with ``tifwriter ingest-npy-dir``, beside a
  plain ``np.save`` of the same patches and the Python API;
* ``tifwriter finalize``, beside libvips ``tiffsave`` (pyvips), the codec
  floor (the same tiles encoded in memory on all cores) and ASAP's writer;

then the scale case (a 160k x 160k canvas, 25 % written, finalize only) and
two start-up times. Prints a table, the ratios and PASS/FAIL per target;
writes DIR/results.json and DIR/results.md. Exit status 1 if a step failed
(a missed target is reported, not an error, unless --strict).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _inputs import GENERATOR_VERSION, InputSet, ensure_input  # noqa: E402
from _measure import Measurement, machine_busy_s, path_size, remove_paths, run_measured  # noqa: E402

sys.path.insert(0, str(HERE.parent))  # tests.helpers: where ASAP is built
from tifwriter_cli.staging.layout import fragments_dir, published_fragments  # noqa: E402

from tests.helpers.readers import make_asap_importable  # noqa: E402

PEERS_SCRIPT = HERE / '_peers.py'
ALL_CASES = (
    'mask', 'rgb', 'prob', 'ragged', 'speckle', 'many', 'mean32', 'mean8', 'sparse160k', 'fragments', 'scale160k',
)
#: Cases that are not one input through run_case.
SPECIAL_CASES = ('mean32', 'mean8', 'sparse160k', 'fragments', 'scale160k')
ALL_PEERS = ('npsave', 'api', 'array', 'libvips', 'floor', 'asap')
MB = 1e6
MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Case:
    """One finalize case: which input, how big, which codec."""

    name: str
    input_kind: str  # mask / rgb / prob (see _inputs)
    canvas_kind: str  # tifwriter --kind
    dtype: str
    channels: int
    size: int
    compression: str  # lzw / jpeg
    region_shrink: str  # libvips' pyramid rule
    #: An input of the second generator (few uniform tiles): finalize and
    #: its peers only (no np.save / API staging steps), mixed-tile targets.
    hard: bool = False


def make_cases(scale: str) -> dict[str, Case]:
    big, mid = (40_000, 20_000) if scale == 'full' else (2048, 1024)
    return {
        # 'mode' (majority) is libvips' label-safe rule closest to ours.
        'mask': Case('mask', 'mask', 'labels', 'uint8', 1, big, 'lzw', 'mode'),
        'rgb': Case('rgb', 'rgb', 'image', 'uint8', 3, mid, 'jpeg', 'mean'),
        'prob': Case('prob', 'prob', 'probability', 'float32', 1, mid, 'lzw', 'mean'),
        'ragged': Case('ragged', 'ragged', 'labels', 'uint8', 1, big, 'lzw', 'mode', hard=True),
        'speckle': Case('speckle', 'speckle', 'labels', 'uint8', 1, mid, 'lzw', 'mode', hard=True),
        'many': Case('many', 'many', 'labels', 'uint8', 1, mid, 'lzw', 'mode', hard=True),
    }


SCALE_SIZE = {'full': 160_000, 'small': 8192}
#: Side of the heatmap canvases staged from overlapping windows (mean8/mean32).
WINDOWS_SIZE = {'full': 12_288, 'small': 1536}
#: Fragments of the fragments case (against 1).
FRAGMENTS = {'full': 2000, 'small': 16}
SCALE_COVERAGE = 0.25
JPEG_QUALITY = 90


@dataclasses.dataclass
class StepResult:
    case: str
    step: str  # ingest / np.save / api / finalize / libvips / floor / ...
    tool: str  # what ran, for the table
    measurement: Measurement | None = None
    skipped: str | None = None
    data_bytes: int | None = None  # raw pixel bytes the step handled
    output_bytes: int | None = None
    note: str = ''
    #: Wall time of every run with --repeat (the step keeps the fastest).
    runs_wall_s: list[float] = dataclasses.field(default_factory=list)

    @property
    def failed(self) -> bool:
        return self.measurement is not None and not self.measurement.ok

    @property
    def wall_s(self) -> float | None:
        """The step's wall time; the floor's is its encode-only time."""
        if self.measurement is None or not self.measurement.ok:
            return None
        inner = self.measurement.reported.get('encode_wall_s')
        return float(inner) if inner is not None else self.measurement.wall_s

    @property
    def cpu_s(self) -> float | None:
        if self.measurement is None or not self.measurement.ok:
            return None
        inner = self.measurement.reported.get('encode_cpu_s')
        return float(inner) if inner is not None else self.measurement.cpu_s

    @property
    def peak_anon_bytes(self) -> int | None:
        if self.measurement is None or not self.measurement.ok:
            return None
        return self.measurement.peak_anon_bytes

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            'case': self.case,
            'step': self.step,
            'tool': self.tool,
            'wall_s': _round(self.wall_s),
            'cpu_s': _round(self.cpu_s),
            'peak_anon_mib': _round(None if self.peak_anon_bytes is None else self.peak_anon_bytes / MiB),
            'data_bytes': self.data_bytes,
            'output_bytes': self.output_bytes,
            'throughput_mb_s': _round(self.throughput),
            'note': self.note,
            'runs_wall_s': [round(w, 4) for w in self.runs_wall_s],
        }
        if self.skipped:
            out['skipped'] = self.skipped
        if self.measurement is not None:
            out['process'] = self.measurement.as_dict()
        return out

    @property
    def throughput(self) -> float | None:
        if self.wall_s and self.data_bytes:
            return self.data_bytes / self.wall_s / MB
        return None


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


class Runner:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out: Path = args.out
        self.work = self.out / 'work'
        self.cache: Path = args.cache
        self.cases = make_cases(args.scale)
        self.results: list[StepResult] = []
        self.ratios: list[dict[str, Any]] = []
        self.targets: list[dict[str, Any]] = []
        self.notes: list[str] = []
        self.startup: dict[str, Any] = {}
        self.scale_written: int | None = None  # pixels the scale case wrote
        self.python = sys.executable
        # ASAP built as the tests build it (tests/helpers/readers.py: one
        # place knows where), so the ASAP peer runs instead of skipping.
        make_asap_importable()
        self.env = dict(os.environ)
        # Each step's Python must find the package and our modules exactly
        # as this interpreter does (editable installs, PYTHONPATH).
        self.tifwriter = self._tifwriter_command()
        self.peers = self._available_peers(args.peers)

    # -- set-up ----------------------------------------------------------
    def log(self, message: str) -> None:
        print(f'[bench {time.strftime("%H:%M:%S")}] {message}', flush=True)

    def _tifwriter_command(self) -> list[str]:
        script = Path(self.python).with_name('tifwriter')
        if script.exists():
            return [str(script)]
        found = shutil.which('tifwriter')
        return [found] if found else [self.python, '-m', 'tifwriter_cli']

    def _importable(self, module: str) -> bool:
        probe = subprocess.run([self.python, '-c', f'import {module}'], capture_output=True, env=self.env)
        return probe.returncode == 0

    def _available_peers(self, requested: Sequence[str]) -> set[str]:
        peers = set(requested)
        if 'libvips' in peers and not self._importable('pyvips'):
            peers.discard('libvips')
            self.note('libvips: not installed (pip install .[bench]) - libvips peer skipped')
        if 'asap' in peers and not self._importable('multiresolutionimageinterface'):
            peers.discard('asap')
            self.note('ASAP: multiresolutionimageinterface not importable - ASAP peer skipped')
        return peers

    def peer_absent(self, peer: str) -> str:
        """Why a peer's step did not run: not asked for, or not installed."""
        if peer not in self.args.peers:
            return 'not in --peers'
        return {
            'libvips': 'not installed (pip install .[bench])',
            'asap': 'multiresolutionimageinterface not importable (bash ../shared/asap/install.sh .cache/asap)',
        }[peer]

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.log(message)

    def run_step(
        self,
        case: str,
        step: str,
        tool: str,
        argv: Sequence[str | os.PathLike],
        *,
        data_bytes: int | None = None,
        output: Path | None = None,
        reset: Callable[[], None] | None = None,
    ) -> StepResult:
        """Run a step --repeat times (``reset`` undoes its effect between
        runs) and keep the fastest run: the minimum is the estimate least
        inflated by other work on the machine."""
        repeat = self.args.repeat if reset is not None else 1
        runs: list[StepResult] = []
        for attempt in range(repeat):
            if attempt:
                reset()
            # Let the previous step's dirty pages reach the disk first, so no
            # step pays for another's writeback.
            os.sync()
            self.wait_idle()
            self.log(f'{case}: {step} ({tool}) ...' + (f' run {attempt + 1}/{repeat}' if repeat > 1 else ''))
            measurement = run_measured(argv, env=self.env)
            result = StepResult(case, step, tool, measurement, data_bytes=data_bytes)
            runs.append(result)
            if not measurement.ok:
                tail = measurement.stderr.strip().splitlines()[-8:]
                self.log(f'{case}: {step} FAILED (exit {measurement.returncode}):\n    ' + '\n    '.join(tail))
                break
            if output is not None and output.exists():
                result.output_bytes = path_size(output)
            self.log(
                f'{case}: {step}: {result.wall_s:.2f} s wall, {result.cpu_s:.2f} s CPU, '
                f'{measurement.peak_anon_bytes / MiB:.0f} MiB peak anon, '
                f'{measurement.other_cpu_s or 0:.2f} s CPU outside the step'
            )
        failed = [r for r in runs if r.failed]
        best = failed[0] if failed else min(runs, key=lambda r: r.wall_s)
        best.runs_wall_s = [r.wall_s for r in runs if r.wall_s is not None]
        self.results.append(best)
        return best

    def wait_idle(self) -> None:
        """With --wait-idle S: wait up to S seconds for the other work on the
        machine to drop under 10 % of the cores (shared machines)."""
        if not self.args.wait_idle:
            return
        cores = os.cpu_count() or 1
        deadline = time.monotonic() + self.args.wait_idle
        while True:
            before = machine_busy_s()
            time.sleep(0.5)
            after = machine_busy_s()
            if before is None or after is None:
                return
            share = (after - before) / (0.5 * cores)
            if share < 0.10:
                return
            if time.monotonic() > deadline:
                self.log(f'machine still {share:.0%} busy after {self.args.wait_idle:g} s: measuring anyway')
                return

    def skip(self, case: str, step: str, tool: str, reason: str) -> StepResult:
        result = StepResult(case, step, tool, skipped=reason)
        self.results.append(result)
        return result

    def peer(self, step: str, *options: str | os.PathLike) -> list[str]:
        return [self.python, str(PEERS_SCRIPT), step, *map(str, options)]

    # -- inputs ----------------------------------------------------------
    def input_for(self, kind: str, size: int) -> InputSet | None:
        """The cached input, generated if missing; None when the disk is too full."""
        bytes_per_pixel = {'rgb': 3, 'prob': 4}.get(kind, 1)
        self.cache.mkdir(parents=True, exist_ok=True)
        stem = f'{kind}-{size}x{size}-seed{self.args.seed}-v{GENERATOR_VERSION}'
        if not (self.cache / f'{stem}.npy').exists():
            # The array and its patch files, plus room for the steps' output.
            needed = 2 * size * size * bytes_per_pixel + (2 << 30)
            free = shutil.disk_usage(self.cache).free
            if free < needed:
                self.note(
                    f'{kind}: needs {needed / 1e9:.1f} GB free in {self.cache} to generate its input, '
                    f'has {free / 1e9:.1f} GB - case skipped (use --cache elsewhere or --scale small)'
                )
                return None
        started = time.perf_counter()
        inputs = ensure_input(self.cache, kind, width=size, height=size, seed=self.args.seed, log=self.log)
        took = time.perf_counter() - started
        if took > 1:
            self.log(f'{kind} input ready in {took:.0f} s')
        return inputs

    @staticmethod
    def warm(*paths: Path) -> None:
        """Read inputs once so every step finds them in the page cache alike."""
        for path in paths:
            files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
            for file in files:
                with open(file, 'rb', buffering=0) as fh:
                    while fh.read(16 * MiB):
                        pass

    # -- the finalize cases -----------------------------------------------
    def finalize_options(self, case: Case) -> list[str]:
        if case.compression == 'jpeg':
            return ['--compression', 'jpeg', '--quality', str(JPEG_QUALITY)]
        return ['--compression', case.compression]

    def run_case(self, case: Case) -> None:
        inputs = self.input_for(case.input_kind, case.size)
        if inputs is None:
            self.skip(case.name, 'finalize', 'tifwriter finalize', 'not enough disk for the input')
            return
        work = self.work / case.name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        self.warm(inputs.array_path, inputs.patches_dir)
        raw = path_size(inputs.array_path) - _npy_header_bytes(inputs.array_path)
        name = case.name

        # Staging: np.save (raw write speed), ingest-npy-dir, the API.
        if 'npsave' in self.peers and not case.hard:
            target = work / 'npsave'
            self.run_step(name, 'np.save', 'np.save patches + sync', self.peer(
                'npsave', '--input', inputs.array_path, '--out', target, '--tile', inputs.tile,
            ), data_bytes=raw, output=target, reset=lambda: shutil.rmtree(target, ignore_errors=True))
            shutil.rmtree(target, ignore_errors=True)
        staging = work / 'staging.h5'
        init_argv = [
            *self.tifwriter, '-q', 'init', staging, '--width', case.size, '--height', case.size,
            '--channels', case.channels, '--dtype', case.dtype, '--kind', case.canvas_kind,
            '--tile-size', inputs.tile,
        ]
        init = self.run_step(name, 'init', 'tifwriter init', init_argv)
        if init.failed:
            return

        def fresh_staging() -> None:
            # A second ingest into the same staging would skip every file.
            _remove_staging(staging)
            subprocess.run([str(a) for a in init_argv], check=True, env=self.env)

        self.run_step(name, 'ingest', 'tifwriter ingest-npy-dir', [
            *self.tifwriter, '-q', 'ingest-npy-dir', staging, inputs.patches_dir,
            '--pattern', 'tile_{x}_{y}.npy',
        ], data_bytes=raw, output=fragments_dir(staging), reset=fresh_staging)
        if 'api' in self.peers and not case.hard:
            api_staging = work / 'api.h5'
            self.run_step(name, 'api', 'open_staging().write', self.peer(
                'api', '--input', inputs.array_path, '--staging', api_staging,
                '--kind', case.input_kind, '--tile', inputs.tile,
            ), data_bytes=raw, output=fragments_dir(api_staging),
                reset=lambda: _remove_staging(api_staging))
            _remove_staging(api_staging)

        # Finalize: ours, then the peers with our output's settings.
        ours = work / 'tifwriter.tif'
        fin = self.run_step(name, 'finalize', f'tifwriter finalize ({self.codec_label(case)})', [
            *self.tifwriter, '-q', 'finalize', staging, ours, *self.finalize_options(case),
        ], data_bytes=raw, output=ours, reset=lambda: self._drop(ours, always=True))
        predictor = self.predictor_of(ours) if ours.exists() else 'none'
        if 'array' in self.peers and not case.hard:
            array_out = work / 'tifwriter-array.tif'
            self.run_step(name, 'finalize (array)', 'finalize(ArraySource(memmap))', self.peer(
                'finalize-array', '--input', inputs.array_path, '--output', array_out,
                '--kind', case.input_kind, '--compression', case.compression,
                '--quality', JPEG_QUALITY, '--tile', inputs.tile,
            ), data_bytes=raw, output=array_out, reset=lambda: self._drop(array_out, always=True))
            self._drop(array_out)
        if 'libvips' in self.peers:
            vips_out = work / 'libvips.tif'
            result = self.run_step(name, 'libvips', f'libvips tiffsave (region_shrink={case.region_shrink})', self.peer(
                'libvips', '--input', inputs.array_path, '--output', vips_out, '--kind', case.input_kind,
                '--compression', case.compression, '--quality', JPEG_QUALITY,
                '--predictor', predictor, '--region-shrink', case.region_shrink, '--tile', inputs.tile,
            ), data_bytes=raw, output=vips_out, reset=lambda: self._drop(vips_out, always=True))
            if case.compression == 'jpeg':
                result.note = 'libvips tiffsave: RGB 4:4:4 JPEG (no chroma subsampling option)'
            else:
                result.note = f'predictor {predictor} (as ours)'
            self._drop(vips_out)
        else:
            self.skip(name, 'libvips', 'libvips tiffsave', self.peer_absent('libvips'))
        if 'floor' in self.peers:
            result = self.run_step(name, 'floor', 'codec floor (all cores)', self.peer(
                'floor', '--input', inputs.array_path, '--kind', case.input_kind, '--like', ours,
                '--compression', case.compression, '--quality', JPEG_QUALITY, '--tile', inputs.tile,
                '--predictor', predictor,
            ), data_bytes=raw, reset=lambda: None)
            if result.measurement is not None and result.measurement.ok:
                reported = result.measurement.reported
                result.output_bytes = reported.get('bytes_out')
                result.note = (
                    f"{reported.get('lzw_encoder') or 'imagecodecs'} encoder; "
                    f"encode only: {reported.get('tiles')} tiles, {reported.get('levels')} levels, "
                    f"{reported.get('workers')} threads; distinct tiles only "
                    f"({reported.get('distinct_tiles')}): {reported.get('distinct_encode_wall_s', 0):.2f} s"
                )
        if 'asap' in self.peers:
            asap_out = work / 'asap.tif'
            self.run_step(name, 'asap', 'ASAP MultiResolutionImageWriter', self.peer(
                'asap', '--input', inputs.array_path, '--output', asap_out, '--kind', case.input_kind,
                '--compression', case.compression, '--quality', JPEG_QUALITY, '--tile', inputs.tile,
            ), data_bytes=raw, output=asap_out, reset=lambda: self._drop(asap_out, always=True))
            self._drop(asap_out)
        else:
            self.skip(name, 'asap', 'ASAP', self.peer_absent('asap'))
        if not fin.failed and not self.args.keep:
            self._drop(ours)
        if not self.args.keep:
            _remove_staging(staging)

    def codec_label(self, case: Case) -> str:
        return f'JPEG q{JPEG_QUALITY}' if case.compression == 'jpeg' else case.compression.upper()

    @staticmethod
    def predictor_of(path: Path) -> str:
        """Our TIFF's LZW predictor, so the peers compress exactly alike."""
        import tifffile

        with tifffile.TiffFile(path) as tif:
            value = int(tif.pages[0].predictor)
        return {1: 'none', 2: 'horizontal', 3: 'float'}.get(value, 'none')

    def _drop(self, path: Path, *, always: bool = False) -> None:
        if always or not self.args.keep:
            try:
                path.unlink()
            except FileNotFoundError:
                pass

    # -- scale case --------------------------------------------------------
    def run_scale(self) -> None:
        size = SCALE_SIZE[self.args.scale]
        mask_case = self.cases['mask']
        mask = self.input_for('mask', mask_case.size)
        if mask is None:
            self.skip('scale', 'finalize', 'tifwriter finalize', 'not enough disk for the mask input')
            return
        self.warm(mask.array_path)
        work = self.work / 'scale'
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        free = shutil.disk_usage(work).free
        self.log(f'scale: {size} x {size} canvas, {SCALE_COVERAGE:.0%} written; {free / 1e9:.0f} GB free')
        staging = work / 'staging.h5'
        stage = self.run_step('scale', 'stage (api)', 'open_staging().write', self.peer(
            'scale-stage', '--mask', mask.array_path, '--staging', staging, '--size', size,
            '--coverage', SCALE_COVERAGE, '--seed', self.args.seed, '--tile', mask.tile,
        ), output=fragments_dir(staging))
        if stage.failed:
            return
        written = int(stage.measurement.reported['written_pixels'])
        stage.data_bytes = written
        ours = work / 'tifwriter.tif'
        self.run_step('scale', 'finalize', 'tifwriter finalize (LZW)', [
            *self.tifwriter, '-q', 'finalize', staging, ours, '--compression', 'lzw',
        ], data_bytes=written, output=ours, reset=lambda: self._drop(ours, always=True))
        self.scale_written = written
        if not self.args.keep:
            self._drop(ours)
            _remove_staging(staging)

    # -- heatmaps from overlapping windows: mean vs overwrite --------------
    def run_windows(self, name: str) -> None:
        """The same windows staged under 'overwrite' and under 'mean';
        finalize each (the staging is untimed)."""
        dtype = 'float32' if name == 'mean32' else 'uint8'
        prob = self.input_for('prob', self.cases['prob'].size)
        if prob is None:
            self.skip(name, 'finalize (mean)', 'tifwriter finalize', 'not enough disk for the prob input')
            return
        self.warm(prob.array_path)
        size = WINDOWS_SIZE[self.args.scale]
        work = self.work / name
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for merge in ('overwrite', 'mean'):
            staging = work / f'{merge}.h5'
            stage = self.run_step(name, f'stage ({merge})', f'{dtype} windows 512 px, stride 384', self.peer(
                'windows-stage', '--input', prob.array_path, '--staging', staging, '--size', size,
                '--dtype', dtype, '--merge', merge, '--seed', self.args.seed, '--tile', prob.tile,
            ), output=fragments_dir(staging))
            if stage.failed:
                return
            ours = work / f'{merge}.tif'
            self.run_step(name, f'finalize ({merge})', f'tifwriter finalize (LZW, merge {merge})', [
                *self.tifwriter, '-q', 'finalize', staging, ours, '--compression', 'lzw',
            ], data_bytes=size * size * (4 if dtype == 'float32' else 1), output=ours,
                reset=lambda ours=ours: self._drop(ours, always=True))
            if not self.args.keep:
                self._drop(ours)
                _remove_staging(staging)

    # -- sparse: the mask's data inside a 160k canvas ----------------------
    def run_sparse(self) -> None:
        """The mask case's patch files ingested into a canvas 4x as wide and
        high (the same written data, 1/16 of the canvas): finalize should
        cost what the written area costs."""
        size = SCALE_SIZE[self.args.scale]
        mask_case = self.cases['mask']
        mask = self.input_for('mask', mask_case.size)
        if mask is None:
            self.skip('sparse', 'finalize', 'tifwriter finalize', 'not enough disk for the mask input')
            return
        self.warm(mask.patches_dir)
        work = self.work / 'sparse'
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        staging = work / 'staging.h5'
        init = self.run_step('sparse', 'init', 'tifwriter init', [
            *self.tifwriter, '-q', 'init', staging, '--width', size, '--height', size,
            '--kind', 'labels', '--tile-size', mask.tile,
        ])
        if init.failed:
            return
        stage = self.run_step('sparse', 'stage (ingest)', 'tifwriter ingest-npy-dir (mask patches)', [
            *self.tifwriter, '-q', 'ingest-npy-dir', staging, mask.patches_dir, '--pattern', 'tile_{x}_{y}.npy',
        ], output=fragments_dir(staging))
        if stage.failed:
            return
        ours = work / 'tifwriter.tif'
        self.run_step('sparse', 'finalize', f'tifwriter finalize (LZW, {size} px canvas)', [
            *self.tifwriter, '-q', 'finalize', staging, ours, '--compression', 'lzw',
        ], data_bytes=mask_case.size ** 2, output=ours, reset=lambda: self._drop(ours, always=True))
        if not self.args.keep:
            self._drop(ours)
            _remove_staging(staging)

    # -- fragments: the mask staged in many fragments vs one ---------------
    def run_fragments(self) -> None:
        mask_case = self.cases['mask']
        mask = self.input_for('mask', mask_case.size)
        if mask is None:
            self.skip('fragments', 'finalize (1)', 'tifwriter finalize', 'not enough disk for the mask input')
            return
        self.warm(mask.array_path)
        work = self.work / 'fragments'
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        for count in (1, FRAGMENTS[self.args.scale]):
            staging = work / f'staging-{count}.h5'
            stage = self.run_step('fragments', f'stage ({count})', f'open_staging().write, {count} fragment(s)', self.peer(
                'api', '--input', mask.array_path, '--staging', staging, '--kind', 'mask',
                '--tile', mask.tile, '--fragments', count,
            ), output=fragments_dir(staging))
            if stage.failed:
                return
            published = len(published_fragments(fragments_dir(staging)))
            stage.note = f'{published} fragment files'
            ours = work / f'tifwriter-{count}.tif'
            self.run_step('fragments', f'finalize ({count})', f'tifwriter finalize (LZW, {published} fragments)', [
                *self.tifwriter, '-q', 'finalize', staging, ours, '--compression', 'lzw',
            ], data_bytes=mask_case.size ** 2, output=ours, reset=lambda ours=ours: self._drop(ours, always=True))
            if not self.args.keep:
                self._drop(ours)
                _remove_staging(staging)

    # -- start-up ----------------------------------------------------------
    def run_startup(self) -> None:
        import numpy

        work = self.work / 'startup'
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        staging = work / 'startup.h5'
        init = run_measured([*self.tifwriter, 'init', staging, '--width', 2048, '--height', 2048])
        if not init.ok:
            self.note(f'startup: tifwriter init failed: {init.stderr.strip()[-300:]}')
            return
        patch = work / 'patch.npy'
        numpy.save(patch, numpy.random.default_rng(0).integers(0, 4, (512, 512), dtype=numpy.uint8))
        runs = self.args.startup_runs
        for label, argv in (
            ('write-patch', [*self.tifwriter, 'write-patch', staging, patch, '--x', 512, '--y', 512]),
            ('--help', [*self.tifwriter, '--help']),
        ):
            os.sync()
            self.wait_idle()
            walls = []
            failed = None
            for _ in range(runs):
                measured = run_measured(argv)
                if not measured.ok:
                    failed = measured
                    break
                walls.append(measured.wall_s)
            if failed is not None:
                self.log(f'startup: tifwriter {label} FAILED: {failed.stderr.strip()[-300:]}')
                self.startup[label] = {'failed': True, 'stderr_tail': failed.stderr[-2000:]}
                continue
            walls.sort()
            self.startup[label] = {'median_s': walls[len(walls) // 2], 'runs_s': walls}
            self.log(f'startup: tifwriter {label}: median {walls[len(walls) // 2]:.3f} s of {runs}')

    # -- ratios and targets -------------------------------------------------
    def get(self, case: str, step: str) -> StepResult | None:
        for result in self.results:
            if result.case == case and result.step == step:
                return result
        return None

    def ratio(self, case: str, name: str, value: float | None, meaning: str) -> float | None:
        self.ratios.append({'case': case, 'ratio': name, 'value': _round(value), 'meaning': meaning})
        return value

    def target(self, name: str, value: float | None, limit: float, *, at_least: bool = False, unit: str = '') -> None:
        if value is None:
            status = 'n/a'
        elif at_least:
            status = 'PASS' if value >= limit else 'FAIL'
        else:
            status = 'PASS' if value <= limit else 'FAIL'
        self.targets.append({
            'target': name,
            'value': _round(value),
            'limit': f"{'>=' if at_least else '<='} {limit:g}{unit}",
            'status': status,
        })

    def compute(self) -> None:
        wall_limits = {'mask': 0.33, 'rgb': 1.0, 'prob': 0.5, 'ragged': 0.5, 'speckle': 0.5, 'many': 0.5}
        for name, case in self.cases.items():
            if name not in self.args.cases:
                continue
            ours = self.get(name, 'finalize')
            vips = self.get(name, 'libvips')
            floor = self.get(name, 'floor')
            ingest = self.get(name, 'ingest')
            npsave = self.get(name, 'np.save')
            api = self.get(name, 'api')
            vs_vips = self.ratio(name, 'finalize / libvips (wall)', _div(ours, vips, 'wall_s'),
                                 'finalize wall time over libvips tiffsave wall time (lower is better)')
            vs_floor = self.ratio(name, 'finalize / codec floor (wall)', _div(ours, floor, 'wall_s'),
                                  'finalize wall over encoding the same tiles in memory (>= 1; lower is better)')
            mem = self.ratio(name, 'finalize / libvips (peak anon)', _div(ours, vips, 'peak_anon_bytes'),
                             'peak anonymous memory of finalize over libvips')
            ingest_ratio = self.ratio(name, 'ingest / np.save (throughput)', _div(npsave, ingest, 'wall_s'),
                                      'staging throughput over np.save of the same patches, both durable '
                                      '(np.save + sync, as ingest fsyncs what it publishes; higher is better)')
            buffered = None
            if ingest and ingest.wall_s and npsave and npsave.measurement and npsave.measurement.ok:
                buffered_s = npsave.measurement.reported.get('buffered_s')
                if buffered_s:
                    # np.save's process minus the time its sync took.
                    buffered = (npsave.wall_s - npsave.measurement.reported.get('sync_s', 0)) / ingest.wall_s
            self.ratio(name, 'ingest / np.save without sync (throughput)', buffered,
                       'the same against np.save into the page cache only (not durable)')
            self.ratio(name, 'api / np.save (throughput)', _div(npsave, api, 'wall_s'),
                       'Python API staging throughput over durable np.save (higher is better)')
            distinct = None
            if ours and ours.wall_s and floor and floor.measurement and floor.measurement.ok:
                distinct_s = floor.measurement.reported.get('distinct_encode_wall_s')
                distinct = ours.wall_s / distinct_s if distinct_s else None
            self.ratio(name, 'finalize / floor of distinct tiles (wall)', distinct,
                       'finalize wall over encoding only the non-uniform tiles plus one per uniform content '
                       '(the floor for a writer that encodes a uniform tile once, as ours does)')
            self.ratio(name, 'finalize CPU / libvips CPU', _div(ours, vips, 'cpu_s'),
                       'CPU seconds of finalize over libvips')
            self.ratio(name, 'finalize (array) / libvips (wall)', _div(self.get(name, 'finalize (array)'), vips, 'wall_s'),
                       'our writer from the same memmap libvips reads (no staging file) over libvips')
            label = f'{name} {self.codec_label(case)}'
            self.target(f'{label}: finalize wall <= {wall_limits[name]:g} x libvips', vs_vips, wall_limits[name], unit=' x')
            if name == 'mask':
                self.target(f'{label}: finalize wall <= 1.3 x codec floor', vs_floor, 1.3, unit=' x')
            if case.hard:
                self.target(f'{label}: finalize wall <= 1.3 x codec floor of its mixed tiles', distinct, 1.3, unit=' x')
            self.target(f'{label}: finalize peak anon <= 2 x libvips', mem, 2.0, unit=' x')
            if not case.hard:
                self.target(f'{name}: ingest-npy-dir >= 0.7 x np.save throughput', ingest_ratio, 0.7, at_least=True, unit=' x')
        self.compute_work_following()
        if 'scale160k' in self.args.cases:
            scale = self.get('scale', 'finalize')
            peak = scale.peak_anon_bytes / MiB if scale and scale.peak_anon_bytes is not None else None
            self.target(f'scale {SCALE_SIZE[self.args.scale]}: finalize peak anon <= 512 MiB', peak, 512, unit=' MiB')
            linear = None
            mask_fin = self.get('mask', 'finalize')
            if scale and scale.wall_s and mask_fin and mask_fin.wall_s and self.scale_written:
                mask_pixels = self.cases['mask'].size ** 2
                predicted = mask_fin.wall_s * self.scale_written / mask_pixels
                linear = scale.wall_s / predicted
            elif scale and scale.wall_s:
                self.note('scale: no mask finalize in this run, so no linear-scaling ratio (add mask to --cases)')
            self.ratio('scale', 'finalize / linear from mask (wall per written pixel)', linear,
                       'scale-case wall over the mask case wall scaled by written pixels (1 = linear)')
            self.target('scale: finalize wall <= 1.25 x linear scaling from the mask case', linear, 1.25, unit=' x')
        for label, limit in (('write-patch', 0.35), ('--help', 0.25)):
            entry = self.startup.get(label)
            value = entry.get('median_s') if entry else None
            self.target(f'tifwriter {label}: median wall incl. start-up', value, limit, unit=' s')

    def compute_work_following(self) -> None:
        """Targets of 'cost follows the work': mean vs overwrite, sparse vs
        dense, many fragments vs one."""
        for name in ('mean32', 'mean8'):
            if name not in self.args.cases:
                continue
            mean, overwrite = self.get(name, 'finalize (mean)'), self.get(name, 'finalize (overwrite)')
            wall = self.ratio(name, 'finalize mean / overwrite (wall)', _div(mean, overwrite, 'wall_s'),
                              'the same windows merged by mean over overwrite')
            self.ratio(name, 'finalize mean / overwrite (CPU)', _div(mean, overwrite, 'cpu_s'),
                       'CPU seconds, same comparison (less sensitive to other load)')
            memory = self.ratio(name, 'finalize mean / overwrite (peak anon)', _div(mean, overwrite, 'peak_anon_bytes'),
                                'peak anonymous memory, same comparison')
            self.target(f'{name}: finalize under mean <= 1.3 x overwrite (wall)', wall, 1.3, unit=' x')
            self.target(f'{name}: finalize under mean peak anon <= 1.5 x overwrite', memory, 1.5, unit=' x')
        if 'sparse160k' in self.args.cases:
            sparse, dense = self.get('sparse', 'finalize'), self.get('mask', 'finalize')
            if sparse is not None and dense is None:
                self.note('sparse: no mask finalize in this run, so no sparse/dense ratio (add mask to --cases)')
            wall = self.ratio('sparse', 'finalize sparse canvas / mask canvas (wall)', _div(sparse, dense, 'wall_s'),
                              'the mask data inside a canvas 4x as wide and high over the mask canvas alone')
            self.ratio('sparse', 'finalize sparse canvas / mask canvas (CPU)', _div(sparse, dense, 'cpu_s'),
                       'CPU seconds, same comparison')
            self.target('sparse: finalize wall <= 1.1 x the same data on its own canvas', wall, 1.1, unit=' x')
        if 'fragments' in self.args.cases:
            many, one = self.get('fragments', f'finalize ({FRAGMENTS[self.args.scale]})'), self.get('fragments', 'finalize (1)')
            wall = self.ratio('fragments', 'finalize many fragments / one (wall)', _div(many, one, 'wall_s'),
                              f'the mask staged in {FRAGMENTS[self.args.scale]} fragments over 1 fragment')
            self.ratio('fragments', 'finalize many fragments / one (CPU)', _div(many, one, 'cpu_s'),
                       'CPU seconds, same comparison')
            memory = self.ratio('fragments', 'finalize many fragments / one (peak anon)', _div(many, one, 'peak_anon_bytes'),
                                'peak anonymous memory, same comparison')
            self.target('fragments: finalize wall <= 1.15 x one fragment', wall, 1.15, unit=' x')
            self.target('fragments: finalize peak anon <= 1.2 x one fragment', memory, 1.2, unit=' x')

    def note_interference(self) -> None:
        """Say which steps shared the machine with other work (and how much)."""
        cores = os.cpu_count() or 1
        disturbed = []
        for r in self.results:
            m = r.measurement
            if m is None or not m.ok or m.other_cpu_s is None:
                continue
            share = m.other_cpu_s / (m.wall_s * cores)
            if share > 0.05:
                disturbed.append(f'{r.case} {r.step} {share:.0%}')
        if disturbed:
            self.note(
                'CPU was busy outside the measured process tree during these steps (share of all '
                'cores; other processes, and kernel threads such as disk writeback, which a writing '
                'step causes itself): ' + ', '.join(disturbed)
                + '. Where it is other work, those timings are pessimistic: rerun on an idle machine.'
            )

    # -- output --------------------------------------------------------------
    def machine(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            'cpus': os.cpu_count(),
            'memory_gib': round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / (1 << 30), 1),
            'platform': platform.platform(),
            'python': platform.python_version(),
        }
        versions = subprocess.run(
            [self.python, '-c', _VERSIONS_SCRIPT], capture_output=True, text=True, env=self.env
        )
        if versions.returncode == 0:
            info.update(json.loads(versions.stdout))
        return info

    def table_rows(self) -> list[list[str]]:
        rows = []
        for r in self.results:
            if r.step == 'init':
                continue
            if r.skipped:
                rows.append([r.case, r.step, r.tool, 'skipped', '', '', '', '', r.skipped])
                continue
            if r.failed:
                rows.append([r.case, r.step, r.tool, 'FAILED', '', '', '', '', f'exit {r.measurement.returncode}'])
                continue
            rows.append([
                r.case,
                r.step,
                r.tool,
                f'{r.wall_s:.2f}',
                f'{r.cpu_s:.2f}',
                f'{r.peak_anon_bytes / MiB:.0f}',
                '' if r.throughput is None else f'{r.throughput:.0f}',
                '' if r.output_bytes is None else f'{r.output_bytes / MB:.1f}',
                r.note,
            ])
        return rows

    HEADER = ['case', 'step', 'tool', 'wall s', 'CPU s', 'peak anon MiB', 'MB/s', 'output MB', 'note']

    def print_report(self) -> str:
        lines = ['', 'Steps (each its own process; wall incl. interpreter start, except the floor: encode only)']
        lines += _text_table(self.HEADER, self.table_rows())
        lines += ['', 'Ratios']
        lines += _text_table(['case', 'ratio', 'value'], [
            [r['case'], r['ratio'], '' if r['value'] is None else f"{r['value']:.3f}"] for r in self.ratios
        ])
        lines += ['', 'Targets']
        lines += _text_table(['target', 'value', 'limit', 'status'], [
            [t['target'], '' if t['value'] is None else f"{t['value']:.3f}", t['limit'], t['status']]
            for t in self.targets
        ])
        if self.notes:
            lines += ['', 'Notes'] + [f'- {n}' for n in self.notes]
        text = '\n'.join(lines)
        print(text, flush=True)
        return text

    def write_files(self, machine: dict[str, Any], started: str, took: float) -> None:
        config = {
            'scale': self.args.scale,
            'cases': list(self.args.cases),
            'peers': sorted(self.peers),
            'seed': self.args.seed,
            'generator_version': GENERATOR_VERSION,
            'sizes': {name: case.size for name, case in self.cases.items()},
            'scale_case': {'size': SCALE_SIZE[self.args.scale], 'coverage': SCALE_COVERAGE},
            'jpeg_quality': JPEG_QUALITY,
            'tifwriter_command': self.tifwriter,
        }
        payload = {
            'started': started,
            'duration_s': round(took, 1),
            'machine': machine,
            'config': config,
            'steps': [r.as_dict() for r in self.results],
            'ratios': self.ratios,
            'targets': self.targets,
            'startup': self.startup,
            'notes': self.notes,
        }
        (self.out / 'results.json').write_text(json.dumps(payload, indent=2) + '\n')
        md = [
            f'# tifwriter benchmarks ({self.args.scale})',
            '',
            f"Run {started}, {took / 60:.1f} min, on {machine.get('cpus')} CPUs / "
            f"{machine.get('memory_gib')} GiB; tifwriter {machine.get('tifwriter', '?')}, "
            f"libvips {machine.get('libvips', 'n/a')}, numpy {machine.get('numpy', '?')}.",
            '',
            '## Steps',
            '',
            'Each step ran as its own process. wall: seconds incl. interpreter start (the codec floor: encode '
            'only); CPU: user+sys of the process tree; peak anon: max sum of RssAnon over the process tree.',
            '',
        ]
        md += _md_table(self.HEADER, self.table_rows())
        md += ['', '## Ratios', '']
        md += _md_table(['case', 'ratio', 'value', 'meaning'], [
            [r['case'], r['ratio'], '' if r['value'] is None else f"{r['value']:.3f}", r['meaning']]
            for r in self.ratios
        ])
        md += ['', '## Targets', '']
        md += _md_table(['target', 'value', 'limit', 'status'], [
            [t['target'], '' if t['value'] is None else f"{t['value']:.3f}", t['limit'], t['status']]
            for t in self.targets
        ])
        if self.notes:
            md += ['', '## Notes', ''] + [f'- {n}' for n in self.notes]
        (self.out / 'results.md').write_text('\n'.join(md) + '\n')

    def run(self) -> int:
        started = datetime.datetime.now().isoformat(timespec='seconds')
        t0 = time.perf_counter()
        self.out.mkdir(parents=True, exist_ok=True)
        self.log(f'scale {self.args.scale}; cases {",".join(self.args.cases)}; '
                 f'peers {",".join(sorted(self.peers))}; out {self.out}; inputs cache {self.cache}')
        machine = self.machine()
        self.run_startup()
        for name in self.args.cases:
            if name in self.cases:
                self.run_case(self.cases[name])
        for name in ('mean32', 'mean8'):
            if name in self.args.cases:
                self.run_windows(name)
        if 'sparse160k' in self.args.cases:
            self.run_sparse()
        if 'fragments' in self.args.cases:
            self.run_fragments()
        if 'scale160k' in self.args.cases:
            self.run_scale()
        self.compute()
        self.note_interference()
        took = time.perf_counter() - t0
        self.print_report()
        self.write_files(machine, started, took)
        if not self.args.keep:
            shutil.rmtree(self.work, ignore_errors=True)
        self.log(f'done in {took:.0f} s: {self.out / "results.json"}, {self.out / "results.md"}')
        failed = [r for r in self.results if r.failed] + [
            v for v in self.startup.values() if v.get('failed')
        ]
        if failed:
            return 1
        if self.args.strict and any(t['status'] == 'FAIL' for t in self.targets):
            return 2
        return 0


_VERSIONS_SCRIPT = r'''
import json
out = {}
try:
    import tifwriter_cli; out["tifwriter"] = tifwriter_cli.__version__
except Exception: pass
for name in ("numpy", "h5py", "tifffile", "imagecodecs"):
    try:
        out[name] = __import__(name).__version__
    except Exception: pass
try:
    import pyvips; out["libvips"] = "%d.%d.%d" % (pyvips.version(0), pyvips.version(1), pyvips.version(2))
except Exception: pass
print(json.dumps(out))
'''


def _div(a: StepResult | None, b: StepResult | None, attr: str) -> float | None:
    if a is None or b is None:
        return None
    top, bottom = getattr(a, attr), getattr(b, attr)
    if top is None or not bottom:
        return None
    return top / bottom


def _npy_header_bytes(path: Path) -> int:
    """Size of the .npy header, so throughputs count pixel bytes only."""
    import numpy

    with open(path, 'rb') as fh:
        version = numpy.lib.format.read_magic(fh)
        if version == (1, 0):
            numpy.lib.format.read_array_header_1_0(fh)
        else:
            numpy.lib.format.read_array_header_2_0(fh)
        return fh.tell()


def _remove_staging(staging: Path) -> None:
    remove_paths(staging, fragments_dir(staging))


def _text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)] if rows else [len(h) for h in header]
    fmt = '  '.join(f'{{:<{w}}}' for w in widths)
    return [fmt.format(*header), fmt.format(*('-' * w for w in widths))] + [fmt.format(*row) for row in rows]


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c).replace('|', '\\|') for c in row) + ' |' for row in rows]
    return lines


def _csv(value: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    items = tuple(v.strip() for v in value.split(',') if v.strip())
    unknown = [v for v in items if v not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f'unknown {what}: {", ".join(unknown)} (choose from {", ".join(allowed)})')
    return items


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark tifwriter against np.save, libvips, the codec floor and ASAP.',
    )
    parser.add_argument('--out', type=Path, default=Path('bench-output'),
                        help='results and scratch directory (default: ./bench-output)')
    parser.add_argument('--scale', choices=['small', 'full'], default='full',
                        help='full: 40k/20k inputs and the 160k scale case; small: tiny sizes (smoke test)')
    parser.add_argument('--cases', type=lambda v: _csv(v, ALL_CASES, 'case'), default=ALL_CASES,
                        help=f'comma-separated subset of {",".join(ALL_CASES)} (default: all)')
    parser.add_argument('--peers', type=lambda v: _csv(v, ALL_PEERS, 'peer'), default=ALL_PEERS,
                        help=f'comma-separated subset of {",".join(ALL_PEERS)} (default: all that are installed)')
    parser.add_argument('--cache', type=Path,
                        default=Path(os.environ.get('TIFWRITER_BENCH_CACHE', Path.home() / '.cache' / 'tifwriter-bench')),
                        help='where generated inputs are kept between runs (env TIFWRITER_BENCH_CACHE)')
    parser.add_argument('--seed', type=int, default=20240601, help='input generator seed')
    parser.add_argument('--startup-runs', type=int, default=5, help='runs for each start-up median')
    parser.add_argument('--keep', action='store_true', help='keep staging files and TIFFs under DIR/work')
    parser.add_argument('--repeat', type=int, default=1, metavar='N',
                        help='run each timed step N times and keep the fastest (noisy machines)')
    parser.add_argument('--wait-idle', type=float, default=0, metavar='SECONDS',
                        help='before each step, wait up to SECONDS for the machine to be idle (shared machines)')
    parser.add_argument('--strict', action='store_true', help='exit 2 when a target fails')
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    return Runner(parse_args(argv)).run()


if __name__ == '__main__':
    sys.exit(main())
