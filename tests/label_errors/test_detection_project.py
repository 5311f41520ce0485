"""`activelab errors` on a detection project: the report files, the review queue, the out-of-fold cache, a real run."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from activelab.label_errors import ranking_path, review_queue
from activelab.label_errors.report import label_error_report
from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project
from activelab.loop.settings import save_settings
from activelab.tasks import get_task

CLASSES = ["bag", "coat", "shirt"]
COLOURS = [(220, 40, 40), (40, 200, 40), (40, 60, 230)]
SIZE = 64
# (class position, x, y, w, h) of each scene's objects
SCENES = [
    [(0, 4, 4, 24, 24), (1, 36, 34, 22, 26)],
    [(1, 6, 36, 24, 22), (2, 36, 6, 22, 24)],
    [(2, 10, 10, 26, 26), (0, 40, 40, 20, 20)],
    [(0, 30, 4, 24, 24), (2, 4, 36, 24, 24)],
    [(1, 36, 10, 22, 24), (0, 8, 34, 24, 24)],
    [(2, 20, 20, 24, 24)],
    [(0, 20, 6, 26, 22)],
    [(1, 6, 6, 24, 26), (2, 38, 36, 22, 22)],
    [(2, 34, 4, 24, 24), (1, 4, 34, 26, 24)],
    [(0, 6, 20, 22, 24), (1, 36, 20, 22, 24)],
    [(1, 20, 30, 24, 26)],
    [(2, 4, 4, 22, 22), (0, 36, 36, 24, 24)],
]
# planted errors: scene 1 lost its shirt, scene 2's shirt is labeled coat, scene 3's bag sits 20 px right
PLANTED = {"scene01.png": "missing", "scene02.png": "wrong_class", "scene03.png": "badly_placed"}


def payload(objs: list[tuple[int, int, int, int, int]]) -> list[dict[str, object]]:
    return [{"class": CLASSES[k], "x": float(x), "y": float(y), "w": float(w), "h": float(h)} for k, x, y, w, h in objs]


def planted_payloads() -> list[list[dict[str, object]]]:
    given = [payload(objs) for objs in SCENES]
    given[1] = given[1][:1]
    given[2][0]["class"] = "coat"
    given[3][0]["x"], given[3][0]["w"] = 50.0, 14.0  # 20 px right, clipped at the image's right edge
    return given


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    """A detection project of the 12 scenes (64 x 64 px: coloured boxes on noise), labels imported with the errors."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "scenes"
    folder.mkdir()
    paths = []
    for i, objs in enumerate(SCENES):
        pixels = rng.integers(90, 140, (SIZE, SIZE, 3), dtype=np.uint8)
        for k, x, y, w, h in objs:
            pixels[y : y + h, x : x + w] = COLOURS[k]
        path = folder / f"scene{i:02d}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    proj = init_project(tmp_path / "proj", CLASSES, task="detection")
    proj.settings.model.image_size = SIZE
    proj.settings.train.epochs = 1
    proj.settings.train.batch_size = 4
    save_settings(proj.settings, proj.root / "activelab.yaml")
    boxes = [json.dumps(p) for p in planted_payloads()]
    import_images(
        proj.store, pd.DataFrame({"filepath": paths, "boxes": boxes}), task=get_task("detection"), author="importer"
    )
    yield proj
    proj.close()


class TruthDetector:
    """Finds exactly the scene's objects with confidence 0.99 (out-of-fold by construction: it never learns)."""

    def __init__(self) -> None:
        self.config = {"name": "truth"}

    def fit(self, paths, targets, *, keys=None, seed=0, progress=False):  # type: ignore[no-untyped-def]
        assert len(paths) == len(targets) == 8  # 12 images, 3 folds

    def predict_proba(self, paths, keys=None, progress=False):  # type: ignore[no-untyped-def]
        out = np.empty(len(paths), dtype=object)
        for i, path in enumerate(paths):
            objs = SCENES[int(Path(path).stem[-2:])]
            out[i] = {
                "boxes": np.array([[x, y, x + w, y + h] for _, x, y, w, h in objs], dtype=np.float32),
                "scores": np.full(len(objs), 0.99, dtype=np.float32),
                "labels": np.array([k for k, *_ in objs], dtype=np.int64),
            }
        return out


