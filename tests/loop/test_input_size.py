"""The input-size rule on synthetic sizes, and a project recording the size it chose."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from activelab.loop.ingest import import_images
from activelab.loop.input_size import (
    choose_input_size,
    median_image_size,
    native_input_size,
    resolve_input_size,
)
from activelab.loop.project import init_project
from activelab.loop.settings import SETTINGS_FILE, ModelSettings, load_settings


@pytest.mark.parametrize(
    ("side", "native", "expected"),
    [
        (8, 224, 64),  # digits: 2x is 16, at least 64
        (28, 224, 64),  # Fashion-MNIST: 2x is 56, rounded up to 64
        (32, 224, 64),  # CIFAR
        (33, 224, 96),  # 66 rounds up to the next multiple of 32
        (48, 224, 96),
        (100, 224, 224),  # 200 rounds up to 224, the native size
        (640, 224, 224),  # photos: never above the native size
        (150, 299, 299),  # 320 would pass a 299-px native size
        (28, 32, 32),  # a model whose native size is below the floor keeps its native size
        (28, None, 64),  # trained from scratch: same rule...
        (640, None, 224),  # ...capped at 224
    ],
)
def test_rule_on_synthetic_sizes(side: int, native: int | None, expected: int) -> None:
    assert choose_input_size(side, native) == expected


def test_rule_rejects_a_non_positive_size() -> None:
    with pytest.raises(ValueError, match="image_side must be positive"):
        choose_input_size(0, 224)


def test_median_image_size() -> None:
    assert median_image_size([(28, 28), (28, 28), (640, 480)]) == (28, 28)
    assert median_image_size([(200, 100), (300, 100)]) == (250, 100)
    assert median_image_size([]) is None


def test_native_size_of_the_packaged_backbone_and_of_a_model_from_scratch() -> None:
    assert native_input_size(ModelSettings()) == 224
    assert native_input_size(ModelSettings(name="small_cnn", path="full", pretrained=False)) is None


def test_a_project_records_the_size_it_chose(tmp_path: Path, sample: Path) -> None:
    with init_project(tmp_path / "p", ["a", "b"]) as proj:
        assert resolve_input_size(proj).reason.startswith("the model's default: no pool images")
        assert load_settings(proj.root / SETTINGS_FILE).model.image_size is None  # nothing chosen yet
        pool = pd.read_csv(sample / "pool.csv").head(5)
        import_images(proj.store, pool.assign(filepath=[str(sample / p) for p in pool.filepath], label=None))
        proj.settings.active_learner.strategy = "random"  # an in-memory override (e.g. a CLI flag)
        size = resolve_input_size(proj)
        assert size.pixels == 64 and proj.settings.model.image_size == 64
        assert size.describe().startswith("input size 64 px (chosen from 28x28 images: 2x the median longer side")
        on_disk = load_settings(proj.root / SETTINGS_FILE)
        assert on_disk.model.image_size == 64 and on_disk.active_learner.strategy == "auto"
        assert resolve_input_size(proj).describe() == "input size 64 px (model.image_size in activelab.yaml)"


def test_larger_images_are_capped_at_the_native_size(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, (w, h) in enumerate([(120, 90), (130, 100), (110, 80)]):
        Image.new("RGB", (w, h), (i * 40, 0, 0)).save(folder / f"{i}.png")
    with init_project(tmp_path / "p") as proj:
        import_images(proj.store, folder, fmt="folder")
        size = resolve_input_size(proj)
        assert size.pixels == 224 and "chosen from 120x90 images" in size.reason
        assert load_settings(proj.root / SETTINGS_FILE).model.image_size == 224


def test_a_detection_project_keeps_its_images_own_size(tmp_path: Path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        Image.new("RGB", (128, 128), (i * 40, 0, 0)).save(folder / f"{i}.png")
    with init_project(tmp_path / "p", ["bag"], task="detection") as proj:
        import_images(proj.store, folder, fmt="folder")
        size = resolve_input_size(proj)
        # boxes and anchors are in the image's pixels: 1x, where a classifier would read these at 224 px
        assert size.pixels == 128 and "1x the median longer side" in size.reason
    assert choose_input_size(128, None) == 224
