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


def kmeans(x: Any, n_clusters: int, *, rng: np.random.Generator, niter: int = 20,
           backend: str = "auto") -> tuple[NDArray[np.int64], NDArray[np.float64], F32]:
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
        km = faiss.Kmeans(d, n_clusters, niter=niter, seed=seed, verbose=False, spherical=False,
                          min_points_per_centroid=1)
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
            dist, _ = index.search(q[s:s + 8192], k)
            out[s:s + 8192] = np.sqrt(np.maximum(dist, 0.0))
        return out
    rsq = np.einsum("ij,ij->i", r, r)
    out = np.empty((q.shape[0], k), dtype=np.float64)
    step = max(1, (1 << 22) // max(1, r.shape[0]))
    for s in range(0, q.shape[0], step):
        qs = q[s:s + step]
        d2 = np.einsum("ij,ij->i", qs, qs)[:, None] + rsq[None, :] - 2.0 * (qs @ r.T)
        part = np.partition(d2, k - 1, axis=1)[:, :k]
        out[s:s + step] = np.sqrt(np.maximum(np.sort(part, axis=1), 0.0))
    return out


def radius_graph(x: Any, radius: float, *, max_edges: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Symmetric graph of pairs within euclidean ``radius`` (self-loops included), CSR form.

    Built by range search in query chunks; the N x N distance matrix is never formed.
    Returns ``(indptr (n+1,), indices (n_edges,))``. Raises ``ValueError`` when the
    graph would exceed ``max_edges`` edges.
    """
    xf = np.ascontiguousarray(x, dtype=np.float32)
    n = xf.shape[0]
    r2 = float(radius) ** 2
    counts = np.zeros(n, dtype=np.int64)
    parts: list[NDArray[np.int64]] = []
    total = 0
    chunk = 4096
    if HAVE_FAISS:
        index = faiss.IndexFlatL2(xf.shape[1])
        index.add(xf)
    xsq = np.einsum("ij,ij->i", xf, xf)
    for s in range(0, n, chunk):
        q = xf[s:s + chunk]
        if HAVE_FAISS:
            lims, _, idx = index.range_search(q, r2)
            counts[s:s + q.shape[0]] = np.diff(lims)
            nb = idx.astype(np.int64)
        else:
            d2 = xsq[s:s + chunk, None] + xsq[None, :] - 2.0 * (q @ xf.T)
            rows, cols = np.nonzero(d2 < r2)
            counts[s:s + q.shape[0]] = np.bincount(rows, minlength=q.shape[0])
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
