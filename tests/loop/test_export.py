"""Export writes the current (corrected) labels, and keeps eval apart unless asked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from activelab.exceptions import InputError
from activelab.loop.export import export_labels
from activelab.loop.ingest import import_images
from activelab.store import Store, open_store, sqlite_url
from activelab.tasks import get_task


@pytest.fixture
def labeled(store: Store, sample: Path) -> Store:
    store.add_classes(sorted(set(pd.read_csv(sample / "pool.csv").label)))
    frame = pd.read_csv(sample / "pool.csv").head(10).assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    import_images(store, frame, author="ann")
    import_images(
        store,
        pd.read_csv(sample / "pool.csv")
        .iloc[10:15]
        .assign(filepath=lambda f: [str(sample / p) for p in f.filepath], label=""),
    )
    import_images(store, sample / "eval.csv", split="eval")
    return store


def test_csv_has_current_labels_with_source_and_author(labeled: Store, tmp_path: Path) -> None:
    first = labeled.images("pool")[0]
    labeled.add_label(first.id, "bag", author="rev", source="correction")
    out = export_labels(labeled, tmp_path / "labels.csv")
    frame = pd.read_csv(out)
    assert len(frame) == 10 and set(frame.split) == {"pool"}
    row = frame.set_index("image_id").loc[first.id]
    assert (row.label, row.source, row.author) == ("bag", "correction", "rev")
    assert set(frame.drop(index=frame.index[frame.image_id == first.id]).author) == {"ann"}


def test_include_eval_marks_the_split(labeled: Store, tmp_path: Path) -> None:
    frame = pd.read_parquet(export_labels(labeled, tmp_path / "l.parquet", fmt="parquet", include_eval=True))
    assert frame.split.value_counts().to_dict() == {"eval": 200, "pool": 10}


def test_imagefolder_tree(labeled: Store, tmp_path: Path) -> None:
    out = export_labels(labeled, tmp_path / "tree", fmt="imagefolder", include_eval=True)
    train = list((out / "train").rglob("*.png"))
    assert len(train) == 10 and len(list((out / "eval").rglob("*.png"))) == 200
    labels = {p.name.split("_", 1)[0]: p.parent.name for p in train}
    current = labeled.current_labels("pool")
    assert all(current[int(i)].label == cls for i, cls in labels.items())
    with pytest.raises(InputError, match="not empty"):
        export_labels(labeled, out, fmt="imagefolder")


def test_class_names_become_safe_folder_names(store: Store, sample: Path, tmp_path: Path) -> None:
    store.add_classes(["T-shirt/top"])
    path = sorted((sample / "pool").glob("*.png"))[0]
    import_images(store, pd.DataFrame({"filepath": [str(path)], "label": ["T-shirt/top"]}))
    out = export_labels(store, tmp_path / "tree", fmt="imagefolder")
    assert [p.parent.name for p in (out / "train").rglob("*.png")] == ["T-shirt_top"]


def test_unknown_format(labeled: Store, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="--format"):
        export_labels(labeled, tmp_path / "x", fmt="coco")


FORMULA = "=cmd|' /C calc'!A0"


def _one_label(store: Store, sample: Path, label: str, n: int = 0) -> None:
    path = sorted((sample / "pool").glob("*.png"))[n]
    import_images(store, pd.DataFrame({"filepath": [str(path)], "label": [label]}), author="@ann")


def test_csv_cells_that_look_like_formulas_are_neutralised(store: Store, sample: Path, tmp_path: Path) -> None:
    store.add_classes([FORMULA, "-1", "plain"])
    _one_label(store, sample, FORMULA, 0)
    _one_label(store, sample, "-1", 1)
    _one_label(store, sample, "plain", 2)
    frame = pd.read_csv(export_labels(store, tmp_path / "l.csv"), keep_default_na=False, dtype=str)
    assert sorted(frame.label) == sorted(["'" + FORMULA, "'-1", "plain"])
    assert set(frame.author) == {"'@ann"}
    assert frame.image_id.str.isdigit().all()  # numbers stay numbers
    raw = pd.read_parquet(export_labels(store, tmp_path / "l.parquet", fmt="parquet"))
    assert sorted(raw.label) == sorted([FORMULA, "-1", "plain"]) and set(raw.author) == {"@ann"}


def test_class_names_sharing_a_folder_name_get_distinct_folders(store: Store, sample: Path, tmp_path: Path) -> None:
    store.add_classes(["cat/x", "cat_x", FORMULA])
    _one_label(store, sample, "cat/x", 0)
    _one_label(store, sample, "cat_x", 1)
    _one_label(store, sample, FORMULA, 2)
    out = export_labels(store, tmp_path / "tree", fmt="imagefolder")
    folders = sorted(p.name for p in (out / "train").iterdir())
    assert len(folders) == 3 and all(len(list((out / "train" / f).iterdir())) == 1 for f in folders)
    mapping = pd.read_csv(out / "classes.csv", dtype=str).set_index("folder")["class"].to_dict()
    assert mapping == {"cat_x": "cat_x", "cat_x-2": "cat/x", "_=cmd_' _C calc'!A0": "'" + FORMULA}
    assert sorted(mapping) == folders


# ------------------------------------------------------------------ multi-label

ML_CLASSES = ["bag", "dress", "shirt"]


@pytest.fixture
def multilabeled(store: Store, sample: Path) -> Store:
    store.add_classes(ML_CLASSES)
    paths = sorted((sample / "pool").glob("*.png"))[:4]
    table = pd.DataFrame({"filepath": [str(p) for p in paths], "label": ["bag|shirt", "dress", "shirt", ""]})
    import_images(store, table, task=get_task("multilabel"), author="ann")
    return store


def _payloads(store: Store) -> dict[str, object]:
    hashes = {img.id: img.sha256 for img in store.images()}
    return {hashes[iid]: cur.payload for iid, cur in store.current_annotations().items()}


def test_multilabel_table_joins_classes_and_adds_flag_columns(multilabeled: Store, tmp_path: Path) -> None:
    task = get_task("multilabel")
    multilabeled.add_annotations([(multilabeled.images()[3].id, [])], author="rev", source="correction")
    frame = pd.read_csv(export_labels(multilabeled, tmp_path / "l.csv", task=task, sep=";"), keep_default_na=False)
    assert frame.label.tolist() == ["bag;shirt", "dress", "shirt", ""]
    assert frame[ML_CLASSES].values.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 1], [0, 0, 0]]
    for fmt, out, options in [
        ("csv", tmp_path / "l.csv", {"class_cols": "*"}),
        ("parquet", tmp_path / "l.parquet", {"class_cols": ML_CLASSES}),
    ]:
        export_labels(multilabeled, out, fmt=fmt, task=task)
        again = open_store(sqlite_url(tmp_path / f"{fmt}.db"))
        again.add_classes(ML_CLASSES)
        report = import_images(again, out, task=task, **options)
        assert (report.added, report.labeled) == (4, 4)
        assert _payloads(again) == _payloads(multilabeled)
        again.close()


def test_multilabel_label_column_round_trip(multilabeled: Store, tmp_path: Path) -> None:
    task = get_task("multilabel")
    out = export_labels(multilabeled, tmp_path / "l.csv", task=task)
    again = open_store(sqlite_url(tmp_path / "again.db"))
    again.add_classes(ML_CLASSES)
    import_images(again, out, task=task)
    assert _payloads(again) == _payloads(multilabeled)
    again.close()


def test_multilabel_imagefolder_copies_into_each_class_and_reads_back(multilabeled: Store, tmp_path: Path) -> None:
    out = export_labels(multilabeled, tmp_path / "tree", fmt="imagefolder")
    counts = {d.name: len(list(d.iterdir())) for d in sorted((out / "train").iterdir())}
    assert counts == {"bag": 1, "dress": 1, "shirt": 2}
    again = open_store(sqlite_url(tmp_path / "again.db"))
    again.add_classes(ML_CLASSES)
    report = import_images(again, out / "train", fmt="imagefolder", task=get_task("multilabel"))
    assert (report.added, report.labeled) == (3, 3) and _payloads(again) == _payloads(multilabeled)
    again.close()
    multilabeled.add_annotations([(multilabeled.images()[3].id, [])], author="rev", source="human")
    with pytest.raises(InputError, match="none of the classes.*export a table"):
        export_labels(multilabeled, tmp_path / "tree2", fmt="imagefolder")


def test_class_named_like_an_export_column_is_refused_for_flag_columns(store: Store, tmp_path: Path) -> None:
    store.add_classes(["split"])
    with pytest.raises(InputError, match="class 'split' has the name of an export column"):
        export_labels(store, tmp_path / "l.csv", task=get_task("multilabel"))
