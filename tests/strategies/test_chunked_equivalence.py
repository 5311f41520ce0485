"""Chunked selection equals the in-memory computation on small inputs (issue 8).

Core-set's lazy, chunked k-center greedy and BADGE's factored D^2 sampling never
build an N x N matrix or the N x (C d) gradient matrix. Here the chunk sizes of
``activelab.strategies._distance`` are forced tiny (rows per block, centres per
refresh, candidates per walk block) so every chunk boundary and refresh path runs,
and the results are compared with the naive in-memory versions: an explicit N x N
distance matrix for k-center, the explicit ``(p - onehot) (x) h`` gradient matrix
for BADGE. ProbCover's chunked radius graph is compared with the explicit pairwise
matrix the same way (numpy and FAISS paths, and the approximate index used above
its size threshold on a small pool).
"""

from __future__ import annotations

import numpy as np
import pytest

from activelab.strategies import _clustering, _distance, gradient_factors, select
from activelab.strategies._distance import Points, kmeanspp_seeding


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_distance, "_ROW_CHUNK", 7)
    monkeypatch.setattr(_distance, "_REFRESH_EVERY", 3)
    monkeypatch.setattr(_distance, "_WALK_BLOCK", 5)


def naive_kcenter(
    dist: np.ndarray, k: int, labeled: np.ndarray, first: int | None = None, weights: np.ndarray | None = None
) -> list[int]:
    """Textbook greedy k-center on a full (N, N) distance matrix."""
    n = dist.shape[0]
    centres = list(np.flatnonzero(labeled))
    out: list[int] = []
    if not centres:
        assert first is not None
        out.append(first)
        centres.append(first)
    mind = dist[:, centres].min(axis=1)
    avail = ~labeled.copy()
    avail[out] = False
    w = np.ones(n) if weights is None else weights
    while len(out) < k:
        v = np.where(avail, mind * w, -np.inf)
        c = int(np.argmax(v))
        out.append(c)
        avail[c] = False
        mind = np.minimum(mind, dist[:, c])
    return out


def pairwise(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    return np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))


def blobs(n: int, d: int, seed: int) -> np.ndarray:
    g = rng(seed)
    centres = g.standard_normal((12, d)) * 4
    return (centres[g.integers(0, 12, n)] + g.standard_normal((n, d)) * g.random((n, 1))).astype(np.float32)


@pytest.mark.parametrize("seed", range(3))
def test_coreset_with_tiny_chunks_equals_naive_nxn_greedy(tiny_chunks: None, seed: int) -> None:
    x = blobs(300, 6, seed)
    labeled = rng(seed + 10).random(300) < 0.03
    labeled[0] = True
    got = select("coreset", 60, rng=rng(), embeddings=x, labeled=labeled)
    assert got.tolist() == naive_kcenter(pairwise(x), 60, labeled)


def test_coreset_cold_start_weighted_and_cosine_with_tiny_chunks(tiny_chunks: None) -> None:
    x = blobs(250, 5, 7)
    none = np.zeros(250, dtype=bool)
    # cold start: the first pick is drawn by the rng exactly as the strategy draws it
    first = int(np.flatnonzero(~none)[rng(3).integers(250)])
    got = select("coreset", 40, rng=rng(3), embeddings=x)
    assert got.tolist() == naive_kcenter(pairwise(x), 40, none, first=first)
    # weighted: maximise weight * distance
    w = rng(4).random(250)
    labeled = none.copy()
    labeled[:3] = True
    got = select("coreset", 40, rng=rng(), embeddings=x, labeled=labeled, weights=w)
    assert got.tolist() == naive_kcenter(pairwise(x), 40, labeled, weights=w)
    # cosine: euclidean on unit rows
    u = x / np.linalg.norm(x, axis=1, keepdims=True)
    got = select("coreset", 40, rng=rng(), embeddings=x, labeled=labeled, metric="cosine")
    assert got.tolist() == naive_kcenter(pairwise(u), 40, labeled)


def test_coreset_beyond_the_candidate_list_equals_naive_greedy(tiny_chunks: None) -> None:
    # more than 4,096 candidates: the lazy walk stops on the list's stale bound and rebuilds it
    g = rng(21)
    n = 5000
    x = (g.standard_normal((n, 4)) * g.random((n, 1)) * 3).astype(np.float32)
    labeled = np.zeros(n, dtype=bool)
    labeled[:5] = True
    got = select("coreset", 40, rng=rng(), embeddings=x, labeled=labeled)
    xd = x.astype(np.float64)
    mind = np.min([((xd - xd[c]) ** 2).sum(1) for c in range(5)], axis=0)
    want: list[int] = []
    for _ in range(40):  # O(N k) naive greedy (an N x N matrix would be 200 MB)
        v = np.where(labeled, -np.inf, mind)
        v[want] = -np.inf
        c = int(np.argmax(v))
        want.append(c)
        mind = np.minimum(mind, ((xd - xd[c]) ** 2).sum(1))
    assert got.tolist() == want


def explicit_gradients(p: np.ndarray, h: np.ndarray) -> np.ndarray:
    """BADGE's (N, C*d) gradient embeddings, materialised."""
    a = p.astype(np.float64).copy()
    a[np.arange(len(p)), p.argmax(1)] -= 1.0
    return np.einsum("ic,id->icd", a, h.astype(np.float64)).reshape(len(p), -1)


