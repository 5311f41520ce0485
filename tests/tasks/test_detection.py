"""The detection task: box payloads, cells, targets, decoding, costs and the registry."""

from __future__ import annotations

import numpy as np
import pytest

from activelab._defaults import DEFAULT_DETECTION_MODEL, DEFAULT_MODEL
from activelab.exceptions import InputError
from activelab.strategies import get_strategy, select
from activelab.tasks import get_task, list_tasks

CLASSES = ["bag", "shirt", "coat"]
TASK = get_task("detection")
SIZE = (128, 96)


def box(name: str, x: float, y: float, w: float, h: float, **extra: object) -> dict[str, object]:
    return {"class": name, "x": x, "y": y, "w": w, "h": h, **extra}


def detections(boxes: list[list[float]], scores: list[float], labels: list[int]) -> dict[str, np.ndarray]:
    """One image's detector output with one-hot-ish class distributions and 2-d features."""
    probs = np.full((len(labels), len(CLASSES)), 0.1, dtype=np.float32)
    probs[np.arange(len(labels)), labels] = 0.8
    return {
        "boxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
        "scores": np.array(scores, dtype=np.float32),
        "labels": np.array(labels, dtype=np.int64),
        "probs": probs,
        "features": np.arange(2 * len(labels), dtype=np.float32).reshape(-1, 2),
    }


def as_outputs(*images: dict[str, np.ndarray]) -> np.ndarray:
    out = np.empty(len(images), dtype=object)
    for i, image in enumerate(images):
        out[i] = image
    return out


def test_registered_with_boxes_output_and_the_detector_default() -> None:
    assert "detection" in list_tasks()
    assert (TASK.name, TASK.output, TASK.headline) == ("detection", "boxes", "map")
    assert TASK.model_options() == {"output": "boxes"}
    assert TASK.default_model == DEFAULT_DETECTION_MODEL
    assert get_task("classification").default_model == DEFAULT_MODEL
    assert get_task("multilabel").default_model == DEFAULT_MODEL
    assert TASK.choose_thresholds(np.empty(0), np.empty(0)) is None
    assert {"box_probs", "box_noise_iou", "class_difficulty", "embeddings"} <= TASK.provides


def test_validate_canonicalises_keys_order_and_rounding() -> None:
    given = [{"h": 22, "w": 40.004, "y": 30.456, "x": 12, "class": "bag", "origin": "proposal", "score": 0.912}]
    assert TASK.validate(given, CLASSES, size=SIZE) == [
        {"class": "bag", "x": 12.0, "y": 30.46, "w": 40.0, "h": 22.0, "score": 0.91, "origin": "proposal"}
    ]
    assert list(TASK.validate(given, CLASSES)[0]) == ["class", "x", "y", "w", "h", "score", "origin"]
    assert TASK.validate([], CLASSES, size=SIZE) == []
    from_numpy = [box("bag", np.float32(1.5), np.int64(2), np.float64(3), 4)]
    assert TASK.validate(from_numpy, CLASSES) == [box("bag", 1.5, 2.0, 3.0, 4.0)]
    assert type(TASK.validate(from_numpy, CLASSES)[0]["x"]) is float  # JSON-serialisable
    assert TASK.validate((box("coat", 0, 0, 128, 96),), CLASSES, size=SIZE) == [box("coat", 0.0, 0.0, 128.0, 96.0)]


