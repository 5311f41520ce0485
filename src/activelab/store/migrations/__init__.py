"""Forward-only schema migrations.

The schema version lives in the ``meta`` table. A new store is created at
:data:`SCHEMA_VERSION` directly; an older one is brought forward by running the
steps in :data:`MIGRATIONS` in order, each in the same transaction as the
version bump. A store newer than this code is refused, never touched.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from activelab.exceptions import SchemaVersionError, StoreError
from activelab.store import schema as t

SCHEMA_VERSION = 3


def _v2_labeling_app(conn: Connection) -> None:
    """Version 2: leases, skips, undos, review flags, predictions and service state (the labeling app)."""
    t.metadata.create_all(conn, tables=list(t.V2_TABLES))


def _v3_formats_and_class_events(conn: Connection) -> None:
    """Version 3: the image format detected at import, and class retirement events."""
    conn.execute(text("ALTER TABLE images ADD COLUMN format VARCHAR(16)"))
    t.metadata.create_all(conn, tables=list(t.V3_TABLES))


# MIGRATIONS[n] upgrades a store from version n - 1 to version n.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2_labeling_app, 3: _v3_formats_and_class_events}


def stored_version(conn: Connection, url: str) -> int | None:
    """The schema version recorded in the store at ``url``, or None for an empty database."""
    if not inspect(conn).has_table("meta"):
        return None
    value = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "schema_version"))
    if value is None:
        raise StoreError(
            f"{url} has a 'meta' table but no schema version: it is not an activelab store; "
            "point the project's `db:` at its own store"
        )
    try:
        return int(value)
    except ValueError:
        raise StoreError(
            f"{url} records schema version {value!r}, which is not a whole number: the store is damaged; "
            "restore it from a backup"
        ) from None


def needs_write(conn: Connection, url: str, *, create: bool = True) -> bool:
    """Whether opening the store needs the write lock (to create or upgrade it).

    Runs in a read transaction, so readers never queue behind a writer just to
    open a store; raises for a store that must not be opened, before any write.
    """
    return _checked_version(conn, url, create=create, target=SCHEMA_VERSION) != SCHEMA_VERSION


def _checked_version(conn: Connection, url: str, *, create: bool, target: int) -> int | None:
    """The stored version; raises when it is missing (without ``create``) or newer than ``target``."""
    version = stored_version(conn, url)
    if version is None and not create:
        raise StoreError(f"{url} holds no activelab store; create one with `activelab init`")
    if version is not None and version > target:
        raise SchemaVersionError(
            f"{url} has schema version {version}, but this activelab understands up to {target}. "
            "Upgrade activelab (pip install -U activelab) to open it; nothing was changed."
        )
    return version


def ensure_schema(conn: Connection, url: str, *, create: bool = True, target: int | None = None) -> int:
    """Create (if ``create``) or upgrade the schema inside the caller's transaction; return the version."""
    target = SCHEMA_VERSION if target is None else target
    version = _checked_version(conn, url, create=create, target=target)
    if version is None:
        foreign = [name for name in inspect(conn).get_table_names() if name not in t.metadata.tables]
        if foreign:
            raise StoreError(
                f"{url} already holds other tables ({', '.join(sorted(foreign)[:5])}); "
                "give activelab an empty database or a new file"
            )
        t.metadata.create_all(conn)
        _upsert_version(conn, target)
        return target
    for step in range(version + 1, target + 1):
        if step not in MIGRATIONS:
            raise StoreError(f"no migration from schema version {step - 1} to {step}")
        MIGRATIONS[step](conn)
        _upsert_version(conn, step)
    return target


def _upsert_version(conn: Connection, version: int) -> None:
    if conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "schema_version")) is None:
        insert_fn = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert_fn(t.meta).values(key="schema_version", value=str(version)).on_conflict_do_nothing())
    else:
        conn.execute(update(t.meta).where(t.meta.c.key == "schema_version").values(value=str(version)))
