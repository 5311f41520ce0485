"""Rounds of a detection project: box annotations from the store become object-array targets, the round's hints
are box payloads, and a box budget set in the project's settings holds.

The detector is a fake with fixed predictions per image file (the real one's training is
covered by the models and simulate tests), so every selection is known exactly.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project
from activelab.loop.session import ActiveSession
from activelab.loop.trainer import BackgroundTrainer
from activelab.models import FitReport, create_model
from activelab.tasks import get_task

CLASSES = ["bag", "shoe"]
BAG = {"class": "bag", "x": 2.0, "y": 2.0, "w": 10.0, "h": 10.0}
SHOE = {"class": "shoe", "x": 16.0, "y": 16.0, "w": 12.0, "h": 8.0}


def _prediction(probs: list[list[float]], scores: list[float]) -> dict[str, np.ndarray]:
    p = np.asarray(probs, dtype=np.float32).reshape(-1, 2)
    boxes = [[2 + 8 * i, 2, 10 + 8 * i, 12] for i in range(len(scores))]
    return {
        "boxes": np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
        "scores": np.asarray(scores, dtype=np.float32),
        "labels": p.argmax(axis=1).astype(np.int64),
        "probs": p,
        "features": np.ones((len(scores), 2), dtype=np.float32),
    }


#: per pool file: labeled p0 (a bag) and p1 (a shoe); p2 holds three boxes the model cannot tell apart (cost 3),
#: p3 one box leaning bag, p4 a sure bag, p5 nothing found. Entropy (mean over boxes) ranks p2, p3, p4, p5.
PREDICTIONS = {
    "p0": _prediction([[0.9, 0.1]], [0.9]),
    "p1": _prediction([[0.1, 0.9]], [0.9]),
    "p2": _prediction([[0.5, 0.5]] * 3, [0.8, 0.8, 0.8]),
    "p3": _prediction([[0.6, 0.4]], [0.7]),
    "p4": _prediction([[0.95, 0.05]], [0.6]),
    "p5": _prediction([], []),
    "e0": _prediction([[0.9, 0.1]], [0.9]),
    "e1": _prediction([[0.2, 0.8]], [0.7]),
}


class FakeDetector:
    """Fixed predictions per file stem; records the targets it was fitted on."""

    name = "fake_detector"
    config: dict[str, Any] = {"name": "fake_detector", "options": {}}
    output = "boxes"
    supports = frozenset({"probs", "embeddings", "views"})

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = list(classes)
        self.fitted_on: list[np.ndarray] = []

    def fit(self, paths: Sequence[str], targets: np.ndarray, **_: Any) -> FitReport:
        self.fitted_on.append(targets)
        return FitReport(len(paths), 0, 1, 1, 0.0, None, None, 0.0, "cpu")

    def predict_proba(self, paths: Sequence[str], **_: Any) -> np.ndarray:
        out = np.empty(len(paths), dtype=object)
        out[:] = [PREDICTIONS[Path(p).stem] for p in paths]
        return out

    def embed(self, paths: Sequence[str], **_: Any) -> np.ndarray:
        return np.array([[float(int(Path(p).stem[1:])), 0.0] for p in paths], dtype=np.float32)

    def save(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    images = tmp_path / "images"
    images.mkdir()
    for i, name in enumerate(PREDICTIONS):
        Image.fromarray(np.full((32, 32, 3), 20 * i, dtype=np.uint8)).save(images / f"{name}.png")
    proj = init_project(tmp_path / "proj", CLASSES, task="detection")
    task = get_task("detection")

    def table(names: list[str], boxes: list[list[dict[str, Any]]] | None) -> pd.DataFrame:
        cells = None if boxes is None else [json.dumps(b) for b in boxes]
        return pd.DataFrame({"image": [str(images / f"{n}.png") for n in names], "boxes": cells})

    pool = [f"p{i}" for i in range(6)]
    import_images(proj.store, table(pool, None), path_col="image", label_col=None, task=task)
    import_images(proj.store, table(["p0", "p1"], [[BAG], [SHOE]]), path_col="image", label_col="boxes", task=task)
    evals = table(["e0", "e1"], [[BAG], [SHOE]])
    import_images(proj.store, evals, split="eval", path_col="image", label_col="boxes", task=task)
    yield proj
    proj.close()


def _session(project: Project) -> tuple[ActiveSession, list[FakeDetector]]:
    built: list[FakeDetector] = []

    def factory(classes: list[str]) -> Any:
        built.append(FakeDetector(classes))
        return built[-1]

    return ActiveSession(project, model_factory=factory), built


def _stems(project: Project, image_ids: list[int]) -> list[str]:
    paths = {img.id: img.path for img in project.store.image_refs()}
    return [Path(paths[i]).stem for i in image_ids]


def test_a_detection_project_defaults_to_the_task_detector(project: Project) -> None:
    assert project.settings.model.name == get_task("detection").default_model
    assert project.settings.model.mode == "finetune"
    assert project.settings.active_learner.strategy == "det_entropy"  # margin reads class probabilities
    # the detector's own recipe (8 images a batch), not the classifiers' 64: the task chose the model
    detector_options = create_model("fcos_small", classes=CLASSES, output="boxes").config["options"]
    train = project.settings.train
    assert (train.epochs, train.lr, train.batch_size) == tuple(
        detector_options[k] for k in ("epochs", "lr", "batch_size")
    )
    assert train.batch_size == 8


def test_a_round_trains_on_box_targets_and_records_box_hints(project: Project) -> None:
    session, built = _session(project)
    result = session.run_round("det_entropy", 3)
    assert _stems(project, result.selected) == ["p2", "p3", "p4"]
    (targets,) = built[-1].fitted_on
    assert targets.dtype == object and [t["labels"].tolist() for t in targets] == [[0], [1]]
    np.testing.assert_allclose(targets[0]["boxes"], [[2, 2, 12, 12]])
    ev = result.metrics["eval"]
    # e0's bag is found with IoU 0.8 (AP 1 at 7 of the 10 IoU thresholds), e1's shoe is missed: (0.7 + 0) / 2
    assert ev["n"] == 2 and ev["map"] == pytest.approx(0.35) and "agreement" not in result.metrics
    assert ev["eval_predictions"] == {}  # no kappa between rounds' boxes: nothing to keep for it
    hints = project.store.latest_predictions(result.selected)
    payload, confidence, _ = hints[result.selected[0]]
    assert [box["class"] for box in payload] == ["bag", "bag", "bag"] and confidence == pytest.approx(0.8)
    second = session.run_round("det_entropy", 3)  # a second round has no class decisions to compare
    assert "agreement" not in second.metrics and [p.n_labeled for p in session.curve()] == [2, 2]


def test_a_box_budget_from_the_settings_skips_a_crowded_image(project: Project) -> None:
    project.settings.active_learner.budget_unit = "boxes"
    session, _ = _session(project)
    result = session.run_round("det_entropy", 2)
    assert _stems(project, result.selected) == ["p3"]  # p2 ranks first but costs 3 boxes
    assert project.store.rounds()[-1].config["budget_unit"] == "boxes"


def test_one_distinct_annotation_trains_nothing(tmp_path: Path) -> None:
    image = tmp_path / "p0.png"
    Image.fromarray(np.zeros((32, 32, 3), dtype=np.uint8)).save(image)
    with init_project(tmp_path / "proj", CLASSES, task="detection") as proj:
        cell = pd.DataFrame({"image": [str(image)], "boxes": [json.dumps([BAG])]})
        import_images(proj.store, cell, path_col="image", label_col="boxes", task=get_task("detection"))
        session, _ = _session(proj)
        with pytest.raises(InputError, match=r"all 1 labeled pool images are labeled '\[\{\"class\":\"bag\""):
            session.train()


class Saved:
    """A stand-in for a model read back from ``models/latest``: what the warm start compares."""

    def __init__(self, mode: str, config: dict[str, Any]) -> None:
        self.mode, self.config = mode, config


def test_a_fine_tuned_model_warm_starts_from_the_last_rounds_when_it_is_the_same_network(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    import activelab.loop.session as session_module

    session = ActiveSession(project)
    fresh: Any = Saved("finetune", {"name": "fcos_small", "classes": CLASSES})
    assert session._warm_start(fresh) is fresh  # no saved model yet
    (session.models_dir / "latest").mkdir(parents=True)
    same: Any = Saved("finetune", {"name": "fcos_small", "classes": CLASSES})
    monkeypatch.setattr(session_module, "load_model", lambda path, device=None: same)
    assert session._warm_start(fresh) is same
    other: Any = Saved("finetune", {"name": "fcos_small", "classes": [*CLASSES, "hat"]})  # a class added since
    monkeypatch.setattr(session_module, "load_model", lambda path, device=None: other)
    assert session._warm_start(fresh) is fresh
    frozen: Any = Saved("frozen", {"name": "fcos_small", "classes": CLASSES})
    monkeypatch.setattr(session_module, "load_model", lambda path, device=None: frozen)
    assert session._warm_start(Saved("frozen", frozen.config)) is not frozen  # frozen heads refit from fresh


def test_the_background_trainer_reports_a_detection_rounds_map(project: Project) -> None:
    trainer = BackgroundTrainer(project, retrain_every=1, session_factory=lambda p: _session(p)[0])
    state = trainer.run_once()
    assert state["last_error"] is None and state["last_metrics"]["map"] == pytest.approx(0.35)
    assert state["last_metrics"]["accuracy"] is None and state["last_metrics"]["strategy"] == "det_entropy"
