"""The segmentation task: payload forms into content-addressed masks, cells, targets, decoding, region arrays."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activelab._defaults import DEFAULT_SEGMENTATION_MODEL
from activelab.exceptions import InputError, StoreError
from activelab.store import ImageRecord, open_store
from activelab.store.classes import annotation_classes, payload_classes, stored_annotation
from activelab.store.engine import sqlite_url
from activelab.tasks import get_task, list_tasks
from activelab.tasks.masks import IGNORE, MaskFolder, encode_png, mask_key, voc_palette
from activelab.tasks.segmentation import Segmentation

CLASSES = ["background", "bag", "shirt"]


def example() -> np.ndarray:
    """6 x 8: a bag, a shirt, the top row not labeled."""
    mask = np.zeros((6, 8), dtype=np.uint8)
    mask[1:3, 2:5] = 1
    mask[4:, 6:] = 2
    mask[0, :] = IGNORE
    return mask


def as_outputs(*probs: np.ndarray) -> np.ndarray:
    out = np.empty(len(probs), dtype=object)
    for i, p in enumerate(probs):
        out[i] = {"probs": p}
    return out


def one_hot(mask: np.ndarray, n_classes: int = 3, sure: float = 1.0) -> np.ndarray:
    """``(C, H, W)`` float16 probabilities: ``sure`` on ``mask``'s class, the rest spread evenly."""
    rest = (1.0 - sure) / (n_classes - 1)
    probs = np.full((n_classes, *mask.shape), rest)
    for c in range(n_classes):
        probs[c][mask == c] = sure
    return probs.astype(np.float16)


def test_registered_with_masks_output_and_the_unet_default() -> None:
    task = get_task("segmentation")
    assert "segmentation" in list_tasks() and isinstance(task, Segmentation)
    assert (task.name, task.output, task.headline, task.input_upscale) == ("segmentation", "masks", "miou", 1)
    assert task.default_model == DEFAULT_SEGMENTATION_MODEL == "unet_small"
    assert task.model_options() == {"output": "masks"}
    assert (task.region_method, task.region_size) == ("slic", 16)
    assert {"pixel_probs", "mc_probs", "embeddings", "region_map", "region_owner", "region_pixels"} <= task.provides
    assert {"region_labeled", "pixel_labeled_fraction"} <= task.provides
    with pytest.raises(InputError, match="unknown region method 'grid'"):
        Segmentation(region_method="grid")


def test_an_array_becomes_the_canonical_payload_and_a_stored_file(tmp_path: Path) -> None:
    task = get_task("segmentation", masks=MaskFolder(tmp_path))
    mask = example()
    payload = task.validate(mask, CLASSES, size=(8, 6))
    key = mask_key(mask)
    assert payload == {"mask": key, "width": 8, "height": 6, "labeled": 40}
    assert list(payload) == ["mask", "width", "height", "labeled"]
    assert (tmp_path / key[:2] / f"{key}.png").read_bytes() == encode_png(mask)
    assert task.validate(mask.astype(np.int32), CLASSES) == payload  # the same mask, the same key
    assert task.validate(payload, CLASSES, size=(8, 6)) == payload  # canonical in, canonical out


