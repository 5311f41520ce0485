"""Semantic-segmentation query strategies: pixel uncertainty scored per image or per region.

A segmenter predicts a class distribution at every pixel. The pixel scores here map
``(C, H, W)`` probabilities to an ``(H, W)`` map (higher = more uncertain); an *image*
strategy aggregates the map to one score per image (the mean, or the mean of the top
``q`` fraction of pixels, so a small confused object is not averaged away by a large
easy background); a *region* strategy averages it over each superpixel or patch, so a
round asks a person for the parts of an image the model gets wrong rather than whole
images. Inputs follow the segmentation vocabulary of :mod:`.registry` (per-image object
arrays; regions flat over the pool, ordered image by image).

Class balance (``balance=True``): each pixel's score is multiplied by ``w[c]`` for its
arg-max class ``c``, with ``w = 1 / f`` the inverse frequency of the predicted classes over
all pool pixels, normalised to mean 1 over the classes predicted somewhere (a class
predicted nowhere gets 0, no pixel carries it). Rare predicted classes thus weigh more,
against the background and large classes that dominate pixel counts. This is our plain
inverse-frequency form of the class-balanced acquisition of Cai et al. (CVPR 2021), who
weight a superpixel's uncertainty by a class-balance term of its dominant class.

References: Settles, "Active Learning Literature Survey" (2009) for entropy, margin and
least confidence; Houlsby, Huszár, Ghahramani & Lengyel, arXiv:1112.5745 (2011) and
Gal, Islam & Ghahramani, ICML 2017 for BALD on MC-dropout samples; Mackowiak, Lenz,
Ghori, Diego, Lange & Rother, "CEREALS - Cost-Effective REgion-based Active Learning for
Semantic Segmentation", BMVC 2018, and Cai, Xu, Liew & Foo, "Revisiting Superpixels for
Active Learning in Semantic Segmentation with Realistic Annotation Costs", CVPR 2021,
for selecting regions (patches, superpixels) instead of images.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.special import entr

from activelab.exceptions import InputError

from ._validation import (
    check_choice,
    check_fraction,
    check_k,
    check_labeled,
    check_mc_pixel_probs,
    check_pixel_probs,
    check_region_maps,
    check_region_owner,
    check_rng,
    pool_length,
)
from .registry import region_pool, register
from .selection import _top_k

F64 = NDArray[np.float64]
FloatArray = NDArray[np.floating[Any]]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]
#: How a pixel score map becomes an image score.
AGGREGATIONS = ("mean", "top")
_CITE_REGIONS = (
    "Mackowiak et al., 'CEREALS - Cost-Effective REgion-based Active Learning for Semantic Segmentation', "
    "BMVC 2018; Cai et al., 'Revisiting Superpixels for Active Learning in Semantic Segmentation with "
    "Realistic Annotation Costs', CVPR 2021"
)
_CITE_PIXELS = "Settles, Active Learning Literature Survey (2009), aggregated per image"
_CITE_BALD = "Gal, Islam & Ghahramani, ICML 2017; Houlsby et al., arXiv:1112.5745 (2011)"


# ----------------------------------------------------------------------------- pixel scores
def _classes_first(probs: Any) -> F64:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 3 or p.shape[0] < 1:
        raise InputError(f"pixel probabilities must have shape (C, H, W), got {p.shape}.")
    return p


def pixel_entropy(probs: Any) -> F64:
    """Shannon entropy (nats) of each pixel's class distribution. ``(C, H, W)`` -> ``(H, W)``."""
    return np.asarray(entr(_classes_first(probs)).sum(axis=0))


def pixel_margin(probs: Any) -> F64:
    """``1 - (p_top1 - p_top2)`` per pixel (1 = a tie between the two likeliest classes). ``(C, H, W)`` -> ``(H, W)``."""
    p = _classes_first(probs)
    if p.shape[0] < 2:
        return np.zeros(p.shape[1:])
    two = np.partition(p, p.shape[0] - 2, axis=0)[-2:]  # (2, H, W): second, first
    return np.asarray(1.0 - (two[1] - two[0]))


def pixel_least_confidence(probs: Any) -> F64:
    """``1 - max_c p_c`` per pixel. ``(C, H, W)`` -> ``(H, W)``."""
    return np.asarray(1.0 - _classes_first(probs).max(axis=0))


