"""Staged canvas == numpy reference, for random patches and every merge rule (API)."""

from __future__ import annotations

import numpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import tifwriter_cli as tw
from tifwriter_cli.staging.layout import fragments_dir
from tifwriter_cli.staging.reader import GRID_CELL

from tests.helpers.reference import ReferenceCanvas

DTYPE_VALUES = {
    'uint8': st.integers(0, 255),
    'uint16': st.integers(0, 65535),
    'float32': st.floats(-1e6, 1e6, width=32, allow_nan=False),
}


@st.composite
def patch_plan(draw, width, height, channels, dtype):
    """A list of (x, y, array): overlapping, partly or wholly outside the canvas."""
    values = DTYPE_VALUES[dtype]
    patches = []
    for _ in range(draw(st.integers(1, 8))):
        h = draw(st.integers(1, 40))
        w = draw(st.integers(1, 40))
        x = draw(st.integers(-45, width + 5))
        y = draw(st.integers(-45, height + 5))
        kind = draw(st.sampled_from(['uniform', 'random', 'few']))
        if kind == 'uniform':
            array = numpy.full((h, w, channels), draw(values), dtype=dtype)
        elif kind == 'few':
            choices = numpy.array(draw(st.lists(values, min_size=1, max_size=3)), dtype=dtype)
            seed = draw(st.integers(0, 2**32 - 1))
            array = numpy.random.default_rng(seed).choice(choices, size=(h, w, channels))
        else:
            seed = draw(st.integers(0, 2**32 - 1))
            rng = numpy.random.default_rng(seed)
            if dtype == 'float32':
                array = rng.uniform(-1000, 1000, size=(h, w, channels)).astype(dtype)
            else:
                array = rng.integers(0, numpy.iinfo(dtype).max, size=(h, w, channels), endpoint=True).astype(dtype)
        patches.append((x, y, array))
    return patches


@pytest.mark.parametrize('merge', ['overwrite', 'mean', 'max', 'min'])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_patches_equal_reference(make_staging, merge, data):
    dtype = data.draw(st.sampled_from(['uint8', 'uint16', 'float32']))
    channels = data.draw(st.sampled_from([1, 3]))
    width = data.draw(st.integers(1, 70))
    height = data.draw(st.integers(1, 70))
    fill = data.draw(st.sampled_from([0, 7]))
    plan = data.draw(patch_plan(width, height, channels, dtype))
    # Several flushes: patches spread over several fragments in publish order.
    flush_after = data.draw(st.sets(st.integers(0, len(plan) - 1)))

    path = make_staging(width=width, height=height, channels=channels, dtype=dtype, fill=fill, merge=merge)
    reference = ReferenceCanvas(width, height, channels, dtype, fill, merge)
    with tw.open_staging(path) as staging:
        for number, (x, y, array) in enumerate(plan):
            staging.write(x, y, array if channels > 1 else array[:, :, 0])
            reference.write(x, y, array)
            if number in flush_after:
                staging.flush()

    with tw.read_staging(path) as snapshot:
        staged = snapshot.read_canvas()
        numpy.testing.assert_array_equal(staged, reference.result())
        # A sub-region read (what finalize does band by band) agrees too.
        x0, y0 = data.draw(st.integers(-5, width)), data.draw(st.integers(-5, height))
        w0, h0 = data.draw(st.integers(1, 30)), data.draw(st.integers(1, 30))
        region = snapshot.read_region(x0, y0, w0, h0)
        expected = numpy.full((h0, w0, channels), fill, dtype=dtype)
        ys, xs = slice(max(y0, 0), min(y0 + h0, height)), slice(max(x0, 0), min(x0 + w0, width))
        if ys.stop > ys.start and xs.stop > xs.start:
            expected[ys.start - y0 : ys.stop - y0, xs.start - x0 : xs.stop - x0] = reference.result()[ys, xs]
        numpy.testing.assert_array_equal(region, expected)
        # Into a buffer (what finalize does with its reused segment buffers,
        # which hold an earlier segment's pixels): the same pixels.
        out = numpy.full((h0, w0, channels), 3, dtype=dtype)
        snapshot.read_region_into(out, x0, y0)
        numpy.testing.assert_array_equal(out, expected)


def test_overwrite_follows_publish_order_across_writers(make_staging):
    path = make_staging(width=10, height=10, merge='overwrite')
    first = tw.open_staging(path)
    second = tw.open_staging(path)
    first.write(0, 0, numpy.full((10, 10), 1, numpy.uint8))
    second.write(0, 0, numpy.full((10, 10), 2, numpy.uint8))
    second.close()  # published first although written second
    first.close()
    with tw.read_staging(path) as snapshot:
        assert snapshot.read_canvas().max() == 1 == snapshot.read_canvas().min()


