"""Segmenter adapters: learning a known answer, ignored pixels, output shapes, MC dropout, save/load, the registry.

Scenes are hand-made 32 px images: a bright square (class 1, "square") or a bright ring (class 2,
"ring") on a dark noisy background (class 0), so the tests run offline in seconds with
OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from activelab.exceptions import InputError, NotFittedError, UnsupportedError
from activelab.models import BUILTIN_SEGMENTERS, DEFAULT_SEGMENTATION_MODEL, create_model, list_models, load_model
from activelab.models.segmentation import IGNORE, SEGMENTERS, SegmenterAdapter

CLASSES = ["background", "square", "ring"]
SIZE = 32


def _scene(rng: np.random.Generator, size: int = SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(size, size, 3) uint8 image and its (size, size) uint8 mask: one filled square or one ring."""
    canvas = rng.normal(40, 10, (size, size))
    mask = np.zeros((size, size), np.uint8)
    s = int(rng.integers(size // 3, size // 2))
    x, y = (int(v) for v in rng.integers(0, size - s, 2))
    label = int(rng.integers(1, 3))
    canvas[y : y + s, x : x + s] = 220
    mask[y : y + s, x : x + s] = label
    if label == 2:
        canvas[y + 3 : y + s - 3, x + 3 : x + s - 3] = 40
        mask[y + 3 : y + s - 3, x + 3 : x + s - 3] = 0
    return np.repeat(canvas.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2), mask


def _objects(items: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _write(root, n: int, seed: int, prefix: str, size: int = SIZE) -> tuple[list[str], np.ndarray]:
    rng = np.random.default_rng(seed)
    paths, masks = [], []
    for i in range(n):
        rgb, mask = _scene(rng, size)
        path = root / f"{prefix}{i}.png"
        Image.fromarray(rgb).save(path)
        paths.append(str(path))
        masks.append(mask)
    return paths, _objects(masks)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, tuple[list[str], np.ndarray]]:
    root = tmp_path_factory.mktemp("seg")
    return {"train": _write(root, 16, 0, "train"), "test": _write(root, 8, 1, "test")}


def _model(**options) -> SegmenterAdapter:
    torch.set_num_threads(1)
    options = {"min_steps": 60, **options}
    return create_model(DEFAULT_SEGMENTATION_MODEL, classes=CLASSES, output="masks", device="cpu", **options)


def _miou(masks: np.ndarray, outputs: np.ndarray) -> float:
    """Mean over the classes of |pred & truth| / |pred | truth| (every class is in the test masks)."""
    pred = np.stack([o["probs"].argmax(0) for o in outputs])
    truth = np.stack(list(masks))
    return float(np.mean([((pred == c) & (truth == c)).sum() / ((pred == c) | (truth == c)).sum() for c in range(3)]))


@pytest.fixture(scope="module")
def trained(data) -> SegmenterAdapter:
    model = _model()
    model.fit(*data["train"], seed=0)
    return model


def test_the_default_learns_squares_and_rings(data, trained) -> None:
    outputs = trained.predict_proba(data["test"][0])
    assert _miou(data["test"][1], outputs) >= 0.7


def test_ignored_pixels_do_not_train(data) -> None:
    """Right half IGNORE: the loss sees only the left half (255 as a class would crash the loss; as
    background it would teach "background" and leave mIoU near 0.3, the all-background score). An
    all-IGNORE image adds nothing: fitting with eight of them equals fitting without them."""
    paths, masks = data["train"]
    half = _objects([np.where(np.arange(SIZE) < SIZE // 2, m, IGNORE).astype(np.uint8) for m in masks])
    model = _model(min_steps=100, hflip=False)
    model.fit(paths, half, seed=0)
    assert _miou(data["test"][1], model.predict_proba(data["test"][0])) >= 0.4

    blank = _objects([np.full((SIZE, SIZE), IGNORE, np.uint8)] * 8)
    kept = _model(min_steps=3, epochs=1, batch_size=16, hflip=False)
    kept.fit(paths[:8], masks[:8], seed=0)
    padded = _model(min_steps=3, epochs=1, batch_size=16, hflip=False)
    padded.fit(paths[:8] + paths[8:], _objects(list(masks[:8]) + list(blank)), seed=0)
    for a, b in zip(kept.net.state_dict().values(), padded.net.state_dict().values()):
        if a.dtype.is_floating_point:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_outputs_at_each_images_own_size(tmp_path, trained) -> None:
    rng = np.random.default_rng(3)
    paths = []
    for i, (h, w) in enumerate([(40, 24), (32, 32), (17, 50)]):
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    out = trained.predict_proba(paths)
    assert out.dtype == object and out.shape == (3,)
    for o, (h, w) in zip(out, [(40, 24), (32, 32), (17, 50)]):
        assert o["probs"].shape == (3, h, w) and o["probs"].dtype == np.float16
        np.testing.assert_allclose(o["probs"].astype(np.float32).sum(0), 1.0, atol=3e-3)
    mc = trained.mc_predict(paths, n_samples=4, seed=0)
    assert [m.shape for m in mc] == [(4, 3, 10, 6), (4, 3, 8, 8), (4, 3, 5, 13)]
    assert mc[0].dtype == np.float16
    np.testing.assert_allclose(mc[2].astype(np.float32).sum(1), 1.0, atol=3e-3)
    assert not np.array_equal(mc[0][0], mc[0][1])  # dropout is on: samples differ
    np.testing.assert_array_equal(mc[0], trained.mc_predict(paths, n_samples=4, seed=0)[0])  # seeded
    e = trained.embed(paths)
    assert e.shape == (3, 128) and e.dtype == np.float32 and np.isfinite(e).all()
    assert trained.predict_proba([]).shape == (0,)


def test_image_size_resizes_inputs_and_returns_the_own_size(data) -> None:
    model = create_model(DEFAULT_SEGMENTATION_MODEL, classes=CLASSES, output="masks", image_size=64, min_steps=2,
                         epochs=1)  # fmt: skip
    model.fit(data["train"][0][:4], data["train"][1][:4], seed=0)
    assert model.predict_proba(data["test"][0][:1])[0]["probs"].shape == (3, SIZE, SIZE)


def test_save_load_round_trip_and_warm_start(tmp_path, data, trained) -> None:
    path = tmp_path / "seg.pt"
    trained.save(path)
    loaded = load_model(path)
    assert isinstance(loaded, SegmenterAdapter) and loaded.classes == CLASSES and loaded.options == trained.options
    a, b = trained.predict_proba(data["test"][0]), loaded.predict_proba(data["test"][0])
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x["probs"], y["probs"])
    before = {k: v.clone() for k, v in loaded.net.state_dict().items()}
    loaded.options.update(min_steps=2, epochs=1, lr=1e-5)
    loaded.fit(data["train"][0][:4], data["train"][1][:4], seed=0)
    assert any(not torch.equal(v, before[k]) for k, v in loaded.net.state_dict().items())
    cold = _model(min_steps=2, epochs=1, lr=1e-5)
    cold.fit(data["train"][0][:4], data["train"][1][:4], seed=0)
    warm_miou, cold_miou = (_miou(data["test"][1], m.predict_proba(data["test"][0])) for m in (loaded, cold))
    assert warm_miou >= 0.5 > cold_miou  # two small steps from the saved weights, not from scratch


def test_bad_targets_are_rejected_with_the_image_named(data) -> None:
    paths = data["train"][0]
    model = _model()
    with pytest.raises(InputError, match="outside 0..2"):
        model.fit(paths[:1], _objects([np.full((SIZE, SIZE), 3, np.uint8)]))
    with pytest.raises(InputError, match=r"16x8 \(W x H\) but image .*train0.png is 32x32"):
        model.fit(paths[:1], _objects([np.zeros((8, 16), np.uint8)]))
    with pytest.raises(InputError, match="labels no pixel"):
        model.fit(paths[:1], _objects([np.full((SIZE, SIZE), IGNORE, np.uint8)]))
    with pytest.raises(NotFittedError):
        model.predict_proba(paths[:1])


def test_registry_rows_and_outputs() -> None:
    assert BUILTIN_SEGMENTERS[0] == DEFAULT_SEGMENTATION_MODEL == "unet_small"
    assert set(BUILTIN_SEGMENTERS) == set(SEGMENTERS) and set(SEGMENTERS) <= set(list_models())
    with pytest.raises(InputError, match="is a classifier and cannot output masks; pick a segmenter: unet_small"):
        create_model("small_cnn", classes=CLASSES, output="masks")
    with pytest.raises(InputError, match="is a detector and cannot output masks"):
        create_model("fcos_small", classes=CLASSES, output="masks")
    with pytest.raises(InputError, match="is a segmenter: its output is 'masks', not 'softmax'"):
        create_model("unet_small", classes=CLASSES, output="softmax")
    with pytest.raises(InputError, match="is a segmenter and cannot output boxes"):
        create_model("unet_small", classes=CLASSES, output="boxes")
    with pytest.raises(InputError, match="unknown option.*encoder; known: .*depth.*width"):
        create_model("unet_small", classes=CLASSES, encoder="resnet18")
    with pytest.raises(InputError, match="has no pretrained weights"):
        create_model("unet_small", classes=CLASSES, pretrained=True)
    assert create_model("unet_small", classes=CLASSES, width=8).options["width"] == 8


@pytest.mark.parametrize("name", [n for n in SEGMENTERS if n != DEFAULT_SEGMENTATION_MODEL])
def test_each_architecture_builds_offline_and_runs(name: str, tmp_path) -> None:
    """Built with pretrained=False (no download); the ResNet-50 ones only embed (a forward), the others also
    train one step on a single 48x64 image (DeepLabV3's pooling branch must cope with a batch of one)."""
    torch.set_num_threads(1)
    path = str(tmp_path / "x.png")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
    model = create_model(name, classes=CLASSES, output="masks", pretrained=False, min_steps=1, epochs=1)
    assert model.embed([path]).shape[0] == 1
    dropout = name != "lraspp_mobilenet_v3"
    assert ("mc_probs" in model.supports) == dropout
    if "resnet50" in name:
        return
    model.fit([path], _objects([np.random.default_rng(1).integers(0, 3, (48, 64)).astype(np.uint8)]), seed=0)
    assert model.predict_proba([path])[0]["probs"].shape == (3, 48, 64)
    if not dropout:
        with pytest.raises(UnsupportedError):
            model.mc_predict([path])
