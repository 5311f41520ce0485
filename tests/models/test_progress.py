"""Training and scoring report their steps through activelab.progress when asked, and only then."""

from __future__ import annotations

import importlib.util
import math
from contextlib import contextmanager

import numpy as np
import pytest
from PIL import Image

from activelab.models import create_model
from activelab.progress import reporting


class Recorder:
    """A ProgressReporter that keeps each step's description, total, unit and advanced units."""

    def __init__(self) -> None:
        self.steps: list[dict] = []

    @contextmanager
    def task(self, description: str, *, total: float | None = None, unit: str = "item"):
        step = {"description": description, "total": total, "unit": unit, "done": 0.0, "shown": [description]}
        self.steps.append(step)

        class Task:
            def advance(self, n: float = 1) -> None:
                step["done"] += n

            def describe(self, text: str) -> None:
                step["shown"].append(text)

        yield Task()

    def named(self, prefix: str) -> dict:
        found = [s for s in self.steps if s["description"].startswith(prefix)]
        assert len(found) == 1, [s["description"] for s in self.steps]
        return found[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> tuple[list[str], list[int]]:
    """10 distinct, flat red or blue 20 px images and their labels (0 red, 1 blue)."""
    root = tmp_path_factory.mktemp("flat")
    paths, labels = [], []
    for i in range(10):
        labels.append(i % 2)
        paths.append(str(root / f"{i}.png"))
        im = Image.new("RGB", (20, 20), [(230, 20, 20), (20, 20, 230)][i % 2])
        im.putpixel((0, 0), (i, i, i))  # distinct files: the embedding cache keys images by content
        im.save(paths[-1])
    return paths, labels


def test_frozen_mode_reports_embedding_and_head_epochs(images) -> None:
    paths, labels = images
    model = create_model(classes=["red", "blue"], image_size=32, device="cpu", head="mlp", epochs=7)
    rec = Recorder()
    with reporting(rec):
        model.fit(paths, labels, progress=True)
    embedding = rec.named("embedding with efficientnet_lite0")
    assert (embedding["total"], embedding["done"], embedding["unit"]) == (10, 10, "img")
    head = rec.named("training the head")
    assert (head["total"], head["done"], head["unit"]) == (7, 7, "epoch")
    with reporting(rec):
        model.predict_proba(paths, progress=False)
        model.fit(paths, labels)  # progress defaults to off
    assert len(rec.steps) == 2


def test_finetune_mode_reports_steps_and_scoring_batches(images) -> None:
    paths, labels = images
    model = create_model("small_cnn", classes=["red", "blue"], device="cpu", epochs=3, batch_size=4,
                         val_fraction=0.0, augment=False)  # fmt: skip
    rec = Recorder()
    with reporting(rec):
        model.fit(paths, labels, progress=True)
        model.predict_proba(paths, progress=True)
        model.embed(paths[:3], progress=True)
    training = rec.named("fine-tuning small_cnn")
    steps = 3 * math.ceil(10 / 4)
    assert (training["total"], training["done"], training["unit"]) == (steps, steps, "batch")
    assert len(training["shown"]) == 4 and "train_loss" in training["shown"][-1]  # one description per epoch
    predicting = rec.named("predicting")
    assert (predicting["total"], predicting["done"]) == (3, 3)  # 10 images in batches of 4
    embedding = rec.named("embedding")
    assert (embedding["total"], embedding["done"]) == (1, 1)


@pytest.mark.skipif(importlib.util.find_spec("fastai") is None, reason="needs pip install 'activelab[fastai]'")
def test_fastai_reports_through_activelab_progress_not_its_own_bar(images, capsys) -> None:
    paths, labels = images
    model = create_model("fastai/test_convnext", classes=["red", "blue"], pretrained=False, image_size=32,
                         device="cpu", epochs=2, batch_size=4, augment=False, val_fraction=0.0)  # fmt: skip
    rec = Recorder()
    with reporting(rec):
        model.fit(paths, labels, progress=True)
        p = model.predict_proba(paths, progress=True)
    assert p.shape == (10, 2) and np.allclose(p.sum(1), 1, atol=1e-5)
    training = rec.named("fine-tuning fastai/test_convnext")
    assert training["total"] == training["done"] == 2 * (10 // 4)  # fastai drops the last partial batch
    predicting = rec.named("predicting")
    assert predicting["total"] == predicting["done"] == 3
    out = capsys.readouterr()
    assert "epoch" not in out.out and "train_loss" not in out.out  # fastai's own progress table stays quiet
