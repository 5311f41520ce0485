"""The fastai adapter: ``fastai/<arch>`` learners and wrapped ``Learner`` objects on real
28 px Fashion-MNIST PNGs (32 px inputs, CPU).

Skipped when fastai is not installed, except under CI (where the test set-up installs
the ``fastai`` extra, so a missing package must fail). The missing-package error itself
is always tested, by hiding fastai.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys

import numpy as np
import pytest
from torch import nn

from activelab.exceptions import InputError, MissingDependencyError, NotFittedError, OfflineError
from activelab.loop.inputs import strategy_inputs
from activelab.models import CAPABILITIES, FitReport, ModelAdapter, create_model, load_model, parse_name
from tests.models.conftest import accuracy

HAVE_FASTAI = importlib.util.find_spec("fastai") is not None
needs_fastai = pytest.mark.skipif(
    not HAVE_FASTAI and not os.environ.get("CI"),
    reason="fastai is not installed (pip install 'activelab[fastai]'); required under CI",
)

FIT_OPTIONS = {"epochs": 3, "lr": 3e-3, "batch_size": 16, "augment": False}


class TinyNet(nn.Sequential):
    """body (conv-ReLU-pool x2, global pool) -> head (dropout -> linear): a user's own model."""

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__(
            nn.Sequential(
                nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            ),
            nn.Sequential(nn.Dropout(0.3), nn.Linear(32, n_classes)),
        )  # fmt: skip


# --- always run ------------------------------------------------------------------------


def test_missing_fastai_names_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "fastai", None)  # `import fastai` now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"pip install 'activelab\[fastai\]'"):
        create_model("fastai/resnet18", num_classes=3, pretrained=False)
    with pytest.raises(ImportError):  # MissingDependencyError is an ImportError
        create_model("fastai/resnet18", num_classes=3, pretrained=False)


def test_names() -> None:
    assert parse_name("fastai/resnet18") == ("fastai", "resnet18")
    assert parse_name("fastai/torchvision/resnet18") == ("fastai", "torchvision/resnet18")
    with pytest.raises(InputError, match="fastai/"):
        parse_name("fastai/not_a_model_xyz")
    with pytest.raises(InputError):
        parse_name("fastai/torchvision/not_a_model_xyz")


# --- need fastai -----------------------------------------------------------------------


@needs_fastai
def test_bad_arguments() -> None:
    with pytest.raises(InputError, match="path"):
        create_model("fastai/resnet18", num_classes=3, pretrained=False, path="fast")
    with pytest.raises(InputError, match="unknown option"):
        create_model("fastai/resnet18", num_classes=3, pretrained=False, nonsense=1)


@needs_fastai
def test_pretrained_offline_fails_fast(monkeypatch, tmp_path) -> None:
    import time

    from activelab.models import hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # no cached torchvision weights
    monkeypatch.setattr(hub, "_timm_cached_file", lambda cfg: None)  # no cached timm weights
    t0 = time.perf_counter()
    with pytest.raises(OfflineError, match="pretrained=False"):
        create_model("fastai/resnet18", num_classes=3, pretrained=True)
    with pytest.raises(OfflineError):
        create_model("fastai/torchvision/resnet18", num_classes=3, pretrained=True)
    assert time.perf_counter() - t0 < 10


@pytest.fixture(scope="module")
def built(fashion):
    """A fastai vision_learner on timm's tiny test_convnext, from scratch, fitted once."""
    if not HAVE_FASTAI and not os.environ.get("CI"):
        pytest.skip("fastai is not installed")
    model = create_model("fastai/test_convnext", classes=fashion.classes, pretrained=False, image_size=32,
                         device="cpu", **FIT_OPTIONS)  # fmt: skip
    with pytest.raises(NotFittedError):
        model.predict_proba(fashion.test_paths[:2])
    report = model.fit(fashion.train_paths, fashion.train_labels, seed=0)
    return model, report


