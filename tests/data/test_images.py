"""inspect_image: real images pass, every kind of broken file is rejected with its reason."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from PIL import Image

from activelab.data.images import ImageRejected, inspect_image


def test_real_image_is_hashed_and_measured(sample: Path) -> None:
    path = sorted((sample / "pool").glob("*.png"))[0]
    info = inspect_image(path)
    assert (info.width, info.height, info.format) == (28, 28, "PNG")
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info.n_bytes == path.stat().st_size


@pytest.mark.parametrize("reason", ["empty_file", "not_an_image", "corrupt_image", "decompression_bomb"])
def test_broken_files_are_rejected_with_reason(broken_files: dict[str, Path], reason: str) -> None:
    with pytest.raises(ImageRejected) as err:
        inspect_image(broken_files[reason])
    assert err.value.reason == reason
    assert broken_files[reason].name in err.value.detail


def test_pixel_limit_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.new("L", (200, 200)).save(path)
    assert inspect_image(path).width == 200
    with pytest.raises(ImageRejected, match="40,000 pixels, over the limit of 10,000"):
        inspect_image(path, max_pixels=10_000)


def test_missing_folder_and_unreadable(tmp_path: Path, sample: Path) -> None:
    with pytest.raises(ImageRejected) as err:
        inspect_image(tmp_path / "nope.png")
    assert err.value.reason == "missing_file"
    with pytest.raises(ImageRejected) as err:
        inspect_image(tmp_path)
    assert err.value.reason == "not_a_file"


def test_unreadable_file(tmp_path: Path, sample: Path) -> None:
    locked = tmp_path / "locked.png"
    locked.write_bytes(sorted((sample / "pool").glob("*.png"))[0].read_bytes())
    locked.chmod(0)
    # root reads any file; /proc/self/mem is a regular file whose plain read fails for everyone
    target = locked if not os.access(locked, os.R_OK) else Path("/proc/self/mem")
    with pytest.raises(ImageRejected) as err:
        inspect_image(target)
    assert err.value.reason == "unreadable"
