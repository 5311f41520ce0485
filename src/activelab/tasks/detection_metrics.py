"""COCO detection metrics through pycocotools' COCOeval (never hand-written).

The ground truth and the detections are built as COCO datasets in memory (image ids
1..N, category ids = class position + 1, boxes ``[x, y, w, h]``), so nothing touches
the disk, and COCOeval's progress prints are silenced.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from activelab.exceptions import InputError


def _coco(images: list[dict[str, Any]], classes: Sequence[str], annotations: list[dict[str, Any]]) -> Any:
    from pycocotools.coco import COCO  # imports matplotlib: only when evaluating

    coco = COCO()
    coco.dataset = {
        "images": images,
        "categories": [{"id": i + 1, "name": name} for i, name in enumerate(classes)],
        "annotations": annotations,
    }
    coco.createIndex()
    return coco


def _annotations(items: np.ndarray, *, scored: bool) -> list[dict[str, Any]]:
    """COCO annotation dicts of per-image ``{"boxes": xyxy, "labels", ("scores")}`` dicts."""
    out: list[dict[str, Any]] = []
    for image, item in enumerate(items, start=1):
        boxes = np.asarray(item["boxes"], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(item["scores"], dtype=np.float64) if scored else np.ones(len(boxes))
        for box, label, score in zip(boxes, np.asarray(item["labels"]), scores, strict=True):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            ann: dict[str, Any] = {"id": len(out) + 1, "image_id": image, "category_id": int(label) + 1}
            ann.update({"bbox": [float(box[0]), float(box[1]), w, h], "area": w * h, "iscrowd": 0})
            if scored:
                ann["score"] = float(score)
            out.append(ann)
    return out


def _class_ap(precision: np.ndarray) -> float:
    """AP of one class from COCOeval's precision ``(T, R)`` slice: the mean of the defined entries."""
    defined = precision[precision > -1]
    return float(defined.mean()) if defined.size else 0.0


def coco_metrics(targets: np.ndarray, outputs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """COCO box metrics of ``outputs`` against ``targets``, JSON-serialisable.

    Args:
        targets: ``(N,)`` object array of ``{"boxes": (G, 4) xyxy, "labels": (G,) class positions}``.
        outputs: ``(N,)`` object array of the detector's ``{"boxes", "scores", "labels", ...}`` per image.
        classes: the class names, in label-position order.

    Returns ``n`` (images), ``n_boxes`` (ground-truth boxes), ``map`` (mAP@[.5:.95]),
    ``map_50``, ``map_75`` (COCOeval's stats, area "all", 100 detections per image) and
    ``per_class_ap`` (AP@[.5:.95] per class name; ``None`` for a class without a
    ground-truth box, which the means skip). A class with ground truth but no detection
    has AP 0. With no ground-truth box at all the means are ``None``.
    """
    from pycocotools.cocoeval import COCOeval  # only when evaluating

    if len(targets) != len(outputs):
        raise InputError(f"targets and outputs must cover the same images, got {len(targets)} and {len(outputs)}")
    if len(targets) == 0:
        raise InputError("cannot evaluate on an empty set: label some images of the eval split")
    gt_annotations = _annotations(targets, scored=False)
    images = [{"id": i} for i in range(1, len(targets) + 1)]
    present = {a["category_id"] - 1 for a in gt_annotations}
    with contextlib.redirect_stdout(io.StringIO()):
        ground_truth = _coco(images, classes, gt_annotations)
        detections = _coco(images, classes, _annotations(outputs, scored=True))
        evaluation = COCOeval(ground_truth, detections, iouType="bbox")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    precision = evaluation.eval["precision"][:, :, :, 0, -1]  # (T IoU thresholds, R recalls, K classes), area all
    stats = [float(v) if present else None for v in evaluation.stats[:3]]  # mAP@[.5:.95], @.5, @.75
    return {
        "n": len(targets),
        "n_boxes": len(gt_annotations),
        "map": stats[0],
        "map_50": stats[1],
        "map_75": stats[2],
        "per_class_ap": {
            name: _class_ap(precision[:, :, k]) if k in present else None for k, name in enumerate(classes)
        },
    }
