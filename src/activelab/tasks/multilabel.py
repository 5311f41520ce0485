"""Multi-label classification: an annotation is a set of class names; the model outputs a sigmoid per class.

The payload is the sorted list of the classes present (``["bag", "shirt"]``); ``[]``
says "none of these classes", a real answer distinct from "not labeled yet". A table
cell holds the names joined by ``sep`` (``"bag|shirt"``, the empty cell for ``[]``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from activelab.exceptions import InputError
from activelab.tasks.base import Payload, Task
from activelab.tasks.metrics import multilabel_metrics
from activelab.tasks.registry import register_task

#: the decision threshold of a class without a better one (and the tie-break of :func:`choose_thresholds`)
DEFAULT_THRESHOLD = 0.5


def _check_outputs(outputs: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    p = np.asarray(outputs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] != len(classes):
        raise InputError(
            f"multi-label outputs must have shape (n, n_classes={len(classes)}), got {p.shape}; "
            "build the model with output='sigmoid'"
        )
    return p


def _check_thresholds(thresholds: np.ndarray | None, n_classes: int) -> np.ndarray:
    if thresholds is None:
        return np.full(n_classes, DEFAULT_THRESHOLD)
    t = np.asarray(thresholds, dtype=np.float64)
    if t.shape != (n_classes,) or not np.all((t >= 0.0) & (t <= 1.0)):
        raise InputError(f"thresholds must be {n_classes} values in [0, 1], one per class, got {thresholds!r}")
    return t


def choose_thresholds(targets: np.ndarray, marginals: np.ndarray) -> np.ndarray:
    """The per-class threshold ``(C,)`` maximising each class's F1 on held-out data.

    Candidates are 0.5 and every distinct probability of the class (a class is
    predicted where ``p >= threshold``); among equally good candidates the one nearest
    0.5 wins, so a class without positives, or whose F1 cannot be improved, keeps 0.5.
    Precision and recall come from scikit-learn's ``precision_recall_curve``.

    Args:
        targets: ``(N, C)`` 0/1 held-out labels.
        marginals: ``(N, C)`` the model's per-class probabilities for the same images.
    """
    from sklearn.metrics import f1_score, precision_recall_curve  # slow to import: only when used

    y = np.asarray(targets)
    p = np.asarray(marginals, dtype=np.float64)
    if y.ndim != 2 or y.shape != p.shape or len(y) == 0:
        raise InputError(
            f"targets and marginals must both have shape (n >= 1, n_classes), got {y.shape} and {p.shape}; "
            "label some eval images first"
        )
    out = np.full(y.shape[1], DEFAULT_THRESHOLD)
    for j in range(y.shape[1]):
        if not y[:, j].any():
            continue
        precision, recall, cuts = precision_recall_curve(y[:, j], p[:, j])
        with np.errstate(divide="ignore", invalid="ignore"):
            f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)[:-1]
        at_default = f1_score(y[:, j], p[:, j] >= DEFAULT_THRESHOLD, zero_division=0)
        candidates = np.concatenate([[DEFAULT_THRESHOLD], cuts])
        scores = np.concatenate([[at_default], f1])
        best = np.flatnonzero(np.isclose(scores, scores.max(), rtol=0.0, atol=1e-12))
        out[j] = candidates[best[np.argmin(np.abs(candidates[best] - DEFAULT_THRESHOLD))]]
    return out


@register_task
class MultiLabel(Task):
    """Any number of classes per image (``["bag", "shirt"]``; ``[]`` for none of them)."""

    name: ClassVar[str] = "multilabel"
    output: ClassVar[str] = "sigmoid"
    provides: ClassVar[frozenset[str]] = frozenset({"marginals", "label_matrix", "grad_factors", "embeddings"})
    headline: ClassVar[str] = "micro_f1"  # subset accuracy punishes one wrong class of ten as hard as ten

    def validate(self, payload: Payload, classes: Sequence[str], *, size: tuple[int, int] | None = None) -> list[str]:
        if isinstance(payload, str) or not isinstance(payload, (list, tuple)):
            raise InputError(
                f"a multi-label annotation is a list of class names (e.g. ['bag', 'shirt'], [] for none), "
                f"got {payload!r}; read a table cell with parse()"
            )
        bad = [name for name in payload if not isinstance(name, str) or name not in classes]
        if bad:
            raise InputError(f"unknown class {bad[0]!r} in {list(payload)!r}; known: {', '.join(classes)}")
        return sorted(set(payload))

    def parse(self, text: str, *, sep: str = "|", base: Path | None = None) -> list[str]:
        return sorted({part.strip() for part in text.split(sep) if part.strip()})

    def format(self, payload: Payload, *, sep: str = "|") -> str:
        clash = [name for name in payload if sep in name]
        if clash:
            raise InputError(f"class {clash[0]!r} contains the separator {sep!r}; pick another separator")
        return sep.join(sorted(payload))

    def targets(self, payloads: Sequence[Payload], classes: Sequence[str]) -> np.ndarray:
        index = {name: i for i, name in enumerate(classes)}
        out = np.zeros((len(payloads), len(classes)), dtype=np.int64)
        for row, payload in enumerate(payloads):
            for name in payload:
                if name not in index:
                    raise InputError(f"unknown class {name!r} in {payload!r}; known: {', '.join(classes)}")
                out[row, index[name]] = 1
        return out

    def decode(
        self, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> list[tuple[Payload, float]]:
        """The classes whose probability reaches their threshold (default 0.5), and a confidence.

        The confidence is the mean over classes of the probability of the side decided
        (``p`` where the class is predicted, ``1 - p`` where it is not): 1 when every
        per-class decision is certain, near 0.5 when they are coin flips.
        """
        p = _check_outputs(outputs, classes)
        on = p >= _check_thresholds(thresholds, len(classes))[None, :]
        confidence = np.where(on, p, 1.0 - p).mean(axis=1)
        return [
            (sorted(classes[int(j)] for j in np.flatnonzero(row)), float(c))
            for row, c in zip(on, confidence, strict=True)
        ]

    def strategy_arrays(
        self,
        needed: frozenset[str],
        outputs: np.ndarray,
        *,
        targets: np.ndarray | None = None,
        labeled: np.ndarray | None = None,
        views: Mapping[str, list[np.ndarray]] | None = None,
        images: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        if "marginals" in needed:
            out["marginals"] = outputs
        if "grad_factors" in needed:
            # d(binary cross-entropy)/d(logits) taking the predicted label set as the label (BADGE)
            p = np.asarray(outputs, dtype=np.float32)
            out["grad_factors"] = p - (p >= DEFAULT_THRESHOLD).astype(np.float32)
        if "label_matrix" in needed:
            matrix = np.full(np.shape(outputs), -1, dtype=np.int64)
            if targets is not None and labeled is not None:
                matrix[labeled] = targets[labeled]
            out["label_matrix"] = matrix
        return out

    def metrics(
        self, targets: np.ndarray, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> dict[str, Any]:
        return multilabel_metrics(targets, outputs, classes, _check_thresholds(thresholds, len(classes)))

    def choose_thresholds(self, targets: np.ndarray, outputs: np.ndarray) -> np.ndarray:
        return choose_thresholds(targets, outputs)
