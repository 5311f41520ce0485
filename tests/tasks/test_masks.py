"""Masks as files: the canonical PNG and its key, checked reading, the stores, rasterising polygons and instances."""

from __future__ import annotations

import io
import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.tasks.masks import (
    IGNORE,
    VOID_COLOUR,
    MaskFolder,
    MemoryMasks,
    encode_png,
    mask_key,
    overlay,
    rasterise_instances,
    rasterise_polygons,
    read_mask,
    voc_palette,
)

CLASSES = ["background", "bag", "shirt"]


def example() -> np.ndarray:
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[1:3, 2:5] = 1
    mask[4:, 6:] = 2
    mask[0, :] = IGNORE
    return mask


def test_voc_palette_known_colours() -> None:
    palette = voc_palette()
    assert palette.shape == (256, 3)
    assert palette[0].tolist() == [0, 0, 0]
    assert palette[1].tolist() == [128, 0, 0]
    assert palette[2].tolist() == [0, 128, 0]
    assert palette[15].tolist() == [192, 128, 128]  # VOC's "person"
    assert tuple(palette[IGNORE].tolist()) == VOID_COLOUR


def test_encode_png_is_a_deterministic_palette_png_and_round_trips() -> None:
    mask = example()
    data = encode_png(mask)
    assert data == encode_png(mask.copy())
    with Image.open(io.BytesIO(data)) as image:
        assert image.mode == "P" and image.size == (8, 6)
    np.testing.assert_array_equal(read_mask(data), mask)
    assert mask_key(mask) == mask_key(mask.astype(np.int64))
    other = mask.copy()
    other[5, 0] = 1
    assert mask_key(other) != mask_key(mask)


