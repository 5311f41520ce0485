"""A segmentation project from the command line: init (background first), import of masks, a region round
counted in pixels, and what ``status`` says (labeled pixels, mIoU)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.data.scenes import SEGMENTATION_TABLES, write_scenes
from activelab.tasks.masks import MaskFolder
from activelab.tasks.regions import region_map

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_init_puts_the_background_first(tmp_path: Path) -> None:
    made = invoke("init", tmp_path / "p", "--task", "segmentation", "--classes", "shirt,bag", "--json")
    assert made.exit_code == 0, made.output
    assert json.loads(made.output)["classes"] == ["background", "shirt", "bag"]
    refused = invoke("init", tmp_path / "q", "--task", "segmentation", "--classes", "shirt,background")
    assert refused.exit_code == 2 and "list it first (--classes background,...)" in refused.output
    assert not (tmp_path / "q").exists()


def test_a_region_round_in_pixels_and_the_status_lines(tmp_path: Path) -> None:
    data = write_scenes(tmp_path / "data", n_pool=8, n_eval=4, size=64)
    pd.read_csv(data / SEGMENTATION_TABLES["seed"]).head(3).to_csv(data / "seed3.csv", index=False)
    project = tmp_path / "p"
    classes = data / SEGMENTATION_TABLES["classes"]
    assert invoke("init", project, "--task", "segmentation", "--classes-file", classes).exit_code == 0
    for table, split in (("pool.csv", "pool"), ("seed3.csv", "pool"), (SEGMENTATION_TABLES["eval"], "eval")):
        imported = invoke("import", project, data / table, "--path-col", "image", "--split", split)
        assert imported.exit_code == 0 and "0 rejected" in imported.output, imported.output
    config = tmp_path / "tiny.yaml"
    config.write_text("model:\n  options: {min_steps: 2}\ntrain:\n  epochs: 1\n")
    result = invoke(
        "query", project, "--strategy", "region_entropy", "-k", 600, "--budget-unit", "pixels", "--config", config
    )
    assert result.exit_code == 0, result.output
    assert re.search(r"round 1 \(region_entropy\): trained on 3 labels: mIoU 0\.\d{4}, pixel accuracy", result.output)
    selection = pd.read_csv(project / "rounds" / "round-0001-selection.csv")
    asked = int(re.search(r"asks for ([\d,]+) pixels", result.output).group(1).replace(",", ""))
    assert 0 < asked <= 600 and selection["asked_pixels"].sum() == asked
    masks = MaskFolder(project / "masks")
    for row in selection.itertuples():
        mask = masks.get(row.asked_mask)
        regions = region_map(row.filepath, "slic", 16)
        assert np.array_equal(np.isin(regions, np.unique(regions[mask == 1])), mask == 1)  # whole superpixels

    status = invoke("status", project)
    assert status.exit_code == 0, status.output
    assert "labeled pixels (pool): 12,288 of 12,288 in the labeled images (0 labeled in part)" in status.output
    assert re.search(
        r"latest round 1 \(trained on 3 labeled images\): mIoU 0\.\d{4}, pixel accuracy 0\.\d{4} on 4 eval",
        status.output,
    )
    assert "classes: background, t-shirt" in status.output and "labels per class" not in status.output
    summary = json.loads(invoke("status", project, "--json").output)
    assert summary["latest_round"]["metric"] == "miou" and summary["labeled_pixels"]["images"] == 3
