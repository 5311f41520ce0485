"""The strategy registry: one name per strategy, everywhere (CLI flag, config key, loop).

A strategy is registered with the inputs it needs, named from a fixed vocabulary::

    @register("margin", requires={"probs"}, paper="Scheffer et al., IDA 2001")
    def margin(probs, k, *, rng, labeled=None): ...

The loop reads :meth:`StrategySpec.requires_for` (or the module-level
:func:`required_inputs`) to know which arrays to compute, and calls only :func:`select`.

Input vocabulary (every array indexes the same N pool items, in the same order).
Single-label strategies read ``probs``; multi-label ones read ``marginals`` and
``label_matrix``; embedding strategies work for every task. The task (see
:mod:`activelab.tasks`) computes the prediction-derived arrays from the model's outputs.

``probs``
    ``(N, C)`` class probabilities, rows sum to 1 (single-label: one class per item).
``marginals``
    ``(N, C)`` independent per-class probabilities in ``[0, 1]`` (multi-label: a
    sigmoid per class; rows need not sum to 1).
``mc_probs``
    ``(T, N, C)`` T stochastic predictions (MC-dropout passes or ensemble members).
    Segmentation passes it per image instead: an object array ``(N,)`` of
    ``(T, C, h, w)`` (h, w may be a reduced resolution, e.g. a quarter of the image's).
``embeddings``
    ``(N, d)`` float features (penultimate layer / backbone embedding).
``grad_factors``
    ``(N, C)`` float ``d loss / d logits`` at the model's own predicted label, computed
    by the task: ``p - onehot(argmax p)`` for softmax cross-entropy, ``p - (p >= 0.5)``
    for per-class binary cross-entropy.
``grad_embeddings``
    BADGE-style last-layer gradient embeddings ``g_i = grad_factors_i (x) embeddings_i``,
    passed in *factored* form: the caller passes ``grad_factors`` and ``embeddings`` and
    the strategy uses ``<g_i, g_j> = (a_i . a_j)(h_i . h_j)``; the ``N x (C*d)`` matrix
    is never built. :attr:`StrategySpec.inputs` expands it.
``labels``
    ``(N,)`` int class per item, ``-1`` for unlabeled (single-label class balance).
``label_matrix``
    ``(N, C)`` int: a labeled item's 0/1 class indicators, a row of ``-1`` for an
    unlabeled one (multi-label).

Detection inputs. A detector predicts a variable number of boxes per image, so box
arrays are flat over the M predicted boxes of the whole pool, with ``box_owner``
naming each box's image; an image may own no box. N comes from ``labeled``, which
detection strategies require.

``box_probs``
    ``(M, C)`` float: each box's distribution over the object classes (rows sum to 1).
``box_scores``
    ``(M,)`` float in [0, 1]: each box's detection confidence.
``box_owner``
    ``(M,)`` int: the pool position (0..N-1) of each box's image.
``box_features``
    ``(M, d)`` float: each box's RoI feature (PPAL's diversity stage).
``box_flip_iou``
    ``(M,)`` float in [0, 1]: IoU of each box with its best same-image match among the
    boxes predicted on the horizontally flipped image (0 without a match); CALD.
``box_flip_probs``
    ``(M, C)`` float: that match's class distribution (uniform ``1/C`` without a match).
``box_noise_iou``
    ``(M, K)`` float in [0, 1]: per noise level, IoU of each box with its best match
    among the boxes predicted on a noisy copy (Kao et al. 2018).
``class_difficulty``
    ``(C,)`` float in [0, 1]: PPAL's per-class difficulty, ``1 -`` the mean quality
    (IoU x score) of the model's matched predictions on the labeled images.

Segmentation inputs. Images may differ in size, so per-image maps are object arrays
``(N,)`` of arrays; regions (superpixels or patches) are flat over the R regions of the
whole pool, ordered image by image and then by region id, with ``region_owner`` naming
each region's image.

``pixel_probs``
    object ``(N,)`` of ``(C, H, W)`` float: each image's per-pixel class probabilities
    (sum to 1 over C at every pixel; float16 allowed).
``region_map``
    object ``(N,)`` of ``(H, W)`` int: each pixel's region id ``0..R_i-1`` within its
    image (same H, W as the image's ``pixel_probs``).
``region_owner``
    ``(R,)`` int: the pool position (0..N-1) of each region's image, non-decreasing.
``region_pixels``
    ``(R,)`` int: pixels per region (the cost of labeling it, for a budget in pixels).
``region_labeled``
    ``(R,)`` bool: the region is already labeled (at least half its pixels are).
``pixel_labeled_fraction``
    ``(N,)`` float in [0, 1]: the fraction of each image's pixels already labeled.

Units. A strategy registered with ``unit="images"`` (the default) returns pool
positions 0..N-1 and never a ``labeled`` one; one registered with ``unit="regions"``
returns positions into the region list 0..R-1 and never a ``region_labeled`` one (its
"N" is R; an image with some labeled pixels stays selectable). ``select`` and
:func:`~.selection.select_budget` read the unit, so a caller treats both alike.
"""

