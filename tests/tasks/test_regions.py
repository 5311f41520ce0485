"""Region maps: exact patches, SLIC superpixels that keep to colour edges, region means by hand."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.tasks.regions import _RegionCache, region_map, region_means


def halves(height: int = 32, width: int = 32, edge: int = 16) -> np.ndarray:
    """Black left of column ``edge``, white from it on."""
    image = np.zeros((height, width, 3), np.uint8)
    image[:, edge:] = 255
    return image


def assert_keeps_to(regions: np.ndarray, image: np.ndarray) -> None:
    """Every region lies on one colour of ``image`` and the ids are 0..R-1."""
    flat = image.reshape(len(image), image.shape[1], -1)
    for r in range(int(regions.max()) + 1):
        assert len(np.unique(flat[regions == r], axis=0)) == 1, f"region {r} straddles a colour edge"
    assert set(np.unique(regions)) == set(range(int(regions.max()) + 1))


def test_patches_number_a_grid_row_by_row() -> None:
    regions = region_map(np.zeros((5, 7), np.uint8), "patch", 3)
    expected = np.array([[0, 0, 0, 1, 1, 1, 2]] * 3 + [[3, 3, 3, 4, 4, 4, 5]] * 2)
    np.testing.assert_array_equal(regions, expected)
    assert regions.dtype == np.int32
    quarters = region_map(halves(), "patch", 16)
    np.testing.assert_array_equal(np.unique(quarters, return_counts=True)[1], [256] * 4)
    assert (quarters[:16, :16] == 0).all() and (quarters[16:, 16:] == 3).all()


def test_slic_regions_keep_to_a_sharp_edge_in_colour_and_grey() -> None:
    image = halves(edge=13)  # the edge off the 8-px grid SLIC starts from
    regions = region_map(image, "slic", 8)
    assert regions.dtype == np.int32 and regions.shape == (32, 32)
    assert 8 <= regions.max() + 1 <= 24  # about 32 * 32 / 8**2 = 16 asked for
    assert_keeps_to(regions, image)
    assert regions[0, 0] == 0  # ids in reading order of their first pixel
    np.testing.assert_array_equal(region_map(image, "slic", 8), regions)  # deterministic
    grey = image[..., 0]
    assert_keeps_to(region_map(grey, "slic", 8), grey)
    coarse = region_map(image, "slic", 32)  # one region asked for, the edge still splits it
    assert coarse.max() + 1 <= 3


def test_a_path_gives_the_arrays_map_cached_and_read_only(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    Image.fromarray(halves(edge=13)).save(path)
    regions = region_map(path, "slic", 8)
    np.testing.assert_array_equal(regions, region_map(halves(edge=13), "slic", 8))
    assert region_map(str(path), "slic", 8) is regions
    assert not regions.flags.writeable
    Image.fromarray(halves(16, 32)).save(path)  # a changed file is read again
    os.utime(path, ns=(1, 1))  # a new mtime even within the file system's clock tick
    assert region_map(path, "slic", 8).shape == (16, 32)


def test_the_cache_drops_the_least_recently_used_past_its_byte_budget(tmp_path: Path) -> None:
    cache = _RegionCache(max_bytes=2 * 8 * 8 * 4)  # two 8 x 8 int32 maps
    paths = []
    for name in "abc":
        paths.append(str(tmp_path / f"{name}.png"))
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(paths[-1])
    first = cache.get(paths[0], "patch", 4)
    cache.get(paths[1], "patch", 4)
    assert cache.get(paths[0], "patch", 4) is first  # a hit makes it the most recent
    cache.get(paths[2], "patch", 4)  # drops b, the least recent
    assert cache.get(paths[0], "patch", 4) is first
    assert len(cache._maps) == 2 and cache._bytes == 2 * 8 * 8 * 4


def test_bad_methods_sizes_and_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown region method 'grid'; use one of slic, patch"):
        region_map(halves(), "grid", 8)
    with pytest.raises(InputError, match="region size must be a whole number of pixels >= 1"):
        region_map(halves(), "patch", 0)
    (tmp_path / "cut.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 10)
    with pytest.raises(InputError, match="cut.png is truncated or not an image"):
        region_map(tmp_path / "cut.png")
    with pytest.raises(InputError, match="no such file"):
        region_map(tmp_path / "none.png")


def test_region_means_by_hand() -> None:
    values = np.array([[1.0, 3.0, 2.0], [4.0, 6.0, 10.0]])
    regions = np.array([[0, 0, 1], [2, 1, 1]])
    np.testing.assert_allclose(region_means(values, regions), [2.0, 6.0, 4.0])
    with pytest.raises(InputError, match="must have the same shape"):
        region_means(values, regions[:, :2])
