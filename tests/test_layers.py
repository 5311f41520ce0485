"""The layering rule of DESIGN.md holds: lower layers never import higher ones."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # import-linter depends on tomli there
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _contracts() -> list[dict[str, object]]:
    with open(ROOT / "pyproject.toml", "rb") as f:
        return list(tomllib.load(f)["tool"]["importlinter"]["contracts"])


def test_layers_follow_design_order() -> None:
    layers = next(c for c in _contracts() if c["type"] == "layers")["layers"]
    assert layers == [
        "activelab.cli",
        "activelab.server",
        "activelab.simulate | activelab.label_errors",
        "activelab.loop",
        "activelab.tasks",
        "activelab.models",
        "activelab.store | activelab.data",
        "activelab.strategies",
    ]


def test_import_linter_contracts_hold() -> None:
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    for contract in _contracts():
        assert f"{contract['name']} KEPT" in done.stdout
    assert f"Contracts: {len(_contracts())} kept, 0 broken." in done.stdout
