"""Multi-label strategies on hand-built marginals: per-class uncertainty aggregated per image, and CVIRS."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.strategies import (
    binary_uncertainty,
    cvirs_scores,
    label_vector_distance,
    margin_scores,
    multilabel_uncertainty_scores,
    select,
)

P = np.array([[0.5, 0.9, 0.1], [0.2, 0.2, 0.2], [0.9, 0.9, 0.1], [0.6, 0.4, 0.5]])


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def bits(x: float) -> float:
    return 0.0 if x == 0 else -x * np.log2(x)


def test_binary_uncertainty_is_the_two_class_margin() -> None:
    np.testing.assert_allclose(binary_uncertainty([[0.5, 0.9, 0.1, 1.0, 0.0]]), [[1.0, 0.2, 0.2, 0.0, 0.0]])
    p = rng().random(20)
    np.testing.assert_allclose(binary_uncertainty(p[:, None])[:, 0], margin_scores(np.c_[p, 1 - p]))


def test_mean_and_max_aggregation() -> None:
    np.testing.assert_allclose(multilabel_uncertainty_scores(P, "mean"), [1.4 / 3, 0.4, 0.2, 2.6 / 3])
    np.testing.assert_allclose(multilabel_uncertainty_scores(P, "max"), [1.0, 0.4, 0.2, 1.0])
    assert select("multilabel_uncertainty", 2, rng=rng(), marginals=P).tolist() == [3, 0]
    out = select("multilabel_uncertainty", 3, rng=rng(), marginals=P, agg="max")
    assert set(out[:2].tolist()) == {0, 3} and out[2] == 1
    with pytest.raises(InputError, match="agg must be one of"):
        select("multilabel_uncertainty", 1, rng=rng(), marginals=P, agg="sum")


def test_label_vector_distance_exact_values() -> None:
    h3 = bits(1 / 3) + bits(2 / 3)
    d = label_vector_distance(
        [[1, 1, 0], [1, 0, 0], [0, 1, 1], [0, 0, 0]],
        [[1, 0, 0]],
    )[:, 0]
    # [1,1,0] vs [1,0,0]: contingency (a, b, c, d) = (1, 0, 1, 1), joint entropy log2 3
    np.testing.assert_allclose(d, [(2 * np.log2(3) - 2 * h3) / np.log2(3), 0.0, 1.0, 1.0])
    # four classes: (a, b, c, d) = (2, 1, 0, 1) -> joint 1.5 bits, H(y) = 1, H(y') = H(3/4)
    h34 = bits(0.75) + bits(0.25)
    np.testing.assert_allclose(label_vector_distance([[1, 1, 0, 0]], [[1, 1, 1, 0]]), [[(3 - 1 - h34) / 1.5]])
    # independent halves: (1, 1, 1, 1) -> 2 bits joint, 1 bit each -> 1
    np.testing.assert_allclose(label_vector_distance([[1, 1, 0, 0]], [[1, 0, 1, 0]]), [[1.0]])


def test_cvirs_scores_rank_aggregation_times_inconsistency() -> None:
    labels = np.full((4, 3), -1)
    labels[0] = [1, 0, 0]
    labeled = np.array([True, False, False, False])
    h3 = bits(1 / 3) + bits(2 / 3)
    # margins of unlabeled rows 1, 2, 3 rank (2, 3, 1) in every class: Borda 0.5, 0, 1
    # predictions [0,0,0] and [1,0,1] are at distance 1 and 0.841 from the labeled [1,0,0]
    expected = [0.0, 0.5, 0.0, (2 * np.log2(3) - 2 * h3) / np.log2(3)]
    np.testing.assert_allclose(cvirs_scores(P, labels, labeled), expected)
    assert select("cvirs", 2, rng=rng(), marginals=P, label_matrix=labels, labeled=labeled).tolist() == [3, 1]


def test_cvirs_without_labels_is_the_ranking_and_ties_share_ranks() -> None:
    labels = np.full((4, 3), -1)
    # per-class ranks (margin ascending, ties averaged): class 0 (1, 3, 4, 2), classes 1 and 2 (3.5, 2, 3.5, 1)
    # Borda (U - rank) summed over classes / (C (U - 1)) = / 9
    np.testing.assert_allclose(cvirs_scores(P, labels), [4 / 9, 5 / 9, 1 / 9, 8 / 9])
    same = np.array([[0.3, 0.7], [0.7, 0.3]])
    np.testing.assert_allclose(cvirs_scores(same, np.full((2, 2), -1)), [0.5, 0.5])
    one_left = np.array([True, False])
    np.testing.assert_allclose(cvirs_scores(same, [[0, 1], [-1, -1]], one_left), [0.0, 1.0])


def test_cvirs_threshold_decides_the_predicted_vector() -> None:
    labels = np.array([[1, 0], [-1, -1], [-1, -1]])
    marg = np.array([[0.9, 0.1], [0.6, 0.1], [0.6, 0.1]])
    labeled = np.array([True, False, False])
    # both unlabeled rows tie in the ranking (0.5 each); at 0.5 they predict [1,0] = the labeled vector
    np.testing.assert_allclose(cvirs_scores(marg, labels, labeled), [0.0, 0.0, 0.0])
    # at 0.7 they predict [0,0]: H(y) = 0, so the distance is 1
    np.testing.assert_allclose(cvirs_scores(marg, labels, labeled, threshold=0.7), [0.0, 0.5, 0.5])


def test_wrappers_take_multilabel_strategies() -> None:
    marg = rng(3).random((30, 4))
    labels = np.full((30, 4), -1)
    labels[:5] = rng(4).integers(0, 2, (5, 4))
    labeled = labels[:, 0] >= 0
    inner = select("cvirs", 4, rng=rng(), marginals=marg, label_matrix=labels, labeled=labeled)
    out = select(
        "random_fraction",
        4,
        rng=rng(),
        marginals=marg,
        label_matrix=labels,
        labeled=labeled,
        strategy="cvirs",
        fraction=0.0,
    )
    assert out.tolist() == inner.tolist()
