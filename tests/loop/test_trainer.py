"""The background trainer's rules on a real store, with a session that records rounds instead of training."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from activelab.loop.trainer import STATE_KEY, BackgroundTrainer
from activelab.store import ImageRecord, Store, open_store, sqlite_url


@dataclass
class _Result:
    number: int
    strategy: str = "margin"
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.5
    selected: list[int] = field(default_factory=list)


class _RecordingSession:
    """Records a finished round in the store the way ActiveSession.run_round does, or fails when asked."""

    def __init__(self, project: Any, fail: bool = False) -> None:
        self.store: Store = project.store
        self.fail = fail

    def run_round(self) -> _Result:
        if self.fail:
            raise RuntimeError("no model today")
        n = len(self.store.current_labels("pool"))
        number = self.store.start_round(strategy="margin", model="m", config={}, n_labeled=n)
        self.store.finish_round(number, metrics={}, selection=[(8, 0.1)])
        metrics = {
            "n_labeled": n,
            "eval": {"accuracy": 0.75, "macro_f1": 0.5, "n": 4},
            "semi_supervised": "label_spreading",
            "n_unlabeled": 6,
            "representation": {"label": "pixels@28", "n_labels": n, "chosen_now": True},
        }
        return _Result(number, metrics=metrics, selected=[8])

    def recover(self) -> list[int]:
        return []


@pytest.fixture
def project(tmp_path: Path) -> Iterator[SimpleNamespace]:
    store = open_store(sqlite_url(tmp_path / "trainer.db"))
    store.add_classes(["cat", "dog"])
    store.add_images(
        [ImageRecord(sha256=f"{n:064x}", path=f"/{n}.png", width=4, height=4, n_bytes=n) for n in range(1, 9)],
        author="import",
    )
    yield SimpleNamespace(store=store)
    store.close()


def _trainer(project: SimpleNamespace, *, fail: bool = False) -> BackgroundTrainer:
    return BackgroundTrainer(
        project,  # type: ignore[arg-type]
        retrain_every=3,
        session_factory=lambda p: _RecordingSession(p, fail),  # type: ignore[arg-type,return-value]
    )


def test_first_round_after_two_labels_then_every_n(project: SimpleNamespace) -> None:
    trainer = _trainer(project)
    project.store.add_labels([(1, "cat")], author="ann")
    assert not trainer.due()
    project.store.add_labels([(2, "dog")], author="ann")
    assert trainer.due()
    state = trainer.run_once()
    assert (state["state"], state["last_round"], state["last_error"]) == ("idle", 1, None)
    assert state["last_metrics"] == {
        "round": 1,
        "strategy": "margin",
        "n_labeled": 2,
        "accuracy": 0.75,
        "macro_f1": 0.5,
        "n_eval": 4,
        "agreement": None,
        "seconds": 0.5,
        "selected": 1,
        "semi_supervised": "label_spreading",  # what the app's trainer line says the model learned from
        "n_unlabeled": 6,
        "representation": "pixels@28",
    }
    assert trainer.labels_since_last_round() == (2, 2)
    project.store.add_labels([(3, "cat"), (4, "dog")], author="ann")
    assert not trainer.due()
    project.store.add_labels([(5, "cat")], author="ann")
    assert trainer.due()


def test_a_failed_round_waits_for_more_labels(project: SimpleNamespace) -> None:
    trainer = _trainer(project, fail=True)
    project.store.add_labels([(1, "cat"), (2, "dog")], author="ann")
    state = trainer.run_once()
    assert state["last_error"] == "RuntimeError: no model today" and state["error_at_labels"] == 2
    assert not trainer.due()
    project.store.add_labels([(3, "cat")], author="ann")
    assert trainer.due()


def test_pause_request_and_restart_recovery(project: SimpleNamespace) -> None:
    trainer = _trainer(project)
    project.store.add_labels([(1, "cat"), (2, "dog")], author="ann")
    trainer.pause()
    assert not trainer.due()
    trainer.resume()
    trainer.run_once()
    assert not trainer.due()
    assert trainer.request_round()["requested"] is True
    assert trainer.due()
    # a process died while training round 2: a restarted trainer reports it
    project.store.set_service_state(
        STATE_KEY, {**project.store.service_state(STATE_KEY), "state": "training", "round": 2}
    )
    again = _trainer(project)
    again.recover()
    status = again.status()
    assert (status["state"], status["round"], status["running"]) == ("idle", None, False)
    assert status["last_error"] == "round 2 was interrupted by a restart"


def test_the_thread_runs_a_due_round_and_stops(project: SimpleNamespace) -> None:
    trainer = BackgroundTrainer(
        project,  # type: ignore[arg-type]
        retrain_every=3,
        poll_seconds=0.05,
        session_factory=lambda p: _RecordingSession(p),  # type: ignore[arg-type,return-value]
    )
    trainer.start()
    try:
        project.store.add_labels([(1, "cat"), (2, "dog")], author="ann")
        trainer.notify()
        for _ in range(200):
            if trainer.status()["last_round"] == 1:
                break
            time.sleep(0.05)
        assert trainer.status()["last_round"] == 1 and trainer.status()["running"] is True
    finally:
        trainer.stop(timeout=10)
    assert trainer.status()["running"] is False


def test_sets_of_classes_count_as_labels(project: SimpleNamespace) -> None:
    trainer = _trainer(project)
    project.store.add_annotations([(1, ["cat", "dog"]), (2, [])], author="ann", source="human")
    assert trainer.labels_since_last_round() == (2, None)
    assert trainer.due()