def test_every_input_form_gives_the_same_canonical_payload(tmp_path: Path) -> None:
    task = get_task("segmentation")
    mask = np.zeros((4, 5), dtype=np.uint8)
    mask[0:2, 0:3] = 1
    mask[1:4, 2:4] = 2
    expected = {"mask": mask_key(mask), "width": 5, "height": 4, "labeled": 20}
    Image.fromarray(voc_palette()[mask]).save(tmp_path / "rgb.png")
    png = base64.b64encode(encode_png(mask)).decode()
    polygons = [
        {"class": "bag", "points": [[0, 0], [3, 0], [3, 2], [0, 2]]},
        {"class": "shirt", "points": [[2, 1], [4, 1], [4, 4], [2, 4]]},
    ]
    instances = [{"class": "bag", "mask": mask == 1}, {"class": "shirt", "mask": mask == 2}]
    forms = [
        mask,
        {"mask_file": str(tmp_path / "rgb.png")},
        {"png": png},
        {"png": f"data:image/png;base64,{png}"},
        {"polygons": polygons},
        {"polygons": polygons, "fill": "background", "width": 5, "height": 4},
        {"instances": instances},
    ]
    for form in forms:
        assert task.validate(form, CLASSES, size=(5, 4)) == expected
    assert task.validate({"polygons": polygons, "width": 5, "height": 4}, CLASSES) == expected  # size from the payload
    partial = task.validate({"polygons": polygons, "fill": "ignore"}, CLASSES, size=(5, 4))
    assert partial["labeled"] == 5 + 6 and partial["mask"] != expected["mask"]
    np.testing.assert_array_equal(task.masks.get(partial["mask"]), np.where(mask == 0, IGNORE, mask))


def test_bad_inputs_are_rejected_with_the_reason(tmp_path: Path) -> None:
    task = get_task("segmentation")
    mask = example()
    data = encode_png(mask)
    rgb = voc_palette()[mask]
    rgb[0, 0] = (10, 20, 30)
    Image.fromarray(rgb).save(tmp_path / "odd.png")
    cases: list[tuple[object, str]] = [
        (mask, r"the mask is 8x6 px but the image is 8x7 px"),
        ({"png": base64.b64encode(data).decode()}, r"mask PNG: the mask is 8x6 px but the image is 8x7 px"),
        ({"png": base64.b64encode(data[:40]).decode()}, r"mask PNG is truncated or not a PNG"),
        ({"png": "%%% not base64"}, r"png must be base64 text of a PNG"),
        ({"mask_file": str(tmp_path / "odd.png")}, r"odd.png: colour \(10, 20, 30\).*not in the VOC palette"),
        ({"mask_file": str(tmp_path / "none.png")}, r"none.png: no such file"),
        ({"polygons": [{"class": "bag", "points": [[0, 0], [9.5, 0], [1, 2]]}]}, r"polygon 0 lies outside the image"),
        ({"polygons": [{"class": "hat", "points": [[0, 0], [2, 0], [1, 2]]}]}, r"polygon 0: unknown class 'hat'"),
        ({"instances": [{"class": "bag", "mask": np.ones((6, 8), bool)}]}, r"instance 0: the mask is 8x6 px"),
        (np.full((7, 8), IGNORE, np.uint8), r"labels no pixel"),
        ({"polygons": [], "fill": "ignore"}, r"labels no pixel"),
        ({"polygons": [], "fill": "nothing"}, r"fill must be one of background, ignore"),
        ({"masks": "x"}, r"unknown keys \['masks'\]"),
        ({"png": "", "colour": 1}, r"unknown key\(s\) colour beside 'png'"),
        ({"mask": "0" * 64, "width": 8, "height": 7, "labeled": 1}, r"no stored mask '0000"),
        (np.full((7, 8), 3, np.uint8), r"mask values 3 \(56 px\) are not classes"),
        ("bag", r"got str; a segmentation annotation is"),
    ]
    for payload, reason in cases:
        with pytest.raises(InputError, match=reason):
            task.validate(payload, CLASSES, size=(8, 7))
    with pytest.raises(InputError, match=r"polygons need the image's size"):
        task.validate({"polygons": []}, CLASSES)
    stored = task.validate(mask, CLASSES)
    with pytest.raises(InputError, match=r"are for a 8x6 image, the image is 8x7 px"):
        task.validate(stored, CLASSES, size=(8, 7))


