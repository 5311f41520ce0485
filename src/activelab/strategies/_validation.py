"""Input checks shared by every strategy.

Each check raises :class:`activelab.exceptions.InputError` with a message that names
the argument, what was wrong and how to fix it. Checks are single passes over the
data (no temporaries the size of the input), so they cost little next to selection.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np
from numpy.typing import NDArray

from activelab.exceptions import InputError

#: Absolute tolerance on ``probs.sum(axis=-1) == 1`` (float32 softmax outputs drift ~1e-6).
PROB_SUM_ATOL = 1e-3
_CHUNK_ELEMS = 1 << 24  # 16M elements (64 MB of float32) per chunk for row-wise checks


def check_k(k: Any) -> int:
    """Return ``k`` as an int; reject bools, non-integers and ``k < 1``."""
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise InputError(
            f"k must be a positive integer (the number of items to select), got {k!r} "
            f"of type {type(k).__name__}; pass e.g. k=100."
        )
    if int(k) < 1:
        raise InputError(f"k must be >= 1 (the number of items to select), got {k}; pass a positive budget.")
    return int(k)


def _all_finite(x: NDArray[Any]) -> bool:
    """True when every element is finite, without an input-sized boolean temporary."""
    if x.size == 0:
        return True
    with np.errstate(over="ignore", invalid="ignore"):
        total = x.sum(dtype=np.float64)
    if np.isfinite(total):
        return True
    # An overflowing but finite float64 input also lands here; check chunk by chunk.
    flat = x.reshape(-1)
    return all(bool(np.isfinite(flat[s : s + _CHUNK_ELEMS]).all()) for s in range(0, flat.size, _CHUNK_ELEMS))


def _as_float_array(x: Any, name: str, ndim: int, shape_doc: str) -> NDArray[np.floating[Any]]:
    if x is None:
        raise InputError(f"{name} is required: pass an array of shape {shape_doc}.")
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name} must be a numeric array of shape {shape_doc}, got dtype {arr.dtype}.")
    if arr.ndim != ndim:
        raise InputError(
            f"{name} must have {ndim} dimensions {shape_doc}, got shape {arr.shape}; "
            + (
                "reshape it (e.g. x.reshape(len(x), -1))."
                if ndim == 2
                else "stack the T stochastic predictions along a new first axis (np.stack(preds))."
                if ndim == 3
                else "flatten it."
            )
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    n_axis = 1 if ndim == 3 else 0
    if arr.shape[n_axis] == 0:
        raise InputError(
            f"{name} is empty (shape {arr.shape}): the pool has no items; add images to the pool before selecting."
        )
    if not _all_finite(arr):
        raise InputError(
            f"{name} contains NaN or inf; check the model outputs (e.g. a diverged model) "
            "and replace or drop the affected rows."
        )
    return arr


def _check_prob_rows(arr: NDArray[np.floating[Any]], name: str) -> None:
    n_classes = arr.shape[-1]
    if n_classes < 2:
        raise InputError(f"{name} must have at least 2 classes in its last axis, got shape {arr.shape}.")
    rows = arr.reshape(-1, n_classes)
    step = max(1, _CHUNK_ELEMS // n_classes)
    for s in range(0, rows.shape[0], step):
        chunk = rows[s : s + step]
        if chunk.min() < -PROB_SUM_ATOL:
            raise InputError(f"{name} has negative entries; pass probabilities (softmax outputs), not logits.")
        sums = chunk.sum(axis=1, dtype=np.float64)
        bad = np.flatnonzero(np.abs(sums - 1.0) > PROB_SUM_ATOL)
        if bad.size:
            r = s + int(bad[0])
            raise InputError(
                f"{name} rows must sum to 1 (within {PROB_SUM_ATOL}); row {r} sums to "
                f"{sums[bad[0]]:.6g}. Apply a softmax to the logits first."
            )


def check_probs(probs: Any, name: str = "probs") -> NDArray[np.floating[Any]]:
    """Validate class probabilities of shape (n_samples, n_classes), rows summing to 1."""
    arr = _as_float_array(probs, name, 2, "(n_samples, n_classes)")
    _check_prob_rows(arr, name)
    return arr


def check_mc_probs(mc_probs: Any, name: str = "mc_probs") -> NDArray[np.floating[Any]]:
    """Validate stacked stochastic predictions of shape (T, n_samples, n_classes)."""
    arr = _as_float_array(mc_probs, name, 3, "(n_mc_samples, n_samples, n_classes)")
    if arr.shape[0] < 1:
        raise InputError(f"{name} needs at least one stochastic prediction along axis 0, got shape {arr.shape}.")
    _check_prob_rows(arr, name)
    return arr


def check_marginals(marginals: Any, name: str = "marginals") -> NDArray[np.floating[Any]]:
    """Validate independent per-class probabilities of shape (n_samples, n_classes), each in [0, 1]."""
    arr = _as_float_array(marginals, name, 2, "(n_samples, n_classes)")
    if arr.shape[1] == 0:
        raise InputError(f"{name} has zero classes (shape {arr.shape}); pass one column per class.")
    if arr.min() < 0.0 or arr.max() > 1.0:
        raise InputError(
            f"{name} must hold probabilities in [0, 1], got values in [{arr.min():.6g}, {arr.max():.6g}]; "
            "apply a sigmoid to the logits first."
        )
    return arr


def check_grad_factors(grad_factors: Any, name: str = "grad_factors") -> NDArray[np.floating[Any]]:
    """Validate last-layer loss gradients w.r.t. the logits, shape (n_samples, n_classes)."""
    arr = _as_float_array(grad_factors, name, 2, "(n_samples, n_classes)")
    if arr.shape[1] == 0:
        raise InputError(f"{name} has zero classes (shape {arr.shape}); pass one column per class.")
    return arr


def check_label_matrix(label_matrix: Any, n: int, n_classes: int, name: str = "label_matrix") -> NDArray[np.int64]:
    """Validate multi-label indicators of shape (n, n_classes): 0/1 rows where labeled, all -1 where not."""
    if label_matrix is None:
        raise InputError(
            f"{name} is required: pass an int array of shape ({n}, {n_classes}) with 0/1 per class "
            "for labeled items and a row of -1 for unlabeled ones."
        )
    arr = np.asarray(label_matrix)
    if arr.shape != (n, n_classes):
        raise InputError(
            f"{name} must have shape ({n}, {n_classes}) (one row per pool item, one column per class), got {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and _all_finite(arr) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{name} must hold integers 0/1 (-1 rows for unlabeled), got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < -1 or arr.max() > 1):
        raise InputError(f"{name} has values outside -1, 0, 1; use 0/1 per class and a row of -1 for unlabeled.")
    unlabeled = (arr == -1).all(axis=1)
    mixed = np.flatnonzero(~unlabeled & (arr == -1).any(axis=1))
    if mixed.size:
        raise InputError(
            f"{name} row {int(mixed[0])} mixes -1 with 0/1; a row is either all -1 (unlabeled) or all 0/1 (labeled)."
        )
    return arr


def check_embeddings(embeddings: Any, name: str = "embeddings") -> NDArray[np.floating[Any]]:
    """Validate a float matrix of shape (n_samples, n_features)."""
    arr = _as_float_array(embeddings, name, 2, "(n_samples, n_features)")
    if arr.shape[1] == 0:
        raise InputError(f"{name} has zero features (shape {arr.shape}); pass at least one column.")
    return arr


def check_scores(scores: Any, n: int, name: str = "scores") -> NDArray[np.floating[Any]]:
    """Validate a per-item score vector of shape (n,)."""
    arr = _as_float_array(scores, name, 1, f"({n},)")
    if arr.shape[0] != n:
        raise InputError(f"{name} has {arr.shape[0]} entries but the pool has {n} items; pass one score per pool item.")
    return arr


def check_labels(labels: Any, n: int, n_classes: int | None = None, name: str = "labels") -> NDArray[np.int64]:
    """Validate integer labels of shape (n,), ``-1`` marking unlabeled items."""
    if labels is None:
        raise InputError(f"{name} is required: pass an int array of shape ({n},) with -1 for unlabeled items.")
    arr = np.asarray(labels)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D of shape ({n},), got shape {arr.shape}.")
    if arr.shape[0] != n:
        raise InputError(
            f"{name} has {arr.shape[0]} entries but the pool has {n} items; "
            "pass one label per pool item (-1 for unlabeled)."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and _all_finite(arr) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(f"{name} must hold integer class indices (-1 for unlabeled), got dtype {arr.dtype}.")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and arr.min() < -1:
        raise InputError(f"{name} has value {int(arr.min())}; use -1 for unlabeled and 0..C-1 for classes.")
    if n_classes is not None and arr.size and arr.max() >= n_classes:
        raise InputError(
            f"{name} has class {int(arr.max())} but probs has only {n_classes} classes; "
            "labels must index the columns of probs."
        )
    return arr


def check_labeled(labeled: Any, n: int, name: str = "labeled", items: str = "pool items") -> NDArray[np.bool_]:
    """Validate the labeled mask: bool of shape (n,), or None meaning nothing labeled.

    ``name`` and ``items`` word the messages (``"region_labeled"``, ``"regions"`` for region strategies).
    """
    if labeled is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(labeled)
    if arr.dtype != np.bool_:
        raise InputError(
            f"{name} must be a boolean mask of shape ({n},), got dtype {arr.dtype}; "
            "convert positions with mask = np.zeros(n, bool); mask[positions] = True."
        )
    if arr.shape != (n,):
        raise InputError(f"{name} must have shape ({n},) to match the {n} {items}, got {arr.shape}.")
    if arr.all():
        raise InputError(
            f"every one of the {n} {items} is labeled: nothing is left to select; add unlabeled {items} to the pool."
        )
    return arr


def check_same_n(n: int, **arrays: tuple[int, str]) -> None:
    """Raise when inputs disagree on the number of pool items. Values are (n_items, shape_doc)."""
    for name, (m, doc) in arrays.items():
        if m != n:
            raise InputError(
                f"{name} describes {m} items {doc} but the pool has {n}; "
                "every input must cover the same pool items in the same order."
            )


def check_rng(rng: Any) -> np.random.Generator:
    """Require an explicit ``numpy.random.Generator``."""
    if not isinstance(rng, np.random.Generator):
        raise InputError(
            f"rng must be a numpy.random.Generator (e.g. np.random.default_rng(0)), got {type(rng).__name__}."
        )
    return rng


def check_choice(value: Any, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise InputError(f"{name} must be one of {', '.join(map(repr, allowed))}, got {value!r}.")
    return str(value)


def check_fraction(value: Any, name: str, *, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(float(value)):
        raise InputError(f"{name} must be a number in [0, 1], got {value!r}.")
    v = float(value)
    if not (0.0 <= v <= 1.0) or (low_open and v == 0.0):
        raise InputError(f"{name} must be in {'(0' if low_open else '[0'}, 1], got {v}.")
    return v


def check_positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < 1:
        raise InputError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not np.isfinite(float(value))
        or float(value) <= 0
    ):
        raise InputError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


# ----------------------------------------------------------------------------- detection (box) inputs
#: Box arrays: one row per predicted box of the whole pool (first dimension M, not N).
BOX_INPUTS: frozenset[str] = frozenset(
    {"box_probs", "box_scores", "box_owner", "box_features", "box_flip_iou", "box_flip_probs", "box_noise_iou"}
)
#: Per-class arrays: one entry per object class.
CLASS_INPUTS: frozenset[str] = frozenset({"class_difficulty"})
_BOX_SHAPES: dict[str, tuple[int, str]] = {
    "box_probs": (2, "(M, C)"),
    "box_flip_probs": (2, "(M, C)"),
    "box_scores": (1, "(M,)"),
    "box_flip_iou": (1, "(M,)"),
    "box_noise_iou": (2, "(M, K)"),
    "box_features": (2, "(M, d)"),
}


def _box_float_array(x: Any, name: str) -> NDArray[np.floating[Any]]:
    """A finite float box array of the documented rank; zero rows (a pool without boxes) is allowed."""
    ndim, doc = _BOX_SHAPES[name]
    arr = np.asarray(x)
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise InputError(f"{name} must be a numeric array of shape {doc}, got dtype {arr.dtype}.")
    if arr.ndim != ndim:
        raise InputError(
            f"{name} must have {ndim} dimension(s) {doc} (M = predicted boxes of the whole pool), got shape {arr.shape}."
        )
    if not np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float64)
    if not _all_finite(arr):
        raise InputError(f"{name} contains NaN or inf; check the detector's outputs (e.g. a diverged model).")
    if ndim == 2 and arr.shape[1] == 0:
        raise InputError(f"{name} has an empty second axis (shape {arr.shape}); pass {doc} with at least one column.")
    return arr


def _check_unit_interval(arr: NDArray[np.floating[Any]], name: str, what: str) -> None:
    if arr.size and (arr.min() < 0.0 or arr.max() > 1.0):
        raise InputError(f"{name} must hold {what} in [0, 1], got values in [{arr.min():.6g}, {arr.max():.6g}].")


def _check_box_owner(owner: Any, n: int) -> NDArray[np.int64]:
    arr = np.asarray(owner)
    if arr.ndim != 1:
        raise InputError(f"box_owner must be 1-D (M,) (the pool position of each box's image), got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        integral = np.issubdtype(arr.dtype, np.floating) and _all_finite(arr) and np.all(arr == np.round(arr))
        if not integral:
            raise InputError(
                f"box_owner must hold integer pool positions 0..{n - 1}, got non-integer values (dtype {arr.dtype})."
            )
    out = arr.astype(np.int64, copy=False)
    if out.size and (out.min() < 0 or out.max() >= n):
        bad = int(out.min()) if out.min() < 0 else int(out.max())
        raise InputError(
            f"box_owner has image position {bad}, outside the pool of {n} images (the length of labeled); "
            "each box's owner must index the same pool as labeled, 0..N-1."
        )
    return out


def check_box_inputs(n: int, **arrays: Any) -> dict[str, NDArray[Any]]:
    """Validate detection inputs for a pool of ``n`` images and return them as arrays.

    Box arrays (:data:`BOX_INPUTS`) must share their first dimension M (zero boxes is
    allowed: images may own no box); ``box_owner`` values index the pool (0..n-1);
    probabilities are rows summing to 1, IoUs and scores lie in [0, 1];
    ``class_difficulty`` has one entry in [0, 1] per column of ``box_probs``.
    ``None`` values are skipped.
    """
    out: dict[str, NDArray[Any]] = {}
    for name, value in arrays.items():
        if value is None:
            continue
        if name == "box_owner":
            out[name] = _check_box_owner(value, n)
        elif name == "class_difficulty":
            arr = np.asarray(value)
            if arr.ndim != 1 or arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
                raise InputError(f"class_difficulty must be a 1-D numeric array (C,), got shape {arr.shape}.")
            arr = arr.astype(np.float64, copy=False)
            if not _all_finite(arr):
                raise InputError("class_difficulty contains NaN or inf; use 0.5 for a class with no labeled box.")
            _check_unit_interval(arr, name, "difficulties")
            out[name] = arr
        elif name in _BOX_SHAPES:
            arr = _box_float_array(value, name)
            if name in ("box_probs", "box_flip_probs"):
                if arr.size:
                    _check_prob_rows_any(arr, name)
            elif name != "box_features":
                _check_unit_interval(arr, name, "scores" if name == "box_scores" else "IoUs")
            out[name] = arr
        else:
            raise InputError(f"{name!r} is not a detection input; known: {sorted(BOX_INPUTS | CLASS_INPUTS)}.")
    sizes = {name: int(v.shape[0]) for name, v in out.items() if name in BOX_INPUTS}
    if len(set(sizes.values())) > 1:
        desc = ", ".join(f"{name}: {m}" for name, m in sizes.items())
        raise InputError(
            f"box arrays disagree on the number of boxes ({desc}); every box array must have one row per "
            "predicted box of the pool, in the same order."
        )
    classes: dict[str, int] = {
        name: int(out[name].shape[-1]) for name in ("box_probs", "box_flip_probs") if name in out
    }
    if "class_difficulty" in out:
        classes["class_difficulty"] = int(out["class_difficulty"].shape[0])
    if len(set(classes.values())) > 1:
        desc = ", ".join(f"{name}: {c}" for name, c in classes.items())
        raise InputError(
            f"detection inputs disagree on the number of classes ({desc}); box_probs, box_flip_probs and "
            "class_difficulty must all have one entry per object class."
        )
    if "class_difficulty" in out and out["class_difficulty"].shape[0] == 0:
        raise InputError("class_difficulty is empty; pass one difficulty per object class.")
    return out


def _check_prob_rows_any(arr: NDArray[np.floating[Any]], name: str) -> None:
    """Rows are distributions; unlike :func:`_check_prob_rows` a single class is allowed (a one-class detector)."""
    if arr.min() < -PROB_SUM_ATOL:
        raise InputError(f"{name} has negative entries; pass per-box class probabilities, not logits.")
    sums = arr.sum(axis=1, dtype=np.float64)
    bad = np.flatnonzero(np.abs(sums - 1.0) > PROB_SUM_ATOL)
    if bad.size:
        raise InputError(
            f"{name} rows must sum to 1 (within {PROB_SUM_ATOL}); row {int(bad[0])} sums to {sums[bad[0]]:.6g}. "
            "Normalise each box's class scores over the object classes."
        )


# ----------------------------------------------------------------------------- segmentation inputs
#: Per-image segmentation inputs: one entry per pool image (first dimension N), images may differ in size.
PIXEL_INPUTS: frozenset[str] = frozenset({"pixel_probs", "region_map", "pixel_labeled_fraction"})
#: Region arrays: one entry per region of the whole pool (first dimension R), ordered image by image.
REGION_INPUTS: frozenset[str] = frozenset({"region_owner", "region_pixels", "region_labeled"})


def is_per_image_mc(mc_probs: Any) -> bool:
    """True when ``mc_probs`` is segmentation's per-image form ``(N,)`` of ``(T, C, h, w)``
    (an object array, a list of 4-D arrays, or a stacked 5-D array) rather than ``(T, N, C)``."""
    if isinstance(mc_probs, np.ndarray):
        return mc_probs.dtype == object or mc_probs.ndim == 5
    if isinstance(mc_probs, (list, tuple)):
        return len(mc_probs) > 0 and np.ndim(mc_probs[0]) == 4
    return False


def pool_length(key: str, value: Any) -> int | None:
    """How many pool items (or regions, for :data:`REGION_INPUTS`) ``value`` describes; ``None`` if it cannot tell.

    Per-image inputs count their first axis without stacking (images may differ in
    size); classification's ``mc_probs`` ``(T, N, C)`` counts axis 1.
    """
    if value is None:
        return None
    if key in PIXEL_INPUTS or (key == "mc_probs" and is_per_image_mc(value)):
        if isinstance(value, (list, tuple)):
            return len(value)
        return int(np.shape(value)[0]) if np.ndim(value) >= 1 else None
    axis = 1 if key == "mc_probs" else 0
    return int(np.shape(value)[axis]) if np.ndim(value) > axis else None


def per_image(value: Any, name: str, doc: str) -> list[NDArray[Any]]:
    """The per-image arrays of an object ``(N,)`` array, a list, or a numeric array stacked on axis 0."""
    if value is None:
        raise InputError(f"{name} is required: pass an object array (N,) of {doc} arrays, one per pool image.")
    if isinstance(value, np.ndarray):
        if value.ndim == 0 or (value.dtype == object and value.ndim != 1):
            raise InputError(f"{name} must be an object array (N,) of {doc} arrays, got shape {value.shape}.")
        items = list(value)
    elif isinstance(value, (list, tuple)):
        items = list(value)
    else:
        raise InputError(f"{name} must be an object array (N,) of {doc} arrays, got {type(value).__name__}.")
    if not items:
        raise InputError(f"{name} is empty: the pool has no images; add images to the pool before selecting.")
    out: list[NDArray[Any]] = []
    for i, item in enumerate(items):
        arr = np.asarray(item)
        if arr.dtype == object or not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
            raise InputError(f"{name}[{i}] must be a numeric {doc} array, got dtype {arr.dtype}.")
        out.append(arr)
    return out


def _prob_atol(dtype: np.dtype[Any], n_classes: int) -> float:
    """Sum-to-1 tolerance: :data:`PROB_SUM_ATOL`, widened for float16 softmax outputs (rounding per class)."""
    eps = float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.floating) else 0.0
    return max(PROB_SUM_ATOL, 2.0 * n_classes * eps)


def _check_class_axis(items: list[NDArray[Any]], name: str, ndim: int, doc: str, axis: int) -> list[NDArray[Any]]:
    """Each item has ``ndim`` axes, the same number (>= 2) of classes on ``axis``, finite
    non-negative entries summing to 1 over the classes; integer inputs become float64."""
    classes: int | None = None
    out: list[NDArray[Any]] = []
    for i, raw in enumerate(items):
        arr = raw if np.issubdtype(raw.dtype, np.floating) else raw.astype(np.float64)
        if arr.ndim != ndim:
            raise InputError(f"{name}[{i}] must have {ndim} dimensions {doc}, got shape {arr.shape}.")
        c = int(arr.shape[axis])
        if c < 2:
            raise InputError(f"{name}[{i}] must have at least 2 classes on axis {axis} {doc}, got shape {arr.shape}.")
        if classes is not None and c != classes:
            raise InputError(
                f"{name}[{i}] has {c} classes but {name}[0] has {classes}; every image needs one map per class."
            )
        classes = c
        if arr.size == 0:
            raise InputError(f"{name}[{i}] has no pixels (shape {arr.shape}); pass the image's probability maps.")
        if not _all_finite(arr):
            raise InputError(f"{name}[{i}] contains NaN or inf; check the model outputs (e.g. a diverged model).")
        atol = _prob_atol(arr.dtype, c)
        if arr.min() < -atol:
            raise InputError(f"{name}[{i}] has negative entries; pass softmax probabilities, not logits.")
        sums = arr.sum(axis=axis, dtype=np.float64)
        worst = int(np.argmax(np.abs(sums - 1.0)))
        if abs(float(sums.flat[worst]) - 1.0) > atol:
            raise InputError(
                f"{name}[{i}] must sum to 1 over its classes (axis {axis}, within {atol:.3g}); a pixel sums to "
                f"{float(sums.flat[worst]):.6g}. Apply a softmax over the class axis first."
            )
        out.append(arr)
    return out


def check_pixel_probs(pixel_probs: Any, name: str = "pixel_probs") -> list[NDArray[np.floating[Any]]]:
    """Validate per-image class probabilities: ``(N,)`` of ``(C, H, W)``, summing to 1 over C at each pixel.

    Sizes may differ between images, C may not. float16 inputs get a tolerance of
    ``2 C eps`` (their rounding) instead of :data:`PROB_SUM_ATOL` when that is larger.
    """
    items = per_image(pixel_probs, name, "(C, H, W)")
    return _check_class_axis(items, name, 3, "(C, H, W)", 0)


def check_mc_pixel_probs(mc_probs: Any, name: str = "mc_probs") -> list[NDArray[np.floating[Any]]]:
    """Validate per-image MC samples: ``(N,)`` of ``(T, C, h, w)``, summing to 1 over C."""
    items = per_image(mc_probs, name, "(T, C, h, w)")
    out = _check_class_axis(items, name, 4, "(T, C, h, w)", 1)
    for i, arr in enumerate(out):
        if arr.shape[0] < 1:
            raise InputError(f"{name}[{i}] needs at least one stochastic prediction on axis 0, got {arr.shape}.")
    return out


def _int_vector(value: Any, name: str, doc: str) -> NDArray[np.int64]:
    arr = np.asarray(value)
    if arr.ndim != 1:
        raise InputError(f"{name} must be 1-D {doc}, got shape {arr.shape}.")
    if not np.issubdtype(arr.dtype, np.integer):
        integral = np.issubdtype(arr.dtype, np.floating) and _all_finite(arr) and np.all(arr == np.round(arr))
        if not integral:
            raise InputError(f"{name} must hold integers {doc}, got dtype {arr.dtype} with non-integer values.")
    return arr.astype(np.int64, copy=False)


def check_region_owner(region_owner: Any, n: int | None) -> NDArray[np.int64]:
    """Validate ``region_owner: (R,)`` image positions, R >= 1, non-decreasing (regions image by image), < n."""
    owner = _int_vector(region_owner, "region_owner", "(R,) (the pool position of each region's image)")
    if owner.size == 0:
        raise InputError("region_owner is empty: the pool has no regions; compute regions for the pool images first.")
    if owner.min() < 0 or (n is not None and owner.max() >= n):
        bad = int(owner.min()) if owner.min() < 0 else int(owner.max())
        pool = f"the pool of {n} images" if n is not None else "the pool"
        raise InputError(
            f"region_owner has image position {bad}, outside {pool}; each region's owner must index the pool, 0..N-1."
        )
    if np.any(np.diff(owner) < 0):
        at = int(np.flatnonzero(np.diff(owner) < 0)[0]) + 1
        raise InputError(
            f"region_owner must be ordered image by image (non-decreasing), but region {at} belongs to image "
            f"{int(owner[at])} after a region of image {int(owner[at - 1])}; order regions by image, then by id."
        )
    return owner


def check_region_pixels(region_pixels: Any, r: int) -> NDArray[np.int64]:
    """Validate ``region_pixels: (R,)`` pixel counts, each >= 1."""
    arr = _int_vector(region_pixels, "region_pixels", "(R,) (pixels per region)")
    if arr.shape[0] != r:
        raise InputError(f"region_pixels has {arr.shape[0]} entries but there are {r} regions; pass one per region.")
    if arr.size and arr.min() < 1:
        i = int(np.argmin(arr))
        raise InputError(f"region_pixels must be >= 1; region {i} has {int(arr[i])} pixels.")
    return arr


def check_region_maps(
    region_map: Any, owner: NDArray[np.int64], shapes: list[tuple[int, ...]]
) -> list[NDArray[np.int64]]:
    """Validate ``region_map: (N,)`` of ``(H, W)`` region ids: image i's ids are exactly 0..R_i-1 (each used),
    R_i = the number of regions ``owner`` gives image i, and its size matches ``shapes[i]`` (the probability maps')."""
    maps = per_image(region_map, "region_map", "(H, W) int")
    if len(maps) != len(shapes):
        raise InputError(
            f"region_map has {len(maps)} images but pixel_probs has {len(shapes)}; pass one region map per pool image."
        )
    per_img = np.bincount(owner, minlength=len(maps))
    out: list[NDArray[np.int64]] = []
    for i, m in enumerate(maps):
        if not np.issubdtype(m.dtype, np.integer):
            raise InputError(f"region_map[{i}] must hold integer region ids, got dtype {m.dtype}.")
        if m.shape != shapes[i]:
            raise InputError(
                f"region_map[{i}] has shape {m.shape} but the image's probability maps are {shapes[i]}; "
                "compute regions at the prediction's size."
            )
        ids = m.astype(np.int64, copy=False)
        r_i = int(per_img[i])
        lo, hi = int(ids.min()), int(ids.max())
        if lo < 0 or hi >= r_i:
            raise InputError(
                f"region_map[{i}] has region ids {lo}..{hi} but region_owner gives image {i} {r_i} regions "
                f"(ids 0..{r_i - 1}); region_map and region_owner must come from the same region computation."
            )
        empty = np.flatnonzero(np.bincount(ids.reshape(-1), minlength=r_i) == 0)
        if empty.size:
            raise InputError(
                f"region_map[{i}] has no pixel with region id {int(empty[0])} of 0..{r_i - 1}; "
                "number the regions of each image 0..R_i-1 without gaps."
            )
        out.append(ids)
    return out