def test_region_query_scales_with_overlap_not_file_size(make_staging):
    """Only patches overlapping the region are considered (grid index)."""
    path = make_staging(width=8 * GRID_CELL, height=2 * GRID_CELL)
    with tw.open_staging(path) as staging:
        for i in range(64):
            staging.write(i * 128, 0, numpy.full((64, 64), 1 + i % 200, numpy.uint8))
            staging.flush()  # 64 fragments
    with tw.read_staging(path) as snapshot:
        assert len(snapshot.fragment_paths) == 64
        hits = snapshot.patches_overlapping(0, 0, 200, 10)
        assert sorted(snapshot.patches[hits]['x'].tolist()) == [0, 128]
        assert len(snapshot.patches_overlapping(0, 100, GRID_CELL, 10)) == 0


def test_wholly_outside_patch_stores_nothing(make_staging):
    path = make_staging(width=20, height=20)
    with tw.open_staging(path) as staging:
        assert staging.write(25, 0, numpy.ones((5, 5), numpy.uint8)) is False
        assert staging.write(-5, -5, numpy.ones((5, 5), numpy.uint8)) is False
        assert staging.write(-4, -4, numpy.ones((5, 5), numpy.uint8)) is True
    with tw.read_staging(path) as snapshot:
        canvas = snapshot.read_canvas()[:, :, 0]
        assert canvas.sum() == 1 and canvas[0, 0] == 1
        assert len(snapshot.patches) == 1


def test_interrupt_drops_only_unpublished_patches(make_staging):
    path = make_staging(width=20, height=20)
    with pytest.raises(KeyboardInterrupt):
        with tw.open_staging(path) as staging:
            staging.write(0, 0, numpy.full((5, 5), 3, numpy.uint8))
            staging.flush()
            staging.write(10, 10, numpy.full((5, 5), 4, numpy.uint8))
            raise KeyboardInterrupt
    with tw.read_staging(path) as snapshot:
        canvas = snapshot.read_canvas()[:, :, 0]
    assert canvas[0, 0] == 3 and canvas[12, 12] == 0
    assert not list(snapshot.fragments_dir.glob('.tmp-*'))


def test_error_in_user_code_still_publishes_returned_writes(make_staging):
    path = make_staging(width=20, height=20)
    with pytest.raises(RuntimeError):
        with tw.open_staging(path) as staging:
            staging.write(0, 0, numpy.full((5, 5), 3, numpy.uint8))
            raise RuntimeError('model crashed')
    with tw.read_staging(path) as snapshot:
        assert snapshot.read_canvas()[0, 0, 0] == 3


def test_periodic_publish_by_bytes(make_staging):
    path = make_staging(width=64, height=64)
    rng = numpy.random.default_rng(1)
    with tw.open_staging(path, publish_every_bytes=1000) as staging:
        for i in range(3):
            staging.write(i * 20, 0, rng.integers(0, 255, (20, 20), dtype=numpy.uint8))
        # each 400-byte patch... third pushes past 1000 bytes -> published before close
        assert len(staging.published) == 1
    with tw.read_staging(path) as snapshot:
        assert len(snapshot.fragment_paths) == 1  # the last flush had nothing left


def test_bad_patches_are_refused_before_anything_is_stored(make_staging):
    path = make_staging(width=20, height=20, channels=3)
    with tw.open_staging(path) as staging:
        with pytest.raises(tw.errors.PatchError, match='channels'):
            staging.write(0, 0, numpy.ones((5, 5), numpy.uint8))
        with pytest.raises(tw.errors.PatchError, match='4 channels'):
            staging.write(0, 0, numpy.ones((5, 5, 4), numpy.uint8))
        with pytest.raises(tw.errors.LossyConversionError, match="kind='probability'"):
            staging.write(0, 0, numpy.full((5, 5, 3), 0.5))
        with pytest.raises(tw.errors.LossyConversionError, match='do not fit'):
            staging.write(0, 0, numpy.full((5, 5, 3), 300, numpy.int32))
        with pytest.raises(tw.errors.PatchError, match='integer pixel position'):
            staging.write(0.5, 0, numpy.ones((5, 5, 3), numpy.uint8))
        staging.write(0, 0, numpy.full((5, 5, 3), 0.5), convert='scale')
        staging.write(5, 0, numpy.full((5, 5, 3), 300, numpy.int32), convert='clip')
        staging.write(10, 0, numpy.full((5, 5, 3), 7, numpy.int64))  # exact: fits
    with tw.read_staging(path) as snapshot:
        canvas = snapshot.read_canvas()
    assert canvas[0, 0].tolist() == [128, 128, 128]
    assert canvas[0, 5].tolist() == [255, 255, 255]
    assert canvas[0, 10].tolist() == [7, 7, 7]
    assert len(snapshot.patches) == 3


