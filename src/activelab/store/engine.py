"""Opening a store: engine set-up (WAL, busy timeout, write locks) and schema checks.

Opening only reads until it knows a write is needed: an existing file is checked
for the SQLite header before SQLite touches it, the schema version is read in a
read transaction, and the write lock (and the switch to WAL) is taken only to
create or upgrade the store. So a damaged file is left byte-identical, and
readers never queue behind a long writer just to open a project.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.pool import NullPool

from activelab.exceptions import InputError, StoreError
from activelab.store.migrations import ensure_schema, needs_write
from activelab.store.store import Store

SQLITE_BUSY_TIMEOUT_S = 60
SQLITE_HEADER = b"SQLite format 3\x00"


def sqlite_url(path: str | Path) -> str:
    """The SQLAlchemy URL of a SQLite file."""
    return f"sqlite:///{Path(path).resolve()}"


def _enable_wal(cur: Any) -> None:
    """Switch the file to WAL, retrying while another process holds it.

    SQLite answers a journal-mode change with "database is locked" at once,
    without waiting on the busy timeout, when another connection is creating or
    converting the same new file; so we wait here, up to the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


def _use_wal(engine: Engine) -> None:
    """Put the SQLite file in WAL mode (persistent in the file), after it was created or upgraded."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        _enable_wal(cur)
        cur.close()
    finally:
        raw.close()


def _check_sqlite_file(db_file: Path, *, create: bool) -> None:
    """Refuse, before SQLite opens it, a path that is not an SQLite file (SQLite would write to an empty one)."""
    if not db_file.exists():
        if not create:
            raise StoreError(f"no store at {db_file}; create a project with `activelab init`")
        return
    if not db_file.is_file():
        raise StoreError(f"{db_file} is not a file; point the project's `db:` at its SQLite store")
    try:
        with db_file.open("rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"cannot read the store {db_file}: {exc.strerror}; check its permissions") from exc
    if not header:
        if create:
            return  # an empty file is a new database to SQLite
        raise StoreError(
            f"{db_file} is empty (0 bytes), not an activelab store; restore it from a backup, "
            "or delete it and create the project again with `activelab init`"
        )
    if header != SQLITE_HEADER:
        raise StoreError(
            f"{db_file} is not a SQLite database (it lacks the SQLite header); nothing was changed. "
            "Point the project's `db:` at its store, or restore the store from a backup"
        )


def _configure_sqlite(engine: Engine) -> None:
    """Busy timeout, foreign keys, and explicit BEGIN so writers take the lock up front."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves below
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_S * 1000}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("activelab_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def open_store(url: str, *, create: bool = True) -> Store:
    """Open (and with ``create``, create or migrate) the store at a SQLAlchemy URL.

    ``sqlite:///path/to/file.db`` is the embedded default; a PostgreSQL URL
    (``postgresql+psycopg://user@host:port/db``) works the same.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise InputError(f"not a database URL: {url!r} (expected e.g. sqlite:///project.db)") from exc
    kwargs: dict[str, Any] = {}
    is_sqlite = parsed.get_backend_name() == "sqlite"
    if is_sqlite:
        if parsed.database in (None, "", ":memory:"):
            raise InputError("an in-memory SQLite store would lose everything on exit; give a file path")
        db_file = Path(parsed.database)
        _check_sqlite_file(db_file, create=create)
        db_file.parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": SQLITE_BUSY_TIMEOUT_S}
        kwargs["poolclass"] = NullPool
    try:
        engine = create_engine(parsed, **kwargs)
    except ModuleNotFoundError as exc:
        raise StoreError(
            f"the driver for {parsed.drivername} is not installed ({exc.name}); "
            "for PostgreSQL: pip install 'activelab[postgres]'"
        ) from exc
    if is_sqlite:
        _configure_sqlite(engine)
    store = Store(engine)
    try:
        _open_schema(store, create=create, wal=is_sqlite)
    except OperationalError as exc:
        engine.dispose()
        raise StoreError(f"cannot open the store at {store.url}: {exc.orig}") from exc
    except Exception:
        engine.dispose()
        raise
    return store


def _open_schema(store: Store, *, create: bool, wal: bool) -> None:
    """Check the schema in a read transaction; take the write lock only to create or upgrade it."""
    with store._read() as conn:
        if not needs_write(conn, store.url, create=create):
            return
    with store._write() as conn:  # checks again: another process may have done it meanwhile
        ensure_schema(conn, store.url, create=create)
    if wal:
        _use_wal(store.engine)
