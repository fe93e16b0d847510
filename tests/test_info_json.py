"""``info --json`` is a documented contract: docs/info-json.md lists exactly the keys it prints."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from pathlib import Path

import numpy
import pytest
import tifffile

import tifwriter_cli as tw
from tifwriter_cli.info import StagingInfo, TiffInfo


def _docs_dir() -> Path:
    for parent in Path(__file__).resolve().parents:
        if (parent / 'docs' / 'info-json.md').exists():
            return parent / 'docs'
    raise AssertionError('docs/info-json.md not found above the tests')


def documented_keys(section: str) -> set[str]:
    """Keys in the table after ``<!-- info-json: SECTION -->``."""
    lines = (_docs_dir() / 'info-json.md').read_text().splitlines()
    start = lines.index(f'<!-- info-json: {section} -->')
    keys = set()
    for line in lines[start + 1 :]:
        if not line.startswith('|'):
            break
        if line.startswith('| `'):
            keys.add(line.split('`')[1])
    return keys


def _nested(annotation: typing.Any) -> tuple[str, type] | None:
    """('one' | 'list' | 'dict', dataclass) when a field holds typed results."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _nested(arg)
            if found:
                return found
        return None
    if origin is list:
        (item,) = typing.get_args(annotation)
        return ('list', item) if dataclasses.is_dataclass(item) else None
    if origin is dict:
        _, item = typing.get_args(annotation)
        return ('dict', item) if dataclasses.is_dataclass(item) else None
    if dataclasses.is_dataclass(annotation):
        return 'one', annotation
    return None


def schema_keys(cls: type, prefix: str = '') -> set[str]:
    """Every key the typed result can print, in the docs' notation."""
    hints = typing.get_type_hints(cls)
    keys = set()
    for field in dataclasses.fields(cls):
        name = prefix + field.name
        keys.add(name)
        nested = _nested(hints[field.name])
        if nested:
            how, sub = nested
            joint = {'one': '.', 'list': '[].', 'dict': '.<reader>.'}[how]
            keys |= schema_keys(sub, name + joint)
    return keys


def emitted_keys(report: dict, prefix: str = '') -> set[str]:
    """Every key of printed JSON, in the docs' notation (provenance is one free-form key)."""
    keys = set()
    for key, value in report.items():
        name = prefix + key
        keys.add(name)
        if key == 'provenance':
            continue
        if isinstance(value, dict):
            if key == 'readers':
                for verdict in value.values():
                    keys |= emitted_keys(verdict, name + '.<reader>.')
            else:
                keys |= emitted_keys(value, name + '.')
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                keys |= emitted_keys(item, name + '[].')
    return keys


@pytest.mark.parametrize(('section', 'cls'), [('staging', StagingInfo), ('tiff', TiffInfo)])
def test_documented_keys_are_the_typed_fields(section, cls):
    assert documented_keys(section) == schema_keys(cls)


CLASS_KEYS = {'classes[].value', 'classes[].name', 'classes[].color'}


def test_staging_json_keys_are_documented(make_staging, run_cli):
    staging = make_staging(width=300, height=200, spacing_x=0.5, classes='background,tumour:#e41a1c')
    with tw.open_staging(staging) as writer:
        writer.write(10, 20, numpy.ones((40, 50), numpy.uint8))
    result = run_cli('info', staging, '--json')
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report['report'] == 'staging' and report['bbox'] is not None
    assert report['classes'][1] == {'value': 1, 'name': 'tumour', 'color': '#e41a1c'}
    assert emitted_keys(report) == documented_keys('staging')


def test_tiff_json_keys_are_documented(tmp_path, run_cli):
    # Someone else's TIFF with every optional part: a reduced level, an
    # untiled thumbnail IFD, a display range and a pixel size.
    path = tmp_path / 'other.tif'
    level0 = numpy.arange(128 * 96, dtype=numpy.uint8).reshape(96, 128)
    with tifffile.TiffWriter(path) as tif:
        range_tags = [(340, 'H', 1, (0,), False), (341, 'H', 1, (200,), False)]
        tif.write(level0, tile=(16, 16), resolution=(40000, 40000), resolutionunit='CENTIMETER',
                  extratags=range_tags)
        tif.write(level0[::2, ::2], tile=(16, 16), subfiletype=1)
        tif.write(level0[::8, ::8])  # untiled
    result = run_cli('info', path, '--json')
    report = json.loads(result.stdout)
    assert report['report'] == 'tiff'
    assert report['other_ifds'] and report['sample_range'] and report['spacing_um']
    assert report['classes'] == []  # no class table in someone else's TIFF: no class keys
    assert emitted_keys(report) == documented_keys('tiff') - CLASS_KEYS


def test_our_tiff_json_keys_are_documented(make_staging, run_cli, tmp_path):
    staging = make_staging(width=300, height=200, spacing_x=0.5, classes='0=background,2=stroma')
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.full((64, 64), 2, numpy.uint8))
    out = tmp_path / 'ours.tif'
    tw.finalize(staging, out)
    report = json.loads(run_cli('info', out, '--json').stdout)
    assert report['ok'] and report['provenance']['tool'].startswith('tifwriter ')
    assert [c['name'] for c in report['classes']] == ['background', 'stroma']
    # Ours has no untiled IFD: every other key is there.
    assert emitted_keys(report) == documented_keys('tiff') - {
        'other_ifds[].ifd', 'other_ifds[].width', 'other_ifds[].height', 'other_ifds[].tiled',
    }
