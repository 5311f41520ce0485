"""Diversity strategies: core-set on a line, clusters, TypiClust, ProbCover, outliers, proximity."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.strategies import outlier_scores, select
from activelab.strategies._distance import Points


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def line(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=float)[:, None]


def test_kcenter_on_a_line() -> None:
    # points 0, 1, 4, 6, 13, 14, 30 with 0 labeled. Farthest from {0}: 30; then 14 (14 from 0, 16 from 30);
    # then 6 (6 from 0, 8 from 14); then 4 (2 from 6, versus 1 for both 1 and 13).
    x = line(0, 1, 4, 6, 13, 14, 30)
    labeled = np.array([True, False, False, False, False, False, False])
    out = select("coreset", 4, rng=rng(), embeddings=x, labeled=labeled)
    assert out.tolist() == [6, 5, 3, 2]
    assert sorted(select("coreset", 99, rng=rng(), embeddings=x, labeled=labeled).tolist()) == [1, 2, 3, 4, 5, 6]


def test_kcenter_weighted_by_scores() -> None:
    x = line(0, 5, 9, 10)
    labeled = np.array([True, False, False, False])
    w = np.array([0.0, 1.0, 0.1, 0.1])  # item 1 (distance 5) outweighs 10 * 0.1 = 1.0
    assert select("coreset", 1, rng=rng(), embeddings=x, labeled=labeled, weights=w).tolist() == [1]
    assert select("coreset", 1, rng=rng(), embeddings=x, labeled=labeled).tolist() == [3]


def test_kcenter_cosine_uses_angles() -> None:
    x = np.array([[1.0, 0.0], [100.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
    labeled = np.array([True, False, False, False])
    assert select("coreset", 1, rng=rng(), embeddings=x, labeled=labeled, metric="cosine").tolist() == [2]
    assert select("coreset", 1, rng=rng(), embeddings=x, labeled=labeled).tolist() == [1]


def naive_kcenter(x: np.ndarray, k: int, labeled: np.ndarray) -> list[int]:
    d = np.full(len(x), np.inf)
    for c in np.flatnonzero(labeled):
        d = np.minimum(d, ((x - x[c]) ** 2).sum(1))
    out: list[int] = []
    avail = ~labeled
    while len(out) < k:
        c = int(np.argmax(np.where(avail, d, -1)))
        out.append(c)
        avail[c] = False
        d = np.minimum(d, ((x - x[c]) ** 2).sum(1))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_lazy_kcenter_equals_naive_greedy(seed: int) -> None:
    g = rng(seed)
    n = 3000 if seed == 0 else 400
    x = (g.standard_normal((n, 8)) * g.random((n, 1)) * 3).astype(np.float32)
    labeled = g.random(n) < 0.02
    k = 150
    got = select("coreset", k, rng=rng(), embeddings=x, labeled=labeled)
    assert got.tolist() == naive_kcenter(x.astype(np.float64), k, labeled.copy())


def test_kcenter_agrees_with_scikit_activeml_objective() -> None:
    skal = pytest.importorskip("skactiveml.pool")
    g = rng(11)
    x = g.standard_normal((300, 5))
    y = np.full(300, np.nan)
    y[:3] = 0
    theirs, _ = skal.k_greedy_center(x, y, batch_size=20, random_state=0)
    ours = select("coreset", 20, rng=rng(), embeddings=x, labeled=~np.isnan(y))
    assert sorted(ours.tolist()) == sorted(np.asarray(theirs).tolist())


def test_factored_distances_equal_dense_kronecker() -> None:
    g = rng(5)
    a, h = g.standard_normal((30, 4)), g.standard_normal((30, 6))
    dense = np.einsum("ic,id->icd", a, h).reshape(30, -1)
    pts_f, pts_d = Points(h, a), Points(dense)
    idx = np.arange(7)
    np.testing.assert_allclose(pts_f.dist2(slice(None), idx), pts_d.dist2(slice(None), idx), rtol=1e-3, atol=1e-3)


def two_blobs(n1: int = 60, n2: int = 20, seed: int = 0) -> np.ndarray:
    g = rng(seed)
    return np.vstack([g.normal(0, 0.1, (n1, 2)), g.normal(10, 0.1, (n2, 2))])


def test_cluster_weights_clusters_by_size_and_picks_near_centres() -> None:
    x = two_blobs()
    out = select("cluster", 8, rng=rng(), embeddings=x, n_clusters=2)
    assert (out < 60).sum() == 6 and (out >= 60).sum() == 2  # 8 * 60/80 = 6, 8 * 20/80 = 2
    assert out[0] < 60 and out[1] >= 60  # round-robin, biggest cluster first
    centre = x[:60].mean(0)
    d = np.linalg.norm(x[:60] - centre, axis=1)
    assert out[0] == int(np.argmin(d))


def test_cluster_default_one_per_cluster() -> None:
    x = two_blobs()
    out = select("cluster", 2, rng=rng(), embeddings=x)
    assert sorted(int(o >= 60) for o in out) == [0, 1]


def test_typiclust_cold_start_picks_dense_centres() -> None:
    g = rng(1)
    x = np.vstack([g.normal(0, 0.3, (50, 2)), g.normal(8, 0.3, (30, 2)), [[4.0, 20.0]]])  # + one outlier
    out = select("typiclust", 2, rng=rng(), embeddings=x)
    assert sorted(int(o >= 50) for o in out) == [0, 1]
    assert 80 not in out
    assert out[0] < 50  # larger cluster first
    centre = x[:50].mean(0)
    assert np.linalg.norm(x[out[0]] - centre) < 0.3


def test_typiclust_skips_covered_clusters() -> None:
    x = two_blobs()
    labeled = np.zeros(80, dtype=bool)
    labeled[0] = True
    out = select("typiclust", 1, rng=rng(), embeddings=x, labeled=labeled)
    assert out[0] >= 60


def test_probcover_picks_the_ball_covering_most() -> None:
    # 9 points on a 0.1-spaced grid, 3 points near (5,5), 1 far point; delta=0.15 (not normalised):
    # only the grid centre's ball holds all 9 grid points
    g = np.array([[i * 0.1, j * 0.1] for i in range(3) for j in range(3)])
    x = np.vstack([g, [[5, 5], [5.1, 5], [5, 5.1]], [[20, 20]]])
    out = select("probcover", 3, rng=rng(), embeddings=x, delta=0.15, normalize=False)
    assert out[0] == 4  # grid centre covers all 9
    assert out[1] in (9, 10, 11)
    assert out[2] == 12


def test_probcover_labeled_cover_their_ball() -> None:
    g = np.array([[i * 0.1, 0.0] for i in range(5)])
    x = np.vstack([g, [[5, 5], [5.1, 5]]])
    labeled = np.zeros(7, dtype=bool)
    labeled[2] = True
    out = select("probcover", 1, rng=rng(), embeddings=x, labeled=labeled, delta=0.5, normalize=False)
    assert out[0] in (5, 6)


def test_probcover_estimates_delta_and_refuses_huge_graphs() -> None:
    x = two_blobs()
    out = select("probcover", 2, rng=rng(), embeddings=x, normalize=False, n_clusters=2)
    assert sorted(int(o >= 60) for o in out) == [0, 1]
    with pytest.raises(InputError, match="max_edges"):
        select("probcover", 2, rng=rng(), embeddings=x, delta=100.0, max_edges=100)


def test_outlier_scores_rank_activations_against_labeled() -> None:
    x = np.array([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0], [0.0, 0.0], [2.5, 2.5], [9.0, 9.0]])
    labeled = np.array([True, True, True, False, False, False])
    s = outlier_scores(x, labeled)
    np.testing.assert_allclose(s, [1 - 0.5 / 3, 0.5, 1 - 2.5 / 3, 1.0, 1 - 2 / 3, 0.0])
    assert select("outlier", 3, rng=rng(), embeddings=x, labeled=labeled).tolist() == [3, 4, 5]


def test_proximity_grows_from_positives() -> None:
    x = line(0, 1, 2, 3, 4, 100)
    positives = np.array([True, False, False, False, False, False])
    labeled = positives.copy()
    out = select("proximity", 4, rng=rng(), embeddings=x, labeled=labeled, positives=positives, step=1)
    assert out.tolist() == [1, 2, 3, 4]
    # uncertainty scores can override proximity (spread bounds the proximity term to +-0.3)
    scores = np.array([0, 0, 0, 0, 0, 1.0])
    out2 = select("proximity", 1, rng=rng(), embeddings=x, labeled=labeled, positives=positives, scores=scores)
    assert out2.tolist() == [5]


def test_random_needs_pool_size_and_excludes_labeled() -> None:
    labeled = np.array([True, False, True, False, False])
    out = select("random", 10, rng=rng(), labeled=labeled)
    assert sorted(out.tolist()) == [1, 3, 4]
    assert sorted(select("random", 5, rng=rng(), n_samples=5).tolist()) == [0, 1, 2, 3, 4]
    assert len(select("random", 2, rng=rng(), probs=np.full((6, 2), 0.5))) == 2
    with pytest.raises(InputError, match="pool size"):
        select("random", 2, rng=rng())


def test_numpy_paths_without_faiss(monkeypatch: pytest.MonkeyPatch) -> None:
    from activelab.strategies import _clustering

    x = two_blobs()
    with_faiss = select("probcover", 3, rng=rng(), embeddings=x, normalize=False, delta=0.5)
    monkeypatch.setattr(_clustering, "HAVE_FAISS", False)
    assert select("probcover", 3, rng=rng(), embeddings=x, normalize=False, delta=0.5).tolist() == with_faiss.tolist()
    out = select("typiclust", 2, rng=rng(), embeddings=x)
    assert sorted(int(o >= 60) for o in out) == [0, 1]
    assert len(select("cluster", 5, rng=rng(), embeddings=x, backend="sklearn")) == 5
