"""The labeling app's state: answers, leases (who sees which image), skips and review flags."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from activelab.exceptions import InputError, NotFoundError
from activelab.store import events
from activelab.store import schema as t
from activelab.store._base import StoreBase, as_utc, aware, check_source, check_split, chunks, utcnow
from activelab.store.annotations import payload_of
from activelab.store.classes import resolve_payloads
from activelab.store.events import Payload
from activelab.store.rounds import current_round


@dataclass(frozen=True)
class SubmitOutcome:
    """What :meth:`Store.submit_annotation` did: the event id, and whether it was flagged / held out."""

    event_id: int
    flagged: bool
    held_out: bool


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


class LabelingMixin(StoreBase):
    """One labeler's answer, and which image each labeler sees next."""

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
        """:meth:`submit_annotation` of a single-label answer (``label=None``: "not sure")."""
        return self.submit_annotation(image_id, label, author=author, source=source, note=note, hold_out=hold_out)

    def submit_annotation(
        self,
        image_id: int,
        payload: Payload | None,
        *,
        author: str,
        source: str = "human",
        note: str | None = None,
        hold_out: bool = False,
    ) -> SubmitOutcome:
        """Record one labeler's answer in one transaction and return what happened.

        Appends the event (``payload`` a class name, a list of class names, or None:
        "not sure", the label is withdrawn), releases the author's lease on the image,
        moves a ``pool`` image to the ``eval`` split when ``hold_out`` (the held-out
        evaluation rule of the app), flags a disagreement for review when the image's
        current payload came from another person and differs (not for masks: a region
        round's later mask labels more pixels of the image, and the store compares no
        pixels), and resolves open review flags when ``source="review"``.
        """
        check_source(source)
        if not author:
            raise InputError("a label event needs an author (a user name)")
        with self._write() as conn:
            row = conn.execute(select(t.images.c.id, t.images.c.split).where(t.images.c.id == image_id)).first()
            if row is None:
                raise NotFoundError(f"no image with id {image_id} in {self.url}")
            ((cid, annotation),) = resolve_payloads(conn, [payload])
            ev = t.label_events
            prev = conn.execute(
                select(ev.c.id, t.classes.c.name, ev.c.annotation, ev.c.author, ev.c.source)
                .outerjoin(t.classes, t.classes.c.id == ev.c.class_id)
                .where(ev.c.image_id == image_id)
                .order_by(ev.c.id.desc())
                .limit(1)
            ).first()
            now = utcnow()
            event_id = conn.execute(
                insert(ev).returning(ev.c.id),
                events.event_row(image_id, cid, author, source, current_round(conn), now, note, annotation),
            ).scalar_one()
            conn.execute(delete(t.leases).where(t.leases.c.image_id == image_id, t.leases.c.holder == author))
            held_out = False
            if hold_out and row.split == "pool":
                conn.execute(update(t.images).where(t.images.c.id == image_id).values(split="eval"))
                held_out = True
            stored = payload if annotation is None else annotation
            before = None if prev is None else payload_of(prev.name, prev.annotation)
            flagged = False
            if (
                source == "human"
                and prev is not None
                and stored is not None
                and before is not None
                and before != stored
                and not isinstance(stored, dict)  # a mask: a later one labels more pixels, it does not disagree
                and prev.author != author
                and prev.source in ("human", "review", "correction")
            ):
                conn.execute(
                    insert(t.review_flags),
                    {
                        "image_id": image_id,
                        "reason": "disagreement",
                        "details": {"labels": {prev.author: before, author: stored}, "events": [prev.id, event_id]},
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

    def lease_next(
        self,
        holder: str,
        n: int,
        *,
        ttl_seconds: float,
        preferred: Sequence[int] = (),
        exclude: Sequence[int] = (),
        split: str = "pool",
        reopened: Collection[int] = (),
    ) -> list[int]:
        """Lease up to ``n`` images to ``holder`` for ``ttl_seconds``, in one transaction.

        Order: images an undo gave back to ``holder``, then ``preferred`` (the
        active-learning queue, best first), then images still leased to ``holder``
        without a label, then the rest of ``split`` by id. Never returned: images with
        any label event (except those an undo gave back), with a live lease of someone
        else, or skipped by ``holder``. ``exclude`` are images the caller already
        holds: neither returned nor released; the holder's other leases not chosen
        again are released. Expired leases are dropped first. ``reopened``: images of
        ``preferred`` that may be leased although they have label events (a region round
        asks again for the unlabeled pixels of an image labeled in part).
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
            current = events.current_values(conn, mine)
            excluded = set(exclude)
            touched_mine: set[int] = set()
            for chunk in chunks(mine):
                touched_mine.update(conn.scalars(select(ev.c.image_id).where(ev.c.image_id.in_(chunk)).distinct()))
            mine_open = [i for i in mine if i not in current and i not in skipped and i not in excluded]
            # 1. images given back to the holder (an undo): no other way brings them back
            chosen: list[int] = [i for i in mine_open if i in touched_mine][:n]
            taken = set(chosen) | excluded
            others = {i for i, h in leased.items() if h != holder}

            def free(ids: Sequence[int], allowed: Collection[int] = ()) -> list[int]:
                ids = [i for i in ids if i not in taken and i not in others and i not in skipped]
                touched: set[int] = set()
                for chunk in chunks(ids):
                    touched.update(conn.scalars(select(ev.c.image_id).where(ev.c.image_id.in_(chunk)).distinct()))
                return [i for i in ids if i not in touched or i in allowed]

            # 2. the active-learning queue, then 3. the holder's other open leases, then 4. the rest
            for iid in free(list(dict.fromkeys(preferred)), set(reopened)) + free(mine_open):
                if len(chosen) >= n:
                    break
                if iid not in taken:
                    chosen.append(iid)
                    taken.add(iid)
            if len(chosen) < n:
                rest = (
                    select(t.images.c.id)
                    .where(
                        t.images.c.split == check_split(split),
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
        sk = t.skips
        with self._write() as conn:
            if conn.scalar(select(t.images.c.id).where(t.images.c.id == image_id)) is None:
                raise NotFoundError(f"no image with id {image_id} in {self.url}")
            conn.execute(delete(t.leases).where(t.leases.c.image_id == image_id, t.leases.c.holder == author))
            if conn.scalar(select(sk.c.image_id).where(sk.c.image_id == image_id, sk.c.author == author)) is None:
                conn.execute(insert(sk), {"image_id": image_id, "author": author, "created_at": utcnow()})

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
                    aware(r.created_at),
                    as_utc(r.resolved_at),
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
