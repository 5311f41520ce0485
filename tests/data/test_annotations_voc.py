"""Pascal VOC XML: 1-based inclusive corners map to the payload and back; bad files and objects are reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from activelab.data.annotations import ImageBoxes, read_voc, write_voc
from activelab.exceptions import NotFoundError

ITEMS = [
    ImageBoxes("a.png", 64, 48, [{"class": "bag", "x": 1.5, "y": 2.25, "w": 10.0, "h": 20.13}]),
    ImageBoxes("b.png", 32, 32, []),
    ImageBoxes("sub/c.jpg", 40, 30, [{"class": "sandal", "x": 0.0, "y": 0.0, "w": 10.0, "h": 30.0, "score": 0.5}]),
]


def test_round_trip_keeps_boxes_classes_and_empty_images(tmp_path: Path) -> None:
    write_voc(tmp_path, ITEMS)
    got = read_voc(tmp_path)
    assert got.problems == []
    assert got.classes == ["bag", "sandal"]
    assert [(i.file_name, i.width, i.height) for i in got.items] == [(i.file_name, i.width, i.height) for i in ITEMS]
    for want, have in zip(ITEMS, got.items):
        assert [b["class"] for b in have.boxes] == [b["class"] for b in want.boxes]
        for wb, hb in zip(want.boxes, have.boxes):
            assert [hb[k] for k in "xywh"] == pytest.approx([wb[k] for k in "xywh"], abs=0.01)
    assert got.items[2].boxes[0]["score"] == 0.5


def test_corners_are_one_based_and_inclusive(tmp_path: Path) -> None:
    write_voc(tmp_path, [ITEMS[2]])
    text = (tmp_path / "sub" / "c.xml").read_text()
    assert "<xmin>1</xmin>" in text and "<xmax>10</xmax>" in text and "<ymax>30</ymax>" in text


def test_bad_files_and_objects_are_reported_and_good_ones_kept(tmp_path: Path) -> None:
    (tmp_path / "good.xml").write_text(
        "<annotation><filename>good.png</filename><size><width>50</width><height>40</height></size>"
        "<object><name>bag</name><bndbox><xmin>11</xmin><ymin>21</ymin><xmax>20</xmax><ymax>30</ymax></bndbox></object>"
        "<object><name>hat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>5</xmax><ymax>5</ymax></bndbox></object>"
        "<object><name>bag</name><bndbox><xmin>40</xmin><ymin>1</ymin><xmax>60</xmax><ymax>5</ymax></bndbox></object>"
        "<object><name>bag</name><bndbox><xmin>9</xmin><ymin>1</ymin><xmax>7</xmax><ymax>5</ymax></bndbox></object>"
        "<object><name>bag</name><bndbox><xmin>1</xmin></bndbox></object>"
        "</annotation>"
    )
    (tmp_path / "broken.xml").write_text("<annotation><filename>x.png</filename>")
    (tmp_path / "nosize.xml").write_text("<annotation><filename>y.png</filename></annotation>")
    got = read_voc(tmp_path, classes=["bag", "coat"])
    assert got.classes == ["bag", "coat"]
    assert [(i.file_name, i.boxes) for i in got.items] == [
        ("good.png", [{"class": "bag", "x": 10.0, "y": 20.0, "w": 10.0, "h": 10.0}])
    ]
    where = {p.where: p.reason for p in got.problems}
    assert where["broken.xml"].startswith("malformed XML")
    assert where["nosize.xml"].startswith("image size")
    assert where["good.xml object 2"].startswith("unknown class 'hat'")
    assert where["good.xml object 3"].startswith("box outside the image")
    assert where["good.xml object 4"].startswith("box has zero or negative size")
    assert where["good.xml object 5"].startswith("<bndbox> needs the numbers")
    assert len(got.problems) == 6


def test_missing_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no VOC annotation folder"):
        read_voc(tmp_path / "nope")
