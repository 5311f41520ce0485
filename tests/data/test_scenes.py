"""fashion-scenes: seeded scenes of real Fashion-MNIST items whose boxes, masks, COCO, YOLO and tables agree."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from pycocotools.coco import COCO
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.data.annotations import read_yolo
from activelab.data.datasets import (
    DIGITS_CLASSES,
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ENV,
    fetch_dataset,
    list_datasets,
    load_fashion_mnist,
)
from activelab.data.scenes import MAX_ITEMS, MIN_VISIBLE, render_scene, write_scenes
from activelab.exceptions import InputError

N_POOL, N_EVAL = 24, 6


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("scenes"), n_pool=N_POOL, n_eval=N_EVAL, seed=3)


#: the table holding each split's boxes: the pool's own table lists its images unlabeled
BOX_TABLES = {"pool": "answers.csv", "eval": "eval.csv"}


def _payloads(root: Path, split: str) -> list[list[dict]]:
    return [json.loads(cell) for cell in pd.read_csv(root / BOX_TABLES[split])["boxes"]]


def _mask_box(mask: np.ndarray) -> list[float]:
    cols, rows = np.flatnonzero(mask.any(axis=0)), np.flatnonzero(mask.any(axis=1))
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


def test_layout_tables_and_classes(scenes: Path) -> None:
    assert (scenes / "classes.txt").read_text().split() == FASHION_MNIST_CLASSES
    readme = (scenes / "README.md").read_text()
    assert "MIT licence" in readme and "Zalando" in readme
    for split, n in (("pool", N_POOL), ("eval", N_EVAL)):
        table = pd.read_csv(scenes / BOX_TABLES[split])
        assert list(table.columns) == ["image", "boxes"]
        assert table["image"].tolist() == [f"{split}/images/{i:06d}.png" for i in range(n)]
        for rel in table["image"]:
            with Image.open(scenes / rel) as im:
                assert (im.mode, im.size) == ("RGB", (128, 128))
    counts = [len(boxes) for boxes in _payloads(scenes, "pool") + _payloads(scenes, "eval")]
    assert min(counts) >= 1 and max(counts) <= MAX_ITEMS
    assert len(set(counts)) >= 3  # the number of items varies
    names = {box["class"] for boxes in _payloads(scenes, "pool") for box in boxes}
    assert names <= set(FASHION_MNIST_CLASSES) and len(names) >= 8


def test_boxes_are_tight_around_the_visible_instance_pixels(scenes: Path) -> None:
    for split in ("pool", "eval"):
        for i, boxes in enumerate(_payloads(scenes, split)):
            instances = np.asarray(Image.open(scenes / split / "masks" / "instance" / f"{i:06d}.png"))
            semantic = np.asarray(Image.open(scenes / split / "masks" / "semantic" / f"{i:06d}.png"))
            assert instances.dtype == np.uint16 and semantic.dtype == np.uint8
            assert sorted(set(np.unique(instances).tolist()) - {0}) == list(range(1, len(boxes) + 1))
            for k, box in enumerate(boxes, start=1):
                assert [box["x"], box["y"], box["w"], box["h"]] == _mask_box(instances == k)
                assert box["x"] >= 0 and box["x"] + box["w"] <= 128 and box["y"] >= 0 and box["y"] + box["h"] <= 128
                class_id = FASHION_MNIST_CLASSES.index(box["class"]) + 1
                assert np.array_equal(
                    semantic == class_id,
                    np.isin(instances, [j for j, b in enumerate(boxes, 1) if b["class"] == box["class"]]),
                )
            assert np.array_equal(semantic == 0, instances == 0)


def test_later_items_partly_cover_earlier_ones(scenes: Path) -> None:
    overlapping = 0
    for boxes in _payloads(scenes, "pool"):
        for a, p in enumerate(boxes):
            for q in boxes[a + 1 :]:
                overlapping += min(p["x"] + p["w"], q["x"] + q["w"]) > max(p["x"], q["x"]) and min(
                    p["y"] + p["h"], q["y"] + q["h"]
                ) > max(p["y"], q["y"])
    assert overlapping >= 5


def test_coco_file_loads_in_pycocotools_and_matches_the_tables(scenes: Path) -> None:
    for split in ("pool", "eval"):
        coco = COCO(str(scenes / split / "annotations.json"))
        payloads = _payloads(scenes, split)
        assert len(coco.getImgIds()) == len(payloads)
        for image_id, boxes in zip(sorted(coco.getImgIds()), payloads):
            assert coco.loadImgs(image_id)[0]["file_name"] == f"{image_id - 1:06d}.png"
            anns = coco.loadAnns(coco.getAnnIds(imgIds=[image_id]))
            assert [a["bbox"] for a in anns] == [[b["x"], b["y"], b["w"], b["h"]] for b in boxes]
            assert [coco.loadCats(a["category_id"])[0]["name"] for a in anns] == [b["class"] for b in boxes]
            instances = np.asarray(Image.open(scenes / split / "masks" / "instance" / f"{image_id - 1:06d}.png"))
            for k, ann in enumerate(anns, start=1):
                assert np.array_equal(coco.annToMask(ann), instances == k)
                assert ann["area"] == float((instances == k).sum())


def test_yolo_files_read_back_the_same_boxes(scenes: Path) -> None:
    for split, yolo_split in (("pool", "train"), ("eval", "val")):
        got = read_yolo(scenes / "data.yaml", split=yolo_split)
        assert got.problems == [] and got.classes == FASHION_MNIST_CLASSES
        payloads = _payloads(scenes, split)
        assert [item.file_name for item in got.items] == [f"{i:06d}.png" for i in range(len(payloads))]
        for item, boxes in zip(got.items, payloads):
            assert [b["class"] for b in item.boxes] == [b["class"] for b in boxes]
            for have, want in zip(item.boxes, boxes):
                assert [have[k] for k in "xywh"] == pytest.approx([want[k] for k in "xywh"], abs=0.01)


def _images_per_class(table: pd.DataFrame) -> list[int]:
    counts = dict.fromkeys(FASHION_MNIST_CLASSES, 0)
    for cell in table["boxes"]:
        for name in {box["class"] for box in json.loads(cell)}:
            counts[name] += 1
    return list(counts.values())


def test_seed_is_the_shortest_pool_start_of_twenty_images_with_each_class_twice(scenes: Path) -> None:
    seed, pool = pd.read_csv(scenes / "seed.csv"), pd.read_csv(scenes / "answers.csv")
    assert list(pd.read_csv(scenes / "pool.csv").columns) == ["image"]
    assert pd.read_csv(scenes / "pool.csv")["image"].equals(pool["image"])
    assert len(seed) >= 20 and seed.equals(pool.head(len(seed)))
    assert min(_images_per_class(seed)) >= 2
    assert len(seed) == 20 or min(_images_per_class(seed.head(len(seed) - 1))) < 2


def test_same_seed_same_bytes_and_eval_independent_of_the_pool_size(scenes: Path, tmp_path: Path) -> None:
    again = write_scenes(tmp_path, n_pool=5, n_eval=N_EVAL, seed=3)
    for rel in [
        "eval.csv",
        "eval/annotations.json",
        *(f"{d}/{i:06d}.png" for d in ("pool/images", "eval/masks/instance") for i in range(5)),
    ]:
        assert (again / rel).read_bytes() == (scenes / rel).read_bytes(), rel
    assert pd.read_csv(again / "answers.csv").equals(pd.read_csv(scenes / "answers.csv").head(5))


def test_render_scene_is_seeded() -> None:
    _, _, x_test, y_test = load_fashion_mnist()
    items, labels = x_test[:200], y_test[:200]
    first, same = (render_scene(items, labels, size=64, rng=np.random.default_rng(7)) for _ in range(2))
    other = render_scene(items, labels, size=64, rng=np.random.default_rng(8))
    assert np.array_equal(first.image, same.image) and np.array_equal(first.boxes, same.boxes)
    assert not np.array_equal(first.image, other.image)
    assert first.image.shape == (64, 64, 3) and first.instances.shape == (64, 64)
    with pytest.raises(InputError, match="at least 32 px"):
        render_scene(items, labels, size=16, rng=np.random.default_rng(0))
    with pytest.raises(InputError, match="has a pixel above 24"):
        render_scene(np.zeros((2, 28, 28), np.uint8), labels[:2], rng=np.random.default_rng(0))


def test_no_item_is_hidden_below_the_visible_minimum() -> None:
    squares, labels = np.full((3, 28, 28), 255, dtype=np.uint8), np.arange(3)  # every pixel of an item is its own
    rng = np.random.default_rng(0)
    scenes = [render_scene(squares, labels, size=32, rng=rng) for _ in range(40)]  # a crowded small canvas
    visible = np.concatenate([scene.visible for scene in scenes])
    assert visible.min() >= MIN_VISIBLE and visible.min() < 1.0  # covered, never beyond the minimum
    for scene in scenes:
        assert len(scene.boxes) == len(scene.labels) == len(scene.visible) >= 1
        assert np.array_equal(np.bincount(scene.instances.ravel())[1:] > 0, np.ones(len(scene.boxes), bool))


def test_fetch_and_cli_write_scenes_and_list_them(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "datasets",
            "fetch",
            "fashion-scenes",
            str(tmp_path / "s"),
            "--limit",
            "3",
            "--eval-limit",
            "2",
            "--size",
            "64",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    masks = {"masks_classes", "masks_answers", "masks_eval", "masks_seed"}
    assert set(out) == {"path", "pool", "seed", "answers", "eval", "coco", "yolo", *masks}
    assert pd.read_csv(out["masks_eval"]).columns.tolist() == ["image", "mask"]
    assert len(pd.read_csv(out["pool"])) == 3 and len(pd.read_csv(out["eval"])) == 2
    assert len(pd.read_csv(out["answers"])) == 3
    assert Image.open(tmp_path / "s" / "pool" / "images" / "000000.png").size == (64, 64)
    info = {i.name: i for i in list_datasets()}["fashion-scenes"]
    assert (info.task, info.n_pool, info.n_eval, info.available) == ("detection", 2000, 500, True)
    with pytest.raises(InputError, match="size applies to fashion-scenes only"):
        fetch_dataset("digits", tmp_path / "d", size=64)


def test_cli_prints_how_to_start_a_detection_project(tmp_path: Path) -> None:
    dest = tmp_path / "s"
    result = CliRunner().invoke(
        app, ["datasets", "fetch", "fashion-scenes", str(dest), "--limit", "2", "--eval-limit", "1"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == f"  activelab init PROJECT --task detection --classes {','.join(FASHION_MNIST_CLASSES)}"
    assert lines[2:5] == [
        f"  activelab import PROJECT {dest / 'pool.csv'}",
        f"  activelab import PROJECT {dest / 'eval.csv'} --split eval",
        f"  activelab import PROJECT {dest / 'seed.csv'}",
    ]
    assert len(pd.read_csv(dest / "seed.csv")) == 2  # the whole 2-image pool: 20 are asked for
    start = lines.index("A segmentation project (docs/segmentation.md) starts from the same pool and the mask tables:")
    assert lines[start + 1 : start + 5] == [
        f"  activelab init PROJECT --task segmentation --classes-file {dest / 'classes_masks.txt'}",
        f"  activelab import PROJECT {dest / 'pool.csv'} --path-col image",
        f"  activelab import PROJECT {dest / 'eval_masks.csv'} --path-col image --split eval",
        f"  activelab import PROJECT {dest / 'seed_masks.csv'} --path-col image",
    ]


def test_digits_stand_in_without_fashion_mnist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path / "none"))
    out = fetch_dataset("fashion-scenes", tmp_path / "s", limit=4, eval_limit=2)
    assert (out / "classes.txt").read_text().split() == DIGITS_CLASSES
    assert "scikit-learn's 8x8 digits" in (out / "README.md").read_text()
    assert {b["class"] for boxes in _payloads(out, "pool") for b in boxes} <= set(DIGITS_CLASSES)
