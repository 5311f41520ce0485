"""COCO metrics of the detection task through pycocotools, on hand-built boxes."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.tasks import get_task
from activelab.tasks.detection_metrics import coco_metrics

CLASSES = ["bag", "shirt", "coat"]
TASK = get_task("detection")


def objects(*items: dict[str, list]) -> np.ndarray:
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = {
            key: np.array(value, dtype=np.int64 if key == "labels" else np.float32) for key, value in item.items()
        }
        out[i]["boxes"] = out[i]["boxes"].reshape(-1, 4)
    return out


TRUTH = objects(
    {"boxes": [[0, 0, 10, 10], [20, 20, 40, 30]], "labels": [0, 1]},
    {"boxes": [], "labels": []},  # nothing here
)


def predicted(first: list[list[float]], scores: list[float], labels: list[int]) -> np.ndarray:
    return objects({"boxes": first, "scores": scores, "labels": labels}, {"boxes": [], "scores": [], "labels": []})


def test_perfect_predictions_score_one_and_classes_without_truth_are_none() -> None:
    got = TASK.metrics(TRUTH, predicted([[0, 0, 10, 10], [20, 20, 40, 30]], [0.9, 0.8], [0, 1]), CLASSES)
    assert (got["n"], got["n_boxes"]) == (2, 2)
    assert got["map"] == pytest.approx(1.0) and got["map_50"] == pytest.approx(1.0)
    assert got["map_75"] == pytest.approx(1.0)
    assert got["per_class_ap"]["bag"] == pytest.approx(1.0) and got["per_class_ap"]["coat"] is None


def test_a_shifted_box_passes_only_the_iou_thresholds_below_its_iou() -> None:
    # bag: IoU 80 / 120 = 2/3 passes 0.50..0.65 (4 of 10 thresholds); shirt: exact
    got = TASK.metrics(TRUTH, predicted([[2, 0, 12, 10], [20, 20, 40, 30]], [0.9, 0.8], [0, 1]), CLASSES)
    assert got["per_class_ap"]["bag"] == pytest.approx(0.4)
    assert got["per_class_ap"]["shirt"] == pytest.approx(1.0)
    assert got["map"] == pytest.approx(0.7)
    assert got["map_50"] == pytest.approx(1.0) and got["map_75"] == pytest.approx(0.5)


def test_a_confident_false_positive_halves_precision_and_a_missed_class_scores_zero() -> None:
    # bag: a wrong box outranks the right one (precision 1/2 at full recall); shirt: never predicted
    got = TASK.metrics(TRUTH, predicted([[50, 50, 60, 60], [0, 0, 10, 10]], [0.9, 0.8], [0, 0]), CLASSES)
    assert got["per_class_ap"] == {"bag": pytest.approx(0.5), "shirt": 0.0, "coat": None}
    assert got["map"] == pytest.approx(0.25) and got["map_50"] == pytest.approx(0.25)


def test_no_predictions_score_zero_and_no_truth_gives_none() -> None:
    got = TASK.metrics(TRUTH, predicted([], [], []), CLASSES)
    assert (got["map"], got["map_50"], got["map_75"]) == (0.0, 0.0, 0.0)
    assert got["per_class_ap"] == {"bag": 0.0, "shirt": 0.0, "coat": None}
    empty = objects({"boxes": [], "labels": []})
    nothing = coco_metrics(empty, objects({"boxes": [[0, 0, 1, 1]], "scores": [0.9], "labels": [0]}), CLASSES)
    assert (nothing["n"], nothing["n_boxes"], nothing["map"]) == (1, 0, None)


def test_bad_inputs_name_the_fix() -> None:
    with pytest.raises(InputError, match="same images, got 2 and 1"):
        coco_metrics(TRUTH, objects({"boxes": [], "scores": [], "labels": []}), CLASSES)
    with pytest.raises(InputError, match="label some images of the eval split"):
        coco_metrics(objects(), objects(), CLASSES)


def test_a_box_predicted_on_a_nothing_here_image_is_a_false_positive() -> None:
    outputs = objects(
        {"boxes": [[0, 0, 10, 10], [20, 20, 40, 30]], "scores": [0.8, 0.8], "labels": [0, 1]},
        {"boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]},  # outranks the right bag box
    )
    got = TASK.metrics(TRUTH, outputs, CLASSES)
    assert got["per_class_ap"]["bag"] == pytest.approx(0.5) and got["per_class_ap"]["shirt"] == pytest.approx(1.0)
    assert got["map"] == pytest.approx(0.75)
