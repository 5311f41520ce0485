"""Metrics of each task, computed with scikit-learn (never hand-written)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

from activelab.exceptions import InputError


def classification_metrics(y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of ``probs`` (N, C) against integer labels ``y_true`` (N,), JSON-serialisable.

    Returns ``accuracy``, ``macro_f1``, ``n``, ``per_class`` (precision, recall,
    f1, support per class name) and ``confusion`` (rows: true class, columns:
    predicted, in class-index order).
    """
    y = np.asarray(y_true, dtype=np.int64)
    probs = np.asarray(probs)
    if probs.ndim != 2 or probs.shape != (len(y), len(classes)):
        raise InputError(f"probs must have shape (n={len(y)}, n_classes={len(classes)}), got {probs.shape}")
    if len(y) == 0:
        raise InputError("cannot evaluate on an empty set: label some images of the eval split")
    pred = probs.argmax(axis=1)
    labels = list(range(len(classes)))
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return {
        "n": len(y),
        "accuracy": float((pred == y).mean()),
        "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(classes, precision, recall, f1, support)
        },
        "confusion": confusion_matrix(y, pred, labels=labels).tolist(),
    }