from __future__ import annotations

import fnmatch
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from activelab.exceptions import InputError, StrategyContractError

from ._validation import (
    BOX_INPUTS,
    CLASS_INPUTS,
    PIXEL_INPUTS,
    REGION_INPUTS,
    check_box_inputs,
    check_choice,
    check_k,
    check_labeled,
    check_rng,
    pool_length,
)

StrategyFn = Callable[..., NDArray[np.int64]]

#: Names a strategy may list in ``requires``.
DETECTION_INPUTS: frozenset[str] = BOX_INPUTS | CLASS_INPUTS
#: Segmentation's per-image maps and flat region arrays.
SEGMENTATION_INPUTS: frozenset[str] = PIXEL_INPUTS | REGION_INPUTS
VOCABULARY: frozenset[str] = (
    frozenset(
        {"probs", "marginals", "mc_probs", "embeddings", "grad_factors", "grad_embeddings", "labels", "label_matrix"}
    )
    | DETECTION_INPUTS
    | SEGMENTATION_INPUTS
)
#: What a strategy's positions index: pool images (0..N-1) or the pool's regions (0..R-1).
UNITS: tuple[str, ...] = ("images", "regions")
#: The arrays the caller computes for each vocabulary entry.
CONCRETE_INPUTS: Mapping[str, frozenset[str]] = {
    "probs": frozenset({"probs"}),
    "marginals": frozenset({"marginals"}),
    "mc_probs": frozenset({"mc_probs"}),
    "embeddings": frozenset({"embeddings"}),
    "grad_factors": frozenset({"grad_factors"}),
    "grad_embeddings": frozenset({"grad_factors", "embeddings"}),
    "labels": frozenset({"labels"}),
    "label_matrix": frozenset({"label_matrix"}),
    **{name: frozenset({name}) for name in sorted(DETECTION_INPUTS | SEGMENTATION_INPUTS)},
}
#: Array keywords ``select`` accepts and forwards only to strategies that take them.
ARRAY_INPUTS: frozenset[str] = (
    frozenset({"probs", "marginals", "mc_probs", "embeddings", "grad_factors", "labels", "label_matrix"})
    | DETECTION_INPUTS
    | SEGMENTATION_INPUTS
)

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True)
class StrategySpec:
    """A registered strategy.

    Attributes:
        name: the registry name, e.g. ``"margin"``.
        fn: the strategy function ``(inputs..., k, *, rng, labeled=None, **params) -> (k,) int64``.
        requires: vocabulary names it needs with its default parameters.
        paper: the reference it implements.
        doc: the first line of the function's docstring.
        inner: for wrappers, the name of the parameter that names the inner strategy
            (its inputs are added by :meth:`requires_for`); ``None`` otherwise.
        unit: what the returned positions index: ``"images"`` (pool positions 0..N-1)
            or ``"regions"`` (positions into the flat region list 0..R-1, see the
            module docstring); the loop reads it to turn picks into what a person labels.
    """

    name: str
    fn: StrategyFn
    requires: frozenset[str]
    paper: str = ""
    doc: str = ""
    inner: str | None = None
    unit: str = "images"
    _own: frozenset[str] = field(default=frozenset(), repr=False, compare=False)

    @property
    def inputs(self) -> frozenset[str]:
        """The concrete arrays to compute for :attr:`requires` (``grad_embeddings`` expanded)."""
        return _concrete(self.requires)

    def requires_for(self, **params: Any) -> frozenset[str]:
        """Vocabulary names needed when called with ``params`` (wrappers add their inner strategy's)."""
        if self.inner is None:
            return self.requires
        inner_name = params.get(self.inner, _default_param(self.fn, self.inner))
        inner_params = params.get("params") or {}
        inner = _inner_spec(self.name, str(inner_name))
        return self._own | inner.requires_for(**inner_params)


