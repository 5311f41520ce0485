"""Schema versioning: new stores are current, old ones migrate, newer ones are refused."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from activelab.exceptions import InputError, SchemaVersionError, StoreError
from activelab.store import (
    SCHEMA_VERSION,
    ImageRecord,
    migrations,
    open_store,
    sqlite_url,
)
from activelab.store import engine as engine_module


def _version(url: str) -> int:
    engine = create_engine(url)
    with engine.connect() as conn:
        value = conn.execute(text("SELECT value FROM meta WHERE key = 'schema_version'")).scalar_one()
    engine.dispose()
    return int(value)


def test_new_store_has_current_version(store_url: str) -> None:
    open_store(store_url).close()
    assert _version(store_url) == SCHEMA_VERSION


def test_newer_store_is_refused_untouched(store_url: str) -> None:
    open_store(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"), {"v": str(SCHEMA_VERSION + 1)})
    engine.dispose()
    with pytest.raises(SchemaVersionError, match=f"schema version {SCHEMA_VERSION + 1}.*Upgrade activelab"):
        open_store(store_url)
    assert _version(store_url) == SCHEMA_VERSION + 1


def _revisions_with(tmp_path: Path, upgrade_body: str) -> ScriptDirectory:
    """The packaged revisions plus one more (schema version SCHEMA_VERSION + 1) whose upgrade runs ``upgrade_body``."""
    root = tmp_path / "migrations"
    shutil.copytree(Path(migrations.__file__).parent / "versions", root / "versions")
    (root / "versions" / "v_next.py").write_text(
        "from alembic import op\n"
        "import sqlalchemy as sa\n"
        f"revision = {migrations.revision_id(SCHEMA_VERSION + 1)!r}\n"
        f"down_revision = {migrations.revision_id(SCHEMA_VERSION)!r}\n"
        "def upgrade():\n"
        f"    {upgrade_body}\n"
    )
    return ScriptDirectory(str(root))


def _tables(url: str) -> set[str]:
    engine = create_engine(url)
    names = set(inspect(engine).get_table_names())
    engine.dispose()
    return names


def test_older_store_migrates_forward(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(store_url).close()
    script = _revisions_with(tmp_path, "op.create_table('notes', sa.Column('id', sa.Integer, primary_key=True))")
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(migrations, "revisions", lambda: script)
    open_store(store_url).close()
    open_store(store_url).close()  # a second open runs nothing: creating 'notes' again would fail
    assert "notes" in _tables(store_url)
    assert _version(store_url) == SCHEMA_VERSION + 1


def test_failed_migration_leaves_old_version(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(store_url).close()
    script = _revisions_with(
        tmp_path, "op.create_table('half_done', sa.Column('id', sa.Integer)); raise RuntimeError('disk full')"
    )
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setattr(migrations, "revisions", lambda: script)
    with pytest.raises(RuntimeError, match="disk full"):
        open_store(store_url)
    assert _version(store_url) == SCHEMA_VERSION
    assert "half_done" not in _tables(store_url)  # the half-done step was rolled back with the version bump


def test_open_without_create_needs_a_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no store at"):
        open_store(sqlite_url(tmp_path / "missing.db"), create=False)


def test_foreign_database_is_refused(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "other.db")
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE customers (id INTEGER)"))
    engine.dispose()
    with pytest.raises(StoreError, match="other tables \\(customers\\)"):
        open_store(url)


def test_bad_urls(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a database URL"):
        open_store("not a url")
    with pytest.raises(InputError, match="in-memory"):
        open_store("sqlite://")


def test_sqlite_uses_wal(tmp_path: Path) -> None:
    store = open_store(sqlite_url(tmp_path / "w.db"))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def _downgrade_to_v2(store_url: str) -> None:
    """Make a current store look like one written by schema version 2 (no images.format, no class events,
    no annotation columns, no asked masks)."""
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE round_selections DROP COLUMN asked_mask"))
        conn.execute(text("ALTER TABLE label_events DROP COLUMN annotation"))
        conn.execute(text("ALTER TABLE predictions DROP COLUMN annotation"))
        conn.execute(text("DROP TABLE class_events"))
        conn.execute(text("ALTER TABLE images DROP COLUMN format"))
        conn.execute(text("UPDATE meta SET value = '2' WHERE key = 'schema_version'"))
    engine.dispose()


def test_version_2_store_migrates_to_current(store_url: str) -> None:
    with open_store(store_url) as store:
        store.add_classes(["cat", "dog"])
        (old_id,) = store.add_images(
            [ImageRecord(f"{1:064x}", "/img/1.png", 2, 2, 10, label="cat")], author="ann"
        ).image_id
    _downgrade_to_v2(store_url)
    with open_store(store_url, create=False) as store:
        assert _version(store_url) == SCHEMA_VERSION
        assert store.get_image(old_id).format is None
        assert store.current_labels()[old_id].label == "cat"
        (new_id,) = store.add_images(
            [ImageRecord(f"{2:064x}", "/img/2.jpg", 2, 2, 10, format="JPEG")], author="ann"
        ).image_id
        assert store.get_image(new_id).format == "JPEG"
        store.retire_class("dog", author="ann")
        assert store.class_names() == ["cat"] and store.retired_classes() == ["dog"]


def test_schema_version_that_is_not_a_number_is_refused(store_url: str) -> None:
    open_store(store_url).close()
    engine = create_engine(store_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE meta SET value = 'two' WHERE key = 'schema_version'"))
    engine.dispose()
    with pytest.raises(StoreError, match="schema version 'two', which is not a whole number.*restore it from a backup"):
        open_store(store_url, create=False)


def test_opening_a_current_store_does_not_wait_for_a_writer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = sqlite_url(tmp_path / "busy.db")
    with open_store(url) as store:
        store.add_classes(["cat"])
    monkeypatch.setattr(engine_module, "SQLITE_BUSY_TIMEOUT_S", 1)  # a regression fails in 1 s, not 60
    writer = sqlite3.connect(tmp_path / "busy.db", isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO classes (name, created_at) VALUES ('dog', '2024-01-01 00:00:00')")
    try:
        started = time.monotonic()
        with open_store(url, create=False) as store:
            assert store.class_names() == ["cat"]  # the writer's uncommitted class is not seen
        assert time.monotonic() - started < 0.9
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_opening_an_existing_store_keeps_its_journal_mode(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "j.db")
    open_store(url).close()
    with sqlite3.connect(tmp_path / "j.db") as conn:
        conn.execute("PRAGMA journal_mode=DELETE")
    before = (tmp_path / "j.db").read_bytes()
    with open_store(url, create=False) as store:
        assert store.class_names() == []
    assert (tmp_path / "j.db").read_bytes() == before
