"""Uncertainty sampling on class probabilities, and expected gradient length.

Scores map ``probs: (N, C)`` (rows sum to 1) to ``(N,)``, higher = more informative;
each strategy is its score followed by the shared :func:`~.selection.top_k`.
References: Settles, "Active Learning Literature Survey" (2009) for least confidence,
margin and entropy; Munro, "Human-in-the-Loop Machine Learning" (2021), ch. 3 for the
ratio of confidence; Settles, Craven & Ray (NIPS 2008) for expected gradient length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import entr

from ._validation import check_embeddings, check_k, check_labeled, check_probs, check_rng, check_same_n
from .registry import register
from .selection import _top_k

FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
_ROW_CHUNK_ELEMS = 1 << 22  # 4M elements per chunk keeps temporaries small for N x C = 1M x 1000


def _rowwise(probs: FloatArray, fn: Callable[[FloatArray], NDArray[np.float64]]) -> NDArray[np.float64]:
    """Apply ``fn`` (chunk (n, C) -> (n,)) over row chunks, so temporaries stay O(chunk)."""
    n, c = probs.shape
    step = max(1, _ROW_CHUNK_ELEMS // c)
    if n <= step:
        return np.asarray(fn(probs), dtype=np.float64)
    out = np.empty(n, dtype=np.float64)
    for s in range(0, n, step):
        out[s : s + step] = fn(probs[s : s + step])
    return out


def _top2(p: FloatArray) -> tuple[FloatArray, FloatArray]:
    two = np.partition(p, p.shape[1] - 2, axis=1)[:, -2:]
    return two[:, 1], two[:, 0]


def least_confidence_scores(probs: Any) -> NDArray[np.float64]:
    """``1 - max_c p_c`` per row. ``probs: (N, C)`` -> ``(N,)`` in ``[0, 1 - 1/C]``.

    Lewis & Gale, SIGIR 1994; Settles (2009) section 3.1.
    """
    p = check_probs(probs)
    return _rowwise(p, lambda x: 1.0 - x.max(axis=1).astype(np.float64))


def margin_scores(probs: Any) -> NDArray[np.float64]:
    """``1 - (p_top1 - p_top2)`` per row: a small gap between the two most likely
    classes is uncertain. ``probs: (N, C)`` -> ``(N,)`` in ``[0, 1]``.

    Scheffer, Decomain & Wrobel, IDA 2001.
    """
    p = check_probs(probs)

    def f(x: FloatArray) -> NDArray[np.float64]:
        first, second = _top2(x)
        return 1.0 - (first.astype(np.float64) - second)

    return _rowwise(p, f)


def ratio_scores(probs: Any) -> NDArray[np.float64]:
    """Ratio of confidence ``p_top2 / p_top1`` per row. ``probs: (N, C)`` -> ``(N,)`` in ``[0, 1]``.

    Munro, Human-in-the-Loop Machine Learning (Manning, 2021), section 3.2.
    """
    p = check_probs(probs)

    def f(x: FloatArray) -> NDArray[np.float64]:
        first, second = _top2(x)
        return second.astype(np.float64) / np.maximum(first.astype(np.float64), np.finfo(np.float64).tiny)

    return _rowwise(p, f)


def _entropy_rows(x: FloatArray) -> NDArray[np.float64]:
    # scipy's entr(p) = -p log p with entr(0) = 0, computed in the input's precision
    return np.asarray(entr(np.clip(x, 0.0, None)).sum(axis=1, dtype=np.float64))


def entropy_scores(probs: Any) -> NDArray[np.float64]:
    """Shannon entropy ``-sum_c p_c log p_c`` (nats, ``0 log 0 = 0``). ``probs: (N, C)`` -> ``(N,)``.

    Shannon (1948); Settles (2009) section 3.1.
    """
    p = check_probs(probs)
    return _rowwise(p, _entropy_rows)


def egl_scores(probs: Any, embeddings: Any) -> NDArray[np.float64]:
    """Expected gradient length of the softmax last layer, in closed form.

    For a linear softmax head on features ``h``, the cross-entropy gradient with
    respect to the weights for label ``y`` is ``g_y = (p - e_y) (x) h`` (outer
    product), so ``||g_y|| = ||p - e_y|| * ||h||`` and
    ``EGL = sum_y p_y ||p - e_y|| ||h||`` with
    ``||p - e_y||^2 = ||p||^2 - 2 p_y + 1``.

    Args:
        probs: ``(N, C)`` class probabilities, rows sum to 1.
        embeddings: ``(N, d)`` penultimate features ``h`` feeding the softmax layer.

    Returns:
        ``(N,)`` expected gradient norms, higher = larger expected model change.

    Settles, Craven & Ray, "Multiple-Instance Active Learning", NIPS 2008; the
    "gradients" score of the AL-for-CV seed. Cost O(N (C + d)).
    """
    p = check_probs(probs)
    h = check_embeddings(embeddings)
    check_same_n(p.shape[0], embeddings=(h.shape[0], "(N, d)"))
    h_norm = np.sqrt(_rowwise(h, lambda x: np.einsum("ij,ij->i", x, x, dtype=np.float64)))

    def f(x: FloatArray) -> NDArray[np.float64]:
        x64 = x.astype(np.float64)
        sq = np.einsum("ij,ij->i", x64, x64)[:, None]
        return (x64 * np.sqrt(np.clip(sq - 2.0 * x64 + 1.0, 0.0, None))).sum(axis=1)

    return _rowwise(p, f) * h_norm


def _select_by(
    scores_fn: Callable[[Any], NDArray[np.float64]], probs: Any, k: int, rng: np.random.Generator, labeled: Any
) -> IntArray:
    check_rng(rng)
    k = check_k(k)
    scores = scores_fn(probs)
    mask = check_labeled(labeled, scores.shape[0])
    return _top_k(scores, k, rng, mask)


@register("least_confidence", requires={"probs"}, paper="Lewis & Gale, SIGIR 1994")
def least_confidence(probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Pick the items whose most likely class has the lowest probability.

    ``probs: (N, C)``; returns ``(min(k, #unlabeled),)`` positions, least confident first.
    """
    return _select_by(least_confidence_scores, probs, k, rng, labeled)