def test_factored_min_distance_update_with_tiny_chunks_equals_explicit(tiny_chunks: None) -> None:
    g = rng(8)
    p = g.dirichlet(np.ones(4), size=53)
    h = g.standard_normal((53, 9))
    gm = explicit_gradients(p, h)
    pts = Points(h, gradient_factors(p))
    np.testing.assert_allclose(pts.sq, (gm**2).sum(1), rtol=1e-5)
    centres = np.array([3, 17, 40, 41, 52], dtype=np.int64)
    d2 = np.full(53, np.inf)
    pts.min_dist2_update(d2, centres)  # 53 rows in blocks of 7
    want = np.min([((gm - gm[c]) ** 2).sum(1) for c in centres], axis=0)
    np.testing.assert_allclose(d2, want, rtol=1e-4, atol=1e-5)


def test_badge_joint_draws_with_tiny_chunks_match_explicit_gradient_d2(
    monkeypatch: pytest.MonkeyPatch, tiny_chunks: None
) -> None:
    # 3 picks from 6 items: the first is the largest ||g||, then (second, third) must follow
    # D^2 sampling on the explicit gradient matrix; refresh every centre or every 3rd
    g = rng(9)
    p = g.dirichlet(np.ones(3), size=6)
    h = g.standard_normal((6, 4))
    gm = explicit_gradients(p, h)
    first = int(np.argmax((gm**2).sum(1)))
    d1 = ((gm - gm[first]) ** 2).sum(1)
    joint = np.zeros((6, 6))
    for j in range(6):
        if j == first:
            continue
        d2 = np.minimum(d1, ((gm - gm[j]) ** 2).sum(1))
        d2[[first, j]] = 0.0
        joint[j] = d1[j] / d1.sum() * d2 / d2.sum()
    for refresh in (1, 3):
        monkeypatch.setattr(_distance, "_REFRESH_EVERY", refresh)
        counts = np.zeros((6, 6))
        runs = 3000
        for s in range(runs):
            out = select("badge", 3, rng=rng(s), grad_factors=gradient_factors(p), embeddings=h)
            assert out[0] == first
            counts[out[1], out[2]] += 1
        tv = 0.5 * np.abs(counts / runs - joint).sum()
        assert tv < 0.05, (refresh, tv)


def test_kmeanspp_seeding_factored_equals_dense_points(tiny_chunks: None) -> None:
    # the same seeded draw on factored and on explicit gradient points picks the same items
    g = rng(12)
    p = g.dirichlet(np.ones(3), size=40)
    h = g.standard_normal((40, 5))
    cand = np.ones(40, dtype=bool)
    fact = kmeanspp_seeding(Points(h, gradient_factors(p)), 8, candidates=cand, first=0, rng=rng(1))
    dense = kmeanspp_seeding(Points(explicit_gradients(p, h)), 8, candidates=cand, first=0, rng=rng(1))
    assert fact.tolist() == dense.tolist()


def explicit_radius_graph(x: np.ndarray, radius: float) -> list[list[int]]:
    dist = pairwise(x)
    return [sorted(np.flatnonzero(dist[i] < radius).tolist()) for i in range(len(x))]


def as_lists(indptr: np.ndarray, indices: np.ndarray) -> list[list[int]]:
    return [sorted(indices[indptr[i] : indptr[i + 1]].tolist()) for i in range(len(indptr) - 1)]


@pytest.mark.parametrize("use_faiss", [True, False])
def test_radius_graph_in_chunks_equals_explicit_matrix(monkeypatch: pytest.MonkeyPatch, use_faiss: bool) -> None:
    if use_faiss and not _clustering.HAVE_FAISS:
        pytest.skip("faiss not installed")
    monkeypatch.setattr(_clustering, "HAVE_FAISS", use_faiss)
    monkeypatch.setattr(_clustering, "_RANGE_CHUNK", 13)
    x = blobs(200, 5, 3)
    radius = float(np.quantile(pairwise(x), 0.05))
    got = as_lists(*_clustering.radius_graph(x, radius, max_edges=10**6))
    want = explicit_radius_graph(x, radius)
    # float32 vs float64 may disagree on a pair sitting exactly on the radius: allow none here
    assert got == want


def test_radius_graph_above_the_exact_threshold_is_a_symmetric_near_complete_graph(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not _clustering.HAVE_FAISS:
        pytest.skip("faiss not installed")
    monkeypatch.setattr(_clustering, "EXACT_RANGE_MAX", 100)  # force the approximate (IVF) index
    x = blobs(2000, 8, 4)
    radius = float(np.quantile(pairwise(x[:300]), 0.02))
    indptr, indices = _clustering.radius_graph(x, radius, max_edges=10**7)
    got = as_lists(indptr, indices)
    want = explicit_radius_graph(x, radius)
    pairs_got = {(i, j) for i, row in enumerate(got) for j in row}
    pairs_want = {(i, j) for i, row in enumerate(want) for j in row}
    assert pairs_got <= pairs_want  # no false edges
    assert all((j, i) in pairs_got for i, j in pairs_got)  # symmetric
    assert all(i in row for i, row in enumerate(got))  # self-loops kept
    assert len(pairs_got) >= 0.9 * len(pairs_want)  # recall of the approximate search
