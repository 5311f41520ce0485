"""The project store: images, classes, append-only label events and rounds.

One :class:`Store` wraps one SQLAlchemy engine. Every public write runs in one
transaction, so a process killed mid-write leaves either all or nothing of that
write. Label events are only ever inserted; the current label is derived.
"""

from __future__ import annotations

import sqlite3
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, delete, func, insert, select, update
from sqlalchemy.exc import DatabaseError

from activelab.exceptions import InputError, NotFoundError, StoreError
from activelab.store import schema as t

ROUND_STATUSES = ("running", "done", "failed")
MAX_CLASS_NAME_LENGTH = 200  # the width of classes.name


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the store uses."""
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class ImageRecord:
    """An image to add: its content hash and metadata, optionally a label."""

    sha256: str
    path: str
    width: int
    height: int
    n_bytes: int
    split: str = "pool"
    label: str | None = None
    format: str | None = None  # the Pillow format detected at import, e.g. "PNG"


@dataclass(frozen=True)
class Image:
    """An image as stored."""

    id: int
    sha256: str
    path: str
    width: int
    height: int
    n_bytes: int
    split: str
    added_at: datetime
    format: str | None  # None for images imported before schema version 3


class ImageRef(NamedTuple):
    """The three fields a round needs of each image, cheap to fetch for a whole pool."""

    id: int
    path: str
    sha256: str


@dataclass(frozen=True)
class LabelEvent:
    """One row of an image's label history (``label`` None = label withdrawn)."""

    id: int
    image_id: int
    label: str | None
    author: str
    source: str
    round_index: int
    note: str | None
    created_at: datetime


@dataclass(frozen=True)
class CurrentLabel:
    """The derived label of one image: its latest event that set or withdrew a label."""

    image_id: int
    label: str
    author: str
    source: str
    round_index: int
    created_at: datetime


@dataclass(frozen=True)
class Round:
    """One active-learning round as recorded by the loop."""

    number: int
    strategy: str
    model: str
    config: dict[str, Any]
    status: str
    n_labeled: int
    metrics: dict[str, Any] | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class SubmitOutcome:
    """What :meth:`Store.submit_label` did: the event id, and whether it was flagged / held out."""

    event_id: int
    flagged: bool
    held_out: bool


@dataclass(frozen=True)
class UndoOutcome:
    """What :meth:`Store.undo_last_label` did: the undone event, the restoring event, the image."""

    undone_event_id: int
    undo_event_id: int
    image_id: int
    restored_label: str | None


@dataclass(frozen=True)
class ReviewFlag:
    """An image flagged for review (``reason`` e.g. ``disagreement``; ``details`` as JSON)."""

    id: int
    image_id: int
    reason: str
    details: dict[str, Any]
    created_at: datetime
    resolved_at: datetime | None
    resolved_by: str | None


@dataclass
class BatchOutcome:
    """What :meth:`Store.add_images` did with each record, in input order.

    ``status[i]`` is ``added``, ``duplicate`` (same content already stored),
    ``labeled`` (already stored without a label; the label was added) or
    ``label_conflict`` (stored image already carries a different label; nothing
    changed: record a correction instead). ``existing_path[i]`` names the stored
    copy for duplicates and conflicts.
    """

    status: list[str] = field(default_factory=list)
    image_id: list[int] = field(default_factory=list)
    existing_path: list[str | None] = field(default_factory=list)
    labels_added: int = 0


def _as_utc(value: datetime | None) -> datetime | None:
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=timezone.utc)


