"""Diversity and representativeness strategies on embeddings (no model predictions needed).

``embeddings: (N, d)`` are features from a backbone or the model's penultimate layer.
Cold-start strategies (``typiclust``, ``probcover``, ``cluster``, ``coreset``,
``random``) work before any label exists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from activelab.exceptions import InputError

from ._clustering import gather_csr, kmeans, knn_dist, radius_graph
from ._distance import Points, kcenter_greedy
from ._validation import (
    check_choice,
    check_embeddings,
    check_fraction,
    check_k,
    check_labeled,
    check_positive_float,
    check_positive_int,
    check_rng,
    check_scores,
)
from .registry import register
from .selection import _top_k

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def _prepare(embeddings: Any, k: Any, rng: Any, labeled: Any) -> tuple[FloatArray, int, BoolArray]:
    check_rng(rng)
    kk = check_k(k)
    x = check_embeddings(embeddings)
    return x, kk, check_labeled(labeled, x.shape[0])


def l2_normalize(x: FloatArray) -> NDArray[np.float32]:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    xf = np.asarray(x, dtype=np.float32)
    norms = np.sqrt(np.einsum("ij,ij->i", xf, xf, dtype=np.float64)).astype(np.float32)
    return np.asarray(xf / np.where(norms > 0, norms, np.float32(1.0))[:, None], dtype=np.float32)


# ----------------------------------------------------------------------------- random
@register("random", requires=set(), paper="passive baseline")
def random(k: int, *, rng: np.random.Generator, labeled: Any = None, n_samples: int | None = None) -> IntArray:
    """Pick ``k`` unlabeled items uniformly at random (passive learning baseline).

    The pool size comes from ``labeled`` (``(N,)`` bool) or ``n_samples``; ``select``
    fills ``n_samples`` from whatever arrays it is given. Cost O(N).
    """
    check_rng(rng)
    kk = check_k(k)
    if labeled is None and n_samples is None:
        raise InputError("random needs the pool size: pass n_samples=N or a labeled=(N,) mask.")
    if labeled is not None:
        n = int(np.shape(labeled)[0]) if np.ndim(labeled) == 1 else -1
        if n_samples is not None and n != int(n_samples):
            raise InputError(f"labeled has {n} entries but n_samples={n_samples}; they must agree.")
    else:
        n = check_positive_int(n_samples, "n_samples")
    mask = check_labeled(labeled, n)
    pool = np.flatnonzero(~mask)
    take = min(kk, pool.size)
    return pool[rng.choice(pool.size, size=take, replace=False)].astype(np.int64)


# ----------------------------------------------------------------------------- coreset
@register("coreset", requires={"embeddings"}, paper="Sener & Savarese, ICLR 2018")
def coreset(
    embeddings: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    metric: str = "euclidean",
    weights: Any = None,
) -> IntArray:
    """Core-set by greedy k-center: repeatedly pick the item farthest from every labeled
    or already-picked item, so the labeled set covers the pool with the smallest radius.

    Args:
        embeddings: ``(N, d)`` features.
        metric: ``"euclidean"``, or ``"cosine"`` (euclidean on L2-normalised rows,
            which orders pairs exactly as cosine distance does).
        weights: optional ``(N,)`` non-negative per-item weights, e.g. uncertainty
            scores; the pick maximises ``weight * distance`` (the AL-for-CV seed's
            ``weighted_by_score``).

    With no labeled items the first pick is drawn by ``rng`` (or is the largest weight).
    Exact greedy; chunked lazy distance updates (see ``_distance``): O(N k d) time worst
    case, typically far less; O(N) extra memory; never N x N.
    Sener & Savarese, "Active Learning for Convolutional Neural Networks: A Core-Set
    Approach", ICLR 2018.
    """
    x, kk, mask = _prepare(embeddings, k, rng, labeled)
    check_choice(metric, "metric", ("euclidean", "cosine"))
    w = None
    if weights is not None:
        w = check_scores(weights, x.shape[0], "weights").astype(np.float64)
        if w.min() < 0:
            raise InputError("weights must be non-negative (e.g. uncertainty scores); shift or clip them.")
    pts = Points(l2_normalize(x) if metric == "cosine" else x)
    return kcenter_greedy(
        pts,
        min(kk, int((~mask).sum())),
        candidates=~mask,
        centres=np.flatnonzero(mask).astype(np.int64),
        weights=w,
        rng=rng,
    )


# ----------------------------------------------------------------------------- cluster
def _balanced_quotas(sizes: NDArray[np.int64], k: int, rng: np.random.Generator) -> NDArray[np.int64]:
    """Split ``k`` over groups proportionally to ``sizes`` (largest remainder, capped at size)."""
    total = int(sizes.sum())
    if k >= total:
        return sizes.copy()
    exact = k * sizes / total
    q = np.floor(exact).astype(np.int64)
    rem = exact - q
    short = k - int(q.sum())
    if short > 0:
        order = np.lexsort((rng.random(sizes.size), -rem))
        order = order[q[order] < sizes[order]]
        q[order[:short]] += 1
    return q


def _interleave(groups: list[IntArray]) -> IntArray:
    """Round-robin merge: first of every group (in list order), then second, ..."""
    if not groups:
        return np.zeros(0, dtype=np.int64)
    ranks = np.concatenate([np.arange(g.size) for g in groups])
    gid = np.concatenate([np.full(g.size, i) for i, g in enumerate(groups)])
    items = np.concatenate(groups).astype(np.int64)
    return items[np.lexsort((gid, ranks))]


@register("cluster", requires={"embeddings"}, paper="Active-Labeler (SpaceML, 2021); Zhdanov, arXiv:1901.05954")
def cluster(
    embeddings: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    n_clusters: int | None = None,
    backend: str = "auto",
) -> IntArray:
    """k-means cluster sampling: cluster the unlabeled items and take those closest to
    each centre, bigger clusters contributing more picks.

    Args:
        embeddings: ``(N, d)`` features.
        n_clusters: number of k-means clusters (default ``k``: one pick per cluster).
            With fewer clusters than ``k``, cluster ``c`` contributes
            ``~ k * size_c / #unlabeled`` items (largest remainder), as in the
            Active-Labeler seed's clustering sampler.
        backend: ``"faiss"``, ``"sklearn"`` or ``"auto"``.

    Returns positions round-robin over clusters (largest first), nearest-to-centre first
    within each. Cost: k-means, O(N n_clusters d) per iteration.
    """
    x, kk, mask = _prepare(embeddings, k, rng, labeled)
    check_choice(backend, "backend", ("auto", "faiss", "sklearn"))
    pool = np.flatnonzero(~mask)
    kk = min(kk, pool.size)
    nc = kk if n_clusters is None else check_positive_int(n_clusters, "n_clusters")
    nc = min(nc, pool.size)
    assign, dist2, _ = kmeans(x[pool], nc, rng=rng, backend=backend)
    sizes = np.bincount(assign, minlength=nc)
    quotas = _balanced_quotas(sizes, kk, rng)
    keys = rng.random(pool.size)
    order = np.lexsort((keys, dist2, assign))  # by cluster, then nearest to centre
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    by_size = np.lexsort((np.arange(nc), -sizes))
    groups = [pool[order[starts[c] : starts[c] + quotas[c]]] for c in by_size if quotas[c] > 0]
    return _interleave(groups)[:kk]


# ----------------------------------------------------------------------------- typiclust
def _typicality(x: NDArray[np.float32], knn: int, cap: int, rng: np.random.Generator) -> NDArray[np.float64]:
    """``1 / mean distance to the knn nearest others`` for each row (reference sample ``<= cap``)."""
    n = x.shape[0]
    if n == 1:
        return np.ones(1)
    kk = min(knn, n - 1)
    if n <= cap:
        dist = knn_dist(x, x, kk + 1)[:, 1:]  # drop self
    else:
        ref = rng.choice(n, size=cap, replace=False)
        dist = knn_dist(x, x[ref], kk + 1)
        in_ref = np.zeros(n, dtype=bool)
        in_ref[ref] = True
        dist = np.where(in_ref[:, None], dist[:, 1:], dist[:, :-1])
    return 1.0 / (dist.mean(axis=1) + 1e-8)


@register("typiclust", requires={"embeddings"}, paper="Hacohen, Dekel & Weinshall, ICML 2022")
def typiclust(
    embeddings: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    max_clusters: int = 500,
    knn: int = 20,
    min_cluster_size: int = 5,
    max_reference: int = 2000,
) -> IntArray:
    """TypiClust: pick the most *typical* item of the least-covered large clusters.

    Clusters the whole pool into ``min(#labeled + k, max_clusters)`` k-means clusters.
    Each pick goes to the cluster with the fewest labeled-or-picked items (ties: the
    larger cluster; clusters under ``min_cluster_size`` only when nothing else is left)
    and takes its unlabeled item of highest typicality ``1 / mean distance to its knn
    nearest cluster members``. Designed for the cold start (tiny budgets, no model).

    For clusters over ``max_reference`` members typicality is estimated against a random
    sample of that many members (O(s * max_reference * d) per cluster, not O(s^2 d)).
    Hacohen, Dekel & Weinshall, "Active Learning on a Budget: Opposite Strategies Suit
    High and Low Budgets", ICML 2022.
    """
    x, kk, mask = _prepare(embeddings, k, rng, labeled)
    check_positive_int(max_clusters, "max_clusters")
    check_positive_int(knn, "knn")
    check_positive_int(max_reference, "max_reference")
    n = x.shape[0]
    kk = min(kk, int((~mask).sum()))
    nc = min(int(mask.sum()) + kk, int(max_clusters), n)
    xf = np.ascontiguousarray(x, dtype=np.float32)
    assign, _, _ = kmeans(xf, nc, rng=rng)
    sizes = np.bincount(assign, minlength=nc)
    covered = np.bincount(assign[mask], minlength=nc).astype(np.int64)
    remaining = np.bincount(assign[~mask], minlength=nc).astype(np.int64)
    members = np.argsort(assign, kind="stable")
    starts = np.concatenate(([0], np.cumsum(sizes)))
    typ_cache: dict[int, tuple[IntArray, NDArray[np.float64]]] = {}
    taken = mask.copy()
    out: list[int] = []
    while len(out) < kk:
        ok = remaining > 0
        big = ok & (sizes >= min_cluster_size)
        elig = np.flatnonzero(big if big.any() else ok)
        c = int(elig[np.lexsort((elig, -sizes[elig], covered[elig]))[0]])
        if c not in typ_cache:
            idx = members[starts[c] : starts[c + 1]]
            typ_cache[c] = (idx, _typicality(xf[idx], knn, max_reference, rng))
        idx, typ = typ_cache[c]
        free = ~taken[idx]
        best = int(idx[free][np.argmax(typ[free])])
        out.append(best)
        taken[best] = True
        covered[c] += 1
        remaining[c] -= 1
    return np.asarray(out, dtype=np.int64)


# ----------------------------------------------------------------------------- probcover
def estimate_delta(
    x: NDArray[np.float32], *, purity: float, n_clusters: int, rng: np.random.Generator, n_queries: int = 512
) -> float:
    """ProbCover's ball radius: the largest ``delta`` whose balls are ``purity``-pure
    with respect to k-means pseudo-labels, estimated on ``n_queries`` sampled balls.

    A ball around ``x_i`` is pure when no point of another cluster lies within
    ``delta``; so purity(delta) = fraction of sampled ``i`` whose nearest other-cluster
    point is farther than ``delta``, and the answer is that distance's
    ``(1 - purity)`` quantile. Cost O(n_queries N d), chunked.
    """
    n = x.shape[0]
    nc = min(n_clusters, n)
    assign, _, _ = kmeans(x, nc, rng=rng)
    if nc < 2:
        raise InputError("probcover could not find 2 clusters to estimate delta; pass delta= explicitly.")
    q = rng.choice(n, size=min(n_queries, n), replace=False)
    xsq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    nearest_other = np.full(q.size, np.inf)
    for s in range(0, n, 8192):  # (n_queries, 8192) blocks: ~32 MB each
        blk = slice(s, min(n, s + 8192))
        d2 = xsq[q][:, None] + xsq[blk][None, :] - 2.0 * (x[q] @ x[blk].T)
        d2 = np.where(assign[blk][None, :] != assign[q][:, None], d2, np.inf)
        nearest_other = np.minimum(nearest_other, d2.min(axis=1))
    r = np.sqrt(np.maximum(nearest_other[np.isfinite(nearest_other)], 0.0))
    if r.size == 0:
        raise InputError("probcover could not estimate delta; pass delta= explicitly.")
    return float(np.quantile(r, 1.0 - purity))


@register("probcover", requires={"embeddings"}, paper="Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022")
def probcover(
    embeddings: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    delta: float | None = None,
    purity: float = 0.95,
    n_clusters: int = 10,
    normalize: bool = True,
    max_edges: int = 20_000_000,
) -> IntArray:
    """ProbCover: greedy maximum coverage of delta-balls (cold start).

    Builds the graph ``i -> j`` when ``||x_i - x_j|| < delta`` (range search in
    chunks; never N x N; exact up to 50,000 items, a FAISS IVF index above, which
    may miss a few edges: see ``_clustering.radius_graph``), marks everything within ``delta`` of a labeled item as
    covered, then repeatedly picks the unlabeled item whose ball holds the most
    uncovered items. When everything is covered the rest is random.

    Args:
        embeddings: ``(N, d)`` self-supervised features (e.g. SimCLR/DINO).
        delta: ball radius; default: estimated as the largest radius whose balls are
            ``purity``-pure with respect to ``n_clusters`` k-means pseudo-labels (the
            paper's rule, with k-means clusters standing in for classes).
        normalize: L2-normalise rows first (the paper uses normalised features).
        max_edges: refuse graphs larger than this (pass a smaller ``delta``).

    Cost: graph O(N^2 d) exact range search up to 50,000 items, about O(N^1.5 d) above
    (IVF), with O(#edges) memory; then O(#edges + N k).
    Yehuda, Dekel, Hacohen & Weinshall, "Active Learning Through a Covering Lens",
    NeurIPS 2022.
    """
    x, kk, mask = _prepare(embeddings, k, rng, labeled)
    check_fraction(purity, "purity", low_open=True)
    check_positive_int(n_clusters, "n_clusters")
    check_positive_int(max_edges, "max_edges")
    xf = l2_normalize(x) if normalize else np.ascontiguousarray(x, dtype=np.float32)
    n = xf.shape[0]
    kk = min(kk, int((~mask).sum()))
    if delta is None:
        delta = estimate_delta(xf, purity=purity, n_clusters=n_clusters, rng=rng) if n > 1 else 1.0
        delta = max(delta, 1e-6)
    else:
        delta = check_positive_float(delta, "delta")
    try:
        indptr, indices = radius_graph(xf, delta, max_edges=max_edges, rng=rng)
    except ValueError as e:
        raise InputError(
            f"probcover: delta={delta:.4g} gives more than max_edges={max_edges} edges ({e}); "
            "pass a smaller delta or raise max_edges."
        ) from None
    covered = np.zeros(n, dtype=bool)
    covered[gather_csr(indptr, indices, np.flatnonzero(mask))] = True
    # degree[i] = number of uncovered items in ball(i); the graph is symmetric
    src = np.repeat(np.arange(n), np.diff(indptr))
    degree = np.bincount(src[~covered[indices]], minlength=n).astype(np.int64)
    del src
    keys: NDArray[np.float64] = np.asarray(rng.random(n))
    avail = ~mask
    out: list[int] = []
    while len(out) < kk:
        cand = np.flatnonzero(avail)
        best = int(degree[cand].max())
        if best <= 0:
            rest = cand[rng.permutation(cand.size)]
            out.extend(int(r) for r in rest[: kk - len(out)])
            break
        ties = cand[degree[cand] == best]
        c = int(ties[np.argmin(keys[ties])])
        out.append(c)
        avail[c] = False
        nb = gather_csr(indptr, indices, np.array([c], dtype=np.int64))
        new = nb[~covered[nb]]
        covered[new] = True
        np.subtract.at(degree, gather_csr(indptr, indices, new), 1)
    return np.asarray(out, dtype=np.int64)


# ----------------------------------------------------------------------------- outlier
def outlier_scores(embeddings: Any, reference: Any) -> NDArray[np.float64]:
    """Model-based outlier score: ``1 - mean_j F_j(x_ij)``, where ``F_j`` is the
    empirical CDF of activation ``j`` over the reference items (mid-rank for ties).

    Items whose activations are low compared with the reference (e.g. labeled)
    items score high. ``embeddings: (N, d)``, ``reference: (N,)`` bool -> ``(N,)`` in [0, 1].
    Munro, Human-in-the-Loop Machine Learning (Manning, 2021), section 4.2
    (model-based outliers). Cost O(N d log L).
    """
    x = check_embeddings(embeddings)
    ref = np.asarray(reference, dtype=bool)
    r = np.ascontiguousarray(np.sort(x[ref], axis=0).T)  # (d, L), each activation's reference values sorted
    xt = np.ascontiguousarray(x.T)  # (d, N): contiguous rows for searchsorted
    n_ref = r.shape[1]
    total = np.zeros(x.shape[0], dtype=np.float64)
    for j in range(x.shape[1]):
        total += np.searchsorted(r[j], xt[j], side="left")
        total += np.searchsorted(r[j], xt[j], side="right")
    total *= 0.5
    return 1.0 - total / (n_ref * x.shape[1])


@register("outlier", requires={"embeddings"}, paper="Munro, Human-in-the-Loop Machine Learning, 2021, sec. 4.2")
def outlier(
    embeddings: Any, k: int, *, rng: np.random.Generator, labeled: Any = None, reference: Any = None
) -> IntArray:
    """Model-based outliers: items whose activations are least like the labeled items'.

    Args:
        embeddings: ``(N, d)`` model activations (penultimate layer).
        reference: optional ``(N,)`` bool mask of the items to compare against
            (default: the labeled items; with none labeled, the whole pool).

    See :func:`outlier_scores`. Munro (2021), section 4.2.
    """
    x, kk, mask = _prepare(embeddings, k, rng, labeled)
    if reference is None:
        ref = mask if mask.any() else np.ones(x.shape[0], dtype=bool)
    else:
        ref = np.asarray(reference)
        if ref.dtype != np.bool_ or ref.shape != (x.shape[0],) or not ref.any():
            raise InputError(f"reference must be a non-empty boolean mask of shape ({x.shape[0]},).")
    return _top_k(outlier_scores(x, ref), kk, rng, mask)


# ----------------------------------------------------------------------------- proximity
@register("proximity", requires={"embeddings"}, paper="Active-Labeler (SpaceML, 2021): iterative proximity")
def proximity(
    embeddings: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    positives: Any = None,
    scores: Any = None,
    step: int | None = None,
    spread: float = 0.3,
) -> IntArray:
    """Iterative proximity sampling: grow a reference set by repeatedly taking the
    unlabeled items nearest its centroid (optionally added to uncertainty scores).

    Definition (after the Active-Labeler seed): the reference set starts as
    ``positives`` (e.g. the labeled items of a class being searched for; default the
    labeled items; with none, the whole pool). Each iteration computes the centroid of
    the reference embeddings and every candidate's distance to it, maps the distance
    linearly to ``[+spread, -spread]`` (nearest = ``+spread``), adds ``scores`` when
    given, takes the ``step`` best candidates and adds them to the reference set.
    Useful for finding more examples like a few known positives (rare classes).

    Args:
        embeddings: ``(N, d)`` features.
        positives: ``(N,)`` bool mask of the initial reference items.
        scores: optional ``(N,)`` uncertainty scores to combine with proximity.
        step: items per iteration (default ``ceil(k / 10)``).
        spread: half-width of the proximity term (seed value 0.3).

    Cost O(N d) per iteration.
    """
    x, kk, mask = _prepare(embeddings, k, rng, labeled)
    n = x.shape[0]
    spread = check_positive_float(spread, "spread")
    base = np.zeros(n) if scores is None else check_scores(scores, n).astype(np.float64)
    if positives is None:
        ref = mask.copy()
    else:
        ref = np.asarray(positives)
        if ref.dtype != np.bool_ or ref.shape != (n,):
            raise InputError(f"positives must be a boolean mask of shape ({n},).")
        ref = ref.copy()
    xf = np.ascontiguousarray(x, dtype=np.float32)
    sq = np.einsum("ij,ij->i", xf, xf, dtype=np.float64)
    if ref.any():
        ref_sum, ref_n = xf[ref].sum(axis=0, dtype=np.float64), int(ref.sum())
    else:
        ref_sum, ref_n = xf.sum(axis=0, dtype=np.float64), n
    kk = min(kk, int((~mask).sum()))
    st = max(1, -(-kk // 10)) if step is None else check_positive_int(step, "step")
    taken = mask.copy()
    out: list[IntArray] = []
    got = 0
    while got < kk:
        cand = np.flatnonzero(~taken)
        centroid = ref_sum / ref_n
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one matrix-vector product, no (N, d) temporary
        d2 = sq - 2.0 * (xf @ centroid.astype(np.float32)).astype(np.float64) + float(centroid @ centroid)
        dist = np.sqrt(np.maximum(d2[cand], 0.0))
        span = dist.max() - dist.min()
        prox = spread - 2.0 * spread * (dist - dist.min()) / span if span > 0 else np.zeros(cand.size)
        full = np.zeros(n)
        full[cand] = base[cand] + prox
        pick = _top_k(full, min(st, kk - got), rng, taken)
        out.append(pick)
        got += pick.size
        taken[pick] = True
        ref_sum = ref_sum + xf[pick].sum(axis=0, dtype=np.float64)
        ref_n += pick.size
    return np.concatenate(out).astype(np.int64)
