"""A strategy that knows its budget: typicality while labels are few, then class-balanced uncertainty.

Hacohen, Dekel & Weinshall ("Active Learning on a Budget: Opposite Strategies Suit High and
Low Budgets", ICML 2022) show that with few labels the most *typical* items beat uncertain
ones (a model trained on tens of labels is too poor to say what it is unsure of), and the
opposite once labels are plentiful; Doucet et al. (TCM, 2023) switch from TypiClust to
margin sampling after the first rounds. :func:`auto_phase` is the switch rule, a pure
function of the labeled count and the number of classes, so it can be read and tested.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._validation import (
    check_choice,
    check_embeddings,
    check_k,
    check_labeled,
    check_labels,
    check_positive_float,
    check_probs,
    check_rng,
    check_same_n,
)
from .hybrid import gradient_factors
from .registry import register, select

IntArray = NDArray[np.int64]

#: Late-phase strategies ``auto`` can run (all read only probs, embeddings and labels).
LATE_STRATEGIES = ("margin", "badge", "cluster_margin", "entropy", "least_confidence", "ratio")
#: The default switch: labels per class at which ``auto`` leaves typicality (see docs/benchmarks.md).
PER_CLASS = 5.0


def auto_phase(n_labeled: int, n_classes: int, *, per_class: float = PER_CLASS) -> str:
    """Which phase ``auto`` is in: ``"typicality"`` while ``n_labeled < per_class * n_classes``,
    else ``"uncertainty"``.

    ``per_class`` labels per class is the budget below which a trained model's uncertainty
    is less useful than covering the data's dense regions (Hacohen et al., ICML 2022);
    the default was chosen by ``benchmarks/bench_auto_switch.py``.
    """
    return "typicality" if n_labeled < per_class * n_classes else "uncertainty"


@register(
    "auto",
    requires={"probs", "embeddings", "labels"},
    paper="Hacohen, Dekel & Weinshall, ICML 2022; Doucet et al. (TCM), arXiv:2403.03728 (2024)",
)
def auto(
    probs: Any,
    embeddings: Any,
    labels: Any,
    k: int,
    *,
    rng: np.random.Generator,
    labeled: Any = None,
    per_class: float = PER_CLASS,
    late: str = "margin",
    balance: bool = True,
) -> IntArray:
    """Budget-aware selection: TypiClust below the switch point, class-balanced uncertainty above.

    The phase is :func:`auto_phase` of the labeled count (``labeled.sum()``; without a
    mask, the items with ``labels >= 0``) and ``C = probs.shape[1]``. Below
    ``per_class * C`` labels it runs ``typiclust`` on ``embeddings``; above it runs
    ``late`` (margin by default; ``badge`` takes its gradient factors from ``probs``),
    inside ``class_balanced`` when ``balance`` is true, so the picks spread over the
    predicted classes (plain margin and entropy crowd into a few confusable classes).

    Args:
        probs: ``(N, C)`` class probabilities of the current model.
        embeddings: ``(N, d)`` features (the model's ``embed`` output).
        labels: ``(N,)`` int class per item, ``-1`` for unlabeled (class balance counts them).
        per_class: labels per class at which the phase switches.
        late: the late-phase strategy, one of :data:`LATE_STRATEGIES`.
        balance: wrap the late strategy in ``class_balanced``.

    Returns positions, best first. Cost: that of the phase's strategy.
    """
    check_rng(rng)
    kk = check_k(k)
    p = check_probs(probs)
    n, n_classes = p.shape
    x = check_embeddings(embeddings)
    check_same_n(n, embeddings=(x.shape[0], "(N, d)"))
    y = check_labels(labels, n, n_classes)
    mask = check_labeled(labeled, n)
    switch = check_positive_float(per_class, "per_class")
    check_choice(late, "late", LATE_STRATEGIES)
    n_labeled = int(mask.sum()) if labeled is not None else int((y >= 0).sum())
    if auto_phase(n_labeled, n_classes, per_class=switch) == "typicality":
        return select("typiclust", kk, rng=rng, labeled=mask, embeddings=x)
    inputs: dict[str, Any] = {"probs": p, "embeddings": x, "labels": y}
    if late == "badge":
        inputs["grad_factors"] = gradient_factors(p)
    if balance:
        return select("class_balanced", kk, rng=rng, labeled=mask, strategy=late, **inputs)
    return select(late, kk, rng=rng, labeled=mask, **inputs)
