"""Labeling-queue rules on a real store: hold-out decision, leasing order, review batches, mixing reviews in."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from activelab.loop.queue import (
    HOLDOUT_KEY,
    LabelQueue,
    flagged_image_ids,
    holdout_rule,
    holdout_state,
    is_held_out,
    review_batch,
)
from activelab.store import ImageRecord, Store, open_store, sqlite_url


def _record(n: int, split: str = "pool") -> ImageRecord:
    return ImageRecord(sha256=f"{n:064x}", path=f"/img/{n}.png", width=4, height=4, n_bytes=100 + n, split=split)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """Eight pool images (ids 1..8) and two classes, no labels."""
    s = open_store(sqlite_url(tmp_path / "queue.db"))
    s.add_classes(["cat", "dog"])
    s.add_images([_record(n) for n in range(1, 9)], author="import")
    yield s
    s.close()


def test_holdout_rule_is_the_documented_hash_threshold() -> None:
    # sha256("7:" + 64 hex digits of n)[:16] / 16**16 is 0.887, 0.823, 0.111 for n = 1, 2, 3
    assert [holdout_rule(f"{n:064x}", 0.5, 7) for n in (1, 2, 3)] == [False, False, True]
    assert holdout_rule(f"{1:064x}", 0.9, 7) is True
    assert holdout_rule(f"{3:064x}", 0.0, 7) is False


def test_holdout_state_is_decided_once_and_persisted(store: Store) -> None:
    state = holdout_state(store, eval_fraction=0.5, seed=7)
    assert (state["enabled"], state["fraction"], state["seed"]) == (True, 0.5, 7)
    assert store.service_state(HOLDOUT_KEY) == state
    # later settings do not change the decision already made
    assert holdout_state(store, eval_fraction=0.0, seed=1) == state
    images = {img.id: img for img in store.images()}
    assert [iid for iid in sorted(images) if is_held_out(state, images[iid])] == [3]


def test_a_project_with_eval_images_holds_nothing_out(store: Store) -> None:
    store.add_images([_record(9, split="eval")], author="import")
    state = holdout_state(store, eval_fraction=0.5, seed=7)
    assert (state["enabled"], state["fraction"]) == (False, 0.0)
    assert not is_held_out(state, store.get_image(3))


def test_lease_new_takes_the_queue_first_then_the_pool_and_respects_others_leases(store: Store) -> None:
    rules = LabelQueue(store, lease_seconds=60)
    assert rules.lease_new("ann", 3, [5, 2], exclude=[]) == [5, 2, 1]
    assert rules.lease_new("bob", 2, [5, 2], exclude=[]) == [3, 4]  # ann's images are hers for now
    assert rules.lease_new("ann", 2, [5, 2], exclude=[5, 2, 1]) == [6, 7]
    assert store.live_leases() == {5: "ann", 2: "ann", 1: "ann", 3: "bob", 4: "bob", 6: "ann", 7: "ann"}


def _by_value(
    review_ids: Sequence[int],
    review_scores: Sequence[float],
    new_ids: Sequence[int],
    confidences: Sequence[float],
    k: int,
) -> list[tuple[str, int]]:
    """The ActiveLab merge written out: review worth 1 - score, new 1 - confidence, highest first."""
    entries = [(1 - s, "review", i) for i, s in zip(review_ids, review_scores)]
    entries += [(1 - c, "new", i) for i, c in zip(new_ids, confidences)]
    return [(kind, iid) for _, kind, iid in sorted(entries, key=lambda e: -e[0])[:k]]


def test_lease_mixed_interleaves_reviews_by_value_and_leases_them(store: Store) -> None:
    store.add_labels([(1, "cat"), (2, "dog")], author="ann")
    number = store.start_round(strategy="margin", model="m", config={}, n_labeled=2)
    store.finish_round(number, metrics={}, selection=[(iid, None) for iid in (5, 6, 7)])
    store.save_predictions(number, [(5, "cat", 0.9), (6, "dog", 0.2), (7, "cat", 0.6)])
    rules = LabelQueue(store, lease_seconds=60)
    # image 1's label is likely wrong (quality 0.05 -> worth 0.95), image 2's likely right (0.99 -> 0.01)
    mixed = rules.lease_mixed("zed", 4, [5, 6, 7], [], [(1, 0.05), (2, 0.99)], mix=_by_value)
    # values: review 1 = 0.95, new 6 = 0.8, new 7 = 0.4, new 5 = 0.1; new images keep the queue's order
    assert mixed == [("review", 1), ("new", 5), ("new", 6), ("new", 7)]
    assert store.live_leases() == {1: "zed", 5: "zed", 6: "zed", 7: "zed"}


def test_lease_mixed_is_none_without_free_reviews(store: Store) -> None:
    store.add_labels([(1, "cat")], author="ann")
    rules = LabelQueue(store, lease_seconds=60)
    assert rules.lease_mixed("zed", 3, [5], [], [], mix=_by_value) is None
    store.lease_image(1, "bob", ttl_seconds=60)  # the only review candidate is someone else's now
    assert rules.lease_mixed("zed", 3, [5], [], [(1, 0.1)], mix=_by_value) is None
    store.skip_image(5, "zed")
    assert rules.lease_mixed("bob", 3, [5], [1], [(1, 0.1)], mix=_by_value) is None  # bob already holds it


def test_review_batch_serves_flags_first_then_label_errors_once_each(store: Store) -> None:
    store.submit_label(3, "cat", author="ann")
    assert store.submit_label(3, "dog", author="bob").flagged
    store.submit_label(4, "cat", author="ann")
    assert store.submit_label(4, "dog", author="bob").flagged
    assert flagged_image_ids(store) == {3, 4}
    asked: list[bool] = []

    def errors() -> list[int]:
        asked.append(True)
        return [4, 1, 2]

    seen: set[int] = set()
    batch = review_batch(store, 3, seen, errors)
    assert [(iid, flag is not None and flag.reason) for iid, flag in batch] == [
        (3, "disagreement"),
        (4, "disagreement"),
        (1, False),
    ]
    assert seen == {3, 4, 1}
    assert [iid for iid, _ in review_batch(store, 5, seen, errors)] == [2]
    asked.clear()
    assert [iid for iid, _ in review_batch(store, 1, set(), errors)] == [3]
    assert asked == [], "the label-error queue is not read when flags fill the batch"
