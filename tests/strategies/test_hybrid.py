"""Hybrids as compositions: BADGE, Cluster-Margin, uncertainty then diversity, random fraction, class balance."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.strategies import gradient_factors, margin_scores, required_inputs, select


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_badge_first_pick_is_the_largest_gradient() -> None:
    p = np.array([[0.98, 0.02], [0.6, 0.4], [0.5, 0.5], [0.9, 0.1]])
    h = np.array([[1.0, 0.0], [1.0, 0.0], [0.1, 0.0], [1.0, 0.0]])
    # ||g|| = ||p - onehot|| * ||h||: row 1 -> 0.566, row 2 -> 0.071
    assert select("badge", 1, rng=rng(), grad_factors=gradient_factors(p), embeddings=h)[0] == 1


def test_badge_factored_gradient_embedding_matches_explicit() -> None:
    p = rng(1).dirichlet(np.ones(3), size=5)
    a = gradient_factors(p)
    assert np.allclose(a.sum(axis=1), 0.0, atol=1e-6)
    assert np.allclose(a[np.arange(5), p.argmax(1)], p.max(1) - 1.0)


def test_badge_draws_proportionally_to_squared_distance() -> None:
    # first pick fixed (largest gradient); second drawn with P proportional to D^2 from it
    p = np.array([[0.5, 0.5], [0.9, 0.1], [0.9, 0.1], [0.9, 0.1]])
    h = np.array([[1.0, 0.0], [1.0, 1.0], [1.0, 2.0], [1.0, 3.0]])
    a = gradient_factors(p).astype(float)
    g = np.einsum("ic,id->icd", a, h).reshape(4, -1)
    d2 = ((g - g[0]) ** 2).sum(1)[1:]
    expected = d2 / d2.sum()
    seconds = np.array(
        [select("badge", 2, rng=rng(s), grad_factors=gradient_factors(p), embeddings=h)[1] for s in range(3000)]
    )
    freq = np.array([(seconds == i).mean() for i in (1, 2, 3)])
    np.testing.assert_allclose(freq, expected, atol=0.03)


def test_badge_picks_diverse_uncertain_items() -> None:
    g = rng(2)
    n = 400
    h = np.vstack([g.normal(0, 0.05, (n // 2, 4)) + [1, 0, 0, 0], g.normal(0, 0.05, (n // 2, 4)) + [0, 1, 0, 0]])
    p = np.full((n, 3), [0.8, 0.1, 0.1])
    p[:5] = [0.34, 0.33, 0.33]  # uncertain, cluster A
    p[200:205] = [0.34, 0.33, 0.33]  # uncertain, cluster B
    out = select("badge", 2, rng=rng(), grad_factors=gradient_factors(p), embeddings=h)
    assert {int(out[0] >= 200), int(out[1] >= 200)} == {0, 1}


def test_cluster_margin_round_robins_over_low_margin_clusters() -> None:
    g = rng(3)
    x = np.vstack([g.normal(0, 0.05, (10, 2)), g.normal(5, 0.05, (10, 2)), g.normal(10, 0.05, (10, 2))])
    p = np.tile([0.9, 0.1], (30, 1))
    p[[0, 1, 2, 10, 11, 12]] = [0.5, 0.5]  # low margin in clusters 0 and 1 only
    out = select("cluster_margin", 2, rng=rng(), probs=p, embeddings=x, margin_factor=3)
    assert {int(o) // 10 for o in out} == {0, 1}
    assert set(out.tolist()) <= {0, 1, 2, 10, 11, 12}


def test_uncertainty_diversity_is_coreset_among_the_uncertain() -> None:
    x = np.array([[0.0], [1.0], [1.1], [9.0], [50.0]])
    p = np.array([[0.5, 0.5], [0.51, 0.49], [0.52, 0.48], [0.53, 0.47], [0.99, 0.01]])
    labeled = np.array([True, False, False, False, False])
    # pool_factor=1: the 2 lowest-margin unlabeled items are 1 and 2; core-set from labeled {0} takes 2 (1.1) then 1
    out = select(
        "uncertainty_diversity",
        2,
        rng=rng(),
        probs=p,
        embeddings=x,
        labeled=labeled,
        pool_factor=1,
        uncertainty="margin",
        diversity="coreset",
    )
    assert out.tolist() == [2, 1]
    # pool_factor=2: candidates 1, 2, 3, 4 -> farthest from 0 is 4 (50), then 3 (9)
    out = select(
        "uncertainty_diversity",
        2,
        rng=rng(),
        probs=p,
        embeddings=x,
        labeled=labeled,
        pool_factor=2,
        uncertainty="margin",
        diversity="coreset",
    )
    assert out.tolist() == [4, 3]
    # weighted core-set: the confident far item 4 has weight 0.02, so 3 (9 * 0.94) wins
    out = select(
        "uncertainty_diversity", 1, rng=rng(), probs=p, embeddings=x, labeled=labeled, pool_factor=4, weighted=True
    )
    assert out.tolist() == [3]


def test_random_fraction_mixes_and_interleaves() -> None:
    p = rng(4).dirichlet(np.ones(3), size=200)
    top = select("margin", 10, rng=rng(), probs=p)
    out = select("random_fraction", 10, rng=rng(), probs=p, strategy="margin", fraction=0.3)
    assert len(set(out.tolist())) == 10
    inner = [o for o in out if o in set(top[:7].tolist())]
    assert inner == top[:7].tolist()
    assert out[0] == top[0]
    assert set(out[:4].tolist()) - set(top[:7].tolist())  # a random pick within the first few
    all_random = select("random_fraction", 5, rng=rng(), probs=p, fraction=1.0)
    assert len(all_random) == 5
    assert select("random_fraction", 5, rng=rng(), probs=p, fraction=0.0).tolist() == top[:5].tolist()


def test_random_fraction_requires_its_inner_strategies_inputs() -> None:
    assert required_inputs("random_fraction") == {"probs"}
    assert required_inputs("random_fraction", strategy="bald") == {"mc_probs"}
    assert required_inputs("random_fraction", strategy="badge") == {"grad_factors", "embeddings"}
    with pytest.raises(InputError, match="missing: mc_probs"):
        select("random_fraction", 2, rng=rng(), probs=np.full((4, 2), 0.5), strategy="bald")


def test_class_balanced_favours_rare_classes() -> None:
    p = np.array([[0.9, 0.1]] * 6 + [[0.2, 0.8]] * 6)  # predicted class 0 for 0..5, class 1 for 6..11
    labels = np.full(12, -1)
    labels[[0, 1, 2]] = 0  # three labeled class-0 items
    labeled = labels >= 0
    out = select("class_balanced", 3, rng=rng(), probs=p, labels=labels, labeled=labeled)
    assert all(o >= 6 for o in out)  # 3 + 0 vs 0 + 3 -> all three to class 1
    out = select("class_balanced", 5, rng=rng(), probs=p, labels=labels, labeled=labeled)
    assert sum(o >= 6 for o in out) == 4 and sum(o < 6 for o in out) == 1
    assert out[0] >= 6


def test_class_balanced_wraps_any_strategy() -> None:
    g = rng(5)
    p = g.dirichlet(np.ones(3), size=60)
    x = g.standard_normal((60, 4))
    labels = np.full(60, -1)
    out = select("class_balanced", 9, rng=rng(), probs=p, labels=labels, embeddings=x, strategy="coreset")
    pred = p.argmax(1)
    counts = np.bincount(pred[out], minlength=3)
    assert counts.max() - counts.min() <= 1 or counts.min() == np.bincount(pred, minlength=3).min()
    assert required_inputs("class_balanced", strategy="coreset") == {"probs", "labels", "embeddings"}


def test_hybrid_compositions_reject_bad_names() -> None:
    p = np.full((4, 2), 0.5)
    with pytest.raises(InputError, match="unknown strategy"):
        select("random_fraction", 2, rng=rng(), probs=p, strategy="nope")
    with pytest.raises(InputError, match="diversity must be one of"):
        select("uncertainty_diversity", 2, rng=rng(), probs=p, embeddings=np.ones((4, 2)), diversity="nope")
    assert margin_scores(p).shape == (4,)
