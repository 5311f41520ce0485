"""CLI behaviour: clear one-line errors with exit status 2, the demo, status output."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from activelab.cli.main import app

runner = CliRunner()


def invoke(*args: str):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_demo_creates_labeled_seed_and_eval(tmp_path: Path) -> None:
    result = invoke("demo", tmp_path / "demo", "--no-serve")
    assert result.exit_code == 0, result.output
    status = json.loads(invoke("status", tmp_path / "demo", "--json").output)
    assert status["images"] == {"pool": 500, "eval": 200}
    assert status["labeled"] == {"pool": 20, "eval": 200}
    assert all(c["pool"] == 2 for c in status["per_class"].values())
    again = invoke("demo", tmp_path / "demo", "--no-serve")
    assert again.exit_code == 0 and "created demo" not in again.output


def test_errors_are_one_line_with_exit_2(tmp_path: Path) -> None:
    result = invoke("status", tmp_path / "nothing")
    assert result.exit_code == 2
    assert "error:" in result.output and "activelab init" in result.output
    assert "Traceback" not in result.output
    invoke("init", tmp_path / "p", "--classes", "a,b")
    (tmp_path / "t.csv").write_text("path,label\nx.png,a\n")
    result = invoke("import", tmp_path / "p", tmp_path / "t.csv")
    assert result.exit_code == 2 and "no column 'filepath'" in result.output and "--path-col" in result.output
    result = invoke("export", tmp_path / "p", tmp_path / "o", "--format", "pascal")
    assert result.exit_code == 2 and "--format must be one of" in result.output
    result = invoke("export", tmp_path / "p", tmp_path / "o", "--format", "coco")
    assert result.exit_code == 2 and "coco files hold boxes" in result.output and "--task detection" in result.output


def test_import_reports_rejections(tmp_path: Path, broken_files: dict[str, Path]) -> None:
    invoke("init", tmp_path / "p")
    folder = next(iter(broken_files.values())).parent
    result = invoke("import", tmp_path / "p", folder, "--report", tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    assert "0 added" in result.output and "4 rejected" in result.output
    assert (tmp_path / "r.csv").read_text().count("rejected") == 4


def test_train_compares_before_and_after_review(tmp_path: Path) -> None:
    project = tmp_path / "demo"
    assert invoke("demo", project, "--no-serve").exit_code == 0
    result = invoke("train", project)
    assert result.exit_code == 0, result.output
    assert "trained on 20 labels" in result.output and "after review" not in result.output
    from activelab.loop.project import open_project

    with open_project(project) as proj:
        first = sorted(proj.store.current_labels("pool"))[0]
        proj.store.add_label(first, None, author="rev", source="review", note="unsure")
    result = invoke("train", project)
    assert result.exit_code == 0, result.output
    assert "after review" in result.output and "0 labels changed, 1 removed from training" in result.output


def test_import_max_file_mb_rejects_large_files(tmp_path: Path, sample: Path) -> None:
    invoke("init", tmp_path / "p")
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.png").write_bytes(sorted((sample / "pool").glob("*.png"))[0].read_bytes())
    with (folder / "big.jpg").open("wb") as fh:
        fh.truncate(1_500_000)
    result = invoke("import", tmp_path / "p", folder, "--max-file-mb", "1", "--report", tmp_path / "r.csv")
    assert result.exit_code == 0, result.output
    report = (tmp_path / "r.csv").read_text()
    assert report.count("too_large") == 1 and "big.jpg" in report and report.count(",added,") == 1
