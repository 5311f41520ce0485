"""COCO JSON: written files load in pycocotools, read back the same boxes, and bad rows are reported, not fatal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from activelab.data.annotations import ImageBoxes, read_coco, write_coco
from activelab.exceptions import InputError, NotFoundError

CLASSES = ["bag", "coat", "sandal"]
ITEMS = [
    ImageBoxes("a.png", 64, 48, [{"class": "bag", "x": 1.5, "y": 2.25, "w": 10.0, "h": 20.13}]),
    ImageBoxes("b.png", 32, 32, []),
    ImageBoxes(
        "c.png",
        40,
        30,
        [
            {"class": "sandal", "x": 0.0, "y": 0.0, "w": 40.0, "h": 30.0},
            {"class": "bag", "x": 5, "y": 6, "w": 7, "h": 8},
        ],
    ),
]


def test_round_trip_keeps_boxes_classes_and_empty_images(tmp_path: Path) -> None:
    write_coco(tmp_path / "ann.json", ITEMS, CLASSES)
    got = read_coco(tmp_path / "ann.json")
    assert got.classes == CLASSES  # coat has no box and is still a class
    assert got.problems == []
    assert [(i.file_name, i.width, i.height) for i in got.items] == [
        ("a.png", 64, 48),
        ("b.png", 32, 32),
        ("c.png", 40, 30),
    ]
    assert got.items[1].boxes == []
    for want, have in zip(ITEMS, got.items):
        assert [b["class"] for b in have.boxes] == [b["class"] for b in want.boxes]
        for wb, hb in zip(want.boxes, have.boxes):
            assert [hb[k] for k in "xywh"] == pytest.approx([wb[k] for k in "xywh"], abs=0.01)


def test_written_file_loads_in_pycocotools_and_accepts_scored_predictions(tmp_path: Path) -> None:
    write_coco(tmp_path / "gt.json", ITEMS, CLASSES)
    gt = COCO(str(tmp_path / "gt.json"))
    assert sorted(gt.getImgIds()) == [1, 2, 3]
    assert [c["name"] for c in gt.loadCats(gt.getCatIds())] == CLASSES
    assert gt.loadAnns(gt.getAnnIds(imgIds=[3]))[1]["bbox"] == [5.0, 6.0, 7.0, 8.0]
    predicted = [ImageBoxes(i.file_name, i.width, i.height, [{**b, "score": 0.75} for b in i.boxes]) for i in ITEMS]
    write_coco(tmp_path / "pred.json", predicted, CLASSES)
    anns = json.loads((tmp_path / "pred.json").read_text())["annotations"]
    results = gt.loadRes(anns)
    assert [a["score"] for a in results.loadAnns(results.getAnnIds())] == [0.75, 0.75, 0.75]
    assert read_coco(tmp_path / "pred.json").items[0].boxes[0]["score"] == 0.75


def test_segmentations_are_written_as_rle_with_their_pixel_area(tmp_path: Path) -> None:
    mask = np.zeros((48, 64), dtype=np.uint8)
    mask[3:10, 2:8] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    rle["counts"] = rle["counts"].decode("ascii")
    write_coco(tmp_path / "ann.json", ITEMS[:2], CLASSES, segmentations=[[rle], []])
    gt = COCO(str(tmp_path / "ann.json"))
    ann = gt.loadAnns(gt.getAnnIds())[0]
    assert ann["area"] == 42.0
    assert np.array_equal(gt.annToMask(ann), mask)


def test_bad_rows_are_reported_with_their_reason_and_good_rows_kept(tmp_path: Path) -> None:
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 50, "height": 40},
            {"id": 2, "file_name": "b.png"},
            {"id": 3, "file_name": "a.png", "width": 50, "height": 40},
        ],
        "categories": [{"id": 3, "name": "bag"}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4]},
            {"id": 2, "image_id": 1, "category_id": 3, "bbox": [45, 2, 10, 4]},
            {"id": 3, "image_id": 1, "category_id": 9, "bbox": [1, 2, 3, 4]},
            {"id": 4, "image_id": 7, "category_id": 3, "bbox": [1, 2, 3, 4]},
            {"id": 5, "image_id": 1, "category_id": 3, "bbox": [1, 2, 0, 4]},
            {"id": 6, "image_id": 1, "category_id": 3, "bbox": [-0.5, 2, 50.5, 38.6]},
            {"id": 7, "image_id": 1, "category_id": 3, "bbox": [1, 2, 3, 4], "iscrowd": 1},
        ],
    }
    (tmp_path / "ann.json").write_text(json.dumps(data))
    got = read_coco(tmp_path / "ann.json")
    assert [i.file_name for i in got.items] == ["a.png"]
    assert got.items[0].boxes == [
        {"class": "bag", "x": 1.0, "y": 2.0, "w": 3.0, "h": 4.0},
        {"class": "bag", "x": 0.0, "y": 2.0, "w": 50.0, "h": 38.0},  # overshoot under 1 px: clipped
    ]
    assert [p.where for p in got.problems] == [
        "ann.json images[1]",
        "ann.json images[2]",
        "ann.json annotations[1]",
        "ann.json annotations[2]",
        "ann.json annotations[3]",
        "ann.json annotations[4]",
        "ann.json annotations[6]",
    ]
    reasons = [p.reason for p in got.problems]
    assert "image size" in reasons[0]
    assert reasons[1] == "file_name 'a.png' appears twice in the images list"
    assert reasons[2].startswith("box outside the image")
    assert reasons[3] == "unknown category id 9"
    assert reasons[4] == "image id 7 is not in the file's images list"
    assert reasons[5].startswith("box has zero or negative size")
    assert reasons[6].startswith("crowd region (iscrowd=1)")


def test_an_unreadable_file_raises_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"images": [')
    with pytest.raises(InputError, match="not valid JSON"):
        read_coco(tmp_path / "bad.json")
    (tmp_path / "list.json").write_text("[]")
    with pytest.raises(InputError, match="not a COCO instances file"):
        read_coco(tmp_path / "list.json")
    with pytest.raises(NotFoundError):
        read_coco(tmp_path / "missing.json")


def test_writing_a_box_of_an_unknown_class_names_the_image(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"a\.png: box class 'hat' is not one of the classes"):
        write_coco(
            tmp_path / "x.json",
            [ImageBoxes("a.png", 9, 9, [{"class": "hat", "x": 0, "y": 0, "w": 1, "h": 1}])],
            CLASSES,
        )
