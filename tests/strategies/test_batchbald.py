"""BatchBALD against hand-computed joint entropies and the duplicate-item case of Kirsch et al. (2019)."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.strategies import bald_scores, joint_entropy, select

# T=2 committee members, N=3 items, C=2 classes
MC = np.array(
    [
        [[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]],
        [[0.1, 0.9], [0.6, 0.4], [0.5, 0.5]],
    ]
)


def h(p: list[float]) -> float:
    q = np.array(p)
    return float(-(q * np.log(q)).sum())


def cond_h(mc: np.ndarray, i: int) -> float:
    """E_w H(y_i | w): the mean entropy of the members' predictions."""
    return float(np.mean([h(list(mc[t, i])) for t in range(mc.shape[0])]))


def test_joint_entropy_matches_hand_computation() -> None:
    # p(y0, y1) = (p1(y0) p1(y1) + p2(y0) p2(y1)) / 2:
    # (0,0): (.9*.2 + .1*.6)/2 = .12   (0,1): (.9*.8 + .1*.4)/2 = .38
    # (1,0): (.1*.2 + .9*.6)/2 = .28   (1,1): (.1*.8 + .9*.4)/2 = .22
    assert joint_entropy(MC, [0, 1]) == pytest.approx(h([0.12, 0.38, 0.28, 0.22]), abs=1e-12)
    assert joint_entropy(MC, [0]) == pytest.approx(h([0.5, 0.5]), abs=1e-12)
    assert joint_entropy(MC, [1]) == pytest.approx(h([0.4, 0.6]), abs=1e-12)
    # item 2 is [.5, .5] for both members: independent of the others, adds log 2
    assert joint_entropy(MC, [0, 1, 2]) == pytest.approx(h([0.12, 0.38, 0.28, 0.22]) + np.log(2), abs=1e-12)


def test_monte_carlo_joint_entropy_approaches_the_exact_one() -> None:
    mc = np.random.default_rng(0).dirichlet(np.ones(3) * 0.5, size=(8, 8))  # 3^8 = 6561 configurations
    exact = joint_entropy(mc, range(8))
    # exact for the first 6 items (729 <= 2000 configurations), then 2000 sampled ones;
    # over 30 seeds the error's largest absolute value was 0.009 nats
    sampled = joint_entropy(mc, range(8), n_configs=2000, rng=np.random.default_rng(1))
    assert sampled == pytest.approx(exact, abs=0.03)
    assert sampled != exact  # the sampled path ran


def test_batch_of_one_is_balds_pick() -> None:
    assert select("batchbald", 1, rng=np.random.default_rng(0), mc_probs=MC).tolist() == [0]
    for seed in range(5):
        mc = np.random.default_rng(seed).dirichlet(np.ones(4), size=(6, 30))
        assert select("batchbald", 1, rng=np.random.default_rng(0), mc_probs=mc)[0] == np.argmax(bald_scores(mc))


def test_second_pick_maximises_the_joint_mutual_information() -> None:
    mc = np.random.default_rng(3).dirichlet(np.ones(3), size=(5, 12))
    first, second = select("batchbald", 2, rng=np.random.default_rng(0), mc_probs=mc).tolist()
    mi = [
        joint_entropy(mc, [first, j]) - cond_h(mc, first) - cond_h(mc, j) if j != first else -np.inf for j in range(12)
    ]
    assert second == int(np.argmax(mi))


@pytest.mark.parametrize("n_configs", [1000, 1])
def test_a_duplicate_is_not_picked_second(n_configs: int) -> None:
    # T=4 members. Items 0 and 1 are identical (the members split 1,3 against 2,4); item 2 splits
    # them 1,2 against 3,4, a little less sharply (lower BALD). BALD takes the duplicate pair,
    # BatchBALD the item whose label says something new. n_configs=1 runs the sampled estimator.
    a = [[0.99, 0.01], [0.01, 0.99], [0.99, 0.01], [0.01, 0.99]]
    c = [[0.95, 0.05], [0.95, 0.05], [0.05, 0.95], [0.05, 0.95]]
    mc = np.stack([np.array([a[t], a[t], c[t]]) for t in range(4)])
    assert bald_scores(mc)[2] < bald_scores(mc)[0]
    assert sorted(select("bald", 2, rng=np.random.default_rng(0), mc_probs=mc).tolist()) == [0, 1]
    picks = select("batchbald", 2, rng=np.random.default_rng(0), mc_probs=mc, n_configs=n_configs).tolist()
    assert picks[0] in (0, 1) and picks[1] == 2


def test_labeled_items_are_skipped() -> None:
    labeled = np.array([True, False, False])
    assert select("batchbald", 1, rng=np.random.default_rng(0), mc_probs=MC, labeled=labeled).tolist() == [1]
