"""FiftyOne: the documented FiftyOneImageClassificationDataset layout out and back; samples.json in.

The ``fiftyone`` package does not install here (see docs/formats.md), so the
export is checked against the layout FiftyOne documents for that dataset type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from activelab.exceptions import InputError
from activelab.loop.formats.fiftyone import export_fiftyone, import_fiftyone
from activelab.loop.ingest import import_images
from activelab.store import Store, open_store, sqlite_url
from activelab.tasks import get_task
from tests.loop.conftest import LabelsByContent


@pytest.fixture
def labeled(tmp_path: Path, sample: Path) -> Iterator[Store]:
    s = open_store(sqlite_url(tmp_path / "source.db"))
    pool = pd.read_csv(sample / "pool.csv").head(5).assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    s.add_classes(["zz-unused", *sorted(set(pool.label))])
    import_images(s, pool.head(4), author="ann")
    import_images(s, pool.tail(1), label_col=None)
    import_images(
        s,
        pd.read_csv(sample / "eval.csv").head(2).assign(filepath=lambda f: [str(sample / p) for p in f.filepath]),
        split="eval",
        add_classes=True,
    )
    yield s
    s.close()


def test_export_is_the_documented_layout_and_imports_back(
    labeled: Store, fresh: Store, tmp_path: Path, labels_by_content: LabelsByContent
) -> None:
    out = export_fiftyone(labeled, tmp_path / "fo", include_eval=True)

    meta = json.loads((out / "labels.json").read_text())
    assert meta["classes"] == labeled.class_names()
    files = sorted(p.stem for p in (out / "data").iterdir())
    assert sorted(meta["labels"]) == files and len(files) == 4
    current = labeled.current_labels()
    for stem, target in meta["labels"].items():
        assert meta["classes"][target] == current[int(stem.split("_", 1)[0])].label
    assert len(json.loads((out / "eval" / "labels.json").read_text())["labels"]) == 2

    reports = import_fiftyone(fresh, out, add_classes=True)
    assert [r.labeled for r in reports] == [4, 2]
    assert labels_by_content(fresh) == labels_by_content(labeled)
    with pytest.raises(InputError, match="not an empty folder"):
        export_fiftyone(labeled, out)


def test_import_label_strings_nulls_and_unlisted_files(fresh: Store, sample: Path, tmp_path: Path) -> None:
    names = ["00223.png", "00235.png", "00415.png"]
    (tmp_path / "fo" / "data").mkdir(parents=True)
    for name in names:
        (tmp_path / "fo" / "data" / name).write_bytes((sample / "pool" / name).read_bytes())
    labels = {"00223": "dress", "00235": {"label": "shirt", "confidence": 0.9}}  # 00415 unlisted: unlabeled
    (tmp_path / "fo" / "labels.json").write_text(json.dumps({"labels": labels}))

    (report,) = import_fiftyone(fresh, tmp_path / "fo", add_classes=True)

    assert (report.added, report.labeled) == (3, 2)
    assert sorted(c.label for c in fresh.current_labels().values()) == ["dress", "shirt"]


def test_import_full_fiftyone_export_reads_its_classification_field(fresh: Store, sample: Path, tmp_path: Path) -> None:
    (tmp_path / "fo" / "data").mkdir(parents=True)
    samples = []
    for name, label in [("00223.png", None), ("00235.png", "shirt")]:
        (tmp_path / "fo" / "data" / name).write_bytes((sample / "pool" / name).read_bytes())
        cell = None if label is None else {"_id": {"$oid": "x"}, "_cls": "Classification", "label": label}
        samples.append({"filepath": f"data/{name}", "tags": [], "metadata": None, "predictions": cell})
    (tmp_path / "fo" / "samples.json").write_text(json.dumps({"samples": samples}))

    (report,) = import_fiftyone(fresh, tmp_path / "fo", add_classes=True)

    assert (report.added, report.labeled) == (2, 1)
    assert [c.label for c in fresh.current_labels().values()] == ["shirt"]


def test_class_index_outside_classes_names_the_file(fresh: Store, tmp_path: Path) -> None:
    (tmp_path / "fo" / "data").mkdir(parents=True)
    (tmp_path / "fo" / "labels.json").write_text(json.dumps({"classes": ["a"], "labels": {"x": 3}}))
    with pytest.raises(InputError, match=r"labels\.json: class index 3 is outside"):
        import_fiftyone(fresh, tmp_path / "fo")


def test_multilabel_targets_are_lists_of_class_indices_both_ways(
    store: Store, fresh: Store, sample: Path, tmp_path: Path
) -> None:
    task = get_task("multilabel")
    classes = ["bag", "dress", "shirt"]
    files = sorted((sample / "pool").glob("*.png"))[:3]
    store.add_classes(classes)
    import_images(
        store,
        pd.DataFrame({"filepath": [str(f) for f in files], "label": [("shirt", "bag"), ("dress",), ()]}),
        task=task,
    )
    out = export_fiftyone(store, tmp_path / "fo", task=task)
    targets = sorted(json.loads((out / "labels.json").read_text())["labels"].values())
    assert targets == [[], [0, 2], [1]]

    fresh.add_classes(classes)
    (report,) = import_fiftyone(fresh, out, task=task)
    assert (report.added, report.labeled) == (3, 3)
    assert _payloads(fresh) == _payloads(store)


def test_classifications_dict_targets_import_as_sets(fresh: Store, sample: Path, tmp_path: Path) -> None:
    (tmp_path / "fo" / "data").mkdir(parents=True)
    (tmp_path / "fo" / "data" / "00223.png").write_bytes((sample / "pool" / "00223.png").read_bytes())
    target = {"classifications": [{"label": "shirt"}, {"label": "bag", "confidence": 0.4}]}
    (tmp_path / "fo" / "labels.json").write_text(json.dumps({"labels": {"00223": target}}))
    (report,) = import_fiftyone(fresh, tmp_path / "fo", add_classes=True, task=get_task("multilabel"))
    assert report.labeled == 1 and [c.payload for c in fresh.current_annotations().values()] == [["bag", "shirt"]]


def _payloads(store: Store) -> dict[str, object]:
    sha = {img.id: img.sha256 for img in store.images()}
    return {sha[i]: c.payload for i, c in store.current_annotations().items()}


def test_full_export_classifications_field_imports_as_sets(fresh: Store, sample: Path, tmp_path: Path) -> None:
    (tmp_path / "fo" / "data").mkdir(parents=True)
    samples = []
    for name, labels in [("00223.png", ["shirt", "bag"]), ("00235.png", [])]:
        (tmp_path / "fo" / "data" / name).write_bytes((sample / "pool" / name).read_bytes())
        cell = {"_cls": "Classifications", "classifications": [{"_cls": "Classification", "label": x} for x in labels]}
        samples.append({"filepath": f"data/{name}", "tags": [], "metadata": None, "tags_field": cell})
    (tmp_path / "fo" / "samples.json").write_text(json.dumps({"samples": samples}))

    (report,) = import_fiftyone(fresh, tmp_path / "fo", add_classes=True, task=get_task("multilabel"))

    assert (report.added, report.labeled) == (2, 2)
    assert sorted(c.payload for c in fresh.current_annotations().values()) == [[], ["bag", "shirt"]]
