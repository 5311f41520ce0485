"""Fast greedy selection over squared euclidean distances, never building N x N.

Two sequential algorithms need ``min_{c in centres} ||x_i - x_c||^2`` for every item
after every pick: k-center greedy (core-set) takes the arg-max, k-means++ seeding
(BADGE) samples proportionally to it. A naive implementation does one pass over the
whole ``(N, d)`` matrix per pick (a matrix-vector product, memory bound).

Here each item keeps a *stale* upper bound ``d2[i]``, exact as of the last *refresh*.
Centres picked since then are held in a short list; a refresh folds them into
``d2`` with one chunked matrix-matrix product (``N x m`` at a time, O(N) memory),
which runs an order of magnitude faster per centre than ``m`` matrix-vector products.
Between refreshes,

* k-center greedy walks the items in decreasing stale order, computing exact values
  against the recent centres only, and stops once the best exact value beats the next
  stale bound (lazy greedy: the result is the exact arg-max);
* k-means++ draws from the stale distribution and accepts a draw ``i`` with
  probability ``exact_i / stale_i`` (rejection sampling: exact D^2 sampling).

Points are either dense ``X: (N, d)`` or *factored* gradient embeddings
``g_i = a_i (x) h_i`` with ``<g_i, g_j> = (a_i . a_j)(h_i . h_j)`` (BADGE), so the
``N x (C d)`` gradient matrix is never materialised. Time O(N k (d + C)) worst case,
memory O(N (d + C)) for the inputs plus O(N) work space.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

IntArray = NDArray[np.int64]
F32 = NDArray[np.float32]

_ROW_CHUNK = 16384  # rows per matrix-matrix block during a refresh
_REFRESH_EVERY = 64  # centres held before a refresh
_WALK_BLOCK = 256  # candidates examined at once in the lazy arg-max walk


class Points:
    """Points for squared euclidean distances: dense ``X`` or factored ``(A, H)``."""

    def __init__(self, x: Any, a: Any = None) -> None:
        self.x: F32 = np.ascontiguousarray(x, dtype=np.float32)
        self.a: F32 | None = None if a is None else np.ascontiguousarray(a, dtype=np.float32)
        self.n = int(self.x.shape[0])
        sq = np.einsum("ij,ij->i", self.x, self.x, dtype=np.float64)
        if self.a is not None:
            sq = sq * np.einsum("ij,ij->i", self.a, self.a, dtype=np.float64)
        self.sq: NDArray[np.float64] = sq

    def dist2(self, rows: Any, cols: IntArray) -> NDArray[np.float64]:
        """``(len(rows), len(cols))`` squared distances (rows: slice or positions)."""
        g = self.x[rows] @ self.x[cols].T
        if self.a is not None:
            g *= self.a[rows] @ self.a[cols].T
        d = self.sq[rows][:, None] + self.sq[cols][None, :] - 2.0 * g.astype(np.float64)
        return np.maximum(d, 0.0)

    def min_dist2_update(self, d2: NDArray[np.float64], centres: IntArray) -> None:
        """``d2 = min(d2, dist2(all, centres))`` in place, chunked over rows."""
        if centres.size == 0:
            return
        cx = self.x[centres].T.copy()  # (d, m)
        ca = None if self.a is None else self.a[centres].T.copy()
        csq = self.sq[centres]
        for s in range(0, self.n, _ROW_CHUNK):
            e = min(self.n, s + _ROW_CHUNK)
            g = self.x[s:e] @ cx  # (rows, m)
            if ca is not None and self.a is not None:
                g *= self.a[s:e] @ ca
            # min_c (sq_i + sq_c - 2 g_ic) = sq_i + min_c (sq_c - 2 g_ic)
            part = (csq[None, :] - 2.0 * g).min(axis=1)
            np.minimum(d2[s:e], np.maximum(self.sq[s:e] + part, 0.0), out=d2[s:e])


def kcenter_greedy(
    points: Points,
    k: int,
    *,
    candidates: NDArray[np.bool_],
    centres: IntArray,
    weights: NDArray[np.float64] | None,
    rng: np.random.Generator,
) -> IntArray:
    """Greedy k-center: repeatedly pick the candidate farthest from all centres.

    Args:
        points: the pool.
        k: picks to make (``<= candidates.sum()``).
        candidates: ``(N,)`` bool, items that may be picked.
        centres: positions already covered (e.g. labeled items).
        weights: optional ``(N,)`` non-negative weights; the pick maximises
            ``weights_i * distance_i`` (uncertainty-weighted core-set).
        rng: picks the first centre when there are no ``centres`` and no weights.

    Returns:
        ``(k,)`` positions in pick order. Ties go to the candidate met first in
        (stale-bound, position) order.
    """
    n = points.n
    d2 = np.full(n, np.inf)
    avail = candidates.copy()
    out: list[int] = []
    for s in range(0, centres.size, _REFRESH_EVERY):
        points.min_dist2_update(d2, centres[s : s + _REFRESH_EVERY])
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if centres.size == 0:
        pool = np.flatnonzero(avail)
        first = int(pool[np.argmax(w[pool])]) if w is not None else int(pool[rng.integers(pool.size)])
        out.append(first)
        avail[first] = False
        d2[first] = 0.0
        points.min_dist2_update(d2, np.array([first], dtype=np.int64))
    recent: list[int] = []

    def value(sq: NDArray[np.float64], idx: IntArray) -> NDArray[np.float64]:
        v = np.sqrt(sq)
        return v * w[idx] if w is not None else v

    def refresh() -> None:
        if recent:
            points.min_dist2_update(d2, np.asarray(recent, dtype=np.int64))
            recent.clear()

    while len(out) < k and avail.any():
        # (re)build the candidate list in decreasing stale-bound order
        pool = np.flatnonzero(avail)
        stale = value(d2[pool], pool)
        m = min(pool.size, max(4096, 4 * (k - len(out))))
        if m < pool.size:
            part = np.argpartition(-stale, m)
            top, next_bound = part[:m], float(stale[part[m]])
        else:
            top, next_bound = np.arange(pool.size), -np.inf
        top = top[np.lexsort((pool[top], -stale[top]))]
        cand, cstale = pool[top], stale[top]  # (m,) positions, stale-descending
        ex_d2 = d2[cand].copy()  # exact w.r.t. recent[:upto]
        upto = np.zeros(cand.size, dtype=np.int64)
        alive = np.ones(cand.size, dtype=bool)
        while len(out) < k:
            best_j, best_v, j, found = -1, -np.inf, 0, False
            while True:  # lazy arg-max walk, block by block
                end = min(cand.size, j + _WALK_BLOCK)
                blk = np.arange(j, end)[alive[j:end]]
                if blk.size:
                    lo = int(upto[blk].min())
                    if lo < len(recent):
                        dd = points.dist2(cand[blk], np.asarray(recent[lo:], dtype=np.int64))
                        ex_d2[blk] = np.minimum(ex_d2[blk], dd.min(axis=1))
                        upto[blk] = len(recent)
                    v = value(ex_d2[blk], cand[blk])
                    i = int(np.argmax(v))
                    if v[i] > best_v:
                        best_v, best_j = float(v[i]), int(blk[i])
                bound = float(cstale[end]) if end < cand.size else next_bound
                if best_j >= 0 and best_v >= bound:
                    found = True
                    break
                if end >= cand.size:
                    break
                j = end
            if not found:  # list exhausted: refresh and rebuild
                refresh()
                break
            c = int(cand[best_j])
            out.append(c)
            avail[c] = False
            alive[best_j] = False
            d2[c] = 0.0
            recent.append(c)
            if len(recent) >= _REFRESH_EVERY:
                refresh()
                break
    return np.asarray(out[:k], dtype=np.int64)


def kmeanspp_seeding(
    points: Points, k: int, *, candidates: NDArray[np.bool_], first: int, rng: np.random.Generator
) -> IntArray:
    """k-means++ seeding (Arthur & Vassilvitskii, SODA 2007) over ``candidates``.

    The first centre is ``first``; each next one is drawn with probability proportional
    to its squared distance to the nearest chosen centre. Once every remaining item
    is at distance 0 from a centre (duplicates), the rest are drawn uniformly.

    Returns ``(k,)`` positions in draw order.
    """
    n = points.n
    d2 = np.full(n, np.inf)
    avail = candidates.copy()
    out = [first]
    avail[first] = False
    points.min_dist2_update(d2, np.array([first], dtype=np.int64))
    recent: list[int] = []
    while len(out) < k:
        pool = np.flatnonzero(avail)
        w = d2[pool]
        cum = np.cumsum(w)
        total = float(cum[-1]) if cum.size else 0.0
        if total <= 0.0:
            rest = pool[rng.permutation(pool.size)]
            out.extend(int(r) for r in rest[: k - len(out)])
            break
        rejections = 0
        while len(out) < k and len(recent) < _REFRESH_EVERY and rejections < 64:
            j = int(np.searchsorted(cum, rng.random() * total, side="right"))
            j = min(j, pool.size - 1)
            i = int(pool[j])
            if not avail[i]:
                rejections += 1
                continue
            stale = float(d2[i])
            exact = stale
            if recent:
                exact = min(stale, float(points.dist2(np.array([i]), np.asarray(recent, dtype=np.int64)).min()))
            if rng.random() * stale < exact:
                out.append(i)
                avail[i] = False
                recent.append(i)
                rejections = 0
            else:
                rejections += 1
        if recent:
            points.min_dist2_update(d2, np.asarray(recent, dtype=np.int64))
            recent = []
    return np.asarray(out[:k], dtype=np.int64)
