"""Multi-label query strategies on independent per-class probabilities.

A multi-label model outputs ``marginals: (N, C)``, one sigmoid probability per class
(rows need not sum to 1), and the labeled set is a ``label_matrix: (N, C)`` of 0/1
indicators (rows of -1 for unlabeled items). The single-label scores (margin,
entropy) do not apply: an image can be certain about one class and unsure about
another. These strategies score each class as a binary decision and aggregate per image.

Per-class uncertainty is ``1 - |2 p - 1|`` (1 at ``p = 0.5``, 0 at ``p`` = 0 or 1): the
two-class case of ``margin`` (``margin_scores([[p, 1 - p]])`` is exactly this), so
single- and multi-label runs measure uncertainty alike, and the per-label margin of
Brinker (2006) and Reyes et al. (2018). Binary entropy is a monotone transform of the
same ``|p - 0.5|``, so with ``agg="max"`` it would rank images identically; with
``agg="mean"`` the linear measure keeps one near-certain class from being discounted
more steeply than entropy's flat top would.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import entr

from ._validation import (
    check_choice,
    check_fraction,
    check_k,
    check_label_matrix,
    check_labeled,
    check_marginals,
    check_rng,
)
from .registry import register
from .selection import _top_k

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
AGGREGATIONS = ("mean", "max")
_CHUNK_ELEMS = 1 << 22  # contingency counts held at once (unlabeled rows x labeled rows)


def binary_uncertainty(marginals: Any) -> NDArray[np.float64]:
    """Per-class uncertainty ``1 - |2 p - 1|``. ``marginals: (N, C)`` in [0, 1] -> ``(N, C)`` in [0, 1]."""
    p = check_marginals(marginals).astype(np.float64)
    return np.asarray(1.0 - np.abs(2.0 * p - 1.0))


def multilabel_uncertainty_scores(marginals: Any, agg: str = "mean") -> NDArray[np.float64]:
    """Per-image uncertainty: :func:`binary_uncertainty` aggregated over classes.

    ``agg="mean"`` favours images unsure about many classes (the average-confidence
    criterion); ``agg="max"`` favours images with one class right at the decision
    boundary (Brinker's BinMin). Esuli & Sebastiani (ECIR 2009) compare both
    aggregations. ``marginals: (N, C)`` -> ``(N,)`` in [0, 1].
    """
    check_choice(agg, "agg", AGGREGATIONS)
    u = binary_uncertainty(marginals)
    return np.asarray(u.mean(axis=1) if agg == "mean" else u.max(axis=1))


@register(
    "multilabel_uncertainty",
    requires={"marginals"},
    paper="Brinker, GfKl 2005 (Springer 2006); Esuli & Sebastiani, ECIR 2009",
)
def multilabel_uncertainty(
    marginals: Any, k: int, *, rng: np.random.Generator, labeled: Any = None, agg: str = "mean"
) -> IntArray:
    """Pick the images whose per-class decisions are least certain (see :func:`multilabel_uncertainty_scores`).

    ``marginals: (N, C)``; ``agg``: ``"mean"`` or ``"max"`` over classes. Returns
    positions, most uncertain first.
    """
    check_rng(rng)
    kk = check_k(k)
    scores = multilabel_uncertainty_scores(marginals, agg)
    return _top_k(scores, kk, rng, check_labeled(labeled, scores.shape[0]))


# ----------------------------------------------------------------------------- CVIRS
def _bits(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``-x log2 x`` elementwise, 0 at 0."""
    return np.asarray(entr(x) / np.log(2.0))


def label_vector_distance(predicted: Any, known: Any) -> NDArray[np.float64]:
    """Distance between 0/1 label vectors, ``(n, C)`` x ``(m, C)`` -> ``(n, m)`` in [0, 1].

    The entropy distance of Reyes et al. (2018): with the 2x2 contingency counts
    ``a`` (both 1), ``b`` (predicted 0, known 1), ``c`` (predicted 1, known 0), ``d``
    (both 0) over the ``C`` classes, ``H(y)`` the entropy of a vector's share of ones
    and ``H(y, y')`` the entropy of ``(a, b, c, d) / C``, the distance is the variation
    of information normalised by the joint entropy, ``(2 H(y, y') - H(y) - H(y')) /
    H(y, y')`` (0 when ``H(y, y') = 0``), except that complementary vectors (Hamming
    distance ``C``), which the entropy calls perfectly dependent, are at distance 1.
    """
    y = np.asarray(predicted, dtype=np.float64)
    z = np.asarray(known, dtype=np.float64)
    q = float(y.shape[1])
    ones_y = y.sum(axis=1)[:, None]
    ones_z = z.sum(axis=1)[None, :]
    a = y @ z.T
    b = ones_z - a
    c = ones_y - a
    d = q - a - b - c
    h_y = _bits(ones_y / q) + _bits(1.0 - ones_y / q)
    h_z = _bits(ones_z / q) + _bits(1.0 - ones_z / q)
    joint = _bits(a / q) + _bits(b / q) + _bits(c / q) + _bits(d / q)
    with np.errstate(divide="ignore", invalid="ignore"):
        dist = np.where(joint > 0, (2.0 * joint - h_y - h_z) / joint, 0.0)
    dist = np.clip(dist, 0.0, 1.0)
    dist[b + c == q] = 1.0
    return np.asarray(dist)


def cvirs_scores(marginals: Any, label_matrix: Any, labeled: Any = None, threshold: float = 0.5) -> NDArray[np.float64]:
    """CVIRS score of each unlabeled image: rank-aggregated uncertainty times label-vector inconsistency.

    1. *Ranking of scores*: for each class ``j`` the unlabeled images are ranked by their
       margin ``|2 p_ij - 1|``, most uncertain first (ties share their average rank
       ``tau_j``); the image's score is the normalised Borda count
       ``sum_j (U - tau_j) / (C (U - 1))`` over the ``U`` unlabeled images (1 when ``U = 1``).
    2. *Category vector inconsistency*: the predicted label vector ``p >= threshold`` is
       compared with every labeled image's label vector (rows of ``label_matrix`` that
       are not -1) by :func:`label_vector_distance` and the distances are averaged; an
       image predicted unlike anything labeled so far scores high. With no labeled
       image yet every image gets 1, so the ranking alone decides.

    Args:
        marginals: ``(N, C)`` per-class probabilities in [0, 1].
        label_matrix: ``(N, C)`` 0/1 rows for labeled images, rows of -1 otherwise.
        labeled: ``(N,)`` bool mask; these images score 0 and do not enter the ranking.
        threshold: the probability at which a class counts as predicted.

    Returns:
        ``(N,)`` scores in [0, 1], higher = more informative.
    """
    p = check_marginals(marginals).astype(np.float64)
    n, n_classes = p.shape
    y = check_label_matrix(label_matrix, n, n_classes)
    mask = check_labeled(labeled, n)
    t = check_fraction(threshold, "threshold")
    unl = np.flatnonzero(~mask)
    margins = np.abs(2.0 * p[unl] - 1.0)
    if unl.size == 1:
        ranking = np.ones(1)
    else:
        from scipy.stats import rankdata  # scipy.stats takes most of a second to import: only when used

        ranks = rankdata(margins, axis=0, method="average")
        ranking = (unl.size - ranks).sum(axis=1) / (n_classes * (unl.size - 1))
    known = y[(y >= 0).all(axis=1)]
    inconsistency = np.ones(unl.size)
    if known.shape[0]:
        predicted = (p[unl] >= t).astype(np.float64)
        step = max(1, _CHUNK_ELEMS // known.shape[0])
        for s in range(0, unl.size, step):
            inconsistency[s : s + step] = label_vector_distance(predicted[s : s + step], known).mean(axis=1)
    scores = np.zeros(n)
    scores[unl] = ranking * inconsistency
    return scores


@register("cvirs", requires={"marginals", "label_matrix"}, paper="Reyes, Morell & Ventura, Neurocomputing 2018")
def cvirs(
    marginals: Any,
    label_matrix: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    threshold: float = 0.5,
) -> IntArray:
    """CVIRS: uncertain images whose predicted label set is unlike the labeled ones (see :func:`cvirs_scores`).

    ``marginals: (N, C)``, ``label_matrix: (N, C)``; returns positions, highest score first.
    Reyes, Morell & Ventura, "Effective active learning strategy for multi-label
    learning", Neurocomputing 273 (2018). Cost O(N C log N + U L C) for ``U`` unlabeled
    and ``L`` labeled images, O(N C) memory plus chunks of ``U x L``.
    """
    check_rng(rng)
    kk = check_k(k)
    scores = cvirs_scores(marginals, label_matrix, labeled, threshold)
    return _top_k(scores, kk, rng, check_labeled(labeled, scores.shape[0]))
