"""The CLI reaches the other tools' formats: import/export --format labelstudio|hf|fiftyone, ls-backend."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from activelab.cli.main import app

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_labelstudio_in_then_hf_and_fiftyone_out_and_back(tmp_path: Path, sample: Path) -> None:
    names = [("00223.png", "dress"), ("00235.png", "shirt")]
    tasks = [
        {
            "data": {"image": f"/data/local-files/?d=pool/{name}"},
            "annotations": [
                {
                    "completed_by": 5,
                    "updated_at": "2024-01-02T03:04:05Z",
                    "result": [{"type": "choices", "value": {"choices": [label]}}],
                }
            ],
        }
        for name, label in names
    ]
    (tmp_path / "ls.json").write_text(json.dumps(tasks))
    assert invoke("init", tmp_path / "p").exit_code == 0

    result = invoke(
        "import",
        tmp_path / "p",
        tmp_path / "ls.json",
        "--format",
        "labelstudio",
        "--images-root",
        sample,
        "--add-classes",
        "--json",
    )
    assert result.exit_code == 0, result.output
    (summary,) = json.loads(result.output)
    assert (summary["added"], summary["labels_recorded"], summary["new_classes"]) == (2, 2, ["dress", "shirt"])

    for fmt in ("hf-imagefolder", "fiftyone", "labelstudio"):
        out = tmp_path / (f"{fmt}.json" if fmt == "labelstudio" else fmt)
        result = invoke("export", tmp_path / "p", out, "--format", fmt)
        assert result.exit_code == 0 and f"exported {fmt}" in result.output, result.output
    assert (tmp_path / "hf-imagefolder" / "train" / "metadata.csv").is_file()
    assert len(json.loads((tmp_path / "labelstudio.json").read_text())) == 2

    for fmt, src in (("fiftyone", tmp_path / "fiftyone"), ("hf", tmp_path / "hf-imagefolder")):
        assert invoke("init", tmp_path / fmt, "--classes", "dress,shirt").exit_code == 0
        result = invoke("import", tmp_path / fmt, src, "--format", fmt, "--json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.output)[0]["labels_recorded"] == 2
        status = json.loads(invoke("status", tmp_path / fmt, "--json").output)
        assert status["labeled"]["pool"] == 2


def test_ls_backend_is_a_command() -> None:
    result = invoke("ls-backend", "--help")
    assert result.exit_code == 0 and "--images-root" in result.output and "--port" in result.output
