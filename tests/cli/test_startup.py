"""The CLI starts without importing torch, scikit-learn, pandas, numpy or Alembic: commands import them when they run.

`status` opens a current store (no Alembic: only creating or upgrading a store loads it) and
checks the project's task by name (no task module, so no numpy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from activelab.exceptions import InputError
from activelab.tasks import Task, check_task_name, get_task, register_task

HEAVY = [
    "numpy",
    "alembic",
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
    "activelab.tasks.classification",
    "activelab.tasks.multilabel",
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
    assert "alembic" in heavy_modules_after(run_cli("init", str(project), "--classes", "a,b"))  # creates the store
    assert heavy_modules_after(run_cli("status", str(project))) == []


def test_a_task_name_is_checked_without_importing_the_task() -> None:
    probe = "from activelab.tasks import check_task_name, get_task\n"
    assert heavy_modules_after(probe + "assert check_task_name('multilabel') == 'multilabel'") == []
    assert heavy_modules_after(probe + "get_task('multilabel')") == ["numpy", "activelab.tasks.multilabel"]
    with pytest.raises(InputError, match=r"unknown task 'multilabl' \(did you mean 'multilabel'\?\); known: "):
        check_task_name("multilabl")


def test_a_built_in_name_is_taken_before_its_module_is_imported() -> None:
    class Impostor(Task):
        name = "multilabel"

    with pytest.raises(ValueError, match="task 'multilabel' is already registered"):
        register_task(Impostor)
    assert type(get_task("multilabel")).__module__ == "activelab.tasks.multilabel"
