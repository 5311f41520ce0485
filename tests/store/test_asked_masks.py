"""Region rounds (segmentation, schema v5): each selected image's asked pixels are a mask key on its selection
row, and label events hold mask references (dict payloads) read back as dicts, on SQLite and PostgreSQL."""

from __future__ import annotations

from activelab.store import ImageRecord, Store

ASKED = "a" * 64
MASK_1 = {"mask": "1" * 64, "width": 4, "height": 4, "labeled": 6}
MASK_2 = {"mask": "2" * 64, "width": 4, "height": 4, "labeled": 16}


def _images(store: Store, n: int) -> list[int]:
    records = [ImageRecord(f"{i:064x}", f"/img/{i}.png", 4, 4, 10) for i in range(n)]
    return store.add_images(records, author="ann").image_id


def test_a_region_round_records_the_asked_mask_of_each_image_it_asks_in_part(store: Store) -> None:
    ids = _images(store, 3)
    first = store.start_round(strategy="region_entropy", model="m", config={}, n_labeled=0)
    store.finish_round(first, metrics={}, selection=[(ids[0], 0.9), (ids[1], 0.5)], asked={ids[0]: ASKED})
    assert store.round_selection(first) == [(ids[0], 0.9), (ids[1], 0.5)]
    assert store.round_asked(first) == {ids[0]: ASKED}
    assert store.asked_mask_key(ids[0]) == ASKED
    assert store.asked_mask_key(ids[1]) is None and store.asked_mask_key(ids[2]) is None  # whole image; never asked
    second = store.start_round(strategy="seg_entropy", model="m", config={}, n_labeled=0)
    assert store.asked_mask_key(ids[0]) == ASKED  # a running round is not a selection yet
    store.finish_round(second, metrics={}, selection=[(ids[0], 0.7)])
    assert store.asked_mask_key(ids[0]) is None  # the latest round that picked it asks for the whole image
    assert store.round_asked(first) == {ids[0]: ASKED}


def test_mask_references_are_stored_as_dicts_and_each_event_keeps_its_own(store: Store) -> None:
    ids = _images(store, 2)
    store.add_classes(["background", "shirt"])
    store.add_images([ImageRecord(f"{9:064x}", "/img/9.png", 4, 4, 10, label=MASK_1)], author="ann")
    store.add_annotations([(ids[0], MASK_1)], author="ann", source="human")
    store.submit_annotation(ids[0], MASK_2, author="ann")
    history = store.label_history(ids[0])
    assert [e.payload for e in history] == [MASK_1, MASK_2]
    assert store.current_annotations()[ids[0]].payload == MASK_2
    undo = store.undo_last_label("ann")
    assert undo is not None and undo.restored_annotation == MASK_1
    assert {iid: a.payload for iid, a in store.current_annotations().items()}[ids[0]] == MASK_1
    rnd = store.start_round(strategy="seg_entropy", model="m", config={}, n_labeled=1)
    store.finish_round(rnd, metrics={}, selection=[(ids[1], 0.4)], predictions=[(ids[1], MASK_2, 0.4)])
    assert store.latest_predictions([ids[1]]) == {ids[1]: (MASK_2, 0.4, rnd)}


def test_an_image_asked_again_in_part_is_leased_despite_its_label(store: Store) -> None:
    from activelab.loop.queue import LabelQueue

    ids = _images(store, 3)
    store.add_classes(["background", "shirt"])
    store.add_annotations([(ids[0], MASK_1), (ids[1], MASK_1)], author="ann", source="human")
    rnd = store.start_round(strategy="region_entropy", model="m", config={}, n_labeled=2)
    store.finish_round(rnd, metrics={}, selection=[(ids[0], 0.9), (ids[1], 0.8)], asked={ids[0]: ASKED})
    assert store.asked_mask_keys([ids[0], ids[1], ids[2]]) == {ids[0]: ASKED}
    assert store.lease_next("bob", 1, ttl_seconds=60, preferred=[ids[0]]) == [ids[2]]  # labeled: not again
    assert LabelQueue(store, 60).lease_new("cy", 2, [ids[0], ids[1]], []) == [ids[0]]  # ids[1] asked whole: done


def test_a_later_mask_from_another_person_is_no_disagreement(store: Store) -> None:
    ids = _images(store, 1)
    store.add_classes(["background", "shirt"])
    store.submit_annotation(ids[0], MASK_1, author="ann")
    outcome = store.submit_annotation(ids[0], MASK_2, author="bob")
    assert not outcome.flagged and store.review_flags() == []
    assert store.current_annotations()[ids[0]].payload == MASK_2
