"""The multi-label task: payloads, cells, targets, decoding, strategy arrays, metrics and thresholds."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.strategies import get_strategy, select
from activelab.tasks import get_task, list_tasks
from activelab.tasks.multilabel import choose_thresholds

CLASSES = ["bag", "shirt", "coat", "dress"]
TASK = get_task("multilabel")
Y = np.array([[1, 0, 0, 0], [0, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])
P = np.array([[0.8, 0.3, 0.2, 0.1], [0.4, 0.6, 0.7, 0.2], [0.6, 0.4, 0.1, 0.7], [0.1, 0.2, 0.8, 0.3]])


def test_registered_with_a_sigmoid_output() -> None:
    assert {"classification", "multilabel"} <= set(list_tasks())
    assert TASK.name == "multilabel" and TASK.output == "sigmoid"
    assert TASK.model_options() == {"output": "sigmoid"}


def test_validate_canonicalises_and_rejects() -> None:
    assert TASK.validate(["shirt", "bag", "shirt"], CLASSES) == ["bag", "shirt"]
    assert TASK.validate([], CLASSES) == []
    assert TASK.validate(("coat",), CLASSES) == ["coat"]
    with pytest.raises(InputError, match="list of class names.*parse"):
        TASK.validate("bag|shirt", CLASSES)
    with pytest.raises(InputError, match="unknown class 'hat'"):
        TASK.validate(["bag", "hat"], CLASSES)
    with pytest.raises(InputError, match="unknown class 3"):
        TASK.validate([3], CLASSES)


def test_cells_parse_and_format_round_trip() -> None:
    assert TASK.parse(" shirt| bag|| shirt ") == ["bag", "shirt"]
    assert TASK.parse("") == []
    assert TASK.parse("coat;bag", sep=";") == ["bag", "coat"]
    assert TASK.format(["shirt", "bag"]) == "bag|shirt"
    assert TASK.format([]) == ""
    assert TASK.parse(TASK.format(["coat", "dress"], sep=";"), sep=";") == ["coat", "dress"]
    with pytest.raises(InputError, match="contains the separator"):
        TASK.format(["a|b"])


def test_targets_are_a_zero_one_matrix() -> None:
    got = TASK.targets([["bag"], ["coat", "shirt"], ["bag", "shirt"], []], CLASSES)
    assert got.tolist() == Y.tolist()
    with pytest.raises(InputError, match="unknown class 'hat'"):
        TASK.targets([["hat"]], CLASSES)


def test_decode_thresholds_and_confidence() -> None:
    decoded = TASK.decode(P, CLASSES)
    assert [payload for payload, _ in decoded] == [["bag"], ["coat", "shirt"], ["bag", "dress"], ["coat"]]
    # confidence = mean over classes of the decided side's probability
    np.testing.assert_allclose([c for _, c in decoded], [3.2 / 4, 2.7 / 4, 2.8 / 4, 3.2 / 4])
    strict = TASK.decode(P, CLASSES, thresholds=np.array([0.7, 0.5, 0.9, 0.5]))
    assert [payload for payload, _ in strict] == [["bag"], ["shirt"], ["dress"], []]
    np.testing.assert_allclose(strict[3][1], (0.9 + 0.8 + 0.2 + 0.7) / 4)  # coat 0.8 decided "no" counts 0.2
    with pytest.raises(InputError, match="thresholds must be 4 values"):
        TASK.decode(P, CLASSES, thresholds=np.array([0.5, 0.5]))
    with pytest.raises(InputError, match="output='sigmoid'"):
        TASK.decode(P[:, :3], CLASSES)


def test_strategy_arrays() -> None:
    labeled = np.array([True, False, True, False])
    got = TASK.strategy_arrays(frozenset({"marginals", "grad_factors", "label_matrix"}), P, targets=Y, labeled=labeled)
    assert got["marginals"] is P
    expected = P - (P >= 0.5)
    np.testing.assert_allclose(got["grad_factors"], expected, rtol=1e-6)
    assert got["label_matrix"].tolist() == [Y[0].tolist(), [-1] * 4, Y[2].tolist(), [-1] * 4]
    assert TASK.strategy_arrays(frozenset({"label_matrix"}), P)["label_matrix"].tolist() == [[-1] * 4] * 4
    assert set(TASK.strategy_arrays(frozenset({"marginals"}), P)) == {"marginals"}


def test_every_multilabel_strategy_runs_on_the_tasks_arrays() -> None:
    labeled = np.array([True, False, True, False])
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [2.0, 0.0]])
    for name in ("multilabel_uncertainty", "cvirs", "badge", "coreset"):
        needed = get_strategy(name).inputs
        assert needed <= TASK.provides, name
        arrays = TASK.strategy_arrays(needed, P, targets=Y, labeled=labeled)
        arrays.update({"embeddings": emb} if "embeddings" in needed else {})
        out = select(name, 2, rng=np.random.default_rng(0), labeled=labeled, **arrays)
        assert sorted(out.tolist()) == [1, 3], name
    # BADGE's first pick is the largest ||grad_factors|| * ||embedding||: row 3 (0.99 * 4 > 0.98 * 1)
    arrays = TASK.strategy_arrays(frozenset({"grad_factors"}), P)
    assert select("badge", 1, rng=np.random.default_rng(0), labeled=labeled, embeddings=emb, **arrays).tolist() == [3]


def test_metrics_against_hand_computed_values() -> None:
    m = TASK.metrics(Y, P, CLASSES)
    # predicted at 0.5: [bag], [shirt, coat], [bag, dress], [coat]
    # bag TP 2; shirt TP 1 FN 1; coat TP 1 FP 1; dress FP 1 -> micro TP 4, FP 2, FN 1
    assert m["n"] == 4
    assert m["micro_f1"] == pytest.approx(8 / 11)
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3 + 0) / 4)
    assert m["subset_accuracy"] == m["accuracy"] == 0.5
    assert m["hamming_loss"] == pytest.approx(3 / 16)
    # AP: bag 1, shirt 1 (positives rank 1st and 2nd), coat 1/2 (its positive ranks 2nd); dress has no positive
    assert m["map"] == pytest.approx(2.5 / 3)
    assert m["map_skipped"] == 1
    assert m["per_class"]["coat"] == {
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "support": 1,
        "ap": 0.5,
    }
    assert m["per_class"]["dress"]["ap"] is None and m["per_class"]["dress"]["f1"] == 0.0
    # per-class thresholds fix shirt (row 2 at 0.4) and dress (row 2 at 0.7); coat's row 3 stays wrong
    tuned = TASK.metrics(Y, P, CLASSES, thresholds=np.array([0.5, 0.35, 0.5, 0.9]))
    assert tuned["subset_accuracy"] == 0.75 and tuned["hamming_loss"] == 1 / 16
    assert tuned["micro_f1"] == pytest.approx(10 / 11)


def test_metrics_without_any_positive_and_bad_shapes() -> None:
    m = TASK.metrics(np.zeros((2, 4), dtype=int), np.full((2, 4), 0.1), CLASSES)
    assert m["map"] is None and m["map_skipped"] == 4 and m["subset_accuracy"] == 1.0
    with pytest.raises(InputError, match="shape"):
        TASK.metrics(Y[:, :3], P, CLASSES)
    with pytest.raises(InputError, match="empty set"):
        TASK.metrics(np.zeros((0, 4)), np.zeros((0, 4)), CLASSES)


def test_choose_thresholds_maximises_f1_with_ties_to_half() -> None:
    y = np.array([[1, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]])
    p = np.array([[0.45, 0.9, 0.6, 0.9], [0.4, 0.2, 0.2, 0.8], [0.3, 0.3, 0.1, 0.3], [0.1, 0.1, 0.7, 0.2]])
    # class 0: 0.4 takes both positives only (F1 1); class 1: 0.5 and 0.9 both give F1 1 -> 0.5
    # class 2: no positive -> 0.5; class 3: 0.3 gives F1 0.8 (0.9 and 0.5 give 2/3, 0.8 gives 1/2, 0.2 gives 2/3)
    np.testing.assert_allclose(choose_thresholds(y, p), [0.4, 0.5, 0.5, 0.3])
    np.testing.assert_allclose(TASK.choose_thresholds(y, p), [0.4, 0.5, 0.5, 0.3])
    assert TASK.metrics(y, p, CLASSES, thresholds=choose_thresholds(y, p))["per_class"]["dress"]["f1"] == 0.8
    with pytest.raises(InputError, match="label some eval images"):
        choose_thresholds(y[:0], p[:0])
