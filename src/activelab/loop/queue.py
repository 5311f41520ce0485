"""Labeling-queue rules: which images a labeler gets next, and which answers are held out for evaluation.

The labeling app (and any other front end) calls these; they hold no state of their own
beyond the store, so a restarted server hands out the same images in the same order.

- **New images**: the active-learning queue (latest round's selection, best first) and
  then the rest of the pool, leased to one author at a time (:meth:`LabelQueue.lease_new`).
- **Mixed with reviews** (``serve --mix-review``): likely label errors interleaved with
  new images by value (:meth:`LabelQueue.lease_mixed`; the merge rule is passed in, e.g.
  :func:`activelab.label_errors.mix_queues`, which sits above the loop).
- **Review mode**: images with an open review flag (labelers disagreed) first, then likely
  label errors (:func:`review_batch`).
- **Hold-out**: a project without an ``eval`` split keeps a deterministic fraction of human
  labels aside for evaluation (:func:`holdout_state`, :func:`holdout_rule`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from activelab.store import Image, Store

#: the ``service_state`` key of the persisted hold-out decision
HOLDOUT_KEY = "holdout"

#: merges review candidates (ids, label-quality scores) with new candidates (ids, model confidences)
#: into up to ``k`` ``(kind, image_id)`` pairs, most valuable first; ``kind`` is ``"review"`` or ``"new"``
MixRule = Callable[[Sequence[int], Sequence[float], Sequence[int], Sequence[float], int], Sequence[tuple[str, int]]]


def holdout_rule(sha256: str, fraction: float, seed: int) -> bool:
    """Whether a human-labeled pool image is held out for evaluation.

    Deterministic in the image content and the seed: the first 8 bytes of
    ``sha256(f"{seed}:{image sha256}")`` read as a number in [0, 1) below
    ``fraction``. The same image is always held out (or not), whoever labels it.
    """
    digest = hashlib.sha256(f"{seed}:{sha256}".encode()).hexdigest()
    return int(digest[:16], 16) / 16**16 < fraction


def holdout_state(store: Store, *, eval_fraction: float, seed: int) -> dict[str, Any]:
    """The evaluation hold-out decision, made once per project and persisted (``service_state``).

    A project with an ``eval`` split evaluates on it; one without holds out ``eval_fraction``
    of human labels (see :func:`holdout_rule`). Later settings changes do not move images
    already decided: the first decision stays.
    """
    state = store.service_state(HOLDOUT_KEY)
    if state is None:
        enabled = store.n_images("eval") == 0 and eval_fraction > 0
        state = {
            "enabled": enabled,
            "fraction": eval_fraction if enabled else 0.0,
            "seed": seed,
            "rule": "sha256(f'{seed}:{image sha256}')[:16 hex] / 16**16 < fraction",
        }
        store.set_service_state(HOLDOUT_KEY, state)
    return state


def is_held_out(state: dict[str, Any], image: Image) -> bool:
    """Whether a human answer for ``image`` moves it to the ``eval`` split under the hold-out ``state``."""
    return (
        bool(state["enabled"])
        and image.split == "pool"
        and holdout_rule(image.sha256, float(state["fraction"]), int(state["seed"]))
    )


def flagged_image_ids(store: Store) -> set[int]:
    """Images with an open review flag (read in pages: an image may have several flags)."""
    ids: set[int] = set()
    offset = 0
    while flags := store.review_flags(offset=offset, limit=500):
        ids.update(f.image_id for f in flags)
        offset += len(flags)
    return ids


def review_batch(
    store: Store, n: int, seen: set[int], label_errors: Callable[[], Sequence[int]]
) -> list[tuple[int, Any]]:
    """Up to ``n`` images to review: open review flags first (oldest first), then likely label errors.

    ``seen``: image ids the caller already holds (updated in place with those returned);
    ``label_errors``: the label-error review queue, most likely wrong first, asked for only when
    flags do not fill the batch. Returns ``(image_id, flag)``: the store's review flag, None for a label error.
    """
    out: list[tuple[int, Any]] = []
    offset = 0
    while len(out) < n:
        flags = store.review_flags(offset=offset, limit=100)
        if not flags:
            break
        offset += len(flags)
        for flag in flags:
            if flag.image_id in seen or len(out) >= n:
                continue
            seen.add(flag.image_id)
            out.append((flag.image_id, flag))
    if len(out) < n:
        for iid in label_errors():
            if len(out) >= n:
                break
            if iid in seen:
                continue
            seen.add(iid)
            out.append((iid, None))
    return out


@dataclass
class LabelQueue:
    """Leases images to authors in queue order; a lease lasts ``lease_seconds`` and is advisory."""

    store: Store
    lease_seconds: float

    def lease_new(self, author: str, n: int, queue: Sequence[int], exclude: Sequence[int]) -> list[int]:
        """Lease up to ``n`` unlabeled images to ``author``: ``queue`` order first, then the pool.

        Left out: ``exclude`` (what the caller holds), images leased to someone else, images
        ``author`` skipped. An image of ``queue`` that a region round asks again for (labeled in
        part before it: ``Store.asked_mask_keys``) is leased although it has label events.
        """
        reopened = self.store.asked_mask_keys(list(queue)).keys()
        return self.store.lease_next(
            author,
            n,
            ttl_seconds=self.lease_seconds,
            preferred=list(queue),
            exclude=list(exclude),
            reopened=set(reopened),
        )

    def lease_mixed(
        self,
        author: str,
        n: int,
        queue: Sequence[int],
        exclude: Sequence[int],
        reviews: Sequence[tuple[int, float]],
        *,
        mix: MixRule,
    ) -> list[tuple[str, int]] | None:
        """Likely label errors interleaved with new images by value, all leased to ``author``.

        ``reviews``: ``(image_id, label-quality score)`` of the review queue, most likely wrong
        first. Review candidates and queue candidates (each the first ``n`` not held, not
        skipped by ``author``, not leased to someone else) go to ``mix`` with the latest
        round's confidence of each new image (0 when unscored: most valuable). New images
        keep the queue's order among themselves and are leased as usual; review items are
        leased too, so two labelers don't get the same one. Returns ``(kind, image_id)``,
        ``kind`` ``"review"`` or ``"new"``, most valuable first; None when nothing is to be
        reviewed (then the plain queue order applies).
        """
        held = set(exclude)
        leases = self.store.live_leases()
        skipped = self.store.skipped_ids(author)

        def free(iid: int) -> bool:
            return iid not in held and iid not in skipped and leases.get(iid, author) == author

        review = [(iid, score) for iid, score in reviews if free(iid)][:n]
        if not review:
            return None
        candidates = [iid for iid in queue if free(iid)][:n]
        predictions = self.store.latest_predictions(candidates)
        confidences = [predictions[i][1] if i in predictions else 0.0 for i in candidates]
        mixed = mix([i for i, _ in review], [s for _, s in review], candidates, confidences, n)
        picked = [iid for kind, iid in mixed if kind == "review"]
        n_new = len(mixed) - len(picked)
        new_ids = iter(self.lease_new(author, n_new, queue, [*exclude, *picked]) if n_new else [])
        for iid in picked:
            self.store.lease_image(iid, author, ttl_seconds=self.lease_seconds)
        out: list[tuple[str, int]] = []
        for kind, iid in mixed:
            if kind == "review":
                out.append(("review", iid))
            elif (new_id := next(new_ids, None)) is not None:  # None: the pool ran dry
                out.append(("new", new_id))
        return out
