"""Object-detection query strategies: box-level signals aggregated to an image score.

A detector predicts a variable number of boxes per image, so the inputs are flat over
the M predicted boxes of the whole pool (see :mod:`.registry` for the vocabulary) and
``box_owner`` names each box's image. Every strategy here scores *images* (what a
person labels) from their boxes; an image that owns no box has no box-level evidence.
``labeled`` is required: it gives N, which ``box_owner`` cannot (the last images may
own no box).

References: Brust, Käding & Denzler, VISAPP 2019 and Lightly's detection scorer for
aggregating per-box uncertainty; Yang et al., "Plug and Play Active Learning for Object
Detection", CVPR 2024 (PPAL); Yu et al., "Consistency-based Active Learning for Object
Detection", CVPR Workshops (L3D-IVU) 2022, arXiv 2103.10374 (CALD); Kao et al., "Localization-Aware
Active Learning for Object Detection", ACCV 2018 (localization stability).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import entr, xlogy

from activelab.exceptions import InputError

from ._validation import (
    check_box_inputs,
    check_choice,
    check_k,
    check_labeled,
    check_positive_float,
    check_positive_int,
    check_rng,
)
from .registry import register
from .selection import _top_k
from .uncertainty import _entropy_rows, _top2

FloatArray = NDArray[np.floating[Any]]
F64 = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
#: How box scores become an image score: Lightly averages, PPAL sums, Brust et al. also take the max.
AGGREGATIONS = ("mean", "max", "sum")
_CHUNK_ELEMS = 1 << 22  # box-pair distances held at once in PPAL's matching


def _pool(labeled: Any) -> tuple[int, BoolArray]:
    """N and the labeled mask (required: ``box_owner`` cannot tell N)."""
    if labeled is None:
        raise InputError(
            "detection strategies need labeled=: the (N,) bool mask of labeled pool images, which also gives N "
            "(an image may own no box). Pass np.zeros(N, bool) when nothing is labeled."
        )
    n = int(np.shape(labeled)[0]) if np.ndim(labeled) == 1 else -1
    return n, check_labeled(labeled, n)


def aggregate_boxes(values: Any, box_owner: Any, n: int, agg: str = "mean") -> F64:
    """Per-image ``mean``, ``max`` or ``sum`` of per-box ``values``; an image without boxes gets 0.

    ``values: (M,)``, ``box_owner: (M,)`` ints in 0..n-1 -> ``(n,)``. ``"mean"`` does not
    reward an image for being crowded; ``"sum"`` does (PPAL's choice); ``"max"`` looks
    at the single most uncertain box.
    """
    check_choice(agg, "agg", AGGREGATIONS)
    owner = check_box_inputs(n, box_owner=box_owner)["box_owner"]
    v = np.asarray(values, dtype=np.float64)
    if v.shape != owner.shape:
        raise InputError(f"values has shape {v.shape} but box_owner {owner.shape}; pass one value per box.")
    total = np.bincount(owner, weights=v, minlength=n)
    if agg == "sum":
        return np.asarray(total, dtype=np.float64)
    count = np.bincount(owner, minlength=n)
    if agg == "mean":
        return np.asarray(np.divide(total, count, out=np.zeros(n), where=count > 0))
    top = np.full(n, -np.inf)
    np.maximum.at(top, owner, v)
    top[count == 0] = 0.0
    return top


def box_least_confidence(box_probs: FloatArray) -> F64:
    """``1 - max_c p_c`` per box. ``(M, C)`` -> ``(M,)``."""
    return np.asarray(1.0 - box_probs.max(axis=1, initial=0.0).astype(np.float64))


def box_margin(box_probs: FloatArray) -> F64:
    """``1 - (p_top1 - p_top2)`` per box (0 for a one-class detector: nothing to confuse). ``(M, C)`` -> ``(M,)``."""
    if box_probs.shape[1] < 2:
        return np.zeros(box_probs.shape[0])
    first, second = _top2(box_probs)
    return np.asarray(1.0 - (first.astype(np.float64) - second))


def box_entropy(box_probs: FloatArray) -> F64:
    """Shannon entropy (nats) of each box's class distribution. ``(M, C)`` -> ``(M,)``."""
    return _entropy_rows(box_probs)


_BOX_SCORES = {"least_confidence": box_least_confidence, "margin": box_margin, "entropy": box_entropy}


def _box_uncertainty(
    kind: str, box_probs: Any, box_owner: Any, k: int, rng: np.random.Generator, labeled: Any, agg: str
) -> IntArray:
    check_rng(rng)
    kk = check_k(k)
    check_choice(agg, "agg", AGGREGATIONS)
    n, mask = _pool(labeled)
    arr = check_box_inputs(n, box_probs=box_probs, box_owner=box_owner)
    scores = aggregate_boxes(_BOX_SCORES[kind](arr["box_probs"]), arr["box_owner"], n, agg)
    return _top_k(scores, kk, rng, mask)


@register("det_least_confidence", requires={"box_probs", "box_owner"}, paper="Brust, Käding & Denzler, VISAPP 2019")
def det_least_confidence(
    box_probs: Any, box_owner: Any, k: int, *, rng: np.random.Generator, labeled: Any = None, agg: str = "mean"
) -> IntArray:
    """Pick the images whose boxes are least confident about their class (``1 - max p``, aggregated by ``agg``).

    ``box_probs: (M, C)``, ``box_owner: (M,)``; ``agg``: ``"mean"`` (default), ``"max"`` or
    ``"sum"`` over an image's boxes. An image without boxes scores 0.
    """
    return _box_uncertainty("least_confidence", box_probs, box_owner, k, rng, labeled, agg)


@register("det_margin", requires={"box_probs", "box_owner"}, paper="Brust, Käding & Denzler, VISAPP 2019")
def det_margin(
    box_probs: Any, box_owner: Any, k: int, *, rng: np.random.Generator, labeled: Any = None, agg: str = "mean"
) -> IntArray:
    """Pick the images whose boxes have the smallest gap between their two likeliest classes (aggregated by ``agg``).

    Box score ``1 - (p_top1 - p_top2)``; ``agg``: ``"mean"``, ``"max"`` or ``"sum"``.
    An image without boxes scores 0.
    """
    return _box_uncertainty("margin", box_probs, box_owner, k, rng, labeled, agg)


@register("det_entropy", requires={"box_probs", "box_owner"}, paper="Brust, Käding & Denzler, VISAPP 2019")
def det_entropy(
    box_probs: Any, box_owner: Any, k: int, *, rng: np.random.Generator, labeled: Any = None, agg: str = "mean"
) -> IntArray:
    """Pick the images whose boxes have the highest class entropy (aggregated by ``agg``).

    Box score ``-sum_c p_c log p_c``; ``agg``: ``"mean"``, ``"max"`` or ``"sum"``.
    An image without boxes scores 0.
    """
    return _box_uncertainty("entropy", box_probs, box_owner, k, rng, labeled, agg)


# ----------------------------------------------------------------------------- PPAL
def difficulty_weights(class_difficulty: Any, upper_bound: float = 0.2, alpha: float = 0.3) -> F64:
    """PPAL's class weights ``1 + ub * alpha * log(1 + (e^(1/alpha) - 1) d)``: 1 for an easy
    class (``d = 0``), ``1 + ub`` for the hardest (``d = 1``), concave in between.

    ``class_difficulty: (C,)`` in [0, 1] -> ``(C,)``. Defaults are the authors' configs.
    """
    d = np.asarray(class_difficulty, dtype=np.float64)
    b = np.expm1(1.0 / alpha)
    return np.asarray(1.0 + upper_bound * alpha * np.log1p(b * d))


def binary_entropy(p: Any) -> F64:
    """``-p log p - (1 - p) log(1 - p)`` (nats; 0 at 0 and 1): how unsure a detection is of being right."""
    q = np.asarray(p, dtype=np.float64)
    return np.asarray(entr(q) + entr(1.0 - q))


def ppal_uncertainty(
    box_probs: Any,
    box_scores: Any,
    box_owner: Any,
    class_difficulty: Any,
    n: int,
    *,
    upper_bound: float = 0.2,
    alpha: float = 0.3,
) -> F64:
    """PPAL's difficulty-calibrated uncertainty of each image: the sum over its boxes of
    the binary entropy of the box's score, weighted by :func:`difficulty_weights` of the
    box's predicted class (argmax of ``box_probs``). ``-> (n,)``; 0 for an image without boxes.

    As in the authors' code (``DCUSSampler``), a box's uncertainty is the entropy of its
    confidence, not of its class distribution: a RetinaNet score is one sigmoid.
    """
    arr = check_box_inputs(
        n, box_probs=box_probs, box_scores=box_scores, box_owner=box_owner, class_difficulty=class_difficulty
    )
    labels = arr["box_probs"].argmax(axis=1) if arr["box_probs"].shape[0] else np.zeros(0, dtype=np.int64)
    weights = difficulty_weights(arr["class_difficulty"], upper_bound, alpha)[labels]
    return aggregate_boxes(binary_entropy(arr["box_scores"]) * weights, arr["box_owner"], n, "sum")


def ppal_distances(
    box_probs: FloatArray,
    box_scores: FloatArray,
    box_owner: IntArray,
    box_features: FloatArray,
    images: IntArray,
    n: int,
) -> F64:
    """PPAL's category-conditioned matching distance between the ``images`` (pool positions).

    For a box ``a`` of image ``i`` and image ``j``, ``d(a, j)`` is the smallest cosine
    distance ``1 - cos(f_a, f_b)`` over ``j``'s boxes ``b`` of the same predicted class
    (2 when ``j`` has none); ``D(i, j)`` is the score-weighted mean of ``d(a, j)`` over
    ``i``'s boxes, and the result is ``(D + D^T) / 2``, in [0, 2] with a zero diagonal.
    An image without boxes (or whose boxes all score 0) is at 2 from the rest, and two
    images without boxes at 0 (the authors' code put such an image at 0 from everything,
    a bug they note). ``images`` index a
    pool of ``n``; ``-> (len(images), len(images))``.
    """
    n_img = images.size
    local = np.full(n, -1, dtype=np.int64)
    local[images] = np.arange(n_img)
    keep = np.flatnonzero(local[box_owner] >= 0)
    own = local[box_owner[keep]]
    scores = box_scores[keep].astype(np.float64)
    labels = box_probs[keep].argmax(axis=1) if keep.size else np.zeros(0, dtype=np.int64)
    feats = box_features[keep].astype(np.result_type(box_features.dtype, np.float32))  # float32 stays float32
    feats /= np.maximum(np.linalg.norm(feats, axis=1, keepdims=True), np.finfo(feats.dtype).tiny)
    weighted = np.zeros((n_img, n_img))
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.argsort(own[idx], kind="stable")]
        own_c = own[idx]
        present, starts = np.unique(own_c, return_index=True)
        class_feats_t = feats[idx].T
        step = max(1, _CHUNK_ELEMS // idx.size)
        for s in range(0, idx.size, step):
            rows = idx[s : s + step]
            dist = np.clip(1.0 - feats[rows] @ class_feats_t, 0.0, 2.0)
            nearest = np.full((rows.size, n_img), 2.0)
            nearest[:, present] = np.minimum.reduceat(dist, starts, axis=1)
            # rows are sorted by image: sum each image's run of rows at once
            images_here, first = np.unique(own[rows], return_index=True)
            weighted[images_here] += np.add.reduceat(scores[rows, None] * nearest, first, axis=0)
    norm = np.bincount(own, weights=scores, minlength=n_img)
    has_box = np.bincount(own, minlength=n_img) > 0
    d = np.divide(weighted, norm[:, None], out=np.zeros_like(weighted), where=norm[:, None] > 0)
    empty = ~has_box
    d[empty] = np.where(has_box, 2.0, 0.0)[None, :]
    d[(norm == 0) & has_box] = 2.0
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return np.asarray(d)


def k_medoids(dist: F64, k: int, *, rng: np.random.Generator, n_iter: int = 100) -> IntArray:
    """k medoids of a distance matrix: farthest-first seeding from a random start, then
    PAM-style updates (each cluster's new medoid minimises its summed distance) until
    nothing changes or ``n_iter`` rounds; PPAL's ``DiversitySampler``. ``dist: (n, n)`` -> ``(k,)`` unique rows.

    Each medoid stays in its own cluster, so clusters are never empty and medoids never repeat.
    """
    n = dist.shape[0]
    medoids = [int(rng.integers(n))]
    nearest = dist[:, medoids[0]].copy()
    for _ in range(1, k):
        nearest[medoids] = -1.0
        medoids.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, dist[:, medoids[-1]])
    current = np.asarray(medoids, dtype=np.int64)
    for _ in range(n_iter):
        assign = np.argmin(dist[:, current], axis=1)
        assign[current] = np.arange(k)
        updated = current.copy()
        for c in range(k):
            members = np.flatnonzero(assign == c)
            updated[c] = members[np.argmin(dist[np.ix_(members, members)].sum(axis=1))]
        if np.array_equal(updated, current):
            break
        current = updated
    return current