@pytest.mark.parametrize('merge', ['mean', 'overwrite'])
def test_a_source_staged_twice_counts_once_as_its_last_copy(make_staging, merge):
    """A retried job re-staging the same source file must not skew 'mean',
    and 'overwrite' must still see the last write last."""
    path = make_staging(width=4, height=1, merge=merge)
    source = ('tile_0_0.npy', 16, 123)
    with tw.open_staging(path) as staging:
        staging.write(0, 0, numpy.full((1, 4), 10, numpy.uint8), source=source)
    with tw.open_staging(path) as staging:
        staging.write(0, 0, numpy.full((1, 2), 20, numpy.uint8))  # another patch
    with tw.open_staging(path) as staging:
        staging.write(0, 0, numpy.full((1, 4), 10, numpy.uint8), source=source)  # the retry
    with tw.read_staging(path) as snapshot:
        canvas = snapshot.read_canvas()[0, :, 0].tolist()
        assert snapshot.duplicate_rows == 1 and snapshot.sources == {source}
        assert len(snapshot.patches) == 2
    # mean: (10 + 20) / 2 = 15 where both cover, not (10+20+10)/3
    assert canvas == ([15, 15, 10, 10] if merge == 'mean' else [10, 10, 10, 10])


def test_source_path_must_be_utf8(make_staging):
    path = make_staging(width=4, height=4)
    with tw.open_staging(path) as staging:
        with pytest.raises(tw.errors.PatchError, match='UTF-8'):
            staging.write(0, 0, numpy.ones((2, 2), numpy.uint8), source=('bad\udcff.npy', 1, 1))
        staging.write(0, 0, numpy.ones((2, 2), numpy.uint8), source=('good.npy', 1, 1))
    with tw.read_staging(path) as snapshot:
        assert snapshot.sources == {('good.npy', 1, 1)}


def test_storage_paths_read_back_exactly(make_staging):
    """Compressible patches (blosc-lz4), incompressible ones (stored plainly)
    and patches larger than one chunk (read through HDF5) all read back exactly."""
    from tifwriter_cli.staging.fragment import CODEC_BLOSC_LZ4, CODEC_NONE

    rng = numpy.random.default_rng(5)
    smooth = numpy.repeat(rng.integers(0, 4, (40, 1)), 300, axis=1).astype(numpy.uint16)
    noisy = rng.integers(0, 65535, (40, 300), dtype=numpy.uint16)
    big = rng.integers(0, 3, (1100, 1500), dtype=numpy.uint16)  # > 1024: several chunks
    path = make_staging(width=1600, height=1300, dtype='uint16')
    reference = ReferenceCanvas(1600, 1300, dtype='uint16')
    with tw.open_staging(path) as staging:
        for x, y, array in [(0, 0, smooth), (0, 50, noisy), (50, 150, big)]:
            staging.write(x, y, array)
            reference.write(x, y, array)
    with tw.read_staging(path) as snapshot:
        assert snapshot.patches['codec'].tolist() == [CODEC_BLOSC_LZ4, CODEC_NONE, CODEC_BLOSC_LZ4]
        numpy.testing.assert_array_equal(snapshot.read_canvas(), reference.result())
        # A band cutting through the multi-chunk patch.
        numpy.testing.assert_array_equal(
            snapshot.read_region(40, 1000, 600, 300), reference.result()[1000:1300, 40:640]
        )


def test_fragments_without_the_codec_column_still_read(make_staging):
    """Fragments from before the codec column (all blosc-lz4) read as before."""
    import h5py

    path = make_staging(width=40, height=40)
    patch = numpy.repeat(numpy.arange(40, dtype=numpy.uint8)[None, :], 40, axis=0)
    with tw.open_staging(path) as staging:
        staging.write(0, 0, patch)
    (fragment,) = fragments_dir(path).glob('*.h5')
    with h5py.File(fragment, 'r+') as h5:
        old = h5['index'][()]
        names = [n for n in old.dtype.names if n != 'codec']
        del h5['index']
        h5['index'] = old[names]
    with tw.read_staging(path) as snapshot:
        numpy.testing.assert_array_equal(snapshot.read_canvas()[:, :, 0], patch)


def test_mean_accumulator_widens_its_sums_after_many_patches() -> None:
    # uint8 means are summed in 32 bits with a 16-bit count while few
    # patches were added; past 65535 adds both are widened, and the result
    # is still the exact rounded mean.
    from tifwriter_cli.staging.merge import new_accumulator

    acc = new_accumulator('mean', (2, 3, 1), numpy.dtype('uint8'), 0)
    for number in range(70000):
        acc.add(slice(0, 2), slice(0, 2), numpy.uint8(255 if number % 2 else 254))
    acc.add(slice(0, 1), slice(2, 3), numpy.uint8(9))
    got = acc.result()
    assert got.dtype == numpy.uint8
    # (35000 * 255 + 35000 * 254) / 70000 = 254.5 -> 254 (ties to even)
    numpy.testing.assert_array_equal(got[:, :2, 0], 254)
    assert got[0, 2, 0] == 9 and got[1, 2, 0] == 0


