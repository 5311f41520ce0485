"""Classes: added once, retired and restored by append-only class events, never deleted."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select

from activelab.exceptions import InputError, NotFoundError, StoreError
from activelab.store import schema as t
from activelab.store._base import StoreBase, utcnow
from activelab.store.events import Payload, latest_events

MAX_CLASS_NAME_LENGTH = 200  # the width of classes.name


class ClassesMixin(StoreBase):
    """The class list: its order is the shortcut order and the model's class index."""

    def add_classes(self, names: Iterable[str], *, author: str = "activelab") -> list[str]:
        """Add classes not yet known and restore retired ones (in the given order); return those names.

        ``author`` is recorded on the restore events.
        """
        wanted = list(dict.fromkeys(check_class_name(n) for n in names))
        with self._write() as conn:
            known = class_ids(conn)
            retired = retired_class_ids(conn)
            new = [n for n in wanted if n not in known]
            back = [n for n in wanted if n in known and known[n] in retired]
            now = utcnow()
            if new:
                conn.execute(insert(t.classes), [{"name": n, "created_at": now} for n in new])
            if back:
                conn.execute(insert(t.class_events), [class_event(known[n], "restore", author, now) for n in back])
        return [n for n in wanted if n in new or n in back]

    def class_names(self) -> list[str]:
        """Active (not retired) class names in the order they were added: the shortcut order and class index."""
        with self._read() as conn:
            retired = retired_class_ids(conn)
            rows = conn.execute(select(t.classes.c.id, t.classes.c.name).order_by(t.classes.c.id))
            return [name for cid, name in rows if cid not in retired]

    def retired_classes(self) -> list[str]:
        """Retired class names, in the order they were added."""
        with self._read() as conn:
            retired = retired_class_ids(conn)
            rows = conn.execute(select(t.classes.c.id, t.classes.c.name).order_by(t.classes.c.id))
            return [name for cid, name in rows if cid in retired]

    def retire_class(self, name: str, author: str) -> None:
        """Retire a class with no current labels: it leaves the keys and the model, and nothing is deleted.

        Raises :class:`NotFoundError` for an unknown class and :class:`StoreError`
        while any image (any split) currently carries it, as its class or in its
        annotation. Retiring a retired class does nothing.
        """
        with self._write() as conn:
            cid = class_id(conn, name)
            if cid in retired_class_ids(conn):
                return
            n_labeled = _n_current_labels(conn, cid, name)
            if n_labeled < 0:
                raise StoreError(
                    f"cannot retire {name!r}: the project's masks store class positions, which retiring a class "
                    "would shift; keep the class (an unused class costs nothing)"
                )
            if n_labeled:
                raise StoreError(
                    f"class {name!r} is the current label of {n_labeled} image(s); relabel them before retiring it"
                )
            conn.execute(insert(t.class_events), class_event(cid, "retire", author, utcnow()))

    def restore_class(self, name: str, author: str) -> None:
        """Bring a retired class back (to its old place in the class order); an active class is left as it is."""
        with self._write() as conn:
            cid = class_id(conn, name)
            if cid in retired_class_ids(conn):
                conn.execute(insert(t.class_events), class_event(cid, "restore", author, utcnow()))


def _n_current_labels(conn: Connection, cid: int, name: str) -> int:
    """How many images carry the class now: as their class, or in their annotation (counted in Python:
    JSON containment has no portable SQL); -1 when a current annotation is a mask (segmentation), whose
    pixels hold class positions that retiring any class would shift."""
    ev, latest = t.label_events, latest_events()
    joined = select(func.count()).select_from(ev).join(latest, latest.c.event_id == ev.c.id)
    as_class = int(conn.scalar(joined.where(ev.c.class_id == cid)) or 0)
    annotations = list(
        conn.scalars(
            select(ev.c.annotation).join(latest, latest.c.event_id == ev.c.id).where(ev.c.annotation.is_not(None))
        )
    )
    if any(isinstance(annotation, dict) for annotation in annotations):
        return -1
    return as_class + sum(name in annotation_classes(annotation) for annotation in annotations)


def class_id(conn: Connection, name: str) -> int:
    """The id of a class (retired or not); :class:`NotFoundError` for an unknown name."""
    cid = conn.scalar(select(t.classes.c.id).where(t.classes.c.name == name))
    if cid is None:
        raise NotFoundError(f"no class named {name!r}; add it first (`activelab classes add`)")
    return int(cid)


def class_ids(conn: Connection) -> dict[str, int]:
    """Every class name (retired ones included) -> id."""
    return {name: cid for cid, name in conn.execute(select(t.classes.c.id, t.classes.c.name))}


def retired_class_ids(conn: Connection) -> set[int]:
    """Ids of the classes whose latest class event retired them."""
    ce = t.class_events
    latest = select(func.max(ce.c.id)).group_by(ce.c.class_id)
    return set(conn.scalars(select(ce.c.class_id).where(ce.c.id.in_(latest), ce.c.action == "retire")))


