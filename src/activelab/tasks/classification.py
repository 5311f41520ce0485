"""Single-label classification: an annotation is one class name; the model outputs a softmax."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from activelab.exceptions import InputError
from activelab.tasks.base import Payload, Task
from activelab.tasks.metrics import classification_metrics
from activelab.tasks.registry import register_task


@register_task
class Classification(Task):
    """One class per image (``"dress"``)."""

    name: ClassVar[str] = "classification"
    output: ClassVar[str] = "softmax"
    provides: ClassVar[frozenset[str]] = frozenset({"probs", "mc_probs", "embeddings", "grad_factors", "labels"})

    def validate(self, payload: Payload, classes: Sequence[str], *, size: tuple[int, int] | None = None) -> str:
        if not isinstance(payload, str):
            raise InputError(f"a classification label is one class name, got {payload!r}")
        if payload not in classes:
            raise InputError(f"unknown class {payload!r}; known: {', '.join(classes)}")
        return payload

    def parse(self, text: str, *, sep: str = "|", base: Path | None = None) -> str:
        return text.strip()

    def format(self, payload: Payload, *, sep: str = "|") -> str:
        return str(payload)

    def targets(self, payloads: Sequence[Payload], classes: Sequence[str]) -> np.ndarray:
        index = {name: i for i, name in enumerate(classes)}
        return np.array([index[p] for p in payloads], dtype=np.int64)

    def decode(
        self, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> list[tuple[Payload, float]]:
        best = outputs.argmax(axis=1)
        return [(classes[int(c)], float(outputs[i, c])) for i, c in enumerate(best)]

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
        if "probs" in needed:
            out["probs"] = outputs
        if "grad_factors" in needed:
            from activelab.strategies import gradient_factors  # the strategies load faiss and scipy: only here

            out["grad_factors"] = gradient_factors(outputs)  # BADGE's cross-entropy factor, Ash et al. 2020
        if "labels" in needed:
            labels = np.full(len(outputs), -1, dtype=np.int64)
            if targets is not None and labeled is not None:
                labels[labeled] = targets[labeled]
            out["labels"] = labels
        return out

    def metrics(
        self, targets: np.ndarray, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> dict[str, Any]:
        return classification_metrics(targets.tolist(), outputs, classes)