def test_validate_clips_an_overshoot_of_at_most_one_pixel() -> None:
    got = TASK.validate([box("bag", -0.6, 90, 128.9, 6.8), box("shirt", 127, -1, 2, 5)], CLASSES, size=SIZE)
    assert got == [box("bag", 0.0, 90.0, 128.0, 6.0), box("shirt", 127.0, 0.0, 1.0, 4.0)]
    # without a size only the top and left edges are known
    assert TASK.validate([box("bag", -1, 0, 500, 10)], CLASSES) == [box("bag", 0.0, 0.0, 499.0, 10.0)]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("bag", r"list of boxes \(\[\] for an image with nothing in it\).*parse\(\)"),
        (box("bag", 1, 1, 2, 2), "list of boxes"),
        ([box("bag", 1, 1, 2, 2), "bag"], "box 1 must be an object"),
        ([{"class": "bag", "x": 1, "y": 1}], "box 0 lacks w, h"),
        ([box("bag", 1, 1, 2, 2, colour="red")], "box 0 has unknown keys colour"),
        ([box("bag", 1, 1, 2, 2), box("hat", 1, 1, 2, 2)], "box 1: unknown class 'hat'; known: bag, shirt, coat"),
        ([box("bag", 1, 1, 0, 2)], "box 0: w must be > 0, got 0"),
        ([box("bag", 1, 1, 2, -3)], "box 0: h must be > 0, got -3"),
        ([box("bag", 1, float("nan"), 2, 2)], "box 0: y must be finite"),
        ([box("bag", 1, 1, float("inf"), 2)], "box 0: w must be finite"),
        ([box("bag", "1", 1, 2, 2)], "box 0: x must be a number, got '1'"),
        ([box("bag", True, 1, 2, 2)], "box 0: x must be a number, got True"),
        (
            [box("bag", 120, 1, 9.5, 2)],
            r"box 0 lies outside the image along x: it spans 120 to 129.5, the image spans 0",
        ),
        ([box("bag", 1, -1.5, 2, 2)], "box 0 lies outside the image along y.*convert normalised or centre"),
        ([box("bag", 128.2, 1, 0.5, 2)], "box 0 has no area inside the image along x"),
        ([box("bag", 1, 1, 0.004, 2)], "box 0 is narrower than 0.01 px once rounded"),
        ([box("bag", 1, 1, 2, 2, score=1.5)], r"box 0: score must be in \[0, 1\], got 1.5"),
        ([box("bag", 1, 1, 2, 2, origin="guess")], "box 0: origin must be one of drawn, edited, proposal"),
    ],
)
def test_validate_names_the_box_and_the_problem(payload: object, message: str) -> None:
    with pytest.raises(InputError, match=message):
        TASK.validate(payload, CLASSES, size=SIZE)


def test_cells_are_compact_json_and_round_trip() -> None:
    payload = [box("bag", 12.0, 30.5, 40.0, 22.0), box("coat", 1.0, 2.0, 3.0, 4.0, score=0.5)]
    text = TASK.format(payload)
    assert text == (
        '[{"class":"bag","x":12.0,"y":30.5,"w":40.0,"h":22.0},{"class":"coat","x":1.0,"y":2.0,"w":3.0,"h":4.0,"score":0.5}]'
    )
    assert TASK.parse(text) == payload
    assert TASK.format([]) == "[]" and TASK.parse(" [] ") == []
    with pytest.raises(InputError, match=r"write \[\] for an image with nothing"):
        TASK.parse("  ")
    with pytest.raises(InputError, match="must be a JSON list of boxes"):
        TASK.parse("bag")
    with pytest.raises(InputError, match=r"must be a JSON list of boxes \(\[\] for nothing\)"):
        TASK.parse('{"class": "bag"}')


def test_targets_are_an_object_array_of_xyxy_boxes_and_class_positions() -> None:
    got = TASK.targets([[box("coat", 1, 2, 3, 4), box("bag", 10, 20, 5.5, 1)], []], CLASSES)
    assert got.dtype == object and got.shape == (2,)
    assert got[0]["boxes"].dtype == np.float32 and got[0]["labels"].dtype == np.int64
    assert got[0]["boxes"].tolist() == [[1, 2, 4, 6], [10, 20, 15.5, 21]]
    assert got[0]["labels"].tolist() == [2, 0]
    assert got[1]["boxes"].shape == (0, 4) and got[1]["labels"].shape == (0,)
    assert [t["labels"].tolist() for t in got[np.array([1, 0])]] == [[], [2, 0]]  # rows index like other targets
    with pytest.raises(InputError, match="unknown class 'hat'"):
        TASK.targets([[box("hat", 1, 2, 3, 4)]], CLASSES)


