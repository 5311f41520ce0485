"""Small persistent state of long-running services (the background trainer's status), as JSON."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, insert, select

from activelab.store import schema as t
from activelab.store._base import StoreBase, utcnow


class ServiceStateMixin(StoreBase):
    """One JSON document per key, replaced whole: a restarted service reads back what it last wrote."""

    def set_service_state(self, key: str, value: dict[str, Any]) -> None:
        """Persist a service's state (JSON) under ``key``, replacing what was there."""
        with self._write() as conn:
            conn.execute(delete(t.service_state).where(t.service_state.c.key == key))
            conn.execute(insert(t.service_state), {"key": key, "value": value, "updated_at": utcnow()})

    def service_state(self, key: str) -> dict[str, Any] | None:
        """The state last saved under ``key``, or None."""
        with self._read() as conn:
            value = conn.scalar(select(t.service_state.c.value).where(t.service_state.c.key == key))
        return None if value is None else dict(value)
