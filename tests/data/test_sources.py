"""Sources: folders, ImageFolder trees and tables become path/label items without opening images."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from activelab.data.sources import folder_items, imagefolder_items, read_table, resolve_format, table_items
from activelab.exceptions import InputError, NotFoundError


def test_folder_is_recursive_sorted_and_skips_hidden(tmp_path: Path) -> None:
    (tmp_path / "b" / "c").mkdir(parents=True)
    for rel in ["z.png", "b/a.png", "b/c/d.jpg", ".hidden.png", "b/.DS_Store"]:
        (tmp_path / rel).write_bytes(b"x")
    items = list(folder_items(tmp_path))
    assert [p.path.relative_to(tmp_path).as_posix() for p in items] == ["b/a.png", "b/c/d.jpg", "z.png"]
    assert all(i.label is None for i in items)


def test_imagefolder_labels_from_first_level(tmp_path: Path) -> None:
    for rel in ["cat/1.png", "cat/sub/2.png", "dog/3.png"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    assert [(i.path.name, i.label) for i in imagefolder_items(tmp_path)] == [
        ("1.png", "cat"),
        ("2.png", "cat"),
        ("3.png", "dog"),
    ]


def test_imagefolder_without_class_folders_explains(tmp_path: Path) -> None:
    (tmp_path / "1.png").write_bytes(b"x")
    with pytest.raises(InputError, match="no class sub-folders.*--format folder"):
        list(imagefolder_items(tmp_path))


def test_table_resolves_relative_paths_and_blank_cells(tmp_path: Path) -> None:
    frame = pd.DataFrame({"filepath": ["a.png", "/abs/b.png", "", "c.png"], "label": ["cat", "", "dog", None]})
    items = list(table_items(frame, base_dir=tmp_path))
    assert items[0].path == tmp_path / "a.png" and items[0].label == "cat" and items[0].row == 1
    assert items[1].path == Path("/abs/b.png") and items[1].label is None
    assert items[2].path is None and items[2].row == 3
    assert items[3].label is None


def test_table_column_errors_name_the_columns() -> None:
    frame = pd.DataFrame({"path": ["a.png"], "y": ["cat"]})
    with pytest.raises(InputError, match=r"no column 'filepath' \(columns: \['path', 'y'\]\).*--path-col"):
        list(table_items(frame))
    with pytest.raises(InputError, match="no column 'klass'.*--label-col"):
        list(table_items(frame, path_col="path", label_col="klass"))
    assert [i.label for i in table_items(frame, path_col="path")] == [None]


def test_the_default_label_column_may_be_spelled_labels() -> None:
    # fashion-pairs and other multi-label tables name the column for the sets it holds
    frame = pd.DataFrame({"filepath": ["/a.png"], "labels": ["bag|shirt"]})
    assert [i.label for i in table_items(frame)] == ["bag|shirt"]
    both = frame.assign(label=["coat"])
    assert [i.label for i in table_items(both)] == ["coat"]


def test_read_table_formats(tmp_path: Path) -> None:
    frame = pd.DataFrame({"filepath": ["a.png"], "label": ["cat"]})
    frame.to_csv(tmp_path / "t.csv", index=False)
    frame.to_parquet(tmp_path / "t.parquet")
    for name in ["t.csv", "t.parquet"]:
        assert read_table(tmp_path / name).to_dict("records") == [{"filepath": "a.png", "label": "cat"}]
    (tmp_path / "t.json").write_text("{}")
    with pytest.raises(InputError, match="unknown table type '.json'"):
        read_table(tmp_path / "t.json")
    with pytest.raises(NotFoundError):
        read_table(tmp_path / "missing.csv")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(InputError, match="cannot read .*bad.parquet"):
        read_table(tmp_path / "bad.parquet")


def test_resolve_format(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("filepath\n")
    assert resolve_format(tmp_path, "auto") == "folder"
    assert resolve_format(tmp_path / "t.csv", "auto") == "table"
    with pytest.raises(NotFoundError):
        resolve_format(tmp_path / "nope", "auto")
    with pytest.raises(InputError, match="--format"):
        resolve_format(tmp_path, "zip")


def test_class_columns_give_the_tuple_of_marked_classes(tmp_path: Path) -> None:
    table = pd.DataFrame(
        {"filepath": ["a.png", "b.png", "c.png"], "cat": [True, 0, "Yes"], "dog": [1.0, False, " no "]}
    )
    items = list(table_items(table, class_cols=["cat", "dog"], base_dir=tmp_path))
    assert [(i.path, i.label, i.row) for i in items] == [
        (tmp_path / "a.png", ("cat", "dog"), 1),
        (tmp_path / "b.png", (), 2),
        (tmp_path / "c.png", ("cat",), 3),
    ]


def test_a_class_column_cell_that_is_no_flag_names_table_row_and_column() -> None:
    table = pd.DataFrame({"filepath": ["a.png", "b.png"], "cat": ["1", "2"]})
    with pytest.raises(
        InputError, match=r"the table, row 2, column 'cat': '2' is not a class flag; use one of 1, true"
    ):
        list(table_items(table, class_cols=["cat"]))
    with pytest.raises(InputError, match="--class-columns names no column"):
        list(table_items(table, class_cols=[]))


def test_list_cells_of_a_dataframe_are_class_tuples() -> None:
    table = pd.DataFrame({"filepath": ["a.png", "b.png"], "label": [["dog", "cat"], "cat"]})
    assert [i.label for i in table_items(table)] == [("dog", "cat"), "cat"]
