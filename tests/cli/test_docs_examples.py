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


def documented_commands() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    block = re.search(r"<!-- cli-example -->\s*```bash\n(.*?)```", text, re.S)
    assert block, "docs/cli.md lost its example block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_cli_doc_examples_run(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    script = "set -euo pipefail\n" + "\n".join(documented_commands())
    done = subprocess.run(["bash", "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["images"] == {"pool": 200, "eval": 100}
    assert status["labeled"] == {"pool": 200, "eval": 100}
    assert status["label_events"] == 300
    assert "0 added, 0 labels recorded, 200 duplicates" in done.stdout
    assert len(pd.read_csv(tmp_path / "labels.csv")) == 200
    assert len(pd.read_parquet(tmp_path / "labels.parquet")) == 300
    assert len(list((tmp_path / "tree" / "train").rglob("*.png"))) == 200
    assert done.stdout.strip().splitlines()[-2:] == ["hat", "scarf"]