def test_parse_reads_paths_from_the_table_folder_and_json_and_format_writes_json(tmp_path: Path) -> None:
    task = get_task("segmentation")
    assert task.parse(" masks/a.png ", base=tmp_path) == {"mask_file": str(tmp_path / "masks" / "a.png")}
    assert task.parse(str(tmp_path / "b.png")) == {"mask_file": str(tmp_path / "b.png")}
    assert task.parse('{"polygons": [], "fill": "ignore"}') == {"polygons": [], "fill": "ignore"}
    with pytest.raises(InputError, match="an empty mask cell"):
        task.parse("  ")
    with pytest.raises(InputError, match="must be JSON"):
        task.parse("{mask")
    payload = task.validate(example(), CLASSES)
    text = task.format(payload)
    assert text == f'{{"mask":"{payload["mask"]}","width":8,"height":6,"labeled":40}}'
    assert task.validate(task.parse(text), CLASSES) == payload
    with pytest.raises(InputError, match="validate it first"):
        task.format({"png": "x"})


def test_targets_are_the_stored_masks_with_ignore() -> None:
    task = get_task("segmentation")
    mask = example()
    payload = task.validate(mask, CLASSES)
    polygons = {"polygons": [{"class": "shirt", "points": [[0, 0], [2, 0], [2, 2], [0, 2]]}], "width": 8, "height": 6}
    targets = task.targets([payload, polygons], CLASSES)
    assert targets.dtype == object and targets.shape == (2,)
    np.testing.assert_array_equal(targets[0], mask)
    assert targets[0].dtype == np.uint8
    assert int((targets[1] == 2).sum()) == 4 and int((targets[1] == 0).sum()) == 44
    with pytest.raises(InputError, match=r"mask values 2 \(4 px\) are not classes"):
        task.targets([payload], CLASSES[:2])


def test_decode_stores_the_argmax_mask_and_reports_the_mean_max_probability() -> None:
    task = get_task("segmentation")
    mask = example()
    mask[0, :] = 0
    probs = one_hot(mask, sure=0.8)
    probs[:, 5, 0] = np.array([0.2, 0.3, 0.5], dtype=np.float16)  # one pixel changes class, less sure
    decoded_mask = mask.copy()
    decoded_mask[5, 0] = 2
    ((payload, confidence),) = task.decode(as_outputs(probs), CLASSES)
    assert payload == {"mask": mask_key(decoded_mask), "width": 8, "height": 6, "labeled": 48}
    np.testing.assert_array_equal(task.masks.get(payload["mask"]), decoded_mask)
    assert confidence == pytest.approx((47 * 0.8 + 0.5) / 48, abs=1e-3)  # float16 probabilities
    with pytest.raises(InputError, match="2 classes in probs, the project has 3"):
        task.decode(as_outputs(probs[:2]), CLASSES)


def test_costs_are_pixels_per_image() -> None:
    task = get_task("segmentation")
    outputs = as_outputs(np.zeros((3, 6, 8), np.float16), np.zeros((3, 4, 5), np.float16))
    np.testing.assert_array_equal(task.costs(outputs), [48.0, 20.0])
    assert task.costs(as_outputs()).shape == (0,)


def _write_image(path: Path, height: int, width: int) -> str:
    Image.fromarray(np.zeros((height, width, 3), np.uint8)).save(path)
    return str(path)


