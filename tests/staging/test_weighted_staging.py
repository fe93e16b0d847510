"""The weighted merge through the staging unit: sliding windows written with
blend weights and crop margins equal the numpy model in any order and over
any number of writers; compact keeps the weights; the CLI options."""

from __future__ import annotations

import random

import numpy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.blending import Blend
from tifwriter_cli.errors import CorruptFragmentError, InvalidOptionError, PatchError
from tifwriter_cli.staging.layout import fragments_dir

from ..helpers.blending_model import WeightedModel, kept_mask, model_weights, seam_strength
from ..helpers.cli_checks import assert_clean_failure

WIDTH, HEIGHT = 40, 30


def model_canvas(windows, *, dtype, fill=0, channels=1, width=WIDTH, height=HEIGHT):
    """The canvas the windows must give, from the documented rules only."""
    WIDTH, HEIGHT = width, height  # this model's canvas
    model = WeightedModel(HEIGHT, WIDTH, channels, dtype, fill)
    for x, y, pixels, weight, margin in windows:
        h, w = pixels.shape[:2]
        keep = kept_mask(x, y, w, h, margin, WIDTH, HEIGHT)
        rows, cols = numpy.flatnonzero(keep.any(axis=1)), numpy.flatnonzero(keep.any(axis=0))
        x0, y0 = x + cols[0], y + rows[0]
        pixels = pixels[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        h, w = pixels.shape[:2]
        if isinstance(weight, numpy.ndarray):
            weights = numpy.rint(weight[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] * 4095).astype(numpy.int64)
        else:
            blend = Blend.of(weight or 'gaussian')
            border = (y0 <= 0, y0 + h >= HEIGHT, x0 <= 0, x0 + w >= WIDTH)
            weights = model_weights(blend.shape, blend.parameter, h, w, border)
        # Clip to the canvas.
        cy0, cx0 = max(y0, 0), max(x0, 0)
        cy1, cx1 = min(y0 + h, HEIGHT), min(x0 + w, WIDTH)
        if cy1 <= cy0 or cx1 <= cx0:
            continue
        model.add(cy0, cx0, pixels[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0],
                  weights[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0])
    return model.result()


def window_strategy(dtype):
    info = numpy.iinfo(dtype) if numpy.dtype(dtype).kind != 'f' else None

    @st.composite
    def window(draw):
        h, w = draw(st.integers(4, 20)), draw(st.integers(4, 20))
        x, y = draw(st.integers(-8, WIDTH - 2)), draw(st.integers(-8, HEIGHT - 2))
        seed = draw(st.integers(0, 2**32 - 1))
        rng = numpy.random.default_rng(seed)
        if info is not None:
            pixels = rng.integers(info.min, info.max, (h, w, 1), endpoint=True).astype(dtype)
        else:
            pixels = rng.uniform(-5, 5, (h, w, 1)).astype(dtype)
        kind = draw(st.sampled_from([None, 'gaussian', 'linear', 'flat', Blend('gaussian', sigma=0.3),
                                     Blend('linear', ramp=2), 'array']))
        weight = numpy.round(rng.random((h, w)), 3) if kind == 'array' else kind
        margin = draw(st.sampled_from([0, 0, 1, 3]))
        if not kept_mask(x, y, w, h, margin, WIDTH, HEIGHT).any():
            margin = 0
        return (x, y, pixels, weight, margin)

    return window


def stage(path, windows, *, sessions: int) -> None:
    """Write the windows in ``sessions`` writer sessions (fragments)."""
    for part in range(sessions):
        with tw.open_staging(path) as writer:
            for x, y, pixels, weight, margin in windows[part::sessions]:
                writer.write(x, y, pixels, weight=weight, crop_margin=margin)


@pytest.mark.parametrize('dtype', ['uint8', 'uint16', 'float32'])
@settings(max_examples=15, deadline=None)
@given(data=st.data())
def test_weighted_canvas_equals_the_model_in_any_order(dtype, data, tmp_path_factory) -> None:
    windows = data.draw(st.lists(window_strategy(dtype)(), min_size=1, max_size=12))
    expected = model_canvas(windows, dtype=dtype)
    results = []
    for attempt, order in enumerate((windows, random.Random(1).sample(windows, len(windows)))):
        path = tmp_path_factory.mktemp('w') / f's{attempt}.h5'
        tw.create_staging(path, tw.CanvasSpec(width=WIDTH, height=HEIGHT, dtype=dtype, merge='weighted',
                                              kind='probability'))
        stage(path, order, sessions=1 + attempt * 2)
        with tw.read_staging(path) as snapshot:
            results.append(snapshot.read_canvas())
            # Into a dirty buffer (finalize's reused segment buffers): the same pixels.
            into = numpy.full_like(results[-1], 7)
            snapshot.read_region_into(into, 0, 0)
            numpy.testing.assert_array_equal(into, results[-1])
    for got in results:
        if dtype == 'float32':
            numpy.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-5)
        else:
            numpy.testing.assert_array_equal(got, expected)
    if dtype != 'float32':
        numpy.testing.assert_array_equal(results[0], results[1])


