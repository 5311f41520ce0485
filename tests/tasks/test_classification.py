"""The single-label task's strategy arrays keep single-label strategies' results as they were."""

from __future__ import annotations

import numpy as np

from activelab.strategies import get_strategy, gradient_factors, select
from activelab.tasks import get_task

TASK = get_task("classification")


def test_grad_factors_are_softmax_cross_entropy_gradients() -> None:
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    got = TASK.strategy_arrays(frozenset({"grad_factors"}), p)["grad_factors"]
    np.testing.assert_allclose(got, [[-0.3, 0.2, 0.1], [0.1, 0.3, -0.4]], rtol=1e-6)
    np.testing.assert_array_equal(got, gradient_factors(p))


def test_badge_picks_are_the_ones_recorded_before_it_took_grad_factors() -> None:
    # recorded with select("badge", 8, probs=p, embeddings=h, ...) before BADGE read grad_factors
    g = np.random.default_rng(21)
    p = g.dirichlet(np.ones(4), size=60)
    h = g.standard_normal((60, 5))
    labeled = np.zeros(60, dtype=bool)
    labeled[[2, 7, 30]] = True
    arrays = TASK.strategy_arrays(get_strategy("badge").inputs, p)
    recorded = [
        [44, 40, 3, 51, 53, 34, 26, 38],
        [44, 32, 19, 52, 34, 27, 24, 17],
        [44, 16, 51, 12, 35, 23, 8, 33],
    ]
    for seed, want in enumerate(recorded):
        out = select("badge", 8, rng=np.random.default_rng(seed), labeled=labeled, embeddings=h, **arrays)
        assert out.tolist() == want


def test_single_label_decides_by_argmax_without_thresholds() -> None:
    p = np.array([[0.7, 0.3], [0.4, 0.6]])
    assert TASK.choose_thresholds(np.array([0, 1]), p) is None
    assert TASK.metrics(np.array([0, 1]), p, ["a", "b"], thresholds=None)["accuracy"] == 1.0
    assert get_strategy("cvirs").inputs - TASK.provides == {"marginals", "label_matrix"}
