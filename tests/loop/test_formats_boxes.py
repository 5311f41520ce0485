"""Boxes in and out of a detection project: tables, COCO, YOLO, VOC and Label Studio, through real stores.

Each format's export imports back to the same boxes; every bad box, row, image or file of an
import is reported with its reason while the good ones are kept; re-runs add nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.loop.export import export_labels
from activelab.loop.formats.boxes import export_boxes, import_boxes
from activelab.loop.formats.fiftyone import export_fiftyone
from activelab.loop.formats.hf_datasets import export_hf_imagefolder
from activelab.loop.formats.labelstudio import export_labelstudio, import_labelstudio
from activelab.loop.ingest import import_images
from activelab.store import Store, open_store, sqlite_url
from activelab.tasks import Payload, get_task

CLASSES = ["bag", "shoe"]
DETECTION = get_task("detection")
#: per image (name, width, height, split, boxes or None for unlabeled)
IMAGES: list[tuple[str, int, int, str, list[dict[str, Any]] | None]] = [
    ("a.png", 32, 32, "pool", [{"class": "bag", "x": 1.5, "y": 2.0, "w": 10.25, "h": 12.0}]),
    (
        "b.png",
        32,
        32,
        "pool",
        [
            {"class": "bag", "x": 0.0, "y": 0.0, "w": 32.0, "h": 16.0},
            {"class": "shoe", "x": 20.0, "y": 18.0, "w": 11.0, "h": 13.5},
        ],
    ),
    ("c.png", 40, 20, "pool", []),  # labeled "nothing here"
    ("d.png", 32, 32, "pool", None),  # not labeled
    ("e.png", 32, 32, "eval", [{"class": "shoe", "x": 3.0, "y": 4.0, "w": 5.0, "h": 6.0}]),
]


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """Tiny PNGs of distinct random content (the store keys images by content)."""
    folder = tmp_path / "images"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for name, width, height, _, _ in IMAGES:
        Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(folder / name)
    return folder


def _detection_store(path: Path, classes: list[str] = CLASSES) -> Iterator[Store]:
    store = open_store(sqlite_url(path))
    store.add_classes(classes)
    yield store
    store.close()


@pytest.fixture
def source(tmp_path: Path, images: Path) -> Iterator[Store]:
    """A detection store holding IMAGES with their boxes (imported from a table)."""
    for store in _detection_store(tmp_path / "source.db"):
        for split in ("pool", "eval"):
            rows = [(name, boxes) for name, _, _, s, boxes in IMAGES if s == split]
            table = pd.DataFrame(
                {
                    "image": [str(images / name) for name, _ in rows],
                    "boxes": ["" if boxes is None else json.dumps(boxes) for _, boxes in rows],
                }
            )
            import_images(store, table, split=split, task=DETECTION)
        yield store


@pytest.fixture
def target(tmp_path: Path) -> Iterator[Store]:
    """An empty detection store with the same classes, to import an export into."""
    yield from _detection_store(tmp_path / "target.db")


def boxes_by_content(store: Store) -> dict[tuple[str, str], Payload]:
    """Current boxes keyed by (content hash, split): equal across stores when a round trip kept them."""
    images = {img.id: img for img in store.images()}
    return {(images[i].sha256, images[i].split): c.payload for i, c in store.current_annotations().items()}


def test_table_import_stores_the_canonical_boxes_and_rerun_adds_nothing(
    source: Store, images: Path, tmp_path: Path
) -> None:
    by_name = {Path(img.path).name: img.id for img in source.images()}
    current = source.current_annotations()
    for name, _, _, _, boxes in IMAGES:
        if boxes is None:
            assert by_name[name] not in current
        else:
            assert current[by_name[name]].payload == boxes
    events = source.n_label_events()
    table = tmp_path / "pool.csv"
    rows = [(name, boxes) for name, _, _, split, boxes in IMAGES if split == "pool"]
    pd.DataFrame(
        {"image": [f"images/{n}" for n, _ in rows], "boxes": ["" if b is None else json.dumps(b) for _, b in rows]}
    ).to_csv(table, index=False)
    again = import_images(source, table, task=DETECTION)
    assert (again.added, again.labeled, again.duplicates, again.n_rejected) == (0, 0, 4, 0)
    assert source.n_label_events() == events


def test_table_rows_with_bad_boxes_are_reported_and_the_good_ones_kept(
    target: Store, images: Path, tmp_path: Path
) -> None:
    cells = {
        "a.png": '[{"class": "bag", "x": 1, "y": 1, "w": 5}',  # malformed JSON
        "b.png": json.dumps([{"class": "bag", "x": 20, "y": 0, "w": 17, "h": 5}]),  # 5 px outside a 32 px image
        "c.png": json.dumps([{"class": "hat", "x": 1, "y": 1, "w": 5, "h": 5}]),  # not a class
        "d.png": json.dumps([{"class": "shoe", "x": 1, "y": 1, "w": 0, "h": 5}]),  # no width
        "e.png": json.dumps([{"class": "shoe", "x": 22, "y": 0.5, "w": 10.5, "h": 4}]),  # 0.5 px over: clipped
    }
    report_path = tmp_path / "report.csv"
    report = import_images(
        target,
        pd.DataFrame({"image": [str(images / n) for n in cells], "boxes": list(cells.values())}),
        task=DETECTION,
        report_path=report_path,
    )
    assert (report.added, report.labeled) == (1, 1)
    assert dict(report.rejected) == {"invalid_label": 3, "unknown_class": 1}
    rows = pd.read_csv(report_path, keep_default_na=False).set_index("path")
    assert rows.loc[str(images / "c.png"), "reason"] == "unknown_class"
    assert "hat" in rows.loc[str(images / "c.png"), "detail"]
    assert "box 0" in rows.loc[str(images / "b.png"), "detail"]
    (stored,) = target.current_annotations().values()
    assert stored.payload == [{"class": "shoe", "x": 22.0, "y": 0.5, "w": 10.0, "h": 4.0}]


@pytest.mark.parametrize("fmt", ["coco", "yolo", "voc"])
def test_box_file_export_imports_back_the_same_boxes(fmt: str, source: Store, target: Store, tmp_path: Path) -> None:
    out = export_boxes(source, tmp_path / fmt, fmt, task=DETECTION, include_eval=True)
    where = {
        "coco": {s: out / s / "annotations.json" for s in ("pool", "eval")},
        "yolo": {s: out / "data.yaml" for s in ("pool", "eval")},
        "voc": {s: out / s / "annotations" for s in ("pool", "eval")},
    }[fmt]
    for split in ("pool", "eval"):
        report = import_boxes(target, where[split], fmt, task=DETECTION, split=split)
        assert report.n_rejected == 0
    assert boxes_by_content(target) == boxes_by_content(source)
    assert len(boxes_by_content(target)) == 4  # the unlabeled image is not exported
    again = import_boxes(target, where["pool"], fmt, task=DETECTION)
    assert (again.added, again.labeled, again.duplicates) == (0, 0, 3)


def test_coco_export_loads_in_pycocotools(source: Store, tmp_path: Path) -> None:
    from pycocotools.coco import COCO

    out = export_boxes(source, tmp_path / "coco", "coco", task=DETECTION)
    coco = COCO(str(out / "pool" / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == CLASSES
    assert len(coco.getImgIds()) == 3 and len(coco.getAnnIds()) == 3
    (shoe,) = coco.loadAnns(coco.getAnnIds(catIds=[2]))
    assert shoe["bbox"] == [20.0, 18.0, 11.0, 13.5]
    assert all((out / "pool" / "images" / img["file_name"]).is_file() for img in coco.loadImgs(coco.getImgIds()))


def test_csv_export_imports_back_the_same_boxes(source: Store, target: Store, tmp_path: Path) -> None:
    out = export_labels(source, tmp_path / "labels.csv", include_eval=True, task=DETECTION)
    table = pd.read_csv(out)
    assert "boxes" in table.columns and "label" not in table.columns
    for split in ("pool", "eval"):
        import_images(target, table[table.split == split], split=split, task=DETECTION)
    assert boxes_by_content(target) == boxes_by_content(source)


def test_labelstudio_export_imports_back_the_same_boxes(
    source: Store, target: Store, images: Path, tmp_path: Path
) -> None:
    out = export_labelstudio(source, tmp_path / "ls.json", task=DETECTION)
    tasks = json.loads(out.read_text())
    (b_task,) = [t for t in tasks if t["data"]["image"].endswith("b.png")]
    (shoe,) = [r for r in b_task["annotations"][0]["result"] if r["value"]["rectanglelabels"] == ["shoe"]]
    # 20 / 32 px = 62.5 %, 18 / 32 = 56.25 %, 11 / 32 = 34.375 %, 13.5 / 32 = 42.1875 % (exact in binary)
    assert shoe["value"] == {
        "x": 62.5,
        "y": 56.25,
        "width": 34.375,
        "height": 42.1875,
        "rotation": 0,
        "rectanglelabels": ["shoe"],
    }
    assert "<RectangleLabels" in (tmp_path / "ls_label_config.xml").read_text()
    report = import_labelstudio(target, out, images_root=images, task=DETECTION)
    assert (report.added, report.labeled, report.n_rejected) == (4, 3, 0)
    pool = {key: boxes for key, boxes in boxes_by_content(source).items() if key[1] == "pool"}
    assert boxes_by_content(target) == pool


def _ls_task(image: str, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "data": {"image": f"/data/local-files/?d={image}"},
        "annotations": [{"completed_by": 7, "updated_at": "2024-05-01T10:00:00Z", "result": results}],
    }


def _rectangle(label: str, x: float, y: float, w: float, h: float, **size: int) -> dict[str, Any]:
    value = {"x": x, "y": y, "width": w, "height": h, "rotation": 0, "rectanglelabels": [label]}
    return {"type": "rectanglelabels", "from_name": "label", "to_name": "image", "value": value, **size}


def test_labelstudio_percents_become_pixels_of_the_original_or_real_size(
    target: Store, images: Path, tmp_path: Path
) -> None:
    tasks = [
        # 25 % of 32 px is 8 px; the size comes from original_width/height
        _ls_task("a.png", [_rectangle("bag", 25, 50, 50, 25, original_width=32, original_height=32)]),
        # no original size: percents of c.png's real 40 x 20 px
        _ls_task("c.png", [_rectangle("shoe", 10, 10, 50, 50)]),
        _ls_task("d.png", []),  # no rectangle: "nothing here"
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    report = import_labelstudio(target, tmp_path / "ls.json", images_root=images, task=DETECTION)
    assert (report.added, report.labeled) == (3, 3)
    by_name = {Path(img.path).name: img.id for img in target.images()}
    current = target.current_annotations()
    assert current[by_name["a.png"]].payload == [{"class": "bag", "x": 8.0, "y": 16.0, "w": 16.0, "h": 8.0}]
    assert current[by_name["c.png"]].payload == [{"class": "shoe", "x": 4.0, "y": 2.0, "w": 20.0, "h": 10.0}]
    assert current[by_name["d.png"]].payload == []
    assert current[by_name["a.png"]].author == "labelstudio-user-7"
    again = import_labelstudio(target, tmp_path / "ls.json", images_root=images, task=DETECTION)
    assert (again.added, again.labeled, again.label_conflicts, again.duplicates) == (0, 0, 0, 3)


def test_labelstudio_bad_rectangles_are_reported(target: Store, images: Path, tmp_path: Path) -> None:
    tasks = [
        _ls_task("a.png", [_rectangle("bag", 80, 0, 50, 10)]),  # runs 30 % past the right edge
        _ls_task("b.png", [_rectangle("hat", 0, 0, 10, 10)]),  # not a class
        _ls_task("c.png", [{**_rectangle("bag", 0, 0, 10, 10), "value": {"x": 0, "rectanglelabels": ["bag"]}}]),
        _ls_task("d.png", [_rectangle("shoe", 10, 10, 20, 20)]),
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    report_path = tmp_path / "report.csv"
    report = import_labelstudio(
        target, tmp_path / "ls.json", images_root=images, task=DETECTION, report_path=report_path
    )
    assert report.added == 4 and report.labeled == 1
    assert dict(report.rejected) == {"invalid_label": 1, "unknown_class": 1, "bad_annotation": 1}
    details = pd.read_csv(report_path).query("status == 'rejected'").set_index("reason")["detail"]
    assert "box 0" in details["invalid_label"] and "hat" in details["unknown_class"]


def _coco(images: list[dict[str, Any]], annotations: list[dict[str, Any]]) -> dict[str, Any]:
    categories = [{"id": 1, "name": "bag"}, {"id": 2, "name": "shoe"}]
    return {"images": images, "categories": categories, "annotations": annotations}


def _ann(image_id: int, category_id: int, bbox: list[float]) -> dict[str, Any]:
    return {"id": 1, "image_id": image_id, "category_id": category_id, "bbox": bbox, "iscrowd": 0}


def test_coco_bad_rows_are_reported_and_the_good_ones_kept(target: Store, images: Path, tmp_path: Path) -> None:
    data = _coco(
        [
            {"id": 1, "file_name": "a.png", "width": 32, "height": 32},
            {"id": 2, "file_name": "b.png", "width": 32, "height": 32},
            {"id": 3, "file_name": "gone.png", "width": 32, "height": 32},  # no such file
            {"id": 4, "file_name": "c.png"},  # no size
        ],
        [
            _ann(1, 1, [1, 2, 3, 4]),
            _ann(1, 2, [30, 30, 10, 10]),  # 8 px outside the image
            _ann(2, 9, [1, 1, 5, 5]),  # no category 9
            _ann(2, 2, [2, 2, 5, 5]),
            _ann(7, 1, [1, 1, 5, 5]),  # image 7 is not in the file
            {**_ann(2, 1, [0, 0, 9, 9]), "iscrowd": 1},  # a crowd of bags, not one
        ],
    )
    data["categories"].append({"id": 3})  # no name
    (images / "coco.json").write_text(json.dumps(data))
    report_path = tmp_path / "report.csv"
    report = import_boxes(target, images / "coco.json", "coco", task=DETECTION, report_path=report_path)
    assert (report.seen, report.added, report.labeled) == (3, 2, 2)
    assert dict(report.rejected) == {
        "box_outside_image": 1,
        "crowd_region": 1,
        "unknown_category": 1,
        "invalid_category": 1,
        "invalid_image": 1,
        "image_not_listed": 1,
        "missing_file": 1,
    }
    rows = pd.read_csv(report_path, keep_default_na=False)
    assert rows.query("reason == 'image_not_listed'").path.tolist() == ["coco.json annotations[4]"]
    assert sorted(map(len, (c.payload for c in target.current_annotations().values()))) == [1, 1]


def test_coco_classes_the_project_lacks_wait_for_add_classes(images: Path, tmp_path: Path) -> None:
    data = _coco([{"id": 1, "file_name": "a.png", "width": 32, "height": 32}], [_ann(1, 2, [1, 1, 5, 5])])
    (images / "coco.json").write_text(json.dumps(data))
    for store in _detection_store(tmp_path / "only-bags.db", ["bag"]):
        first = import_boxes(store, images / "coco.json", "coco", task=DETECTION)
        assert (first.added, dict(first.rejected)) == (0, {"unknown_class": 1})
        second = import_boxes(store, images / "coco.json", "coco", task=DETECTION, add_classes=True)
        assert (second.added, second.labeled, second.new_classes) == (1, 1, ["shoe"])


def test_voc_malformed_xml_is_reported_and_the_other_files_kept(source: Store, target: Store, tmp_path: Path) -> None:
    out = export_boxes(source, tmp_path / "voc", "voc", task=DETECTION)
    (out / "pool" / "annotations" / "broken.xml").write_text("<annotation><filename>x.png</filename>")
    report = import_boxes(target, out / "pool" / "annotations", "voc", task=DETECTION)
    assert (report.added, report.labeled, dict(report.rejected)) == (3, 3, {"malformed_file": 1})


def test_yolo_label_file_without_an_image_is_reported(source: Store, target: Store, tmp_path: Path) -> None:
    out = export_boxes(source, tmp_path / "yolo", "yolo", task=DETECTION)
    (out / "pool" / "labels" / "lost.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    report = import_boxes(target, out, "yolo", task=DETECTION)
    assert (report.added, report.labeled, dict(report.rejected)) == (3, 3, {"image_not_listed": 1})


def test_formats_refuse_the_other_kind_of_annotation(source: Store, tmp_path: Path) -> None:
    classification = get_task("classification")
    out = export_boxes(source, tmp_path / "coco", "coco", task=DETECTION)
    with pytest.raises(InputError, match="detection project"):
        import_boxes(source, out / "pool" / "annotations.json", "coco", task=classification)
    with pytest.raises(InputError, match="detection project"):
        export_boxes(source, tmp_path / "voc", "voc", task=classification)
    with pytest.raises(InputError, match="not boxes"):
        export_labels(source, tmp_path / "tree", fmt="imagefolder", task=DETECTION)
    with pytest.raises(InputError, match="--format coco"):
        export_fiftyone(source, tmp_path / "fiftyone", task=DETECTION)
    with pytest.raises(InputError, match="--format coco"):
        export_hf_imagefolder(source, tmp_path / "hf", task=DETECTION)
    assert not (tmp_path / "voc").exists() and not (tmp_path / "fiftyone").exists()


def _predict_round(store: Store, image_id: int, boxes: list[dict[str, Any]]) -> None:
    """A finished round 1 whose queue is ``image_id`` alone, with ``boxes`` as its prediction."""
    number = store.start_round(strategy="det_entropy", model="detector", config={}, n_labeled=3)
    store.finish_round(number, metrics={}, selection=[(image_id, 1.0)], predictions=[(image_id, boxes, 0.9)])


PREDICTED = [{"class": "bag", "x": 4.0, "y": 8.0, "w": 16.0, "h": 8.0, "score": 0.9}]


def test_labelstudio_export_carries_the_predicted_boxes_with_their_scores(source: Store, tmp_path: Path) -> None:
    ids = {Path(img.path).name: img.id for img in source.images()}
    _predict_round(source, ids["d.png"], PREDICTED)
    tasks = json.loads(export_labelstudio(source, tmp_path / "ls.json", task=DETECTION).read_text())
    with_predictions = [t for t in tasks if "predictions" in t]
    assert [t["data"]["activelab_id"] for t in with_predictions] == [ids["d.png"]]
    (guess,) = with_predictions[0]["predictions"]
    assert (guess["score"], guess["model_version"]) == (1.0, "activelab-round-1")
    (result,) = guess["result"]
    assert result["score"] == 0.9 and result["type"] == "rectanglelabels"
    assert result["value"] == {
        "x": 12.5,
        "y": 25.0,
        "width": 50.0,
        "height": 25.0,
        "rotation": 0,
        "rectanglelabels": ["bag"],
    }


def test_ls_backend_predicts_rectangles_and_records_drawn_ones(images: Path, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from activelab.loop.formats.labelstudio import label_config
    from activelab.loop.project import init_project
    from activelab.loop.trainer import BackgroundTrainer
    from activelab.server.ls_backend import LabelStudioBackend, create_ls_backend_app

    with init_project(tmp_path / "project", CLASSES, task="detection") as proj:
        import_images(proj.store, pd.DataFrame({"filepath": [str(images / n) for n in ("a.png", "d.png")]}))
        ids = {Path(img.path).name: img.id for img in proj.store.images()}
        _predict_round(proj.store, ids["d.png"], PREDICTED)
        backend = LabelStudioBackend(proj, BackgroundTrainer(proj, retrain_every=1000), images_root=images)
        with TestClient(create_ls_backend_app(backend)) as client:
            choices = client.post("/setup", json={"project": "4.1", "schema": label_config(CLASSES)})
            assert choices.status_code == 422 and "<RectangleLabels>" in choices.json()["detail"]
            setup = client.post("/setup", json={"project": "4.1", "schema": label_config(CLASSES, boxes=True)})
            assert setup.status_code == 200

            task = {"data": {"image": "/data/local-files/?d=d.png"}}
            (result,) = client.post("/predict", json={"tasks": [task], "project": "4.1"}).json()["results"]
            assert result["score"] == 1.0
            (box,) = result["result"]
            assert (box["from_name"], box["type"], box["score"]) == ("label", "rectanglelabels", 0.9)
            assert (box["value"]["x"], box["value"]["width"]) == (12.5, 50.0)

            drawn = _ls_task("a.png", [_rectangle("shoe", 50, 0, 25, 50, original_width=32, original_height=32)])
            event = {"action": "ANNOTATION_CREATED", "project": {"id": 4}, "task": drawn}
            response = client.post("/webhook", json={**event, "annotation": drawn["annotations"][0]})
            assert response.json()["labels_added"] == 1
        current = proj.store.current_annotations()[ids["a.png"]]
        assert (current.payload, current.source) == (
            [{"class": "shoe", "x": 16.0, "y": 0.0, "w": 8.0, "h": 16.0}],
            "human",
        )
