"""BALD, variation ratios, mean std and PowerBALD on hand-built committees."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.strategies import bald_scores, mean_std_scores, select, variation_ratio_scores


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


# T=4 committee members, N=3 items, C=2 classes
AGREE_CONFIDENT = [[0.95, 0.05]] * 4  # no uncertainty at all
AGREE_UNSURE = [[0.5, 0.5]] * 4  # aleatoric: high entropy, no disagreement
DISAGREE = [[0.99, 0.01], [0.01, 0.99], [0.99, 0.01], [0.01, 0.99]]  # epistemic: members disagree
MC = np.stack([np.array([AGREE_CONFIDENT[t], AGREE_UNSURE[t], DISAGREE[t]]) for t in range(4)])  # (T, N, C)


def test_bald_prefers_the_disagreeing_committee() -> None:
    s = bald_scores(MC)
    assert s[0] == pytest.approx(0.0, abs=1e-12)
    assert s[1] == pytest.approx(0.0, abs=1e-12)  # same prediction every pass: no information gain
    h = lambda p: -(p * np.log(p)).sum()  # noqa: E731
    assert s[2] == pytest.approx(h(np.array([0.5, 0.5])) - h(np.array([0.99, 0.01])))
    assert select("bald", 1, rng=rng(), mc_probs=MC).tolist() == [2]
    # entropy of the mean would rank the aleatoric item first; BALD does not
    assert select("bald", 3, rng=rng(), mc_probs=MC)[0] == 2


def test_bald_matches_direct_formula_on_random_input() -> None:
    mc = rng(1).dirichlet(np.ones(5), size=(7, 40))
    mean = mc.mean(axis=0)
    expected = -(mean * np.log(mean)).sum(1) + (mc * np.log(mc)).sum(2).mean(0)
    np.testing.assert_allclose(bald_scores(mc), expected, rtol=1e-10, atol=1e-12)


def test_variation_ratios_counts_votes() -> None:
    np.testing.assert_allclose(variation_ratio_scores(MC), [0.0, 0.0, 0.5])
    votes = np.array([[[0.6, 0.3, 0.1]], [[0.2, 0.7, 0.1]], [[0.1, 0.2, 0.7]], [[0.6, 0.2, 0.2]]])  # (4, 1, 3)
    np.testing.assert_allclose(variation_ratio_scores(votes), [0.5])  # mode class 0 has 2 of 4 votes


def test_variation_ratios_agrees_with_scikit_activeml() -> None:
    skal = pytest.importorskip("skactiveml.pool")
    mc = rng(4).dirichlet(np.ones(4), size=(9, 100))
    votes = mc.argmax(axis=2).T  # (N, T) class votes
    np.testing.assert_allclose(variation_ratio_scores(mc), skal.variation_ratios(votes))


def test_mean_std() -> None:
    np.testing.assert_allclose(mean_std_scores(MC), [0.0, 0.0, 0.49])
    assert select("mean_std", 1, rng=rng(), mc_probs=MC).tolist() == [2]


def test_power_bald_with_large_beta_is_top_k_bald() -> None:
    mc = rng(2).dirichlet(np.ones(3) * 0.5, size=(6, 50))
    top = select("bald", 10, rng=rng(), mc_probs=mc)
    cold = select("power_bald", 10, rng=rng(5), mc_probs=mc, beta=1e6)
    assert cold.tolist() == top.tolist()


def test_power_bald_samples_proportionally() -> None:
    # two items with BALD ratio 1:3 -> item 1 drawn first ~75% of the time
    mc = np.stack([np.array([[0.7, 0.3], [0.99, 0.01], [0.5, 0.5]]), np.array([[0.3, 0.7], [0.01, 0.99], [0.5, 0.5]])])
    s = bald_scores(mc)
    p1 = s[1] / (s[0] + s[1])
    firsts = [select("power_bald", 1, rng=rng(i), mc_probs=mc)[0] for i in range(2000)]
    assert 2 not in firsts  # zero BALD: only drawn after everything else
    assert np.mean(np.array(firsts) == 1) == pytest.approx(p1, abs=0.04)
