"""Uncertainty scores and strategies: exact answers on hand-built rows, peers, top_k."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.strategies import (
    egl_scores,
    entropy_scores,
    least_confidence_scores,
    margin_scores,
    ratio_scores,
    select,
    top_k,
)

PROBS4 = np.array(
    [
        [0.90, 0.05, 0.05],  # confident
        [0.40, 0.35, 0.25],  # margin 0.05  <- most uncertain by margin
        [0.50, 0.30, 0.20],  # margin 0.20
        [0.34, 0.33, 0.33],  # margin 0.01  <- smallest margin
    ]
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def test_margin_on_four_rows_puts_small_gaps_first() -> None:
    assert select("margin", 4, rng=rng(), probs=PROBS4).tolist() == [3, 1, 2, 0]
    assert select("margin", 2, rng=rng(), probs=PROBS4).tolist() == [3, 1]
    np.testing.assert_allclose(margin_scores(PROBS4), [0.15, 0.95, 0.80, 0.99])


def test_least_confidence_ratio_entropy_exact() -> None:
    np.testing.assert_allclose(least_confidence_scores(PROBS4), [0.10, 0.60, 0.50, 0.66])
    np.testing.assert_allclose(ratio_scores(PROBS4), [0.05 / 0.9, 0.35 / 0.4, 0.3 / 0.5, 0.33 / 0.34])
    p = PROBS4
    np.testing.assert_allclose(entropy_scores(p), -(p * np.log(p)).sum(axis=1))
    assert select("least_confidence", 4, rng=rng(), probs=PROBS4).tolist() == [3, 1, 2, 0]
    assert select("ratio", 4, rng=rng(), probs=PROBS4).tolist() == [3, 1, 2, 0]
    assert select("entropy", 4, rng=rng(), probs=PROBS4).tolist() == [3, 1, 2, 0]


def test_entropy_handles_zero_probabilities() -> None:
    p = np.array([[1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(entropy_scores(p), [0.0, np.log(2)])


def test_labeled_rows_are_skipped() -> None:
    labeled = np.array([False, False, False, True])
    assert select("margin", 4, rng=rng(), probs=PROBS4, labeled=labeled).tolist() == [1, 2, 0]


def test_egl_matches_explicit_gradients() -> None:
    g = rng(3)
    p = g.dirichlet(np.ones(4), size=6)
    h = g.standard_normal((6, 5))
    expected = np.zeros(6)
    for i in range(6):
        for y in range(4):
            grad = np.outer(p[i] - np.eye(4)[y], h[i])  # d CE / d W for label y
            expected[i] += p[i, y] * np.linalg.norm(grad)
    np.testing.assert_allclose(egl_scores(p, h), expected, rtol=1e-6)
    assert select("egl", 6, rng=rng(), probs=p, embeddings=h).tolist() == list(np.argsort(-expected))


@pytest.mark.parametrize(
    "ours,method",
    [(least_confidence_scores, "least_confident"), (margin_scores, "margin_sampling"), (entropy_scores, "entropy")],
)
def test_agrees_with_scikit_activeml(ours, method) -> None:  # type: ignore[no-untyped-def]
    skal = pytest.importorskip("skactiveml.pool")
    g = rng(7)
    for c in (2, 3, 10, 50):
        p = g.dirichlet(np.full(c, 0.3), size=200)
        np.testing.assert_allclose(ours(p), skal.uncertainty_scores(p, method=method), rtol=1e-10, atol=1e-12)


def test_agrees_with_modal() -> None:
    modal = pytest.importorskip("modAL.uncertainty")
    p = rng(8).dirichlet(np.ones(6), size=300)
    np.testing.assert_allclose(least_confidence_scores(p), modal._proba_uncertainty(p))
    # modAL's margin is p1 - p2 (smaller = more uncertain)
    np.testing.assert_allclose(1.0 - margin_scores(p), modal._proba_margin(p), atol=1e-12)
    np.testing.assert_allclose(entropy_scores(p), modal._proba_entropy(p), rtol=1e-10)


def test_top_k_breaks_ties_reproducibly_and_randomly() -> None:
    scores = np.array([1.0, 5.0, 5.0, 5.0, 5.0, 0.0])
    a = top_k(scores, 2, rng=rng(1))
    assert set(a.tolist()) <= {1, 2, 3, 4}
    assert a.tolist() == top_k(scores, 2, rng=rng(1)).tolist()
    seen = {tuple(top_k(scores, 2, rng=rng(s)).tolist()) for s in range(30)}
    assert len(seen) > 3  # ties are not always resolved the same way
    assert top_k(scores, 10, rng=rng(1))[-2:].tolist() == [0, 5]


def test_top_k_rejects_nan_and_bad_k() -> None:
    with pytest.raises(InputError, match="NaN"):
        top_k(np.array([0.1, np.nan]), 1, rng=rng())
    with pytest.raises(InputError, match="k must be >= 1"):
        top_k(np.array([0.1, 0.2]), 0, rng=rng())
    with pytest.raises(InputError, match="k must be a positive integer"):
        top_k(np.array([0.1, 0.2]), 1.5, rng=rng())  # type: ignore[arg-type]


def test_probs_rows_must_sum_to_one() -> None:
    with pytest.raises(InputError, match="row 1 sums to"):
        margin_scores(np.array([[0.5, 0.5], [0.9, 0.9]]))
    with pytest.raises(InputError, match="logits"):
        margin_scores(np.array([[1.5, -0.5], [0.5, 0.5]]))
    with pytest.raises(InputError, match="at least 2 classes"):
        margin_scores(np.ones((3, 1)))


def test_large_class_count_chunked_path() -> None:
    from activelab.strategies import uncertainty

    p = rng(2).dirichlet(np.ones(1000), size=50)
    full = margin_scores(p)
    old = uncertainty._ROW_CHUNK_ELEMS
    uncertainty._ROW_CHUNK_ELEMS = 3000  # force several chunks
    try:
        np.testing.assert_allclose(margin_scores(p), full)
    finally:
        uncertainty._ROW_CHUNK_ELEMS = old
