"""Labels and annotations: appending events, deriving current labels, the history, and undo.

Single-label projects use ``add_labels`` / ``current_labels`` (a class name per image);
every project can use ``add_annotations`` / ``current_annotations``, whose payload is a
class name or a list of class names. The caller (the task) validates a payload; the store
only checks that its class names exist and are not retired, and keeps lists sorted.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select

from activelab.exceptions import InputError, NotFoundError
from activelab.store import events
from activelab.store import schema as t
from activelab.store._base import StoreBase, aware, check_source, check_split, chunks, utcnow
from activelab.store.classes import class_ids, resolve_payloads
from activelab.store.events import Payload, annotation_value, latest_events, sets_a_label
from activelab.store.rounds import current_round


@dataclass(frozen=True)
class LabelEvent:
    """One row of an image's label history.

    ``label`` is the class of a single-label event, ``annotation`` the sorted class names
    of a multi-label one (boxes, detection; a mask reference, segmentation); both None = the
    label was withdrawn.
    """

    id: int
    image_id: int
    label: str | None
    author: str
    source: str
    round_number: int  # the rounds finished when the event was made (column label_events.round_index)
    note: str | None
    created_at: datetime
    annotation: list[Any] | dict[str, Any] | None = None

    @property
    def payload(self) -> Payload | None:
        """What the event set (a class name or a list of names), None for a withdrawal."""
        return self.label if self.label is not None else self.annotation


@dataclass(frozen=True)
class CurrentLabel:
    """The derived label of one image: its latest event that set or withdrew a label."""

    image_id: int
    label: str
    author: str
    source: str
    round_number: int
    created_at: datetime


@dataclass(frozen=True)
class CurrentAnnotation:
    """The derived annotation of one image: the payload of its latest event (a class name or sorted names)."""

    image_id: int
    payload: Payload
    author: str
    source: str
    round_number: int
    created_at: datetime


@dataclass(frozen=True)
class UndoOutcome:
    """What :meth:`Store.undo_last_label` did: the undone event, the restoring event, the image.

    ``restored_label`` is the class the image carries again, ``restored_annotation`` the
    class names of a multi-label one; both None when the undo left it unlabeled.
    """

    undone_event_id: int
    undo_event_id: int
    image_id: int
    restored_label: str | None
    restored_annotation: list[Any] | dict[str, Any] | None = None


class AnnotationsMixin(StoreBase):
    """Append-only label events and what is derived from them."""

    def add_label(
        self,
        image_id: int,
        label: str | None,
        *,
        author: str,
        source: str = "human",
        round_number: int | None = None,
        note: str | None = None,
    ) -> int:
        """Append one label event; ``label=None`` withdraws the label. Returns the event id."""
        return self.add_labels([(image_id, label)], author=author, source=source, round_number=round_number, note=note)[
            0
        ]

    def add_labels(
        self,
        labels: Sequence[tuple[int, str | None]],
        *,
        author: str,
        source: str = "human",
        round_number: int | None = None,
        note: str | None = None,
        created_at: Sequence[datetime] | None = None,
    ) -> list[int]:
        """Append label events for ``(image_id, class name or None)`` pairs in one transaction.

        ``created_at`` (one time per pair) keeps the times of labels made elsewhere
        (e.g. imported from Label Studio); by default every event is stamped now.
        """
        return self._append_events(labels, author, source, round_number, note, created_at)

    def add_annotations(
        self,
        items: Sequence[tuple[int, Payload | None]],
        *,
        author: str,
        source: str,
        round_number: int | None = None,
        note: str | None = None,
        created_at: Sequence[datetime] | None = None,
    ) -> list[int]:
        """Append events for ``(image_id, payload)`` pairs in one transaction; return their ids.

        A payload is a class name (stored as a single-label event), a list of class names
        (stored sorted; ``[]`` is a valid "none of these") or None (the label is withdrawn).
        ``round_number`` defaults to the rounds done so far; ``created_at`` as in :meth:`add_labels`.
        """
        return self._append_events(items, author, source, round_number, note, created_at)

    def _append_events(
        self,
        items: Sequence[tuple[int, Payload | None]],
        author: str,
        source: str,
        round_number: int | None,
        note: str | None,
        created_at: Sequence[datetime] | None,
    ) -> list[int]:
        check_source(source)
        if not author:
            raise InputError("a label event needs an author (a user name, or e.g. 'oracle')")
        if created_at is not None and len(created_at) != len(items):
            raise InputError(f"created_at has {len(created_at)} times for {len(items)} labels; give one per label")
        with self._write() as conn:
            ids = [iid for iid, _ in items]
            found: set[int] = set()
            for chunk in chunks(ids):
                found.update(conn.scalars(select(t.images.c.id).where(t.images.c.id.in_(chunk))))
            missing = sorted(set(ids) - found)
            if missing:
                raise NotFoundError(f"no image with id(s) {missing[:10]} in {self.url}")
            values = resolve_payloads(conn, [payload for _, payload in items])
            rnd = current_round(conn) if round_number is None else round_number
            times = [aware(w) for w in created_at] if created_at is not None else [utcnow()] * len(items)
            rows = [
                events.event_row(iid, cid, author, source, rnd, when, note, annotation)
                for (iid, _), (cid, annotation), when in zip(items, values, times)
            ]
            if not rows:
                return []
            return list(conn.scalars(insert(t.label_events).returning(t.label_events.c.id), rows))

    def current_labels(self, split: str | None = None) -> dict[int, CurrentLabel]:
        """Derived single-label labels: image id -> latest event, for images whose latest event sets a class."""
        latest = latest_events()
        ev = t.label_events
        query = (
            select(ev.c.image_id, t.classes.c.name, ev.c.author, ev.c.source, ev.c.round_index, ev.c.created_at)
            .join(latest, latest.c.event_id == ev.c.id)
            .join(t.classes, t.classes.c.id == ev.c.class_id)
            .order_by(ev.c.image_id)
        )
        if split is not None:
            query = query.join(t.images, t.images.c.id == ev.c.image_id).where(t.images.c.split == check_split(split))
        with self._read() as conn:
            return {
                row.image_id: CurrentLabel(
                    row.image_id, row.name, row.author, row.source, row.round_index, aware(row.created_at)
                )
                for row in conn.execute(query)
            }

    def current_annotations(self, split: str | None = None) -> dict[int, CurrentAnnotation]:
        """Derived annotations: image id -> payload of its latest event, for images whose latest event sets one.

        A single-label event's payload is its class name, a multi-label one's the sorted list of names.
        """
        latest = latest_events()
        ev = t.label_events
        query = (
            select(
                ev.c.image_id,
                t.classes.c.name,
                ev.c.annotation,
                ev.c.author,
                ev.c.source,
                ev.c.round_index,
                ev.c.created_at,
            )
            .join(latest, latest.c.event_id == ev.c.id)
            .outerjoin(t.classes, t.classes.c.id == ev.c.class_id)
            .where(sets_a_label())
            .order_by(ev.c.image_id)
        )
        if split is not None:
            query = query.join(t.images, t.images.c.id == ev.c.image_id).where(t.images.c.split == check_split(split))
        with self._read() as conn:
            return {
                row.image_id: CurrentAnnotation(
                    row.image_id,
                    row.name if row.name is not None else annotation_value(row.annotation),
                    row.author,
                    row.source,
                    row.round_index,
                    aware(row.created_at),
                )
                for row in conn.execute(query)
            }

    def label_history(self, image_id: int) -> list[LabelEvent]:
        """Every label event of one image, oldest first."""
        ev = t.label_events
        query = (
            select(ev, t.classes.c.name)
            .outerjoin(t.classes, t.classes.c.id == ev.c.class_id)
            .where(ev.c.image_id == image_id)
            .order_by(ev.c.id)
        )
        with self._read() as conn:
            return [
                LabelEvent(
                    r.id,
                    r.image_id,
                    r.name,
                    r.author,
                    r.source,
                    r.round_index,
                    r.note,
                    aware(r.created_at),
                    None if r.annotation is None else annotation_value(r.annotation),
                )
                for r in conn.execute(query)
            ]

    def labeled_image_ids(self, *, since: datetime | None = None) -> set[int]:
        """Ids of images with any label event (including ones whose label was withdrawn); with ``since``, only
        those with an event made at or after that time."""
        query = select(t.label_events.c.image_id).distinct()
        if since is not None:
            query = query.where(t.label_events.c.created_at >= since)
        with self._read() as conn:
            return set(conn.scalars(query))

    def n_label_events(self, sources: Sequence[str] | None = None) -> int:
        """How many label events there are (of the given sources only, when given)."""
        query = select(func.count()).select_from(t.label_events)
        if sources is not None:
            query = query.where(t.label_events.c.source.in_(list(sources)))
        with self._read() as conn:
            return int(conn.scalar(query) or 0)

    def labels_over_time(
        self, *, max_points: int = 200, sources: Sequence[str] = ("human", "review")
    ) -> list[tuple[datetime, int]]:
        """``(time, labels so far)`` for label events from ``sources`` that set a label, oldest first.

        Thinned in SQL to about ``max_points`` points (every n-th event, and the
        last), so the dashboard's curve costs the same for a thousand or a million labels.
        """
        ev = t.label_events
        wanted = (ev.c.source.in_(list(sources)), sets_a_label())
        numbered = (
            select(ev.c.created_at, func.row_number().over(order_by=ev.c.id).label("n")).where(*wanted).subquery()
        )
        with self._read() as conn:
            total = int(conn.scalar(select(func.count()).select_from(ev).where(*wanted)) or 0)
            if total == 0:
                return []
            step = max(1, total // max_points)
            rows = conn.execute(
                select(numbered.c.created_at, numbered.c.n)
                .where(((numbered.c.n - 1) % step == 0) | (numbered.c.n == total))
                .order_by(numbered.c.n)
            ).all()
        return [(aware(when), int(n)) for when, n in rows]

    def undo_last_label(self, author: str) -> UndoOutcome | None:
        """Undo the author's latest label event not undone yet (None when there is none).

        Append-only: a new event restores the image's label (class or annotation) from
        before the undone event (or withdraws it when there was none), and ``label_undos``
        links the two.
        """
        ev = t.label_events
        with self._write() as conn:
            undone = select(t.label_undos.c.event_id)
            undos = select(t.label_undos.c.undo_event_id)
            target = conn.execute(
                select(ev)
                .where(
                    ev.c.author == author,
                    ev.c.source.in_(("human", "review")),
                    ev.c.id.not_in(undone),
                    ev.c.id.not_in(undos),
                )
                .order_by(ev.c.id.desc())
                .limit(1)
            ).first()
            if target is None:
                return None
            before = conn.execute(
                select(ev.c.class_id, ev.c.annotation)
                .where(ev.c.image_id == target.image_id, ev.c.id < target.id)
                .order_by(ev.c.id.desc())
                .limit(1)
            ).first()
            now = utcnow()
            restored_class = None if before is None else before.class_id
            restored_annotation = (
                None if before is None or before.annotation is None else annotation_value(before.annotation)
            )
            undo_id = conn.execute(
                insert(ev).returning(ev.c.id),
                events.event_row(
                    target.image_id,
                    restored_class,
                    author,
                    target.source,
                    current_round(conn),
                    now,
                    f"undo of event {target.id}",
                    restored_annotation,
                ),
            ).scalar_one()
            conn.execute(insert(t.label_undos), {"event_id": target.id, "undo_event_id": undo_id, "created_at": now})
            names = {v: k for k, v in class_ids(conn).items()}
        restored_label = None if restored_class is None else names[restored_class]
        return UndoOutcome(target.id, undo_id, target.image_id, restored_label, restored_annotation)


def payload_of(class_name: str | None, annotation: Iterable[Any] | dict[str, Any] | None) -> Payload | None:
    """The payload an event holds, from its class name and annotation columns."""
    if class_name is not None:
        return class_name
    return None if annotation is None else annotation_value(annotation)
