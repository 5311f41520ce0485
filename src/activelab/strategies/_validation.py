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


def check_labeled(labeled: Any, n: int) -> NDArray[np.bool_]:
    """Validate the labeled mask: bool of shape (n,), or None meaning nothing labeled."""
    if labeled is None:
        return np.zeros(n, dtype=bool)
    arr = np.asarray(labeled)
    if arr.dtype != np.bool_:
        raise InputError(
            f"labeled must be a boolean mask of shape ({n},), got dtype {arr.dtype}; "
            "convert positions with mask = np.zeros(n, bool); mask[positions] = True."
        )
    if arr.shape != (n,):
        raise InputError(f"labeled must have shape ({n},) to match the pool of {n} items, got {arr.shape}.")
    if arr.all():
        raise InputError(
            f"every one of the {n} pool items is labeled: nothing is left to select; add unlabeled items to the pool."
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
