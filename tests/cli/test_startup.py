"""The CLI starts without importing torch, scikit-learn or pandas: commands import them when they run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = [
    "torch",
    "torchvision",
    "timm",
    "sklearn",
    "pandas",
    "scipy",
    "faiss",
    "cleanlab",
    "matplotlib",
    "fastapi",
    "uvicorn",
    "PIL",
    "activelab.models",
    "activelab.loop.session",
    "activelab.simulate",
    "activelab.label_errors",
]


def heavy_modules_after(code: str) -> list[str]:
    """Which of HEAVY a fresh interpreter has imported after running ``code``."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_cli(*args: str) -> str:
    """``activelab ARGS`` in-process inside the probe (standalone mode exits, so catch SystemExit)."""
    return (
        "from activelab.cli.main import app\n"
        f"try:\n    app({list(args)!r})\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code"
    )


def test_importing_the_cli_imports_nothing_heavy() -> None:
    assert heavy_modules_after("import activelab.cli.main") == []


def test_help_imports_nothing_heavy() -> None:
    assert heavy_modules_after(run_cli("--help")) == []
    assert heavy_modules_after(run_cli("query", "--help")) == []


def test_status_needs_only_the_store(tmp_path: Path) -> None:
    project = tmp_path / "p"
    heavy_modules_after(run_cli("init", str(project), "--classes", "a,b"))
    assert heavy_modules_after(run_cli("status", str(project))) == []
