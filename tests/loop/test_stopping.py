"""Stopping rules on hand-made learning curves with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.loop.evaluate import prediction_agreement
from activelab.loop.stopping import CurvePoint, StoppingRules, stop_reason
from activelab.tasks.metrics import classification_metrics

CURVE = [
    CurvePoint(20, 0.50),
    CurvePoint(40, 0.70),
    CurvePoint(60, 0.78),
    CurvePoint(80, 0.781),
    CurvePoint(100, 0.782),
]


def test_no_rule_never_stops() -> None:
    assert stop_reason(CURVE, StoppingRules()) is None
    assert stop_reason([], StoppingRules(budget=1)) is None


def test_budget_and_target() -> None:
    assert stop_reason(CURVE, StoppingRules(budget=100)) == "label budget reached: 100 >= 100"
    assert stop_reason(CURVE, StoppingRules(budget=101)) is None
    assert "target accuracy reached: 0.7820" in stop_reason(CURVE, StoppingRules(target_accuracy=0.78))
    assert stop_reason(CURVE, StoppingRules(target_accuracy=0.79)) is None


def test_plateau() -> None:
    assert "plateau" in stop_reason(CURVE, StoppingRules(plateau_rounds=2, plateau_delta=0.005))
    assert stop_reason(CURVE, StoppingRules(plateau_rounds=3, plateau_delta=0.005)) is None
    assert stop_reason(CURVE[:2], StoppingRules(plateau_rounds=2)) is None


def test_stable_predictions() -> None:
    curve = [CurvePoint(10 * i, 0.5, a) for i, a in enumerate([None, 0.6, 0.995, 0.999, 1.0])]
    assert "stable" in stop_reason(curve, StoppingRules(stable_agreement=0.99, stable_rounds=3))
    assert stop_reason(curve, StoppingRules(stable_agreement=0.99, stable_rounds=4)) is None


def test_bad_rules() -> None:
    for kwargs in [{"budget": 0}, {"target_accuracy": 80}, {"plateau_rounds": 0}, {"stable_agreement": 2}]:
        with pytest.raises(InputError):
            StoppingRules(**kwargs)


def test_metrics_known_answer() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    m = classification_metrics([0, 1, 1, 1], probs, ["a", "b"])
    assert m["accuracy"] == 0.75 and m["confusion"] == [[1, 0], [1, 2]]
    assert m["per_class"]["a"] == {"precision": 0.5, "recall": 1.0, "f1": pytest.approx(2 / 3), "support": 1}
    with pytest.raises(InputError, match="shape"):
        classification_metrics([0, 1], probs, ["a", "b"])


def test_agreement() -> None:
    assert prediction_agreement(np.array([0, 1, 2]), np.array([0, 1, 2])) == 1.0
    assert prediction_agreement(np.array([0, 1, 0, 1]), np.array([1, 0, 1, 0])) == -1.0


def test_the_learning_curve_reads_the_tasks_headline_metric(tmp_path) -> None:
    from activelab.loop.project import init_project
    from activelab.loop.session import ActiveSession

    for task, expected in (("classification", 0.2), ("multilabel", 0.7)):
        with init_project(tmp_path / task, ["a", "b"], task=task) as project:
            number = project.store.start_round(strategy="random", model="m", config={}, n_labeled=10)
            metrics = {"eval": {"accuracy": 0.2, "micro_f1": 0.7}, "agreement": None}
            project.store.finish_round(number, metrics=metrics, selection=[])
            assert [p.accuracy for p in ActiveSession(project).curve()] == [expected]
