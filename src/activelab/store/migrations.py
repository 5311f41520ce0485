"""Forward-only schema migrations.

The schema version lives in the ``meta`` table. A new store is created at
:data:`SCHEMA_VERSION` directly; an older one is brought forward by running the
steps in :data:`MIGRATIONS` in order, each in the same transaction as the
version bump. A store newer than this code is refused, never touched.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, inspect, select, update
from sqlalchemy.dialects import postgresql, sqlite

from activelab.exceptions import SchemaVersionError, StoreError
from activelab.store import schema as t

SCHEMA_VERSION = 2


def _v2_labeling_app(conn: Connection) -> None:
    """Version 2: leases, skips, undos, review flags, predictions and service state (the labeling app)."""
    t.metadata.create_all(conn, tables=list(t.V2_TABLES))


# MIGRATIONS[n] upgrades a store from version n - 1 to version n.
MIGRATIONS: dict[int, Callable[[Connection], None]] = {2: _v2_labeling_app}


def stored_version(conn: Connection) -> int | None:
    """The schema version recorded in the store, or None for an empty database."""
    if not inspect(conn).has_table("meta"):
        return None
    value = conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "schema_version"))
    if value is None:
        raise StoreError("the database has a 'meta' table but no schema version: it is not an activelab store")
    return int(value)


def ensure_schema(conn: Connection, url: str, *, create: bool = True, target: int | None = None) -> int:
    """Create (if ``create``) or upgrade the schema inside the caller's transaction; return the version."""
    target = SCHEMA_VERSION if target is None else target
    version = stored_version(conn)
    if version is None:
        if not create:
            raise StoreError(f"{url} holds no activelab store; create one with `activelab init`")
        foreign = [name for name in inspect(conn).get_table_names() if name not in t.metadata.tables]
        if foreign:
            raise StoreError(
                f"{url} already holds other tables ({', '.join(sorted(foreign)[:5])}); "
                "give activelab an empty database or a new file"
            )
        t.metadata.create_all(conn)
        _upsert_version(conn, target)
        return target
    if version > target:
        raise SchemaVersionError(
            f"{url} has schema version {version}, but this activelab understands up to {target}. "
            "Upgrade activelab (pip install -U activelab) to open it; nothing was changed."
        )
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
