"""Annotation payloads (schema v4): multi-label events beside single-label ones, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from activelab.exceptions import InputError, StoreError
from activelab.store import ImageRecord, Store
from activelab.store import schema as t


def _images(store: Store, n: int) -> list[int]:
    records = [ImageRecord(f"{i:064x}", f"/img/{i}.png", 4, 4, 10) for i in range(n)]
    return store.add_images(records, author="ann").image_id


@pytest.fixture
def tagged(store: Store) -> tuple[Store, list[int]]:
    store.add_classes(["shirt", "bag", "shoe"])
    return store, _images(store, 4)


def test_a_list_payload_is_stored_sorted_and_a_name_as_a_class(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    event_ids = store.add_annotations(
        [(ids[0], ["shoe", "bag", "shoe"]), (ids[1], "shirt"), (ids[2], [])], author="ann", source="human"
    )
    assert len(event_ids) == 3
    with store.engine.connect() as conn:
        rows = conn.execute(
            select(t.label_events.c.class_id, t.label_events.c.annotation).order_by(t.label_events.c.id)
        ).all()
        sql_nulls = conn.scalar(select(func.count()).where(t.label_events.c.annotation.is_(None)))
    assert [tuple(r) for r in rows] == [(None, ["bag", "shoe"]), (1, None), (None, [])]
    assert sql_nulls == 1  # a single-label event's annotation is SQL NULL, not JSON null
    current = store.current_annotations()
    assert {iid: a.payload for iid, a in current.items()} == {ids[0]: ["bag", "shoe"], ids[1]: "shirt", ids[2]: []}
    assert (current[ids[0]].author, current[ids[0]].source, current[ids[0]].round_number) == ("ann", "human", 0)
    assert set(store.current_labels()) == {ids[1]}  # the single-label view sees single-label events only


def test_history_exposes_annotations_and_withdrawals(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    store.add_annotations([(ids[0], ["bag"])], author="ann", source="human", round_number=3, note="first")
    store.add_annotations([(ids[0], None)], author="bob", source="review")
    store.add_label(ids[0], "shirt", author="cy", source="correction")
    history = store.label_history(ids[0])
    assert [(e.label, e.annotation, e.payload, e.author) for e in history] == [
        (None, ["bag"], ["bag"], "ann"),
        (None, None, None, "bob"),
        ("shirt", None, "shirt", "cy"),
    ]
    assert (history[0].round_number, history[0].note) == (3, "first")


def test_unknown_retired_and_malformed_payloads_write_nothing(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    with pytest.raises(InputError, match=r"unknown class name\(s\) \['zebra'\]"):
        store.add_annotations([(ids[0], ["bag"]), (ids[1], ["bag", "zebra"])], author="ann", source="human")
    store.retire_class("shoe", author="ann")
    with pytest.raises(InputError, match=r"\['shoe'\] are retired"):
        store.add_annotations([(ids[0], ["shoe"])], author="ann", source="human")
    with pytest.raises(InputError, match="a class name or a list of class names, got 3"):
        store.add_annotations([(ids[0], 3)], author="ann", source="human")  # type: ignore[list-item]
    with pytest.raises(InputError, match="label source must be one of"):
        store.add_annotations([(ids[0], ["bag"])], author="ann", source="guess")
    assert store.n_label_events() == 0


def test_submit_annotation_flags_a_different_set_from_another_person(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    assert store.lease_next("bob", 1, ttl_seconds=60) == [ids[0]]
    first = store.submit_annotation(ids[0], ["bag", "shirt"], author="ann")
    same = store.submit_annotation(ids[0], ["shirt", "bag"], author="bob")  # the same set, in another order
    assert (first.flagged, same.flagged) == (False, False)
    assert store.live_leases() == {}  # bob's lease went with his answer
    other = store.submit_annotation(ids[0], ["bag"], author="cy")
    assert other.flagged
    (flag,) = store.review_flags()
    assert flag.details == {
        "labels": {"bob": ["bag", "shirt"], "cy": ["bag"]},
        "events": [same.event_id, other.event_id],
    }
    store.submit_annotation(ids[0], ["bag"], author="dee", source="review")
    assert store.review_flags() == []


def test_submit_annotation_holds_out_and_an_empty_set_counts_as_labeled(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    outcome = store.submit_annotation(ids[1], [], author="ann", hold_out=True)
    assert outcome.held_out and store.get_image(ids[1]).split == "eval"
    assert store.current_annotations("eval")[ids[1]].payload == []
    assert ids[1] not in store.lease_next("bob", 4, ttl_seconds=60)
    assert store.labels_over_time() == [(store.label_history(ids[1])[0].created_at, 1)]


def test_submit_label_is_unchanged_for_single_label_answers(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    store.submit_label(ids[0], "bag", author="ann")
    outcome = store.submit_label(ids[0], "shoe", author="bob")
    assert outcome.flagged
    (flag,) = store.review_flags()
    assert flag.details["labels"] == {"ann": "bag", "bob": "shoe"}
    assert store.current_labels()[ids[0]].label == "shoe"


def test_undo_restores_the_previous_annotation(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    store.add_annotations([(ids[0], ["bag"])], author="oracle", source="oracle")
    store.submit_annotation(ids[0], ["bag", "shoe"], author="ann")
    undo = store.undo_last_label("ann")
    assert undo is not None
    assert (undo.restored_label, undo.restored_annotation) == (None, ["bag"])
    assert store.current_annotations()[ids[0]].payload == ["bag"]


def test_a_class_in_a_current_annotation_cannot_be_retired(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    store.add_annotations([(ids[0], ["bag", "shoe"]), (ids[1], ["shoe"])], author="ann", source="human")
    with pytest.raises(StoreError, match="'shoe' is the current label of 2 image"):
        store.retire_class("shoe", author="ann")
    store.add_annotations([(ids[0], ["bag"]), (ids[1], [])], author="ann", source="correction")
    store.retire_class("shoe", author="ann")
    assert store.retired_classes() == ["shoe"]


def test_summary_counts_a_multi_label_image_once_and_under_each_class(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    store.add_annotations([(ids[0], ["bag", "shoe"]), (ids[1], []), (ids[2], ["bag"])], author="ann", source="human")
    summary = store.summary()
    assert summary["labeled"] == {"pool": 3, "eval": 0}
    assert {name: counts["pool"] for name, counts in summary["per_class"].items()} == {"shirt": 0, "bag": 2, "shoe": 1}


def test_add_images_reports_a_conflict_with_a_multi_label_image(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    store.add_annotations([(ids[0], ["bag"])], author="ann", source="human")
    again = store.add_images([ImageRecord(f"{0:064x}", "/img/0.png", 4, 4, 10, label="bag")], author="bob")
    assert again.status == ["label_conflict"] and again.labels_added == 0


def test_a_round_keeps_predicted_sets_beside_predicted_classes(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    number = store.start_round(strategy="margin", model="m", config={}, n_labeled=0)
    store.finish_round(
        number, metrics={}, selection=[], predictions=[(ids[0], ["shoe", "bag"], 0.8), (ids[1], "shirt", 0.6)]
    )
    assert store.latest_predictions(ids) == {ids[0]: (["bag", "shoe"], 0.8, 1), ids[1]: ("shirt", 0.6, 1)}
    store.save_predictions(number, [(ids[0], [], 0.9)])
    assert store.latest_predictions(ids) == {ids[0]: ([], 0.9, 1)}


def test_add_images_records_sets_with_the_images_in_one_write(tagged: tuple[Store, list[int]]) -> None:
    store, ids = tagged
    records = [
        ImageRecord(f"{9:064x}", "/img/9.png", 4, 4, 10, label=["shoe", "bag"]),  # new image, a set
        ImageRecord(f"{1:064x}", "/img/1.png", 4, 4, 10, label=[]),  # stored unlabeled: "none of these" added
    ]
    outcome = store.add_images(records, author="ann")
    assert (outcome.status, outcome.labels_added) == (["added", "labeled"], 2)
    current = store.current_annotations()
    assert (current[outcome.image_id[0]].payload, current[ids[1]].payload) == (["bag", "shoe"], [])
    again = store.add_images(
        [
            ImageRecord(f"{9:064x}", "/img/9.png", 4, 4, 10, label=["bag", "shoe"]),
            ImageRecord(f"{1:064x}", "/img/1.png", 4, 4, 10, label=["bag"]),
        ],
        author="bob",
    )
    assert (again.status, again.labels_added) == (["duplicate", "label_conflict"], 0)
    with pytest.raises(InputError, match="hat"):
        store.add_images([ImageRecord(f"{8:064x}", "/img/8.png", 4, 4, 10, label=["hat"])], author="ann")
    assert store.find_image(f"{8:064x}") is None


def test_payload_classes_names_the_classes_of_every_kind_of_payload() -> None:
    from activelab.store.classes import payload_classes

    assert payload_classes("bag") == ["bag"]
    assert payload_classes(["bag", "coat"]) == ["bag", "coat"]
    boxes = [
        {"class": "bag", "x": 1, "y": 2, "w": 3, "h": 4},
        {"x": 0},
        {"class": "bag", "x": 5, "y": 5, "w": 2, "h": 2},
    ]
    assert payload_classes(boxes) == ["bag", "bag"]  # one name per box; a box without a class names none
    assert payload_classes([]) == [] and payload_classes(None) == [] and payload_classes(float("nan")) == []
    assert payload_classes(3) == ["3"]  # an integer label column
