"""Patches as they come from models: anything with __array__ (a torch tensor
on the CPU), channel-first (C, H, W) with layout='chw', and the (C, H, W)
hint wherever a patch is checked."""

from __future__ import annotations

import numpy
import pytest

import tifwriter_cli as tw
from tifwriter_cli.errors import PatchError


class FakeTensor:
    """What tifwriter may rely on of a torch.Tensor on the CPU: __array__ (no torch dependency)."""

    def __init__(self, data: numpy.ndarray):
        self._data = data
        self.shape = data.shape

    def __array__(self, dtype=None, copy=None):
        return self._data if dtype is None else self._data.astype(dtype)


class FakeGpuTensor:
    """torch's CUDA tensors refuse __array__ with a TypeError."""

    shape = (4, 4)

    def __array__(self, dtype=None, copy=None):
        raise TypeError("can't convert cuda:0 device type tensor to numpy. Use Tensor.cpu()")


def test_a_tensor_like_object_is_staged_like_its_array(make_staging) -> None:
    staging = make_staging(width=20, height=10, channels=3)
    chw = numpy.arange(3 * 4 * 5, dtype=numpy.uint8).reshape(3, 4, 5)
    with tw.open_staging(staging) as writer:
        assert writer.write(2, 3, FakeTensor(chw), layout='chw')
        assert writer.write(10, 3, FakeTensor(chw.transpose(1, 2, 0)))  # HWC, the default
    with tw.read_staging(staging) as snapshot:
        canvas = snapshot.read_canvas()
    numpy.testing.assert_array_equal(canvas[3:7, 2:7], chw.transpose(1, 2, 0))
    numpy.testing.assert_array_equal(canvas[3:7, 10:15], chw.transpose(1, 2, 0))


def test_channel_first_patch_on_an_hwc_canvas_gets_the_hint_in_the_api(make_staging) -> None:
    staging = make_staging(width=20, height=20, channels=3)
    with tw.open_staging(staging) as writer, pytest.raises(PatchError, match=r"channel-first \(C, H, W\).*layout='chw'"):
        writer.write(0, 0, FakeTensor(numpy.zeros((3, 8, 8), numpy.uint8)))


def test_gpu_tensor_is_refused_with_a_hint(make_staging) -> None:
    staging = make_staging(width=20, height=20)
    with tw.open_staging(staging) as writer, pytest.raises(PatchError, match=r'tensor\.detach\(\)\.cpu\(\)'):
        writer.write(0, 0, FakeGpuTensor())


def test_bad_layout_is_refused(make_staging) -> None:
    staging = make_staging(width=20, height=20)
    with tw.open_staging(staging) as writer, pytest.raises(PatchError, match='layout must be one of hwc, chw'):
        writer.write(0, 0, numpy.zeros((2, 2), numpy.uint8), layout='whc')


def test_cli_gives_the_same_hint_for_a_channel_first_file(tmp_path, make_staging, run_cli) -> None:
    from ..helpers.cli_checks import assert_clean_failure

    staging = make_staging(width=20, height=20, channels=3)
    numpy.save(tmp_path / 'p.npy', numpy.zeros((3, 8, 8), numpy.uint8))
    line = assert_clean_failure(run_cli('write-patch', staging, tmp_path / 'p.npy', '--x', '0', '--y', '0'), 1)
    assert 'channel-first (C, H, W) = (3, 8, 8): pass --layout chw' in line


@pytest.mark.parametrize('command', ['write-patch', 'ingest-npy-dir'])
def test_cli_layout_chw_stages_channel_first_files(tmp_path, make_staging, run_cli, command) -> None:
    staging = make_staging(width=20, height=20, channels=3)
    directory = tmp_path / 'd'
    directory.mkdir()
    chw = numpy.arange(3 * 4 * 6, dtype=numpy.uint8).reshape(3, 4, 6)
    numpy.save(directory / 'tile_5_7.npy', chw)
    if command == 'write-patch':
        args = ('write-patch', staging, directory / 'tile_5_7.npy', '--x', '5', '--y', '7')
    else:
        args = ('ingest-npy-dir', staging, directory)
    result = run_cli(*args, '--layout', 'chw')
    assert result.exit_code == 0, result.output
    with tw.read_staging(staging) as snapshot:
        canvas = snapshot.read_canvas()
    numpy.testing.assert_array_equal(canvas[7:11, 5:11], chw.transpose(1, 2, 0))
    assert canvas.sum() == chw.sum()
