"""Box label errors from hand-made out-of-fold detections: planted errors found with their type, ranked first."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from activelab.exceptions import InputError
from activelab.label_errors.detection import (
    FINDING_COLUMNS,
    cleanlab_labels,
    cleanlab_predictions,
    out_of_fold_detections,
    rank_box_issues,
)
from activelab.label_errors.rank import RANKING_COLUMNS

CLASSES = ["bag", "coat", "shirt"]
IDS = [10, 11, 12, 13, 14, 15]


def box(x: float, y: float, w: float = 40, h: float = 40) -> list[float]:
    return [x, y, x + w, y + h]


# what each image really holds: (class position, xyxy box)
TRUTH = [
    [(0, box(5, 5)), (1, box(70, 60))],
    [(1, box(10, 70)), (2, box(60, 10))],
    [(2, box(20, 20)), (0, box(80, 80))],
    [(0, box(50, 5)), (2, box(5, 80))],
    [(1, box(80, 20)), (0, box(20, 70))],
    [(2, box(40, 40))],
]


def planted_labels() -> list[list[tuple[int, list[float]]]]:
    """The truth with three planted errors: image 11 lost its shirt, image 12's shirt is labeled coat,
    image 13's bag is shifted 34 px to the right."""
    given = [list(objs) for objs in TRUTH]
    given[1] = given[1][:1]
    given[2] = [(1, TRUTH[2][0][1]), TRUTH[2][1]]
    given[3] = [(0, box(84, 5)), TRUTH[3][1]]
    return given


def as_targets(images: list[list[tuple[int, list[float]]]]) -> np.ndarray:
    out = np.empty(len(images), dtype=object)
    for i, objs in enumerate(images):
        out[i] = {
            "boxes": np.array([b for _, b in objs], dtype=np.float32).reshape(-1, 4),
            "labels": np.array([k for k, _ in objs], dtype=np.int64),
        }
    return out


def as_outputs(images: list[list[tuple[int, list[float]]]], score: float = 0.99) -> np.ndarray:
    """A confident, exact detector's outputs, plus one low-score stray box per image (as real detectors keep)."""
    out = np.empty(len(images), dtype=object)
    for i, objs in enumerate(images):
        out[i] = {
            "boxes": np.array([b for _, b in objs] + [box(100, 100, 10, 10)], dtype=np.float32),
            "scores": np.array([score] * len(objs) + [0.06], dtype=np.float32),
            "labels": np.array([k for k, _ in objs] + [0], dtype=np.int64),
        }
    return out


@pytest.fixture(scope="module")
def issues():  # type: ignore[no-untyped-def]
    return rank_box_issues(
        as_targets(planted_labels()),
        as_outputs(TRUTH),
        classes=CLASSES,
        image_ids=IDS,
        filepaths=[f"img{i}.png" for i in IDS],
    )


def test_each_planted_error_is_found_with_its_type(issues) -> None:  # type: ignore[no-untyped-def]
    findings = issues.findings
    assert list(findings.columns) == FINDING_COLUMNS
    assert findings[["image_id", "issue"]].values.tolist() == [
        [11, "missing"],
        [12, "wrong_class"],
        [13, "badly_placed"],
    ]
    assert findings["rank"].tolist() == [1, 2, 3] and findings["score"].is_monotonic_increasing
    missing, swapped, shifted = (row for _, row in findings.iterrows())
    # missing: the model's box and class that no labeled box covers
    assert pd.isna(missing.box_index) and pd.isna(missing.given_class) and missing.given_box is None
    assert (missing.suggested_class, missing.suggested_box, missing.model_score) == ("shirt", [60, 10, 40, 40], 0.99)
    assert missing.fix == "add a shirt box at x=60, y=10, w=40, h=40 (the model finds one there, unlabeled)"
    # wrong class: same place, the confident prediction's class
    assert (swapped.box_index, swapped.given_class, swapped.suggested_class) == (0, "coat", "shirt")
    assert swapped.given_box == swapped.suggested_box == [20, 20, 40, 40]
    assert swapped.fix == "change box 0 at x=20, y=20, w=40, h=40 from coat to shirt"
    # badly placed: the best overlapping prediction of its class says where it belongs
    assert (shifted.box_index, shifted.given_class, shifted.suggested_class) == (0, "bag", "bag")
    assert (shifted.given_box, shifted.suggested_box) == ([84, 5, 40, 40], [50, 5, 40, 40])
    assert shifted.fix == "move box 0 (bag) from x=84, y=5, w=40, h=40 to x=50, y=5, w=40, h=40"
    assert findings["score"].min() >= 0 and findings["score"].max() < 0.2


