"""Segmentation strategies: pixel scores, aggregation, class balance, BALD and region scores by hand."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.strategies import (
    aggregate_pixels,
    class_weights,
    get_strategy,
    image_scores,
    pixel_bald,
    pixel_entropy,
    pixel_least_confidence,
    pixel_margin,
    region_scores,
    register,
    select,
    select_budget,
)

H8, H9 = 0.500402423538188, 0.325082973391448  # entropy (nats) of (0.8, 0.2) and (0.9, 0.1)
LN2 = float(np.log(2))
#: (C=2, H=2, W=2): pixels (0.5, 0.5), (1, 0) / (0.8, 0.2), (0.9, 0.1)
PROBS = np.array([[[0.5, 1.0], [0.8, 0.9]], [[0.5, 0.0], [0.2, 0.1]]])


def objects(*items: Any) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = [np.asarray(x) for x in items]
    return out


def rng() -> np.random.Generator:
    return np.random.default_rng(0)


def pixels(*rows: list[float]) -> np.ndarray:
    """(C, 1, W) from W pixel distributions."""
    return np.asarray(rows, dtype=float).T[:, None, :]


def test_pixel_scores_by_hand() -> None:
    np.testing.assert_allclose(pixel_entropy(PROBS), [[LN2, 0.0], [H8, H9]], atol=1e-12)
    np.testing.assert_allclose(pixel_margin(PROBS), [[1.0, 0.0], [0.4, 0.2]], atol=1e-12)
    np.testing.assert_allclose(pixel_least_confidence(PROBS), [[0.5, 0.0], [0.2, 0.1]], atol=1e-12)
    three = pixels([0.5, 0.3, 0.2])  # margin uses the two likeliest of three classes
    assert pixel_margin(three)[0, 0] == pytest.approx(0.8)
    assert pixel_least_confidence(three)[0, 0] == pytest.approx(0.5)
    assert pixel_entropy(three)[0, 0] == pytest.approx(1.0296530140645737)


def test_aggregation_mean_and_top_fraction() -> None:
    m = np.arange(8.0).reshape(2, 4)
    assert aggregate_pixels(m) == 3.5
    assert aggregate_pixels(m, "top", q=0.25) == 6.5  # the 2 highest of 8
    assert aggregate_pixels(m, "top", q=0.3) == 6.5  # floor(2.4) = 2
    assert aggregate_pixels(m, "top", q=0.1) == 7.0  # at least one pixel
    assert aggregate_pixels(m, "top", q=1.0) == 3.5
    with pytest.raises(InputError, match="q must be in"):
        aggregate_pixels(m, "top", q=0.0)
    with pytest.raises(InputError, match="agg must be one of"):
        aggregate_pixels(m, "max")


def test_top_aggregation_finds_a_small_uncertain_object_the_mean_misses() -> None:
    small = np.tile(np.array([0.98, 0.01, 0.01])[:, None, None], (1, 10, 10))
    small[:, 4, 4] = 1 / 3  # one maximally uncertain pixel on a confident background
    mild = np.tile(np.array([0.8, 0.1, 0.1])[:, None, None], (1, 10, 10))
    pool = objects(small, mild)
    assert select("seg_entropy", 1, rng=rng(), pixel_probs=pool).tolist() == [1]
    assert select("seg_entropy", 1, rng=rng(), pixel_probs=pool, agg="top", q=0.01).tolist() == [0]
    np.testing.assert_allclose(image_scores(pool, "entropy", agg="top", q=0.01), [np.log(3), 0.639031859], atol=1e-8)


def test_class_balance_weights_and_their_effect_by_hand() -> None:
    a = pixels([0.6, 0.3, 0.1], [0.7, 0.2, 0.1])  # predicted 0, 0; least confidence 0.4, 0.3
    b = pixels([0.9, 0.05, 0.05], [0.3, 0.6, 0.1])  # predicted 0, 1; least confidence 0.1, 0.4
    pool = objects(a, b)
    # class counts (3, 1, 0) -> frequencies (3/4, 1/4) -> inverses (4/3, 4) -> mean 1 over present: (0.5, 1.5), 0
    np.testing.assert_allclose(class_weights(pool), [0.5, 1.5, 0.0])
    np.testing.assert_allclose(image_scores(pool, "least_confidence"), [0.35, 0.25])
    np.testing.assert_allclose(image_scores(pool, "least_confidence", balance=True), [0.175, 0.325])
    assert select("seg_least_confidence", 2, rng=rng(), pixel_probs=pool).tolist() == [0, 1]
    assert select("seg_least_confidence", 2, rng=rng(), pixel_probs=pool, balance=True).tolist() == [1, 0]


def test_bald_by_hand_agreeing_samples_score_zero() -> None:
    disagree = np.stack([pixels([0.9, 0.1], [0.7, 0.3]), pixels([0.1, 0.9], [0.7, 0.3])])  # (T=2, C=2, 1, 2)
    np.testing.assert_allclose(pixel_bald(disagree), [[LN2 - H9, 0.0]], atol=1e-12)
    agree = np.stack([pixels([0.9, 0.1], [0.2, 0.8])] * 3)
    np.testing.assert_allclose(pixel_bald(agree), 0.0, atol=1e-12)
    pool = objects(agree, disagree, agree)
    assert select("seg_bald", 3, rng=rng(), mc_probs=pool)[0] == 1
    assert select("seg_bald", 2, rng=rng(), mc_probs=pool, labeled=np.array([False, True, False])).tolist() in (
        [0, 2],
        [2, 0],
    )


# --------------------------------------------------------------------------- regions
def region_pool() -> dict[str, Any]:
    """Two images of PROBS: regions [[0,0],[1,1]] and [[0,1],[1,1]] (4 regions, pixels 2, 2, 1, 3)."""
    return {
        "pixel_probs": objects(PROBS, PROBS),
        "region_map": objects(np.array([[0, 0], [1, 1]]), np.array([[0, 1], [1, 1]])),
        "region_owner": np.array([0, 0, 1, 1]),
        "region_labeled": np.zeros(4, dtype=bool),
    }


REGION_ENTROPY = [LN2 / 2, (H8 + H9) / 2, LN2, (H8 + H9) / 3]


def test_region_scores_are_mean_pixel_scores_by_hand() -> None:
    pool = region_pool()
    args = (pool["pixel_probs"], pool["region_map"], pool["region_owner"])
    np.testing.assert_allclose(region_scores(*args), REGION_ENTROPY, atol=1e-12)
    np.testing.assert_allclose(region_scores(*args, "margin"), [0.5, 0.3, 1.0, 0.2], atol=1e-12)
    np.testing.assert_allclose(region_scores(*args, "least_confidence"), [0.25, 0.15, 0.5, 0.1], atol=1e-12)


def test_region_strategies_pick_the_most_uncertain_region_and_never_a_labeled_one() -> None:
    pool = region_pool()
    assert select("region_entropy", 4, rng=rng(), **pool).tolist() == [2, 1, 0, 3]
    assert select("region_margin", 4, rng=rng(), **pool).tolist() == [2, 0, 1, 3]
    assert select("region_least_confidence", 2, rng=rng(), **pool).tolist() == [2, 0]
    pool["region_labeled"] = np.array([False, False, True, False])
    image_labeled = np.array([False, True])  # image 1 is partly labeled: its unlabeled region stays selectable
    for name in ("region_entropy", "region_margin", "region_least_confidence", "region_random"):
        out = select(name, 10, rng=rng(), labeled=image_labeled, **pool)
        assert sorted(out.tolist()) == [0, 1, 3], name
    assert select("region_entropy", 3, rng=rng(), labeled=image_labeled, **pool).tolist() == [1, 0, 3]
    assert get_strategy("region_entropy").unit == "regions" and get_strategy("seg_entropy").unit == "images"


def test_region_balance_weights_pixels_by_predicted_class() -> None:
    probs = pixels([0.6, 0.4], [0.6, 0.4], [0.3, 0.7], [0.9, 0.1])  # predicted 0, 0, 1, 0: weights (0.5, 1.5)
    pool = {
        "pixel_probs": objects(probs),
        "region_map": objects(np.array([[0, 0, 1, 1]])),
        "region_owner": np.array([0, 0]),
        "region_labeled": np.zeros(2, dtype=bool),
    }
    args = (pool["pixel_probs"], pool["region_map"], pool["region_owner"], "least_confidence")
    np.testing.assert_allclose(region_scores(*args), [0.4, 0.2])
    np.testing.assert_allclose(region_scores(*args, balance=True), [0.2, (0.3 * 1.5 + 0.1 * 0.5) / 2])
    assert select("region_least_confidence", 1, rng=rng(), **pool).tolist() == [0]
    assert select("region_least_confidence", 1, rng=rng(), balance=True, **pool).tolist() == [1]


def test_budget_in_pixels_spends_region_pixels() -> None:
    pool = region_pool()
    costs = np.array([2, 2, 1, 3])  # region_pixels
    out = select_budget("region_entropy", 5, costs, rng=rng(), labeled=None, **pool)
    assert out.tolist() == [2, 1, 0]  # 1 + 2 + 2 pixels
    out = select_budget("region_entropy", 4, costs, rng=rng(), labeled=None, **pool)
    assert out.tolist() == [2, 1]  # region 0 (2 px) no longer fits in the 1 px left; region 3 is not ranked
    pool["region_labeled"] = np.array([False, False, True, False])
    out = select_budget("region_entropy", 4, costs, rng=rng(), labeled=np.zeros(2, bool), **pool)
    assert out.tolist() == [1, 0]
    with pytest.raises(InputError, match="costs has 2 entries but the pool has 4 regions"):
        select_budget("region_entropy", 4, np.ones(2), rng=rng(), labeled=None, **pool)
    with pytest.raises(InputError, match="costs must be >= 1 for every region; region 1 costs 0"):
        select_budget("region_entropy", 4, np.array([1, 0, 1, 1]), rng=rng(), labeled=None, **pool)
    with pytest.raises(InputError, match="needs region_labeled="):
        select_budget("region_random", 4, costs, rng=rng(), labeled=None, region_owner=pool["region_owner"])


def test_bad_segmentation_inputs_are_rejected_with_the_reason() -> None:
    pool = region_pool()
    with pytest.raises(InputError, match=r"pixel_probs\[1\] must sum to 1 over its classes"):
        select("seg_margin", 1, rng=rng(), pixel_probs=objects(PROBS, PROBS * 0.9))
    with pytest.raises(InputError, match="at least 2 classes"):
        select("seg_margin", 1, rng=rng(), pixel_probs=objects(np.ones((1, 2, 2))))
    with pytest.raises(InputError, match=r"pixel_probs\[1\] has 3 classes but pixel_probs\[0\] has 2"):
        select("seg_margin", 1, rng=rng(), pixel_probs=objects(PROBS, np.full((3, 2, 2), 1 / 3)))
    with pytest.raises(InputError, match="ordered image by image"):
        select("region_entropy", 1, rng=rng(), **{**pool, "region_owner": np.array([0, 1, 0, 1])})
    with pytest.raises(InputError, match=r"region_map\[1\] has no pixel with region id 0"):
        select(
            "region_entropy",
            1,
            rng=rng(),
            **{**pool, "region_map": objects(np.eye(2, dtype=int), np.ones((2, 2), int))},
        )


def test_float16_probabilities_get_a_rounding_tolerance() -> None:
    g = np.random.default_rng(0)
    p = g.dirichlet(np.ones(11), size=(8, 8)).transpose(2, 0, 1)
    off = p.copy()
    off[0] += 0.004  # within 2 * 11 * eps(float16) = 0.0215, outside float64's 1e-3
    assert select("seg_entropy", 1, rng=rng(), pixel_probs=objects(off.astype(np.float16))).tolist() == [0]
    with pytest.raises(InputError, match="must sum to 1"):
        select("seg_entropy", 1, rng=rng(), pixel_probs=objects(off))


def test_units_are_checked_at_registration_and_wrappers_refuse_region_strategies() -> None:
    with pytest.raises(InputError, match="unit must be one of"):
        register("pixels_unit", requires={"probs"}, unit="pixels")
    with pytest.raises(InputError, match="must require 'region_labeled'"):
        register("no_region_mask", requires={"region_owner"}, unit="regions")
    with pytest.raises(InputError, match="picks regions"):
        select("random_fraction", 2, rng=rng(), strategy="region_entropy", **region_pool())
    pool = objects(PROBS, PROBS[::-1], np.full((2, 2, 2), 0.5))  # a wrapper runs an image strategy on pixel maps
    out = select("random_fraction", 2, rng=rng(), strategy="seg_entropy", fraction=0.5, pixel_probs=pool)
    assert len(set(out.tolist())) == 2 and set(out.tolist()) <= {0, 1, 2}
