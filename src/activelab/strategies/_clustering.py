"""k-means and nearest-neighbour helpers (faiss when installed, else scikit-learn / numpy)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

try:  # faiss is a dependency, but keep the numpy paths working without it
    import faiss

    HAVE_FAISS = True
except ImportError:  # pragma: no cover - exercised only where faiss is missing
    HAVE_FAISS = False

F32 = NDArray[np.float32]


def kmeans(
    x: Any, n_clusters: int, *, rng: np.random.Generator, niter: int = 20, backend: str = "auto"
) -> tuple[NDArray[np.int64], NDArray[np.float64], F32]:
    """Lloyd k-means.

    Args:
        x: ``(n, d)`` points.
        n_clusters: ``1 <= n_clusters <= n``.
        rng: seeds the initialisation.
        backend: ``"faiss"``, ``"sklearn"`` or ``"auto"`` (faiss when installed).

    Returns:
        ``(assign (n,), dist2 (n,) to own centre, centres (n_clusters, d))``.
    """
    xf = np.ascontiguousarray(x, dtype=np.float32)
    n, d = xf.shape
    n_clusters = int(min(max(1, n_clusters), n))
    seed = int(rng.integers(2**31 - 1))
    use_faiss = backend == "faiss" or (backend == "auto" and HAVE_FAISS)
    if n_clusters == n:
        return np.arange(n, dtype=np.int64), np.zeros(n), xf.copy()
    if use_faiss and HAVE_FAISS:
        km = faiss.Kmeans(
            d, n_clusters, niter=niter, seed=seed, verbose=False, spherical=False, min_points_per_centroid=1
        )
        km.train(xf)
        dist, assign = km.index.search(xf, 1)
        centroids: F32 = np.asarray(km.centroids, dtype=np.float32)
        return assign[:, 0].astype(np.int64), np.maximum(dist[:, 0].astype(np.float64), 0.0), centroids
    from sklearn.cluster import KMeans

    km2 = KMeans(n_clusters=n_clusters, n_init=1, max_iter=max(niter, 1), random_state=seed)
    assign2 = km2.fit_predict(xf).astype(np.int64)
    centres = km2.cluster_centers_.astype(np.float32)
    diff = xf - centres[assign2]
    return assign2, np.einsum("ij,ij->i", diff, diff, dtype=np.float64), centres


def knn_dist(queries: Any, reference: Any, k: int) -> NDArray[np.float64]:
    """``(n_queries, k)`` euclidean distances to the ``k`` nearest reference points, ascending."""
    q = np.ascontiguousarray(queries, dtype=np.float32)
    r = np.ascontiguousarray(reference, dtype=np.float32)
    k = int(min(k, r.shape[0]))
    if HAVE_FAISS:
        index = faiss.IndexFlatL2(r.shape[1])
        index.add(r)
        out = np.empty((q.shape[0], k), dtype=np.float64)
        for s in range(0, q.shape[0], 8192):
            dist, _ = index.search(q[s : s + 8192], k)
            out[s : s + 8192] = np.sqrt(np.maximum(dist, 0.0))
        return out
    rsq = np.einsum("ij,ij->i", r, r)
    out = np.empty((q.shape[0], k), dtype=np.float64)
    step = max(1, (1 << 22) // max(1, r.shape[0]))
    for s in range(0, q.shape[0], step):
        qs = q[s : s + step]
        d2 = np.einsum("ij,ij->i", qs, qs)[:, None] + rsq[None, :] - 2.0 * (qs @ r.T)
        part = np.partition(d2, k - 1, axis=1)[:, :k]
        out[s : s + step] = np.sqrt(np.maximum(np.sort(part, axis=1), 0.0))
    return out


#: query rows per range-search block
_RANGE_CHUNK = 4096
#: above this many points ``radius_graph`` uses an approximate (IVF) index: an exact
#: range search is O(N^2 d) time (minutes at 100k, hours at 1M on a CPU)
EXACT_RANGE_MAX = 50_000


def radius_graph(
    x: Any, radius: float, *, max_edges: int, rng: np.random.Generator | None = None, nprobe: int = 8
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Symmetric graph of pairs within euclidean ``radius`` (self-loops included), CSR form.

    Built by range search in query chunks; the N x N distance matrix is never formed
    (numpy path: ``chunk x N`` blocks of at most 4M entries). Up to ``EXACT_RANGE_MAX``
    points the search is exact (FAISS ``IndexFlatL2``); above, FAISS
    ``IndexIVFFlat`` with ``2 sqrt(N)`` lists searching ``nprobe`` of them (about
    ``nprobe / (2 sqrt N)`` of the pool per query), trained on a sample drawn by
    ``rng``; it may miss pairs that fall in different lists but never adds one, and
    the result is made symmetric (an edge found from either end is kept).
    Returns ``(indptr (n+1,), indices (n_edges,))``. Raises ``ValueError`` when the
    graph would exceed ``max_edges`` edges.
    """
    xf = np.ascontiguousarray(x, dtype=np.float32)
    n = xf.shape[0]
    r2 = float(radius) ** 2
    if HAVE_FAISS and n > EXACT_RANGE_MAX:
        return _approx_radius_graph(xf, r2, max_edges=max_edges, rng=rng or np.random.default_rng(0), nprobe=nprobe)
    counts = np.zeros(n, dtype=np.int64)
    parts: list[NDArray[np.int64]] = []
    total = 0
    chunk = _RANGE_CHUNK if HAVE_FAISS else max(1, min(_RANGE_CHUNK, (1 << 22) // max(1, n)))
    if HAVE_FAISS:
        index = faiss.IndexFlatL2(xf.shape[1])
        index.add(xf)
    xsq = np.einsum("ij,ij->i", xf, xf)
    for s in range(0, n, chunk):
        q = xf[s : s + chunk]
        if HAVE_FAISS:
            lims, _, idx = index.range_search(q, r2)
            counts[s : s + q.shape[0]] = np.diff(lims)
            nb = idx.astype(np.int64)
        else:
            d2 = xsq[s : s + chunk, None] + xsq[None, :] - 2.0 * (q @ xf.T)
            rows, cols = np.nonzero(d2 < r2)
            counts[s : s + q.shape[0]] = np.bincount(rows, minlength=q.shape[0])
            nb = cols.astype(np.int64)
        total += nb.size
        if total > max_edges:
            raise ValueError(f"{total}+ edges")
        # faiss returns each query's neighbours contiguously, in query order
        parts.append(nb)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    return indptr, indices


def _approx_radius_graph(
    xf: F32, r2: float, *, max_edges: int, rng: np.random.Generator, nprobe: int
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """``radius_graph`` on an IVF index (large pools); see there."""
    n, d = xf.shape
    nlist = int(max(1, min(65_536, 2 * np.sqrt(n), n // 40)))  # >= 40 training points per list
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist, faiss.METRIC_L2)
    train = xf[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))]
    index.cp.seed = int(rng.integers(2**31 - 1))
    index.train(train)
    index.add(xf)
    index.nprobe = int(min(nlist, max(1, nprobe)))
    keys: list[NDArray[np.int64]] = [np.arange(n, dtype=np.int64) * (n + 1)]  # self-loops
    total = n
    for s in range(0, n, _RANGE_CHUNK):
        q = xf[s : s + _RANGE_CHUNK]
        lims, _, idx = index.range_search(q, r2)
        src = np.repeat(np.arange(s, s + q.shape[0], dtype=np.int64), np.diff(lims).astype(np.int64))
        dst = idx.astype(np.int64)
        off = src != dst
        src, dst = src[off], dst[off]
        total += 2 * src.size
        if total > max_edges:
            raise ValueError(f"{total}+ edges")
        keys.append(src * n + dst)
        keys.append(dst * n + src)  # symmetric: found from either end
    flat = np.unique(np.concatenate(keys))  # sorted by (src, dst), duplicates dropped
    del keys
    src, indices = np.divmod(flat, n)
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(src, minlength=n), out=indptr[1:])
    return indptr, indices.astype(np.int64)


def gather_csr(indptr: NDArray[np.int64], indices: NDArray[np.int64], rows: NDArray[np.int64]) -> NDArray[np.int64]:
    """Concatenated neighbour lists of ``rows``."""
    if rows.size == 0:
        return np.zeros(0, dtype=np.int64)
    starts, ends = indptr[rows], indptr[rows + 1]
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return indices[np.arange(total) + offsets]
