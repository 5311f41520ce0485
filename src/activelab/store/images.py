"""Images: content-addressed (one row per SHA-256), never deleted, ids only grow."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import func, insert, select

from activelab.exceptions import InputError, NotFoundError
from activelab.store import events
from activelab.store import schema as t
from activelab.store._base import StoreBase, aware, check_source, check_split, chunks, utcnow
from activelab.store.classes import resolve_payloads
from activelab.store.events import Payload
from activelab.store.rounds import current_round


@dataclass(frozen=True)
class ImageRecord:
    """An image to add: its content hash and metadata, optionally a label (a class name or a list of them)."""

    sha256: str
    path: str
    width: int
    height: int
    n_bytes: int
    split: str = "pool"
    label: Payload | None = None
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


class ImagesMixin(StoreBase):
    """Adding and reading images; a pool of millions is read in keyset pages."""

    def add_images(
        self,
        records: Sequence[ImageRecord],
        *,
        author: str,
        source: str = "import",
        round_number: int | None = None,
    ) -> BatchOutcome:
        """Add images (and their labels as events) in one transaction.

        Content already stored is not added again. A record whose image is
        stored without a label gets its label as a new event; one whose image
        is stored with a different label is reported as ``label_conflict``.
        Unknown class names raise :class:`InputError` before anything is written.
        """
        check_source(source)
        for rec in records:
            if rec.split not in t.SPLITS:
                raise InputError(f"split must be one of {t.SPLITS}, got {rec.split!r} for {rec.path}")
        outcome = BatchOutcome()
        if not records:
            return outcome
        with self._write() as conn:
            values = [
                cid if cid is not None else ann for cid, ann in resolve_payloads(conn, [r.label for r in records])
            ]
            rnd = current_round(conn) if round_number is None else round_number
            hashes = list({r.sha256 for r in records})
            existing: dict[str, tuple[int, str]] = {}
            for chunk in chunks(hashes):
                rows = conn.execute(
                    select(t.images.c.sha256, t.images.c.id, t.images.c.path).where(t.images.c.sha256.in_(chunk))
                )
                existing.update({sha: (iid, path) for sha, iid, path in rows})
            current = events.current_values(conn, [iid for iid, _ in existing.values()])
            now = utcnow()
            rows_to_insert: list[dict[str, Any]] = []
            for rec, want in zip(records, values, strict=True):
                if rec.sha256 in existing:
                    iid, path = existing[rec.sha256]
                    status = "duplicate"
                    if want is not None:
                        have = current.get(iid)
                        if have is None:
                            rows_to_insert.append(_label_event(iid, want, author, source, rnd, now))
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
                if want is not None:
                    rows_to_insert.append(_label_event(iid, want, author, source, rnd, now))
                    current[iid] = want
                outcome.status.append("added")
                outcome.image_id.append(iid)
                outcome.existing_path.append(None)
            if rows_to_insert:
                conn.execute(insert(t.label_events), rows_to_insert)
            outcome.labels_added = len(rows_to_insert)
        return outcome

    def images(self, split: str | None = None) -> list[Image]:
        """All images (of one split when given), ordered by id."""
        query = select(t.images).order_by(t.images.c.id)
        if split is not None:
            query = query.where(t.images.c.split == check_split(split))
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
                query = query.where(t.images.c.split == check_split(split))
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
            query = query.where(t.images.c.split == check_split(split))
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

    def n_images(self, split: str | None = None) -> int:
        query = select(func.count()).select_from(t.images)
        if split is not None:
            query = query.where(t.images.c.split == check_split(split))
        with self._read() as conn:
            return int(conn.scalar(query) or 0)


def _image(row: Any) -> Image:
    return Image(
        row.id, row.sha256, row.path, row.width, row.height, row.n_bytes, row.split, aware(row.added_at), row.format
    )


def _label_event(
    image_id: int, value: int | list[Any] | dict[str, Any], author: str, source: str, round_number: int, now: datetime
) -> dict[str, Any]:
    """The event row of an imported label: a class id, or an annotation (class names, boxes, a mask reference)."""
    if isinstance(value, int):
        return events.event_row(image_id, value, author, source, round_number, now)
    return events.event_row(image_id, None, author, source, round_number, now, annotation=value)