_REGISTRY: dict[str, StrategySpec] = {}


def _concrete(names: frozenset[str]) -> frozenset[str]:
    out: set[str] = set()
    for n in names:
        out |= CONCRETE_INPUTS[n]
    return frozenset(out)


def _default_param(fn: StrategyFn, name: str) -> Any:
    p = inspect.signature(fn).parameters.get(name)
    if p is None or p.default is inspect.Parameter.empty:
        raise InputError(f"strategy function {fn.__name__} has no default for parameter {name!r}")
    return p.default


def register(
    name: str,
    *,
    requires: set[str] | frozenset[str],
    paper: str = "",
    inner: str | None = None,
    unit: str = "images",
) -> Callable[[StrategyFn], StrategyFn]:
    """Decorator registering a strategy function under ``name``.

    Args:
        name: lower_snake_case registry name; registering a taken name raises.
        requires: inputs the function needs, from :data:`VOCABULARY`.
        paper: the reference it implements (shown by ``activelab strategies``).
        inner: for wrappers, the parameter naming the inner strategy.
        unit: ``"images"`` (default: positions into the pool) or ``"regions"``
            (positions into the region list; ``requires`` must include ``region_labeled``,
            which gives R and the regions never to return).

    The function must accept its inputs and ``k`` as keywords plus keyword-only
    ``rng`` and ``labeled``, and return unique int64 positions, best first.
    """
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise InputError(f"strategy name must be lower_snake_case (e.g. 'my_margin'), got {name!r}.")
    check_choice(unit, f"strategy {name!r}: unit", UNITS)
    req = frozenset(requires)
    unknown = req - VOCABULARY
    if unknown:
        raise InputError(
            f"strategy {name!r} requires unknown input(s) {sorted(unknown)}; choose from {sorted(VOCABULARY)}."
        )
    if unit == "regions" and "region_labeled" not in req:
        raise InputError(
            f"region strategy {name!r} must require 'region_labeled': it gives R and the regions never to return."
        )
    if unit == "regions" and inner is not None:
        raise InputError(f"wrapper {name!r} cannot be a region strategy; wrappers pick images.")

    def deco(fn: StrategyFn) -> StrategyFn:
        if name in _REGISTRY:
            raise InputError(
                f"a strategy named {name!r} is already registered "
                f"({_REGISTRY[name].fn.__module__}.{_REGISTRY[name].fn.__qualname__}); "
                "pick another name or unregister the old one first."
            )
        params = inspect.signature(fn).parameters
        for needed in ("k", "rng"):
            if needed not in params:
                raise InputError(f"strategy function {fn.__qualname__} must take a {needed!r} argument.")
        doc = (inspect.getdoc(fn) or "").strip().split("\n", 1)[0]
        full = req
        if inner is not None:
            inner_default = _default_param(fn, inner)
            full = req | _inner_spec(name, str(inner_default)).requires
        _REGISTRY[name] = StrategySpec(
            name=name, fn=fn, requires=full, paper=paper, doc=doc, inner=inner, unit=unit, _own=req
        )
        return fn

    return deco


def _inner_spec(wrapper: str, inner: str) -> StrategySpec:
    """The strategy a wrapper runs inside; wrappers pick images, so a region strategy is refused."""
    spec = get_strategy(inner)
    if spec.unit != "images":
        raise InputError(
            f"{wrapper!r} wraps image strategies, but {inner!r} picks {spec.unit}; "
            "call the region strategy directly (or wrap an image strategy such as 'seg_entropy')."
        )
    return spec


def unregister(name: str) -> None:
    """Remove a registered strategy (mainly for tests and notebooks re-running cells)."""
    get_strategy(name)
    del _REGISTRY[name]


