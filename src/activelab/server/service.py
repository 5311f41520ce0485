"""What the API does, over one project: the routes only parse, call this and serialise.

Everything durable lives in the project's store; this object holds the opened
project, the background trainer and nothing a restart could lose.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from activelab.data.images import (
    RASTER_MEDIA_TYPES,
    REJECTION_REASONS,
    media_type,
    read_verified,
    sniff_format,
)
from activelab.exceptions import (
    ForbiddenError,
    ImageRejected,
    InputError,
    NotFoundError,
    StoreError,
    UnsupportedMediaError,
)
from activelab.label_errors import load_ranking, mix_queues, ranking_path, review_queue
from activelab.loop.export import export_labels
from activelab.loop.project import Project
from activelab.loop.queue import LabelQueue, flagged_image_ids, holdout_state, is_held_out, review_batch
from activelab.loop.session import ActiveSession
from activelab.loop.similar import SimilarImages
from activelab.loop.stopping import StoppingRules
from activelab.loop.trainer import BackgroundTrainer
from activelab.server.masks import png_bytes, region_runs
from activelab.server.settings import ServerSettings
from activelab.store import Image
from activelab.store.classes import payload_classes
from activelab.tasks import Payload, Task
from activelab.tasks.masks import encode_png
from activelab.tasks.regions import region_map

MAX_CURVE_POINTS = 200
#: the eval metrics the dashboard plots and shows, by what a label is (:attr:`LabelingService.answer`):
#: (key in a round's eval metrics, its name on the page); accuracy of whole sets is harsh for multi-label
CURVE_METRICS = {
    "class": (("accuracy", "accuracy"),),
    "classes": (("micro_f1", "micro-F1"), ("map", "mAP")),
    "boxes": (("map", "mAP"), ("map_50", "mAP@.5")),
    "mask": (("miou", "mIoU"), ("pixel_accuracy", "pixel accuracy")),
}
#: the API field of each kind of answer: a class name, a set of class names, a list of boxes, a mask
_ANSWER_KEYS = {"class": "label", "classes": "labels", "boxes": "boxes", "mask": "mask"}
#: what a label is, by what the task's model outputs (anything else: one class)
_ANSWER_OF_OUTPUT = {"sigmoid": "classes", "boxes": "boxes", "masks": "mask"}
#: bytes of an image's start that identify its format (for images imported before formats were stored)
_HEADER_BYTES = 16


@dataclass
class LabelingService:
    """The labeling app's operations on one opened project."""

    project: Project
    settings: ServerSettings
    trainer: BackgroundTrainer
    similar_images: SimilarImages | None = field(default=None, repr=False)  # index built in the background
    task: Task = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.task = self.project.task()
        if self.similar_images is None:
            self.similar_images = SimilarImages(self.project)

    def start(self) -> None:
        """Background work once the app is served: bring the similar-images index up to date."""
        if self.settings.similar_index:
            assert self.similar_images is not None
            self.similar_images.start_build()

    def stop(self) -> None:
        """At shutdown: end background building (a build stops after its current step)."""
        assert self.similar_images is not None
        self.similar_images.stop()

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.project.store

    @property
    def answer(self) -> str:
        """What a label is in this project, by what its task's model outputs: ``"class"`` (one class name),
        ``"classes"`` (a set of names: independent per-class sigmoids), ``"boxes"`` (a detector's boxes) or
        ``"mask"`` (a segmenter's class per pixel)."""
        return _ANSWER_OF_OUTPUT.get(self.task.output, "class")

    def as_answer(self, payload: Payload | None) -> dict[str, Any]:
        """A payload as the API's ``label``, ``labels``, ``boxes`` and ``mask`` fields: the one this project's
        answers use holds it, the others are None (an empty list is "none of these" or "nothing here" by the
        project; a mask comes with the URL of its PNG)."""
        out: dict[str, Any] = dict.fromkeys(_ANSWER_KEYS.values())
        if isinstance(payload, dict) and "mask" in payload:
            out["mask"] = {**payload, "url": f"/api/masks/{payload['mask']}"}
        elif payload is not None:
            out[_ANSWER_KEYS[self.answer]] = list(payload) if isinstance(payload, list) else payload
        return out

    def proposals(self, predicted: Payload) -> list[dict[str, Any]] | None:
        """The predicted boxes a detection page offers: those scoring at least ``labeling.proposal_threshold``,
        best first (None for other projects)."""
        if self.answer != "boxes":
            return None
        threshold = self.project.settings.labeling.proposal_threshold
        return sorted((b for b in predicted if b.get("score", 1.0) >= threshold), key=lambda b: -b.get("score", 1.0))

    def session(self) -> ActiveSession:
        return self.trainer.session_factory(self.project)

    # ------------------------------------------------------------ hold-out
    def holdout(self) -> dict[str, Any]:
        """The evaluation hold-out decision, made once per project and persisted (:func:`holdout_state`)."""
        al = self.project.settings.active_learner
        return holdout_state(self.store, eval_fraction=al.eval_fraction, seed=al.seed)

    # --------------------------------------------------------------- items
    def item(
        self,
        image: Image,
        *,
        rank: int | None = None,
        origin: str = "pool",
        history: bool = False,
        author: str | None = None,
        leases: dict[int, str] | None = None,
    ) -> dict[str, Any]:
        """One image as the API shows it; ``held_by`` names another author with a live lease on it.

        ``leases``: :meth:`Store.live_leases`, when the caller already has them (read once per request).
        """
        pred = self.store.latest_predictions([image.id]).get(image.id)
        holder = (self.store.live_leases() if leases is None else leases).get(image.id)
        answer = None if pred is None else {**self.as_answer(pred[0]), "confidence": pred[1], "round": pred[2]}
        out: dict[str, Any] = {
            "image_id": image.id,
            "url": f"/api/images/{image.id}/file",
            "width": image.width,
            "height": image.height,
            "split": image.split,
            "rank": rank,
            "origin": origin,
            "prediction": answer,
            "suggestion": None if answer is None else {**answer, "source": "prediction"},
            "proposals": None if pred is None else self.proposals(pred[0]),
            "history": None,
            "held_by": None if holder == author else holder,
            "asked": self.asked_url(image.id),
            "mask": self.current_mask(image.id),
        }
        if history:
            out["history"] = [self._event(e) for e in self.store.label_history(image.id)]
        return out

    def asked_url(self, image_id: int) -> str | None:
        """Segmentation: the URL of the mask of the pixels the latest round asks for in the image (1 = asked),
        None when it asks for the whole image (image-level rounds, and every other task)."""
        if self.answer != "mask":
            return None
        key = self.store.asked_mask_key(image_id)
        return None if key is None else f"/api/masks/{key}"

    def current_mask(self, image_id: int) -> dict[str, Any] | None:
        """Segmentation: the image's current mask (its latest event's), None without one or in other projects.

        The page starts from it: an answer is the whole mask, so when a region round asks again for an
        image labeled in part, the new answer keeps what was labeled before.
        """
        if self.answer != "mask":
            return None
        history = self.store.label_history(image_id)
        return self.as_answer(history[-1].payload)["mask"] if history else None

    def _event(self, e: Any) -> dict[str, Any]:
        return {
            "event_id": e.id,
            **self.as_answer(e.payload),
            "author": e.author,
            "source": e.source,
            "round": e.round_number,
            "note": e.note,
            "created_at": e.created_at.isoformat(),
        }

    def _leasing(self) -> LabelQueue:
        """The loop's queue rules over this project's store, with the server's lease length."""
        return LabelQueue(self.store, lease_seconds=self.settings.lease_seconds)

    def next_items(
        self, author: str, n: int, *, mode: str = "label", exclude: list[int] | None = None
    ) -> dict[str, Any]:
        """Lease the next ``n`` images to ``author``: the active-learning queue first, then the pool.

        Returns ``items``, ``ranks`` and ``queue_length``. Ranks are positions in the queue as it is
        now (labeled images removed, so they move up as labels arrive): ``ranks`` gives the current
        rank of each image in ``exclude`` (None once it left the queue), so a page shows where the
        images it already holds stand now, not where they stood when fetched. Review mode has no
        queue: empty ``ranks``, ``queue_length`` None.
        """
        exclude = exclude or []
        if mode == "review":
            return {"items": self._review_items(author, n, set(exclude)), "ranks": {}, "queue_length": None}
        queue = self.session().queue()
        ranks = {iid: r for r, iid in enumerate(queue)}
        rules = self._leasing()
        frame = self._ranking() if self.settings.mix_review and queue else None
        mixed = None
        if frame is not None:
            reviews = [(i, float(frame.loc[i, "score"])) for i in self._label_error_ids(frame)]
            mixed = rules.lease_mixed(author, n, queue, exclude, reviews, mix=_mix_by_value)
        if mixed is None:
            mixed = [("new", i) for i in rules.lease_new(author, n, queue, exclude)]
        leases = self.store.live_leases()
        items = [
            self._label_error_item(iid, frame, author, leases)
            if kind == "review" and frame is not None
            else self.item(
                self.store.get_image(iid),
                rank=ranks.get(iid),
                origin="queue" if iid in ranks else "pool",
                author=author,
                leases=leases,
            )
            for kind, iid in mixed
        ]
        return {"items": items, "ranks": {i: ranks.get(i) for i in exclude}, "queue_length": len(queue)}

    def _ranking(self) -> pd.DataFrame | None:
        """The latest ``activelab errors`` ranking indexed by image id (None when there is none)."""
        path = ranking_path(self.project.root)
        if not path.is_file():
            return None
        return load_ranking(path).drop_duplicates("image_id").set_index("image_id")

    def _label_error_item(
        self, image_id: int, frame: pd.DataFrame, author: str, leases: dict[int, str]
    ) -> dict[str, Any]:
        row = frame.loc[image_id]
        item = self.item(
            self.store.get_image(image_id), origin="label_error", history=True, author=author, leases=leases
        )
        item["flag"] = {
            "id": None,
            "reason": "label_error",
            "details": {
                "given": row["given_label"],
                "suggested": row["suggested_label"],
                "score": float(row["score"]),
                **({} if pd.isna(row.get("note")) else {"note": str(row["note"])}),  # a box ranking's fixes
            },
        }
        # the class the review is about, shown by the banner, the hint and the highlighted button alike
        p_suggested = row.get("p_suggested")
        item["suggestion"] = {
            **self.as_answer(self.task.parse(str(row["suggested_label"]))),  # the ranking's table-cell text
            "source": "label_errors",
            "round": None,
            "confidence": None if p_suggested is None or pd.isna(p_suggested) else float(p_suggested),
        }
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
        return bool(history) and history[-1].payload is not None

    def _review_items(self, author: str, n: int, seen: set[int]) -> list[dict[str, Any]]:
        """Images to review (:func:`review_batch`): disagreements between labelers first, then likely
        label errors of the latest ``activelab errors`` ranking, minus images reviewed since it was made."""
        frame = self._ranking()
        leases = self.store.live_leases()
        out: list[dict[str, Any]] = []
        for iid, flag in review_batch(self.store, n, seen, lambda: self._label_error_ids(frame)):
            if flag is None:
                assert frame is not None
                out.append(self._label_error_item(iid, frame, author, leases))
                continue
            item = self.item(self.store.get_image(iid), origin="review", history=True, author=author, leases=leases)
            item["flag"] = {"id": flag.id, "reason": flag.reason, "details": flag.details}
            out.append(item)
        return out

    def _label_error_ids(self, frame: pd.DataFrame | None) -> list[int]:
        """The ranking's likely label errors waiting for review, most likely wrong first."""
        return [] if frame is None else review_queue(self.store, frame.reset_index(), task=self.task)

    # -------------------------------------------------------------- labels
    def submit(
        self, author: str, image_id: int, payload: Payload | None, *, note: str | None, review: bool
    ) -> dict[str, Any]:
        """Record ``author``'s answer: a payload of the project's task, or None for "not sure".

        Class names are checked first (404 for a name the project lacks, 409 for a retired class,
        as for single-label), then the payload's form by the task (422: a list in a single-label
        project, a name in a multi-label one, a box outside the image, naming the box).
        """
        image = self.store.get_image(image_id)
        if isinstance(payload, dict) and "png" in payload:  # the header only: a PNG of another size is not inflated
            png_bytes(payload["png"], size=(image.width, image.height))
        if payload is not None:
            self._check_classes(payload_classes(payload))
            payload = self.task.validate(payload, self.store.class_names(), size=(image.width, image.height))
        if not review and self.settings.mix_review and self._is_label_error_review(image_id):
            review = True  # an answer to a label-error item the mix handed out in label mode
        hold_out = payload is not None and not review and is_held_out(self.holdout(), image)
        outcome = self.store.submit_annotation(
            image_id, payload, author=author, source="review" if review else "human", note=note, hold_out=hold_out
        )
        self.trainer.notify()
        return {
            "event_id": outcome.event_id,
            "image_id": image_id,
            **self.as_answer(payload),
            "flagged": outcome.flagged,
            "held_out": outcome.held_out,
        }

    def _check_classes(self, names: Sequence[str]) -> None:
        """Each name is an active class: 404 for a name the project lacks, 409 for a retired class."""
        active = set(self.store.class_names())
        for name in names:
            if name in active:
                continue
            if name in self.store.retired_classes():
                raise StoreError(f"class {name!r} is retired; add it again (POST /api/classes) to label with it")
            raise NotFoundError(f"no class named {name!r}; the classes are listed by GET /api/project")

    def undo(self, author: str) -> dict[str, Any]:
        outcome = self.store.undo_last_label(author)
        if outcome is None:
            raise NotFoundError(f"{author} has no label to undo")
        self.store.lease_image(outcome.image_id, author, ttl_seconds=self.settings.lease_seconds)
        image = self.store.get_image(outcome.image_id)
        restored = self.as_answer(outcome.restored_annotation)
        return {
            "undone_event_id": outcome.undone_event_id,
            "undo_event_id": outcome.undo_event_id,
            "restored_label": outcome.restored_label,
            "restored_labels": restored["labels"],
            "restored_boxes": restored["boxes"],
            "restored_mask": restored["mask"],
            "item": self.item(image, origin="undo", author=author),
        }

    def skip(self, author: str, image_id: int) -> None:
        self.store.skip_image(image_id, author)

    def add_class(self, name: str) -> dict[str, Any]:
        """Add (or restore) a class, if the project lets the app do so (``labeling.allow_new_classes``)."""
        if not self.project.settings.labeling.allow_new_classes:
            raise ForbiddenError(
                "this project does not let the app add classes (labeling.allow_new_classes is "
                "false in activelab.yaml); add them with `activelab classes add`"
            )
        self.store.add_classes([name])
        return self.classes()

    def retire_class(self, name: str, author: str) -> dict[str, Any]:
        """Retire a class no image currently carries (an event by ``author``; nothing is deleted)."""
        self.store.retire_class(name, author=author)
        return self.classes()

    def classes(self) -> dict[str, Any]:
        return {"classes": self.store.class_names(), "retired_classes": self.store.retired_classes()}

    # ---------------------------------------------------------------- lists
    def queue_page(self, offset: int, limit: int) -> dict[str, Any]:
        queue = self.session().queue()
        leases = self.store.live_leases()
        page = queue[offset : offset + limit]
        preds = self.store.latest_predictions(page)
        return {
            "total": len(queue),
            "offset": offset,
            "limit": limit,
            "items": [
                {
                    "image_id": iid,
                    "rank": offset + i,
                    "leased_by": leases.get(iid),
                    "url": f"/api/images/{iid}/file",
                    "prediction": None
                    if iid not in preds
                    else {**self.as_answer(preds[iid][0]), "confidence": preds[iid][1], "round": preds[iid][2]},
                }
                for i, iid in enumerate(page)
            ],
        }

    def review_waiting(self) -> dict[str, int]:
        """How many images ``/review`` serves now, counted as :meth:`_review_items` serves them.

        ``flagged``: images with an open review flag; ``label_errors``: likely label errors of the
        latest ranking waiting for review, other than those; ``total``: both.
        """
        flagged = flagged_image_ids(self.store)
        errors = [i for i in self._label_error_ids(self._ranking()) if i not in flagged]
        return {"total": len(flagged) + len(errors), "flagged": len(flagged), "label_errors": len(errors)}

    def review_page(self, offset: int, limit: int) -> dict[str, Any]:
        flags = self.store.review_flags(offset=offset, limit=limit)
        return {
            "total": self.store.n_review_flags(),
            "waiting": self.review_waiting(),
            "offset": offset,
            "limit": limit,
            "items": [
                {
                    "flag_id": f.id,
                    "image_id": f.image_id,
                    "reason": f.reason,
                    "details": f.details,
                    "created_at": f.created_at.isoformat(),
                    "url": f"/api/images/{f.image_id}/file",
                }
                for f in flags
            ],
        }

    def image_detail(self, image_id: int, author: str | None = None) -> dict[str, Any]:
        image = self.store.get_image(image_id)
        item = self.item(image, history=True, author=author)
        if item["history"]:
            item.update(self._current(item["history"][-1]))
        return item

    @staticmethod
    def _current(event: dict[str, Any]) -> dict[str, Any]:
        """The answer fields of an image's latest event (from its history), what the image carries now."""
        return {key: event[key] for key in _ANSWER_KEYS.values()}

    def image_file(self, image_id: int) -> tuple[bytes, str]:
        """The bytes of a stored image and their media type, read once and checked against the import.

        The file is served only if it still has the imported size and sha256 (read by
        :func:`read_verified`, so there is no window between check and read) and its format is
        a raster one browsers display (:data:`RASTER_MEDIA_TYPES`); the type is the format
        detected at import, or, for images imported before formats were stored, sniffed
        from the verified bytes. Errors never name the server's paths.
        """
        image = self.store.get_image(image_id)
        try:
            data = read_verified(image.path, n_bytes=image.n_bytes, sha256=image.sha256)
        except ImageRejected as exc:
            if exc.reason == "missing_file":
                raise NotFoundError(f"the file of image {image_id} is missing; was it moved?") from exc
            raise StoreError(
                f"the file of image {image_id} cannot be served: {REJECTION_REASONS[exc.reason]}; import it again"
            ) from exc
        fmt = image.format or sniff_format(data[:_HEADER_BYTES])
        media = media_type(fmt)
        if media is None:
            raise UnsupportedMediaError(
                f"image {image_id} is {fmt or 'of an unknown format'}, which is not served: "
                f"only {', '.join(sorted(RASTER_MEDIA_TYPES))} images are"
            )
        return data, media

    # ----------------------------------------------------------------- masks
    def mask_png(self, key: str) -> bytes:
        """The canonical PNG of a stored mask (a label's, a prediction's or a round's asked pixels), by key.

        ``key`` is only ever looked up in the task's mask store (64 hex digits, checked by the route and the
        store); 404 when no mask has it.
        """
        if key not in self.task.masks:
            raise NotFoundError(f"no mask {key}; mask keys come from labels, predictions and asked regions")
        return encode_png(self.task.masks.get(key))

    def region_settings(self) -> dict[str, Any] | None:
        """How the task cuts images into regions (segmentation: its ``region_method`` and ``region_size``)."""
        if self.answer != "mask":
            return None
        return {"method": self.task.region_method, "size": self.task.region_size}  # type: ignore[attr-defined]

    def regions(self, image_id: int, method: str | None, size: int | None) -> dict[str, Any]:
        """The image cut into regions (:func:`activelab.tasks.regions.region_map`), as row-major runs.

        The file is checked against its import first (:meth:`image_file`); ``method`` and ``size``
        default to the task's.
        """
        defaults = self.region_settings()
        if defaults is None:
            raise NotFoundError("regions are for segmentation projects; this project's labels are not masks")
        self.image_file(image_id)
        image = self.store.get_image(image_id)
        method = method or defaults["method"]
        size = size or defaults["size"]
        regions = region_map(image.path, method, size)
        return {
            "image_id": image_id,
            "width": int(regions.shape[1]),
            "height": int(regions.shape[0]),
            "method": method,
            "size": size,
            "n_regions": int(regions.max()) + 1 if regions.size else 0,
            "runs": region_runs(regions),
        }

    # --------------------------------------------------------------- similar
    def similar(self, image_id: int, k: int, author: str | None = None) -> dict[str, Any]:
        """The ``k`` images most like ``image_id`` (cosine similarity of backbone embeddings), best first.

        Never builds the FAISS index (``loop.similar``) in the request: while it is missing or out
        of date with the store's images, a background build is started and the answer has no
        items and ``index: {"status": "building"}`` (or ``failed``, with the reason).
        """
        self.store.get_image(image_id)  # 404 before any index work
        index = self.similar_images
        assert index is not None
        pairs = index.search(image_id, k)
        if pairs is None:
            index.start_build()
            return {"image_id": image_id, "k": k, "items": [], "index": index.status()}
        leases = self.store.live_leases()
        items = []
        for iid, score in pairs:
            item = self.item(self.store.get_image(iid), origin="similar", history=True, author=author, leases=leases)
            if item["history"]:
                item.update(self._current(item["history"][-1]))
            item["history"] = None
            item["similarity"] = score
            items.append(item)
        info = index.info
        assert info is not None
        return {
            "image_id": image_id,
            "k": k,
            "items": items,
            "index": {"status": "ready", "kind": info.kind, "size": info.n},
        }

    # ----------------------------------------------------------------- stats
    def stats(self) -> dict[str, Any]:
        summary = self.store.summary()
        session = self.session()
        curve = session.curve()
        over_time = [
            {"t": when.isoformat(), "n": n} for when, n in self.store.labels_over_time(max_points=MAX_CURVE_POINTS)
        ]
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
            "review": self.review_waiting(),
            "queue_length": len(session.queue()),
            "labels_over_time": over_time,
            "curve_metrics": [{"key": key, "name": name} for key, name in CURVE_METRICS[self.answer]],
            "curve": self._curve(),
            "latest_round": None
            if not rounds
            else {
                "number": rounds[-1].number,
                "n_labeled": rounds[-1].n_labeled,
                "finished_at": rounds[-1].finished_at.isoformat() if rounds[-1].finished_at else None,
                **_training_info(rounds[-1].metrics or {}),
            },
            "stop_reason": session.stop_reason(StoppingRules(plateau_rounds=3)) if curve else None,
            "trainer": self.trainer.status(),
            "holdout": self.holdout(),
            "live_leases": len(self.store.live_leases()),
        }

    def _curve(self) -> list[dict[str, Any]]:
        """The learning curve of finished rounds that trained a model, oldest first: labels used, the
        project's curve metrics and ``accuracy`` on the eval set (None where a round has none), agreement."""
        keys = dict.fromkeys(["accuracy", *(key for key, _ in CURVE_METRICS[self.answer])])
        points = []
        for rnd in self.store.rounds():
            if rnd.status != "done" or not rnd.metrics or rnd.metrics.get("cold_start"):
                continue  # a cold-start round trained no model: no point on the curve
            scores = rnd.metrics.get("eval") or {}
            points.append(
                {
                    "n_labeled": rnd.n_labeled,
                    **{k: scores.get(k) for k in keys},
                    "agreement": rnd.metrics.get("agreement"),
                }
            )
        return points

    def export(self, fmt: str, include_eval: bool) -> Path:
        if fmt not in ("csv", "parquet"):
            raise InputError(f"format must be csv or parquet, got {fmt!r}")
        folder = Path(tempfile.mkdtemp(prefix="activelab-export-"))
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        return export_labels(
            self.store, folder / f"labels-{stamp}.{fmt}", fmt=fmt, include_eval=include_eval, task=self.task
        )


def _training_info(metrics: dict[str, Any]) -> dict[str, Any]:
    """What a round's model learned from besides its labels: ``semi_supervised`` (the method, ``none``),
    ``n_unlabeled`` (unlabeled pool images it used) and ``representation`` (the chosen extractor's label, or None)."""
    return {
        "semi_supervised": metrics.get("semi_supervised", "none"),
        "n_unlabeled": metrics.get("n_unlabeled", 0),
        "representation": (metrics.get("representation") or {}).get("label"),
    }


def _mix_by_value(
    review_ids: Sequence[int],
    review_scores: Sequence[float],
    new_ids: Sequence[int],
    confidences: Sequence[float],
    k: int,
) -> list[tuple[str, int]]:
    """The ActiveLab merge (:func:`activelab.label_errors.mix_queues`): a review item is worth ``1 - score``
    (its label-quality score: the chance the given label is wrong), a new image ``1 - confidence`` (the
    chance the model is wrong about it)."""
    mixed = mix_queues(review_ids, review_scores, new_ids, confidences, k=k, scores_are="quality")
    return [(m.kind, m.image_id) for m in mixed]