@needs_fastai
def test_built_learner_contract(built, fashion, tmp_path) -> None:
    model, report = built
    test = fashion.test_paths
    assert isinstance(model, ModelAdapter)
    assert model.supports == CAPABILITIES
    json.dumps(model.config)
    assert model.config["name"] == "fastai/test_convnext"
    assert isinstance(report, FitReport) and report.n_train + report.n_val == len(fashion.train_paths)
    assert report.epochs == FIT_OPTIONS["epochs"] and report.val_accuracy is not None
    json.dumps(report.to_dict())

    p = model.predict_proba(test)
    assert p.shape == (len(test), 3) and p.dtype == np.float32 and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert accuracy(p, fashion.test_labels) > 0.5  # chance is 1/3
    assert model.predict_proba([]).shape == (0, 3)

    e = model.embed(test[:8])
    assert e.shape == (8, 512) and e.dtype == np.float32  # the fastai head's hidden layer
    np.testing.assert_array_equal(e, model.last_layer_features(test[:8]))
    mc = model.mc_predict(test[:8], n_samples=4, seed=0)
    assert mc.shape == (4, 8, 3) and mc.dtype == np.float32
    np.testing.assert_allclose(mc.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(mc, model.mc_predict(test[:8], n_samples=4, seed=0))
    assert not np.allclose(mc[0], mc[1])  # dropout is on
    g = model.grad_embed(test[:8])
    assert g.shape == (8, 3 * 512) and g.dtype == np.float32

    model.save(tmp_path / "fastai.pt")
    loaded = load_model(tmp_path / "fastai.pt")
    assert type(loaded) is type(model) and loaded.classes == fashion.classes
    np.testing.assert_array_equal(loaded.predict_proba(test), p)
    np.testing.assert_array_equal(loaded.embed(test[:8]), e)


@needs_fastai
def test_loop_contract(built, fashion) -> None:
    model, _ = built
    out = strategy_inputs(model, "margin", fashion.test_paths[:10])
    assert out["probs"].shape == (10, 3)
    out = strategy_inputs(model, "badge", fashion.test_paths[:10])
    assert out["embeddings"].shape == (10, 512)


@pytest.fixture(scope="module")
def wrapped_learner(fashion):
    """A user's fastai Learner over a custom model, wrapped and fitted through the adapter."""
    if not HAVE_FASTAI and not os.environ.get("CI"):
        pytest.skip("fastai is not installed")
    import torch
    from fastai.vision.all import (
        CrossEntropyLossFlat,
        ImageDataLoaders,
        Learner,
        Resize,
    )
    from fastai.vision.all import accuracy as acc_metric

    from activelab.models.registry import from_learner

    names = [fashion.classes[y] for y in fashion.train_labels]
    dls = ImageDataLoaders.from_lists(
        os.path.dirname(fashion.train_paths[0]), fashion.train_paths, names, valid_pct=0.1, seed=0,
        item_tfms=Resize(32), bs=16, num_workers=0, device=torch.device("cpu"),
    )  # fmt: skip
    torch.manual_seed(0)
    learn = Learner(dls, TinyNet(len(dls.vocab)), loss_func=CrossEntropyLossFlat(), metrics=acc_metric)
    model = from_learner(learn, device="cpu", epochs=4, lr=1e-2)
    return model, list(dls.vocab)


@needs_fastai
def test_wrapped_learner(wrapped_learner, fashion, tmp_path) -> None:
    model, vocab = wrapped_learner
    assert model.classes == [str(v) for v in vocab]  # the learner's vocab order (sorted names)
    assert model.supports == CAPABILITIES
    labels = [model.classes.index(fashion.classes[y]) for y in fashion.train_labels]
    test_labels = [model.classes.index(fashion.classes[y]) for y in fashion.test_labels]

    report = model.fit(fashion.train_paths, labels, seed=0)
    assert report.epochs == 4
    p = model.predict_proba(fashion.test_paths)
    np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
    assert accuracy(p, test_labels) > 0.5
    assert model.embed(fashion.test_paths[:5]).shape == (5, 32)
    assert model.mc_predict(fashion.test_paths[:5], n_samples=3).shape == (3, 5, 3)
    assert strategy_inputs(model, "margin", fashion.test_paths[:6])["probs"].shape == (6, 3)

    model.save(tmp_path / "wrapped.pt")
    loaded = load_model(tmp_path / "wrapped.pt")
    assert loaded.classes == model.classes
    np.testing.assert_array_equal(loaded.predict_proba(fashion.test_paths), p)


@needs_fastai
def test_wrapped_learner_class_order_is_checked(wrapped_learner) -> None:
    from activelab.models.integrations.fastai import FastaiAdapter

    model, vocab = wrapped_learner
    with pytest.raises(InputError, match="order"):
        FastaiAdapter.from_learner(model.learner, classes=list(reversed([str(v) for v in vocab])))
    with pytest.raises(InputError):
        FastaiAdapter.from_learner(model.learner, classes=["a", "b"])


@needs_fastai
def test_images_are_read_with_load_rgb_exif_orientation_included(tmp_path) -> None:
    """fastai's pipelines open files through open_rgb, so an EXIF-rotated photo arrives upright as elsewhere."""
    from PIL import Image

    from activelab.models.integrations.fastai import import_fastai, open_rgb

    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (200, 10, 10)).save(path, exif=exif)
    im = open_rgb(path)
    assert isinstance(im, import_fastai().PILImage)
    assert (im.size, im.mode) == ((20, 40), "RGB")
