"""inspect_image: real images pass, every kind of broken file is rejected with its reason."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activelab.data import images
from activelab.data.images import inspect_image
from activelab.exceptions import ImageRejected


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


class _CountingReads:
    """Wraps ``open`` in activelab.data.images and records the size of every read."""

    def __init__(self) -> None:
        self.reads: list[int] = []

    def __call__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        fh = open(*args, **kwargs)  # noqa: SIM115 (closed by the caller, like open)
        original = fh.read

        def read(n: int = -1) -> bytes:
            data = original(n)
            self.reads.append(len(data))
            return data

        fh.read = read
        return fh


def test_file_over_the_size_limit_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    huge = tmp_path / "huge.jpg"
    with huge.open("wb") as fh:
        fh.truncate(300_000_001)  # sparse: no disk used
    opened = _CountingReads()
    monkeypatch.setattr(images, "open", opened, raising=False)
    with pytest.raises(ImageRejected) as err:
        inspect_image(huge)
    assert err.value.reason == "too_large"
    assert "300.0 MB, over the limit of 200 MB" in err.value.detail and "--max-file-mb" in err.value.detail
    small = tmp_path / "small.png"
    Image.new("L", (30, 30)).save(small)
    assert small.stat().st_size > 10
    with pytest.raises(ImageRejected, match="too_large"):
        inspect_image(small, max_file_mb=0.00001)
    assert opened.reads == []


def test_large_non_image_is_rejected_from_its_header(tmp_path: Path) -> None:
    fake = tmp_path / "video.jpg"
    with fake.open("wb") as fh:
        fh.write(b"this is not an image at all\n")
        fh.truncate(50_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageRejected) as err:
            inspect_image(fake)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.value.reason == "not_an_image"
    assert peak < 5_000_000  # the 50 MB file was never read into memory


def test_hash_is_streamed_and_pixels_decoded_from_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)).save(path)
    assert path.stat().st_size > 2_500_000
    opened = _CountingReads()
    monkeypatch.setattr(images, "open", opened, raising=False)
    info = inspect_image(path)
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (info.n_bytes, info.width, info.height) == (path.stat().st_size, 1000, 1000)
    assert max(opened.reads) <= 1 << 20


def _jpeg_bytes(size: tuple[int, int] = (64, 64)) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, "JPEG")
    return buf.getvalue()


def test_jpeg_with_damaged_header_is_corrupt_not_a_non_image(tmp_path: Path) -> None:
    data = _jpeg_bytes()
    path = tmp_path / "damaged.jpg"
    path.write_bytes(data[:20] + bytes(200) + data[220:])  # valid JPEG signature, markers overwritten
    with pytest.raises(ImageRejected) as err:
        inspect_image(path)
    assert err.value.reason == "corrupt_image"
    assert "starts like a JPEG file" in err.value.detail


def test_symlink_loop_is_its_own_reason(tmp_path: Path) -> None:
    (tmp_path / "a.png").symlink_to(tmp_path / "b.png")
    (tmp_path / "b.png").symlink_to(tmp_path / "a.png")
    with pytest.raises(ImageRejected) as err:
        inspect_image(tmp_path / "a.png")
    assert err.value.reason == "symlink_loop"


def test_exif_rotated_jpeg_is_measured_as_displayed(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20)).save(path, exif=exif)
    info = inspect_image(path)
    assert (info.width, info.height, info.format) == (20, 40, "JPEG")
