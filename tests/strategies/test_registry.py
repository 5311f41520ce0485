"""Registry: names, requires, duplicates, custom strategies through select."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from activelab.exceptions import InputError, StrategyContractError
from activelab.strategies import (
    VOCABULARY,
    get_strategy,
    list_strategies,
    margin_scores,
    register,
    required_inputs,
    select,
    top_k,
    unregister,
)

EXPECTED = {
    "least_confidence": {"probs"},
    "margin": {"probs"},
    "ratio": {"probs"},
    "entropy": {"probs"},
    "egl": {"probs", "embeddings"},
    "bald": {"mc_probs"},
    "variation_ratios": {"mc_probs"},
    "mean_std": {"mc_probs"},
    "power_bald": {"mc_probs"},
    "random": set(),
    "coreset": {"embeddings"},
    "cluster": {"embeddings"},
    "typiclust": {"embeddings"},
    "probcover": {"embeddings"},
    "outlier": {"embeddings"},
    "proximity": {"embeddings"},
    "badge": {"grad_embeddings"},
    "cluster_margin": {"probs", "embeddings"},
    "uncertainty_diversity": {"probs", "embeddings"},
    "random_fraction": {"probs"},
    "class_balanced": {"probs", "labels"},
    "multilabel_uncertainty": {"marginals"},
    "cvirs": {"marginals", "label_matrix"},
    "det_least_confidence": {"box_probs", "box_owner"},
    "det_margin": {"box_probs", "box_owner"},
    "det_entropy": {"box_probs", "box_owner"},
    "ppal": {"box_probs", "box_scores", "box_owner", "box_features", "class_difficulty"},
    "cald": {"box_probs", "box_scores", "box_owner", "box_flip_iou", "box_flip_probs"},
    "localization_stability": {"box_scores", "box_owner", "box_noise_iou"},
    "seg_entropy": {"pixel_probs"},
    "seg_margin": {"pixel_probs"},
    "seg_least_confidence": {"pixel_probs"},
    "seg_bald": {"mc_probs"},
    "region_entropy": {"pixel_probs", "region_map", "region_owner", "region_labeled"},
    "region_margin": {"pixel_probs", "region_map", "region_owner", "region_labeled"},
    "region_least_confidence": {"pixel_probs", "region_map", "region_owner", "region_labeled"},
    "region_random": {"region_owner", "region_labeled"},
}
REGION_STRATEGIES = {"region_entropy", "region_margin", "region_least_confidence", "region_random"}


def test_every_expected_strategy_is_registered_with_its_inputs() -> None:
    assert set(EXPECTED) <= set(list_strategies())
    for name, req in EXPECTED.items():
        spec = get_strategy(name)
        assert spec.requires == req, name
        assert spec.requires <= VOCABULARY
        assert spec.paper, f"{name} names no paper"
        assert spec.doc, f"{name} has no docstring"
        assert spec.unit == ("regions" if name in REGION_STRATEGIES else "images"), name
    assert get_strategy("badge").inputs == {"grad_factors", "embeddings"}


def test_list_strategies_pattern() -> None:
    assert list_strategies("*bald*") == ["bald", "batchbald", "power_bald", "seg_bald"]


def test_unknown_name_lists_known_ones() -> None:
    with pytest.raises(InputError, match="unknown strategy 'margn'.*margin"):
        get_strategy("margn")
    with pytest.raises(InputError, match="unknown strategy"):
        select("margn", 1, rng=np.random.default_rng(0), probs=np.full((2, 2), 0.5))


def test_duplicate_name_raises() -> None:
    with pytest.raises(InputError, match="already registered"):
        register("margin", requires={"probs"})(lambda probs, k, *, rng, labeled=None: np.zeros(0, np.int64))


def test_register_validates_requires_and_name() -> None:
    with pytest.raises(InputError, match="unknown input"):
        register("x_bad_inputs", requires={"logits"})
    with pytest.raises(InputError, match="lower_snake_case"):
        register("Bad Name", requires=set())


@pytest.fixture
def custom() -> Iterator[str]:
    @register("test_smallest_max", requires={"probs"}, paper="a user's own idea")
    def smallest_max(
        probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None, power: float = 1.0
    ) -> np.ndarray:
        """Least confidence raised to a power (a user-defined strategy)."""
        return top_k((1.0 - np.asarray(probs).max(axis=1)) ** power, k, rng=rng, labeled=labeled)

    yield "test_smallest_max"
    unregister("test_smallest_max")


def test_custom_strategy_works_through_select(custom: str) -> None:
    p = np.array([[0.9, 0.1], [0.6, 0.4], [0.5, 0.5]])
    assert select(custom, 2, rng=np.random.default_rng(0), probs=p, power=2.0).tolist() == [2, 1]
    assert custom in list_strategies()
    assert required_inputs(custom) == {"probs"}
    # and inside the wrappers, like a built-in
    out = select("random_fraction", 2, rng=np.random.default_rng(0), probs=p, strategy=custom, fraction=0.0)
    assert out.tolist() == [2, 1]
    labels = np.array([-1, -1, -1])
    out = select("class_balanced", 3, rng=np.random.default_rng(0), probs=p, labels=labels, strategy=custom)
    assert sorted(out.tolist()) == [0, 1, 2]


def test_select_ignores_inputs_a_strategy_does_not_use() -> None:
    p = np.array([[0.9, 0.1], [0.6, 0.4]])
    out = select(
        "margin", 1, rng=np.random.default_rng(0), probs=p, embeddings=np.ones((2, 3)), mc_probs=np.full((2, 2, 2), 0.5)
    )
    assert out.tolist() == [1]


def test_select_reports_missing_inputs() -> None:
    with pytest.raises(InputError, match="missing: embeddings"):
        select("badge", 1, rng=np.random.default_rng(0), grad_factors=np.zeros((2, 2)))


def test_select_requires_a_generator() -> None:
    with pytest.raises(InputError, match="numpy.random.Generator"):
        select("margin", 1, rng=0, probs=np.full((2, 2), 0.5))  # type: ignore[arg-type]


def test_contract_violations_by_custom_strategies_are_caught() -> None:
    @register("test_broken", requires={"probs"})
    def broken(probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> np.ndarray:
        """Returns a labeled item twice."""
        return np.array([0, 0], dtype=np.int64)

    try:
        with pytest.raises(StrategyContractError, match="duplicate"):
            select("test_broken", 2, rng=np.random.default_rng(0), probs=np.full((3, 2), 0.5))
    finally:
        unregister("test_broken")


def test_scoring_is_separate_from_selection() -> None:
    p = np.array([[0.9, 0.1], [0.6, 0.4]])
    assert top_k(margin_scores(p), 1, rng=np.random.default_rng(0)).tolist() == [1]


def test_strategies_import_no_higher_layer() -> None:
    import subprocess
    import sys

    code = (
        "import sys, activelab.strategies; bad=[m for m in sys.modules if m.split('.')[0] in "
        "('torchvision','timm','sqlalchemy','fastapi') or m.startswith(('activelab.models','activelab.store',"
        "'activelab.data','activelab.loop','activelab.server','activelab.cli'))]; print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
