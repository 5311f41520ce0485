"""Metrics of a classifier on a labeled set: accuracy, per-class report, confusion matrix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix, f1_score, precision_recall_fscore_support

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


def prediction_agreement(previous: np.ndarray, current: np.ndarray) -> float:
    """Cohen's kappa between two rounds' predicted classes on the same images.

    The "stabilizing predictions" stopping signal of Bloodgood & Vijay-Shanker
    (2009): when successive models agree (kappa near 1), more labels change little.
    """
    previous, current = np.asarray(previous), np.asarray(current)
    if previous.shape != current.shape:
        raise InputError(f"cannot compare predictions of shapes {previous.shape} and {current.shape}")
    if len(current) == 0:
        return 1.0
    if np.array_equal(previous, current):
        return 1.0
    return float(cohen_kappa_score(previous, current))
