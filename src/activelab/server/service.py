"""What the API does, over one project: the routes only parse, call this and serialise.

Everything durable lives in the project's store; this object holds the opened
project, the background trainer and nothing a restart could lose.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from activelab.errors import load_ranking, mix_queues, ranking_path, review_queue
from activelab.exceptions import InputError, NotFoundError
from activelab.loop.export import export_labels
from activelab.loop.project import Project
from activelab.loop.session import ActiveSession
from activelab.loop.similar import SimilarImages
from activelab.loop.stopping import StoppingRules
from activelab.server.settings import ServerSettings
from activelab.server.trainer import BackgroundTrainer
from activelab.store.store import Image

HOLDOUT_KEY = "holdout"
MAX_CURVE_POINTS = 200


def holdout_rule(sha256: str, fraction: float, seed: int) -> bool:
    """Whether a human-labeled pool image is held out for evaluation.

    Deterministic in the image content and the seed: the first 8 bytes of
    ``sha256(f"{seed}:{image sha256}")`` read as a number in [0, 1) below
    ``fraction``. The same image is always held out (or not), whoever labels it.
    """
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()
    return int(digest[:16], 16) / 16**16 < fraction


@dataclass
class LabelingService:
    """The labeling app's operations on one opened project."""

    project: Project
    settings: ServerSettings
    trainer: BackgroundTrainer
    similar_images: SimilarImages | None = field(default=None, repr=False)  # built on first use, kept on disk

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.project.store

    def session(self) -> ActiveSession:
        return self.trainer.session_factory(self.project)

    # ------------------------------------------------------------ hold-out
    def holdout(self) -> dict[str, Any]:
        """The evaluation hold-out decision, made once per project and persisted.

        A project with an ``eval`` split evaluates on it; one without holds out
        ``active_learner.eval_fraction`` of human labels (see :func:`holdout_rule`).
        """
        state = self.store.service_state(HOLDOUT_KEY)
        if state is None:
            al = self.project.settings.active_learner
            enabled = self.store.n_images("eval") == 0 and al.eval_fraction > 0
            state = {"enabled": enabled, "fraction": al.eval_fraction if enabled else 0.0, "seed": al.seed,
                     "rule": "sha256(f'{seed}:{image sha256}')[:16 hex] / 16**16 < fraction"}
            self.store.set_service_state(HOLDOUT_KEY, state)
        return state

    # --------------------------------------------------------------- items
    def item(self, image: Image, *, rank: int | None = None, origin: str = "pool",
             history: bool = False) -> dict[str, Any]:
        pred = self.store.latest_predictions([image.id]).get(image.id)
        out: dict[str, Any] = {
            "image_id": image.id,
            "url": f"/api/images/{image.id}/file",
            "width": image.width,
            "height": image.height,
            "split": image.split,
            "rank": rank,
            "origin": origin,
            "prediction": None if pred is None else {"label": pred[0], "confidence": pred[1], "round": pred[2]},
            "history": None,
        }
        if history:
            out["history"] = [self._event(e) for e in self.store.label_history(image.id)]
        return out

    @staticmethod
    def _event(e: Any) -> dict[str, Any]:
        return {"event_id": e.id, "label": e.label, "author": e.author, "source": e.source, "round": e.round_index,
                "note": e.note, "created_at": e.created_at.isoformat()}

    def next_items(self, user: str, n: int, *, mode: str = "label", exclude: list[int] | None = None
                   ) -> list[dict[str, Any]]:
        """Lease the next ``n`` images to ``user``: the active-learning queue first, then the pool."""
        exclude = exclude or []
        if mode == "review":
            return self._review_items(n, set(exclude))
        queue = self.session().queue()
        if self.settings.mix_review and queue:
            mixed = self._mixed_items(user, n, queue, exclude)
            if mixed is not None:
                return mixed
        ranks = {iid: r for r, iid in enumerate(queue)}
        ids = self.store.lease_next(user, n, ttl_seconds=self.settings.lease_seconds, preferred=queue,
                                    exclude=exclude)
        return [self.item(self.store.get_image(i), rank=ranks.get(i), origin="queue" if i in ranks else "pool")
                for i in ids]

    def _mixed_items(self, user: str, n: int, queue: list[int], exclude: list[int]
                     ) -> list[dict[str, Any]] | None:
        """Label mode with ``mix_review``: likely label errors interleaved with new images.

        Both candidate lists are put on one scale by :func:`activelab.errors.mix_queues`
        (``scores_are="quality"``): a review item is worth ``1 - score`` (its
        label-quality score in the ranking: the chance the given label is wrong), a new
        image ``1 - confidence`` (the latest round's confidence in its predicted class:
        the chance the model is wrong about it). The ``n`` most valuable go out,
        highest first; new images keep the active-learning queue's order among
        themselves and are leased as usual; review items are leased too (so two
        labelers don't get the same one) and carry ``origin="label_error"`` and the
        ranking's details in ``flag``. None when there is nothing to review (then the
        plain queue order applies).
        """
        frame = self._ranking()
        if frame is None:
            return None
        held = set(exclude)
        leases = self.store.live_leases()
        skipped = self.store.skipped_ids(user)
        reviews = [i for i in review_queue(self.store, frame.reset_index())
                   if i not in held and i not in skipped and leases.get(i, user) == user][:n]
        if not reviews:
            return None
        candidates = [i for i in queue if i not in held and i not in skipped and leases.get(i, user) == user][:n]
        predictions = self.store.latest_predictions(candidates)
        new_conf = [predictions[i][1] if i in predictions else 0.0 for i in candidates]  # unscored: most valuable
        mixed = mix_queues(reviews, [float(frame.loc[i, "score"]) for i in reviews], candidates, new_conf,
                           k=n, scores_are="quality")
        picked = [m.image_id for m in mixed if m.kind == "review"]
        n_new = len(mixed) - len(picked)
        new_ids = self.store.lease_next(user, n_new, ttl_seconds=self.settings.lease_seconds, preferred=queue,
                                        exclude=exclude + picked) if n_new else []
        for iid in picked:
            self.store.lease_image(iid, user, ttl_seconds=self.settings.lease_seconds)
        ranks = {iid: r for r, iid in enumerate(queue)}
        fresh = iter(new_ids)
        out: list[dict[str, Any]] = []
        for entry in mixed:
            if entry.kind == "review":
                item = self._label_error_item(entry.image_id, frame)
            else:
                new_id = next(fresh, None)
                if new_id is None:  # the pool ran dry
                    continue
                item = self.item(self.store.get_image(new_id), rank=ranks.get(new_id),
                                 origin="queue" if new_id in ranks else "pool")
            out.append(item)
        return out

    def _ranking(self) -> pd.DataFrame | None:
        """The latest ``activelab errors`` ranking indexed by image id (None when there is none)."""
        path = ranking_path(self.project.root)
        if not path.is_file():
            return None
        return load_ranking(path).drop_duplicates("image_id").set_index("image_id")

    def _label_error_item(self, image_id: int, frame: pd.DataFrame) -> dict[str, Any]:
        row = frame.loc[image_id]
        item = self.item(self.store.get_image(image_id), origin="label_error", history=True)
        item["flag"] = {"id": None, "reason": "label_error",
                        "details": {"given": row["given_label"], "suggested": row["suggested_label"],
                                    "score": float(row["score"])}}
        return item

    def _is_label_error_review(self, image_id: int) -> bool:
        """Whether a label-mode answer is about a likely label error the mix handed out (a labeled image
        in the ranking's issues): such an answer is a review decision."""
        frame = self._ranking()
        if frame is None or image_id not in frame.index:
            return False
        if str(frame.loc[image_id, "is_issue"]).lower() not in ("true", "1"):
            return False
        history = self.store.label_history(image_id)
        return bool(history) and history[-1].label is not None

    def _review_items(self, n: int, seen: set[int]) -> list[dict[str, Any]]:
        """Images to review: disagreements between labelers first, then likely label errors.

        Label errors come from the latest ``activelab errors`` ranking (most likely
        wrong first), minus images reviewed or corrected since it was made.
        """
        out: list[dict[str, Any]] = []
        offset = 0
        while len(out) < n:
            flags = self.store.review_flags(offset=offset, limit=100)
            if not flags:
                break
            offset += len(flags)
            for flag in flags:
                if flag.image_id in seen or len(out) >= n:
                    continue
                seen.add(flag.image_id)
                item = self.item(self.store.get_image(flag.image_id), origin="review", history=True)
                item["flag"] = {"id": flag.id, "reason": flag.reason, "details": flag.details}
                out.append(item)
        frame = self._ranking() if len(out) < n else None
        if frame is not None:
            for iid in review_queue(self.store, frame.reset_index()):
                if len(out) >= n:
                    break
                if iid in seen:
                    continue
                seen.add(iid)
                out.append(self._label_error_item(iid, frame))
        return out

    # -------------------------------------------------------------- labels
    def submit(self, user: str, image_id: int, label: str | None, *, note: str | None, review: bool
               ) -> dict[str, Any]:
        image = self.store.get_image(image_id)
        if not review and self.settings.mix_review and self._is_label_error_review(image_id):
            review = True  # an answer to a label-error item the mix handed out in label mode
        hold = self.holdout()
        hold_out = bool(hold["enabled"]) and image.split == "pool" and label is not None and not review and \
            holdout_rule(image.sha256, float(hold["fraction"]), int(hold["seed"]))
        outcome = self.store.submit_label(image_id, label, author=user, source="review" if review else "human",
                                          note=note, hold_out=hold_out)
        self.trainer.notify()
        return {"event_id": outcome.event_id, "image_id": image_id, "label": label, "flagged": outcome.flagged,
                "held_out": outcome.held_out}

    def undo(self, user: str) -> dict[str, Any]:
        outcome = self.store.undo_last_label(user)
        if outcome is None:
            raise NotFoundError(f"{user} has no label to undo")
        self.store.lease_image(outcome.image_id, user, ttl_seconds=self.settings.lease_seconds)
        image = self.store.get_image(outcome.image_id)
        return {"undone_event_id": outcome.undone_event_id, "undo_event_id": outcome.undo_event_id,
                "restored_label": outcome.restored_label, "item": self.item(image, origin="undo")}

    def skip(self, user: str, image_id: int) -> None:
        self.store.skip_image(image_id, user)

    def add_class(self, name: str) -> list[str]:
        self.store.add_classes([name])
        return self.store.class_names()

    # ---------------------------------------------------------------- lists
    def queue_page(self, offset: int, limit: int) -> dict[str, Any]:
        queue = self.session().queue()
        leases = self.store.live_leases()
        page = queue[offset: offset + limit]
        preds = self.store.latest_predictions(page)
        return {
            "total": len(queue), "offset": offset, "limit": limit,
            "items": [{"image_id": iid, "rank": offset + i, "leased_by": leases.get(iid),
                       "url": f"/api/images/{iid}/file",
                       "prediction": None if iid not in preds else
                       {"label": preds[iid][0], "confidence": preds[iid][1], "round": preds[iid][2]}}
                      for i, iid in enumerate(page)],
        }

    def review_page(self, offset: int, limit: int) -> dict[str, Any]:
        flags = self.store.review_flags(offset=offset, limit=limit)
        return {
            "total": self.store.n_review_flags(), "offset": offset, "limit": limit,
            "items": [{"flag_id": f.id, "image_id": f.image_id, "reason": f.reason, "details": f.details,
                       "created_at": f.created_at.isoformat(), "url": f"/api/images/{f.image_id}/file"}
                      for f in flags],
        }

    def image_detail(self, image_id: int) -> dict[str, Any]:
        image = self.store.get_image(image_id)
        item = self.item(image, history=True)
        current = [e for e in item["history"]]
        item["label"] = current[-1]["label"] if current else None
        return item

    def image_path(self, image_id: int) -> Path:
        """The file of a stored image (ids only: no client path is ever opened)."""
        return Path(self.store.get_image(image_id).path)

    # --------------------------------------------------------------- similar
    def similar(self, image_id: int, k: int) -> dict[str, Any]:
        """The ``k`` images most like ``image_id`` (cosine similarity of backbone embeddings), best first.

        The FAISS index (``loop.similar``) is built on first use and rebuilt when images are imported.
        """
        self.store.get_image(image_id)  # 404 before any index work
        if self.similar_images is None:
            self.similar_images = SimilarImages(self.project)
        pairs = self.similar_images.similar(image_id, k)
        items = []
        for iid, score in pairs:
            item = self.item(self.store.get_image(iid), origin="similar", history=True)
            item["label"] = item["history"][-1]["label"] if item["history"] else None
            item["history"] = None
            item["similarity"] = score
            items.append(item)
        info = self.similar_images.info
        return {"image_id": image_id, "k": k, "items": items,
                "index": None if info is None else {"kind": info.kind, "n": info.n}}

    # ----------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        summary = self.store.summary()
        session = self.session()
        curve = session.curve()
        over_time = [{"t": when.isoformat(), "n": n}
                     for when, n in self.store.labels_over_time(max_points=MAX_CURVE_POINTS)]
        rounds = [r for r in self.store.rounds() if r.status == "done"]
        return {
            "project": self.project.settings.name,
            "strategy": self.project.settings.active_learner.strategy,
            "model": self.project.settings.model.name,
            "classes": self.store.class_names(),
            "images": summary["images"],
            "labeled": summary["labeled"],
            "per_class": summary["per_class"],
            "label_events": summary["label_events"],
            "rounds": summary["rounds"],
            "open_review_flags": self.store.n_review_flags(),
            "queue_length": len(session.queue()),
            "labels_over_time": over_time,
            "curve": [{"n_labeled": p.n_labeled, "accuracy": p.accuracy, "agreement": p.agreement} for p in curve],
            "latest_round": None if not rounds else {
                "number": rounds[-1].number, "n_labeled": rounds[-1].n_labeled,
                "finished_at": rounds[-1].finished_at.isoformat() if rounds[-1].finished_at else None},
            "stop_reason": session.stop_reason(StoppingRules(plateau_rounds=3)) if curve else None,
            "trainer": self.trainer.status(),
            "holdout": self.holdout(),
            "live_leases": len(self.store.live_leases()),
        }

    def export(self, fmt: str, include_eval: bool) -> Path:
        if fmt not in ("csv", "parquet"):
            raise InputError(f"format must be csv or parquet, got {fmt!r}")
        folder = Path(tempfile.mkdtemp(prefix="activelab-export-"))
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return export_labels(self.store, folder / f"labels-{stamp}.{fmt}", fmt=fmt, include_eval=include_eval)
