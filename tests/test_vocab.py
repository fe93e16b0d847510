"""The option vocabularies live in tifwriter_cli.vocab only: the CLI's choices
and the library's checks are those tuples, and no module keeps a copy."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import click
import pytest

import tifwriter_cli
from tifwriter_cli import vocab
from tifwriter_cli.cli.main import cli

PACKAGE = Path(tifwriter_cli.__file__).parent
VOCABULARIES = {name: getattr(vocab, name) for name in vocab.__all__ if isinstance(getattr(vocab, name), tuple)}


def test_vocab_imports_nothing_heavy():
    code = (
        'import json, sys; import tifwriter_cli.vocab; '
        "print(json.dumps(sorted(m for m in ('numpy', 'h5py', 'click', 'tifffile') if m in sys.modules)))"
    )
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize('name', sorted(VOCABULARIES))
def test_no_module_spells_a_vocabulary_out_again(name):
    values = VOCABULARIES[name]
    # The whole vocabulary as a literal tuple or list, or as a metavar. (A
    # subset, such as what one engine supports, is a rule of its own.)
    needles = {'|'.join(values)} if len(values) > 1 else set()
    for quote in ("'", '"'):
        needles.add(', '.join(f'{quote}{v}{quote}' for v in values))
    copies = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob('*.py')
        if path.name != 'vocab.py' and any(n in path.read_text(encoding='utf-8') for n in needles)
    ]
    assert copies == []


def _choices() -> dict[tuple[str, str], tuple[str, ...]]:
    """(command, option) -> the values of every click.Choice of the CLI."""
    found = {}
    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        for param in cli.get_command(ctx, name).params:
            if isinstance(param.type, click.Choice):
                found[name, param.name] = tuple(param.type.choices)
    return found


@pytest.mark.parametrize(
    'command, option, values',
    [
        ('init', 'dtype', vocab.DTYPES),
        ('init', 'merge', vocab.MERGE_RULES),
        ('init', 'kind', vocab.KINDS),
        ('write-patch', 'convert', vocab.CONVERT_MODES),
        ('write-patch', 'coords', vocab.COORDS),
        ('ingest-npy-dir', 'convert', vocab.CONVERT_MODES),
        ('ingest-npy-dir', 'coords', vocab.COORDS),
        ('ingest-npy-dir', 'on_error', vocab.ON_ERROR),
        ('finalize', 'flavor', vocab.FLAVORS),
    ],
)
def test_cli_choices_are_the_vocabularies(command, option, values):
    assert _choices()[command, option] == values


def test_finalize_metavars_list_the_vocabularies():
    ctx = click.Context(cli)
    params = {p.name: p for p in cli.get_command(ctx, 'finalize').params}
    assert params['compression'].metavar == f'[{"|".join(vocab.COMPRESSIONS)}]'
    assert params['resampling'].metavar == f'[{"|".join(vocab.RESAMPLINGS)}]'
    assert params['engine'].metavar == f'[{"|".join(vocab.ENGINES)}]'
    assert cli.get_command(ctx, 'ingest-npy-dir').params[2].default == vocab.DEFAULT_PATTERN


def test_every_value_has_its_implementation():
    """What the vocabularies name exists: a tag per compression, a reducer per
    resampling, a module per engine, target readers per flavour."""
    import importlib

    from tifwriter_cli.tiff import codecs, compat, pyramid

    assert set(codecs.COMPRESSION_TAGS) == set(vocab.COMPRESSIONS)
    assert set(pyramid._REDUCERS) | {'nearest'} == set(vocab.RESAMPLINGS)
    assert set(compat.FLAVORS) == set(vocab.FLAVORS)
    for engine in vocab.ENGINES:
        assert importlib.import_module(f'tifwriter_cli.engines.{engine}').ENGINE_CLASS


@pytest.mark.parametrize('dtype', vocab.DTYPES)
def test_the_library_accepts_every_value(dtype):
    from tifwriter_cli.spec import CanvasSpec

    for merge, kind in itertools.product(vocab.MERGE_RULES, vocab.KINDS):
        if kind == 'image' and dtype != 'uint8':
            continue
        CanvasSpec(width=8, height=8, dtype=dtype, merge=merge, kind=kind)
