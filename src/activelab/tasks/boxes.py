"""Box geometry shared by the detection task and box label errors: conversion, IoU and matching.

Boxes here are numpy arrays in pixels. ``xyxy`` rows are ``(x1, y1, x2, y2)`` (the
detector's form); the annotation payload's ``x, y, w, h`` is the top-left corner and
size (:func:`payload_xyxy` converts). Matching is plain numpy: the metrics themselves
come from pycocotools, these helpers only pair boxes up for strategy arrays and label
errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def payload_xyxy(boxes: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """``(M, 4)`` float32 ``xyxy`` of payload boxes ``{"x", "y", "w", "h", ...}`` (``(0, 4)`` for ``[]``)."""
    out = np.array([[b["x"], b["y"], b["x"] + b["w"], b["y"] + b["h"]] for b in boxes], dtype=np.float32)
    return out.reshape(len(boxes), 4)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union ``(M, K)`` of ``xyxy`` boxes ``a`` ``(M, 4)`` and ``b`` ``(K, 4)``.

    A pair with zero union (two degenerate boxes) has IoU 0.
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    width = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    height = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    inter = np.clip(width, 0.0, None) * np.clip(height, 0.0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def best_match(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each box of ``a`` ``(M, 4)``, its best-overlapping box of ``b`` ``(K, 4)``, whatever the class.

    Returns ``(iou, index)``, both ``(M,)``: the highest IoU (float64) and the position
    in ``b`` of that box (int64), or ``0.0`` and ``-1`` where no box of ``b`` overlaps
    (``b`` empty included). Boxes may share a match: each is compared on its own, as
    CALD and localization stability compare a box with its counterpart in another view.
    """
    iou = box_iou(a, b)
    if iou.shape[1] == 0:
        return np.zeros(len(iou)), np.full(len(iou), -1, dtype=np.int64)
    index = iou.argmax(axis=1)
    best = iou[np.arange(len(iou)), index]
    return best, np.where(best > 0, index, -1).astype(np.int64)


def match_quality(
    gt_boxes: np.ndarray,
    gt_labels: np.ndarray,
    pred_boxes: np.ndarray,
    pred_labels: np.ndarray,
    pred_scores: np.ndarray,
) -> np.ndarray:
    """``(G,)`` quality of each ground-truth box: the highest IoU x score among same-class predictions.

    0 for a box no prediction of its class overlaps (a missed box). This is PPAL's
    matching quality (Yang et al., CVPR 2024), from which its class difficulty follows.
    """
    iou = box_iou(gt_boxes, pred_boxes)
    same = np.asarray(gt_labels)[:, None] == np.asarray(pred_labels)[None, :]
    quality = np.where(same, iou * np.asarray(pred_scores, dtype=np.float64)[None, :], 0.0)
    return quality.max(axis=1) if quality.shape[1] else np.zeros(len(quality))


def match_greedy(
    gt_boxes: np.ndarray,
    pred_boxes: np.ndarray,
    pred_scores: np.ndarray,
    *,
    iou_threshold: float = 0.5,
) -> np.ndarray:
    """One-to-one matching of predictions to ground truth, COCO style, ignoring classes.

    Predictions are taken by descending score (ties by position); each takes the
    unmatched ground-truth box it overlaps most, if that IoU reaches ``iou_threshold``.
    Returns ``(P,)`` int64: the matched ground-truth position of each prediction, -1 for
    none. Compare the labels of a pair to tell a wrong class from a missing box.
    """
    iou = box_iou(pred_boxes, gt_boxes)
    taken = np.zeros(iou.shape[1], dtype=bool)
    out = np.full(iou.shape[0], -1, dtype=np.int64)
    for p in np.argsort(-np.asarray(pred_scores, dtype=np.float64), kind="stable"):
        free = np.where(taken, -1.0, iou[p])
        if free.size and free.max() >= iou_threshold:
            g = int(free.argmax())
            out[p], taken[g] = g, True
    return out
