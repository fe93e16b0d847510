"""Shared fixtures: staging factories, a CLI runner, slides.

Fixtures used by more than one test module live here (pytest finds them for
every folder below tests/); plain helpers and reference models live in
tests/helpers/ and are imported from there, never from another test module.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy
import pytest
from click.testing import Result

import tifwriter_cli as tw

from tests.helpers.cli_checks import invoke_cli
from tests.helpers.readers import make_asap_importable
from tests.helpers.slides import SLIDE_EDGE, SLIDE_H, SLIDE_LEFT, SLIDE_RIGHT, SLIDE_W, write_pyramid

make_asap_importable()  # ASAP built in .cache/asap (see tests/helpers/readers.py)


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
def run_cli() -> Callable[..., Result]:
    """run_cli(*args) -> click Result, environment variables as in production."""
    return invoke_cli


@pytest.fixture
def slide_image() -> numpy.ndarray:
    """SLIDE_H x SLIDE_W RGB: SLIDE_LEFT left of x = SLIDE_EDGE, SLIDE_RIGHT from there on."""
    image = numpy.empty((SLIDE_H, SLIDE_W, 3), numpy.uint8)
    image[:, :SLIDE_EDGE] = SLIDE_LEFT
    image[:, SLIDE_EDGE:] = SLIDE_RIGHT
    return image


@pytest.fixture
def slide(tmp_path: Path, slide_image: numpy.ndarray) -> Path:
    """slide_image as a tiled generic-tiff pyramid (downsamples 1, 2, 4, 8), SLIDE_MPP um/px."""
    return write_pyramid(tmp_path / 'slide.tif', slide_image)