class Store:
    """Typed access to one project database. Construct with :func:`open_store`."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """One write transaction (``BEGIN IMMEDIATE`` on SQLite, so writers queue)."""
        with _damage_as_store_error(self.url), self.engine.connect() as conn:
            conn.execution_options(activelab_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with _damage_as_store_error(self.url), self.engine.connect() as conn:
            yield conn

    # ----------------------------------------------------------------- classes
    def add_classes(self, names: Iterable[str], *, author: str = "activelab") -> list[str]:
        """Add classes not yet known and restore retired ones (in the given order); return those names.

        ``author`` is recorded on the restore events.
        """
        wanted = list(dict.fromkeys(_check_class_name(n) for n in names))
        with self._write() as conn:
            known = self._class_ids(conn)
            retired = self._retired_class_ids(conn)
            new = [n for n in wanted if n not in known]
            back = [n for n in wanted if n in known and known[n] in retired]
            now = utcnow()
            if new:
                conn.execute(insert(t.classes), [{"name": n, "created_at": now} for n in new])
            if back:
                conn.execute(insert(t.class_events), [_class_event(known[n], "restore", author, now) for n in back])
        return [n for n in wanted if n in new or n in back]

    def class_names(self) -> list[str]:
        """Active (not retired) class names in the order they were added: the shortcut order and class index."""
        with self._read() as conn:
            retired = self._retired_class_ids(conn)
            rows = conn.execute(select(t.classes.c.id, t.classes.c.name).order_by(t.classes.c.id))
            return [name for cid, name in rows if cid not in retired]

    def retired_classes(self) -> list[str]:
        """Retired class names, in the order they were added."""
        with self._read() as conn:
            retired = self._retired_class_ids(conn)
            rows = conn.execute(select(t.classes.c.id, t.classes.c.name).order_by(t.classes.c.id))
            return [name for cid, name in rows if cid in retired]

    def retire_class(self, name: str, author: str) -> None:
        """Retire a class with no current labels: it leaves the keys and the model, and nothing is deleted.

        Raises :class:`NotFoundError` for an unknown class and :class:`StoreError`
        while any image (any split) currently carries it. Retiring a retired class does nothing.
        """
        with self._write() as conn:
            cid = self._class_id(conn, name)
            if cid in self._retired_class_ids(conn):
                return
            ev, latest = t.label_events, self._latest_events()
            n_labeled = int(
                conn.scalar(
                    select(func.count())
                    .select_from(ev)
                    .join(latest, latest.c.event_id == ev.c.id)
                    .where(ev.c.class_id == cid)
                )
                or 0
            )
            if n_labeled:
                raise StoreError(
                    f"class {name!r} is the current label of {n_labeled} image(s); relabel them before retiring it"
                )
            conn.execute(insert(t.class_events), _class_event(cid, "retire", author, utcnow()))

    def restore_class(self, name: str, author: str) -> None:
        """Bring a retired class back (to its old place in the class order); an active class is left as it is."""
        with self._write() as conn:
            cid = self._class_id(conn, name)
            if cid in self._retired_class_ids(conn):
                conn.execute(insert(t.class_events), _class_event(cid, "restore", author, utcnow()))

    def _class_id(self, conn: Connection, name: str) -> int:
        cid = conn.scalar(select(t.classes.c.id).where(t.classes.c.name == name))
        if cid is None:
            raise NotFoundError(f"no class named {name!r}; add it first (`activelab classes add`)")
        return int(cid)

    def _class_ids(self, conn: Connection) -> dict[str, int]:
        """Every class name (retired ones included) -> id."""
        return {name: cid for cid, name in conn.execute(select(t.classes.c.id, t.classes.c.name))}

    def _retired_class_ids(self, conn: Connection) -> set[int]:
        """Ids of the classes whose latest class event retired them."""
        ce = t.class_events
        latest = select(func.max(ce.c.id)).group_by(ce.c.class_id)
        return set(conn.scalars(select(ce.c.class_id).where(ce.c.id.in_(latest), ce.c.action == "retire")))

    def _labelable_class_ids(self, conn: Connection, wanted: Iterable[str | None]) -> dict[str, int]:
        """Class name -> id of the active classes; raises for ``wanted`` names that are unknown or retired."""
        class_ids = self._class_ids(conn)
        retired = self._retired_class_ids(conn)
        active = {name: cid for name, cid in class_ids.items() if cid not in retired}
        names = {name for name in wanted if name is not None}
        unknown = sorted(names - class_ids.keys())
        if unknown:
            raise InputError(
                f"unknown class name(s) {unknown}; known classes: {sorted(active)}. "
                "Add them with `activelab classes add` or import with --add-classes."
            )
        gone = sorted(names - active.keys())
        if gone:
            raise InputError(f"class(es) {gone} are retired; add them again (`activelab classes add`) to restore them")
        return active

    # ------------------------------------------------------------------ images
    def add_images(
        self,
        records: Sequence[ImageRecord],
        *,
        author: str,
        source: str = "import",
        round_index: int | None = None,
    ) -> BatchOutcome:
        """Add images (and their labels as events) in one transaction.

        Content already stored is not added again. A record whose image is
        stored without a label gets its label as a new event; one whose image
        is stored with a different label is reported as ``label_conflict``.
        Unknown class names raise :class:`InputError` before anything is written.
        """
        _check_source(source)
        for rec in records:
            if rec.split not in t.SPLITS:
                raise InputError(f"split must be one of {t.SPLITS}, got {rec.split!r} for {rec.path}")
        outcome = BatchOutcome()
        if not records:
            return outcome
        with self._write() as conn:
            class_ids = self._labelable_class_ids(conn, (r.label for r in records))
            rnd = self._round_index(conn) if round_index is None else round_index
            hashes = list({r.sha256 for r in records})
            existing: dict[str, tuple[int, str]] = {}
            for chunk in _chunks(hashes, 500):
                rows = conn.execute(
                    select(t.images.c.sha256, t.images.c.id, t.images.c.path).where(t.images.c.sha256.in_(chunk))
                )
                existing.update({sha: (iid, path) for sha, iid, path in rows})
            current = self._current_class_ids(conn, [iid for iid, _ in existing.values()])
            now = utcnow()
            events: list[dict[str, Any]] = []
            for rec in records:
                if rec.sha256 in existing:
                    iid, path = existing[rec.sha256]
                    status = "duplicate"
                    if rec.label is not None:
                        want = class_ids[rec.label]
                        have = current.get(iid)
                        if have is None:
                            events.append(_event(iid, want, author, source, rnd, now))
                            current[iid] = want
                            status = "labeled"
                        elif have != want:
                            status = "label_conflict"
                    outcome.status.append(status)
                    outcome.image_id.append(iid)
                    outcome.existing_path.append(path)
                    continue
                iid = conn.execute(
                    insert(t.images).returning(t.images.c.id),
                    {
                        "sha256": rec.sha256,
                        "path": rec.path,
                        "width": rec.width,
                        "height": rec.height,
                        "n_bytes": rec.n_bytes,
                        "split": rec.split,
                        "added_at": now,
                        "format": rec.format,
                    },
                ).scalar_one()
                existing[rec.sha256] = (iid, rec.path)
                if rec.label is not None:
                    events.append(_event(iid, class_ids[rec.label], author, source, rnd, now))
                    current[iid] = class_ids[rec.label]
                outcome.status.append("added")
                outcome.image_id.append(iid)
                outcome.existing_path.append(None)
            if events:
                conn.execute(insert(t.label_events), events)
            outcome.labels_added = len(events)
        return outcome

    def images(self, split: str | None = None) -> list[Image]:
        """All images (of one split when given), ordered by id."""
        query = select(t.images).order_by(t.images.c.id)
        if split is not None:
            query = query.where(t.images.c.split == _check_split(split))
        with self._read() as conn:
            return [_image(row) for row in conn.execute(query)]

    def iter_images(self, split: str | None = None, *, batch_size: int = 10_000) -> Iterator[list[Image]]:
        """All images (of one split when given) in id order, ``batch_size`` at a time.

        Keyset-paged (``id > last``), so memory stays flat however large the store.
        """
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        last = 0
        while True:
            query = select(t.images).where(t.images.c.id > last).order_by(t.images.c.id).limit(batch_size)
            if split is not None:
                query = query.where(t.images.c.split == _check_split(split))
            with self._read() as conn:
                page = [_image(row) for row in conn.execute(query)]
            if not page:
                return
            yield page
            last = page[-1].id

    def images_fingerprint(self) -> tuple[int, int]:
        """``(number of images, largest id)``: changes whenever an image is added.

        Images are never deleted and ids only grow, so equal fingerprints mean the same image set.
        """
        with self._read() as conn:
            row = conn.execute(select(func.count(), func.max(t.images.c.id)).select_from(t.images)).one()
        return int(row[0] or 0), int(row[1] or 0)

    def image_refs(self, split: str | None = None) -> list[ImageRef]:
        """``(id, path, sha256)`` of every image (of one split), ordered by id: the loop's pool view."""
        query = select(t.images.c.id, t.images.c.path, t.images.c.sha256).order_by(t.images.c.id)
        if split is not None:
            query = query.where(t.images.c.split == _check_split(split))
        with self._read() as conn:
            return [ImageRef(*row) for row in conn.execute(query)]

    def get_image(self, image_id: int) -> Image:
        with self._read() as conn:
            row = conn.execute(select(t.images).where(t.images.c.id == image_id)).first()
        if row is None:
            raise NotFoundError(f"no image with id {image_id} in {self.url}")
        return _image(row)

    def find_image(self, sha256: str) -> Image | None:
        with self._read() as conn:
            row = conn.execute(select(t.images).where(t.images.c.sha256 == sha256)).first()
        return None if row is None else _image(row)

    def known_hashes(self) -> set[str]:
        with self._read() as conn:
            return set(conn.scalars(select(t.images.c.sha256)))

    # ------------------------------------------------------------------ labels
    def add_label(
        self,
        image_id: int,
        label: str | None,
        *,
        author: str,
        source: str = "human",
        round_index: int | None = None,
        note: str | None = None,
    ) -> int:
        """Append one label event; ``label=None`` withdraws the label. Returns the event id."""
        return self.add_labels([(image_id, label)], author=author, source=source, round_index=round_index, note=note)[0]

    def add_labels(
        self,
        labels: Sequence[tuple[int, str | None]],
        *,
        author: str,
        source: str = "human",
        round_index: int | None = None,
        note: str | None = None,
        created_at: Sequence[datetime] | None = None,
    ) -> list[int]:
        """Append label events for ``(image_id, class name or None)`` pairs in one transaction.

        ``created_at`` (one time per pair) keeps the times of labels made elsewhere
        (e.g. imported from Label Studio); by default every event is stamped now.
        """
        _check_source(source)
        if not author:
            raise InputError("a label event needs an author (a user name, or e.g. 'oracle')")
        if created_at is not None and len(created_at) != len(labels):
            raise InputError(f"created_at has {len(created_at)} times for {len(labels)} labels; give one per label")
        with self._write() as conn:
            ids = [iid for iid, _ in labels]
            found: set[int] = set()
            for chunk in _chunks(ids, 500):
                found.update(conn.scalars(select(t.images.c.id).where(t.images.c.id.in_(chunk))))
            missing = sorted(set(ids) - found)
            if missing:
                raise NotFoundError(f"no image with id(s) {missing[:10]} in {self.url}")
            class_ids = self._labelable_class_ids(conn, (name for _, name in labels))
            rnd = self._round_index(conn) if round_index is None else round_index
            times = (
                [w if w.tzinfo else w.replace(tzinfo=timezone.utc) for w in created_at]
                if created_at is not None
                else [utcnow()] * len(labels)
            )
            rows = [
                _event(iid, None if name is None else class_ids[name], author, source, rnd, when, note)
                for (iid, name), when in zip(labels, times)
            ]
            if not rows:
                return []
            return list(conn.scalars(insert(t.label_events).returning(t.label_events.c.id), rows))

    def _latest_events(self) -> Any:
        """Subquery: id of the latest label event of each image."""
        return (
            select(t.label_events.c.image_id, func.max(t.label_events.c.id).label("event_id"))
            .group_by(t.label_events.c.image_id)
            .subquery()
        )

    def _current_class_ids(self, conn: Connection, image_ids: Sequence[int]) -> dict[int, int]:
        out: dict[int, int] = {}
        latest = self._latest_events()
        for chunk in _chunks(list(image_ids), 500):
            rows = conn.execute(
                select(t.label_events.c.image_id, t.label_events.c.class_id)
                .join(latest, latest.c.event_id == t.label_events.c.id)
                .where(t.label_events.c.image_id.in_(chunk))
            )
            out.update({iid: cid for iid, cid in rows if cid is not None})
        return out

    def current_labels(self, split: str | None = None) -> dict[int, CurrentLabel]:
        """Derived labels: image id -> latest event, for images whose latest event sets a class."""
        latest = self._latest_events()
        ev = t.label_events
        query = (
            select(ev.c.image_id, t.classes.c.name, ev.c.author, ev.c.source, ev.c.round_index, ev.c.created_at)
            .join(latest, latest.c.event_id == ev.c.id)
            .join(t.classes, t.classes.c.id == ev.c.class_id)
            .order_by(ev.c.image_id)
        )
        if split is not None:
            query = query.join(t.images, t.images.c.id == ev.c.image_id).where(t.images.c.split == _check_split(split))
        with self._read() as conn:
            return {
                row.image_id: CurrentLabel(
                    row.image_id,
                    row.name,
                    row.author,
                    row.source,
                    row.round_index,
                    _as_utc(row.created_at),  # type: ignore[arg-type]
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
                    _as_utc(r.created_at),  # type: ignore[arg-type]
                )
                for r in conn.execute(query)
            ]

    def labeled_image_ids(self) -> set[int]:
        """Ids of images with any label event (including ones whose label was withdrawn)."""
        with self._read() as conn:
            return set(conn.scalars(select(t.label_events.c.image_id).distinct()))

    def n_label_events(self, sources: Sequence[str] | None = None) -> int:
        """How many label events there are (of the given sources only, when given)."""
        query = select(func.count()).select_from(t.label_events)
        if sources is not None:
            query = query.where(t.label_events.c.source.in_(list(sources)))
        with self._read() as conn:
            return int(conn.scalar(query) or 0)

    # ------------------------------------------------------------------ rounds
    def _round_index(self, conn: Connection) -> int:
        """The round new labels belong to: the number of rounds finished so far."""
        done = conn.scalar(select(func.count()).select_from(t.rounds).where(t.rounds.c.status == "done"))
        return int(done or 0)

    def round_index(self) -> int:
        with self._read() as conn:
            return self._round_index(conn)

    def start_round(self, *, strategy: str, model: str, config: dict[str, Any], n_labeled: int) -> int:
        """Record a new running round and return its number (1-based)."""
        with self._write() as conn:
            number = int(conn.scalar(select(func.coalesce(func.max(t.rounds.c.number), 0))) or 0) + 1
            conn.execute(
                insert(t.rounds),
                {
                    "number": number,
                    "strategy": strategy,
                    "model": model,
                    "config": config,
                    "status": "running",
                    "n_labeled": n_labeled,
                    "started_at": utcnow(),
                },
            )
        return number

    def finish_round(
        self,
        number: int,
        *,
        metrics: dict[str, Any],
        selection: Sequence[tuple[int, float | None]],
        predictions: Sequence[tuple[int, str, float]] = (),
    ) -> None:
        """Mark a round done with its metrics, ranked selection ``(image_id, score)`` and the
        model's ``(image_id, class name, confidence)`` predictions (the labeler's hints), atomically."""
        with self._write() as conn:
            row = conn.execute(select(t.rounds.c.id, t.rounds.c.status).where(t.rounds.c.number == number)).first()
            if row is None:
                raise NotFoundError(f"no round {number} in {self.url}")
            if row.status != "running":
                raise StoreError(f"round {number} is already {row.status}; start a new round instead")
            conn.execute(
                update(t.rounds)
                .where(t.rounds.c.id == row.id)
                .values(status="done", metrics=metrics, finished_at=utcnow())
            )
            if selection:
                conn.execute(
                    insert(t.round_selections),
                    [
                        {"round_id": row.id, "image_id": iid, "rank": rank, "score": score}
                        for rank, (iid, score) in enumerate(selection)
                    ],
                )
            self._insert_predictions(conn, number, predictions)

    def fail_round(self, number: int, error: str) -> None:
        """Mark a running round failed (e.g. found half-done after a crash)."""
        with self._write() as conn:
            conn.execute(
                update(t.rounds)
                .where(t.rounds.c.number == number, t.rounds.c.status == "running")
                .values(status="failed", metrics={"error": error}, finished_at=utcnow())
            )

    def rounds(self) -> list[Round]:
        with self._read() as conn:
            rows = conn.execute(select(t.rounds).order_by(t.rounds.c.number))
            return [
                Round(
                    r.number,
                    r.strategy,
                    r.model,
                    dict(r.config),
                    r.status,
                    r.n_labeled,
                    None if r.metrics is None else dict(r.metrics),
                    _as_utc(r.started_at),  # type: ignore[arg-type]
                    _as_utc(r.finished_at),
                )
                for r in rows
            ]

    def round_selection(self, number: int) -> list[tuple[int, float | None]]:
        """The ranked ``(image_id, score)`` selection of a finished round, best first."""
        sel = t.round_selections
        query = (
            select(sel.c.image_id, sel.c.score)
            .join(t.rounds, t.rounds.c.id == sel.c.round_id)
            .where(t.rounds.c.number == number)
            .order_by(sel.c.rank)
        )
        with self._read() as conn:
            return [(r.image_id, r.score) for r in conn.execute(query)]

    # ------------------------------------------------------------------ status
    def summary(self) -> dict[str, Any]:
        """Counts for ``activelab status``: images per split, labeled, per class, rounds (aggregated in SQL)."""
        latest = self._latest_events()
        ev = t.label_events
        per_class_split = (
            select(t.classes.c.name, t.images.c.split, func.count())
            .select_from(ev)
            .join(latest, latest.c.event_id == ev.c.id)
            .join(t.classes, t.classes.c.id == ev.c.class_id)
            .join(t.images, t.images.c.id == ev.c.image_id)
            .group_by(t.classes.c.name, t.images.c.split)
        )
        with self._read() as conn:
            rows = conn.execute(select(t.images.c.split, func.count()).group_by(t.images.c.split))
            splits: dict[str, int] = {split: int(n) for split, n in rows}
            counts = conn.execute(per_class_split).all()
            done = conn.scalar(select(func.count()).select_from(t.rounds).where(t.rounds.c.status == "done"))
        per_class: dict[str, dict[str, int]] = {name: {s: 0 for s in t.SPLITS} for name in self.class_names()}
        labeled = {s: 0 for s in t.SPLITS}
        for name, split, n in counts:  # a retired class can carry labels again only through an undo
            per_class.setdefault(name, {s: 0 for s in t.SPLITS})[split] = int(n)
            labeled[split] += int(n)
        return {
            "images": {s: int(splits.get(s, 0)) for s in t.SPLITS},
            "labeled": labeled,
            "per_class": per_class,
            "rounds": int(done or 0),
            "label_events": self.n_label_events(),
        }

    # ------------------------------------------------- labeling app (schema v2)
    def submit_label(
        self,
        image_id: int,
        label: str | None,
        *,
        author: str,
        source: str = "human",
        note: str | None = None,
        hold_out: bool = False,
    ) -> SubmitOutcome:
        """Record one labeler's answer in one transaction and return what happened.

        Appends the label event (``label=None``: "not sure", the label is withdrawn),
        releases the author's lease on the image, moves a ``pool`` image to the
        ``eval`` split when ``hold_out`` (the held-out evaluation rule of the app),
        flags a disagreement for review when the image's current label came from
        another person and differs, and resolves open review flags when
        ``source="review"``.
        """
        _check_source(source)
        if not author:
            raise InputError("a label event needs an author (a user name)")
        with self._write() as conn:
            row = conn.execute(select(t.images.c.id, t.images.c.split).where(t.images.c.id == image_id)).first()
            if row is None:
                raise NotFoundError(f"no image with id {image_id} in {self.url}")
            class_ids = self._labelable_class_ids(conn, [label])
            ev = t.label_events
            prev = conn.execute(
                select(ev.c.id, ev.c.class_id, ev.c.author, ev.c.source)
                .where(ev.c.image_id == image_id)
                .order_by(ev.c.id.desc())
                .limit(1)
            ).first()
            now = utcnow()
            cid = None if label is None else class_ids[label]
            event_id = conn.execute(
                insert(ev).returning(ev.c.id),
                _event(image_id, cid, author, source, self._round_index(conn), now, note),
            ).scalar_one()
            conn.execute(delete(t.leases).where(t.leases.c.image_id == image_id, t.leases.c.holder == author))
            held_out = False
            if hold_out and row.split == "pool":
                conn.execute(update(t.images).where(t.images.c.id == image_id).values(split="eval"))
                held_out = True
            flagged = False
            if (
                source == "human"
                and cid is not None
                and prev is not None
                and prev.class_id is not None
                and prev.class_id != cid
                and prev.author != author
                and prev.source in ("human", "review", "correction")
            ):
                names = {v: k for k, v in self._class_ids(conn).items()}
                conn.execute(
                    insert(t.review_flags),
                    {
                        "image_id": image_id,
                        "reason": "disagreement",
                        "details": {
                            "labels": {prev.author: names[prev.class_id], author: label},
                            "events": [prev.id, event_id],
                        },
                        "created_at": now,
                    },
                )
                flagged = True
            if source == "review":
                conn.execute(
                    update(t.review_flags)
                    .where(t.review_flags.c.image_id == image_id, t.review_flags.c.resolved_at.is_(None))
                    .values(resolved_at=now, resolved_by=author)
                )
        return SubmitOutcome(event_id, flagged, held_out)

    def undo_last_label(self, author: str) -> UndoOutcome | None:
        """Undo the author's latest label event not undone yet (None when there is none).

        Append-only: a new event restores the image's label from before the undone
        event (or withdraws it when there was none), and ``label_undos`` links the two.
        The image is leased to the author again for ``lease_seconds`` of the old lease,
        so it comes back to them first.
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
                select(ev.c.class_id)
                .where(ev.c.image_id == target.image_id, ev.c.id < target.id)
                .order_by(ev.c.id.desc())
                .limit(1)
            ).first()
            now = utcnow()
            restored = None if before is None else before.class_id
            undo_id = conn.execute(
                insert(ev).returning(ev.c.id),
                _event(
                    target.image_id,
                    restored,
                    author,
                    target.source,
                    self._round_index(conn),
                    now,
                    f"undo of event {target.id}",
                ),
            ).scalar_one()
            conn.execute(insert(t.label_undos), {"event_id": target.id, "undo_event_id": undo_id, "created_at": now})
            names = {v: k for k, v in self._class_ids(conn).items()}
        return UndoOutcome(target.id, undo_id, target.image_id, None if restored is None else names[restored])

    def lease_next(
        self,
        holder: str,
        n: int,
        *,
        ttl_seconds: float,
        preferred: Sequence[int] = (),
        exclude: Sequence[int] = (),
        split: str = "pool",
    ) -> list[int]:
        """Lease up to ``n`` images to ``holder`` for ``ttl_seconds``, in one transaction.

        Order: images an undo gave back to ``holder``, then ``preferred`` (the
        active-learning queue, best first), then images still leased to ``holder``
        without a label, then the rest of ``split`` by id. Never returned: images with
        any label event (except those an undo gave back), with a live lease of someone
        else, or skipped by ``holder``. ``exclude`` are images the caller already
        holds: neither returned nor released; the holder's other leases not chosen
        again are released. Expired leases are dropped first.
        """
        if n <= 0:
            return []
        ls, ev = t.leases, t.label_events
        with self._write() as conn:
            now = utcnow()
            conn.execute(delete(ls).where(ls.c.expires_at <= now))
            leased = dict(conn.execute(select(ls.c.image_id, ls.c.holder)).all())
            skipped = set(conn.scalars(select(t.skips.c.image_id).where(t.skips.c.author == holder)))
            mine = sorted(iid for iid, h in leased.items() if h == holder)
            current = self._current_class_ids(conn, mine)
            excluded = set(exclude)
            touched_mine: set[int] = set()
            for chunk in _chunks(mine, 500):
                touched_mine.update(conn.scalars(select(ev.c.image_id).where(ev.c.image_id.in_(chunk)).distinct()))
            mine_open = [i for i in mine if i not in current and i not in skipped and i not in excluded]
            # 1. images given back to the holder (an undo): no other way brings them back
            chosen: list[int] = [i for i in mine_open if i in touched_mine][:n]
            taken = set(chosen) | excluded
            others = {i for i, h in leased.items() if h != holder}

            def free(ids: Sequence[int]) -> list[int]:
                ids = [i for i in ids if i not in taken and i not in others and i not in skipped]
                touched: set[int] = set()
                for chunk in _chunks(ids, 500):
                    touched.update(conn.scalars(select(ev.c.image_id).where(ev.c.image_id.in_(chunk)).distinct()))
                return [i for i in ids if i not in touched]

            # 2. the active-learning queue, then 3. the holder's other open leases, then 4. the rest
            for iid in free(list(dict.fromkeys(preferred))) + free(mine_open):
                if len(chosen) >= n:
                    break
                if iid not in taken:
                    chosen.append(iid)
                    taken.add(iid)
            if len(chosen) < n:
                rest = (
                    select(t.images.c.id)
                    .where(
                        t.images.c.split == _check_split(split),
                        ~select(ev.c.id).where(ev.c.image_id == t.images.c.id).exists(),
                        ~select(ls.c.image_id).where(ls.c.image_id == t.images.c.id).exists(),
                        ~select(t.skips.c.image_id)
                        .where(t.skips.c.image_id == t.images.c.id, t.skips.c.author == holder)
                        .exists(),
                    )
                    .order_by(t.images.c.id)
                    .limit(n - len(chosen) + len(taken))
                )
                for iid in conn.scalars(rest):
                    if len(chosen) >= n:
                        break
                    if iid not in taken:
                        chosen.append(iid)
                        taken.add(iid)
            expires = now + timedelta(seconds=ttl_seconds)
            # the holder now holds exactly ``exclude`` + ``chosen``: release the rest of their leases
            conn.execute(delete(ls).where(ls.c.holder == holder, ls.c.image_id.not_in(list(excluded))))
            conn.execute(delete(ls).where(ls.c.image_id.in_(chosen)))
            if excluded:  # the images the caller holds stay theirs while they keep asking
                conn.execute(
                    update(ls)
                    .where(ls.c.holder == holder, ls.c.image_id.in_(list(excluded)))
                    .values(expires_at=expires)
                )
            if chosen:
                conn.execute(insert(ls), [{"image_id": i, "holder": holder, "expires_at": expires} for i in chosen])
        return chosen

    def lease_image(self, image_id: int, holder: str, *, ttl_seconds: float) -> None:
        """(Re-)lease one image to ``holder`` (e.g. the image an undo brought back)."""
        with self._write() as conn:
            conn.execute(delete(t.leases).where(t.leases.c.image_id == image_id))
            conn.execute(
                insert(t.leases),
                {"image_id": image_id, "holder": holder, "expires_at": utcnow() + timedelta(seconds=ttl_seconds)},
            )

    def live_leases(self) -> dict[int, str]:
        """Image id -> holder of every unexpired lease."""
        with self._read() as conn:
            rows = conn.execute(select(t.leases.c.image_id, t.leases.c.holder).where(t.leases.c.expires_at > utcnow()))
            return dict(rows.all())

    def skip_image(self, image_id: int, author: str) -> None:
        """``author`` skips an image: their lease is released and it is not shown to them again."""
        with self._write() as conn:
            if conn.scalar(select(t.images.c.id).where(t.images.c.id == image_id)) is None:
                raise NotFoundError(f"no image with id {image_id} in {self.url}")
            conn.execute(delete(t.leases).where(t.leases.c.image_id == image_id, t.leases.c.holder == author))
            if (
                conn.scalar(
                    select(t.skips.c.image_id).where(t.skips.c.image_id == image_id, t.skips.c.author == author)
                )
                is None
            ):
                conn.execute(insert(t.skips), {"image_id": image_id, "author": author, "created_at": utcnow()})

    def skipped_ids(self, author: str) -> set[int]:
        """Ids of the images ``author`` skipped (never shown to them again)."""
        with self._read() as conn:
            return set(conn.scalars(select(t.skips.c.image_id).where(t.skips.c.author == author)))

    def review_flags(self, *, open_only: bool = True, offset: int = 0, limit: int = 50) -> list[ReviewFlag]:
        """Review flags, oldest first, one page."""
        rf = t.review_flags
        query = select(rf).order_by(rf.c.id).offset(offset).limit(limit)
        if open_only:
            query = query.where(rf.c.resolved_at.is_(None))
        with self._read() as conn:
            return [
                ReviewFlag(
                    r.id,
                    r.image_id,
                    r.reason,
                    dict(r.details or {}),
                    _as_utc(r.created_at),  # type: ignore[arg-type]
                    _as_utc(r.resolved_at),
                    r.resolved_by,
                )
                for r in conn.execute(query)
            ]

    def n_review_flags(self, *, open_only: bool = True) -> int:
        rf = t.review_flags
        query = select(func.count()).select_from(rf)
        if open_only:
            query = query.where(rf.c.resolved_at.is_(None))
        with self._read() as conn:
            return int(conn.scalar(query) or 0)

    def save_predictions(self, round_number: int, rows: Sequence[tuple[int, str, float]]) -> None:
        """Store a round's ``(image_id, predicted class name, confidence)`` rows, replacing that round's."""
        with self._write() as conn:
            conn.execute(delete(t.predictions).where(t.predictions.c.round_number == round_number))
            self._insert_predictions(conn, round_number, rows)

    def _insert_predictions(self, conn: Connection, round_number: int, rows: Sequence[tuple[int, str, float]]) -> None:
        if not rows:
            return
        class_ids = self._class_ids(conn)
        conn.execute(
            insert(t.predictions),
            [
                {"round_number": round_number, "image_id": iid, "class_id": class_ids[name], "confidence": float(conf)}
                for iid, name, conf in rows
            ],
        )

    def latest_predictions(self, image_ids: Sequence[int]) -> dict[int, tuple[str, float, int]]:
        """Image id -> (class name, confidence, round number) from the latest round that predicted it."""
        pr = t.predictions
        out: dict[int, tuple[str, float, int]] = {}
        with self._read() as conn:
            for chunk in _chunks(list(image_ids), 500):
                latest = (
                    select(pr.c.image_id, func.max(pr.c.round_number).label("rn"))
                    .where(pr.c.image_id.in_(chunk))
                    .group_by(pr.c.image_id)
                    .subquery()
                )
                rows = conn.execute(
                    select(pr.c.image_id, t.classes.c.name, pr.c.confidence, pr.c.round_number)
                    .join(latest, (latest.c.image_id == pr.c.image_id) & (latest.c.rn == pr.c.round_number))
                    .join(t.classes, t.classes.c.id == pr.c.class_id)
                )
                out.update({r.image_id: (r.name, float(r.confidence), int(r.round_number)) for r in rows})
        return out

    def set_service_state(self, key: str, value: dict[str, Any]) -> None:
        """Persist a service's state (JSON) under ``key``, replacing what was there."""
        with self._write() as conn:
            conn.execute(delete(t.service_state).where(t.service_state.c.key == key))
            conn.execute(insert(t.service_state), {"key": key, "value": value, "updated_at": utcnow()})

    def service_state(self, key: str) -> dict[str, Any] | None:
        with self._read() as conn:
            value = conn.scalar(select(t.service_state.c.value).where(t.service_state.c.key == key))
        return None if value is None else dict(value)

    def labels_over_time(
        self, *, max_points: int = 200, sources: Sequence[str] = ("human", "review")
    ) -> list[tuple[datetime, int]]:
        """``(time, labels so far)`` for label events from ``sources`` that set a class, oldest first.

        Thinned in SQL to about ``max_points`` points (every n-th event, and the
        last), so the dashboard's curve costs the same for a thousand or a million labels.
        """
        ev = t.label_events
        wanted = (ev.c.source.in_(list(sources)), ev.c.class_id.is_not(None))
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
        return [(_as_utc(when), int(n)) for when, n in rows]  # type: ignore[misc]

    def n_images(self, split: str | None = None) -> int:
        query = select(func.count()).select_from(t.images)
        if split is not None:
            query = query.where(t.images.c.split == _check_split(split))
        with self._read() as conn:
            return int(conn.scalar(query) or 0)


