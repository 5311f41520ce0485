"""The CLI moves a detection project's boxes: a boxes table in, COCO/YOLO/VOC out, and back into a new project."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.loop.project import open_project

runner = CliRunner()
BOXES = {
    "a.png": [{"class": "bag", "x": 2.0, "y": 3.0, "w": 10.0, "h": 8.5}],
    "b.png": [
        {"class": "shoe", "x": 16.0, "y": 16.0, "w": 15.0, "h": 15.0},
        {"class": "bag", "x": 0, "y": 0, "w": 4, "h": 4},
    ],
    "c.png": [],
}


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def _boxes(project: Path) -> dict[str, list[dict[str, object]]]:
    """Current boxes by image content hash."""
    with open_project(project) as proj:
        images = {img.id: img.sha256 for img in proj.store.images()}
        return {images[i]: cur.payload for i, cur in proj.store.current_annotations().items()}


def test_detection_boxes_go_through_every_box_format_and_back(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "images").mkdir()
    for name in BOXES:
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
    pd.DataFrame({"image": [f"images/{n}" for n in BOXES], "boxes": [json.dumps(b) for b in BOXES.values()]}).to_csv(
        tmp_path / "pool.csv", index=False
    )
    assert invoke("init", tmp_path / "p", "--task", "detection", "--classes", "bag,shoe").exit_code == 0
    result = invoke("import", tmp_path / "p", tmp_path / "pool.csv", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["added"], summary["labels_recorded"], summary["rejected"]) == (3, 3, {})
    stored = _boxes(tmp_path / "p")

    sources = {"coco": "pool/annotations.json", "yolo": "data.yaml", "voc": "pool/annotations"}
    for fmt, source in sources.items():
        out = tmp_path / f"{fmt}-out"
        result = invoke("export", tmp_path / "p", out, "--format", fmt)
        assert result.exit_code == 0 and f"exported {fmt}" in result.output, result.output
        assert invoke("init", tmp_path / fmt, "--task", "detection").exit_code == 0
        result = invoke("import", tmp_path / fmt, out / source, "--format", fmt, "--add-classes", "--json")
        assert result.exit_code == 0, result.output
        (summary,) = json.loads(result.output)
        assert (summary["added"], summary["labels_recorded"], summary["rejected"]) == (3, 3, {})
        assert _boxes(tmp_path / fmt) == stored, fmt

    tree = invoke("export", tmp_path / "p", tmp_path / "tree")
    assert tree.exit_code != 0 and "--format coco" in tree.output
    assert invoke("init", tmp_path / "classes", "--classes", "bag").exit_code == 0
    refused = invoke("import", tmp_path / "classes", tmp_path / "coco-out/pool/annotations.json", "--format", "coco")
    assert refused.exit_code != 0 and "--task detection" in refused.output
