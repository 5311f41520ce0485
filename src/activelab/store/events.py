"""Label events, the append-only rows every label, annotation, correction and undo is written as.

An event sets a class (``class_id``, single-label), sets an annotation (``annotation``: a
sorted list of class names, multi-label, schema v4; a list of boxes, detection; a mask
reference ``{"mask": sha256, ...}``, segmentation), or withdraws the label (both NULL).
The current label of an image is its latest event; these helpers derive it in SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, Subquery, func, select

from activelab.store import schema as t
from activelab.store._base import chunks

#: What a label event holds: a class name (single-label), a sorted list of class names (multi-label), a list
#: of boxes (detection) or a mask reference (segmentation: ``{"mask": sha256, "width", "height", "labeled"}``).
Payload = str | list[Any] | dict[str, Any]


def event_row(
    image_id: int,
    class_id: int | None,
    author: str,
    source: str,
    round_number: int,
    now: datetime,
    note: str | None = None,
    annotation: list[Any] | dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``label_events`` row of one event."""
    return {
        "image_id": image_id,
        "class_id": class_id,
        "annotation": annotation,
        "author": author,
        "source": source,
        "round_index": round_number,  # the column keeps its v1 name
        "note": note,
        "created_at": now,
    }


def sets_a_label() -> ColumnElement[bool]:
    """SQL: the event sets a class or an annotation (it does not withdraw the label)."""
    ev = t.label_events
    return ev.c.class_id.is_not(None) | ev.c.annotation.is_not(None)


def latest_events() -> Subquery:
    """Subquery: id (``event_id``) of the latest label event of each image (``image_id``)."""
    ev = t.label_events
    return select(ev.c.image_id, func.max(ev.c.id).label("event_id")).group_by(ev.c.image_id).subquery()


def annotation_value(annotation: Any) -> list[Any] | dict[str, Any]:
    """A stored ``annotation`` as a fresh payload: a list (class names, boxes) or a dict (a mask reference)."""
    return dict(annotation) if isinstance(annotation, dict) else list(annotation)


def current_values(conn: Connection, image_ids: Sequence[int]) -> dict[int, int | list[Any] | dict[str, Any]]:
    """Image id -> class id or annotation of its latest event, for the given images that carry a label now."""
    ev, latest = t.label_events, latest_events()
    out: dict[int, int | list[Any] | dict[str, Any]] = {}
    for chunk in chunks(list(image_ids)):
        rows = conn.execute(
            select(ev.c.image_id, ev.c.class_id, ev.c.annotation)
            .join(latest, latest.c.event_id == ev.c.id)
            .where(ev.c.image_id.in_(chunk), sets_a_label())
        )
        out.update({iid: cid if cid is not None else annotation_value(ann) for iid, cid, ann in rows})
    return out