def test_report_files_and_review_queue_of_a_detection_project(project: Project) -> None:
    report = label_error_report(project, model_factory=lambda classes: TruthDetector())
    assert report.summary["folds"] == 3 and report.summary["task"] == "detection"
    assert report.summary["findings_by_issue"] == {"missing": 1, "wrong_class": 1, "badly_placed": 1}
    assert report.summary["n_issues"] == 3 and report.summary["n_labeled"] == 12
    assert set(report.files) == {"ranking", "findings", "findings_json", "swaps", "summary"}
    findings = pd.read_csv(report.files["findings"])
    assert dict(zip(findings["filepath"].map(lambda p: Path(p).name), findings["issue"])) == PLANTED
    assert json.loads(report.files["findings_json"].read_text())[0]["issue"] == findings["issue"].iloc[0]
    swapped = findings[findings["issue"] == "wrong_class"].iloc[0]
    assert (swapped["given_class"], swapped["suggested_class"]) == ("coat", "shirt")
    assert report.swaps.loc["coat", "shirt"] == 1 and int(report.swaps.to_numpy().sum()) == 1
    # the app's review queue: the flagged images, most likely wrong first, with the findings as their note
    ranking = pd.read_csv(ranking_path(project.root))
    names = ranking["filepath"].map(lambda p: Path(p).name)
    assert set(names[:3]) == set(PLANTED) and ranking["is_issue"].tolist() == [True] * 3 + [False] * 9
    task = get_task("detection")
    queue = review_queue(project.store, ranking_path(project.root), task=task)
    assert queue == ranking["image_id"].tolist()[:3]
    notes = dict(zip(names, ranking["note"]))
    assert notes["scene02.png"] == "change box 0 at x=10, y=10, w=26, h=26 from coat to shirt"
    # a reviewer accepts the suggested boxes of the first image: it leaves the queue
    first = ranking.iloc[0]
    project.store.add_annotations(
        [(int(first.image_id), task.parse(first.suggested_label))], author="rev", source="review"
    )
    assert review_queue(project.store, ranking_path(project.root), task=task) == queue[1:]
    # unchanged labels reuse the cached out-of-fold detections
    again = label_error_report(project, model_factory=lambda classes: TruthDetector())
    assert not report.summary["oof_from_cache"] and not again.summary["oof_from_cache"]  # a label changed
    third = label_error_report(project, model_factory=lambda classes: TruthDetector())
    assert third.summary["oof_from_cache"] and third.findings["issue"].tolist() == again.findings["issue"].tolist()


def test_errors_command_trains_detectors_and_writes_the_report(project: Project) -> None:
    """A real run: 2 folds of the default detector, a few steps each (the project sets a low step floor)."""
    import typer

    from activelab.cli.errors import register

    project.settings.model.options = {"min_steps": 6}
    save_settings(project.settings, project.root / "activelab.yaml")
    app = typer.Typer()
    register(app)

    @app.command()
    def other_command() -> None:  # a second command, so `errors` is a sub-command as in the real CLI
        """Unused."""

    result = CliRunner().invoke(app, ["errors", str(project.root), "--folds", "2", "--top", "5"])
    assert result.exit_code == 0, result.output
    assert "12 labeled images ranked" in result.output and "suspicious boxes" in result.output
    out = project.root / "reports" / "errors"
    ranking = pd.read_csv(out / "ranking.csv")
    assert len(ranking) == 12 and ranking["score"].is_monotonic_increasing
    assert ranking["score"].between(0, 1).all()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["folds"] == 2 and summary["model"]["name"] == project.settings.model.name
    assert list(pd.read_csv(out / "findings.csv").columns)[:4] == ["rank", "image_id", "filepath", "issue"]
    as_json = json.loads(CliRunner().invoke(app, ["errors", str(project.root), "--folds", "2", "--json"]).output)
    assert as_json["summary"]["oof_from_cache"] and as_json["summary"]["n_labeled"] == 12


def test_class_ranking_entry_points_send_a_detection_project_to_the_box_report(project: Project) -> None:
    from activelab.exceptions import InputError
    from activelab.label_errors import find_label_issues

    with pytest.raises(InputError, match=r"its labels are boxes, ranked by label_error_report\(project\)"):
        find_label_issues(project, folds=3)
