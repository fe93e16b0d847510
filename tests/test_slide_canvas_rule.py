"""The ONE slide -> canvas rule, pinned for every way a patch gets placed.

docs/guide.md (the --coords slide paragraph): a patch given at slide level-0 pixel
(x, y) on a canvas at slide downsample D lands at canvas pixel
``(floor(x / D), floor(y / D))``, the quotient taken in decimal arithmetic
(D as written: 33 at D = 1.1 is canvas pixel 30). ``write-patch --coords
slide``, ``ingest-npy-dir --coords slide``, the API's ``ingest_npy_dir(...,
coords='slide')`` and ``slide_to_canvas`` + ``write`` must all put the
patch's pixels exactly there (clipped at the border like any patch). The
model below is that sentence in Fractions, never tifwriter_cli's code.
"""

from __future__ import annotations

import math
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy
from hypothesis import given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.slide import slide_to_canvas

from tests.helpers import REPO
from tests.helpers.cli_checks import invoke_cli
from tests.helpers.reference import ReferenceCanvas

WIDTH, HEIGHT = 40, 32
PATCH_H, PATCH_W = 3, 5


def documented_position(x: int, y: int, downsample: float) -> tuple[int, int]:
    """docs/guide.md's rule: floor(x / D), floor(y / D), D as the decimal written."""
    factor = Fraction(repr(downsample))
    return math.floor(Fraction(x) / factor), math.floor(Fraction(y) / factor)


# Downsamples as users write them: integers (exact division) and decimals
# with up to two places, from 0.1 to 64 (e.g. a spacing ratio 4 / 0.25).
DOWNSAMPLES = st.one_of(
    st.integers(1, 64).map(float),
    st.integers(10, 6400).map(lambda n: n / 100),
)


@st.composite
def placements(draw):
    """(D, x, y): slide positions whose patch lands at least partly on the
    canvas (clipped at any border); wholly outside is a refusal, tested with
    the commands."""
    downsample = draw(DOWNSAMPLES)
    factor = Fraction(repr(downsample))
    # floor(v / D) in [1 - patch, extent - 1]  <=>  v in [ceil((1 - patch) D), ceil(extent D) - 1]
    x = draw(st.integers(math.ceil((1 - PATCH_W) * factor), math.ceil(WIDTH * factor) - 1))
    y = draw(st.integers(math.ceil((1 - PATCH_H) * factor), math.ceil(HEIGHT * factor) - 1))
    return downsample, x, y


def expected_canvas(x: int, y: int, downsample: float, patch: numpy.ndarray) -> numpy.ndarray:
    reference = ReferenceCanvas(WIDTH, HEIGHT)
    reference.write(*documented_position(x, y, downsample), patch)
    return reference.result()


def staged_canvas(path: Path) -> numpy.ndarray:
    with tw.read_staging(path) as snapshot:
        return snapshot.read_canvas()


def new_staging(path: Path, downsample: float) -> Path:
    tw.create_staging(path, tw.CanvasSpec(width=WIDTH, height=HEIGHT, slide_downsample=downsample))
    return path


def run(*args) -> None:
    result = invoke_cli(*args)
    assert result.exit_code == 0, result.output


@settings(max_examples=60, deadline=None)
@given(placement=placements(), seed=st.integers(0, 2**16))
def test_every_way_in_places_a_slide_position_by_the_documented_rule(placement, seed):
    downsample, x, y = placement
    patch = numpy.random.default_rng(seed).integers(1, 255, (PATCH_H, PATCH_W), dtype=numpy.uint8)
    expected = expected_canvas(x, y, downsample, patch)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        patches = tmp / 'patches'
        patches.mkdir()
        source = patches / f'heat_{x}_{y}.npy'
        numpy.save(source, patch)

        via_write_patch = new_staging(tmp / 'write-patch.h5', downsample)
        run('write-patch', via_write_patch, source, '--x', x, '--y', y, '--coords', 'slide')

        via_ingest = new_staging(tmp / 'ingest.h5', downsample)
        run('ingest-npy-dir', via_ingest, patches, '--pattern', 'heat_{x}_{y}.npy', '--coords', 'slide')

        via_api_ingest = new_staging(tmp / 'api-ingest.h5', downsample)
        report = tw.ingest_npy_dir(via_api_ingest, patches, pattern='heat_{x}_{y}.npy', coords='slide')
        assert report.ok and not report.failed

        via_api_write = new_staging(tmp / 'api-write.h5', downsample)
        with tw.open_staging(via_api_write) as writer:
            writer.write(*slide_to_canvas(x, y, downsample), patch)

        for path in (via_write_patch, via_ingest, via_api_ingest, via_api_write):
            numpy.testing.assert_array_equal(staged_canvas(path)[:, :, 0], expected[:, :, 0], err_msg=path.name)


@settings(max_examples=300, deadline=None)
@given(placement=placements())
def test_slide_to_canvas_is_the_documented_rule(placement):
    downsample, x, y = placement
    assert slide_to_canvas(x, y, downsample) == documented_position(x, y, downsample)


def test_the_guide_states_the_rule():
    guide = (REPO / 'docs' / 'guide.md').read_text()
    assert '`floor(x / D), floor(y / D)`' in guide
    assert '33 at D = 1.1' in guide  # the decimal reading of the quotient


def test_the_issue_example_33_at_1_1_is_30():
    # The two former copies of the rule disagreed here (30 by rounding, 29 by
    # a binary-float floor); the documented decimal rule says 30.
    assert documented_position(33, 33, 1.1) == (30, 30)
    assert slide_to_canvas(33, 33, 1.1) == (30, 30)
