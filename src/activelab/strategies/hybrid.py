"""Hybrid strategies, written as compositions of the scoring, selection and diversity
functions in the other modules (no copies of their logic).

Wrappers (``random_fraction``, ``class_balanced``) take the name of an inner registered
strategy and its parameters as ``params={...}``; their inputs are the union of their
own and the inner strategy's (see :meth:`StrategySpec.requires_for`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from activelab.exceptions import InputError

from ._clustering import kmeans
from ._distance import Points, kmeanspp_seeding
from ._validation import (
    check_choice,
    check_embeddings,
    check_fraction,
    check_grad_factors,
    check_k,
    check_labeled,
    check_labels,
    check_positive_int,
    check_probs,
    check_rng,
    check_same_n,
)
from .diversity import _interleave
from .registry import ARRAY_INPUTS, _pool_size, register, select
from .selection import _top_k
from .uncertainty import PROB_SCORES, egl_scores, margin_scores

IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]


def _subset_inputs(inputs: dict[str, Any], idx: IntArray) -> dict[str, Any]:
    """Slice every pool array in ``inputs`` to the items ``idx`` (other values unchanged)."""
    out: dict[str, Any] = {}
    for key, v in inputs.items():
        if v is None:
            continue
        if key == "mc_probs":
            out[key] = np.asarray(v)[:, idx]
        elif key in ARRAY_INPUTS:
            out[key] = np.asarray(v)[idx]
        else:
            out[key] = v
    return out


def _run_on_subset(
    name: str,
    k: int,
    rng: np.random.Generator,
    subset: IntArray,
    sub_labeled: BoolArray,
    inputs: dict[str, Any],
    params: dict[str, Any],
) -> IntArray:
    """Run a registered strategy on ``subset`` of the pool; return pool positions."""
    picks = select(name, k, rng=rng, labeled=sub_labeled, **_subset_inputs(inputs, subset), **params)
    return subset[picks]


# ----------------------------------------------------------------------------- BADGE
def gradient_factors(probs: Any) -> NDArray[np.float32]:
    """The class factor ``a_i = p_i - onehot(argmax p_i)`` of BADGE's gradient embedding
    ``g_i = a_i (x) h_i`` (the cross-entropy gradient of the last linear layer at the
    model's own predicted label). ``probs: (N, C)`` -> ``(N, C)`` float32.

    Callers holding softmax probabilities pass this as BADGE's ``grad_factors``; the
    tasks compute the same array (and its sigmoid counterpart) in ``strategy_arrays``."""
    p = np.asarray(probs, dtype=np.float32)
    a = p.copy()
    a[np.arange(p.shape[0]), p.argmax(axis=1)] -= 1.0
    return a


@register("badge", requires={"grad_embeddings"}, paper="Ash, Zhang, Krishnamurthy, Langford & Agarwal, ICLR 2020")
def badge(grad_factors: Any, embeddings: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """BADGE: k-means++ seeding on last-layer gradient embeddings.

    The gradient embedding ``g_i = a_i (x) h_i`` (``a_i`` = ``grad_factors``, ``d loss /
    d logits`` at the model's own predicted label) is long where the model is uncertain
    (magnitude) and points in different directions for different items (diversity). It
    is used in factored form, ``<g_i, g_j> = (a_i . a_j)(h_i . h_j)``, so the ``N x (C d)``
    matrix is never built. The first pick is the unlabeled item with the largest
    ``||g_i||``, each next one is drawn with probability proportional to its squared
    distance to the nearest pick (exact D^2 sampling with lazy chunked updates).
    Taking the factors from the task keeps BADGE task-agnostic: softmax cross-entropy
    gives ``p - onehot(argmax p)`` (:func:`gradient_factors`), per-class binary
    cross-entropy ``p - (p >= 0.5)``.

    Args:
        grad_factors: ``(N, C)`` loss gradients with respect to the logits.
        embeddings: ``(N, d)`` penultimate features ``h`` feeding the last linear layer.

    Cost O(N k (C + d)) worst case, O(N (C + d)) memory.
    Ash et al., "Deep Batch Active Learning by Diverse, Uncertain Gradient Lower
    Bounds", ICLR 2020.
    """
    check_rng(rng)
    kk = check_k(k)
    a = check_grad_factors(grad_factors)
    h = check_embeddings(embeddings)
    check_same_n(a.shape[0], embeddings=(h.shape[0], "(N, d)"))
    mask = check_labeled(labeled, a.shape[0])
    pts = Points(h, a)
    cand = ~mask
    pool = np.flatnonzero(cand)
    first = int(pool[np.argmax(pts.sq[pool])])
    return kmeanspp_seeding(pts, min(kk, pool.size), candidates=cand, first=first, rng=rng)


# ----------------------------------------------------------------------------- Cluster-Margin
@register(
    "cluster_margin",
    requires={"probs", "embeddings"},
    paper="Citovsky, DeSalvo, Gentile, Karydas, Rajagopalan, Rostamizadeh & Kumar, NeurIPS 2021",
)
def cluster_margin(
    probs: Any,
    embeddings: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    margin_factor: int = 10,
    n_clusters: int | None = None,
) -> IntArray:
    """Cluster-Margin: cluster the ``margin_factor * k`` lowest-margin items, then pick
    round-robin over the clusters, smallest cluster first, a random member each time.

    Composition: :func:`margin_scores` + ``top_k`` for the candidates, then average-
    linkage agglomerative clustering of their embeddings (k-means above 5,000
    candidates, where HAC's O(n^2) memory is too much) into ``n_clusters`` (default
    ``k``) clusters.

    Args:
        probs: ``(N, C)`` class probabilities.
        embeddings: ``(N, d)`` features.
    Citovsky et al., "Batch Active Learning at Scale", NeurIPS 2021.
    """
    check_rng(rng)
    kk = check_k(k)
    m = check_positive_int(margin_factor, "margin_factor")
    scores = margin_scores(probs)
    x = check_embeddings(embeddings)
    check_same_n(scores.shape[0], embeddings=(x.shape[0], "(N, d)"))
    mask = check_labeled(labeled, scores.shape[0])
    cand = _top_k(scores, kk * m, rng, mask)
    kk = min(kk, cand.size)
    nc = min(kk if n_clusters is None else check_positive_int(n_clusters, "n_clusters"), cand.size)
    if nc == cand.size:
        assign = np.arange(cand.size)
    elif cand.size <= 5000:
        from sklearn.cluster import AgglomerativeClustering

        assign = AgglomerativeClustering(n_clusters=nc, linkage="average").fit_predict(x[cand])
    else:
        assign, _, _ = kmeans(x[cand], nc, rng=rng)
    sizes = np.bincount(assign, minlength=nc)
    groups = []
    for c in np.lexsort((np.arange(nc), sizes)):  # smallest cluster first
        members = cand[assign == c]
        groups.append(members[rng.permutation(members.size)])
    return _interleave(groups)[:kk]


# ----------------------------------------------------------------------------- uncertainty then diversity
UNCERTAINTY_NAMES = (*PROB_SCORES, "egl")
DIVERSITY_NAMES = ("coreset", "cluster", "typiclust", "probcover", "proximity", "outlier", "random")


@register(
    "uncertainty_diversity",
    requires={"probs", "embeddings"},
    paper="AL-for-CV and Active-Labeler seeds; Zhdanov, arXiv:1901.05954",
)
def uncertainty_diversity(
    probs: Any,
    embeddings: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    uncertainty: str = "margin",
    diversity: str = "coreset",
    pool_factor: int = 10,
    weighted: bool = False,
    params: dict[str, Any] | None = None,
) -> IntArray:
    """Diversity over uncertainty scores: take the ``pool_factor * k`` most uncertain
    items, then let a diversity strategy choose ``k`` among them.

    Args:
        probs: ``(N, C)`` class probabilities.
        embeddings: ``(N, d)`` features used by the diversity strategy.
        uncertainty: ``least_confidence``, ``margin``, ``ratio``, ``entropy`` or ``egl``.
        diversity: a registered embedding strategy (``coreset``, ``cluster``, ...).
            Labeled items are passed along so e.g. core-set treats them as covered.
        weighted: pass the uncertainty scores as ``weights`` (core-set) or ``scores``
            (proximity), the AL-for-CV seed's ``weighted_by_score``.
        params: extra parameters for the diversity strategy.

    Cost: the uncertainty score plus the diversity strategy on ``pool_factor * k + #labeled`` items.
    """
    check_rng(rng)
    kk = check_k(k)
    check_choice(uncertainty, "uncertainty", UNCERTAINTY_NAMES)
    check_choice(diversity, "diversity", DIVERSITY_NAMES)
    f = check_positive_int(pool_factor, "pool_factor")
    scores = egl_scores(probs, embeddings) if uncertainty == "egl" else PROB_SCORES[uncertainty](probs)
    x = check_embeddings(embeddings)
    check_same_n(scores.shape[0], embeddings=(x.shape[0], "(N, d)"))
    mask = check_labeled(labeled, scores.shape[0])
    top = _top_k(scores, kk * f, rng, mask)
    subset = np.concatenate([top, np.flatnonzero(mask)]).astype(np.int64)
    sub_labeled = np.zeros(subset.size, dtype=bool)
    sub_labeled[top.size :] = True
    extra = dict(params or {})
    if weighted:
        if diversity == "coreset":
            extra["weights"] = scores[subset]
        elif diversity == "proximity":
            extra["scores"] = scores[subset]
        else:
            raise InputError(f"weighted=True needs diversity='coreset' or 'proximity', got {diversity!r}.")
    return _run_on_subset(diversity, min(kk, top.size), rng, subset, sub_labeled, {"embeddings": x}, extra)


# ----------------------------------------------------------------------------- random fraction
@register("random_fraction", requires=set(), inner="strategy", paper="AL-for-CV seed (passive_learning)")
def random_fraction(
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    strategy: str = "margin",
    fraction: float = 0.2,
    params: dict[str, Any] | None = None,
    **inputs: Any,
) -> IntArray:
    """Mix an inner strategy with uniformly random picks.

    ``round(fraction * k)`` picks are uniform over the unlabeled items the inner
    strategy did not take; the rest come from ``strategy`` (called with ``params``).
    The two lists are interleaved proportionally, so any prefix holds about the same
    mix. Guards against sampling bias (the AL-for-CV seed's ``passive_learning``).

    Args:
        strategy: name of a registered strategy.
        fraction: share of random picks in ``[0, 1]``.
        **inputs: pool arrays for the inner strategy (``probs``, ``embeddings``, ...).
    """
    check_rng(rng)
    kk = check_k(k)
    frac = check_fraction(fraction, "fraction")
    if strategy == "random_fraction":
        raise InputError("random_fraction cannot wrap itself; name another strategy.")
    n = _pool_size(inputs, labeled, inputs)
    if n is None or n < 1:
        raise InputError("random_fraction needs a non-empty pool: pass the inner strategy's arrays or labeled=.")
    mask = check_labeled(labeled, n)
    kk = min(kk, int((~mask).sum()))
    k_rand = round(frac * kk)
    k_inner = kk - k_rand
    inner = np.zeros(0, dtype=np.int64)
    if k_inner > 0:
        inner = select(strategy, k_inner, rng=rng, labeled=labeled, **inputs, **(params or {}))
    taken = mask.copy()
    taken[inner] = True
    rest = np.flatnonzero(~taken)
    rand = rest[rng.choice(rest.size, size=min(kk - inner.size, rest.size), replace=False)]
    keys = np.concatenate(
        [(np.arange(inner.size) + 0.5) / max(inner.size, 1), (np.arange(rand.size) + 0.5) / max(rand.size, 1)]
    )
    both = np.concatenate([inner, rand]).astype(np.int64)
    return both[np.argsort(keys, kind="stable")]


# ----------------------------------------------------------------------------- class balance
def balanced_quotas(counts: NDArray[np.int64], available: NDArray[np.int64], k: int) -> NDArray[np.int64]:
    """Water-filling: give each of ``k`` picks to the class with the fewest
    ``counts + quota`` that still has ``available`` items (ties: lowest class index)."""
    q = np.zeros_like(counts)
    level = counts.astype(np.float64).copy()
    level[available <= 0] = np.inf
    for _ in range(k):
        c = int(np.argmin(level))
        if not np.isfinite(level[c]):
            break
        q[c] += 1
        level[c] += 1
        if q[c] >= available[c]:
            level[c] = np.inf
    return q


@register(
    "class_balanced",
    requires={"probs", "labels"},
    inner="strategy",
    paper="Aggarwal, Popescu & Hudelot, WACV 2020; Bengar et al., WACV 2022",
)
def class_balanced(
    probs: Any,
    labels: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    strategy: str = "margin",
    params: dict[str, Any] | None = None,
    **inputs: Any,
) -> IntArray:
    """Balance the picks over predicted classes, running an inner strategy within each.

    Each unlabeled item is assigned its predicted class ``argmax probs``. The ``k``
    picks are split so the per-class totals (existing labels from ``labels`` plus
    picks) are as even as the pool allows (water-filling: rare classes get more).
    Within class ``c`` the inner ``strategy`` chooses among the items predicted as ``c``
    (labeled items are passed along so diversity strategies see them). The result is
    interleaved round-robin over classes, rarest first.

    Args:
        probs: ``(N, C)`` class probabilities.
        labels: ``(N,)`` int, ``-1`` for unlabeled; counts the existing labels per class.
        strategy: name of a registered strategy; ``params`` are its parameters.
        **inputs: further pool arrays the inner strategy needs.
    """
    check_rng(rng)
    kk = check_k(k)
    p = check_probs(probs)
    n, n_classes = p.shape
    y = check_labels(labels, n, n_classes)
    mask = check_labeled(labeled, n)
    if strategy == "class_balanced":
        raise InputError("class_balanced cannot wrap itself; name another strategy.")
    pred = p.argmax(axis=1)
    counts = np.bincount(y[y >= 0], minlength=n_classes).astype(np.int64)
    available = np.bincount(pred[~mask], minlength=n_classes).astype(np.int64)
    quotas = balanced_quotas(counts, available, min(kk, int(available.sum())))
    all_inputs = {"probs": p, "labels": y, **inputs}
    lab_pos = np.flatnonzero(mask)
    groups: list[IntArray] = []
    for c in np.lexsort((np.arange(n_classes), counts)):  # rarest class first
        if quotas[c] == 0:
            continue
        members = np.flatnonzero((pred == c) & ~mask)
        subset = np.concatenate([members, lab_pos]).astype(np.int64)
        sub_labeled = np.zeros(subset.size, dtype=bool)
        sub_labeled[members.size :] = True
        groups.append(
            _run_on_subset(strategy, int(quotas[c]), rng, subset, sub_labeled, all_inputs, dict(params or {}))
        )
    return _interleave(groups)