def _event(
    image_id: int,
    class_id: int | None,
    author: str,
    source: str,
    round_index: int,
    now: datetime,
    note: str | None = None,
) -> dict[str, Any]:
    return {
        "image_id": image_id,
        "class_id": class_id,
        "author": author,
        "source": source,
        "round_index": round_index,
        "note": note,
        "created_at": now,
    }


def _class_event(class_id: int, action: str, author: str, now: datetime) -> dict[str, Any]:
    if action not in t.CLASS_ACTIONS:
        raise InputError(f"class action must be one of {t.CLASS_ACTIONS}, got {action!r}")
    if not author:
        raise InputError("retiring or restoring a class needs an author (a user name)")
    return {"class_id": class_id, "action": action, "author": author, "created_at": now}


def _image(row: Any) -> Image:
    return Image(
        row.id,
        row.sha256,
        row.path,
        row.width,
        row.height,
        row.n_bytes,
        row.split,
        _as_utc(row.added_at),
        row.format,  # type: ignore[arg-type]
    )


@contextmanager
def _damage_as_store_error(url: str) -> Iterator[None]:
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


def _check_split(split: str) -> str:
    if split not in t.SPLITS:
        raise InputError(f"split must be one of {t.SPLITS}, got {split!r}")
    return split


def _check_source(source: str) -> None:
    if source not in t.LABEL_SOURCES:
        raise InputError(f"label source must be one of {t.LABEL_SOURCES}, got {source!r}")


def _check_class_name(name: str) -> str:
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


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