def pixel_bald(mc_probs: Any) -> F64:
    """BALD mutual information per pixel: ``H[mean_t p_t] - mean_t H[p_t]`` in nats, ``>= 0``.

    ``mc_probs: (T, C, h, w)`` stochastic predictions -> ``(h, w)``. 0 where the samples
    agree; high where each is confident but they disagree (Houlsby et al. 2011; Gal,
    Islam & Ghahramani, ICML 2017).
    """
    mc = np.asarray(mc_probs, dtype=np.float64)
    if mc.ndim != 4:
        raise InputError(f"MC pixel probabilities must have shape (T, C, h, w), got {mc.shape}.")
    mc = np.clip(mc, 0.0, None)
    h_mean = entr(mc.mean(axis=0)).sum(axis=0)  # (h, w) entropy of the mean prediction
    mean_h = entr(mc).sum(axis=1).mean(axis=0)  # (h, w) mean entropy of the samples
    return np.asarray(np.clip(h_mean - mean_h, 0.0, None))


PIXEL_SCORES: dict[str, Callable[[Any], F64]] = {
    "entropy": pixel_entropy,
    "margin": pixel_margin,
    "least_confidence": pixel_least_confidence,
}


def aggregate_pixels(score_map: Any, agg: str = "mean", q: float = 0.1) -> float:
    """One image score from a pixel score map ``(H, W)``.

    ``"mean"``: the mean over all pixels. ``"top"``: the mean of the ``max(1, floor(q * P))``
    highest of the ``P`` pixels, so a small uncertain object counts even on a large
    confident background. ``q`` in (0, 1].
    """
    check_choice(agg, "agg", AGGREGATIONS)
    frac = check_fraction(q, "q", low_open=True)
    s = np.asarray(score_map, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise InputError("score_map has no pixels; pass the (H, W) score map of an image.")
    if agg == "mean":
        return float(s.mean())
    n_top = max(1, math.floor(frac * s.size + 1e-9))
    return float(np.partition(s, s.size - n_top)[s.size - n_top :].mean())


def class_weights(pixel_probs: Any) -> F64:
    """Inverse pool frequency of each predicted class, normalised to mean 1 over the classes present.

    ``pixel_probs: (N,)`` of ``(C, H, W)`` (or ``(T, C, h, w)`` MC samples, whose mean is
    used) -> ``(C,)``; a class that is no pixel's arg-max gets 0. Example: 3 pixels
    predicted class 0 and 1 of class 1 give frequencies (3/4, 1/4), inverses (4/3, 4),
    weights (0.5, 1.5).
    """
    counts: F64 | None = None
    for probs in pixel_probs:
        p = np.asarray(probs)
        if p.ndim == 4:
            p = p.mean(axis=0)
        c = np.bincount(np.argmax(p, axis=0).reshape(-1), minlength=p.shape[0]).astype(np.float64)
        counts = c if counts is None else counts + c
    if counts is None:
        raise InputError("class_weights needs at least one image's probabilities.")
    present = counts > 0
    w = np.zeros_like(counts)
    w[present] = counts.sum() / counts[present]
    w[present] /= w[present].mean()
    return w


def _weighted(score_map: F64, probs: FloatArray, weights: F64 | None) -> F64:
    """The score map multiplied by each pixel's arg-max class weight (unchanged without weights)."""
    if weights is None:
        return score_map
    mean = probs.mean(axis=0) if probs.ndim == 4 else probs
    return np.asarray(score_map * weights[np.argmax(mean, axis=0)])


def image_scores(
    pixel_probs: Any, kind: str = "entropy", *, agg: str = "mean", q: float = 0.1, balance: bool = False
) -> F64:
    """One uncertainty score per image. ``pixel_probs: (N,)`` of ``(C, H, W)`` -> ``(N,)``.

    ``kind``: ``"entropy"``, ``"margin"`` or ``"least_confidence"`` per pixel, then
    :func:`aggregate_pixels` with ``agg`` and ``q``; ``balance`` weights each pixel by
    :func:`class_weights` of its predicted class first.
    """
    check_choice(kind, "kind", tuple(PIXEL_SCORES))
    maps = check_pixel_probs(pixel_probs)
    check_choice(agg, "agg", AGGREGATIONS)
    check_fraction(q, "q", low_open=True)
    weights = class_weights(maps) if _flag(balance, "balance") else None
    score = PIXEL_SCORES[kind]
    return np.array([aggregate_pixels(_weighted(score(p), p, weights), agg, q) for p in maps])


def bald_image_scores(mc_probs: Any, *, agg: str = "mean", q: float = 0.1, balance: bool = False) -> F64:
    """Per-image BALD: :func:`pixel_bald` aggregated by ``agg``/``q``. ``mc_probs: (N,)`` of ``(T, C, h, w)`` -> ``(N,)``.

    ``balance`` weights each pixel by the class weight of the arg-max of its mean prediction.
    """
    mcs = check_mc_pixel_probs(mc_probs)
    check_choice(agg, "agg", AGGREGATIONS)
    check_fraction(q, "q", low_open=True)
    weights = class_weights(mcs) if _flag(balance, "balance") else None
    return np.array([aggregate_pixels(_weighted(pixel_bald(mc), mc, weights), agg, q) for mc in mcs])


def region_scores(
    pixel_probs: Any, region_map: Any, region_owner: Any, kind: str = "entropy", *, balance: bool = False
) -> F64:
    """Mean pixel score of each region. ``(N,)`` of ``(C, H, W)``, ``(N,)`` of ``(H, W)`` ids, ``(R,)`` -> ``(R,)``.

    Regions are ordered image by image, then by id, as ``region_owner`` lists them;
    ``balance`` weights each pixel by its predicted class's :func:`class_weights` first.
    """
    check_choice(kind, "kind", tuple(PIXEL_SCORES))
    maps = check_pixel_probs(pixel_probs)
    owner = check_region_owner(region_owner, len(maps))
    regions = check_region_maps(region_map, owner, [p.shape[1:] for p in maps])
    weights = class_weights(maps) if _flag(balance, "balance") else None
    per_img = np.bincount(owner, minlength=len(maps))
    score = PIXEL_SCORES[kind]
    out: list[F64] = []
    for p, ids, r_i in zip(maps, regions, per_img.tolist(), strict=True):
        s = _weighted(score(p), p, weights).reshape(-1)
        flat = ids.reshape(-1)
        out.append(np.bincount(flat, weights=s, minlength=r_i) / np.bincount(flat, minlength=r_i))
    return np.concatenate(out)


def _flag(value: Any, name: str) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"{name} must be True or False, got {value!r}.")
    return bool(value)