@register(
    "ppal",
    requires={"box_probs", "box_scores", "box_owner", "box_features", "class_difficulty"},
    paper="Yang, Huang & Crowley, CVPR 2024 (Plug and Play Active Learning for Object Detection)",
)
def ppal(
    box_probs: Any,
    box_scores: Any,
    box_owner: Any,
    box_features: Any,
    class_difficulty: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    candidate_factor: int = 3,
    class_weight_ub: float = 0.2,
    class_weight_alpha: float = 0.3,
    n_iter: int = 100,
) -> IntArray:
    """PPAL: the most difficulty-calibrated-uncertain images, then a diverse subset of them.

    Stage 1 keeps the ``candidate_factor * k`` unlabeled images of highest
    :func:`ppal_uncertainty` (boxes of hard classes weigh up to ``1 + class_weight_ub``).
    Stage 2 runs :func:`k_medoids` on their :func:`ppal_distances` (same-class box
    features matched across images) and returns the k medoids, most uncertain first.

    Args:
        box_probs: ``(M, C)`` per-box class distributions (the argmax is the box's class).
        box_scores: ``(M,)`` detection confidences in [0, 1].
        box_owner: ``(M,)`` pool position of each box's image.
        box_features: ``(M, d)`` RoI features.
        class_difficulty: ``(C,)`` in [0, 1], 1 - mean quality of the model on labeled images.
        candidate_factor: candidates per pick (the authors' configs use 4; 3 here).
        n_iter: most k-medoids update rounds.

    Cost O(M_c^2 d / C) for the M_c candidate boxes, O(n_iter * (ck)^2) for the medoids.
    """
    check_rng(rng)
    kk = check_k(k)
    factor = check_positive_int(candidate_factor, "candidate_factor")
    ub = check_positive_float(class_weight_ub, "class_weight_ub")
    alpha = check_positive_float(class_weight_alpha, "class_weight_alpha")
    rounds = check_positive_int(n_iter, "n_iter")
    n, mask = _pool(labeled)
    arr = check_box_inputs(
        n,
        box_probs=box_probs,
        box_scores=box_scores,
        box_owner=box_owner,
        box_features=box_features,
        class_difficulty=class_difficulty,
    )
    uncertainty = ppal_uncertainty(
        arr["box_probs"], arr["box_scores"], arr["box_owner"], arr["class_difficulty"], n, upper_bound=ub, alpha=alpha
    )
    candidates = _top_k(uncertainty, factor * kk, rng, mask)
    if candidates.size <= kk:
        return candidates
    dist = ppal_distances(arr["box_probs"], arr["box_scores"], arr["box_owner"], arr["box_features"], candidates, n)
    chosen = candidates[k_medoids(dist, kk, rng=rng, n_iter=rounds)]
    return chosen[np.argsort(-uncertainty[chosen], kind="stable")]


