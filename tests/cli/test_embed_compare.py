"""``activelab embed PROJECT --compare``: the real command on a tiny project of raw-pixel candidates."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.loop.settings import SETTINGS_FILE, load_settings, save_settings
from tests.loop.test_representation import checkerboards

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def tiny_project(tmp_path: Path, n_per_class: int) -> Path:
    """Checkerboard images (class = phase), labeled in the pool; 4 labeled eval images; the model: pixels."""
    paths, y = checkerboards(tmp_path / "img", n_per_class + 2)
    table = pd.DataFrame({"filepath": paths, "label": [("even", "odd")[i] for i in y]})
    project = tmp_path / "p"
    assert invoke("init", project, "--classes", "even,odd").exit_code == 0
    table.iloc[4:].to_csv(tmp_path / "pool.csv", index=False)
    table.iloc[:4].to_csv(tmp_path / "eval.csv", index=False)
    assert invoke("import", project, tmp_path / "pool.csv").exit_code == 0
    assert invoke("import", project, tmp_path / "eval.csv", "--split", "eval").exit_code == 0
    settings = load_settings(project / SETTINGS_FILE)
    settings.model.name = "pixels"
    save_settings(settings, project / SETTINGS_FILE)
    return project


def test_compare_prints_the_candidates_and_the_choice(tmp_path: Path) -> None:
    project = tiny_project(tmp_path, 5)
    result = invoke("embed", project, "--compare", "--candidate", "pixels@8")
    assert result.exit_code == 0, result.output
    assert "representations on 10 labeled pool images (* chosen)" in result.output
    assert "pixels@64 *" in result.output and "pixels@16" in result.output and "pixels@8" in result.output
    assert "chosen: pixels@64 (highest leave-one-out 3-NN accuracy on 10 labeled images: 1.000" in result.output
    data = json.loads(invoke("embed", project, "--compare", "--candidate", "pixels@8", "--json").output)
    assert [c["label"] for c in data["comparisons"]] == ["pixels@64", "pixels@16", "pixels@8"]
    assert data["label"] == "pixels@64" and data["n_labels"] == 10 and data["criterion"] == "knn_loo"
    scores = [c["score"] for c in data["comparisons"]]
    assert scores[:2] == [1.0, 1.0] and scores[2] < 0.8  # at 8 px the checkerboard is gone
    assert [c["dim"] for c in data["comparisons"]] == [64 * 64, 16 * 16, 8 * 8]


def test_compare_refuses_fewer_than_two_labels_per_class(tmp_path: Path) -> None:
    project = tiny_project(tmp_path, 1)  # 2 pool images: one per class
    result = invoke("embed", project, "--compare")
    assert result.exit_code == 2
    assert "needs at least 2 labeled pool images of every class; even, odd has fewer" in result.output
    result = invoke("embed", project, "--candidate", "pixels@8")
    assert result.exit_code == 2 and "--candidate is an option of --compare" in result.output
