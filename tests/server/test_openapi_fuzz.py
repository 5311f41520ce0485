"""Schemathesis fuzzes every operation of the app's OpenAPI schema on a copy of the demo project.

For each operation, up to ``MAX_EXAMPLES`` generated requests (valid and invalid
bodies, paths and queries) go through the ASGI app with the cross-site header set.
Checks: no 5xx, status codes, content types and bodies as documented in the schema
(schemathesis' default checks, less ``positive_data_acceptance``: a schema-valid body
may name a class or image the project lacks), and, after all operations, the store
is intact (SQLite ``integrity_check``) and label events were only ever appended.
Valid requests get their ids and class names mapped onto the project's, so labels,
skips and image reads really reach the store.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable

from activelab.server import ServerSettings, create_app

from .conftest import CLIENT_HEADERS

schemathesis = pytest.importorskip("schemathesis", reason="schemathesis>=4 is a dev dependency")

MAX_EXAMPLES = 20
#: seconds per request: the first similar-images call builds the project's index (embeds 700 images)
REQUEST_TIMEOUT = 120
#: the app answers only to the host names it serves (not schemathesis' default "testserver")
BASE_URL = "http://127.0.0.1"
#: a schema-valid body may still name a class or an image the project lacks (422/404 by design)
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


def _events(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT id, image_id, class_id, author, source FROM label_events ORDER BY id").fetchall()


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
    if case.path_parameters and isinstance(case.path_parameters.get("image_id"), int):
        case.path_parameters["image_id"] = 1 + case.path_parameters["image_id"] % (n_images + 5)


def _fuzz(operation, generation, statuses: dict[str, list[int]],  # type: ignore[no-untyped-def]
          project: tuple[int, list[str]] | None):
    """A Hypothesis test of one operation: generated cases called through the ASGI app and validated."""

    @given(case=operation.as_strategy(generation_mode=generation))
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.generate, Phase.shrink])
    def fuzz(case) -> None:  # type: ignore[no-untyped-def]
        if project is not None:
            _aim_at_the_project(case, *project)
        response = case.call_and_validate(base_url=BASE_URL, headers=dict(CLIENT_HEADERS), excluded_checks=EXCLUDED,
                                          timeout=REQUEST_TIMEOUT)
        statuses.setdefault(operation.label, []).append(response.status_code)

    return fuzz


@pytest.mark.parametrize("mode", ["positive", "negative"])
def test_api_conforms_to_its_schema_and_never_fails(project_dir: Path, mode: str) -> None:
    """Every operation, ``MAX_EXAMPLES`` generated requests each: valid ones (positive) or invalid ones (negative)."""
    db = project_dir / "activelab.db"
    before = _events(db)
    app = create_app(ServerSettings(project=project_dir, trainer=False))
    api = schemathesis.openapi.from_asgi("/openapi.json", app, headers={"Host": "127.0.0.1"})
    generation = schemathesis.GenerationMode(mode)
    failures: dict[str, str] = {}
    labels = []
    n_images = app.state.service.store.n_images()
    classes = app.state.service.store.class_names()
    statuses: dict[str, list[int]] = {}
    try:
        for result in api.get_all_operations():
            operation = result.ok()
            labels.append(operation.label)

            aim = (n_images, classes) if mode == "positive" else None
            fuzz = _fuzz(operation, generation, statuses, project=aim)
            try:
                fuzz()
            except Unsatisfiable:  # negative mode: an operation without parameters has no invalid input
                assert mode == "negative", operation.label
            except (KeyboardInterrupt, SystemExit):
                raise
            except BaseException as exc:  # noqa: BLE001 - schemathesis raises exception groups; report them all
                failures[operation.label] = f"{type(exc).__name__}: {exc}"
    finally:
        app.state.service.project.close()
    assert "POST /api/labels" in labels and "POST /api/next" in labels
    if mode == "positive":  # the valid requests reached the store, not only the validators
        assert 200 in statuses["POST /api/labels"] and 200 in statuses["POST /api/next"], statuses
    else:
        assert all(code < 500 for codes in statuses.values() for code in codes)
    assert not failures, "\n\n".join(f"{k}:\n{v}" for k, v in failures.items())
    assert _integrity(db) == "ok"
    after = _events(db)
    assert after[: len(before)] == before, "label events are append-only: none changed or removed"