def test_compact_keeps_the_weights(make_staging) -> None:
    from tifwriter_cli.housekeeping import compact

    staging = make_staging(width=WIDTH, height=HEIGHT, merge='weighted')
    rng = numpy.random.default_rng(0)
    windows = [(x, y, rng.integers(0, 255, (16, 16, 1)).astype(numpy.uint8), weight, 2)
               for (x, y), weight in zip([(0, 0), (8, 4), (20, 10), (30, 18)],
                                         ['gaussian', 'linear', rng.random((16, 16)), 'flat'], strict=True)]
    stage(staging, windows, sessions=4)
    with tw.read_staging(staging) as snapshot:
        before = snapshot.read_canvas()
    numpy.testing.assert_array_equal(before, model_canvas(windows, dtype='uint8'))
    assert compact(staging)[0] == 4
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.fragment_paths) == 1
        numpy.testing.assert_array_equal(snapshot.read_canvas(), before)


def test_weights_on_a_canvas_of_another_rule_are_refused(make_staging) -> None:
    staging = make_staging(width=10, height=10, merge='mean')
    with tw.open_staging(staging) as writer:
        with pytest.raises(PatchError, match="merge='weighted'"):
            writer.write(0, 0, numpy.ones((4, 4), numpy.uint8), weight='gaussian')
        # A crop margin works under every rule.
        assert writer.write(0, 0, numpy.full((6, 6), 9, numpy.uint8), crop_margin=2)
    with tw.read_staging(staging) as snapshot:
        canvas = snapshot.read_canvas()[..., 0]
    assert (canvas[:4, :4] == 9).all() and canvas.sum() == 9 * 16  # the two sides on the border kept


def test_weighted_units_carry_format_version_3(make_staging) -> None:
    assert tw.read_staging(make_staging(merge='weighted')).header.format_version == 3
    assert tw.read_staging(make_staging(merge='mean')).header.format_version == 2


def test_a_damaged_weighting_table_stops_the_read(make_staging) -> None:
    import h5py

    staging = make_staging(width=20, height=20, merge='weighted')
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.ones((8, 8), numpy.uint8))
    (fragment,) = sorted(fragments_dir(staging).glob('0*.h5'))
    with h5py.File(fragment, 'r+') as h5:
        table = h5['weighting'][()]
        table['window_width'] += 1
        h5['weighting'][...] = table
    with pytest.raises(CorruptFragmentError, match='weighting table does not match its checksum'):
        tw.read_staging(staging)


def test_restaging_a_key_with_another_blend_replaces_it(make_staging) -> None:
    staging = make_staging(width=20, height=20, merge='weighted')
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.full((8, 8), 10, numpy.uint8), key='w')
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.full((8, 8), 30, numpy.uint8), key='w', weight='linear')
    with tw.read_staging(staging) as snapshot:
        assert len(snapshot.patches) == 1
        assert snapshot.contributions['w'][3] == '0,0,exact;blend=linear'
        assert (snapshot.read_canvas()[:8, :8] == 30).all()


