"""The project store: images, classes, append-only label events, rounds and the labeling app's state.

:class:`Store` is the one entry point (construct it with :func:`activelab.store.open_store`);
each concern lives in its own module and joins the facade as a mixin over one engine:
images, classes, annotations (label events, current labels, undo), rounds (and
predictions), labeling (leases, skips, review flags) and service state.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from activelab.store import schema as t
from activelab.store.annotations import (
    AnnotationsMixin,
    CurrentAnnotation,
    CurrentLabel,
    LabelEvent,
    UndoOutcome,
)
from activelab.store.classes import ClassesMixin, annotation_classes
from activelab.store.events import Payload, latest_events
from activelab.store.images import BatchOutcome, Image, ImageRecord, ImageRef, ImagesMixin
from activelab.store.labeling import LabelingMixin, ReviewFlag, SubmitOutcome
from activelab.store.rounds import Round, RoundsMixin, current_round
from activelab.store.service_state import ServiceStateMixin

__all__ = [
    "BatchOutcome",
    "CurrentAnnotation",
    "CurrentLabel",
    "Image",
    "ImageRecord",
    "ImageRef",
    "LabelEvent",
    "Payload",
    "ReviewFlag",
    "Round",
    "Store",
    "SubmitOutcome",
    "UndoOutcome",
]


class Store(ImagesMixin, ClassesMixin, AnnotationsMixin, RoundsMixin, LabelingMixin, ServiceStateMixin):
    """Typed access to one project database. Construct with :func:`open_store`."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def summary(self) -> dict[str, Any]:
        """Counts for ``activelab status``: images per split, labeled, per class, rounds (aggregated in SQL).

        A multi-label image counts once in ``labeled`` and once under each of its classes.
        """
        latest = latest_events()
        ev = t.label_events
        per_class_split = (
            select(t.classes.c.name, t.images.c.split, func.count())
            .select_from(ev)
            .join(latest, latest.c.event_id == ev.c.id)
            .join(t.classes, t.classes.c.id == ev.c.class_id)
            .join(t.images, t.images.c.id == ev.c.image_id)
            .group_by(t.classes.c.name, t.images.c.split)
        )
        annotated = (
            select(t.images.c.split, ev.c.annotation)
            .select_from(ev)
            .join(latest, latest.c.event_id == ev.c.id)
            .join(t.images, t.images.c.id == ev.c.image_id)
            .where(ev.c.annotation.is_not(None))
        )
        with self._read() as conn:
            rows = conn.execute(select(t.images.c.split, func.count()).group_by(t.images.c.split))
            splits: dict[str, int] = {split: int(n) for split, n in rows}
            counts = conn.execute(per_class_split).all()
            annotations = conn.execute(annotated).all()
            done = current_round(conn)
        per_class: dict[str, dict[str, int]] = {name: {s: 0 for s in t.SPLITS} for name in self.class_names()}
        labeled = {s: 0 for s in t.SPLITS}
        for name, split, n in counts:  # a retired class can carry labels again only through an undo
            per_class.setdefault(name, {s: 0 for s in t.SPLITS})[split] += int(n)
            labeled[split] += int(n)
        for split, annotation in annotations:
            labeled[split] += 1
            for name in annotation_classes(annotation):  # a multi-label image's classes, a box per box
                per_class.setdefault(name, {s: 0 for s in t.SPLITS})[split] += 1
        return {
            "images": {s: int(splits.get(s, 0)) for s in t.SPLITS},
            "labeled": labeled,
            "per_class": per_class,
            "rounds": done,
            "label_events": self.n_label_events(),
        }