# ----------------------------------------------------------------------------- CALD
def js_divergence(p: FloatArray, q: FloatArray) -> F64:
    """Jensen-Shannon divergence (nats, in [0, log 2]) between matching rows of ``p`` and ``q``: ``(M, C)`` -> ``(M,)``."""
    p64 = p.astype(np.float64)
    q64 = q.astype(np.float64)
    m = 0.5 * (p64 + q64)
    kl_pm = (xlogy(p64, p64) - xlogy(p64, m)).sum(axis=1)
    kl_qm = (xlogy(q64, q64) - xlogy(q64, m)).sum(axis=1)
    return np.asarray(np.clip(0.5 * (kl_pm + kl_qm), 0.0, None))


def cald_scores(
    box_probs: Any,
    box_scores: Any,
    box_owner: Any,
    box_flip_iou: Any,
    box_flip_probs: Any,
    n: int,
    base_point: float = 1.3,
) -> F64:
    """CALD's image consistency ``min_b |m_b - base_point|`` (lower = more informative), ``-> (n,)``.

    A box's consistency with its match in the flipped image is
    ``m_b = IoU_b + (1 - JS(p_b, p'_b)) s_b``: overlap plus agreement of the class
    distributions, weighted by confidence. CALD averages the two boxes' confidences;
    the match's own score is not among the inputs, so ``s_b`` stands for both. Boxes
    around ``base_point`` (1.3 in the authors' code) are the informative ones: a fully
    consistent box (``m`` near 2) is learned, a wholly inconsistent one (``m`` near 0) is
    usually background. An image without boxes scores 0, first, as in the authors' code.
    """
    arr = check_box_inputs(
        n,
        box_probs=box_probs,
        box_scores=box_scores,
        box_owner=box_owner,
        box_flip_iou=box_flip_iou,
        box_flip_probs=box_flip_probs,
    )
    agreement = 1.0 - js_divergence(arr["box_probs"], arr["box_flip_probs"])
    gap = np.abs(arr["box_flip_iou"] + agreement * arr["box_scores"] - base_point)
    owner = arr["box_owner"]
    out = np.full(n, np.inf)
    np.minimum.at(out, owner, gap)
    out[np.bincount(owner, minlength=n) == 0] = 0.0
    return out


