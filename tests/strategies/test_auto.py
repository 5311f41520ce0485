"""``auto`` switches from TypiClust to class-balanced uncertainty exactly where ``auto_phase`` says."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.strategies import auto_phase, gradient_factors, select


def test_auto_phase_switches_at_per_class_times_classes() -> None:
    assert auto_phase(49, 10) == "typicality"  # default: 5 labels per class
    assert auto_phase(50, 10) == "uncertainty"
    assert auto_phase(99, 10, per_class=10) == "typicality"
    assert auto_phase(100, 10, per_class=10) == "uncertainty"
    assert auto_phase(14, 3, per_class=5) == "typicality"
    assert auto_phase(15, 3, per_class=5) == "uncertainty"
    assert auto_phase(0, 2, per_class=0.5) == "typicality"
    assert auto_phase(1, 2, per_class=0.5) == "uncertainty"


def pool() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two blobs of 20 (class 0 at x=0, class 1 at x=10) and two far outliers the model is unsure of:
    item 40 (p = .55/.45, margin .1, predicted 0) and item 41 (p = .4/.6, margin .2, predicted 1)."""
    g = np.random.default_rng(0)
    emb = np.concatenate([g.normal(0, 1, (20, 2)), g.normal(0, 1, (20, 2)) + [10, 0], [[50, 50], [-50, 50]]])
    probs = np.concatenate([np.tile([0.9, 0.1], (20, 1)), np.tile([0.2, 0.8], (20, 1)), [[0.55, 0.45], [0.4, 0.6]]])
    return emb, probs, np.repeat([0, 1, -1], [20, 20, 2])


def labeled_state(n0: int, n1: int) -> tuple[np.ndarray, np.ndarray]:
    """``n0`` labeled items of blob 0 and ``n1`` of blob 1: the mask and the labels (-1 elsewhere)."""
    _, _, truth = pool()
    mask = np.zeros(42, dtype=bool)
    mask[:n0] = True
    mask[20 : 20 + n1] = True
    return mask, np.where(mask, truth, -1)


def test_below_the_switch_auto_is_typiclust() -> None:
    emb, probs, _ = pool()
    mask, labels = labeled_state(3, 2)  # 5 labels < 3 per class * 2 classes
    for seed in range(3):
        got = select(
            "auto",
            4,
            rng=np.random.default_rng(seed),
            labeled=mask,
            probs=probs,
            embeddings=emb,
            labels=labels,
            per_class=3,
        )
        want = select("typiclust", 4, rng=np.random.default_rng(seed), labeled=mask, embeddings=emb)
        assert got.tolist() == want.tolist()
        assert not {40, 41} & set(got.tolist())  # the outliers are not typical


def test_at_the_switch_auto_is_class_balanced_margin() -> None:
    emb, probs, _ = pool()
    mask, labels = labeled_state(4, 2)  # 6 labels = 3 per class * 2 classes; class 1 is the rarer
    kw = {"labeled": mask, "probs": probs, "embeddings": emb, "labels": labels}
    # one pick goes to the rarer class 1, and its most uncertain predicted member is item 41;
    # plain margin would take item 40 (the smaller margin, predicted class 0)
    assert select("auto", 1, rng=np.random.default_rng(0), per_class=3, **kw).tolist() == [41]
    assert select("auto", 1, rng=np.random.default_rng(0), per_class=3, balance=False, **kw).tolist() == [40]
    for seed in range(3):
        got = select("auto", 5, rng=np.random.default_rng(seed), per_class=3, **kw)
        want = select("class_balanced", 5, rng=np.random.default_rng(seed), strategy="margin", **kw)
        assert got.tolist() == want.tolist()
        got = select("auto", 5, rng=np.random.default_rng(seed), per_class=3, late="badge", **kw)
        want = select(
            "class_balanced",
            5,
            rng=np.random.default_rng(seed),
            strategy="badge",
            grad_factors=gradient_factors(probs),
            **kw,
        )
        assert got.tolist() == want.tolist()


def test_without_a_mask_the_labels_count() -> None:
    emb, probs, _ = pool()
    _, labels = labeled_state(4, 2)
    # labels say 6 are labeled -> uncertainty; the labeled items themselves may come back without a mask
    got = select("auto", 1, rng=np.random.default_rng(0), probs=probs, embeddings=emb, labels=labels, per_class=3)
    assert got.tolist() == [41]


def test_bad_parameters_name_the_fix() -> None:
    emb, probs, _ = pool()
    mask, labels = labeled_state(4, 2)
    kw = {"labeled": mask, "probs": probs, "embeddings": emb, "labels": labels}
    with pytest.raises(InputError, match="late must be one of"):
        select("auto", 1, rng=np.random.default_rng(0), late="bald", **kw)
    with pytest.raises(InputError, match="per_class must be a positive"):
        select("auto", 1, rng=np.random.default_rng(0), per_class=0, **kw)


def test_late_phase_keeps_the_contract_on_random_pools() -> None:
    # the shared contract suite labels too few items to leave typicality; here per_class=1 does
    for seed in range(6):
        g = np.random.default_rng(seed)
        n, k = int(g.integers(5, 40)), int(g.integers(1, 45))
        probs = g.dirichlet(np.ones(3), size=n)
        mask = g.random(n) < 0.5
        mask[0] = False
        labels = np.where(mask, probs.argmax(1), -1)
        for late in ("margin", "badge"):
            out = select(
                "auto",
                k,
                rng=g,
                labeled=mask,
                probs=probs,
                embeddings=g.standard_normal((n, 4)),
                labels=labels,
                per_class=0.1,
                late=late,
            )
            assert len(out) == min(k, int((~mask).sum())) == len(set(out.tolist()))
            assert not mask[out].any()
