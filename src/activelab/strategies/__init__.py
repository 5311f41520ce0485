"""Query strategies: pure functions over arrays that pick what to label next.

Every strategy has the signature ``(inputs..., k, *, rng, labeled=None, **params)``
and returns unique int64 positions ``0..N-1`` of unlabeled items, most informative
first (all unlabeled items, still ordered, when ``k`` exceeds them). Call them
directly or by name through :func:`select`::

    from activelab.strategies import select, required_inputs
    needed = required_inputs("badge")            # {'grad_factors', 'embeddings'}
    picks = select("badge", 100, rng=np.random.default_rng(0), labeled=mask,
                   grad_factors=gradient_factors(probs), embeddings=emb)

See ``docs/strategies.md`` for the guide and :mod:`.registry` for the input vocabulary.
"""

from __future__ import annotations

from . import bayesian, budget, detection, diversity, hybrid, multilabel, segmentation, uncertainty
from .bayesian import bald_scores, joint_entropy, mean_std_scores, variation_ratio_scores
from .budget import auto_phase
from .detection import (
    aggregate_boxes,
    cald_scores,
    difficulty_weights,
    localization_stability_scores,
    ppal_uncertainty,
)
from .diversity import outlier_scores
from .hybrid import gradient_factors
from .multilabel import binary_uncertainty, cvirs_scores, label_vector_distance, multilabel_uncertainty_scores
from .registry import (
    VOCABULARY,
    StrategySpec,
    get_strategy,
    list_strategies,
    register,
    required_inputs,
    select,
    unregister,
)
from .segmentation import (
    aggregate_pixels,
    class_weights,
    image_scores,
    pixel_bald,
    pixel_entropy,
    pixel_least_confidence,
    pixel_margin,
    region_scores,
)
from .selection import select_budget, top_k
from .uncertainty import egl_scores, entropy_scores, least_confidence_scores, margin_scores, ratio_scores

__all__ = [
    "VOCABULARY",
    "StrategySpec",
    "aggregate_boxes",
    "aggregate_pixels",
    "auto_phase",
    "bald_scores",
    "bayesian",
    "binary_uncertainty",
    "budget",
    "cald_scores",
    "class_weights",
    "cvirs_scores",
    "detection",
    "difficulty_weights",
    "diversity",
    "egl_scores",
    "entropy_scores",
    "get_strategy",
    "gradient_factors",
    "hybrid",
    "image_scores",
    "joint_entropy",
    "label_vector_distance",
    "least_confidence_scores",
    "list_strategies",
    "localization_stability_scores",
    "margin_scores",
    "mean_std_scores",
    "multilabel",
    "multilabel_uncertainty_scores",
    "outlier_scores",
    "pixel_bald",
    "pixel_entropy",
    "pixel_least_confidence",
    "pixel_margin",
    "ppal_uncertainty",
    "ratio_scores",
    "region_scores",
    "register",
    "required_inputs",
    "segmentation",
    "select",
    "select_budget",
    "top_k",
    "uncertainty",
    "unregister",
    "variation_ratio_scores",
]