def test_images_with_planted_errors_rank_first_and_alone_are_flagged(issues) -> None:  # type: ignore[no-untyped-def]
    ranking = issues.ranking
    assert list(ranking.columns) == [*RANKING_COLUMNS, "issues", "note"]
    assert ranking["image_id"].tolist()[:3] == [11, 12, 13]
    assert ranking["is_issue"].tolist() == [True, True, True, False, False, False]
    assert ranking["score"].is_monotonic_increasing and ranking["score"].iloc[2] < 0.5 < ranking["score"].iloc[3]
    assert ranking["issues"].tolist()[:3] == ["missing", "wrong_class", "badly_placed"]
    assert ranking["note"].tolist()[:3] == issues.findings["fix"].tolist()
    assert ranking["note"].tolist()[3:] == ["", "", ""]
    # the suggested annotation is the truth: every fix applied
    by_id = ranking.set_index("image_id")
    truth = {iid: as_payload(objs) for iid, objs in zip(IDS, TRUTH)}
    for iid in IDS:
        assert sort_boxes(json.loads(by_id.loc[iid, "suggested_label"])) == sort_boxes(truth[iid])
    assert json.loads(by_id.loc[13, "given_label"])[0] == {"class": "bag", "x": 84.0, "y": 5.0, "w": 40.0, "h": 40.0}


def as_payload(objs: list[tuple[int, list[float]]]) -> list[dict[str, object]]:
    return [{"class": CLASSES[k], "x": b[0], "y": b[1], "w": b[2] - b[0], "h": b[3] - b[1]} for k, b in objs]


def sort_boxes(payload: list[dict[str, object]]) -> list[dict[str, object]]:
    return sorted(payload, key=lambda b: (b["x"], b["y"]))


def test_given_payloads_are_kept_as_stored_and_fixed_boxes_lose_their_origin() -> None:
    given = planted_labels()
    payloads = [[{**b, "origin": "drawn"} for b in as_payload(objs)] for objs in given]
    payloads[2][0]["origin"] = "proposal"
    result = rank_box_issues(as_targets(given), as_outputs(TRUTH), classes=CLASSES, payloads=payloads)
    row = result.ranking.set_index("image_id").loc[2]
    assert json.loads(row.given_label) == payloads[2]
    assert json.loads(row.suggested_label) == [
        {"class": "shirt", "x": 20.0, "y": 20.0, "w": 40.0, "h": 40.0},
        payloads[2][1],
    ]


def test_clean_labels_give_no_findings_and_empty_input_gives_empty_tables() -> None:
    clean = rank_box_issues(as_targets(TRUTH), as_outputs(TRUTH), classes=CLASSES)
    assert clean.findings.empty and not clean.ranking["is_issue"].any()
    assert clean.ranking["score"].min() > 0.99
    empty = rank_box_issues(as_targets([]), as_outputs([]), classes=CLASSES)
    assert empty.ranking.empty and empty.findings.empty
    assert list(empty.findings.columns) == FINDING_COLUMNS