@register(
    "cald",
    requires={"box_probs", "box_scores", "box_owner", "box_flip_iou", "box_flip_probs"},
    paper="Yu, Zhu, Yang, Chen & Liu, CVPR Workshops (L3D-IVU) 2022 (CALD, arXiv 2103.10374)",
)
def cald(
    box_probs: Any,
    box_scores: Any,
    box_owner: Any,
    box_flip_iou: Any,
    box_flip_probs: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    base_point: float = 1.3,
) -> IntArray:
    """CALD: pick the images whose predictions on the image and its flipped copy are least settled.

    Ranks by :func:`cald_scores` ascending (this is CALD's consistency stage; its second
    stage balances classes against the labeled set's ground truth, which the box
    vocabulary does not carry). ``base_point``: the most informative box consistency (positive).
    """
    check_rng(rng)
    kk = check_k(k)
    bp = check_positive_float(base_point, "base_point")
    n, mask = _pool(labeled)
    consistency = cald_scores(box_probs, box_scores, box_owner, box_flip_iou, box_flip_probs, n, bp)
    return _top_k(-consistency, kk, rng, mask)


# ----------------------------------------------------------------------------- localization stability
def localization_stability_scores(box_scores: Any, box_owner: Any, box_noise_iou: Any, n: int) -> F64:
    """``1 - S_I`` per image, with Kao et al.'s image stability ``S_I = sum_b s_b S_b / sum_b s_b``.

    A box's stability ``S_b`` is its mean IoU with its best match over the K noise levels
    (``box_noise_iou: (M, K)``), weighted by its confidence ``s_b`` (the paper's ``P_max``) so
    confident boxes count most. ``-> (n,)`` in [0, 1]; an image without boxes (or whose
    boxes all have score 0) scores 0.
    """
    arr = check_box_inputs(n, box_scores=box_scores, box_owner=box_owner, box_noise_iou=box_noise_iou)
    s = arr["box_scores"].astype(np.float64)
    stability = arr["box_noise_iou"].mean(axis=1, dtype=np.float64)
    owner = arr["box_owner"]
    weight = np.bincount(owner, weights=s, minlength=n)
    stable = np.bincount(owner, weights=s * stability, minlength=n)
    return np.asarray(np.divide(weight - stable, weight, out=np.zeros(n), where=weight > 0))


@register(
    "localization_stability",
    requires={"box_scores", "box_owner", "box_noise_iou"},
    paper="Kao, Lee, Sen & Liu, ACCV 2018 (Localization-Aware Active Learning for Object Detection)",
)
def localization_stability(
    box_scores: Any,
    box_owner: Any,
    box_noise_iou: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
) -> IntArray:
    """Pick the images whose boxes move most when the pixels get noisy (see :func:`localization_stability_scores`).

    ``box_scores: (M,)``, ``box_owner: (M,)``, ``box_noise_iou: (M, K)``; returns positions, least stable first.
    """
    check_rng(rng)
    kk = check_k(k)
    n, mask = _pool(labeled)
    scores = localization_stability_scores(box_scores, box_owner, box_noise_iou, n)
    return _top_k(scores, kk, rng, mask)
