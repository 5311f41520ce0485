"""The loop's round on detection: a hand-made detector's predictions reach each box strategy, and a box budget holds.

The fake detector returns fixed object arrays (what ``predict_proba`` / ``predict_views``
of a real detector give), so every array a strategy reads is known exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import activelab.loop.round as round_module
from activelab.exceptions import InputError
from activelab.loop.inputs import strategy_inputs
from activelab.loop.learner import ActiveLearner
from activelab.loop.round import Images, Pool, play_round
from activelab.strategies import required_inputs
from activelab.tasks import get_task

CLASSES = ["bag", "shoe"]
PATHS = ["a.png", "b.png", "c.png", "d.png"]


def _prediction(boxes: list[list[float]], probs: list[list[float]], scores: list[float]) -> dict[str, np.ndarray]:
    p = np.asarray(probs, dtype=np.float32).reshape(-1, len(CLASSES))
    return {
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "scores": np.asarray(scores, dtype=np.float32),
        "labels": p.argmax(axis=1).astype(np.int64),
        "probs": p,
        "features": np.arange(len(scores) * 3, dtype=np.float32).reshape(-1, 3),
    }


def _objects(items: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


#: image 0 (labeled): one sure bag; image 1: three boxes the model cannot tell apart (3 boxes >= 0.5: cost 3);
#: image 2: one box leaning bag; image 3: one sure-ish bag. Entropy ranks 1, 2, 3.
OUTPUTS = _objects(
    [
        _prediction([[0, 0, 10, 10]], [[0.9, 0.1]], [0.9]),
        _prediction([[0, 0, 8, 8], [10, 10, 20, 20], [30, 30, 40, 40]], [[0.5, 0.5]] * 3, [0.8, 0.8, 0.8]),
        _prediction([[5, 5, 15, 15]], [[0.6, 0.4]], [0.7]),
        _prediction([[2, 2, 12, 12]], [[0.8, 0.2]], [0.6]),
    ]
)
EMPTY = _prediction([], [], [])


def _row(path: str) -> int:
    """The fixed prediction of an image file: by its name, wherever it lies."""
    return PATHS.index(Path(path).name)


class FakeDetector:
    """A detector adapter stand-in: fixed predictions, records what the round asks of it."""

    name = "fake_detector"
    config: dict[str, Any] = {"name": "fake_detector", "options": {}}
    output = "boxes"

    def __init__(self, supports: frozenset[str] = frozenset({"probs", "embeddings", "views"})) -> None:
        self.supports = supports
        self.classes = list(CLASSES)
        self.view_calls: list[tuple[list[str], int]] = []
        self.fits: list[list[str]] = []

    def fit(self, paths: Sequence[str], targets: np.ndarray, **_: Any) -> None:
        self.fits.append(list(paths))
        assert targets.dtype == object and all(set(t) == {"boxes", "labels"} for t in targets)

    def predict_proba(self, paths: Sequence[str], **_: Any) -> np.ndarray:
        return OUTPUTS[[_row(p) for p in paths]]

    def predict_views(
        self, paths: Sequence[str], views: Sequence[str], *, seed: int = 0, **_: Any
    ) -> dict[str, list[np.ndarray]]:
        """hflip: the same boxes except none on image 2; noise (3 levels): the same, none on image 3 at level 3."""
        self.view_calls.append((list(views), seed))
        rows = [_row(p) for p in paths]
        flipped = _objects([EMPTY if r == 2 else OUTPUTS[r] for r in rows])
        noisy = [OUTPUTS[rows], OUTPUTS[rows], _objects([EMPTY if r == 3 else OUTPUTS[r] for r in rows])]
        return {name: {"hflip": [flipped], "noise": noisy}[name] for name in views}

    def embed(self, paths: Sequence[str], **_: Any) -> np.ndarray:
        return np.array([[float(_row(p)), 1.0] for p in paths], dtype=np.float32)


def detector(**kw: Any) -> Any:
    """A :class:`FakeDetector` typed as any adapter (it has only what the round calls)."""
    return FakeDetector(**kw)


def _pool() -> Pool:
    task = get_task("detection")
    targets = _objects([None] * len(PATHS))
    targets[0] = task.targets([[{"class": "bag", "x": 0.0, "y": 0.0, "w": 10.0, "h": 10.0}]], CLASSES)[0]
    return Pool(Images(PATHS), targets, np.array([True, False, False, False]))


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The arrays and parameters the round hands to ``select``, recorded on their way."""
    recorded: dict[str, Any] = {}
    real = round_module.select

    def spy(name: str, k: int, **kwargs: Any) -> np.ndarray:
        recorded.clear()
        recorded.update(kwargs)
        return real(name, k, **kwargs)

    monkeypatch.setattr(round_module, "select", spy)
    return recorded


