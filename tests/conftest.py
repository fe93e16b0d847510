"""Shared fixtures: staging factories, a CLI runner, reference readers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import numpy
import pytest
from click.testing import CliRunner

import tifwriter_cli as tw
from tifwriter_cli.cli.main import cli

from .readers import make_asap_importable

make_asap_importable()  # ASAP built in .cache/asap (see tests/readers.py)


@pytest.fixture
def make_staging(tmp_path: Path) -> Callable[..., Path]:
    """make_staging(**spec_fields) -> path of a new staging file in tmp_path."""
    counter = iter(range(1_000_000))

    def factory(name: str | None = None, **fields) -> Path:
        fields.setdefault('width', 300)
        fields.setdefault('height', 200)
        path = tmp_path / (name or f'staging{next(counter)}.h5')
        tw.create_staging(path, tw.CanvasSpec(**fields))
        return path

    return factory


@pytest.fixture
def run_cli() -> Callable[..., 'click.testing.Result']:
    """run_cli(*args) -> click Result, environment variables as in production."""
    runner = CliRunner()

    def invoke(*args: str | os.PathLike, input: str | None = None, env=None):
        return runner.invoke(
            cli,
            [str(a) for a in args],
            input=input,
            env=env,
            auto_envvar_prefix='TIFWRITER',
            catch_exceptions=False,
        )

    return invoke


def save_npy(path: Path, array: numpy.ndarray) -> Path:
    numpy.save(path, array)
    return path