# ----------------------------------------------------------------------------- image strategies
def _image_pick(scores: F64, k: int, rng: np.random.Generator, labeled: Any) -> IntArray:
    return _top_k(scores, k, rng, check_labeled(labeled, scores.shape[0]))


def _seg_uncertainty(
    kind: str, pixel_probs: Any, k: int, rng: np.random.Generator, labeled: Any, agg: str, q: float, balance: bool
) -> IntArray:
    check_rng(rng)
    kk = check_k(k)
    return _image_pick(image_scores(pixel_probs, kind, agg=agg, q=q, balance=balance), kk, rng, labeled)


@register("seg_entropy", requires={"pixel_probs"}, paper=_CITE_PIXELS)
def seg_entropy(
    pixel_probs: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    agg: str = "mean",
    q: float = 0.1,
    balance: bool = False,
) -> IntArray:
    """Pick the images whose pixels have the highest class entropy (aggregated by ``agg``).

    ``pixel_probs: (N,)`` of ``(C, H, W)``; ``agg``: ``"mean"`` or ``"top"`` (mean of the
    top ``q`` fraction of pixels); ``balance``: inverse class-frequency pixel weights.
    """
    return _seg_uncertainty("entropy", pixel_probs, k, rng, labeled, agg, q, balance)


@register("seg_margin", requires={"pixel_probs"}, paper=_CITE_PIXELS)
def seg_margin(
    pixel_probs: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    agg: str = "mean",
    q: float = 0.1,
    balance: bool = False,
) -> IntArray:
    """Pick the images whose pixels have the smallest gap between their two likeliest classes.

    Pixel score ``1 - (p_top1 - p_top2)``, aggregated by ``agg`` (``"mean"`` or ``"top"``
    with ``q``); ``balance``: inverse class-frequency pixel weights.
    """
    return _seg_uncertainty("margin", pixel_probs, k, rng, labeled, agg, q, balance)


@register("seg_least_confidence", requires={"pixel_probs"}, paper=_CITE_PIXELS)
def seg_least_confidence(
    pixel_probs: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    agg: str = "mean",
    q: float = 0.1,
    balance: bool = False,
) -> IntArray:
    """Pick the images whose pixels are least confident (``1 - max p``, aggregated by ``agg``).

    ``agg``: ``"mean"`` or ``"top"`` (mean of the top ``q`` fraction of pixels);
    ``balance``: inverse class-frequency pixel weights.
    """
    return _seg_uncertainty("least_confidence", pixel_probs, k, rng, labeled, agg, q, balance)


@register("seg_bald", requires={"mc_probs"}, paper=_CITE_BALD)
def seg_bald(
    mc_probs: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    agg: str = "mean",
    q: float = 0.1,
    balance: bool = False,
) -> IntArray:
    """Pick the images whose MC-dropout samples disagree most per pixel (BALD, aggregated by ``agg``).

    ``mc_probs: (N,)`` of ``(T, C, h, w)`` (a model with dropout, T stochastic passes);
    ``agg``: ``"mean"`` or ``"top"`` with ``q``; ``balance``: inverse class-frequency weights.
    """
    check_rng(rng)
    kk = check_k(k)
    return _image_pick(bald_image_scores(mc_probs, agg=agg, q=q, balance=balance), kk, rng, labeled)


