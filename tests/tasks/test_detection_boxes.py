"""Box geometry: payload conversion, IoU and matching, checked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.tasks.boxes import best_match, box_iou, match_greedy, match_quality, payload_xyxy


def test_payload_xyxy_converts_corner_and_size() -> None:
    got = payload_xyxy([{"class": "bag", "x": 1.5, "y": 2, "w": 3, "h": 4}])
    assert got.dtype == np.float32 and got.tolist() == [[1.5, 2, 4.5, 6]]
    assert payload_xyxy([]).shape == (0, 4)


def test_box_iou_by_hand() -> None:
    a = np.array([[0, 0, 10, 10], [0, 0, 2, 2]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30], [3, 3, 3, 3]])
    expected = [[50 / 150, 1.0, 0.0, 0.0], [0.0, 4 / 100, 0.0, 0.0]]
    np.testing.assert_allclose(box_iou(a, b), expected)
    assert box_iou(a, np.zeros((0, 4))).shape == (2, 0)
    assert box_iou(np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]])).tolist() == [[0.0]]  # no union: 0


def test_best_match_ignores_classes_and_marks_no_overlap() -> None:
    iou, index = best_match(np.array([[0, 0, 10, 10], [50, 50, 60, 60]]), np.array([[5, 0, 15, 10], [0, 0, 10, 8]]))
    np.testing.assert_allclose(iou, [0.8, 0.0])
    assert index.tolist() == [1, -1]
    iou, index = best_match(np.array([[0, 0, 1, 1]]), np.zeros((0, 4)))
    assert iou.tolist() == [0.0] and index.tolist() == [-1]


def test_match_quality_is_the_best_iou_times_score_of_the_same_class() -> None:
    gt = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [40, 40, 50, 50]])
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 5], [40, 40, 50, 50]])
    quality = match_quality(gt, np.array([0, 1, 2]), pred, np.array([0, 1, 0]), np.array([0.3, 0.9, 0.8]))
    # class 0: exact box at 0.3; class 1: half box at 0.9 (0.45); class 2: the only overlap is a class-0 box
    np.testing.assert_allclose(quality, [0.3, 0.45, 0.0])
    assert match_quality(gt, np.zeros(3), np.zeros((0, 4)), np.zeros(0), np.zeros(0)).tolist() == [0.0] * 3


def test_match_greedy_pairs_by_score_one_to_one() -> None:
    gt = np.array([[0, 0, 10, 10], [20, 0, 30, 10]])
    pred = np.array([[0, 0, 10, 9], [0, 0, 10, 10], [21, 0, 30, 10], [50, 50, 60, 60]])
    # the exact box scores higher and takes gt 0; the 0.9-IoU box finds it taken
    assert match_greedy(gt, pred, np.array([0.5, 0.9, 0.7, 0.8])).tolist() == [-1, 0, 1, -1]
    assert match_greedy(gt, pred, np.array([0.5, 0.9, 0.7, 0.8]), iou_threshold=0.95).tolist() == [-1, 0, -1, -1]
    assert match_greedy(np.zeros((0, 4)), pred, np.ones(4)).tolist() == [-1] * 4


@pytest.mark.parametrize("n", [0, 3])
def test_best_match_shapes(n: int) -> None:
    iou, index = best_match(np.zeros((n, 4)), np.array([[0, 0, 1, 1]]))
    assert iou.shape == (n,) and index.shape == (n,)
