"""Detection strategies on hand-built box arrays with known answers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.strategies import (
    aggregate_boxes,
    cald_scores,
    difficulty_weights,
    localization_stability_scores,
    ppal_uncertainty,
    required_inputs,
    select,
    select_budget,
)
from activelab.strategies.detection import js_divergence, k_medoids, ppal_distances

# Three images: 0 owns no box, 1 owns one, 2 owns two.
OWNER = np.array([1, 2, 2])
PROBS = np.array([[0.7, 0.3, 0.0], [0.9, 0.1, 0.0], [0.6, 0.2, 0.2]])
NONE = np.zeros(3, dtype=bool)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def h(*p: float) -> float:
    """Entropy in nats, by hand."""
    return float(-sum(x * np.log(x) for x in p if x > 0))


@pytest.mark.parametrize(
    ("agg", "expected"),
    [("mean", [0.0, 0.3, (0.1 + 0.4) / 2]), ("max", [0.0, 0.3, 0.4]), ("sum", [0.0, 0.3, 0.1 + 0.4])],
)
def test_least_confidence_aggregations(agg: str, expected: list[float]) -> None:
    scores = aggregate_boxes(1.0 - PROBS.max(axis=1), OWNER, 3, agg)
    assert scores == pytest.approx(expected)
    order = select("det_least_confidence", 3, rng=rng(), labeled=NONE, box_probs=PROBS, box_owner=OWNER, agg=agg)
    assert order.tolist() == ([1, 2, 0] if agg == "mean" else [2, 1, 0])


def test_margin_and_entropy_box_scores_aggregate_by_mean() -> None:
    margins = aggregate_boxes([1 - (0.7 - 0.3), 1 - (0.9 - 0.1), 1 - (0.6 - 0.2)], OWNER, 3)
    assert margins == pytest.approx([0.0, 0.6, (0.2 + 0.6) / 2])
    assert select("det_margin", 3, rng=rng(), labeled=NONE, box_probs=PROBS, box_owner=OWNER).tolist() == [1, 2, 0]
    ent = aggregate_boxes([h(0.7, 0.3), h(0.9, 0.1), h(0.6, 0.2, 0.2)], OWNER, 3, "max")
    assert ent == pytest.approx([0.0, 0.6108643, 0.9502705])
    picks = select("det_entropy", 2, rng=rng(), labeled=NONE, box_probs=PROBS, box_owner=OWNER, agg="max")
    assert picks.tolist() == [2, 1]


def test_image_without_boxes_scores_zero_and_a_boxless_pool_still_selects() -> None:
    labeled = np.array([False, False, True, False])
    out = select("det_entropy", 5, rng=rng(), labeled=labeled, box_probs=np.zeros((0, 2)), box_owner=np.zeros(0, int))
    assert sorted(out.tolist()) == [0, 1, 3]
    assert aggregate_boxes(np.zeros(0), np.zeros(0, int), 2, "max").tolist() == [0.0, 0.0]


def test_score_helpers_validate_their_inputs() -> None:
    with pytest.raises(InputError, match="pass one value per box"):
        aggregate_boxes([0.1, 0.2], OWNER, 3)
    with pytest.raises(InputError, match="box_owner has image position 2, outside the pool of 2"):
        aggregate_boxes([0.1, 0.2, 0.3], OWNER, 2)
    with pytest.raises(InputError, match="box_noise_iou must hold IoUs in"):
        localization_stability_scores([0.5], [0], [[1.5]], 1)


def test_one_class_detector_has_no_margin() -> None:
    out = select("det_margin", 1, rng=rng(), labeled=np.zeros(2, bool), box_probs=np.ones((2, 1)), box_owner=[0, 1])
    assert out.shape == (1,)


def test_unknown_aggregation_lists_the_choices() -> None:
    with pytest.raises(InputError, match="agg must be one of 'mean', 'max', 'sum'"):
        select("det_margin", 1, rng=rng(), labeled=NONE, box_probs=PROBS, box_owner=OWNER, agg="median")


def test_detection_strategies_need_labeled_and_owners_inside_the_pool() -> None:
    with pytest.raises(InputError, match="needs labeled="):
        select("det_entropy", 1, rng=rng(), box_probs=PROBS, box_owner=OWNER)
    with pytest.raises(InputError, match="box_owner has image position 2, outside the pool of 2 images"):
        select("det_entropy", 1, rng=rng(), labeled=np.zeros(2, bool), box_probs=PROBS, box_owner=OWNER)
    with pytest.raises(InputError, match="box_scores must hold scores in"):
        select(
            "localization_stability",
            1,
            rng=rng(),
            labeled=NONE,
            box_scores=[0.5, 1.5, 0.5],
            box_owner=OWNER,
            box_noise_iou=np.ones((3, 2)),
        )


def test_select_rejects_box_arrays_that_disagree_on_classes() -> None:
    with pytest.raises(InputError, match=r"disagree on the number of classes \(box_probs: 3, box_flip_probs: 2\)"):
        select(
            "cald",
            1,
            rng=rng(),
            labeled=NONE,
            box_probs=PROBS,
            box_scores=np.ones(3),
            box_owner=OWNER,
            box_flip_iou=np.ones(3),
            box_flip_probs=np.full((3, 2), 0.5),
        )


def test_vocabulary_names_are_the_concrete_inputs() -> None:
    assert required_inputs("ppal") == {"box_probs", "box_scores", "box_owner", "box_features", "class_difficulty"}
    assert required_inputs("cald") == {"box_probs", "box_scores", "box_owner", "box_flip_iou", "box_flip_probs"}
    assert required_inputs("localization_stability") == {"box_scores", "box_owner", "box_noise_iou"}


# ----------------------------------------------------------------------------- PPAL
def test_difficulty_weights_run_from_one_to_one_plus_the_upper_bound() -> None:
    w = difficulty_weights([0.0, 0.5, 1.0])
    middle = 1.0 + 0.2 * 0.3 * np.log(1.0 + (np.exp(1.0 / 0.3) - 1.0) * 0.5)
    assert w == pytest.approx([1.0, middle, 1.2])


def _ppal_pool() -> dict[str, Any]:
    """Images 0-1 and 2-3 are two near-duplicate pairs of a hard class (1); 4 is as unsure
    as 0-1 but of the easy class (0); 5 is confident. Image 6 owns no box."""
    return {
        "box_owner": np.arange(6),
        "box_probs": np.array([[0.1, 0.9]] * 4 + [[0.9, 0.1], [0.9, 0.1]]),
        "box_scores": np.array([0.5, 0.5, 0.4, 0.4, 0.5, 0.99]),
        "box_features": np.array([[1.0, 0.0], [1.0, 0.01], [0.0, 1.0], [0.01, 1.0], [1.0, 0.0], [0.0, 1.0]]),
        "class_difficulty": np.array([0.0, 1.0]),
    }


def test_ppal_uncertainty_is_score_entropy_weighted_by_class_difficulty() -> None:
    p = _ppal_pool()
    u = ppal_uncertainty(p["box_probs"], p["box_scores"], p["box_owner"], p["class_difficulty"], 7)
    hard = 1.2 * h(0.5, 0.5)
    assert u == pytest.approx([hard, hard, 1.2 * h(0.4, 0.6), 1.2 * h(0.4, 0.6), h(0.5, 0.5), h(0.99, 0.01), 0.0])
    assert h(0.5, 0.5) > h(0.4, 0.6)  # without the calibration image 4 would outrank images 2 and 3


@pytest.mark.parametrize("seed", range(4))
def test_ppal_takes_calibrated_candidates_then_one_image_per_near_duplicate_pair(seed: int) -> None:
    p = _ppal_pool()
    out = select("ppal", 2, rng=rng(seed), labeled=np.zeros(7, bool), candidate_factor=2, **p)
    assert len(out) == 2
    assert {int(out[0]), int(out[1])} & {0, 1} and {int(out[0]), int(out[1])} & {2, 3}
    assert out[0] in (0, 1)  # the more uncertain pick first
    top = select("det_entropy", 3, rng=rng(seed), labeled=np.zeros(7, bool), agg="sum", **_entropy_view(p))
    assert set(top.tolist()) == {0, 1, 4}  # uncalibrated uncertainty alone never reaches images 2 and 3


def _entropy_view(p: dict[str, Any]) -> dict[str, Any]:
    s = p["box_scores"]
    return {"box_probs": np.stack([s, 1 - s], axis=1), "box_owner": p["box_owner"]}


def test_ppal_distances_match_same_class_features_only() -> None:
    probs = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    owner = np.array([0, 1, 2, 3, 3])
    feats = np.array([[1.0, 0.0], [2.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    scores = np.array([0.5, 0.5, 0.5, 0.75, 0.25])
    d = ppal_distances(probs, scores, owner, feats, np.array([0, 1, 2, 3, 4]), 5)
    # 0 -> 3: its class-0 box is orthogonal to 3's class-0 box (1); 3 -> 0: 0.75 * 1 + 0.25 * 2 (no class 1 in 0)
    assert d[0] == pytest.approx([0.0, 0.0, 2.0, 0.5 * (1.0 + 1.25), 2.0])
    assert d[2, 3] == pytest.approx(0.5 * (0.0 + (0.75 * 2.0 + 0.25 * 0.0)))
    assert np.allclose(d, d.T)
    assert d[4].tolist() == [2.0, 2.0, 2.0, 2.0, 0.0]  # image 4 owns no box


def test_k_medoids_returns_one_medoid_per_cluster() -> None:
    pts = np.array([0.0, 0.1, 0.2, 10.0, 10.1, 10.2, 20.0])
    dist = np.abs(pts[:, None] - pts[None, :])
    for seed in range(5):
        assert sorted(k_medoids(dist, 3, rng=rng(seed)).tolist()) == [1, 4, 6]
    assert sorted(k_medoids(np.zeros((4, 4)), 4, rng=rng(0)).tolist()) == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- CALD
def test_js_divergence_by_hand() -> None:
    p, q = np.array([[0.8, 0.2]]), np.array([[0.6, 0.4]])
    m = (p + q) / 2
    by_hand = 0.5 * (p * np.log(p / m)).sum() + 0.5 * (q * np.log(q / m)).sum()
    assert js_divergence(p, q) == pytest.approx([by_hand])
    assert js_divergence(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])) == pytest.approx([np.log(2)])


def test_cald_ranks_an_unsettled_image_above_a_consistent_one() -> None:
    probs = np.array([[0.8, 0.2], [0.8, 0.2], [0.5, 0.5]])
    flip = np.array([[0.8, 0.2], [0.6, 0.4], [0.5, 0.5]])
    owner, scores, iou = np.array([0, 1, 2]), np.array([1.0, 0.8, 0.1]), np.array([1.0, 0.5, 0.0])
    js = float(js_divergence(probs[1:2], flip[1:2])[0])
    c = cald_scores(probs, scores, owner, iou, flip, 4)
    assert c == pytest.approx([abs(2.0 - 1.3), abs(0.5 + (1 - js) * 0.8 - 1.3), abs(0.1 - 1.3), 0.0])
    out = select(
        "cald",
        4,
        rng=rng(),
        labeled=np.zeros(4, bool),
        box_probs=probs,
        box_scores=scores,
        box_owner=owner,
        box_flip_iou=iou,
        box_flip_probs=flip,
    )
    assert out.tolist() == [3, 1, 0, 2]  # no box first (the authors' choice), then nearest the base point


# ----------------------------------------------------------------------------- localization stability
def test_localization_stability_weights_boxes_by_confidence() -> None:
    owner = np.array([0, 1, 1])
    scores = np.array([0.9, 0.8, 0.2])
    noise_iou = np.array([[0.9, 0.8, 0.7], [0.2, 0.4, 0.3], [1.0, 1.0, 1.0]])
    s = localization_stability_scores(scores, owner, noise_iou, 3)
    assert s == pytest.approx([1 - 0.8, 1 - (0.8 * 0.3 + 0.2 * 1.0) / 1.0, 0.0])
    out = select(
        "localization_stability",
        3,
        rng=rng(),
        labeled=np.zeros(3, bool),
        box_scores=scores,
        box_owner=owner,
        box_noise_iou=noise_iou,
    )
    assert out.tolist() == [1, 0, 2]


# ----------------------------------------------------------------------------- budget in boxes
def _ranked_pool() -> dict[str, Any]:
    """det_least_confidence ranks the five images 0, 1, 2, 3, 4."""
    top = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    return {"box_probs": np.stack([top, 1 - top], axis=1), "box_owner": np.arange(5)}


def test_select_budget_skips_a_too_costly_image_and_takes_a_later_cheaper_one() -> None:
    costs = np.array([3.0, 5.0, 1.0, 2.0, 1.0])
    out = select_budget("det_least_confidence", 6, costs, rng=rng(), labeled=np.zeros(5, bool), **_ranked_pool())
    assert out.tolist() == [0, 2, 3]
    assert costs[out].sum() <= 6
    out = select_budget("det_least_confidence", 4, costs, rng=rng(), labeled=np.zeros(5, bool), **_ranked_pool())
    assert out.tolist() == [0, 2]  # only 4 ranked, image 4 would fit but is not asked for
    labeled = np.array([True, False, False, False, False])
    out = select_budget("det_least_confidence", 100, costs, rng=rng(), labeled=labeled, **_ranked_pool())
    assert out.tolist() == [1, 2, 3, 4]


def test_select_budget_validates_budget_and_costs() -> None:
    kw: dict[str, Any] = {"rng": rng(), "labeled": np.zeros(5, bool), **_ranked_pool()}
    with pytest.raises(InputError, match="budget must be >= 1"):
        select_budget("det_margin", 0.5, np.ones(5), **kw)
    with pytest.raises(InputError, match="budget must be a finite number"):
        select_budget("det_margin", float("nan"), np.ones(5), **kw)
    with pytest.raises(InputError, match="costs must be >= 1 for every image; image 2 costs 0"):
        select_budget("det_margin", 3, np.array([1.0, 1.0, 0.0, 1.0, 1.0]), **kw)
    with pytest.raises(InputError, match="costs has 4 entries but the pool has 5"):
        select_budget("det_margin", 3, np.ones(4), **kw)
    with pytest.raises(InputError, match="fits none of the 2 images"):
        select_budget("det_margin", 2, np.full(5, 3.0), **kw)
    with pytest.raises(InputError, match="needs labeled="):
        select_budget("det_margin", 2, np.ones(5), rng=rng(), labeled=None, **_ranked_pool())
