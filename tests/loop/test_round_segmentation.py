"""The loop's round on segmentation: region picks become images and asked pixels, and a pixel budget holds.

Four 16x16 images cut into 8x8 patches (4 regions each, ids row by row) and a fake segmenter
with fixed per-patch probabilities, so every region's score is known. Flat region order is image
by image, then by id: image ``i``'s patch ``j`` is region ``4 * i + j``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.loop.round import Images, Pool, asked_regions, play_round
from activelab.strategies import list_strategies
from activelab.tasks.masks import IGNORE
from activelab.tasks.segmentation import Segmentation

CLASSES = ["background", "bag"]
NAMES = ["a.png", "b.png", "c.png", "d.png"]
#: P(bag) of each image's four patches: entropy is highest at 0.5
P_BAG = {
    "a.png": [0.5, 0.5, 0.5, 0.5],  # fully labeled: never asked again
    "b.png": [0.5, 0.9, 0.9, 0.45],  # patch 0 labeled; patch 3 the second most uncertain region
    "c.png": [0.9, 0.5, 0.9, 0.9],  # patch 1 the most uncertain unlabeled region
    "d.png": [0.95, 0.95, 0.95, 0.95],
}

needs_region_strategies = pytest.mark.skipif(
    "region_entropy" not in list_strategies(), reason="the region strategies are not registered yet"
)


def _patch(j: int) -> np.ndarray:
    """``(16, 16)`` bool: patch ``j`` (row by row) of a 16x16 image."""
    out = np.zeros((16, 16), dtype=bool)
    out[8 * (j // 2) : 8 * (j // 2) + 8, 8 * (j % 2) : 8 * (j % 2) + 8] = True
    return out


def _probs(name: str) -> np.ndarray:
    bag = np.zeros((16, 16), dtype=np.float32)
    for j, p in enumerate(P_BAG[name]):
        bag[_patch(j)] = p
    return np.stack([1 - bag, bag]).astype(np.float16)


def _objects(items: Sequence[Any]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = list(items)
    return out


class FakeSegmenter:
    """A segmenter adapter stand-in: fixed softmax maps by image name; records its fits."""

    name = "fake_segmenter"
    config: dict[str, Any] = {"name": "fake_segmenter", "options": {}}
    output = "masks"
    supports = frozenset({"probs", "embeddings"})
    classes = list(CLASSES)

    def __init__(self) -> None:
        self.fits: list[list[str]] = []

    def fit(self, paths: Sequence[str], targets: np.ndarray, **_: Any) -> None:
        self.fits.append([Path(p).name for p in paths])

    def predict_proba(self, paths: Sequence[str], **_: Any) -> np.ndarray:
        return _objects([{"probs": _probs(Path(p).name)} for p in paths])

    def embed(self, paths: Sequence[str], **_: Any) -> np.ndarray:
        return np.array([[float(NAMES.index(Path(p).name)), 1.0] for p in paths], dtype=np.float32)


def segmenter() -> Any:
    return FakeSegmenter()


@pytest.fixture
def pool(tmp_path: Path) -> Pool:
    """a: fully labeled (trained, excluded); b: patch 0 labeled (trained, still open to regions); c, d: unlabeled."""
    for i, name in enumerate(NAMES):
        Image.fromarray(np.full((16, 16, 3), 40 * i, dtype=np.uint8)).save(tmp_path / name)
    b = np.full((16, 16), IGNORE, dtype=np.uint8)
    b[_patch(0)] = 1
    targets = _objects([np.zeros((16, 16), np.uint8), b, None, None])
    return Pool(
        Images([str(tmp_path / n) for n in NAMES]),
        targets,
        np.array([True, True, False, False]),
        np.array([True, False, False, False]),
    )


def task() -> Segmentation:
    return Segmentation(region_method="patch", region_size=8)


def test_asked_regions_groups_picks_by_image_in_order_of_their_best_region() -> None:
    owner = np.array([0, 0, 1, 1, 1])
    maps = _objects([np.array([[0, 1]]), np.array([[0, 1, 2]])])
    positions, asked = asked_regions(np.array([4, 0, 2]), owner, maps)
    assert positions.tolist() == [1, 0]
    assert asked[1].tolist() == [[True, False, True]] and asked[0].tolist() == [[True, False]]


@needs_region_strategies
def test_region_entropy_asks_for_the_uncertain_unlabeled_patches(pool: Pool) -> None:
    outcome = play_round(task(), segmenter(), pool, "region_entropy", 2, classes=CLASSES, seed=0, fit=False)
    # a's patches (0.5) are labeled, b's patch 0 (0.5) too: c's patch 1, then b's patch 3 (0.45)
    assert outcome.positions.tolist() == [2, 1]
    assert outcome.asked is not None and set(outcome.asked) == {1, 2}
    np.testing.assert_array_equal(outcome.asked[2], _patch(1))
    np.testing.assert_array_equal(outcome.asked[1], _patch(3))


@needs_region_strategies
def test_an_image_strategy_asks_whole_images_and_skips_partly_labeled_ones(pool: Pool) -> None:
    outcome = play_round(task(), segmenter(), pool, "seg_entropy", 4, classes=CLASSES, seed=0, fit=False)
    assert outcome.positions.tolist() == [2, 3] and outcome.asked is None  # b is trained on: not asked again


@needs_region_strategies
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_region_random_runs_on_a_cold_start_and_never_asks_labeled_regions(pool: Pool, seed: int) -> None:
    outcome = play_round(task(), None, pool, "region_random", 11, classes=CLASSES, seed=seed)
    assert outcome.model is None and outcome.outputs is None
    # 16 regions: a's 4 (excluded) and b's patch 0 (labeled) are never asked; the other 11 are, each once
    assert sorted(outcome.positions.tolist()) == [1, 2, 3]
    assert outcome.asked is not None
    np.testing.assert_array_equal(outcome.asked[1], ~_patch(0))
    assert outcome.asked[2].all() and outcome.asked[3].all()


@needs_region_strategies
@pytest.mark.parametrize(("budget", "regions"), [(64, 1), (130, 2), (200, 3)])
def test_a_pixel_budget_counts_each_region_s_pixels(pool: Pool, budget: int, regions: int) -> None:
    outcome = play_round(
        task(), segmenter(), pool, "region_entropy", budget, classes=CLASSES, seed=0, fit=False, budget_unit="pixels"
    )
    assert outcome.asked is not None
    assert sum(int(m.sum()) for m in outcome.asked.values()) == 64 * regions  # 8x8 patches


@needs_region_strategies
def test_a_pixel_budget_counts_a_whole_image_for_an_image_strategy(pool: Pool) -> None:
    outcome = play_round(
        task(), segmenter(), pool, "seg_entropy", 300, classes=CLASSES, seed=0, fit=False, budget_unit="pixels"
    )
    assert outcome.positions.tolist() == [2]  # 256 px each: one image fits in 300
    # a cold start counts pixels from the files' headers
    cold = play_round(task(), None, pool, "random", 600, classes=CLASSES, seed=0, budget_unit="pixels")
    assert len(cold.positions) == 2 and set(cold.positions.tolist()) <= {2, 3}


@needs_region_strategies
def test_a_region_strategy_refuses_a_box_budget_and_trains_on_partly_labeled_images(pool: Pool) -> None:
    with pytest.raises(InputError, match="region strategy asks for regions"):
        play_round(task(), segmenter(), pool, "region_entropy", 2, classes=CLASSES, seed=0, budget_unit="boxes")
    model = FakeSegmenter()
    play_round(task(), model, pool, "region_entropy", 1, classes=CLASSES, seed=0)
    assert model.fits == [["a.png", "b.png"]]