def test_decode_sorts_boxes_by_score_and_reports_a_confidence() -> None:
    outputs = as_outputs(
        detections([[0, 0, 10, 10], [5, 5, 25.5, 15]], [0.3, 0.9], [1, 0]),
        detections([[1, 1, 2, 2], [3, 3, 4, 4]], [0.2, 0.125], [2, 2]),
        detections([], [], []),
    )
    (first, c1), (second, c2), (third, c3) = TASK.decode(outputs, CLASSES)
    assert first == [box("bag", 5.0, 5.0, 20.5, 10.0, score=0.9), box("shirt", 0.0, 0.0, 10.0, 10.0, score=0.3)]
    assert c1 == pytest.approx(0.9)  # the mean score of the boxes >= 0.5
    assert [b["score"] for b in second] == [0.2, 0.12] and c2 == pytest.approx(0.8)  # none >= 0.5: 1 - max
    assert (third, c3) == ([], 1.0)
    assert TASK.validate(first, CLASSES, size=SIZE) == first


def test_costs_count_confident_boxes_with_one_at_least() -> None:
    outputs = as_outputs(
        detections([[0, 0, 1, 1]] * 3, [0.5, 0.9, 0.49], [0, 1, 2]),
        detections([[0, 0, 1, 1]], [0.2], [0]),
        detections([], [], []),
    )
    assert TASK.costs(outputs).tolist() == [2.0, 1.0, 1.0]
    assert get_task("classification").costs(np.zeros((3, 2))).tolist() == [1.0, 1.0, 1.0]


def test_views_for_names_the_model_views_the_arrays_need() -> None:
    assert TASK.views_for(frozenset({"box_probs", "embeddings"})) == []
    assert TASK.views_for(frozenset({"box_flip_iou"})) == ["hflip"]
    assert TASK.views_for(frozenset({"box_noise_iou", "box_flip_probs"})) == ["hflip", "noise"]
    assert get_task("classification").views_for(frozenset({"probs"})) == []


def three_images() -> np.ndarray:
    """Two boxes, no box, one low-scored box."""
    return as_outputs(
        detections([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.6], [0, 1]),
        detections([], [], []),
        detections([[0, 0, 4, 4]], [0.3], [2]),
    )


def test_strategy_arrays_are_flat_over_the_pools_boxes() -> None:
    outputs = three_images()
    got = TASK.strategy_arrays(frozenset({"box_probs", "box_scores", "box_owner", "box_features"}), outputs)
    assert set(got) == {"box_probs", "box_scores", "box_owner", "box_features"}
    assert got["box_owner"].tolist() == [0, 0, 2] and got["box_owner"].dtype == np.int64
    np.testing.assert_allclose(got["box_scores"], [0.9, 0.6, 0.3])
    np.testing.assert_allclose(got["box_probs"], [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8]])
    assert got["box_features"].tolist() == [[0, 1], [2, 3], [0, 1]]
    empty = TASK.strategy_arrays(frozenset({"box_probs", "box_owner"}), as_outputs(detections([], [], [])))
    assert empty["box_probs"].shape == (0, 3) and empty["box_owner"].shape == (0,)


def test_flip_arrays_take_each_boxs_best_match_in_the_flipped_view() -> None:
    flipped = as_outputs(
        detections([[0, 0, 10, 5]], [0.7], [1]),  # IoU 0.5 with the first box, 0 with the second
        detections([[0, 0, 1, 1]], [0.9], [0]),  # an image without boxes of its own adds no row
        detections([], [], []),
    )
    got = TASK.strategy_arrays(
        frozenset({"box_flip_iou", "box_flip_probs"}), three_images(), views={"hflip": [flipped]}
    )
    np.testing.assert_allclose(got["box_flip_iou"], [0.5, 0.0, 0.0])
    np.testing.assert_allclose(got["box_flip_probs"], [[0.1, 0.8, 0.1], [1 / 3] * 3, [1 / 3] * 3], rtol=1e-6)
    with pytest.raises(
        InputError, match="inputs box_flip_iou need the model's predictions on the 'hflip' view; pass views="
    ):
        TASK.strategy_arrays(frozenset({"box_flip_iou"}), three_images())


