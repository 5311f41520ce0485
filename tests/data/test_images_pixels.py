"""load_rgb: every pixel reader sees the image upright and at its real brightness."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activelab.data.images import load_rgb, to_rgb


def _gradient16() -> np.ndarray:
    """(4, 256) uint16 covering 0..65535 in steps of 257 and the odd values in between."""
    row = np.linspace(0, 65535, 256 * 4).astype(np.uint16)
    return row.reshape(4, 256)


def test_16bit_png_is_scaled_not_clipped(tmp_path: Path) -> None:
    values = _gradient16()
    path = tmp_path / "g16.png"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "I;16"
    rgb = np.asarray(load_rgb(path))
    expected = np.rint(values / 257).astype(np.uint8)
    assert rgb.shape == (4, 256, 3)
    assert np.array_equal(rgb[..., 0], expected) and np.array_equal(rgb[..., 2], expected)
    assert (rgb[0, 0, 0], rgb[-1, -1, 0], rgb[2, 0, 0]) == (0, 255, 128)


@pytest.mark.parametrize("dtype", ["<u2", ">u2", "<i4"])
def test_16bit_integer_modes_in_memory(dtype: str) -> None:
    values = _gradient16().astype(dtype)
    rgb = np.asarray(to_rgb(Image.fromarray(values)))
    assert np.array_equal(rgb[..., 1], np.rint(values.astype(np.float64) / 257).astype(np.uint8))


def test_float_image_in_0_1_is_scaled_by_255(tmp_path: Path) -> None:
    values = np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8)
    path = tmp_path / "f.tif"
    Image.fromarray(values).save(path)
    assert Image.open(path).mode == "F"
    assert np.array_equal(np.asarray(load_rgb(path))[..., 0], np.rint(values * 255).astype(np.uint8))


def test_integer_image_outside_16_bits_is_stretched_over_its_range() -> None:
    values = np.array([[-1000, 0], [1000, 99000]], dtype=np.int32)
    rgb = np.asarray(to_rgb(Image.fromarray(values)))
    assert rgb[..., 0].tolist() == [[0, 3], [5, 255]]


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)  # left half red, right half blue, as stored
    stored[:, 20:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = 6  # display rotated 90 degrees clockwise
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    with Image.open(path) as raw:
        decoded = np.asarray(raw.convert("RGB"))
    upright = np.asarray(load_rgb(path))
    assert upright.shape == (40, 20, 3)
    assert np.array_equal(upright, np.rot90(decoded, k=-1))
    assert upright[5, 10].argmax() == 0 and upright[35, 10].argmax() == 2  # red on top, blue below
