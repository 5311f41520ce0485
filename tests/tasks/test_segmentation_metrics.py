"""Segmentation metrics (torchmetrics) against IoU and pixel accuracy counted by hand."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.tasks import get_task
from activelab.tasks.masks import IGNORE
from activelab.tasks.segmentation_metrics import segmentation_metrics

CLASSES = ["background", "bag", "shirt", "coat", "hat"]
X = IGNORE
TRUTH = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, X, X], [2, 2, 0, 0]], dtype=np.uint8)
PRED = np.array([[0, 0, 1, 0], [0, 1, 1, 1], [2, 0, 2, 3], [2, 2, 0, 0]])  # coat only on an ignored pixel


def as_outputs(*preds: np.ndarray) -> np.ndarray:
    out = np.empty(len(preds), dtype=object)
    for i, pred in enumerate(preds):
        out[i] = {"probs": np.eye(len(CLASSES), dtype=np.float16)[pred].transpose(2, 0, 1)}
    return out


def as_targets(*masks: np.ndarray) -> np.ndarray:
    out = np.empty(len(masks), dtype=object)
    for i, mask in enumerate(masks):
        out[i] = mask
    return out


def test_iou_per_class_and_pixel_accuracy_by_hand_on_4x4() -> None:
    """14 labeled pixels. background: TP 5, FP 2 (0,3) (2,1), FN 1 (1,1) -> 5/8; bag: TP 3, FP 1, FN 1 -> 3/5;
    shirt: TP 3, FN 1 -> 3/4; coat is predicted on an ignored pixel only and hat nowhere: None."""
    result = get_task("segmentation").metrics(as_targets(TRUTH), as_outputs(PRED), CLASSES)
    per_class = result["per_class_iou"]
    assert per_class["background"] == pytest.approx(5 / 8)
    assert per_class["bag"] == pytest.approx(3 / 5)
    assert per_class["shirt"] == pytest.approx(3 / 4)
    assert per_class["coat"] is None and per_class["hat"] is None
    assert result["miou"] == pytest.approx((5 / 8 + 3 / 5 + 3 / 4) / 3)
    assert result["pixel_accuracy"] == pytest.approx(11 / 14)
    assert result["n"] == 1


def test_counts_add_up_over_images_before_dividing() -> None:
    """A 2x2 second image: hat TP 1 FN 1 (1/2); background gains TP 2 and FP 1: 7/11 over both, not a mean."""
    truth = np.array([[4, 4], [0, 0]], dtype=np.uint8)
    pred = np.array([[4, 0], [0, 0]])
    result = segmentation_metrics(as_targets(TRUTH, truth), as_outputs(PRED, pred), CLASSES)
    assert result["per_class_iou"]["background"] == pytest.approx(7 / 11)
    assert result["per_class_iou"]["hat"] == pytest.approx(1 / 2)
    assert result["miou"] == pytest.approx((7 / 11 + 3 / 5 + 3 / 4 + 1 / 2) / 4)
    assert result["pixel_accuracy"] == pytest.approx(14 / 18)
    assert result["n"] == 2


def test_bad_shapes_and_empty_sets_are_refused() -> None:
    with pytest.raises(InputError, match="empty set"):
        segmentation_metrics(as_targets(), as_outputs(), CLASSES)
    with pytest.raises(InputError, match=r"the mask is \(4, 4\) but the prediction is \(2, 2\)"):
        segmentation_metrics(as_targets(TRUTH), as_outputs(np.zeros((2, 2), int)), CLASSES)
    with pytest.raises(InputError, match=r"probs must be \(n_classes=3, H, W\)"):
        segmentation_metrics(as_targets(TRUTH), as_outputs(PRED), CLASSES[:3])
