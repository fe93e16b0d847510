"""Our BigTIFF writer: tags, IFD chain, shared tile offsets; read back with tifffile."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy
import pytest
import tifffile

from tifwriter_cli.tiff.bigtiff import BigTiffWriter, ImageInfo, rational
from tifwriter_cli.tiff.codecs import tile_encoder
from tifwriter_cli.tiff.plan import LevelPlan


def write_levels(path: Path, images: list[numpy.ndarray], tiles: list[int], info: ImageInfo, encoder) -> BigTiffWriter:
    """Write each image as one level, tiles in a scrambled order."""
    levels = [LevelPlan(i, im.shape[1], im.shape[0], t) for i, (im, t) in enumerate(zip(images, tiles, strict=True))]
    rng = numpy.random.default_rng(0)
    writer = BigTiffWriter(path, levels, info)
    jobs = [(lv.index, r, c) for lv in levels for r in range(lv.tiles_down) for c in range(lv.tiles_across)]
    for index in rng.permutation(len(jobs)):
        level, row, col = jobs[index]
        t = levels[level].tile
        part = images[level][row * t : (row + 1) * t, col * t : (col + 1) * t]
        full = numpy.zeros((t, t, part.shape[2]), part.dtype)
        full[: part.shape[0], : part.shape[1]] = part
        writer.write_tile(level, row, col, encoder.encode(full))
    writer.set_sample_range([0] * info.channels, [9] * info.channels)
    writer.close()
    return writer


def make_info(dtype='uint8', channels=1, compression='lzw', **kw) -> tuple[ImageInfo, object]:
    encoder = tile_encoder(compression, dtype=dtype, channels=channels)
    info = ImageInfo(
        dtype=dtype,
        channels=channels,
        compression=encoder.tag,
        photometric=encoder.photometric,
        extra_samples=encoder.extra_samples,
        extra_tags=encoder.extra_tags,
        **kw,
    )
    return info, encoder


def test_levels_tags_and_chain(tmp_path: Path) -> None:
    rng = numpy.random.default_rng(1)
    level0 = rng.integers(0, 5, (200, 300, 1)).astype(numpy.uint8)
    level1 = level0[::2, ::2].copy()
    level2 = level1[::2, ::2].copy()
    info, encoder = make_info(
        pixels_per_cm=(40000.0, 20000.0), description='tifwriter test; kind=labels', software='tifwriter x'
    )
    path = tmp_path / 'a.tif'
    write_levels(path, [level0, level1, level2], [64, 48, 32], info, encoder)
    with tifffile.TiffFile(path) as tif:
        assert tif.is_bigtiff
        assert len(tif.pages) == 3  # a single top-level chain, no SubIFDs
        for number, (page, image, tile) in enumerate(zip(tif.pages, [level0, level1, level2], [64, 48, 32], strict=True)):
            assert page.is_tiled and (page.tilewidth, page.tilelength) == (tile, tile)
            assert int(page.tags['NewSubfileType'].value) == (0 if number == 0 else 1)
            assert page.tags['TileOffsets'].dtype == 16  # LONG8
            assert page.tags['TileByteCounts'].dtype == 16
            assert min(page.databytecounts) > 0
            assert int(page.compression) == 5 and int(page.photometric) == 1
            assert int(page.planarconfig) == 1 and int(page.sampleformat) == 1
            assert 'SubIFDs' not in page.tags
            assert page.tags['ResolutionUnit'].value == 3
            x_num, x_den = page.tags['XResolution'].value
            y_num, y_den = page.tags['YResolution'].value
            assert x_num / x_den == pytest.approx(40000.0 / 2**number, rel=1e-9)
            assert y_num / y_den == pytest.approx(20000.0 / 2**number, rel=1e-9)
            assert page.software == 'tifwriter x'
            numpy.testing.assert_array_equal(page.asarray(), image[..., 0])
        assert tif.pages[0].description == 'tifwriter test; kind=labels'
        assert 'ImageDescription' not in tif.pages[1].tags
        assert tif.pages[0].tags['SMaxSampleValue'].value == 9
        assert 'SMaxSampleValue' not in tif.pages[1].tags


def test_identical_tiles_share_one_offset(tmp_path: Path) -> None:
    image = numpy.zeros((256, 256, 1), numpy.uint8)
    image[:64, :64] = 3  # one distinct tile; the other 15 are identical
    info, encoder = make_info()
    path = tmp_path / 'b.tif'
    writer = write_levels(path, [image], [64], info, encoder)
    assert writer.tiles_written == 16 and writer.tiles_stored == 2
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        pairs = set(zip(page.dataoffsets, page.databytecounts, strict=True))
        assert len(pairs) == 2
        assert sum(1 for o in page.dataoffsets if o == page.dataoffsets[1]) == 15
        numpy.testing.assert_array_equal(page.asarray(), image[..., 0])


@pytest.mark.parametrize(
    'dtype, channels, compression, photometric, extra',
    [
        ('uint8', 3, 'lzw', 2, None),
        ('uint8', 4, 'deflate', 2, 2),  # unassociated alpha
        ('uint16', 2, 'zstd', 1, 0),
        ('float32', 1, 'none', 1, None),
        ('uint32', 5, 'lzw', 1, 0),
    ],
)
def test_pixel_types(tmp_path: Path, dtype, channels, compression, photometric, extra) -> None:
    rng = numpy.random.default_rng(2)
    image = (rng.random((70, 90, channels)) * 1000).astype(dtype)
    info, encoder = make_info(dtype, channels, compression)
    path = tmp_path / 'c.tif'
    write_levels(path, [image], [32], info, encoder)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert int(page.photometric) == photometric
        assert int(page.sampleformat) == (3 if dtype == 'float32' else 1)
        assert page.bitspersample == numpy.dtype(dtype).itemsize * 8
        if extra is None:
            assert 'ExtraSamples' not in page.tags
        else:
            values = page.tags['ExtraSamples'].value
            values = values if isinstance(values, tuple) else (values,)
            assert values == (extra,) * (channels - (3 if photometric == 2 else 1))
        read = page.asarray()
        numpy.testing.assert_array_equal(read.reshape(image.shape), image)
        assert int(page.compression) == {'lzw': 5, 'deflate': 32946, 'zstd': 50000, 'none': 1}[compression]


def test_jpeg_rgb_is_ycbcr_like_tifffile(tmp_path: Path) -> None:
    yy, xx = numpy.mgrid[0:64, 0:64]
    image = numpy.stack([xx * 4, yy * 4, (xx + yy) * 2], axis=-1).astype(numpy.uint8)
    info, encoder = make_info('uint8', 3, 'jpeg')
    path = tmp_path / 'j.tif'
    write_levels(path, [image], [64], info, encoder)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        assert int(page.compression) == 7 and int(page.photometric) == 6
        assert page.tags['YCbCrSubSampling'].value == (2, 2)
        assert page.tags['ReferenceBlackWhite'].value == (0, 1, 255, 1, 128, 1, 255, 1, 128, 1, 255, 1)
        read = page.asarray().astype(float)
    psnr = 10 * numpy.log10(255**2 / ((read - image) ** 2).mean())
    assert psnr > 35


def test_missing_tile_refused_at_close(tmp_path: Path) -> None:
    info, encoder = make_info()
    writer = BigTiffWriter(tmp_path / 'd.tif', [LevelPlan(0, 64, 32, 16)], info)
    for col in range(4):
        writer.write_tile(0, 0, col, b'x')
    with pytest.raises(RuntimeError, match='never written'):
        writer.close()
    writer.abort()
    with pytest.raises(ValueError):
        BigTiffWriter(tmp_path / 'e.tif', [LevelPlan(0, 16, 16, 16)], info).write_tile(0, 0, 0, b'')
    with pytest.raises(IndexError):
        BigTiffWriter(tmp_path / 'f.tif', [LevelPlan(0, 16, 16, 16)], info).write_tile(0, 1, 0, b'x')


def test_tile_run_equals_tiles_one_by_one(tmp_path: Path) -> None:
    """write_tile(count=n) is n write_tile calls of the same bytes: the
    files are byte-identical, and a run may not reach past its row."""
    info, _ = make_info()
    levels = [LevelPlan(0, 80, 32, 16)]  # 5 x 2 tiles
    tiles = {(row, col): bytes([row * 5 + col + 1]) * 3 for row in range(2) for col in range(5)}
    one_by_one, runs = tmp_path / 'one.tif', tmp_path / 'runs.tif'
    with BigTiffWriter(one_by_one, levels, info) as writer:
        for row in range(2):
            for col in range(5):
                writer.write_tile(0, row, col, b'same' if row == 1 and col >= 1 else tiles[row, col])
    with BigTiffWriter(runs, levels, info) as writer:
        for col in range(5):
            writer.write_tile(0, 0, col, tiles[0, col])
        writer.write_tile(0, 1, 0, tiles[1, 0])
        writer.write_tile(0, 1, 1, b'same', count=4)
        assert writer.tiles_written == 10
        with pytest.raises(IndexError):
            writer.write_tile(0, 1, 2, b'same', count=4)
    assert one_by_one.read_bytes() == runs.read_bytes()


def test_header_points_at_level0(tmp_path: Path) -> None:
    image = numpy.ones((16, 16, 1), numpy.uint8)
    info, encoder = make_info()
    path = tmp_path / 'g.tif'
    write_levels(path, [image], [16], info, encoder)
    head = path.read_bytes()[:16]
    assert head[:4] == b'II+\x00'
    assert struct.unpack('<HH', head[4:8]) == (8, 0)
    first_ifd = struct.unpack('<Q', head[8:16])[0]
    assert first_ifd % 8 == 0 and first_ifd > 16


@pytest.mark.parametrize('value', [40000.0, 1 / 3, 10000 / 0.2431, 12345678.9, 1e-6, 5e9])
def test_rational(value: float) -> None:
    numerator, denominator = rational(value)
    assert 0 < numerator < 2**32 and 0 < denominator < 2**32
    if 1e-3 < value < 2**32:
        assert numerator / denominator == pytest.approx(value, rel=1e-7)
