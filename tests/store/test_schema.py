"""Schema versioning: new stores are current, old ones migrate, newer ones are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from activelab.exceptions import InputError, SchemaVersionError, StoreError
from activelab.store import SCHEMA_VERSION, migrations, open_store, sqlite_url


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


def test_older_store_migrates_forward(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(store_url).close()
    ran: list[int] = []

    def add_notes_table(conn) -> None:  # type: ignore[no-untyped-def]
        conn.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        ran.append(SCHEMA_VERSION + 1)

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(migrations.MIGRATIONS, SCHEMA_VERSION + 1, add_notes_table)
    open_store(store_url).close()
    open_store(store_url).close()
    assert ran == [SCHEMA_VERSION + 1]
    assert _version(store_url) == SCHEMA_VERSION + 1


def test_failed_migration_leaves_old_version(store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    open_store(store_url).close()

    def broken(conn) -> None:  # type: ignore[no-untyped-def]
        conn.execute(text("CREATE TABLE half_done (id INTEGER)"))
        raise RuntimeError("disk full")

    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    monkeypatch.setitem(migrations.MIGRATIONS, SCHEMA_VERSION + 1, broken)
    with pytest.raises(RuntimeError, match="disk full"):
        open_store(store_url)
    assert _version(store_url) == SCHEMA_VERSION


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
