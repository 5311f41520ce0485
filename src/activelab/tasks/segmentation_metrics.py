"""Semantic segmentation metrics from torchmetrics: mean IoU, per-class IoU and pixel accuracy.

IoU is the Jaccard index of each class over every labeled pixel of the set (the PASCAL VOC
and Cityscapes convention: counts summed over images, then divided), pixels marked
:data:`~activelab.tasks.masks.IGNORE` left out of both truth and prediction.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from activelab.exceptions import InputError
from activelab.tasks.masks import IGNORE


def _prediction(output: Any, n_classes: int, row: int) -> np.ndarray:
    probs = np.asarray(output["probs"] if isinstance(output, dict) else output)
    if probs.ndim != 3 or probs.shape[0] != n_classes:
        raise InputError(
            f"outputs row {row}: probs must be (n_classes={n_classes}, H, W), got {probs.shape}; "
            "build the model with output='masks' and the project's classes"
        )
    return probs.argmax(axis=0)


def segmentation_metrics(targets: np.ndarray, outputs: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """``{"n", "miou", "pixel_accuracy", "per_class_iou"}`` of arg-max predictions against masks.

    Args:
        targets: ``(N,)`` object array of ``(H, W) uint8`` masks (255 = not labeled).
        outputs: ``(N,)`` object array of ``{"probs": (C, H, W)}`` (the image's own size).
        classes: the C class names, in position order.

    ``per_class_iou`` is None for a class neither labeled nor predicted on a labeled pixel of
    any image (its IoU is undefined); ``miou`` is the mean of the others. Images are added to
    the torchmetrics states one by one, so a large eval set never sits in memory at once.
    """
    import torch
    from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex

    if len(targets) != len(outputs):
        raise InputError(f"targets and outputs must cover the same images, got {len(targets)} and {len(outputs)}")
    if len(targets) == 0:
        raise InputError("cannot evaluate on an empty set: label some images of the eval split")
    n_classes = len(classes)
    jaccard = MulticlassJaccardIndex(num_classes=n_classes, average="none", ignore_index=IGNORE)
    accuracy = MulticlassAccuracy(num_classes=n_classes, average="micro", ignore_index=IGNORE)
    for row, (target, output) in enumerate(zip(targets, outputs, strict=True)):
        truth = np.asarray(target)
        predicted = _prediction(output, n_classes, row)
        if truth.shape != predicted.shape:
            raise InputError(
                f"row {row}: the mask is {truth.shape} but the prediction is {predicted.shape} (height, width); "
                "predict at the image's own size"
            )
        bad = (truth >= n_classes) & (truth != IGNORE)
        if bad.any():
            raise InputError(f"row {row}: mask values {sorted(set(truth[bad].tolist()))[:5]} are not class positions")
        preds, truth_tensor = torch.from_numpy(predicted.astype(np.int64)), torch.from_numpy(truth.astype(np.int64))
        jaccard.update(preds, truth_tensor)
        accuracy.update(preds, truth_tensor)
    iou = jaccard.compute().tolist()
    confusion = jaccard.confmat.sum(0) + jaccard.confmat.sum(1)  # labeled + predicted pixels of each class
    per_class = {name: (float(iou[j]) if int(confusion[j]) > 0 else None) for j, name in enumerate(classes)}
    present = [value for value in per_class.values() if value is not None]
    return {
        "n": len(targets),
        "miou": float(np.mean(present)) if present else 0.0,
        "pixel_accuracy": float(accuracy.compute()),
        "per_class_iou": per_class,
    }
