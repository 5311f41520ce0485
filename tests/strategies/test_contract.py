"""One contract suite, parametrised over every registered strategy.

Inputs are built from each spec's ``requires``, so a newly registered strategy is
checked without editing this file: unique in-range positions, reproducible for a
seed, labeled items excluded, ``k >= N`` handled, bad shapes and NaN rejected.
A region strategy (``unit="regions"``) is checked the same way over its regions: the
suite's pool of N items becomes R = N regions and its ``labeled`` mask ``region_labeled``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from activelab.exceptions import InputError
from activelab.strategies import get_strategy, gradient_factors, list_strategies, select
from activelab.strategies.registry import DETECTION_INPUTS, SEGMENTATION_INPUTS

ALL = list_strategies()
N_CLASSES = 3
N_NOISE_LEVELS = 3


def reads_boxes(name: str) -> bool:
    """Detection strategies read box arrays and need ``labeled`` (it gives N)."""
    return bool(get_strategy(name).inputs & DETECTION_INPUTS)


def reads_pixels(name: str) -> bool:
    """Segmentation strategies read per-image maps (``mc_probs`` too, per image)."""
    return get_strategy(name).fn.__module__ == "activelab.strategies.segmentation"


def is_region(name: str) -> bool:
    return get_strategy(name).unit == "regions"


def objects(items: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    out[:] = items
    return out


def pixel_maps(g: np.random.Generator, n: int) -> np.ndarray:
    """``(n,)`` of ``(C, 3, 4)`` float16 probabilities (a model's half-precision output)."""
    return objects(
        [g.dirichlet(np.ones(N_CLASSES), size=(3, 4)).transpose(2, 0, 1).astype(np.float16) for _ in range(n)]
    )


def region_inputs(g: np.random.Generator, r: int) -> dict[str, Any]:
    """R = r regions: images of 3 x 4 pixels with up to 4 regions each (the last image may have fewer)."""
    sizes = [min(4, r - 4 * i) for i in range(-(-r // 4))]
    maps = [np.arange(12).reshape(3, 4) % r_i for r_i in sizes]
    return {
        "pixel_probs": pixel_maps(g, len(sizes)),
        "region_map": objects([m.astype(np.int32) for m in maps]),
        "region_owner": np.repeat(np.arange(len(sizes)), sizes),
        "region_pixels": np.concatenate([np.bincount(m.reshape(-1)) for m in maps]),
    }


def box_inputs(g: np.random.Generator, n: int) -> dict[str, Any]:
    """Two boxes per image on average; the last image owns one, some images own none."""
    m = 2 * n
    owner = g.integers(0, n, m)
    owner[0] = n - 1
    return {
        "box_owner": owner,
        "box_probs": g.dirichlet(np.ones(N_CLASSES), size=m),
        "box_scores": g.uniform(0.05, 1.0, m),
        "box_features": g.standard_normal((m, 4)),
        "box_flip_iou": g.random(m),
        "box_flip_probs": g.dirichlet(np.ones(N_CLASSES), size=m),
        "box_noise_iou": g.random((m, N_NOISE_LEVELS)),
        "class_difficulty": g.random(N_CLASSES),
    }


def make_inputs(name: str, n: int, seed: int = 0, labeled: np.ndarray | None = None) -> dict[str, Any]:
    """Pool arrays for ``name``'s required inputs (plus labels consistent with ``labeled``)."""
    g = np.random.default_rng(seed)
    need = get_strategy(name).inputs
    out: dict[str, Any] = {}
    probs = g.dirichlet(np.ones(N_CLASSES), size=n)
    if "probs" in need:
        out["probs"] = probs
    if "mc_probs" in need and reads_pixels(name):
        out["mc_probs"] = objects(
            [g.dirichlet(np.ones(N_CLASSES), size=(2, 3, 4)).transpose(0, 3, 1, 2) for _ in range(n)]
        )
    elif "mc_probs" in need:
        out["mc_probs"] = g.dirichlet(np.ones(N_CLASSES), size=(5, n))
    if "embeddings" in need:
        out["embeddings"] = g.standard_normal((n, 4))
    if "marginals" in need:
        out["marginals"] = g.random((n, N_CLASSES))
    if "grad_factors" in need:
        out["grad_factors"] = gradient_factors(probs)
    known = labeled is not None and labeled.dtype == bool and labeled.shape == (n,)
    if "labels" in need:
        labels = np.full(n, -1)
        if known:
            labels[labeled] = probs[labeled].argmax(1)
        out["labels"] = labels
    if "label_matrix" in need:
        matrix = np.full((n, N_CLASSES), -1)
        if known:
            matrix[labeled] = (g.random((int(labeled.sum()), N_CLASSES)) < 0.4).astype(int)
        out["label_matrix"] = matrix
    if need & DETECTION_INPUTS:
        out.update({key: v for key, v in box_inputs(g, n).items() if key in need})
    if is_region(name):
        out.update({key: v for key, v in region_inputs(g, n).items() if key in need})
        out["region_labeled"] = labeled if labeled is not None else np.zeros(n, dtype=bool)
    elif "pixel_probs" in need:
        out["pixel_probs"] = pixel_maps(g, n)
    if not need:
        out["n_samples"] = n
    return out


def run(
    name: str, k: int, n: int = 40, seed: int = 0, labeled: np.ndarray | None = None, **overrides: Any
) -> np.ndarray:
    inputs = make_inputs(name, n, seed, labeled)
    inputs.update(overrides)
    if labeled is not None and "n_samples" not in overrides:
        inputs.pop("n_samples", None)
    if labeled is None and reads_boxes(name):
        labeled = np.zeros(n, dtype=bool)
    if is_region(name):
        labeled = None  # the suite's mask is region_labeled (make_inputs); images stay selectable
    return select(name, k, rng=np.random.default_rng(seed), labeled=labeled, **inputs)


def some_labeled(n: int, seed: int = 1) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[np.random.default_rng(seed).choice(n, size=n // 4, replace=False)] = True
    return m


@pytest.mark.parametrize("name", ALL)
def test_returns_unique_in_range_unlabeled_positions(name: str) -> None:
    labeled = some_labeled(40)
    out = run(name, 7, labeled=labeled)
    assert out.dtype == np.int64 and out.ndim == 1
    assert len(out) == 7 and len(set(out.tolist())) == 7
    assert out.min() >= 0 and out.max() < 40
    assert not labeled[out].any()


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_result(name: str) -> None:
    labeled = some_labeled(40)
    assert run(name, 6, seed=3, labeled=labeled).tolist() == run(name, 6, seed=3, labeled=labeled).tolist()


@pytest.mark.parametrize("name", ALL)
def test_k_at_least_pool_returns_every_unlabeled_item(name: str) -> None:
    labeled = some_labeled(20)
    out = run(name, 1000, n=20, labeled=labeled)
    assert sorted(out.tolist()) == np.flatnonzero(~labeled).tolist()
    out = run(name, 20, n=20)
    assert sorted(out.tolist()) == list(range(20))


@pytest.mark.parametrize("name", ALL)
def test_single_unlabeled_item(name: str) -> None:
    labeled = np.ones(12, dtype=bool)
    labeled[5] = False
    assert run(name, 3, n=12, labeled=labeled).tolist() == [5]


@pytest.mark.parametrize("name", ALL)
def test_bad_k_rejected(name: str) -> None:
    for k in (0, -1, 2.5, True):
        with pytest.raises(InputError, match="k must"):
            run(name, k)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ALL)
def test_labeled_mask_of_wrong_length_or_type_rejected(name: str) -> None:
    extra: dict[str, Any] = {} if get_strategy(name).inputs else {"n_samples": 40}
    with pytest.raises(InputError, match="labeled"):
        run(name, 3, labeled=np.zeros(39, dtype=bool), **extra)
    with pytest.raises(InputError, match="labeled must be a boolean mask"):
        run(name, 3, labeled=np.zeros(40, dtype=int))
    with pytest.raises(InputError, match="nothing is left"):
        run(name, 3, labeled=np.ones(40, dtype=bool))


def _corruptions(name: str) -> list[tuple[str, Any]]:
    """(input, bad value) pairs: NaN, inf, wrong ndim, wrong N, empty pool."""
    base = make_inputs(name, 40)
    bad: list[tuple[str, Any]] = []
    for key in sorted(get_strategy(name).inputs):
        v = np.asarray(base[key])
        if key == "labels":
            bad += [(key, v[:-1]), (key, np.full(40, -5)), (key, v.astype(float) + 0.5), (key, v[:, None])]
            continue
        if key == "label_matrix":
            mixed = v.copy()
            mixed[0, 0] = 1
            bad += [(key, v[:-1]), (key, np.full_like(v, -5)), (key, v + 0.5), (key, v[..., None]), (key, mixed)]
            continue
        if key in DETECTION_INPUTS:
            bad += _box_corruptions(key, v)
            continue
        if key in SEGMENTATION_INPUTS or (key == "mc_probs" and reads_pixels(name)):
            need = get_strategy(name).inputs
            bad += _segmentation_corruptions(key, base[key], several=len(need) > 1, n_images="pixel_probs" in need)
            continue
        nan = v.astype(float).copy()
        nan.flat[3] = np.nan
        inf = v.astype(float).copy()
        inf.flat[5] = np.inf
        short = v[:, :-1] if key == "mc_probs" else v[:-1]
        empty = v[:, :0] if key == "mc_probs" else v[:0]
        bad += [(key, nan), (key, inf), (key, v[..., None]), (key, v.reshape(-1)), (key, empty)]
        if len(get_strategy(name).inputs) > 1:
            bad.append((key, short))
    if not get_strategy(name).inputs:
        bad += [("n_samples", 0), ("n_samples", -3)]
    return bad


def _box_corruptions(key: str, v: np.ndarray) -> list[tuple[str, Any]]:
    """NaN, inf, an extra axis, a missing axis, no rows (M or C then disagrees) and one row short."""
    nan = v.astype(float).copy()
    nan.flat[3 % v.size] = np.nan
    inf = v.astype(float).copy()
    inf.flat[1] = np.inf
    bad: list[tuple[str, Any]] = [(key, nan), (key, inf), (key, v[..., None]), (key, v[:0]), (key, v[:-1])]
    if v.ndim == 2:
        bad.append((key, v.reshape(-1)))
    return bad


def _segmentation_corruptions(key: str, v: Any, *, several: bool, n_images: bool) -> list[tuple[str, Any]]:
    """Per-image maps: NaN, inf, an image with a wrong rank, an empty pool, one image short;
    region arrays: out-of-range, unordered or non-integer owners, ids with gaps, wrong dtypes."""
    if key in ("pixel_probs", "mc_probs"):
        nan = [np.array(x, dtype=float) for x in v]
        nan[0].flat[3] = np.nan
        inf = [np.array(x, dtype=float) for x in v]
        inf[-1].flat[1] = np.inf
        flat = objects([np.asarray(x).reshape(-1) for x in v])
        bad = [(key, objects(nan)), (key, objects(inf)), (key, flat), (key, v[:0]), (key, np.asarray(v[0]))]
        return bad + ([(key, v[:-1])] if several else [])
    if key == "region_map":
        gap = [m.copy() for m in v]
        gap[0][gap[0] == 1] = 0
        high = [m + 1 for m in v]
        return [
            (key, objects(gap)),
            (key, objects(high)),
            (key, objects([m[:, :-1] for m in v])),
            (key, v[:-1]),
            (key, objects([m.astype(float) for m in v])),
        ]
    if key == "region_owner":  # owners past the last image are caught where pixel_probs gives N
        bad = [(key, v[::-1].copy()), (key, v - 1), (key, v + 0.5), (key, v[:-1]), (key, v[:, None])]
        return bad + ([(key, v + 100)] if n_images else [])
    if key == "region_labeled":
        return [(key, v.astype(int)), (key, v[:-1]), (key, v[:, None])]
    raise AssertionError(f"no corruptions for {key}")


@pytest.mark.parametrize("name", ALL)
def test_bad_shapes_nan_and_empty_pools_rejected(name: str) -> None:
    for key, value in _corruptions(name):
        with pytest.raises(InputError):
            run(name, 3, **{key: value})


@pytest.mark.parametrize("name", ALL)
def test_unnormalised_probabilities_rejected(name: str) -> None:
    need = get_strategy(name).inputs
    for key in ("probs", "mc_probs", "box_probs", "box_flip_probs", "pixel_probs"):
        if key in need:
            v = make_inputs(name, 40)[key] * 2.0
            with pytest.raises(InputError, match="sum to 1"):
                run(name, 3, **{key: v})


@pytest.mark.parametrize("name", [n for n in ALL if "marginals" in get_strategy(n).inputs])
def test_marginals_outside_unit_interval_rejected(name: str) -> None:
    for shift in (1.5, -1.5):
        with pytest.raises(InputError, match=r"in \[0, 1\]"):
            run(name, 3, marginals=make_inputs(name, 40)["marginals"] + shift)


@pytest.mark.parametrize("name", ALL)
def test_unknown_parameter_rejected(name: str) -> None:
    with pytest.raises(InputError, match="unknown parameter"):
        run(name, 3, not_a_param=1)


# --------------------------------------------------------------------------- property tests
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(1, 30), k=st.integers(1, 40), seed=st.integers(0, 2**16), frac=st.floats(0.0, 0.9))
@pytest.mark.parametrize("name", ALL)
def test_invariants_hold_on_random_pools(name: str, n: int, k: int, seed: int, frac: float) -> None:
    g = np.random.default_rng(seed + 1)
    labeled = g.random(n) < frac
    if labeled.all():
        labeled[g.integers(n)] = False
    out = run(name, k, n=n, seed=seed, labeled=labeled)
    n_unl = int((~labeled).sum())
    assert len(out) == min(k, n_unl)
    assert len(set(out.tolist())) == len(out)
    assert ((out >= 0) & (out < n)).all()
    assert not labeled[out].any()
    assert out.tolist() == run(name, k, n=n, seed=seed, labeled=labeled).tolist()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 60), k=st.integers(1, 70), seed=st.integers(0, 2**16), ties=st.booleans())
def test_top_k_properties(n: int, k: int, seed: int, ties: bool) -> None:
    from activelab.strategies import top_k

    g = np.random.default_rng(seed)
    scores = g.integers(0, 3, n).astype(float) if ties else g.random(n)
    labeled = g.random(n) < 0.3
    if labeled.all():
        labeled[0] = False
    out = top_k(scores, k, rng=np.random.default_rng(seed), labeled=labeled)
    assert len(out) == min(k, int((~labeled).sum()))
    assert not labeled[out].any()
    assert np.all(np.diff(scores[out]) <= 0)  # best first
    rest = np.setdiff1d(np.flatnonzero(~labeled), out)
    if rest.size and out.size:
        assert scores[rest].max() <= scores[out].min()  # nothing better was left out
