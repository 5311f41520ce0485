"""The CLI on a multi-label project: init --task, import (separator, class columns, class folders), export."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import yaml
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.loop.project import open_project

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def _payloads(project: Path) -> dict[str, object]:
    with open_project(project) as proj:
        names = {img.id: Path(img.path).name for img in proj.store.images()}
        return {names[i]: c.payload for i, c in proj.store.current_annotations().items()}


def test_init_task_is_written_and_checked(tmp_path: Path) -> None:
    result = invoke("init", tmp_path / "p", "--classes", "bag,shirt", "--task", "multilabel", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["task"] == "multilabel"
    assert yaml.safe_load((tmp_path / "p" / "activelab.yaml").read_text())["task"] == "multilabel"
    result = invoke("init", tmp_path / "q", "--task", "multilabels")
    assert result.exit_code == 2 and "unknown task 'multilabels' (did you mean 'multilabel'?)" in result.output
    assert not (tmp_path / "q").exists()
    assert "created classification project" in invoke("init", tmp_path / "r").output


def test_import_and_export_a_multilabel_project(tmp_path: Path, sample: Path) -> None:
    project = tmp_path / "p"
    invoke("init", project, "--classes", "bag,dress,shirt", "--task", "multilabel")
    pngs = sorted((sample / "pool").glob("*.png"))[:5]
    table = pd.DataFrame({"filepath": [str(p) for p in pngs[:3]], "label": ["shirt;bag", "dress", "hat"]})
    table.to_csv(tmp_path / "sets.csv", index=False)
    result = invoke("import", project, tmp_path / "sets.csv", "--label-sep", ";", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert (counts["added"], counts["labels_recorded"], counts["rejected"]) == (2, 2, {"unknown_class": 1})

    flags = pd.DataFrame({"filepath": [str(pngs[3])], "bag": ["no"], "dress": ["no"], "shirt": ["no"]})
    flags.to_csv(tmp_path / "flags.csv", index=False)
    result = invoke("import", project, tmp_path / "flags.csv", "--class-columns", "*")
    assert result.exit_code == 0 and "1 labels recorded" in result.output, result.output

    tree = tmp_path / "tree"
    for cls in ("bag", "dress"):
        (tree / cls).mkdir(parents=True)
        shutil.copy(pngs[4], tree / cls / pngs[4].name)
    result = invoke("import", project, tree, "--format", "imagefolder", "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.output)
    assert (counts["added"], counts["labels_recorded"], counts["merged"]) == (1, 1, 1)
    assert _payloads(project) == {
        pngs[0].name: ["bag", "shirt"],
        pngs[1].name: ["dress"],
        pngs[3].name: [],
        pngs[4].name: ["bag", "dress"],
    }

    result = invoke("export", project, tmp_path / "out.csv", "--json")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(tmp_path / "out.csv", keep_default_na=False)
    assert frame.label.tolist() == ["bag|shirt", "dress", "", "bag|dress"]
    assert frame[["bag", "dress", "shirt"]].values.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0], [1, 1, 0]]
    result = invoke("export", project, tmp_path / "hf", "--format", "hf-imagefolder")
    assert result.exit_code == 2 and "one class per image" in result.output
    result = invoke("export", project, tmp_path / "ls.json", "--format", "labelstudio")
    assert result.exit_code == 0, result.output
    assert 'choice="multiple"' in (tmp_path / "ls_label_config.xml").read_text()
