"""The CLI examples in docs/cli.md run as written, against real Fashion-MNIST images."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_blocks() -> list[str]:
    blocks = re.findall(r"<!-- cli-example -->\s*```bash\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert len(blocks) == 2, "docs/cli.md lost an example block"
    return blocks


def run_block(block: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "HF_HUB_OFFLINE": "1",
    }
    done = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + block], cwd=cwd, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done


def test_cli_doc_examples_run(tmp_path: Path) -> None:
    done = run_block(documented_blocks()[0], tmp_path)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["images"] == {"pool": 200, "eval": 100}
    assert status["labeled"] == {"pool": 200, "eval": 100}
    assert status["label_events"] == 300
    assert "0 added, 0 labels recorded, 200 duplicates" in done.stdout
    assert len(pd.read_csv(tmp_path / "labels.csv")) == 200
    assert len(pd.read_parquet(tmp_path / "labels.parquet")) == 300
    assert len(list((tmp_path / "tree" / "train").rglob("*.png"))) == 200
    assert done.stdout.strip().splitlines()[-2:] == ["hat", "scarf"]


def test_cli_loop_examples_run(tmp_path: Path) -> None:
    done = run_block(documented_blocks()[1], tmp_path)
    assert "round 1 (margin)" in done.stdout and "round 2 (bald)" in done.stdout
    assert "you can stop labeling: label budget reached: 20 >= 20" in done.stdout
    selection = pd.read_csv(tmp_path / "demo" / "rounds" / "round-0001-selection.csv")
    assert len(selection) == 10 and selection["rank"].tolist() == list(range(1, 11))
    predictions = pd.read_csv(tmp_path / "predictions.csv")
    assert len(predictions) == 480 and {"pred_label", "pred_conf", "p_bag"} <= set(predictions.columns)
    trained = json.loads((tmp_path / "train.json").read_text())
    assert trained["metrics"]["n_labeled"] == 20 and trained["model"].endswith("latest")
    assert json.loads((tmp_path / "predict.json").read_text())["n"] == 480
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 200 and 0.3 < metrics["accuracy"] <= 1