def _exact_rounded_mean(sums: numpy.ndarray, counts: numpy.ndarray) -> numpy.ndarray:
    """Reference: the exact mean of integers rounded to nearest, ties to
    even, in integer arithmetic only (int64 floor division)."""
    counts = numpy.maximum(counts, 1)
    quotient, remainder = numpy.divmod(sums, counts)
    twice = 2 * remainder
    up = (twice > counts) | ((twice == counts) & (quotient % 2 == 1))
    return quotient + up


@pytest.mark.parametrize('dtype', ['uint8', 'int8', 'uint16', 'int16'])
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_integer_mean_accumulator_equals_exact_rounding(dtype, data) -> None:
    # Random rectangles of random values (extremes included), often enough
    # to cross the accumulator's first widening (255 adds) in some runs;
    # pixels covered once, several times and never (fill).
    from tifwriter_cli.staging.merge import new_accumulator

    info = numpy.iinfo(dtype)
    values = st.integers(int(info.min), int(info.max))
    height, width, channels = data.draw(st.integers(1, 6)), data.draw(st.integers(1, 6)), data.draw(st.sampled_from([1, 3]))
    fill = data.draw(st.sampled_from([0, 7]))
    acc = new_accumulator('mean', (height, width, channels), numpy.dtype(dtype), fill)
    sums = numpy.zeros((height, width, channels), numpy.int64)
    counts = numpy.zeros((height, width, 1), numpy.int64)
    adds = data.draw(st.sampled_from([1, 2, 5, 254, 255, 256, 300]))
    extreme = data.draw(st.sampled_from([None, int(info.min), int(info.max)]))
    seed = data.draw(st.integers(0, 2**32 - 1))
    rng = numpy.random.default_rng(seed)
    for _ in range(adds):
        y0, x0 = int(rng.integers(0, height)), int(rng.integers(0, width))
        y1, x1 = int(rng.integers(y0 + 1, height + 1)), int(rng.integers(x0 + 1, width + 1))
        rows, cols = slice(y0, y1), slice(x0, x1)
        if extreme is not None and rng.random() < 0.7:
            patch = numpy.full((y1 - y0, x1 - x0, channels), extreme, dtype)
        else:
            patch = rng.integers(info.min, info.max, (y1 - y0, x1 - x0, channels), endpoint=True).astype(dtype)
        if rng.random() < 0.3:  # a uniform patch arrives as a scalar
            scalar = numpy.dtype(dtype).type(data.draw(values))
            acc.add(rows, cols, scalar)
            sums[rows, cols] += int(scalar)
        else:
            acc.add(rows, cols, patch)
            sums[rows, cols] += patch
        counts[rows, cols] += 1
    expected = _exact_rounded_mean(sums, counts)
    expected = numpy.where(counts == 0, fill, expected).astype(dtype)
    got = acc.result()
    assert got.dtype == numpy.dtype(dtype)
    numpy.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    ('dtype', 'high', 'low', 'high_adds', 'low_adds'),
    [
        # The nearest non-ties a float32 quotient must not mistake for
        # ties: the exact mean lies 1/(2 count) from k + 1/2, with the
        # largest count each float32 stage serves.
        ('uint8', 255, 254, 32767, 32768),  # 254.4999924 -> 254
        ('uint8', 255, 254, 32768, 32767),  # 254.5000076 -> 255
        ('uint16', 65535, 65534, 127, 128),  # 65534.498 -> 65534
        ('uint16', 65535, 65534, 128, 127),  # 65534.502 -> 65535
        ('uint8', 3, 2, 1, 1),  # a tie: 2.5 -> 2
        ('uint8', 4, 3, 1, 1),  # a tie: 3.5 -> 4
    ],
)
def test_integer_mean_next_to_a_tie_is_exact(dtype, high, low, high_adds, low_adds) -> None:
    from tifwriter_cli.staging.merge import new_accumulator

    acc = new_accumulator('mean', (1, 1, 1), numpy.dtype(dtype), 0)
    for value, adds in ((high, high_adds), (low, low_adds)):
        for _ in range(adds):
            acc.add(slice(0, 1), slice(0, 1), numpy.dtype(dtype).type(value))
    count = high_adds + low_adds
    expected = _exact_rounded_mean(numpy.array([high * high_adds + low * low_adds]), numpy.array([count]))
    assert acc.result()[0, 0, 0] == expected[0]
