"""Detector adapters: the output contract of every registered detector, learning, warm start, views, save/load.

Scenes are hand-made 64 px images (filled squares = "square", hollow rings = "ring" on a
noisy background), so the tests run offline in seconds with OMP_NUM_THREADS=1.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
import torch
from PIL import Image

from activelab.exceptions import InputError, NotFittedError
from activelab.models import BUILTIN_DETECTORS, DEFAULT_DETECTION_MODEL, create_model, load_model
from activelab.models.detection import DetectorAdapter
from activelab.models.detection.augment import hflip, rescale

CLASSES = ["square", "ring"]
SIZE = 64


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    canvas = rng.normal(40, 12, (SIZE, SIZE))
    boxes, labels = [], []
    for _ in range(rng.integers(1, 3)):
        s = int(rng.integers(14, 28))
        x, y = (int(v) for v in rng.integers(0, SIZE - s, 2))
        if any(x < b[2] and b[0] < x + s and y < b[3] and b[1] < y + s for b in boxes):
            continue
        label = int(rng.integers(2))
        canvas[y : y + s, x : x + s] = 220
        if label == 1:
            canvas[y + 4 : y + s - 4, x + 4 : x + s - 4] = 40
        boxes.append([x, y, x + s, y + s])
        labels.append(label)
    rgb = np.repeat(canvas.clip(0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    return rgb, {"boxes": np.array(boxes, np.float32).reshape(-1, 4), "labels": np.array(labels, np.int64)}


def _objects(items: list[dict[str, np.ndarray]]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


@pytest.fixture(scope="module")
def scenes(tmp_path_factory) -> tuple[list[str], np.ndarray]:
    root = tmp_path_factory.mktemp("scenes")
    rng = np.random.default_rng(0)
    paths, targets = [], []
    for i in range(20):
        rgb, target = _scene(rng)
        Image.fromarray(rgb).save(root / f"{i}.png")
        paths.append(str(root / f"{i}.png"))
        targets.append(target)
    return paths, _objects(targets)


@pytest.fixture(scope="module")
def trained(scenes) -> DetectorAdapter:
    torch.set_num_threads(1)
    paths, targets = scenes
    model = create_model(DEFAULT_DETECTION_MODEL, classes=CLASSES, output="boxes", image_size=SIZE, min_steps=80)
    model.fit(paths, targets, seed=0)
    return model


def _map50(targets: np.ndarray, preds: np.ndarray) -> float:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    def xywh(b: np.ndarray) -> list[float]:
        return [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]

    anns = [{"image_id": i, "category_id": int(c), "bbox": xywh(b), "iscrowd": 0,
             "area": float((b[2] - b[0]) * (b[3] - b[1]))}
            for i, t in enumerate(targets) for b, c in zip(t["boxes"], t["labels"])]  # fmt: skip
    for k, a in enumerate(anns):
        a["id"] = k + 1
    dets = [{"image_id": i, "category_id": int(c), "bbox": xywh(b), "score": float(s)}
            for i, p in enumerate(preds) for b, s, c in zip(p["boxes"], p["scores"], p["labels"])]  # fmt: skip
    gt = COCO()
    gt.dataset = {"images": [{"id": i, "width": SIZE, "height": SIZE} for i in range(len(targets))],
                  "annotations": anns, "categories": [{"id": c} for c in range(len(CLASSES))]}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        ev = COCOeval(gt, gt.loadRes(dets), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return float(ev.stats[1])


def _check_prediction(p: dict[str, np.ndarray], n_classes: int, max_detections: int) -> int:
    m = len(p["scores"])
    assert p["boxes"].shape == (m, 4) and p["boxes"].dtype == np.float32
    assert p["scores"].dtype == np.float32 and p["labels"].dtype == np.int64
    assert p["probs"].shape == (m, n_classes) and p["probs"].dtype == np.float32
    assert p["features"].shape[0] == m and p["features"].ndim == 2 and p["features"].dtype == np.float32
    assert m <= max_detections and np.all(np.diff(p["scores"]) <= 0)
    assert np.all((p["scores"] >= 0) & (p["scores"] <= 1)) and np.all(p["labels"] < n_classes)
    np.testing.assert_allclose(p["probs"].sum(1), 1.0, atol=1e-5)
    assert np.all(p["boxes"][:, 2:] > p["boxes"][:, :2]) and np.all((p["boxes"] >= 0) & (p["boxes"] <= SIZE))
    return m


@pytest.mark.parametrize("name", BUILTIN_DETECTORS)
def test_every_detector_trains_a_step_and_predicts_the_contract(name: str, scenes) -> None:
    torch.set_num_threads(1)
    paths, targets = scenes
    empty = _objects([{"boxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}, targets[1]])
    model = create_model(name, classes=CLASSES, output="boxes", pretrained=False, image_size=SIZE, min_steps=1,
                         epochs=1, batch_size=2, score_threshold=0.0, max_detections=7)  # fmt: skip
    assert model.supports == {"probs", "embeddings", "views"} and model.config["output"] == "boxes"
    model.fit(paths[:2], empty, seed=0)
    preds = model.predict_proba(paths[2:4])
    assert preds.dtype == object and preds.shape == (2,)
    assert sum(_check_prediction(p, 2, 7) for p in preds) > 0
    emb = model.embed(paths[2:4])
    assert emb.shape[0] == 2 and emb.dtype == np.float32 and np.isfinite(emb).all()


def test_the_default_learns_the_scenes_above_a_floor(trained, scenes) -> None:
    paths, targets = scenes
    preds = trained.predict_proba(paths)
    for p in preds:
        _check_prediction(p, 2, 100)
    assert _map50(targets, preds) > 0.5


def test_fit_warm_starts_from_the_current_weights(scenes) -> None:
    torch.set_num_threads(1)
    paths, targets = scenes
    opts = {"classes": CLASSES, "image_size": SIZE, "min_steps": 3, "epochs": 1}
    model = create_model(DEFAULT_DETECTION_MODEL, **opts)
    model.fit(paths[:4], targets[:4], seed=0)
    after_first = {k: v.clone() for k, v in model.model.named_parameters()}
    model.options["lr"] = 0.0
    model.fit(paths[4:8], targets[4:8], seed=1)
    for k, v in model.model.named_parameters():
        torch.testing.assert_close(v, after_first[k])
    fresh = dict(create_model(DEFAULT_DETECTION_MODEL, **opts).model.named_parameters())
    assert not torch.equal(fresh["head.classification_head.cls_logits.weight"],
                           after_first["head.classification_head.cls_logits.weight"])  # fmt: skip


def test_hflip_view_maps_boxes_back_to_the_original_image(trained, scenes, tmp_path) -> None:
    paths, _ = scenes
    mirror = tmp_path / "mirror.png"
    Image.fromarray(np.asarray(Image.open(paths[0]))[:, ::-1]).save(mirror)
    view = trained.predict_views([paths[0]], ["hflip"])["hflip"]
    assert len(view) == 1
    flipped, direct = view[0][0], trained.predict_proba([mirror])[0]
    assert len(direct["boxes"]) > 0
    expected = np.stack([SIZE - direct["boxes"][:, 2], direct["boxes"][:, 1], SIZE - direct["boxes"][:, 0],
                         direct["boxes"][:, 3]], axis=1)  # fmt: skip
    np.testing.assert_allclose(flipped["boxes"], expected, atol=1e-4)
    np.testing.assert_array_equal(flipped["labels"], direct["labels"])
    np.testing.assert_allclose(flipped["probs"], direct["probs"], atol=1e-6)


def test_noise_views_one_per_level_seeded(trained, scenes) -> None:
    paths, _ = scenes
    first = trained.predict_views(paths[:2], ["noise"], seed=3)["noise"]
    again = trained.predict_views(paths[:2], ["noise"], seed=3)["noise"]
    other = trained.predict_views(paths[:2], ["noise"], seed=4)["noise"]
    assert len(first) == 3 and all(level.shape == (2,) for level in first)
    np.testing.assert_array_equal(first[2][0]["boxes"], again[2][0]["boxes"])
    assert not np.array_equal(first[2][0]["scores"], other[2][0]["scores"])
    with pytest.raises(InputError, match="unknown view"):
        trained.predict_views(paths[:1], ["rotate"])


def test_save_and_load_give_identical_predictions(trained, scenes, tmp_path) -> None:
    paths, _ = scenes
    trained.save(tmp_path / "det.pt")
    loaded = load_model(tmp_path / "det.pt")
    assert isinstance(loaded, DetectorAdapter) and loaded.classes == CLASSES and loaded.config == trained.config
    for a, b in zip(trained.predict_proba(paths[:4]), loaded.predict_proba(paths[:4])):
        for key in ("boxes", "scores", "labels", "probs", "features"):
            np.testing.assert_array_equal(a[key], b[key])


def test_output_and_input_mismatches_name_the_fix(scenes) -> None:
    paths, targets = scenes
    with pytest.raises(InputError, match="cannot output boxes; pick a detector: fcos_small"):
        create_model("small_cnn", num_classes=2, output="boxes")
    with pytest.raises(InputError, match="is a detector: its output is 'boxes'"):
        create_model(DEFAULT_DETECTION_MODEL, classes=CLASSES, output="softmax")
    with pytest.raises(InputError, match="pass classes="):
        create_model(DEFAULT_DETECTION_MODEL, output="boxes")
    with pytest.raises(InputError, match="finetune"):
        create_model(DEFAULT_DETECTION_MODEL, classes=CLASSES, mode="frozen")
    model = create_model(DEFAULT_DETECTION_MODEL, classes=CLASSES, build=False)
    with pytest.raises(NotFittedError):
        model.predict_proba(paths[:1])
    bad = _objects([{"boxes": np.array([[5, 5, 3, 9]], np.float32), "labels": np.array([0])}])
    with pytest.raises(InputError, match=r"targets\[0\] has a box"):
        model.fit(paths[:1], bad)
    with pytest.raises(InputError, match=r"label outside 0..1"):
        model.fit(paths[:1], _objects([{"boxes": targets[0]["boxes"][:1], "labels": np.array([2])}]))


def _white_box(image: torch.Tensor) -> list[float]:
    ys, xs = np.nonzero(image[0].numpy() > 0.5)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@pytest.mark.parametrize("scale,seed", [(0.5, 0), (0.5, 1), (1.0, 0), (1.6, 0), (1.6, 2)])
def test_augmentation_moves_boxes_with_the_pixels(scale: float, seed: int) -> None:
    image = torch.zeros(3, 40, 60)
    image[:, 10:30, 20:36] = 1.0
    box, label = torch.tensor([[20.0, 10.0, 36.0, 30.0]]), torch.tensor([1])
    flipped, fbox = hflip(image, box)
    assert fbox.tolist() == [[24.0, 10.0, 40.0, 30.0]] and _white_box(flipped) == [24, 10, 40, 30]
    out, boxes, labels = rescale(image, box, label, scale, np.random.default_rng(seed))
    assert out.shape == image.shape
    if len(boxes):
        np.testing.assert_allclose(boxes[0].numpy(), _white_box(out), atol=1.0)
        assert labels.tolist() == [1]
    else:  # dropped: under half of the zoomed box is left in the window
        assert (out[0] > 0.5).sum() < 0.5 * (20 * scale) * (16 * scale)
