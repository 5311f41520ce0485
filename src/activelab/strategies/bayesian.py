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

from ._validation import check_k, check_labeled, check_mc_probs, check_positive_float, check_positive_int, check_rng
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


# ----------------------------------------------------------------------------- BatchBALD
def _entropy_rows(q: NDArray[np.float64]) -> NDArray[np.float64]:
    """Entropy (nats) over the last axis."""
    return -_xlogx(q).sum(axis=-1)


class _JointConfigs:
    """The label configurations of a batch, for BatchBALD's joint entropy (Kirsch et al. 2019, sec. 3).

    Holds ``m`` configurations ``y_{1:n}`` of the batch chosen so far, each with a weight
    ``w_m`` and the normalised per-parameter-sample likelihoods ``P[t, m] =
    prod_i p_t(y_i) / sum_t' prod_i p_t'(y_i)`` (``(T, m)``; normalising per column keeps
    long batches from underflowing). Exact while the batch has at most ``n_configs``
    configurations (all ``C^n`` of them, ``w_m = p(y_{1:n})``); beyond that, ``n_configs``
    configurations sampled from the joint predictive with ``w_m = 1 / n_configs``. Either
    way the chain rule gives ``H(y_{1:n}, y) = H(y_{1:n}) + sum_m w_m H(y | y_{1:n} = m)``.
    """

    def __init__(self, n_samples: int, n_configs: int, rng: np.random.Generator) -> None:
        self.p = np.full((n_samples, 1), 1.0 / n_samples)
        self.w = np.ones(1)
        self.exact = True
        self.n_configs = n_configs
        self.rng = rng

    def _conditional(self, item: NDArray[np.float64]) -> NDArray[np.float64]:
        """``p(y = c | config m)`` for one item's ``(T, C)`` predictions: ``(m, C)``."""
        return self.p.T @ item

    def gain(self, mc: NDArray[np.float64]) -> NDArray[np.float64]:
        """``H(y_{1:n}, y_j) - H(y_{1:n})`` for each candidate of ``mc: (T, J, C)`` -> ``(J,)``."""
        t, j, c = mc.shape
        m = self.p.shape[1]
        out = np.empty(j)
        step = max(1, _CHUNK_ELEMS // (m * c))
        for s in range(0, j, step):
            q = (self.p.T @ mc[:, s : s + step].reshape(t, -1)).reshape(m, -1, c)  # (m, J', C)
            out[s : s + step] = self.w @ _entropy_rows(q)
        return out

    def add(self, item: NDArray[np.float64]) -> None:
        """Extend every configuration with the item of ``(T, C)`` predictions ``item``."""
        q = self._conditional(item)  # (m, C)
        t, c = item.shape
        if self.exact:
            w = (self.w[:, None] * q).reshape(-1)
            p = (self.p[:, :, None] * item[:, None, :]).reshape(t, -1)
            keep = np.flatnonzero(w > 0)
            w, p = w[keep], p[:, keep]
            if w.size > self.n_configs:
                pick = self.rng.choice(w.size, size=self.n_configs, replace=True, p=w / w.sum())
                w, p = np.full(self.n_configs, 1.0 / self.n_configs), p[:, pick]
                self.exact = False
        else:
            u = self.rng.random((q.shape[0], 1))
            y = np.minimum((np.cumsum(q, axis=1) / q.sum(axis=1, keepdims=True) < u).sum(axis=1), c - 1)
            w, p = self.w, self.p * item[:, y]
        self.w, self.p = w, p / p.sum(axis=0, keepdims=True)


def joint_entropy(
    mc_probs: Any, items: Any, *, n_configs: int = 1 << 30, rng: np.random.Generator | None = None
) -> float:
    """``H(y_{i_1}, ..., y_{i_n})`` in nats under the committee's joint predictive
    ``p(y_{1:n}) = mean_t prod_i p_t(y_i | x_i)``.

    Exact (enumerating the ``C^n`` label configurations) while they number at most
    ``n_configs``, else a Monte-Carlo estimate from ``n_configs`` sampled configurations
    (``rng`` required then). ``mc_probs: (T, N, C)``; ``items``: positions of the batch.
    Kirsch, van Amersfoort & Gal, NeurIPS 2019, eq. 9-12.
    """
    mc = np.clip(check_mc_probs(mc_probs).astype(np.float64), 0.0, None)
    n_cfg = check_positive_int(n_configs, "n_configs")
    state = _JointConfigs(mc.shape[0], n_cfg, rng if rng is not None else np.random.default_rng(0))
    h = 0.0
    for i in np.asarray(items, dtype=np.int64).reshape(-1):
        h += float(state.gain(mc[:, [i]])[0])
        state.add(mc[:, i])
    return h


@register("batchbald", requires={"mc_probs"}, paper="Kirsch, van Amersfoort & Gal, NeurIPS 2019")
def batchbald(
    mc_probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None, n_configs: int = 1000
) -> IntArray:
    """BatchBALD: greedily grow the batch that maximises the joint mutual information
    ``I(y_1, ..., y_k; w) = H(y_{1:k}) - sum_i E_w H(y_i | w)``.

    Each step adds the unlabeled item with the largest gain ``H(y_{1:n}, y_j) - H(y_{1:n})
    - E_w H(y_j | w)``; the first pick is BALD's, and an item nearly duplicating one already
    in the batch gains almost nothing (top-k BALD takes both). The joint entropy is exact
    while the batch's ``C^n`` label configurations number at most ``n_configs``, then
    estimated from ``n_configs`` configurations sampled with ``rng`` (the paper's
    Monte-Carlo estimator, eq. 12); the greedy is a (1 - 1/e)-approximation (submodularity).

    Args:
        mc_probs: ``(T, N, C)`` stacked stochastic predictions.
        n_configs: most label configurations held (exact or sampled); the paper samples 10,000.

    Returns positions in pick order. Cost O(k N T C n_configs) time, chunked to ~32 MB.
    Kirsch, van Amersfoort & Gal, "BatchBALD: Efficient and Diverse Batch Acquisition
    for Deep Bayesian Active Learning", NeurIPS 2019.
    """
    check_rng(rng)
    kk = check_k(k)
    mc = np.clip(check_mc_probs(mc_probs).astype(np.float64), 0.0, None)
    n_cfg = check_positive_int(n_configs, "n_configs")
    t, n, _ = mc.shape
    mask = check_labeled(labeled, n)
    cand = np.flatnonzero(~mask)
    cond_h = -_xlogx(np.clip(mc, 0.0, None)).sum(axis=2).mean(axis=0)  # (N,) E_w H(y_j | w)
    state = _JointConfigs(t, n_cfg, rng)
    out: list[int] = []
    for _ in range(min(kk, cand.size)):
        score = state.gain(mc[:, cand]) - cond_h[cand]
        best = np.flatnonzero(score >= score.max() - 1e-12)
        j = int(best[rng.integers(best.size)]) if best.size > 1 else int(best[0])
        out.append(int(cand[j]))
        state.add(mc[:, cand[j]])
        cand = np.delete(cand, j)
    return np.asarray(out, dtype=np.int64)
