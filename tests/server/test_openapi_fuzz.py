"""Schemathesis checks the app against its own OpenAPI schema, with all its checks, on copies of the demo project.

Two bounded runs, each ending with the store intact (SQLite ``integrity_check``, label events only
appended, no classes but those the run legitimately added):

- in process: every operation, ``MAX_EXAMPLES`` generated requests each, valid ones (positive) or
  invalid ones (negative), through the ASGI app. Valid requests get their ids and class names
  mapped onto the project's, so labels, skips and image reads really reach the store.
- the ``schemathesis run --checks all`` command against a real uvicorn server, for its coverage
  phase (boundary values of every bound and pattern); the project forbids adding classes from
  the app, so the run may add none.

"All checks" includes ``positive_data_acceptance`` (a schema-valid request is never refused
with 422: an unknown class or image is a 404) and ``negative_data_rejection`` (a request the
schema refuses is never accepted).
"""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from activelab.loop.settings import load_settings, save_settings
from activelab.server import ServerSettings, create_app

from .conftest import CLIENT_HEADERS, LiveServer

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis>=4 is a dev dependency")

MAX_EXAMPLES = 8
REQUEST_TIMEOUT = 60
#: the app answers only to the host names it serves (not schemathesis' default "testserver")
BASE_URL = "http://127.0.0.1"


def _events(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, image_id, class_id, author, source FROM label_events ORDER BY id").fetchall()


def _classes(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [name for (name,) in conn.execute("SELECT name FROM classes ORDER BY id")]


def _integrity(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


def _aim_at_the_project(case, n_images: int, classes: list[str]) -> None:  # type: ignore[no-untyped-def]
    """Map generated ids and class names onto the project's, so valid requests also store labels."""
    body = case.body if isinstance(case.body, dict) else None
    if body is not None and isinstance(body.get("image_id"), int):
        body["image_id"] = 1 + body["image_id"] % n_images
        if isinstance(body.get("label"), str) and len(body["label"]) % 2 == 0:
            body["label"] = classes[len(body["label"]) % len(classes)]
        if isinstance(body.get("labels"), list):
            body["labels"] = [
                classes[len(name) % len(classes)] if isinstance(name, str) and len(name) % 2 == 0 else name
                for name in body["labels"]
            ]
    if case.path_parameters and isinstance(case.path_parameters.get("image_id"), int):
        case.path_parameters["image_id"] = 1 + case.path_parameters["image_id"] % (n_images + 5)


def _fuzz(
    operation,
    generation,
    calls: list[tuple[str, int, Any]],  # type: ignore[no-untyped-def]
    project: tuple[int, list[str]] | None,
):
    """A Hypothesis test of one operation: generated cases called through the ASGI app, all checks run."""

    @given(case=operation.as_strategy(generation_mode=generation))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate, Phase.shrink],
    )
    def fuzz(case) -> None:  # type: ignore[no-untyped-def]
        if project is not None:
            _aim_at_the_project(case, *project)
        response = case.call_and_validate(base_url=BASE_URL, headers=dict(CLIENT_HEADERS), timeout=REQUEST_TIMEOUT)
        calls.append((operation.label, response.status_code, case.body))

    return fuzz


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_conforms_to_its_schema_with_all_checks(project_dir: Path, mode: str) -> None:
    """Every operation, ``MAX_EXAMPLES`` generated requests each: valid ones (positive) or invalid ones (negative)."""
    db = project_dir / "activelab.db"
    before, classes_before = _events(db), _classes(db)
    app = create_app(ServerSettings(project=project_dir, trainer=False, similar_index=False))
    api = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "127.0.0.1"})
    service = app.state.service
    n_images, classes = service.store.n_images(), service.store.class_names()
    failures: dict[str, str] = {}
    labels: list[str] = []
    calls: list[tuple[str, int, Any]] = []
    try:
        for result in api.get_all_operations():
            operation = result.ok()
            labels.append(operation.label)
            fuzz = _fuzz(
                operation,
                schemathesis.GenerationMode(mode),
                calls,
                project=(n_images, classes) if mode == "positive" else None,
            )
            try:
                fuzz()
            except Unsatisfiable:  # negative mode: an operation without parameters has no invalid input
                assert mode == "negative", operation.label
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:
                failures[operation.label] = f"{type(exc).__name__}: {exc}"
    finally:
        service.stop()  # a similar-images request may have started a background build
        service.project.close()
    assert "POST /api/labels" in labels and "POST /api/classes/retire" in labels
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    statuses = {(label, code) for label, code, _ in calls}
    if mode == "positive":  # the valid requests reached the store, not only the validators
        assert ("POST /api/labels", 200) in statuses and ("POST /api/next", 200) in statuses, statuses
    else:
        assert all(code < 500 for _, code in statuses)
    assert _integrity(db) == "ok"
    after = _events(db)
    assert after[: len(before)] == before, "label events are append-only: none changed or removed"
    added = [body["name"] for label, code, body in calls if label == "POST /api/classes" and code == 200]
    assert _classes(db) == classes_before + [n for n in dict.fromkeys(added) if n not in classes_before]


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_multilabel_labeling_conforms_to_its_schema(multilabel_dir: Path, mode: str) -> None:
    """A multi-label project publishes ``labels`` (a list) in its label body: generated sets are stored or
    refused exactly as that schema says."""
    db = multilabel_dir / "activelab.db"
    app = create_app(ServerSettings(project=multilabel_dir, trainer=False, similar_index=False))
    api = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "127.0.0.1"})
    service = app.state.service
    project = (service.store.n_images(), service.store.class_names())
    calls: list[tuple[str, int, Any]] = []
    try:
        for path in ("/api/labels", "/api/undo"):
            operation = api[path]["POST"]
            _fuzz(operation, schemathesis.GenerationMode(mode), calls, project if mode == "positive" else None)()
    finally:
        service.stop()
        service.project.close()
    statuses = {(label, code) for label, code, _ in calls}
    if mode == "positive":
        stored = [body for label, code, body in calls if label == "POST /api/labels" and code == 200]
        assert any(isinstance(body.get("labels"), list) for body in stored), statuses
    else:
        assert all(code < 500 for _, code in statuses)
    assert _integrity(db) == "ok"


def test_schemathesis_command_with_all_checks_reports_no_failure(project_dir: Path) -> None:
    """``schemathesis run --checks all``: the boundary values of every bound and pattern (coverage phase)."""
    settings_path = project_dir / "activelab.yaml"
    project_settings = load_settings(settings_path)
    project_settings.labeling.allow_new_classes = False
    save_settings(project_settings, settings_path)
    db = project_dir / "activelab.db"
    before, classes_before = _events(db), _classes(db)
    exe = Path(sys.executable).with_name("schemathesis")
    with LiveServer(ServerSettings(project=project_dir, trainer=False, similar_index=False)) as server:
        run = subprocess.run(
            [
                str(exe),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--phases",
                "coverage",
                "--max-examples",
                "5",
                "--seed",
                "1",
                "--workers",
                "1",
                "--no-color",
                "--header",
                "X-Activelab-Client: 1",
                "--request-timeout",
                str(REQUEST_TIMEOUT),
            ],
            cwd=project_dir.parent,
            check=False,
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert generated is not None and generated[1] == generated[2] and int(generated[1]) > 100, run.stdout[-3000:]
    assert _integrity(db) == "ok"
    assert _events(db)[: len(before)] == before
    assert _classes(db) == classes_before, "the project forbids adding classes from the app"
