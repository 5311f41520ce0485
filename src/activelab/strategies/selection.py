"""Selecting from scores: the one shared ``top_k`` with a seeded random tie-break.

Scoring functions map inputs to a ``(N,)`` score, higher = more informative;
``top_k`` turns any score vector into positions. Keeping the two apart is what lets
hybrids compose (score with one strategy, select with another).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_k, check_labeled, check_rng, check_scores

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.floating[Any]]
BoolArray = NDArray[np.bool_]


def _order(values: FloatArray, keys: NDArray[np.float64]) -> IntArray:
    """Positions of ``values`` sorted descending, ties by ascending random ``keys``."""
    return np.lexsort((keys, -values)).astype(np.int64)


def top_k(scores: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Positions of the ``k`` highest unlabeled scores, highest first.

    Args:
        scores: ``(N,)`` finite floats, higher = more informative.
        k: how many positions to return (``>= 1``); ``k >= #unlabeled`` returns every
            unlabeled position, still ordered.
        rng: breaks ties between equal scores reproducibly (same seed, same order).
        labeled: ``(N,)`` bool mask; these positions are never returned.

    Returns:
        ``(min(k, #unlabeled),)`` int64 positions into ``scores``, unique.

    Cost: O(N) to find the candidates plus O(k log k) to order them.
    """
    check_rng(rng)
    k = check_k(k)
    arr = np.asarray(scores)
    s = check_scores(arr, arr.shape[0] if arr.ndim == 1 else -1)  # ndim is checked before length
    mask = check_labeled(labeled, s.shape[0])
    return _top_k(s, k, rng, mask)


def _top_k(scores: FloatArray, k: int, rng: np.random.Generator, labeled: BoolArray) -> IntArray:
    """``top_k`` without validation (inputs already checked)."""
    n = scores.shape[0]
    keys: NDArray[np.float64] = np.asarray(
        rng.random(n)
    )  # drawn for every item so results do not depend on how ties fall
    cand = np.flatnonzero(~labeled) if labeled.any() else np.arange(n)
    if k >= cand.size:
        return cand[_order(scores[cand], keys[cand])]
    s = scores[cand]
    # threshold = k-th largest score; everything above it is in, ties at it are drawn by key
    kth = np.partition(s, s.size - k)[s.size - k]
    above = np.flatnonzero(s > kth)
    tied = np.flatnonzero(s == kth)
    need = k - above.size
    if need < tied.size:
        tied = tied[np.argsort(keys[cand[tied]], kind="stable")[:need]]
    chosen = cand[np.concatenate([above, tied])]
    return chosen[_order(scores[chosen], keys[chosen])]


def unlabeled_positions(labeled: BoolArray) -> IntArray:
    """``(n_unlabeled,)`` int64 positions where ``labeled`` is False."""
    return np.flatnonzero(~labeled).astype(np.int64)


def gumbel_top_k(log_weights: FloatArray, k: int, rng: np.random.Generator, labeled: BoolArray) -> IntArray:
    """Sample ``k`` positions without replacement with probability proportional to
    ``exp(log_weights)`` (Gumbel-top-k trick; Kool et al., ICML 2019).

    ``-inf`` log-weights are drawn last (in random order).
    """
    g = rng.gumbel(size=log_weights.shape[0])
    with np.errstate(invalid="ignore"):
        keys = np.asarray(log_weights, dtype=np.float64) + g
    bad = ~np.isfinite(keys)
    if bad.any():
        floor = float(keys[~bad].min()) if (~bad).any() else 0.0
        keys[bad] = floor - 1.0 - rng.random(int(bad.sum()))
    return _top_k(keys, k, rng, labeled)