@register("margin", requires={"probs"}, paper="Scheffer, Decomain & Wrobel, IDA 2001")
def margin(probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Pick the items with the smallest gap between the two most likely classes.

    ``probs: (N, C)``; returns positions, smallest margin first.
    """
    return _select_by(margin_scores, probs, k, rng, labeled)


@register("ratio", requires={"probs"}, paper="Munro, Human-in-the-Loop Machine Learning, 2021")
def ratio(probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Pick the items with the highest ratio of confidence ``p_top2 / p_top1``.

    ``probs: (N, C)``; returns positions, highest ratio first.
    """
    return _select_by(ratio_scores, probs, k, rng, labeled)


@register("entropy", requires={"probs"}, paper="Settles, Active Learning Literature Survey, 2009")
def entropy(probs: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Pick the items with the highest predictive entropy.

    ``probs: (N, C)``; returns positions, highest entropy first.
    """
    return _select_by(entropy_scores, probs, k, rng, labeled)


@register("egl", requires={"probs", "embeddings"}, paper="Settles, Craven & Ray, NIPS 2008")
def egl(probs: Any, embeddings: Any, k: int, *, rng: np.random.Generator, labeled: Any = None) -> IntArray:
    """Pick the items with the largest expected last-layer gradient length (see :func:`egl_scores`).

    ``probs: (N, C)``, ``embeddings: (N, d)``; returns positions, largest first.
    """
    return _select_by(lambda p: egl_scores(p, embeddings), probs, k, rng, labeled)


#: Probability-based scores by name, for hybrids that take ``uncertainty=...``.
PROB_SCORES: dict[str, Callable[[Any], NDArray[np.float64]]] = {
    "least_confidence": least_confidence_scores,
    "margin": margin_scores,
    "ratio": ratio_scores,
    "entropy": entropy_scores,
}
