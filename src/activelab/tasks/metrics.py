"""Metrics of each task, computed with scikit-learn (never hand-written)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from activelab.exceptions import InputError


def classification_metrics(y_true: Sequence[int], probs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """Metrics of ``probs`` (N, C) against integer labels ``y_true`` (N,), JSON-serialisable.

    Returns ``accuracy``, ``macro_f1``, ``n``, ``per_class`` (precision, recall,
    f1, support per class name) and ``confusion`` (rows: true class, columns:
    predicted, in class-index order).
    """
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support  # slow to import

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


def multilabel_metrics(
    targets: np.ndarray, marginals: np.ndarray, classes: Sequence[str], thresholds: np.ndarray | None = None
) -> dict[str, Any]:
    """Metrics of per-class probabilities ``marginals`` (N, C) against 0/1 ``targets`` (N, C), JSON-serialisable.

    A class is predicted where its probability reaches its threshold (``thresholds``
    ``(C,)``, default 0.5 for every class). Returns:

    - ``n``; ``micro_f1`` and ``macro_f1`` (scikit-learn ``f1_score``, 0 where undefined);
    - ``map``: mean over classes of ``average_precision_score`` (threshold-free), over the
      classes with at least one positive; ``map_skipped`` counts the others (``map`` is
      ``None`` when every class is skipped);
    - ``subset_accuracy``: the share of images whose whole predicted label set is right
      (``accuracy_score`` on multi-label input), also under ``accuracy``, the key learning
      curves read for every task;
    - ``hamming_loss``: the share of wrong (image, class) decisions;
    - ``per_class``: precision, recall, f1, support (positives) and ``ap`` (``None`` when
      skipped) per class name.
    """
    from sklearn.metrics import (  # slow to import
        accuracy_score,
        average_precision_score,
        f1_score,
        hamming_loss,
        precision_recall_fscore_support,
    )

    y = np.asarray(targets)
    p = np.asarray(marginals, dtype=np.float64)
    shape = (len(y), len(classes))
    if y.shape != shape or p.shape != shape:
        raise InputError(
            f"targets and marginals must both have shape (n, n_classes={len(classes)}), got {y.shape} and {p.shape}"
        )
    if len(y) == 0:
        raise InputError("cannot evaluate on an empty set: label some images of the eval split")
    t = np.full(len(classes), 0.5) if thresholds is None else np.asarray(thresholds, dtype=np.float64)
    if t.shape != (len(classes),):
        raise InputError(f"thresholds must have one value per class ({len(classes)}), got shape {t.shape}")
    y = y.astype(np.int64)
    pred = (p >= t[None, :]).astype(np.int64)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, average=None, zero_division=0)
    ap: list[float | None] = [
        float(average_precision_score(y[:, j], p[:, j])) if y[:, j].any() else None for j in range(len(classes))
    ]
    scored = [a for a in ap if a is not None]
    subset = float(accuracy_score(y, pred))
    return {
        "n": len(y),
        "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
        "map": float(np.mean(scored)) if scored else None,
        "map_skipped": len(ap) - len(scored),
        "subset_accuracy": subset,
        "accuracy": subset,
        "hamming_loss": float(hamming_loss(y, pred)),
        "per_class": {
            name: {"precision": float(pr), "recall": float(r), "f1": float(f), "support": int(s), "ap": a}
            for name, pr, r, f, s, a in zip(classes, precision, recall, f1, support, ap)
        },
    }
