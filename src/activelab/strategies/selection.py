"""Selecting from scores: the one shared ``top_k`` with a seeded random tie-break, and
:func:`select_budget`, which spends a budget in cost units (boxes, pixels) instead of items.

Scoring functions map inputs to a ``(N,)`` score, higher = more informative;
``top_k`` turns any score vector into positions. Keeping the two apart is what lets
hybrids compose (score with one strategy, select with another).
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from activelab.exceptions import InputError

from ._validation import check_k, check_labeled, check_rng, check_scores
from .registry import get_strategy, region_pool, select

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


def select_budget(
    name: str, budget: Any, costs: Any, *, rng: np.random.Generator, labeled: Any, **arrays_and_params: Any
) -> IntArray:
    """Select by a budget in cost units (e.g. boxes to draw, pixels to paint) rather than a number of items.

    Asks strategy ``name`` for a ranking of ``min(floor(budget), #unlabeled)`` items (each
    costs at least 1, so no more can fit) and keeps, in rank order, every item whose cost
    still fits in what is left of the budget: an item too costly for the remainder is
    skipped and a later, cheaper one taken. A crowded image thus spends the budget it
    costs instead of counting as one image.

    The items are the strategy's unit (:attr:`~.registry.StrategySpec.unit`): pool images,
    or for a region strategy the pool's regions, whose mask is ``region_labeled`` (in
    ``arrays_and_params``) and whose costs are typically ``region_pixels``.

    Args:
        name: a registered strategy (see :func:`~.registry.select`).
        budget: cost units to spend this round (``>= 1``).
        costs: ``(N,)`` finite cost of labeling each pool image, each ``>= 1`` (the
            detection task gives predicted boxes with score >= 0.5, at least 1; the
            segmentation task gives pixels); ``(R,)`` per region for a region strategy.
        rng: passed to the strategy.
        labeled: ``(N,)`` bool mask of labeled images (required for an image strategy:
            it gives N; optional for a region strategy, where ``region_labeled`` gives R).
        **arrays_and_params: the strategy's arrays and parameters, as for ``select``.

    Returns:
        int64 positions (images or regions), best first, whose costs sum to at most ``budget``.

    Raises:
        InputError: a bad budget or costs, or a budget smaller than every ranked item's cost.
    """
    if isinstance(budget, bool) or not isinstance(budget, numbers.Real) or not np.isfinite(float(budget)):
        raise InputError(f"budget must be a finite number of cost units (e.g. boxes), got {budget!r}.")
    if float(budget) < 1.0:
        raise InputError(f"budget must be >= 1 (every image costs at least 1), got {budget}; raise the budget.")
    item = "region" if get_strategy(name).unit == "regions" else "image"
    if item == "region":
        n, mask = region_pool(arrays_and_params.get("region_labeled"), labeled)
    else:
        if labeled is None:
            raise InputError("select_budget needs labeled=: the (N,) bool mask of labeled pool images (it gives N).")
        n = int(np.shape(labeled)[0]) if np.ndim(labeled) == 1 else -1
        mask = check_labeled(labeled, n)
    cost = _check_costs(costs, n, item)
    k = min(int(np.floor(float(budget))), int((~mask).sum()))
    ranking = select(name, k, rng=rng, labeled=labeled, **arrays_and_params)
    kept: list[int] = []
    left = float(budget)
    for pos in ranking.tolist():
        if cost[pos] <= left:
            kept.append(pos)
            left -= cost[pos]
    if not kept:
        cheapest = float(cost[ranking].min())
        raise InputError(
            f"a budget of {budget} cost units fits none of the {ranking.size} {item}s {name!r} ranked "
            f"(the cheapest costs {cheapest:g}); raise the budget or count it in {item}s."
        )
    return np.asarray(kept, dtype=np.int64)


def _check_costs(costs: Any, n: int, item: str) -> NDArray[np.float64]:
    """``(n,)`` finite costs, each ``>= 1``; the messages name the ``item`` (image or region)."""
    arr = np.asarray(costs)
    if arr.ndim == 1 and arr.shape[0] != n:
        raise InputError(f"costs has {arr.shape[0]} entries but the pool has {n} {item}s; pass one cost per {item}.")
    cost = check_scores(arr, n, name="costs").astype(np.float64)
    if cost.min() < 1.0:
        i = int(np.argmin(cost))
        raise InputError(f"costs must be >= 1 for every {item}; {item} {i} costs {cost[i]:.6g}. Use max(1, cost).")
    return cost
