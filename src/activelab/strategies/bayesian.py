"""Bayesian / committee strategies on stacked stochastic predictions.

``mc_probs: (T, N, C)`` holds T stochastic predictions per item: MC-dropout forward
passes (Gal, Islam & Ghahramani, ICML 2017) or the members of an ensemble
(Beluch et al., CVPR 2018). Scores are ``(N,)``, higher = more informative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import check_k, check_labeled, check_mc_probs, check_positive_float, check_rng
from .registry import register
from .selection import _top_k, gumbel_top_k

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
_CHUNK_ELEMS = 1 << 22


def _itemwise(mc: FloatArray, fn: Callable[[FloatArray], NDArray[np.float64]]) -> NDArray[np.float64]:
    """Apply ``fn`` ((T, n, C) -> (n,)) over chunks of items."""
    t, n, c = mc.shape
    step = max(1, _CHUNK_ELEMS // (t * c))
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, step):
        out[s : s + step] = fn(mc[:, s : s + step])
    return out


def _xlogx(x: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(x > 0, x, 1.0)), 0.0)


def bald_scores(mc_probs: Any) -> NDArray[np.float64]:
    """Mutual information between the prediction and the model parameters.

    ``BALD = H[mean_t p_t] - mean_t H[p_t]``: high when the stochastic predictions are
    each confident but disagree with one another. ``mc_probs: (T, N, C)`` -> ``(N,)``
    in nats, ``>= 0`` (clipped at 0 against rounding).

    Houlsby, Huszar, Ghahramani & Lengyel, "Bayesian Active Learning for
    Classification and Preference Learning", arXiv:1112.5745 (2011); Gal, Islam &
    Ghahramani, ICML 2017.
    """
    mc = check_mc_probs(mc_probs)

    def f(x: FloatArray) -> NDArray[np.float64]:
        x64 = np.clip(x.astype(np.float64), 0.0, None)  # (T, n, C)
        mean = x64.mean(axis=0)  # (n, C)
        h_mean = -_xlogx(mean).sum(axis=1)  # (n,) entropy of the mean
        mean_h = -_xlogx(x64).sum(axis=2).mean(axis=0)  # (n,) mean entropy
        return np.clip(h_mean - mean_h, 0.0, None)

    return _itemwise(mc, f)


def variation_ratio_scores(mc_probs: Any) -> NDArray[np.float64]:
    """``1 - f_mode / T``: the fraction of the T predictions that disagree with the
    most frequent predicted class. ``mc_probs: (T, N, C)`` -> ``(N,)`` in ``[0, 1 - 1/C]``.

    Freeman, Elementary Applied Statistics (1965); Gal, Islam & Ghahramani, ICML 2017.
    """
    mc = check_mc_probs(mc_probs)
    t, _, c = mc.shape

    def f(x: FloatArray) -> NDArray[np.float64]:
        votes = x.argmax(axis=2)  # (T, n)
        n = votes.shape[1]
        flat = (votes + c * np.arange(n)[None, :]).ravel()
        counts = np.bincount(flat, minlength=n * c).reshape(n, c)  # (n, C)
        return 1.0 - counts.max(axis=1) / t

    return _itemwise(mc, f)


def mean_std_scores(mc_probs: Any) -> NDArray[np.float64]:
    """Mean over classes of the standard deviation over the T predictions of ``p_c``.

    ``mc_probs: (T, N, C)`` -> ``(N,)``. Kampffmeyer, Salberg & Jenssen, CVPR
    Workshops 2016; Kendall, Badrinarayanan & Cipolla, BMVC 2017.
    """
    mc = check_mc_probs(mc_probs)
    return _itemwise(mc, lambda x: x.astype(np.float64).std(axis=0).mean(axis=1))


def _select(scores: NDArray[np.float64], k: int, rng: np.random.Generator, labeled: Any) -> IntArray:
    mask = check_labeled(labeled, scores.shape[0])
    return _top_k(scores, k, rng, mask)


@register("bald", requires={"mc_probs"}, paper="Houlsby et al., arXiv:1112.5745 (2011); Gal et al., ICML 2017")
def bald(mc_probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Pick the items with the highest BALD mutual information (top-k, not batch-aware).

    ``mc_probs: (T, N, C)``; returns positions, highest first. See :func:`bald_scores`.
    """
    check_rng(rng)
    k = check_k(k)
    return _select(bald_scores(mc_probs), k, rng, labeled)


@register("variation_ratios", requires={"mc_probs"}, paper="Freeman 1965; Gal et al., ICML 2017")
def variation_ratios(mc_probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Pick the items whose stochastic predictions disagree most with their mode.

    ``mc_probs: (T, N, C)``; ties (common: the score takes T+1 values) are broken by ``rng``.
    """
    check_rng(rng)
    k = check_k(k)
    return _select(variation_ratio_scores(mc_probs), k, rng, labeled)


@register("mean_std", requires={"mc_probs"}, paper="Kampffmeyer et al., CVPR Workshops 2016")
def mean_std(mc_probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Pick the items with the largest mean per-class standard deviation across predictions.

    ``mc_probs: (T, N, C)``; returns positions, largest first.
    """
    check_rng(rng)
    k = check_k(k)
    return _select(mean_std_scores(mc_probs), k, rng, labeled)


@register(
    "power_bald",
    requires={"mc_probs"},
    paper="Kirsch et al., Stochastic Batch Acquisition, arXiv:2106.12059 (2021), TMLR 2023",
)
def power_bald(mc_probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None, beta: float = 1.0) -> IntArray:
    """Batch-aware BALD by stochastic sampling (PowerBALD).

    Draws ``k`` items without replacement with probability proportional to
    ``BALD_i ** beta`` (Gumbel-top-k on ``beta * log BALD_i``). Top-k BALD fills a batch
    with near-duplicates; sampling spreads it, matching BatchBALD's label efficiency
    at the cost of top-k. ``beta -> inf`` recovers top-k BALD; items with zero BALD
    come last.

    Args:
        mc_probs: ``(T, N, C)`` stacked stochastic predictions.
        beta: coldness of the sampling distribution (default 1, as in the paper).

    Returns positions in draw order. Cost O(T N C).
    """
    check_rng(rng)
    k = check_k(k)
    b = check_positive_float(beta, "beta")
    scores = bald_scores(mc_probs)
    mask = check_labeled(labeled, scores.shape[0])
    with np.errstate(divide="ignore"):
        logw = b * np.log(scores)
    return gumbel_top_k(logw, k, rng, mask)