OWNER = [0, 1, 1, 1, 2, 3]
SCORES = [0.9, 0.8, 0.8, 0.8, 0.7, 0.6]


@pytest.mark.parametrize(
    ("strategy", "views"),
    [
        ("det_entropy", []),
        ("det_margin", []),
        ("ppal", []),
        ("cald", ["hflip"]),
        ("localization_stability", ["noise"]),
        ("coreset", []),
    ],
)
def test_each_detection_strategy_gets_the_box_arrays_it_reads(
    strategy: str, views: list[str], seen: dict[str, Any]
) -> None:
    model = detector()
    outcome = play_round(
        get_task("detection"),
        model,
        _pool(),
        strategy,
        2,
        classes=CLASSES,
        seed=7,
        fit=False,
    )
    arrays = {key for key in seen if key not in ("rng", "labeled")}
    assert arrays == set(required_inputs(strategy))
    assert [v for v, _ in model.view_calls] == ([views] if views else [])
    assert all(seed == 7 for _, seed in model.view_calls)  # noise draws follow the round's seed
    if "box_owner" in arrays:
        assert seen["box_owner"].tolist() == OWNER
    if "box_scores" in arrays:
        np.testing.assert_allclose(seen["box_scores"], SCORES, atol=1e-6)
    if "box_probs" in arrays:
        np.testing.assert_allclose(seen["box_probs"][1:4], [[0.5, 0.5]] * 3)
    if "box_flip_iou" in arrays:  # image 2's box has no match in the flipped view
        np.testing.assert_allclose(seen["box_flip_iou"], [1, 1, 1, 1, 0, 1], atol=1e-6)
        np.testing.assert_allclose(seen["box_flip_probs"][4], [0.5, 0.5])
    if "box_noise_iou" in arrays:  # image 3's box is lost at the third noise level only
        assert seen["box_noise_iou"].shape == (6, 3)
        np.testing.assert_allclose(seen["box_noise_iou"][:, 2], [1, 1, 1, 1, 1, 0], atol=1e-6)
        np.testing.assert_allclose(seen["box_noise_iou"][:, :2], 1.0, atol=1e-6)
    if "class_difficulty" in arrays:  # the labeled bag is found with IoU 1 at score 0.9; no shoe labeled yet
        np.testing.assert_allclose(seen["class_difficulty"], [0.1, 0.5], atol=1e-6)
    if "embeddings" in arrays:
        assert seen["embeddings"].shape == (4, 2)
    assert 0 not in outcome.positions.tolist() and len(outcome.positions) == 2


def test_uncertainty_ranks_the_ambiguous_crowded_image_first() -> None:
    outcome = play_round(
        get_task("detection"),
        detector(),
        _pool(),
        "det_entropy",
        3,
        classes=CLASSES,
        seed=0,
        fit=False,
    )
    assert outcome.positions.tolist() == [1, 2, 3]
    picked = outcome.picked_outputs(_pool())  # object arrays index by the picked positions
    assert picked.dtype == object and [len(p["scores"]) for p in picked] == [3, 1, 1]


