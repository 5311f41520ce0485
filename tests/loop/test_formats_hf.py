"""Hugging Face datasets: the imagefolder export loads back with the real library; save_to_disk imports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from activelab.exceptions import InputError
from activelab.loop.formats.hf_datasets import export_hf_imagefolder, import_hf
from activelab.loop.ingest import import_images
from activelab.store import Store, open_store, sqlite_url
from activelab.tasks import get_task
from tests.loop.conftest import LabelsByContent

datasets = pytest.importorskip("datasets")


@pytest.fixture
def labeled(tmp_path: Path, sample: Path) -> Iterator[Store]:
    s = open_store(sqlite_url(tmp_path / "source.db"))
    pool = pd.read_csv(sample / "pool.csv").head(8).assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    s.add_classes(sorted(set(pool.label)))
    import_images(s, pool.head(6), author="ann")
    import_images(s, pool.tail(2), label_col=None)
    import_images(
        s,
        pd.read_csv(sample / "eval.csv").head(3).assign(filepath=lambda f: [str(sample / p) for p in f.filepath]),
        split="eval",
        add_classes=True,
    )
    yield s
    s.close()


def test_imagefolder_export_loads_with_datasets_and_imports_back(
    labeled: Store, fresh: Store, tmp_path: Path, labels_by_content: LabelsByContent
) -> None:
    out = export_hf_imagefolder(labeled, tmp_path / "hf", include_eval=True)

    loaded = datasets.load_dataset("imagefolder", data_dir=str(out))
    assert sorted(loaded) == ["test", "train"] and loaded["train"].num_rows == 6 and loaded["test"].num_rows == 3
    current = labeled.current_labels()
    for row in loaded["train"]:
        assert row["label"] == current[row["image_id"]].label and row["author"] == "ann"
        assert row["image"].size == (28, 28)

    reports = import_hf(fresh, out, media_dir=tmp_path / "media", add_classes=True)
    assert [r.labeled for r in reports] == [3, 6]  # test, then train
    assert labels_by_content(fresh) == labels_by_content(labeled)


def test_save_to_disk_dataset_imports_class_names(
    labeled: Store, fresh: Store, tmp_path: Path, labels_by_content: LabelsByContent
) -> None:
    out = export_hf_imagefolder(labeled, tmp_path / "hf", include_eval=True)
    loaded = datasets.load_dataset("imagefolder", data_dir=str(out))
    names = sorted(set(loaded["train"]["label"]) | set(loaded["test"]["label"]))
    loaded = loaded.cast_column("label", datasets.ClassLabel(names=names)).rename_column("image", "img")
    loaded.save_to_disk(str(tmp_path / "saved"))

    reports = import_hf(
        fresh, tmp_path / "saved", media_dir=tmp_path / "media", add_classes=True, report_path=tmp_path / "r.csv"
    )

    assert sorted(r.added for r in reports) == [3, 6]
    assert sorted(p.name for p in tmp_path.glob("r-*.csv")) == ["r-test.csv", "r-train.csv"]
    assert len(list((tmp_path / "media" / "train").glob("*.png"))) == 6
    assert labels_by_content(fresh) == labels_by_content(labeled)
    again = import_hf(fresh, tmp_path / "saved", media_dir=tmp_path / "media")
    assert [r.added for r in again] == [0, 0]


def test_class_folder_tree_without_metadata(fresh: Store, sample: Path, tmp_path: Path) -> None:
    for name, cls in [("00223.png", "dress"), ("00235.png", "shirt")]:
        (tmp_path / "tree" / "train" / cls).mkdir(parents=True)
        (tmp_path / "tree" / "train" / cls / name).write_bytes((sample / "pool" / name).read_bytes())
    (report,) = import_hf(fresh, tmp_path / "tree", media_dir=tmp_path / "media", add_classes=True)
    assert report.labeled == 2 and sorted(c.label for c in fresh.current_labels().values()) == ["dress", "shirt"]


def test_multilabel_project_is_refused_before_writing(store: Store, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="one class per image.*export csv or parquet"):
        export_hf_imagefolder(store, tmp_path / "hf", task=get_task("multilabel"))
    assert not (tmp_path / "hf").exists()
