"""Forward-only schema migrations: Alembic revisions shipped in the package, run without an alembic.ini.

Each schema version is one revision in ``versions/`` (revision id ``"0003"`` is schema
version 3). A new store is created by running every revision from the first; an older
one by running those after its version. Each step runs in the caller's transaction
together with the bump of ``meta.schema_version``, the one place the version is kept
(the revision graph is Alembic's; no ``alembic_version`` table is written beside it, so
the two can never disagree). A store newer than this code is refused, never touched.

Alembic is imported only when a store is created or upgraded: opening a current store
reads ``meta.schema_version`` with plain SQL (:func:`needs_write`), so short commands such
as ``activelab status`` never pay for loading Alembic and its dialect modules.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, inspect, select, update

from activelab.exceptions import SchemaVersionError, StoreError
from activelab.store import schema as t

if TYPE_CHECKING:
    from alembic.script import Script, ScriptDirectory

#: The schema version this code writes: the head revision (a test keeps the two equal).
SCHEMA_VERSION = 5


@cache
def revisions() -> ScriptDirectory:
    """The packaged revisions (``versions/`` beside this file), loaded once per process."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory(str(Path(__file__).resolve().parent))


def revision_id(version: int) -> str:
    """The Alembic revision id of a schema version: ``3`` -> ``"0003"``."""
    return f"{version:04d}"


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
    if version == target:
        return target
    if version is None:
        foreign = [name for name in inspect(conn).get_table_names() if name not in t.metadata.tables]
        if foreign:
            raise StoreError(
                f"{url} already holds other tables ({', '.join(sorted(foreign)[:5])}); "
                "give activelab an empty database or a new file"
            )
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext

    steps = _steps(version, target)
    with Operations.context(MigrationContext.configure(connection=conn)):
        for step in steps:
            step.module.upgrade()
            _upsert_version(conn, int(step.revision))
    return target


def _steps(version: int | None, target: int) -> list[Script]:
    """The revisions that bring a store at ``version`` (None: empty) to ``target``, oldest first."""
    from alembic.script.revision import RevisionError
    from alembic.util import CommandError

    lower = "base" if version is None else revision_id(version)
    try:
        steps = list(revisions().iterate_revisions(revision_id(target), lower))
    except (CommandError, RevisionError) as exc:
        raise StoreError(f"no migration from schema version {version} to {target} ({exc})") from exc
    return steps[::-1]


def _upsert_version(conn: Connection, version: int) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    if conn.scalar(select(t.meta.c.value).where(t.meta.c.key == "schema_version")) is None:
        insert_fn = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        conn.execute(insert_fn(t.meta).values(key="schema_version", value=str(version)).on_conflict_do_nothing())
    else:
        conn.execute(update(t.meta).where(t.meta.c.key == "schema_version").values(value=str(version)))
