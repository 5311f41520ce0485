"""A damaged or foreign store file: one `error:` line from the CLI, exit code 2, the file left byte-identical."""

from __future__ import annotations

import random
import re
import shutil
import sqlite3
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.store import ImageRecord, open_store, sqlite_url


def _truncate(db: Path) -> Path:
    db.write_bytes(db.read_bytes()[: db.stat().st_size // 2])
    return db


def _random_bytes(db: Path) -> Path:
    db.write_bytes(random.Random(0).randbytes(8192))
    return db


def _empty(db: Path) -> Path:
    db.write_bytes(b"")
    return db


def _db_points_at_a_text_file(db: Path) -> Path:
    notes = db.parent / "notes.txt"
    notes.write_text("not a database\n")
    settings = db.parent / "activelab.yaml"
    settings.write_text(settings.read_text().replace("db: sqlite:///activelab.db", "db: sqlite:///notes.txt"))
    return notes


def _schema_version_two(db: Path) -> Path:
    with closing(sqlite3.connect(db, isolation_level=None)) as conn:  # closing checkpoints the WAL into db
        conn.execute("UPDATE meta SET value = 'two' WHERE key = 'schema_version'")
    return db


CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "truncated": (_truncate, "activelab.db is damaged or not a SQLite database"),
    "random_bytes": (_random_bytes, "activelab.db is not a SQLite database"),
    "empty": (_empty, r"activelab.db is empty \(0 bytes\)"),
    "db_points_at_a_text_file": (_db_points_at_a_text_file, "notes.txt is not a SQLite database"),
    "schema_version_two": (_schema_version_two, "activelab.db records schema version 'two'"),
}


@pytest.fixture(scope="module")
def project_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose store spans many pages, so that half of it is a real truncation."""
    root = tmp_path_factory.mktemp("damaged") / "proj"
    assert CliRunner().invoke(app, ["init", str(root), "--classes", "cat,dog"]).exit_code == 0
    with open_store(sqlite_url(root / "activelab.db"), create=False) as store:
        store.add_images(
            [ImageRecord(f"{i:064x}", f"/img/{i}.png", 8, 8, 64, label="cat") for i in range(400)], author="ann"
        )
    return root


@pytest.mark.parametrize("case", sorted(CASES))
def test_status_on_a_damaged_store_is_one_error_line(case: str, project_template: Path, tmp_path: Path) -> None:
    root = Path(shutil.copytree(project_template, tmp_path / "proj"))
    damage, message = CASES[case]
    damaged = damage(root / "activelab.db")
    before = damaged.read_bytes()
    result = CliRunner().invoke(app, ["status", str(root)])
    assert result.exit_code == 2, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert re.search(message, lines[0]), lines[0]
    assert damaged.read_bytes() == before
