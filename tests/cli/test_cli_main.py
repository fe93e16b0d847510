"""The ``tifwriter`` group itself: version, help, environment variables,
verbosity, error mapping, ``python -m tifwriter_cli``, and docs/cli.md
covering every option."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap

import numpy
import pytest

import tifwriter_cli
from tifwriter_cli.cli.main import SUBCOMMANDS, cli
from tifwriter_cli.staging import read_canvas

from tests.helpers import doc_snippets
from tests.helpers.cli_checks import assert_clean_failure

HEAVY_MODULES = ('numpy', 'h5py', 'hdf5plugin', 'tifffile', 'imagecodecs', 'tqdm', 'openslide')

#: Runs main(ARGS) in a fresh interpreter, after optional IMPORTS, and reports
#: the exit code and which heavy modules got imported.
HELP_PROBE = textwrap.dedent(
    """
    import json, sys
    {imports}
    from tifwriter_cli.cli.main import main
    try:
        main({args!r})
        code = 0
    except SystemExit as exc:
        code = exc.code
    heavy = sorted(m for m in {heavy!r} if m in sys.modules)
    print(json.dumps({{'code': code, 'heavy': heavy}}))
    """
)


def probe(args: list[str], imports: str = '') -> tuple[str, dict]:
    code = HELP_PROBE.format(imports=imports, args=args, heavy=HEAVY_MODULES)
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    *help_lines, last = result.stdout.strip().splitlines()
    return '\n'.join(help_lines), json.loads(last)


def test_version(run_cli):
    result = run_cli('--version')
    assert result.exit_code == 0
    assert result.output.strip() == f'tifwriter, version {tifwriter_cli.__version__}'


def test_python_dash_m_is_the_same_program():
    result = subprocess.run(
        [sys.executable, '-m', 'tifwriter_cli', '--version'], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f'tifwriter, version {tifwriter_cli.__version__}'


def test_help_lists_every_command_without_importing_numpy_or_h5py():
    text, outcome = probe(['--help'])
    assert outcome == {'code': 0, 'heavy': []}
    listed = re.findall(r'^  (\S+)  ', text.split('Commands:')[1], re.M)
    assert listed == list(SUBCOMMANDS)
    # The probe does see a heavy import when there is one.
    _, control = probe(['--help'], imports='import tifwriter_cli.spec')
    assert 'numpy' in control['heavy']


@pytest.mark.parametrize('command', sorted(SUBCOMMANDS))
def test_command_help_imports_nothing_heavy(command):
    text, outcome = probe([command, '--help'])
    assert outcome == {'code': 0, 'heavy': []}
    assert text.startswith(f'Usage: tifwriter {command} ')


def test_unknown_command_is_a_usage_error(run_cli):
    result = run_cli('frobnicate')
    assert result.exit_code == 2
    assert "No such command 'frobnicate'" in result.stderr
    assert 'Traceback' not in result.output


def test_unknown_option_is_a_usage_error(run_cli, tmp_path):
    result = run_cli('init', tmp_path / 'x.h5', '--width', '10', '--height', '10', '--colour', 'red')
    assert result.exit_code == 2
    assert 'No such option' in result.stderr
    assert not (tmp_path / 'x.h5').exists()


# -- environment variables -------------------------------------------------------


def test_env_var_sets_an_option_and_the_command_line_wins(run_cli, tmp_path):
    env = {'TIFWRITER_INIT_TILE_SIZE': '256'}
    result = run_cli('init', tmp_path / 'a.h5', '--width', '100', '--height', '100', env=env)
    assert result.exit_code == 0, result.output
    assert read_canvas(tmp_path / 'a.h5').spec.tile_size == 256
    result = run_cli('init', tmp_path / 'b.h5', '--width', '100', '--height', '100',
                     '--tile-size', '128', env=env)
    assert result.exit_code == 0, result.output
    assert read_canvas(tmp_path / 'b.h5').spec.tile_size == 128


def test_env_var_reaches_finalize_workers(run_cli, make_staging, tmp_path, monkeypatch):
    import importlib

    # The module, whatever the package attribute of the same name holds.
    finalize_module = importlib.import_module('tifwriter_cli.finalization')

    seen = {}
    real_finalize = finalize_module.finalize

    def recording_finalize(*args, **kwargs):
        seen.update(kwargs)
        return real_finalize(*args, **kwargs)

    monkeypatch.setattr(finalize_module, 'finalize', recording_finalize)
    staging = make_staging(width=100, height=80)
    result = run_cli('finalize', staging, tmp_path / 'out.tif', env={'TIFWRITER_FINALIZE_WORKERS': '3'})
    assert result.exit_code == 0, result.output
    assert seen['workers'] == 3
    # A bad value is a usage error naming the option, as on the command line.
    result = run_cli('finalize', staging, tmp_path / 'out2.tif', env={'TIFWRITER_FINALIZE_WORKERS': '0'})
    assert result.exit_code == 2
    assert "'--workers'" in result.stderr
    assert not (tmp_path / 'out2.tif').exists()


def test_env_var_flags(run_cli, make_staging, tmp_path):
    staging = make_staging(width=100, height=80)
    out = tmp_path / 'out.tif'
    assert run_cli('finalize', staging, out).exit_code == 0
    assert run_cli('finalize', staging, out).exit_code == 1  # exists
    result = run_cli('finalize', staging, out, env={'TIFWRITER_FINALIZE_OVERWRITE': '1'})
    assert result.exit_code == 0, result.output


# -- verbosity -----------------------------------------------------------------------


def test_warnings_by_default_and_quiet_silences_them(run_cli, tmp_path):
    result = run_cli('init', tmp_path / 'a.h5', '--width', '10', '--height', '10')
    assert result.exit_code == 0
    assert 'tifwriter: warning: no --spacing given' in result.stderr
    quiet = run_cli('-q', 'init', tmp_path / 'b.h5', '--width', '10', '--height', '10')
    assert quiet.exit_code == 0
    assert 'warning' not in quiet.stderr
    assert quiet.stdout.startswith('created ')  # the result line stays
    env_quiet = run_cli('init', tmp_path / 'c.h5', '--width', '10', '--height', '10',
                        env={'TIFWRITER_QUIET': '1'})
    assert 'warning' not in env_quiet.stderr


def test_verbose_shows_info_logs(run_cli, make_staging, tmp_path):
    staging = make_staging(width=100, height=80)
    plain = run_cli('finalize', staging, tmp_path / 'a.tif')
    assert plain.exit_code == 0
    assert 'tifwriter: info:' not in plain.stderr
    verbose = run_cli('-v', 'finalize', staging, tmp_path / 'b.tif')
    assert verbose.exit_code == 0
    assert 'tifwriter: info: snapshot: ' in verbose.stderr  # ('wrote' is said once, on stdout)


# -- error mapping ----------------------------------------------------------------------


def test_expected_failure_is_one_line_exit_1(run_cli, tmp_path):
    result = run_cli('info', tmp_path / 'missing.h5')
    line = assert_clean_failure(result, 1)
    assert 'missing.h5 does not exist' in line


def test_ctrl_c_exits_130_and_leaves_no_output(run_cli, make_staging, tmp_path, monkeypatch):
    import tifwriter_cli.engines.native as native

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(native.NativeEngine, 'write', interrupted)
    staging = make_staging(width=100, height=80)
    with tifwriter_cli.open_staging(staging) as writer:  # (an empty canvas would add a warning)
        writer.write(0, 0, numpy.ones((4, 4), numpy.uint8))
    result = run_cli('finalize', staging, tmp_path / 'out.tif')
    assert result.exit_code == 130
    assert result.stderr.strip() == 'tifwriter: interrupted'
    assert sorted(p.name for p in tmp_path.iterdir() if 'out' in p.name) == []


# -- docs/cli.md -------------------------------------------------------------------------


@pytest.mark.parametrize('command', sorted(SUBCOMMANDS))
def test_cli_md_documents_every_option(command):
    import click

    text = (doc_snippets.ROOT / 'docs' / 'cli.md').read_text()
    section = text.split(f'\n## {command}\n', 1)[1].split('\n## ', 1)[0]
    ctx = click.Context(cli)
    params = cli.get_command(ctx, command).params
    for param in params:
        if isinstance(param, click.Option):
            assert any(f'`{opt}' in section or f'{opt} ' in section for opt in param.opts), (
                command, param.opts)
        else:
            assert param.human_readable_name in section, (command, param.name)


# -- messages in the user's words ------------------------------------------------------


def test_api_words_in_the_library_flags_on_the_command_line(tmp_path, run_cli):
    """The library says convert='clip'; the CLI says --convert clip, for the same failure."""
    import tifwriter_cli as tw
    from tifwriter_cli.errors import LossyConversionError

    staging = tmp_path / 's.h5'
    tw.create_staging(staging, tw.CanvasSpec(width=8, height=8))
    numpy.save(tmp_path / 'p.npy', numpy.full((2, 2), 300, numpy.int32))
    with tw.open_staging(staging) as writer, pytest.raises(LossyConversionError, match="convert='clip'"):
        writer.write(0, 0, numpy.full((2, 2), 300, numpy.int32))
    line = assert_clean_failure(run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 0, '--y', 0), 1)
    assert '--convert clip' in line and "convert='" not in line


def test_float_patch_on_labels_canvas_points_at_kind_probability(tmp_path, run_cli):
    import tifwriter_cli as tw

    staging = tmp_path / 'mask.h5'
    tw.create_staging(staging, tw.CanvasSpec(width=8, height=8, kind='labels'))
    numpy.save(tmp_path / 'p.npy', numpy.full((2, 2), 0.7, numpy.float32))
    line = assert_clean_failure(run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 0, '--y', 0), 1)
    assert 'tifwriter init --kind probability' in line and '--convert scale' not in line


def test_nan_with_convert_scale_is_one_clean_line(tmp_path, run_cli):
    import warnings

    import tifwriter_cli as tw

    staging = tmp_path / 'heat.h5'
    tw.create_staging(staging, tw.CanvasSpec(width=8, height=8, kind='probability', dtype='uint8'))
    numpy.save(tmp_path / 'p.npy', numpy.full((2, 2), numpy.nan, numpy.float32))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # a numpy RuntimeWarning would fail here
        result = run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', 0, '--y', 0, '--convert', 'scale')
    line = assert_clean_failure(result, 1)
    assert 'cannot store NaN' in line and '--convert clip stores NaN as 0' in line


def test_missing_staging_file_says_run_init_first(tmp_path, run_cli):
    numpy.save(tmp_path / 'p.npy', numpy.ones((2, 2), numpy.uint8))
    for args in (('write-patch', tmp_path / 'no.h5', tmp_path / 'p.npy', '--x', 0, '--y', 0),
                 ('finalize', tmp_path / 'no.h5', tmp_path / 'o.tif'),
                 ('info', tmp_path / 'no.h5')):
        assert '`tifwriter init`' in assert_clean_failure(run_cli(*args), 1)


def test_verbose_says_each_thing_once(tmp_path, run_cli):
    import tifwriter_cli as tw

    staging = tmp_path / 's.h5'
    tw.create_staging(staging, tw.CanvasSpec(width=8, height=8, spacing_x=0.5))
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.ones((2, 2), numpy.uint8))
    result = run_cli('-v', 'finalize', staging, tmp_path / 'o.tif')
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines() + result.stderr.splitlines()
    assert sum('wrote' in line for line in lines) == 1, lines
    assert sum('patches from' in line or 'patch(es) from' in line for line in lines) == 1, lines


def test_truncated_tiff_gives_one_line(tmp_path, run_cli):
    import tifwriter_cli as tw

    staging = tmp_path / 's.h5'
    tw.create_staging(staging, tw.CanvasSpec(width=600, height=600))
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.random.default_rng(0).integers(0, 9, (600, 600), dtype=numpy.uint8))
    assert run_cli('finalize', staging, tmp_path / 'o.tif').exit_code == 0
    data = (tmp_path / 'o.tif').read_bytes()
    (tmp_path / 'cut.tif').write_bytes(data[: len(data) // 2])
    result = run_cli('info', tmp_path / 'cut.tif')
    assert 'Traceback' not in result.output
    assert not [line for line in result.stderr.splitlines() if not line.startswith('tifwriter: ')], result.stderr
