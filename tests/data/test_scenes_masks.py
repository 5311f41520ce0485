"""fashion-scenes' segmentation tables: background-first classes and image/mask rows that agree with the boxes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activelab.data.datasets import FASHION_MNIST_CLASSES
from activelab.data.scenes import SEGMENTATION_TABLES, write_scenes
from activelab.tasks.masks import read_mask

N_POOL, N_EVAL = 8, 4


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_scenes(tmp_path_factory.mktemp("scenes"), n_pool=N_POOL, n_eval=N_EVAL, size=64, seed_per_class=1)


def test_classes_start_with_background_then_the_box_classes(scenes: Path) -> None:
    classes = (scenes / SEGMENTATION_TABLES["classes"]).read_text().split()
    assert classes == ["background", *FASHION_MNIST_CLASSES]
    assert classes[1:] == (scenes / "classes.txt").read_text().split()


def test_mask_tables_pair_every_image_with_its_semantic_png(scenes: Path) -> None:
    for key, box_table, n in (("answers", "answers.csv", N_POOL), ("eval", "eval.csv", N_EVAL)):
        table = pd.read_csv(scenes / SEGMENTATION_TABLES[key])
        split = "pool" if key == "answers" else "eval"
        assert list(table.columns) == ["image", "mask"]
        assert table["image"].equals(pd.read_csv(scenes / box_table)["image"])
        assert table["mask"].tolist() == [f"{split}/masks/semantic/{i:06d}.png" for i in range(n)]
        assert all((scenes / rel).is_file() for rel in table["mask"])


def test_a_mask_holds_exactly_its_boxes_classes_plus_one(scenes: Path) -> None:
    classes = (scenes / SEGMENTATION_TABLES["classes"]).read_text().split()
    masks = pd.read_csv(scenes / SEGMENTATION_TABLES["answers"])
    for rel, cell in zip(masks["mask"], pd.read_csv(scenes / "answers.csv")["boxes"]):
        mask = read_mask(scenes / rel, n_classes=len(classes), size=(64, 64))
        wanted = {FASHION_MNIST_CLASSES.index(box["class"]) + 1 for box in json.loads(cell)}
        assert set(np.unique(mask).tolist()) - {0} == wanted
        assert {classes[v] for v in wanted} == {box["class"] for box in json.loads(cell)}
        assert (mask == 0).any()  # items never fill a whole canvas


def test_seed_masks_are_the_seed_images(scenes: Path) -> None:
    seed = pd.read_csv(scenes / SEGMENTATION_TABLES["seed"])
    assert seed["image"].equals(pd.read_csv(scenes / "seed.csv")["image"])
    assert seed.equals(pd.read_csv(scenes / SEGMENTATION_TABLES["answers"]).head(len(seed)))
    assert 1 <= len(seed) <= N_POOL
