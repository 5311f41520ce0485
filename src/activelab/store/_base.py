"""What every part of the store shares: the engine, its transactions, the clock and small checks.

Every public write runs in one :meth:`StoreBase._write` transaction, so a process killed
mid-write leaves either all or nothing of that write; SQLite damage surfaces as a
:class:`StoreError` naming the file.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DatabaseError

from activelab.exceptions import InputError, StoreError
from activelab.store import schema as t


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the store uses."""
    return datetime.now(timezone.utc)


def as_utc(value: datetime | None) -> datetime | None:
    """SQLite returns naive datetimes; the store hands out aware ones (UTC)."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


def aware(value: datetime) -> datetime:
    """:func:`as_utc` for a column that is never NULL."""
    return value if value.tzinfo is not None else value.replace(tzinfo=timezone.utc)


class StoreBase:
    """One SQLAlchemy engine and the transactions every part of the store runs in."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite, so writers queue)."""
        with damage_as_store_error(self.url), self.engine.connect() as conn:
            conn.execution_options(activelab_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with damage_as_store_error(self.url), self.engine.connect() as conn:
            yield conn


@contextmanager
def damage_as_store_error(url: str) -> Iterator[None]:
    """Turn SQLite's "file is not a database" / "disk image is malformed" into a StoreError naming the file.

    Only the plain ``sqlite3.DatabaseError`` means damage; its subclasses (locked,
    constraint violations, ...) pass through unchanged.
    """
    try:
        yield
    except DatabaseError as exc:
        if type(exc.orig) is not sqlite3.DatabaseError:
            raise
        raise StoreError(
            f"{url} is damaged or not a SQLite database ({exc.orig}); "
            "restore it from a backup, or point the project's `db:` at the right file"
        ) from exc


def check_split(split: str) -> str:
    if split not in t.SPLITS:
        raise InputError(f"split must be one of {t.SPLITS}, got {split!r}")
    return split


def check_source(source: str) -> None:
    if source not in t.LABEL_SOURCES:
        raise InputError(f"label source must be one of {t.LABEL_SOURCES}, got {source!r}")


def chunks(items: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
    """``items`` in slices of ``size``: SQL ``IN (...)`` lists stay under the drivers' parameter limits."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
