"""The store on SQLite and PostgreSQL: append-only labels, derived current label, rounds."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import text

from activelab.exceptions import InputError, NotFoundError, StoreError
from activelab.store import ImageRecord, Store


def rec(n: int, label: str | None = None, split: str = "pool") -> ImageRecord:
    return ImageRecord(
        sha256=f"{n:064x}", path=f"/img/{n}.png", width=28, height=28, n_bytes=100 + n, split=split, label=label
    )


def test_classes_keep_order_and_ignore_repeats(store: Store) -> None:
    assert store.add_classes(["cat", "dog"]) == ["cat", "dog"]
    assert store.add_classes(["dog", "bird", "bird"]) == ["bird"]
    assert store.class_names() == ["cat", "dog", "bird"]


def test_bad_class_names_are_refused(store: Store) -> None:
    with pytest.raises(InputError, match="empty"):
        store.add_classes([" "])
    with pytest.raises(InputError, match="comma"):
        store.add_classes(["a,b"])


def test_add_images_dedupes_by_content_and_records_labels(store: Store) -> None:
    store.add_classes(["cat", "dog"])
    out = store.add_images([rec(1, "cat"), rec(2), rec(1)], author="ann")
    assert out.status == ["added", "added", "duplicate"]
    assert out.image_id[0] == out.image_id[2]
    assert out.labels_added == 1
    again = store.add_images([rec(1, "cat"), rec(2, "dog"), rec(1, "dog")], author="bob")
    assert again.status == ["duplicate", "labeled", "label_conflict"]
    labels = store.current_labels()
    assert {labels[i].label for i in labels} == {"cat", "dog"}
    assert labels[out.image_id[0]].author == "ann"
    assert labels[out.image_id[1]].author == "bob"


def test_unknown_class_writes_nothing(store: Store) -> None:
    store.add_classes(["cat"])
    with pytest.raises(InputError, match="unknown class name.*'zebra'"):
        store.add_images([rec(1, "cat"), rec(2, "zebra")], author="ann")
    assert store.images() == []
    assert store.n_label_events() == 0


def test_correction_appends_and_history_keeps_everything(store: Store) -> None:
    store.add_classes(["cat", "dog"])
    (iid,) = store.add_images([rec(1, "cat")], author="ann").image_id
    store.add_label(iid, "dog", author="rev", source="correction", note="ears")
    store.add_label(iid, None, author="rev2", source="review")
    assert iid not in store.current_labels()
    store.add_label(iid, "cat", author="rev3", source="correction")
    history = store.label_history(iid)
    assert [(e.label, e.author, e.source) for e in history] == [
        ("cat", "ann", "import"),
        ("dog", "rev", "correction"),
        (None, "rev2", "review"),
        ("cat", "rev3", "correction"),
    ]
    assert history[1].note == "ears"
    assert store.current_labels()[iid].author == "rev3"


def test_label_checks(store: Store) -> None:
    store.add_classes(["cat"])
    (iid,) = store.add_images([rec(1)], author="a").image_id
    with pytest.raises(NotFoundError, match="999"):
        store.add_label(999, "cat", author="a")
    with pytest.raises(InputError, match="unknown class"):
        store.add_label(iid, "dog", author="a")
    with pytest.raises(InputError, match="label source"):
        store.add_label(iid, "cat", author="a", source="guess")
    with pytest.raises(InputError, match="author"):
        store.add_label(iid, "cat", author="")
    assert store.n_label_events() == 0


def test_splits_and_summary(store: Store) -> None:
    store.add_classes(["cat", "dog"])
    store.add_images([rec(1, "cat"), rec(2), rec(3, "dog", split="eval")], author="a")
    assert [i.sha256 for i in store.images("eval")] == [f"{3:064x}"]
    assert set(store.current_labels("pool")) == {store.images("pool")[0].id}
    summary = store.summary()
    assert summary["images"] == {"pool": 2, "eval": 1}
    assert summary["labeled"] == {"pool": 1, "eval": 1}
    assert summary["per_class"] == {"cat": {"pool": 1, "eval": 0}, "dog": {"pool": 0, "eval": 1}}
    with pytest.raises(InputError, match="split"):
        store.images("train")


def test_rounds_record_selection_and_advance_label_round(store: Store) -> None:
    store.add_classes(["cat"])
    ids = store.add_images([rec(1, "cat"), rec(2), rec(3)], author="a").image_id
    number = store.start_round(strategy="margin", model="m", config={"k": 2}, n_labeled=1)
    assert number == 1 and store.round_number() == 0
    store.finish_round(number, metrics={"accuracy": 0.5}, selection=[(ids[2], 0.9), (ids[1], 0.1)])
    assert store.round_number() == 1
    assert store.round_selection(1) == [(ids[2], 0.9), (ids[1], 0.1)]
    store.add_label(ids[2], "cat", author="a")
    assert store.current_labels()[ids[2]].round_number == 1
    (rnd,) = store.rounds()
    assert (rnd.status, rnd.metrics, rnd.config) == ("done", {"accuracy": 0.5}, {"k": 2})
    with pytest.raises(StoreError, match="already done"):
        store.finish_round(1, metrics={}, selection=[])


def test_failed_round_does_not_count(store: Store) -> None:
    number = store.start_round(strategy="margin", model="m", config={}, n_labeled=0)
    store.fail_round(number, "killed")
    assert store.rounds()[0].status == "failed"
    assert store.round_number() == 0
    assert store.start_round(strategy="margin", model="m", config={}, n_labeled=0) == 2


def test_labels_over_time_is_thinned_in_sql(store: Store) -> None:
    store.add_classes(["cat"])
    ids = store.add_images([rec(n) for n in range(25)], author="a").image_id
    for iid in ids:
        store.add_label(iid, "cat", author="ann")
    store.add_label(ids[0], None, author="ann")  # a withdrawal is not a label
    points = store.labels_over_time(max_points=10)
    assert [n for _, n in points] == [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25]
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(points))
    assert store.labels_over_time(sources=("oracle",)) == []


def test_image_format_is_stored_and_read_back(store: Store) -> None:
    png = ImageRecord(sha256=f"{1:064x}", path="/img/1.png", width=2, height=3, n_bytes=10, format="PNG")
    old = ImageRecord(sha256=f"{2:064x}", path="/img/2.jpg", width=2, height=3, n_bytes=10)
    ids = store.add_images([png, old], author="ann").image_id
    assert [store.get_image(i).format for i in ids] == ["PNG", None]
    assert [img.format for img in store.images()] == ["PNG", None]
    assert [img.format for page in store.iter_images() for img in page] == ["PNG", None]


def test_retired_class_leaves_the_classes_and_comes_back_in_place(store: Store) -> None:
    store.add_classes(["cat", "dog", "bird"])
    store.retire_class("dog", author="ann")
    assert store.class_names() == ["cat", "bird"]
    assert store.retired_classes() == ["dog"]
    store.retire_class("dog", author="ann")  # already retired: nothing more is recorded
    store.restore_class("dog", author="bob")
    assert store.class_names() == ["cat", "dog", "bird"]
    assert store.retired_classes() == []
    store.retire_class("dog", author="ann")
    assert store.add_classes(["dog", "cat", "fish"], author="cy") == ["dog", "fish"]
    assert store.class_names() == ["cat", "dog", "bird", "fish"]
    with store._read() as conn:
        events = conn.execute(text("SELECT action, author FROM class_events ORDER BY id")).all()
    assert [tuple(e) for e in events] == [("retire", "ann"), ("restore", "bob"), ("retire", "ann"), ("restore", "cy")]


def test_only_an_unused_known_class_can_be_retired(store: Store) -> None:
    store.add_classes(["cat", "dog"])
    (iid,) = store.add_images([rec(1, "dog", split="eval")], author="ann").image_id
    with pytest.raises(NotFoundError, match="no class named 'zebra'"):
        store.retire_class("zebra", author="ann")
    with pytest.raises(NotFoundError, match="no class named 'zebra'"):
        store.restore_class("zebra", author="ann")
    with pytest.raises(StoreError, match="'dog' is the current label of 1 image"):
        store.retire_class("dog", author="ann")
    store.add_label(iid, "cat", author="rev", source="correction")
    store.retire_class("dog", author="ann")  # its only label was corrected: history keeps it
    assert store.retired_classes() == ["dog"]
    assert [e.label for e in store.label_history(iid)] == ["dog", "cat"]


def test_a_retired_class_takes_no_new_labels(store: Store) -> None:
    store.add_classes(["cat", "dog"])
    (iid,) = store.add_images([rec(1)], author="ann").image_id
    store.retire_class("dog", author="ann")
    with pytest.raises(InputError, match=r"\['dog'\] are retired.*add them again"):
        store.add_label(iid, "dog", author="ann")
    with pytest.raises(InputError, match="retired"):
        store.submit_label(iid, "dog", author="ann")
    with pytest.raises(InputError, match="retired"):
        store.add_images([rec(2, "dog")], author="ann")
    assert store.n_label_events() == 0 and store.n_images() == 1


@pytest.mark.parametrize("name", ["a\x00b", "tab\there", "line\u2028break", "x" * 201])
def test_class_names_with_control_characters_or_too_long_are_refused(store: Store, name: str) -> None:
    with pytest.raises(InputError, match="control characters|at most 200"):
        store.add_classes([name])
    assert store.class_names() == []