def test_cleanlab_formats_and_their_errors() -> None:
    labels = cleanlab_labels(as_targets(TRUTH[:1]))
    assert labels[0]["bboxes"].tolist() == [box(5, 5), box(70, 60)] and labels[0]["labels"].tolist() == [0, 1]
    preds = cleanlab_predictions(as_outputs(TRUTH[:1]), len(CLASSES))
    assert [p.shape for p in preds[0]] == [(2, 5), (1, 5), (0, 5)]
    assert preds[0][1].tolist() == [[70, 60, 110, 100, pytest.approx(0.99)]]
    bad = as_outputs(TRUTH[:1])
    bad[0]["labels"][0] = 3
    with pytest.raises(InputError, match=r"outside \[0, 3\)"):
        cleanlab_predictions(bad, len(CLASSES))
    with pytest.raises(InputError, match="one prediction per image"):
        rank_box_issues(as_targets(TRUTH), as_outputs(TRUTH[:2]), classes=CLASSES)


class MemoDetector:
    """Predicts from a table of known outputs, and remembers which images it was trained on."""

    trained_on: list[list[str]] = []

    def __init__(self, known: dict[str, dict[str, np.ndarray]]) -> None:
        self.known = known

    def fit(self, paths, targets, *, keys=None, seed=0, progress=False):  # type: ignore[no-untyped-def]
        assert targets.dtype == object and len(targets) == len(paths)
        self.seen = set(paths)
        MemoDetector.trained_on.append(list(paths))

    def predict_proba(self, paths, keys=None, progress=False):  # type: ignore[no-untyped-def]
        assert not self.seen & set(paths)
        out = np.empty(len(paths), dtype=object)
        out[:] = [self.known[p] for p in paths]
        return out


def test_out_of_fold_detections_predict_each_image_with_a_model_that_never_saw_it() -> None:
    paths = [f"img{i}.png" for i in range(6)]
    outputs = as_outputs(TRUTH)
    MemoDetector.trained_on = []
    result, folds = out_of_fold_detections(
        lambda: MemoDetector(dict(zip(paths, outputs))), paths, as_targets(TRUTH), folds=3, seed=0
    )
    assert sorted(np.bincount(folds).tolist()) == [2, 2, 2]
    assert [len(t) for t in MemoDetector.trained_on] == [4, 4, 4]
    assert all(r is o for r, o in zip(result, outputs))
    _, folds_again = out_of_fold_detections(
        lambda: MemoDetector(dict(zip(paths, outputs))), paths, as_targets(TRUTH), folds=3, seed=0
    )
    assert folds_again.tolist() == folds.tolist()
    with pytest.raises(InputError, match="one target per image"):
        out_of_fold_detections(lambda: MemoDetector({}), paths[:2], as_targets(TRUTH), folds=2)


def test_flagged_images_are_those_cleanlab_find_label_issues_flags() -> None:
    from cleanlab.object_detection.filter import find_label_issues

    rng = np.random.default_rng(3)
    truth, given = [], []
    for _ in range(16):
        objs = [(int(rng.integers(3)), box(*rng.uniform(0, 80, 2), *rng.uniform(15, 45, 2))) for _ in range(3)]
        truth.append(objs)
        noisy = [(int(rng.integers(3)) if rng.random() < 0.15 else k, b) for k, b in objs if rng.random() > 0.1]
        given.append([(k, list(np.add(b, rng.normal(0, 6, 4)))) for k, b in noisy])
    outputs = as_outputs(truth)
    for out in outputs:
        out["scores"] = rng.uniform(0.4, 1.0, len(out["scores"])).astype(np.float32)
    targets = as_targets(given)
    ranking = rank_box_issues(targets, outputs, classes=CLASSES).ranking.sort_values("image_id")
    expected = find_label_issues(cleanlab_labels(targets), cleanlab_predictions(outputs, len(CLASSES)))
    assert ranking["is_issue"].tolist() == expected.tolist()
    assert 0 < expected.sum() < len(expected)
