"""Review queue (excludes what was reviewed after the ranking) and mixing it with the pool queue."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pandas as pd
import pytest

from activelab.exceptions import InputError, NotFoundError
from activelab.label_errors import (
    QueueItem,
    mix_queues,
    new_priority,
    review_priority,
    review_queue,
)
from activelab.store import ImageRecord, open_store
from activelab.tasks import get_task


def _ranking(image_ids: list[int], scores: list[float], flagged: list[bool], when: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": range(1, len(image_ids) + 1),
            "image_id": image_ids,
            "score": scores,
            "is_issue": flagged,
            "ranked_at": when.isoformat(),
        }
    )


def test_review_queue_excludes_reviewed_and_withdrawn(planted, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = planted.project.store
    ids = sorted(store.current_labels("pool"))[:6]
    a, b, c, d, e, f = ids
    # an old review (before the ranking) does not exclude; later decisions do
    store.add_label(f, store.current_labels()[f].label, author="ann", source="review", note="kept")
    ranked_at = datetime.now(timezone.utc) + timedelta(milliseconds=5)
    ranking = _ranking([c, a, b, d, e, f], [0.01, 0.02, 0.03, 0.04, 0.05, 0.9], [True] * 5 + [False], ranked_at)
    assert review_queue(store, ranking) == [c, a, b, d, e]
    assert review_queue(store, ranking, issues_only=False) == [c, a, b, d, e, f]
    assert review_queue(store, ranking, limit=2) == [c, a]
    assert review_queue(store, ranking, max_score=0.025) == [c, a]
    import time

    time.sleep(0.01)
    store.add_label(a, "bag", author="ann", source="correction")  # corrected after the ranking
    store.add_label(b, store.current_labels()[b].label, author="ann", source="review")  # confirmed
    store.add_label(d, None, author="ann", source="review", note="unsure")  # removed from training
    store.add_label(e, "bag", author="bob", source="review")
    store.add_label(e, "coat", author="carl", source="human")  # latest event not a review, but reviewed since
    assert review_queue(store, ranking) == [c]
    assert review_queue(
        store, ranking, reviewed_since=datetime.min.replace(tzinfo=timezone.utc), issues_only=False
    ) == [c]  # f's old review counts too
    # the CSV round trip the web app uses
    path = tmp_path / "ranking.csv"
    ranking.to_csv(path, index=False)
    assert review_queue(store, path) == [c]
    with pytest.raises(NotFoundError, match="activelab errors"):
        review_queue(store, tmp_path / "missing.csv")
    with pytest.raises(InputError, match="ranked_at"):
        review_queue(store, ranking.drop(columns="ranked_at"))


def test_review_queue_serves_sets_and_leaves_out_changed_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'tags.db'}")
    store.add_classes(["bag", "shirt", "sandal"])
    records = [ImageRecord(sha256=f"{n:064x}", path=f"/img/{n}.png", width=8, height=8, n_bytes=10) for n in range(5)]
    store.add_images(records, author="import")
    a, b, c, d, e = sorted(img.id for img in store.images())
    given = {a: ["bag", "shirt"], b: [], c: ["sandal"], d: ["bag"], e: ["shirt"]}
    store.add_annotations(list(given.items()), author="ann", source="human")
    ranked_at = datetime.now(timezone.utc) + timedelta(milliseconds=5)
    ranking = _ranking([c, b, a, d, e], [0.01, 0.02, 0.03, 0.04, 0.05], [True] * 5, ranked_at).assign(
        given_label=["sandal", "", "bag|shirt", "bag", "shirt"]
    )
    task = get_task("multilabel")
    assert review_queue(store, ranking, task=task) == [c, b, a, d, e]  # sets, the empty set too, are reviewable
    import time

    time.sleep(0.01)
    store.add_annotations([(c, ["sandal", "shirt"])], author="bob", source="human")  # changed since the ranking
    store.add_annotations([(d, ["bag"])], author="bob", source="human")  # the same set again: still the one ranked
    store.add_annotations([(e, ["shirt"])], author="cy", source="review")  # confirmed
    assert review_queue(store, ranking, task=task) == [b, a, d]
    assert review_queue(store, ranking) == [c, b, a, d]  # without the task, given labels are not compared
    path = tmp_path / "ranking.csv"
    ranking.to_csv(path, index=False)  # the CSV reads the empty set back as a blank cell
    assert review_queue(store, path, task=task) == [b, a, d]
    store.close()


def test_mix_queues_hand_made_case() -> None:
    # review values = 1 - label quality; new values = 1 - max prob
    review_ids, review_quality = [1, 2, 3], [0.05, 0.6, 0.3]  # values 0.95, 0.4, 0.7
    new_ids, new_maxprob = [10, 11, 12], [0.5, 0.3, 0.9]  # values 0.5, 0.7, 0.1
    mixed = mix_queues(review_ids, review_quality, new_ids, new_maxprob, scores_are="quality")
    assert [(m.kind, m.image_id) for m in mixed] == [
        ("review", 1),
        ("review", 3),
        ("new", 11),
        ("new", 10),
        ("review", 2),
        ("new", 12),
    ]
    assert mixed[0] == QueueItem("review", 1, pytest.approx(0.95))
    # same thing from priorities; weights; k; an id in both queues appears once, as review
    rp, nprio = (
        review_priority(review_quality),
        new_priority(pd.DataFrame([[0.5, 0.5], [0.3, 0.7], [0.9, 0.1]]).to_numpy()),
    )
    assert nprio.tolist() == pytest.approx([0.5, 0.3, 0.1])
    assert [m.image_id for m in mix_queues(review_ids, rp, new_ids, [0.5, 0.7, 0.1])] == [1, 3, 11, 10, 2, 12]
    assert [m.image_id for m in mix_queues(review_ids, rp, new_ids, [0.5, 0.7, 0.1], review_weight=0.5, k=3)] == [
        11,
        10,
        1,
    ]
    assert [m.image_id for m in mix_queues([5], [0.2], [5, 6], [0.9, 0.2])] == [5, 6]
    assert [m.kind for m in mix_queues([5], [0.2], [5, 6], [0.9, 0.2])] == ["review", "new"]
    assert mix_queues([], [], [], []) == []
    with pytest.raises(InputError, match="one score per id"):
        mix_queues([1], [], [], [])
    with pytest.raises(InputError, match="NaN"):
        mix_queues([1], [float("nan")], [], [])