@pytest.mark.parametrize(("k", "expected"), [(2, [2]), (4, [1, 2]), (5, [1, 2, 3])])
def test_a_budget_in_boxes_is_kept_and_a_crowded_image_costs_its_boxes(k: int, expected: list[int]) -> None:
    """Image 1 (3 predicted boxes) ranks first but costs 3: a budget of 2 boxes skips it for image 2."""
    outcome = play_round(
        get_task("detection"),
        detector(),
        _pool(),
        "det_entropy",
        k,
        classes=CLASSES,
        seed=0,
        fit=False,
        budget_unit="boxes",
    )
    assert outcome.positions.tolist() == expected
    costs = get_task("detection").costs(OUTPUTS)
    assert costs.tolist() == [1.0, 3.0, 1.0, 1.0]
    assert costs[outcome.positions].sum() <= k


def test_a_box_budget_reads_predictions_even_when_the_strategy_does_not() -> None:
    model = detector()
    outcome = play_round(
        get_task("detection"), model, _pool(), "random", 2, classes=CLASSES, seed=0, fit=False, budget_unit="boxes"
    )
    assert outcome.outputs is not None and len(outcome.outputs) == 4
    assert get_task("detection").costs(OUTPUTS)[outcome.positions].sum() <= 2


def test_the_round_trains_on_the_labeled_images_box_targets() -> None:
    model = detector()
    play_round(get_task("detection"), model, _pool(), "det_entropy", 1, classes=CLASSES, seed=0)
    assert model.fits == [["a.png"]]


def test_a_box_budget_needs_a_model_and_a_known_unit() -> None:
    task = get_task("detection")
    with pytest.raises(InputError, match="cold start has no model"):
        play_round(task, None, _pool(), "random", 2, classes=CLASSES, seed=0, budget_unit="boxes")
    with pytest.raises(InputError, match="budget_unit 'objects' is not one of images, boxes"):
        play_round(task, detector(), _pool(), "random", 2, classes=CLASSES, seed=0, budget_unit="objects")


def test_a_view_strategy_needs_a_detector_that_predicts_views() -> None:
    blind = detector(supports=frozenset({"probs", "embeddings"}))
    with pytest.raises(InputError, match=r"cannot provide \['views'\].*det_entropy"):
        play_round(get_task("detection"), blind, _pool(), "cald", 2, classes=CLASSES, seed=0, fit=False)


def test_strategy_inputs_reads_labeled_box_targets() -> None:
    """Outside a round, a None target is an unlabeled image: only image 0's bag feeds the class difficulty."""
    task = get_task("detection")
    arrays = strategy_inputs(detector(), "ppal", PATHS, labels=_pool().targets, task=task)
    assert set(arrays) == set(required_inputs("ppal"))
    np.testing.assert_allclose(arrays["class_difficulty"], [0.1, 0.5], atol=1e-6)
    assert arrays["box_owner"].tolist() == OWNER


def test_active_learner_samples_boxes_with_its_labeled_images_excluded(tmp_path: Path) -> None:
    for name in PATHS:
        Image.fromarray(np.zeros((16, 16, 3), dtype=np.uint8)).save(tmp_path / name)
    learner = ActiveLearner(task="detection")
    assert learner.model_name == get_task("detection").default_model
    box = json.dumps([{"class": "bag", "x": 0, "y": 0, "w": 10, "h": 10}])
    learner.load_dataset(pd.DataFrame({"filepath": [str(tmp_path / "a.png")], "label": [box]}))
    assert learner.classes == ["bag"]
    learner.model = detector()
    pool = pd.DataFrame({"filepath": [str(tmp_path / name) for name in PATHS[1:]]})
    picked = learner.sample(pool, 2, strategy="det_entropy")
    assert [Path(p).name for p in picked["filepath"]] == ["b.png", "c.png"]
