"""Readable, consistent output: JSON on request, progress only in a terminal, the export format from the name."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from activelab.cli.errors import format_score
from activelab.cli.exporting import export_format
from activelab.cli.main import app
from activelab.exceptions import InputError

runner = CliRunner()


def invoke(*args: object, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args], env=env)


@pytest.fixture
def project(tmp_path: Path, sample: Path) -> Path:
    """A project holding the bundled sample's 500 labeled pool images."""
    root = tmp_path / "p"
    assert invoke("init", root, "--classes", "bag,coat").exit_code == 0
    assert invoke("import", root, sample / "pool.csv", "--add-classes").exit_code == 0
    return root


def test_json_output_of_the_project_commands(tmp_path: Path, project: Path, sample: Path) -> None:
    created = json.loads(invoke("init", tmp_path / "q", "--classes", "a,b", "--json").output)
    assert created["classes"] == ["a", "b"] and created["store"].startswith("sqlite:///")
    imported = json.loads(invoke("import", project, sample / "eval.csv", "--split", "eval", "--json").output)
    assert imported["seen"] == imported["added"] == imported["labels_recorded"] == 200
    status = json.loads(invoke("status", project, "--json").output)
    assert status["images"] == {"pool": 500, "eval": 200}
    assert json.loads(invoke("classes", "list", project, "--json").output)[:2] == ["bag", "coat"]
    assert json.loads(invoke("classes", "add", project, "hat,bag", "--json").output) == {"added": ["hat"]}
    exported = json.loads(invoke("export", project, tmp_path / "l.csv", "--json").output)
    assert exported == {"path": str(tmp_path / "l.csv"), "format": "csv"}
    assert "fashion-mnist-sample" in [d["name"] for d in json.loads(invoke("datasets", "list", "--json").output)]
    strategies = {s["name"]: s for s in json.loads(invoke("strategies", "--json").output)}
    assert strategies["margin"]["requires"] == ["probs"]


def test_progress_shows_in_a_terminal_and_not_with_quiet(tmp_path: Path, sample: Path) -> None:
    terminal = {"TTY_COMPATIBLE": "1", "COLUMNS": "120"}
    invoke("init", tmp_path / "a")
    shown = invoke("import", tmp_path / "a", sample / "pool", env=terminal)
    assert shown.exit_code == 0 and "importing" in shown.output and "500/500" in shown.output
    invoke("init", tmp_path / "b")
    quiet = invoke("--quiet", "import", tmp_path / "b", sample / "pool", env=terminal)
    assert quiet.exit_code == 0 and "importing" not in quiet.output
    assert quiet.output.splitlines()[0] == "500 files seen, 500 added, 0 labels recorded, 0 duplicates, 0 rejected"


def test_no_progress_when_output_is_not_a_terminal(tmp_path: Path, sample: Path) -> None:
    invoke("init", tmp_path / "a")
    result = invoke("import", tmp_path / "a", sample / "pool", env={"TTY_COMPATIBLE": "0"})
    assert result.exit_code == 0 and "importing" not in result.output and "\x1b" not in result.output


def test_export_takes_the_format_from_the_extension(tmp_path: Path, project: Path) -> None:
    assert invoke("export", project, tmp_path / "labels.parquet").exit_code == 0
    assert len(pd.read_parquet(tmp_path / "labels.parquet")) == 500
    refused = invoke("export", project, tmp_path / "x.parquet", "--format", "csv")
    assert refused.exit_code == 2 and "--format csv contradicts the extension of 'x.parquet'" in refused.output
    assert not (tmp_path / "x.parquet").exists()


def test_export_format_rules() -> None:
    assert export_format(Path("a.CSV"), None) == "csv"
    assert export_format(Path("a.pq"), "parquet") == "parquet"
    assert export_format(Path("tree"), None) == "imagefolder"
    assert export_format(Path("out.json"), "label-studio") == "label-studio"
    with pytest.raises(InputError, match="cannot tell the export format from 'out.json'"):
        export_format(Path("out.json"), None)


def test_scores_near_zero_keep_their_digits() -> None:
    assert [format_score(s) for s in (0.5, 0.0123, 0.000123, 0.0)] == ["0.5", "0.0123", "1.23e-04", "0"]