def labelable_class_ids(conn: Connection, wanted: Iterable[str | None]) -> dict[str, int]:
    """Class name -> id of the active classes; raises for ``wanted`` names that are unknown or retired."""
    known = class_ids(conn)
    retired = retired_class_ids(conn)
    active = {name: cid for name, cid in known.items() if cid not in retired}
    names = {name for name in wanted if name is not None}
    unknown = sorted(names - known.keys())
    if unknown:
        raise InputError(
            f"unknown class name(s) {unknown}; known classes: {sorted(active)}. "
            "Add them with `activelab classes add` or import with --add-classes."
        )
    gone = sorted(names - active.keys())
    if gone:
        raise InputError(f"class(es) {gone} are retired; add them again (`activelab classes add`) to restore them")
    return active


def class_event(cid: int, action: str, author: str, now: datetime) -> dict[str, Any]:
    """The ``class_events`` row of a retire or restore."""
    if action not in t.CLASS_ACTIONS:
        raise InputError(f"class action must be one of {t.CLASS_ACTIONS}, got {action!r}")
    if not author:
        raise InputError("retiring or restoring a class needs an author (a user name)")
    return {"class_id": cid, "action": action, "author": author, "created_at": now}


def check_class_name(name: str) -> str:
    """The name stripped; raises for names that cannot be a class (empty, too long, control characters, commas)."""
    clean = name.strip()
    if not clean:
        raise InputError("a class name cannot be empty")
    if len(clean) > MAX_CLASS_NAME_LENGTH:
        raise InputError(f"class name {clean[:40]!r}... is {len(clean)} characters; at most {MAX_CLASS_NAME_LENGTH}")
    if any(unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp") for ch in clean):
        raise InputError(f"class name {clean!r} contains control characters or line breaks; use printable text")
    if "," in clean:
        raise InputError(f"class name {name!r} contains a comma; commas separate names in --classes")
    return clean


def resolve_payloads(
    conn: Connection, payloads: Sequence[Payload | None]
) -> list[tuple[int | None, list[Any] | dict[str, Any] | None]]:
    """Each payload as the ``(class_id, annotation)`` pair of its event; raises for unknown or retired classes.

    A class name becomes its id, a list of names the sorted list (duplicates dropped), a list of boxes
    (detection) the list as it is and a mask reference (segmentation) the dict as it is
    (:func:`stored_annotation`), None ``(None, None)``.
    """
    names: list[str] = []
    for payload in payloads:
        names.extend(_names(payload))
    active = labelable_class_ids(conn, names)
    out: list[tuple[int | None, list[Any] | dict[str, Any] | None]] = []
    for payload in payloads:
        if payload is None:
            out.append((None, None))
        elif isinstance(payload, str):
            out.append((active[payload], None))
        else:
            out.append((None, stored_annotation(payload)))
    return out


def stored_annotation(payload: Sequence[Any] | Mapping[str, Any]) -> list[Any] | dict[str, Any]:
    """The ``annotation`` column of a list or dict payload: class names sorted without duplicates
    (multi-label), boxes (dicts with a ``class``, detection) in their order, a mask reference
    (``{"mask": sha256, ...}``, segmentation) as a dict, each as the task validated it."""
    if isinstance(payload, Mapping):
        return dict(payload)
    if payload and all(isinstance(entry, dict) for entry in payload):
        return list(payload)
    return sorted(set(payload))


def annotation_classes(annotation: Sequence[Any] | Mapping[str, Any]) -> list[str]:
    """The class names a stored annotation uses: its names, or its boxes' classes (one per box); none for
    a mask reference (segmentation: its classes are pixel values in the mask file, not names)."""
    if isinstance(annotation, Mapping):
        return []
    return [entry["class"] if isinstance(entry, dict) else entry for entry in annotation]


def payload_classes(payload: object) -> list[str]:
    """The class names a payload mentions, before or after the task validated it: a class name, a list of
    names (multi-label), or the ``class`` of each box in a list of boxes (detection: one name per box, a box
    without one skipped); none for None or a missing value (NaN); another scalar (an integer label) as its text.
    A segmentation payload (a dict) names the ``class`` of each of its ``polygons`` or ``instances`` (one per
    shape); a mask (``mask``, ``mask_file``, ``png``, an array) names none: its classes are pixel values.
    """
    if payload is None or (isinstance(payload, float) and payload != payload):
        return []
    if isinstance(payload, str):
        return [payload]
    if isinstance(payload, Mapping):
        shapes = [*payload.get("polygons", ()), *payload.get("instances", ())]
        return [str(shape["class"]) for shape in shapes if isinstance(shape, Mapping) and "class" in shape]
    if hasattr(payload, "ndim"):  # a numpy mask
        return []
    if isinstance(payload, list | tuple):
        return [
            str(entry["class"]) if isinstance(entry, dict) else str(entry)
            for entry in payload
            if not isinstance(entry, dict) or "class" in entry
        ]
    return [str(payload)]


def _names(payload: object) -> list[str]:
    if payload is None:
        return []
    if isinstance(payload, str):
        return [payload]
    if isinstance(payload, Mapping) and isinstance(payload.get("mask"), str):  # a mask reference (segmentation)
        return []
    if isinstance(payload, list | tuple) and all(
        isinstance(entry, str) or (isinstance(entry, dict) and isinstance(entry.get("class"), str)) for entry in payload
    ):
        return annotation_classes(payload)
    raise InputError(
        f"an annotation must be a list of boxes, a mask reference, a class name or a list of class names, "
        f"got {payload!r}; "
        "validate it with the project's task first"
    )
