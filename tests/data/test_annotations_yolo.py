"""YOLO label folders: write -> read keeps the boxes, data.yaml works both ways, bad lines are reported."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from activelab.data.annotations import ImageBoxes, read_yolo, write_yolo
from activelab.exceptions import InputError

CLASSES = ["bag", "coat", "sandal"]
ITEMS = [
    ImageBoxes("a.png", 64, 48, [{"class": "bag", "x": 1.5, "y": 2.25, "w": 10.0, "h": 20.13}]),
    ImageBoxes("b.png", 32, 32, []),
    ImageBoxes("c.png", 40, 30, [{"class": "sandal", "x": 0.0, "y": 0.0, "w": 40.0, "h": 30.0}]),
]


def _images(folder: Path, items: list[ImageBoxes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for item in items:
        Image.fromarray(np.zeros((item.height, item.width, 3), dtype=np.uint8)).save(folder / item.file_name)


def test_round_trip_through_data_yaml(tmp_path: Path) -> None:
    _images(tmp_path / "pool" / "images", ITEMS)
    _images(tmp_path / "eval" / "images", ITEMS[1:])
    write_yolo(tmp_path, ITEMS, CLASSES, split="train", folder="pool")
    write_yolo(tmp_path, ITEMS[1:], CLASSES, split="val", folder="eval")
    data = yaml.safe_load((tmp_path / "data.yaml").read_text())
    assert data == {
        "path": str(tmp_path.resolve()),
        "train": "pool/images",
        "val": "eval/images",
        "names": {0: "bag", 1: "coat", 2: "sandal"},
    }
    assert (tmp_path / "pool" / "labels" / "b.txt").read_text() == ""
    assert (tmp_path / "pool" / "labels" / "c.txt").read_text() == "2 0.500000 0.500000 1.000000 1.000000\n"
    for split, want in (("train", ITEMS), ("val", ITEMS[1:])):
        got = read_yolo(tmp_path / "data.yaml", split=split)
        assert got.classes == CLASSES and got.problems == []
        assert [(i.file_name, i.width, i.height) for i in got.items] == [(i.file_name, i.width, i.height) for i in want]
        for w, h in zip(want, got.items):
            assert [b["class"] for b in h.boxes] == [b["class"] for b in w.boxes]
            for wb, hb in zip(w.boxes, h.boxes):
                assert [hb[k] for k in "xywh"] == pytest.approx([wb[k] for k in "xywh"], abs=0.01)


def test_moved_dataset_and_classes_txt_folder_both_read(tmp_path: Path) -> None:
    _images(tmp_path / "old" / "train" / "images", ITEMS)
    write_yolo(tmp_path / "old", ITEMS, CLASSES, split="train")
    (tmp_path / "old").rename(tmp_path / "new")
    assert len(read_yolo(tmp_path / "new").items[0].boxes) == 1  # the recorded absolute path is stale
    split = tmp_path / "new" / "train"
    (split / "classes.txt").write_text("bag\ncoat\nsandal\n")
    got = read_yolo(split)
    assert got.classes == CLASSES and [len(i.boxes) for i in got.items] == [1, 0, 1]


def test_scores_are_a_sixth_column(tmp_path: Path) -> None:
    items = [ImageBoxes("a.png", 64, 48, [{"class": "coat", "x": 4.0, "y": 4.0, "w": 8.0, "h": 8.0, "score": 0.25}])]
    _images(tmp_path / "train" / "images", items)
    write_yolo(tmp_path, items, CLASSES, split="train")
    assert (tmp_path / "train" / "labels" / "a.txt").read_text().split()[-1] == "0.250000"
    assert read_yolo(tmp_path).items[0].boxes == [
        {"class": "coat", "x": 4.0, "y": 4.0, "w": 8.0, "h": 8.0, "score": 0.25}
    ]


def test_bad_lines_and_orphan_labels_are_reported_and_good_lines_kept(tmp_path: Path) -> None:
    _images(tmp_path / "images", [ImageBoxes("a.png", 100, 50, []), ImageBoxes("b.png", 10, 10, [])])
    (tmp_path / "classes.txt").write_text("bag\ncoat\n")
    labels = tmp_path / "labels"
    labels.mkdir()
    (labels / "a.txt").write_text(
        "0 0.5 0.5 0.2 0.2\n"  # good: x 40..60, y 20..30
        "1 0.99 0.5 0.1 0.2\n"  # right edge at 104 px of 100: outside
        "5 0.5 0.5 0.1 0.1\n"  # unknown class index
        "0 0.5 0.5 0 0.1\n"  # zero width
        "0 0.5 zero 0.1 0.1\n"  # not a number
        "0 0.5\n"  # too few fields
        "1 0.1 0.2 0.3 0.2 0.2 0.6\n"  # a segment: its points' box, x 10..30, y 10..30
        "\n"
    )
    (labels / "ghost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    (tmp_path / "images" / "broken.png").write_bytes(b"not an image")
    got = read_yolo(tmp_path)
    assert [(i.file_name, i.boxes) for i in got.items] == [
        (
            "a.png",
            [
                {"class": "bag", "x": 40.0, "y": 20.0, "w": 20.0, "h": 10.0},
                {"class": "coat", "x": 10.0, "y": 10.0, "w": 20.0, "h": 20.0},
            ],
        ),
        ("b.png", []),  # listed image without a label file: nothing here
    ]
    where = {p.where: p.reason for p in got.problems}
    assert where["a.txt line 2"].startswith("box outside the image")
    assert where["a.txt line 3"] == "unknown class index 5 (the dataset has 2 classes, 0..1)"
    assert where["a.txt line 4"].startswith("box has zero or negative size")
    assert where["a.txt line 5"].startswith("not a number")
    assert where["a.txt line 6"].startswith("expected 'class cx cy w h'")
    assert where["ghost.txt"].startswith("label file with no image")
    assert where["broken.png"].startswith("unreadable image")
    assert len(got.problems) == 7


def test_unusable_sources_raise_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="add a classes.txt"):
        read_yolo(tmp_path)
    (tmp_path / "data.yaml").write_text("names: [a]\ntrain: [unclosed\n")
    with pytest.raises(InputError, match="not valid YAML"):
        read_yolo(tmp_path)
    (tmp_path / "data.yaml").write_text("names: [a]\ntrain: images\n")
    with pytest.raises(InputError, match="'val'"):
        read_yolo(tmp_path, split="val")
    (tmp_path / "images").mkdir()
    (tmp_path / "data.yaml").write_text("names: {'1': b, '0': a}\ntrain: images\n")
    assert read_yolo(tmp_path).classes == ["a", "b"]
    (tmp_path / "data.yaml").write_text("names: {1: b, 2: c}\ntrain: images\n")
    with pytest.raises(InputError, match="mapping of 0..C-1"):
        read_yolo(tmp_path)
    with pytest.raises(InputError, match="unknown YOLO split"):
        write_yolo(tmp_path, [], CLASSES, split="pool")
