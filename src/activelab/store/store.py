"""The project store: images, classes, append-only label events and rounds.

One :class:`Store` wraps one SQLAlchemy engine. Every public write runs in one
transaction, so a process killed mid-write leaves either all or nothing of that
write. Label events are only ever inserted; the current label is derived.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from activelab.exceptions import InputError, NotFoundError, StoreError
from activelab.store import schema as t

ROUND_STATUSES = ("running", "done", "failed")


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
        with self.engine.connect() as conn:
            conn.execution_options(activelab_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    # ----------------------------------------------------------------- classes
    def add_classes(self, names: Iterable[str]) -> list[str]:
        """Add classes not yet known (in the given order); return the names added."""
        wanted = [_check_class_name(n) for n in names]
        with self._write() as conn:
            known = set(conn.scalars(select(t.classes.c.name)))
            new = [n for n in dict.fromkeys(wanted) if n not in known]
            if new:
                now = utcnow()
                conn.execute(insert(t.classes), [{"name": n, "created_at": now} for n in new])
        return new

    def class_names(self) -> list[str]:
        """All class names in the order they were added (that order is the class index)."""
        with self._read() as conn:
            return list(conn.scalars(select(t.classes.c.name).order_by(t.classes.c.id)))

    def _class_ids(self, conn: Connection) -> dict[str, int]:
        return {name: cid for cid, name in conn.execute(select(t.classes.c.id, t.classes.c.name))}

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
            class_ids = self._class_ids(conn)
            unknown = sorted({r.label for r in records if r.label is not None and r.label not in class_ids})
            if unknown:
                raise InputError(
                    f"unknown class name(s) {unknown}; known classes: {sorted(class_ids)}. "
                    "Add them with `activelab classes add` or import with --add-classes."
                )
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
    ) -> list[int]:
        """Append label events for ``(image_id, class name or None)`` pairs in one transaction."""
        _check_source(source)
        if not author:
            raise InputError("a label event needs an author (a user name, or e.g. 'oracle')")
        with self._write() as conn:
            class_ids = self._class_ids(conn)
            ids = [iid for iid, _ in labels]
            found: set[int] = set()
            for chunk in _chunks(ids, 500):
                found.update(conn.scalars(select(t.images.c.id).where(t.images.c.id.in_(chunk))))
            missing = sorted(set(ids) - found)
            if missing:
                raise NotFoundError(f"no image with id(s) {missing[:10]} in {self.url}")
            unknown = sorted({name for _, name in labels if name is not None and name not in class_ids})
            if unknown:
                raise InputError(f"unknown class name(s) {unknown}; known classes: {sorted(class_ids)}")
            rnd = self._round_index(conn) if round_index is None else round_index
            now = utcnow()
            rows = [
                _event(iid, None if name is None else class_ids[name], author, source, rnd, now, note)
                for iid, name in labels
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
                    row.image_id, row.name, row.author, row.source, row.round_index, _as_utc(row.created_at)  # type: ignore[arg-type]
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
                    r.id, r.image_id, r.name, r.author, r.source, r.round_index, r.note, _as_utc(r.created_at)  # type: ignore[arg-type]
                )
                for r in conn.execute(query)
            ]

    def n_label_events(self) -> int:
        with self._read() as conn:
            return int(conn.scalar(select(func.count()).select_from(t.label_events)) or 0)

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
    ) -> None:
        """Mark a round done with its metrics and ranked selection ``(image_id, score)``, atomically."""
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
        """Counts for ``activelab status``: images per split, labeled, per class, rounds."""
        labels = self.current_labels()
        with self._read() as conn:
            splits = dict(conn.execute(select(t.images.c.split, func.count()).group_by(t.images.c.split)).all())
            split_of = dict(conn.execute(select(t.images.c.id, t.images.c.split)).all())
        per_class: dict[str, dict[str, int]] = {name: {s: 0 for s in t.SPLITS} for name in self.class_names()}
        labeled = {s: 0 for s in t.SPLITS}
        for iid, cur in labels.items():
            split = split_of[iid]
            per_class[cur.label][split] += 1
            labeled[split] += 1
        rounds = self.rounds()
        return {
            "images": {s: int(splits.get(s, 0)) for s in t.SPLITS},
            "labeled": labeled,
            "per_class": per_class,
            "rounds": len([r for r in rounds if r.status == "done"]),
            "label_events": self.n_label_events(),
        }


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


def _image(row: Any) -> Image:
    return Image(
        row.id, row.sha256, row.path, row.width, row.height, row.n_bytes, row.split, _as_utc(row.added_at)  # type: ignore[arg-type]
    )


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
    if "," in clean:
        raise InputError(f"class name {name!r} contains a comma; commas separate names in --classes")
    return clean


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