def get_strategy(name: str) -> StrategySpec:
    """The :class:`StrategySpec` registered as ``name``; unknown names raise listing the known ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise InputError(f"unknown strategy {name!r}; known strategies: {', '.join(sorted(_REGISTRY))}.") from None


def list_strategies(pattern: str = "*") -> list[str]:
    """Sorted registered names matching a shell-style ``pattern`` (e.g. ``"*bald*"``)."""
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def required_inputs(name: str, **params: Any) -> frozenset[str]:
    """The concrete arrays (``probs``, ``marginals``, ``embeddings``, ``grad_factors``, ...) that
    ``select(name, ..., **params)`` needs; this is what the loop computes."""
    return _concrete(get_strategy(name).requires_for(**params))


def _pool_size(inputs: Mapping[str, Any], labeled: Any, params: Mapping[str, Any]) -> int | None:
    if labeled is not None:
        return int(np.shape(labeled)[0]) if np.ndim(labeled) >= 1 else None
    for key in ("probs", "marginals", "embeddings", "grad_factors", "labels", "label_matrix"):
        if key in inputs and np.ndim(inputs[key]) >= 1:
            return int(np.shape(inputs[key])[0])
    for key in ("mc_probs", *sorted(PIXEL_INPUTS)):
        m = pool_length(key, inputs.get(key))
        if m is not None:
            return m
    n = params.get("n_samples")
    return int(n) if isinstance(n, (int, np.integer)) else None


def _check_pool_sizes(arrays: Mapping[str, Any], labeled: Any) -> int | None:
    """The pool size all given arrays agree on (``None`` when none is given); raise on disagreement."""
    sizes: dict[str, int] = {}
    for key, v in arrays.items():
        m = pool_length(key, v)
        if m is not None:
            sizes[key] = m
    if labeled is not None and np.ndim(labeled) == 1:
        sizes["labeled"] = int(np.shape(labeled)[0])
    if not sizes:
        return None
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{key}: {m}" for key, m in sizes.items())
        raise InputError(
            f"inputs disagree on the number of pool items ({desc}); every array must cover "
            "the same N items in the same order (mc_probs (T, N, C) along axis 1)."
        )
    n = next(iter(sizes.values()))
    if n == 0:
        raise InputError("the pool is empty (0 items); add images to the pool before selecting.")
    return n


def select(
    name: str, k: int, *, rng: np.random.Generator, labeled: Any = None, **inputs_and_params: Any
) -> NDArray[np.int64]:
    """Run the strategy registered as ``name``: the single entry point the loop calls.

    Args:
        name: a registered strategy name (see :func:`list_strategies`).
        k: how many items to select (``>= 1``).
        rng: the only source of randomness.
        labeled: ``(N,)`` bool mask of already-labeled items (never returned by an
            image strategy; a region strategy excludes ``region_labeled`` regions instead
            and reads ``labeled`` only as the pool size).
        **inputs_and_params: arrays from the vocabulary (``probs``, ``marginals``,
            ``mc_probs``, ``embeddings``, ``grad_factors``, ``labels``, ``label_matrix``,
            the detection ``box_*`` arrays and ``class_difficulty``, the segmentation
            ``pixel_probs``, ``region_*`` arrays and ``pixel_labeled_fraction``)
            and the strategy's parameters. Arrays the
            strategy does not use are ignored, so a caller may pass everything it has.

    Returns:
        ``(min(k, #unlabeled),)`` unique int64 positions, best first: in ``0..N-1`` for a
        strategy with ``unit="images"``, in ``0..R-1`` (the region list) for ``unit="regions"``.

    Raises:
        InputError: unknown strategy, missing or malformed input, unknown parameter.
        StrategyContractError: the strategy returned positions breaking the contract.
    """
    spec = get_strategy(name)
    check_rng(rng)
    k = check_k(k)
    arrays = {key: v for key, v in inputs_and_params.items() if key in ARRAY_INPUTS}
    params = {key: v for key, v in inputs_and_params.items() if key not in ARRAY_INPUTS}
    needed = _concrete(spec.requires_for(**params))
    missing = sorted(n for n in needed if arrays.get(n) is None)
    if missing:
        raise InputError(
            f"strategy {name!r} needs {', '.join(sorted(needed))}; missing: {', '.join(missing)}. "
            f"Compute them with the model adapter (see docs/strategies.md) and pass them as keywords."
        )
    sig = inspect.signature(spec.fn).parameters
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in sig.values())
    call: dict[str, Any] = {}
    for key, v in arrays.items():
        if key in sig or (takes_any and key in needed) or (takes_any and spec.inner is not None):
            call[key] = v
    unknown = [p for p in params if p not in sig and not takes_any]
    if unknown:
        accepted = [p for p in sig if p not in ("k", "rng", "labeled") and p not in ARRAY_INPUTS]
        raise InputError(
            f"strategy {name!r} got unknown parameter(s) {unknown}; "
            f"it accepts: {', '.join(accepted) or 'no parameters'}."
        )
    call.update(params)
    pool_arrays = {key: v for key, v in arrays.items() if key not in DETECTION_INPUTS | REGION_INPUTS}
    n = _check_pool_sizes(pool_arrays, labeled)
    if n is None:
        n = _pool_size(pool_arrays, labeled, params)
    _check_detection_inputs(name, needed, arrays, labeled, n)
    if "n_samples" in sig and call.get("n_samples") is None and labeled is None and n is not None:
        call["n_samples"] = n
    if spec.unit == "regions":
        r, region_mask = region_pool(arrays.get("region_labeled"), labeled)
        out = spec.fn(k=k, rng=rng, labeled=labeled, **call)
        _check_output(name, out, r, region_mask, k)
        return np.asarray(out, dtype=np.int64)
    out = spec.fn(k=k, rng=rng, labeled=labeled, **call)
    _check_output(name, out, n, labeled, k)
    return np.asarray(out, dtype=np.int64)


def region_pool(region_labeled: Any, labeled: Any = None) -> tuple[int, NDArray[np.bool_]]:
    """A region strategy's R and exclusion mask (``region_labeled``, required); ``labeled``, the
    ``(N,)`` image mask, is only checked to be boolean (a partly labeled image keeps its other regions)."""
    if region_labeled is None:
        raise InputError(
            "a region strategy needs region_labeled=: the (R,) bool mask of labeled regions, which also gives R. "
            "Pass np.zeros(R, bool) when nothing is labeled."
        )
    if labeled is not None and np.asarray(labeled).dtype != np.bool_:
        raise InputError(f"labeled must be a boolean mask of the pool images, got dtype {np.asarray(labeled).dtype}.")
    r = int(np.shape(region_labeled)[0]) if np.ndim(region_labeled) >= 1 else -1
    return r, check_labeled(region_labeled, r, name="region_labeled", items="regions")


def _check_detection_inputs(
    name: str, needed: frozenset[str], arrays: Mapping[str, Any], labeled: Any, n: int | None
) -> None:
    """Box arrays agree on M, owners index the N images, class arrays agree on C (``labeled`` gives N)."""
    if needed & DETECTION_INPUTS and labeled is None:
        raise InputError(
            f"strategy {name!r} reads box arrays and needs labeled=: the (N,) bool mask of labeled pool images, "
            "which also gives N (an image may own no box). Pass np.zeros(N, bool) when nothing is labeled."
        )
    given = {key: v for key, v in arrays.items() if key in DETECTION_INPUTS and v is not None}
    if not given or n is None:
        return
    check_labeled(labeled, n)
    check_box_inputs(n, **given)


def _check_output(name: str, out: Any, n: int | None, labeled: Any, k: int) -> None:
    arr = np.asarray(out)
    if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise StrategyContractError(
            f"strategy {name!r} must return a 1-D integer array, got shape {arr.shape} dtype {arr.dtype}."
        )
    if arr.size > k:
        raise StrategyContractError(f"strategy {name!r} returned {arr.size} positions for k={k}.")
    if np.unique(arr).size != arr.size:
        raise StrategyContractError(f"strategy {name!r} returned duplicate positions.")
    if n is not None and arr.size and (arr.min() < 0 or arr.max() >= n):
        raise StrategyContractError(f"strategy {name!r} returned positions outside 0..{n - 1}.")
    if n is None:
        return
    mask = check_labeled(labeled, n) if labeled is not None else np.zeros(n, dtype=bool)
    if arr.size and mask[arr].any():
        raise StrategyContractError(f"strategy {name!r} returned already-labeled positions.")
    expected = min(k, int((~mask).sum()))
    if arr.size != expected:
        raise StrategyContractError(
            f"strategy {name!r} returned {arr.size} positions; expected {expected} "
            "(k, or every unlabeled item when k is larger)."
        )