def test_gaussian_blended_windows_show_no_seam_in_the_finalized_tiff(tmp_path, make_staging) -> None:
    # Overlapping windows (stride half a window) over a smooth field, each
    # window off by its own bias, staged and finalized: the TIFF read back
    # bends smoothly where windows meet; the same windows under mean step.
    import tifffile

    side, stride, canvas_side, bias = 64, 32, 256, 10.0
    yy, xx = numpy.mgrid[0:canvas_side, 0:canvas_side].astype(numpy.float64)
    field = 100 + 20 * numpy.sin(xx / 40) * numpy.cos(yy / 55)
    strength = {}
    for merge in ('mean', 'weighted'):
        staging = make_staging(width=canvas_side, height=canvas_side, dtype='float32', kind='probability', merge=merge)
        rng = numpy.random.default_rng(3)
        with tw.open_staging(staging) as writer:
            for wy in range(0, canvas_side - side + 1, stride):
                for wx in range(0, canvas_side - side + 1, stride):
                    window = field[wy : wy + side, wx : wx + side] + rng.choice([-bias, bias])
                    writer.write(wx, wy, window.astype(numpy.float32))
        out = tmp_path / f'{merge}.tif'
        tw.finalize(staging, out)
        strength[merge] = seam_strength(tifffile.imread(out).reshape(canvas_side, canvas_side, 1), field)
    assert strength['mean'] > 0.5 * bias
    assert strength['weighted'] < 0.08 * bias, strength


def test_cli_blend_options(tmp_path, run_cli) -> None:
    staging = tmp_path / 's.h5'
    assert run_cli('init', staging, '--width', '64', '--height', '64', '--merge', 'weighted').exit_code == 0
    numpy.save(tmp_path / 'w_0_0.npy', numpy.full((32, 32), 100, numpy.uint8))
    numpy.save(tmp_path / 'w_16_0.npy', numpy.full((32, 32), 200, numpy.uint8))
    result = run_cli('write-patch', staging, tmp_path / 'w_0_0.npy', '--x', '0', '--y', '0',
                     '--blend', 'gaussian', '--sigma', '0.2', '--crop-margin', '4')
    assert result.exit_code == 0, result.output
    directory = tmp_path / 'more'
    directory.mkdir()
    (tmp_path / 'w_16_0.npy').rename(directory / 'w_16_0.npy')
    result = run_cli('ingest-npy-dir', staging, directory, '--blend', 'linear', '--ramp', '6', '--crop-margin', '4')
    assert result.exit_code == 0, result.output
    windows = [(0, 0, numpy.full((32, 32, 1), 100, numpy.uint8), Blend('gaussian', sigma=0.2), 4),
               (16, 0, numpy.full((32, 32, 1), 200, numpy.uint8), Blend('linear', ramp=6), 4)]
    expected = model_canvas(windows, dtype='uint8', width=64, height=64)
    with tw.read_staging(staging) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas(), expected)
    # The same file with another blend is another placement: staged again, replacing.
    result = run_cli('write-patch', staging, tmp_path / 'w_0_0.npy', '--x', '0', '--y', '0', '--blend', 'flat')
    assert 'replacing its earlier staging' in result.output
    # Mistakes: a parameter of another shape; blending on a mean canvas.
    line = assert_clean_failure(run_cli('write-patch', staging, tmp_path / 'w_0_0.npy', '--x', '0', '--y', '0',
                                        '--blend', 'linear', '--sigma', '0.3'), 2)
    assert 'sigma is a parameter of --blend gaussian' in line
    mean = tmp_path / 'm.h5'
    assert run_cli('init', mean, '--width', '64', '--height', '64', '--merge', 'mean').exit_code == 0
    line = assert_clean_failure(run_cli('write-patch', mean, tmp_path / 'w_0_0.npy', '--x', '0', '--y', '0',
                                        '--blend', 'gaussian'), 1)
    assert 'tifwriter init --merge weighted' in line


def test_blend_from_options() -> None:
    assert Blend.from_options(None) is None
    assert Blend.from_options(None, sigma=0.2) == Blend('gaussian', sigma=0.2)
    assert Blend.from_options(None, ramp=5) == Blend('linear', ramp=5)
    with pytest.raises(InvalidOptionError):
        Blend.from_options('flat', ramp=5)


def test_verify_checks_explicit_weight_arrays(make_staging) -> None:
    import h5py

    from tifwriter_cli.housekeeping import verify

    staging = make_staging(width=20, height=20, merge='weighted')
    with tw.open_staging(staging) as writer:
        writer.write(0, 0, numpy.full((8, 8), 5, numpy.uint8), weight=numpy.full((8, 8), 0.5))
    assert verify(staging).damaged == []
    (fragment,) = sorted(fragments_dir(staging).glob('0*.h5'))
    with h5py.File(fragment, 'r+') as h5:
        h5['weights']['0'][0, 0] = 7  # a flipped weight
    report = verify(staging)
    assert len(report.damaged) == 1 and 'does not match its checksum' in report.damaged[0][1]