# ----------------------------------------------------------------------------- region strategies
def _regions(region_owner: Any, region_labeled: Any, labeled: Any) -> tuple[IntArray, BoolArray]:
    """Validated owners and the region exclusion mask; ``labeled`` (N,) bounds the owners when given."""
    r, mask = region_pool(region_labeled, labeled)
    n = int(np.shape(labeled)[0]) if labeled is not None and np.ndim(labeled) == 1 else None
    owner = check_region_owner(region_owner, n)
    if owner.shape[0] != r:
        raise InputError(
            f"region_labeled has {r} entries but region_owner {owner.shape[0]}; pass one entry per region in both."
        )
    return owner, mask


def _region_uncertainty(
    kind: str,
    pixel_probs: Any,
    region_map: Any,
    region_owner: Any,
    region_labeled: Any,
    k: int,
    rng: np.random.Generator,
    labeled: Any,
    balance: bool,
) -> IntArray:
    check_rng(rng)
    kk = check_k(k)
    owner, mask = _regions(region_owner, region_labeled, labeled)
    n_images = pool_length("pixel_probs", pixel_probs)
    if labeled is not None and np.shape(labeled)[0] != n_images:
        raise InputError(
            f"labeled has {np.shape(labeled)[0]} entries but pixel_probs {n_images} images; pass one per pool image."
        )
    scores = region_scores(pixel_probs, region_map, owner, kind, balance=balance)
    return _top_k(scores, kk, rng, mask)


@register(
    "region_entropy",
    requires={"pixel_probs", "region_map", "region_owner", "region_labeled"},
    paper=_CITE_REGIONS,
    unit="regions",
)
def region_entropy(
    pixel_probs: Any,
    region_map: Any,
    region_owner: Any,
    region_labeled: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    balance: bool = False,
) -> IntArray:
    """Pick the regions (superpixels or patches) with the highest mean pixel entropy.

    Returns positions into the region list (``0..R-1``), never a ``region_labeled`` one;
    ``labeled``, the ``(N,)`` image mask, only bounds ``region_owner``. ``balance``: inverse
    class-frequency pixel weights. Entropy is CEREALS' uncertainty (Mackowiak et al. 2018).
    """
    return _region_uncertainty(
        "entropy", pixel_probs, region_map, region_owner, region_labeled, k, rng, labeled, balance
    )


@register(
    "region_margin",
    requires={"pixel_probs", "region_map", "region_owner", "region_labeled"},
    paper=_CITE_REGIONS,
    unit="regions",
)
def region_margin(
    pixel_probs: Any,
    region_map: Any,
    region_owner: Any,
    region_labeled: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    balance: bool = False,
) -> IntArray:
    """Pick the regions with the highest mean pixel margin score ``1 - (p_top1 - p_top2)``.

    Returns positions into the region list, never a ``region_labeled`` one; ``balance``:
    inverse class-frequency pixel weights.
    """
    return _region_uncertainty(
        "margin", pixel_probs, region_map, region_owner, region_labeled, k, rng, labeled, balance
    )


@register(
    "region_least_confidence",
    requires={"pixel_probs", "region_map", "region_owner", "region_labeled"},
    paper=_CITE_REGIONS,
    unit="regions",
)
def region_least_confidence(
    pixel_probs: Any,
    region_map: Any,
    region_owner: Any,
    region_labeled: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    balance: bool = False,
) -> IntArray:
    """Pick the regions with the highest mean pixel least-confidence score ``1 - max p``.

    Returns positions into the region list, never a ``region_labeled`` one; ``balance``:
    inverse class-frequency pixel weights.
    """
    return _region_uncertainty(
        "least_confidence", pixel_probs, region_map, region_owner, region_labeled, k, rng, labeled, balance
    )


@register("region_random", requires={"region_owner", "region_labeled"}, paper=_CITE_REGIONS, unit="regions")
def region_random(
    region_owner: Any, region_labeled: Any, k: int, *, rng: np.random.Generator, labeled: Any = None
) -> IntArray:
    """Pick unlabeled regions uniformly at random: the baseline region strategies must beat.

    Returns positions into the region list (``0..R-1``), never a ``region_labeled`` one.
    """
    check_rng(rng)
    kk = check_k(k)
    _, mask = _regions(region_owner, region_labeled, labeled)
    cand = np.flatnonzero(~mask)
    return np.asarray(rng.permutation(cand)[: min(kk, cand.size)], dtype=np.int64)
