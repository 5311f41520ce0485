"""Rounds: what the loop trained, measured and selected, and the predictions shown as hints."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from activelab.exceptions import NotFoundError, StoreError
from activelab.store import schema as t
from activelab.store._base import StoreBase, as_utc, aware, chunks, utcnow
from activelab.store.classes import class_ids, stored_annotation
from activelab.store.events import Payload, annotation_value


@dataclass(frozen=True)
class Round:
    """One active-learning round as recorded by the loop (``status``: running, done or failed)."""

    number: int
    strategy: str
    model: str
    config: dict[str, Any]
    status: str
    n_labeled: int
    metrics: dict[str, Any] | None
    started_at: datetime
    finished_at: datetime | None


class RoundsMixin(StoreBase):
    """Rounds are numbered from 1; a label event records the number of rounds done when it was made."""

    def round_number(self) -> int:
        """The round new labels belong to: the number of rounds finished so far."""
        with self._read() as conn:
            return current_round(conn)

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
        predictions: Sequence[tuple[int, Payload, float]] = (),
        asked: Mapping[int, str] | None = None,
    ) -> None:
        """Mark a round done with its metrics, ranked selection ``(image_id, score)`` and the
        model's ``(image_id, predicted payload, confidence)`` predictions (the labeler's hints), atomically.

        A predicted payload is a class name, or the predicted set of class names (multi-label).
        ``asked``: image id -> the mask key (sha256, in the project's mask store) of the pixels a region
        round asks for in that image (segmentation); an image not in it is asked as a whole.
        """
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
                        {
                            "round_id": row.id,
                            "image_id": iid,
                            "rank": rank,
                            "score": score,
                            "asked_mask": (asked or {}).get(iid),
                        }
                        for rank, (iid, score) in enumerate(selection)
                    ],
                )
            insert_predictions(conn, number, predictions)

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
                    aware(r.started_at),
                    as_utc(r.finished_at),
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

    def round_asked(self, number: int) -> dict[int, str]:
        """Image id -> the asked-pixels mask key of round ``number``'s selection (only the images asked in part)."""
        sel = t.round_selections
        query = (
            select(sel.c.image_id, sel.c.asked_mask)
            .join(t.rounds, t.rounds.c.id == sel.c.round_id)
            .where(t.rounds.c.number == number, sel.c.asked_mask.is_not(None))
        )
        with self._read() as conn:
            return {r.image_id: r.asked_mask for r in conn.execute(query)}

    def asked_mask_key(self, image_id: int) -> str | None:
        """The key (in the project's mask store) of the pixels the latest finished round that selected
        ``image_id`` asks to label, 1 = asked; None when that round asked for the whole image, or none selected it."""
        return self.asked_mask_keys([image_id]).get(image_id)

    def asked_mask_keys(self, image_ids: Sequence[int]) -> dict[int, str]:
        """:meth:`asked_mask_key` of several images at once: image id -> key, for those asked in part."""
        sel, rounds = t.round_selections, t.rounds
        out: dict[int, str] = {}
        with self._read() as conn:
            for chunk in chunks(list(image_ids)):
                latest = (
                    select(sel.c.image_id, func.max(rounds.c.number).label("rn"))
                    .join(rounds, rounds.c.id == sel.c.round_id)
                    .where(sel.c.image_id.in_(chunk), rounds.c.status == "done")
                    .group_by(sel.c.image_id)
                    .subquery()
                )
                query = (
                    select(sel.c.image_id, sel.c.asked_mask)
                    .join(rounds, rounds.c.id == sel.c.round_id)
                    .join(latest, (latest.c.image_id == sel.c.image_id) & (latest.c.rn == rounds.c.number))
                    .where(sel.c.asked_mask.is_not(None))
                )
                out.update({r.image_id: r.asked_mask for r in conn.execute(query)})
        return out

    def save_predictions(self, round_number: int, rows: Sequence[tuple[int, Payload, float]]) -> None:
        """Store a round's ``(image_id, predicted payload, confidence)`` rows, replacing that round's."""
        with self._write() as conn:
            conn.execute(delete(t.predictions).where(t.predictions.c.round_number == round_number))
            insert_predictions(conn, round_number, rows)

    def latest_predictions(self, image_ids: Sequence[int]) -> dict[int, tuple[Payload, float, int]]:
        """Image id -> (predicted payload, confidence, round number) from the latest round that predicted it.

        The payload is a class name for a single-label prediction, the sorted predicted set for a multi-label one.
        """
        pr = t.predictions
        out: dict[int, tuple[Payload, float, int]] = {}
        with self._read() as conn:
            for chunk in chunks(list(image_ids)):
                latest = (
                    select(pr.c.image_id, func.max(pr.c.round_number).label("rn"))
                    .where(pr.c.image_id.in_(chunk))
                    .group_by(pr.c.image_id)
                    .subquery()
                )
                rows = conn.execute(
                    select(pr.c.image_id, t.classes.c.name, pr.c.annotation, pr.c.confidence, pr.c.round_number)
                    .join(latest, (latest.c.image_id == pr.c.image_id) & (latest.c.rn == pr.c.round_number))
                    .outerjoin(t.classes, t.classes.c.id == pr.c.class_id)
                )
                out.update(
                    {
                        r.image_id: (
                            r.name if r.name is not None else annotation_value(r.annotation),
                            float(r.confidence),
                            int(r.round_number),
                        )
                        for r in rows
                    }
                )
        return out


def current_round(conn: Connection) -> int:
    """The round new labels belong to: the number of rounds finished so far."""
    done = conn.scalar(select(func.count()).select_from(t.rounds).where(t.rounds.c.status == "done"))
    return int(done or 0)


def insert_predictions(conn: Connection, round_number: int, rows: Sequence[tuple[int, Payload, float]]) -> None:
    """Insert prediction rows: a class name as its class id, a predicted set as its sorted names, predicted
    boxes as they are."""
    if not rows:
        return
    ids = class_ids(conn)
    conn.execute(
        insert(t.predictions),
        [
            {
                "round_number": round_number,
                "image_id": iid,
                "class_id": ids[payload] if isinstance(payload, str) else None,
                "annotation": None if isinstance(payload, str) else stored_annotation(payload),
                "confidence": float(conf),
            }
            for iid, payload, conf in rows
        ],
    )