def test_noise_iou_has_one_column_per_noise_level() -> None:
    shifted = as_outputs(
        detections([[5, 0, 15, 10]], [0.9], [0]),  # IoU 50 / 150 with the first box
        detections([], [], []),
        detections([[0, 0, 4, 2]], [0.3], [2]),  # IoU 0.5
    )
    got = TASK.strategy_arrays(frozenset({"box_noise_iou"}), three_images(), views={"noise": [three_images(), shifted]})
    np.testing.assert_allclose(got["box_noise_iou"], [[1.0, 1 / 3], [1.0, 0.0], [1.0, 0.5]], rtol=1e-6)
    with pytest.raises(InputError, match="'noise' view"):
        TASK.strategy_arrays(frozenset({"box_noise_iou"}), three_images(), views={"hflip": [shifted]})


def test_class_difficulty_reads_the_labeled_images_only() -> None:
    targets = TASK.targets(
        [
            [box("bag", 0, 0, 10, 10), box("shirt", 40, 40, 10, 10)],  # found with score 0.9; missed
            [box("coat", 0, 0, 5, 5)],  # not labeled: ignored
            [box("bag", 0, 0, 4, 4)],  # predicted as a coat: missed
        ],
        CLASSES,
    )
    labeled = np.array([True, False, True])
    got = TASK.strategy_arrays(frozenset({"class_difficulty"}), three_images(), targets=targets, labeled=labeled)
    np.testing.assert_allclose(got["class_difficulty"], [1 - 0.9 / 2, 1.0, 0.5])
    assert (
        TASK.strategy_arrays(frozenset({"class_difficulty"}), three_images())["class_difficulty"].tolist() == [0.5] * 3
    )


def test_an_empty_pool_gives_empty_arrays() -> None:
    views = {"hflip": [as_outputs()], "noise": [as_outputs(), as_outputs()]}
    got = TASK.strategy_arrays(TASK.provides - {"embeddings"}, as_outputs(), views=views)
    assert {key: value.shape for key, value in got.items() if key != "class_difficulty"} == {
        "box_probs": (0, 0),
        "box_scores": (0,),
        "box_owner": (0,),
        "box_features": (0, 0),
        "box_flip_iou": (0,),
        "box_flip_probs": (0, 0),
        "box_noise_iou": (0, 2),
    }


def test_every_detection_strategy_runs_on_the_tasks_arrays() -> None:
    """Image 3's one box is unsure of its class and vanishes in the flipped and noisy views: the strategies' pick.

    CALD alone takes image 1 first: it scores an image without boxes 0, most informative, as its authors' code does.
    """
    unsure = detections([[0, 0, 10, 10]], [0.5], [0])
    unsure["probs"] = np.array([[0.4, 0.3, 0.3]], dtype=np.float32)
    outputs = as_outputs(*three_images(), unsure)
    half = detections([[0, 0, 4, 2]], [0.3], [2])  # IoU 0.5 with image 2's box
    other_view = as_outputs(three_images()[0], detections([], [], []), half, detections([], [], []))
    views = {"hflip": [other_view], "noise": [other_view, other_view]}
    labeled = np.array([True, False, False, False])
    targets = TASK.targets([[box("bag", 0, 0, 10, 10)], [], [], []], CLASSES)
    strategies = ("det_least_confidence", "det_margin", "det_entropy", "ppal", "cald", "localization_stability")
    for name in strategies:
        needed = get_strategy(name).inputs
        assert needed <= TASK.provides, name
        arrays = TASK.strategy_arrays(needed, outputs, targets=targets, labeled=labeled, views=views)
        first = select(name, 1, rng=np.random.default_rng(0), labeled=labeled, **arrays).tolist()
        assert first == ([1] if name == "cald" else [3]), name
