"""Export writes the current (corrected) labels, and keeps eval apart unless asked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from activelab.exceptions import InputError
from activelab.loop.export import export_labels
from activelab.loop.ingest import import_images
from activelab.store import Store


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