def test_read_mask_rgb_through_the_palette_and_grey_as_values(tmp_path: Path) -> None:
    mask = example()
    Image.fromarray(voc_palette()[mask]).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), mask)
    Image.fromarray(mask, mode="L").save(tmp_path / "grey.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "grey.png", n_classes=3, size=(8, 6)), mask)


def test_read_mask_grey_with_alpha_and_16_bit(tmp_path: Path) -> None:
    mask = example()
    Image.fromarray(np.stack([mask, np.full_like(mask, 255)], axis=2), mode="LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "la.png"), mask)
    Image.fromarray(mask.astype(np.uint16)).save(tmp_path / "i16.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "i16.png"), mask)


def test_overlay_puts_the_new_labels_over_the_old() -> None:
    old = example()
    new = np.full_like(old, IGNORE)
    new[0, :2] = 2  # labels two pixels that were not labeled
    new[1, 2] = 0  # relabels a bag pixel
    merged = overlay(old, new)
    expected = old.copy()
    expected[0, :2], expected[1, 2] = 2, 0
    np.testing.assert_array_equal(merged, expected)
    np.testing.assert_array_equal(overlay(None, new), new)
    with pytest.raises(InputError, match="not one image"):
        overlay(old, new[:3])


def test_read_mask_rejects_an_unknown_colour_with_the_colour_and_count(tmp_path: Path) -> None:
    rgb = voc_palette()[example()]
    rgb[5, :3] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    with pytest.raises(InputError, match=r"colour \(1, 2, 3\).*\(3 px\) are not in the VOC palette"):
        read_mask(tmp_path / "odd.png")


def test_read_mask_refuses_a_decompression_bomb(monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # the 8x6 example is then past twice the limit
    with pytest.raises(InputError, match=r"mask PNG is too large to decode .*a mask has its image's size"):
        read_mask(encode_png(example()))


def test_read_mask_rejects_wrong_size_values_and_truncated_files(tmp_path: Path) -> None:
    data = encode_png(example())
    with pytest.raises(InputError, match=r"the mask is 8x6 px but the image is 8x7 px"):
        read_mask(data, size=(8, 7))
    with pytest.raises(InputError, match=r"mask values 2 \(4 px\) are not classes"):
        read_mask(data, n_classes=2)
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut.png is truncated or not a PNG"):
        read_mask(tmp_path / "cut.png")
    with pytest.raises(InputError, match="truncated or not a PNG"):
        read_mask(b"not a png at all")
    with pytest.raises(InputError, match="no such file"):
        read_mask(tmp_path / "missing.png")


@pytest.mark.parametrize("store_kind", ["memory", "folder"])
def test_stores_put_once_under_the_content_key(store_kind: str, tmp_path: Path) -> None:
    store = MemoryMasks() if store_kind == "memory" else MaskFolder(tmp_path / "masks")
    mask = example()
    key = store.put(mask)
    assert key == mask_key(mask) and key in store and "0" * 64 not in store
    assert store.put(mask.copy()) == key
    np.testing.assert_array_equal(store.get(key), mask)
    with pytest.raises(InputError, match="must be stored before the event"):
        store.get("0" * 64)


def test_mask_folder_never_rewrites_an_existing_key(tmp_path: Path) -> None:
    store = MaskFolder(tmp_path)
    mask = example()
    key = store.put(mask)
    path = tmp_path / key[:2] / f"{key}.png"
    assert path.is_file() and path.read_bytes() == encode_png(mask)
    os.utime(path, (1_000_000, 1_000_000))
    before = (path.stat().st_mtime_ns, path.stat().st_ino)
    time.sleep(0.01)
    assert store.put(mask) == key
    assert (path.stat().st_mtime_ns, path.stat().st_ino) == before
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [path.name]  # no temporary file left


def test_mask_folder_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write that fails before the rename leaves no file under the key and no temporary file."""
    store = MaskFolder(tmp_path)

    def fail(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("activelab._io.os.replace", fail)
    with pytest.raises(OSError, match="disk full"):
        store.put(example())
    assert mask_key(example()) not in store
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_mask_folder_rejects_keys_that_are_not_sha256(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a mask key"):
        MaskFolder(tmp_path).get("../../etc/passwd")
    assert "../x" not in MaskFolder(tmp_path)


def test_polygons_rasterise_to_exact_pixels() -> None:
    polygons = [
        {"class": "bag", "points": [[0, 0], [3, 0], [3, 2], [0, 2]]},  # 3 x 2 pixels
        {"class": "shirt", "points": [[2, 1], [4, 1], [4, 4], [2, 4]]},  # on top of the bag where they overlap
    ]
    expected = np.array(
        [
            [1, 1, 1, 0, 0],
            [1, 1, 2, 2, 0],
            [0, 0, 2, 2, 0],
            [0, 0, 2, 2, 0],
        ],
        dtype=np.uint8,
    )
    np.testing.assert_array_equal(rasterise_polygons(polygons, CLASSES, (5, 4)), expected)
    ignored = rasterise_polygons(polygons, CLASSES, (5, 4), fill="ignore")
    np.testing.assert_array_equal(ignored, np.where(expected == 0, IGNORE, expected))


def test_polygons_clip_within_one_pixel_and_reject_beyond() -> None:
    inside = rasterise_polygons([{"class": "bag", "points": [[-0.8, -0.5], [4.9, 0], [4.9, 4.6]]}], CLASSES, (4, 4))
    assert inside[0, 3] == 1 and inside.shape == (4, 4)
    with pytest.raises(InputError, match=r"polygon 1 lies outside the image: .*x 0\.\.6\.5.*the image 0\.\.4 x 0\.\.4"):
        rasterise_polygons(
            [
                {"class": "bag", "points": [[0, 0], [1, 0], [1, 1]]},
                {"class": "bag", "points": [[0, 0], [6.5, 0], [1, 1]]},
            ],
            CLASSES,
            (4, 4),
        )
    with pytest.raises(InputError, match=r"polygon 0: unknown class 'hat'; known: background, bag, shirt"):
        rasterise_polygons([{"class": "hat", "points": [[0, 0], [1, 0], [1, 1]]}], CLASSES, (4, 4))
    with pytest.raises(InputError, match="at least 3"):
        rasterise_polygons([{"class": "bag", "points": [[0, 0], [1, 0]]}], CLASSES, (4, 4))


def test_instances_from_arrays_and_coco_rle() -> None:
    from pycocotools import mask as coco_mask

    first = np.zeros((3, 4), dtype=bool)
    first[:, :2] = True
    second = np.zeros((3, 4), dtype=np.uint8)
    second[1, 1:3] = 1
    rle = coco_mask.encode(np.asfortranarray(second))
    rle = {"size": rle["size"], "counts": rle["counts"].decode()}
    expected = np.array([[1, 1, 0, 0], [1, 2, 2, 0], [1, 1, 0, 0]], dtype=np.uint8)
    out = rasterise_instances([{"class": "bag", "mask": first}, {"class": "shirt", "mask": rle}], CLASSES, (4, 3))
    np.testing.assert_array_equal(out, expected)
    raw = {"size": [3, 4], "counts": [4, 1, 2, 1, 4]}  # uncompressed, column-major: (1, 1) and (1, 2)
    out = rasterise_instances([{"class": "bag", "mask": first}, {"class": "shirt", "mask": raw}], CLASSES, (4, 3))
    np.testing.assert_array_equal(out, expected)
    with pytest.raises(InputError, match=r"instance 0: the RLE is for \[4, 4\]"):
        rasterise_instances([{"class": "bag", "mask": {"size": [4, 4], "counts": [16]}}], CLASSES, (4, 3))
    with pytest.raises(InputError, match=r"instance 0: the mask is 3x3 px but the image is 4x3 px"):
        rasterise_instances([{"class": "bag", "mask": np.ones((3, 3), bool)}], CLASSES, (4, 3))