def test_region_arrays_on_a_hand_built_two_image_pool(tmp_path: Path) -> None:
    """2 x 2 patches: image 0 (4 x 4) has regions 0..3, image 1 (2 x 4) regions 0..1; six in the pool."""
    task = Segmentation(region_method="patch", region_size=2)
    images = [_write_image(tmp_path / "a.png", 4, 4), _write_image(tmp_path / "b.png", 2, 4)]
    outputs = as_outputs(np.full((3, 4, 4), 1 / 3, np.float16), np.full((3, 2, 4), 1 / 3, np.float16))
    first = np.full((4, 4), IGNORE, dtype=np.uint8)
    first[0:2, 0:2] = 1  # patch 0: all 4 pixels labeled
    first[0, 2:4] = 0  # patch 1: 2 of 4, exactly half: labeled
    first[2, 0] = 2  # patch 2: 1 of 4: not labeled
    targets = np.empty(2, dtype=object)
    targets[0], targets[1] = first, np.zeros((2, 4), np.uint8)
    labeled = np.array([True, False])  # image 1's target is not a label yet
    arrays = task.strategy_arrays(
        frozenset(
            {"pixel_probs", "region_map", "region_owner", "region_pixels", "region_labeled", "pixel_labeled_fraction"}
        ),
        outputs,
        targets=targets,
        labeled=labeled,
        images=images,
    )
    np.testing.assert_array_equal(arrays["region_map"][0], [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]])
    np.testing.assert_array_equal(arrays["region_map"][1], [[0, 0, 1, 1], [0, 0, 1, 1]])
    np.testing.assert_array_equal(arrays["region_owner"], [0, 0, 0, 0, 1, 1])
    np.testing.assert_array_equal(arrays["region_pixels"], [4, 4, 4, 4, 4, 4])
    np.testing.assert_array_equal(arrays["region_labeled"], [True, True, False, False, False, False])
    np.testing.assert_allclose(arrays["pixel_labeled_fraction"], [7 / 16, 0.0])
    assert arrays["pixel_probs"][1] is outputs[1]["probs"]
    assert arrays["region_owner"].dtype == np.int64 and arrays["region_labeled"].dtype == bool
    without = task.strategy_arrays(frozenset({"region_labeled", "pixel_labeled_fraction"}), outputs, images=images)
    assert set(without) == {"region_labeled", "pixel_labeled_fraction"}
    assert not without["region_labeled"].any() and not without["pixel_labeled_fraction"].any()
    with pytest.raises(InputError, match="computed from the pool's images: pass images="):
        task.strategy_arrays(frozenset({"region_owner"}), outputs)
    with pytest.raises(InputError, match=r"b.png is 4x2 px but its prediction is 4x4"):
        task.strategy_arrays(frozenset({"region_owner"}), outputs, images=images[::-1])


def test_slic_regions_through_the_task_follow_the_image(tmp_path: Path) -> None:
    rgb = np.zeros((32, 32, 3), np.uint8)
    rgb[:, 13:] = (255, 0, 0)
    Image.fromarray(rgb).save(tmp_path / "edge.png")
    task = get_task("segmentation")
    arrays = task.strategy_arrays(
        frozenset({"region_map", "region_pixels"}),
        as_outputs(np.full((3, 32, 32), 1 / 3, np.float16)),
        images=[str(tmp_path / "edge.png")],
    )
    regions = arrays["region_map"][0]
    assert arrays["region_pixels"].sum() == 32 * 32 and len(arrays["region_pixels"]) == regions.max() + 1
    for r in range(regions.max() + 1):
        assert len(np.unique(rgb[regions == r], axis=0)) == 1  # no region straddles the edge


def test_payload_classes_and_the_store_keep_mask_references(tmp_path: Path) -> None:
    """On SQLite only: the JSON column is the store's business (tests/store); this checks the mask payload path."""
    task = get_task("segmentation")
    payload = task.validate(example(), CLASSES)
    assert payload_classes(payload) == [] and payload_classes(example()) == []
    assert payload_classes({"mask_file": "a.png"}) == [] and payload_classes({"png": "..."}) == []
    shapes = {"polygons": [{"class": "bag", "points": []}, {"class": "shirt", "points": []}, {"points": []}]}
    assert payload_classes(shapes) == ["bag", "shirt"]
    assert payload_classes({"instances": [{"class": "bag", "mask": None}]}) == ["bag"]
    assert stored_annotation(payload) == payload and annotation_classes(payload) == []
    store = open_store(sqlite_url(tmp_path / "store.db"))
    store.add_classes(CLASSES)
    ids = store.add_images([ImageRecord("a" * 64, "/img/a.png", 8, 6, 10)], author="ann").image_id
    store.add_annotations([(ids[0], payload)], author="ann", source="human")
    assert store.current_annotations()[ids[0]].payload == payload
    with pytest.raises(StoreError, match="masks store class positions"):
        store.retire_class("shirt", author="ann")
    store.close()
    assert json.loads(task.format(payload)) == payload
