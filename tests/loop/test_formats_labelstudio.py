"""Label Studio JSON: a real-shaped export imports with authors and times; our export imports back the same."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pytest

from activelab.loop.formats.labelstudio import (
    export_labelstudio,
    import_labelstudio,
    resolve_image,
)
from activelab.loop.ingest import import_images
from activelab.store import Store, open_store, sqlite_url
from activelab.tasks import get_task


@pytest.fixture
def source_store(tmp_path: Path) -> Iterator[Store]:
    s = open_store(sqlite_url(tmp_path / "source.db"))
    yield s
    s.close()


def _annotation(choice: str, completed_by: object, when: str, **extra: object) -> dict[str, object]:
    return {
        "id": 1,
        "completed_by": completed_by,
        "created_at": when,
        "updated_at": when,
        "result": [
            {
                "from_name": "choice",
                "to_name": "image",
                "type": "choices",
                "value": {"choices": [choice]},
                "origin": "manual",
            }
        ],
        **extra,
    }


def test_import_keeps_annotator_time_and_latest_answer(fresh: Store, sample: Path, tmp_path: Path) -> None:
    files = sorted((sample / "pool").glob("*.png"))[:4]
    uploads = tmp_path / "media"
    uploads.mkdir()
    for f in files:  # Label Studio names uploads <8 hex chars>-<original name>
        (uploads / f"1a2b3c4d-{f.name}").write_bytes(f.read_bytes())
    tasks = [
        {
            "id": 1,
            "data": {"image": f"/data/upload/1/1a2b3c4d-{files[0].name}"},
            "annotations": [_annotation("dress", {"id": 3, "email": "ann@example.org"}, "2024-03-01T10:00:00.000000Z")],
        },
        {
            "id": 2,
            "data": {"image": f"/data/local-files/?d=pool/{files[1].name}"},
            "annotations": [
                _annotation("shirt", 7, "2024-03-02T09:00:00Z"),
                _annotation("coat", {"id": 4, "email": "bob@example.org"}, "2024-03-02T11:30:00Z"),
            ],
        },
        {
            "id": 3,
            "data": {"image": f"/data/upload/1/1a2b3c4d-{files[2].name}"},
            "annotations": [_annotation("bag", 7, "2024-03-03T08:00:00Z", was_cancelled=True)],
        },
        {"id": 4, "data": {"image": f"/data/upload/1/1a2b3c4d-{files[3].name}"}, "annotations": []},
    ]
    (tmp_path / "export.json").write_text(json.dumps(tasks))
    (uploads / "pool").mkdir()
    (uploads / "pool" / files[1].name).write_bytes(files[1].read_bytes())

    report = import_labelstudio(
        fresh, tmp_path / "export.json", images_root=uploads, add_classes=True, report_path=tmp_path / "report.csv"
    )

    assert (report.added, report.labeled, report.n_rejected) == (4, 3, 0)
    by_name = {Path(img.path).name.split("-", 1)[-1]: img.id for img in fresh.images()}
    current = fresh.current_labels()
    assert (current[by_name[files[0].name]].label, current[by_name[files[0].name]].author) == (
        "dress",
        "ann@example.org",
    )
    assert current[by_name[files[0].name]].created_at == datetime(2024, 3, 1, 10, tzinfo=timezone.utc)
    history = fresh.label_history(by_name[files[1].name])
    assert [(e.label, e.author, e.created_at.hour) for e in history] == [
        ("shirt", "labelstudio-user-7", 9),
        ("coat", "bob@example.org", 11),
    ]
    assert by_name[files[2].name] not in current and by_name[files[3].name] not in current  # skipped, unlabeled

    again = import_labelstudio(fresh, tmp_path / "export.json", images_root=uploads)
    assert (again.added, again.labeled, again.label_conflicts) == (0, 0, 0)


def test_older_different_label_is_a_conflict_newer_one_is_appended(fresh: Store, sample: Path, tmp_path: Path) -> None:
    path = min((sample / "pool").glob("*.png"))
    fresh.add_classes(["dress", "coat"])
    import_images(fresh, pd.DataFrame({"filepath": [str(path)], "label": ["dress"]}), author="me")
    stored = fresh.current_labels()
    (iid,) = stored
    labeled_at = stored[iid].created_at

    def run(when: datetime) -> tuple[int, int]:
        task = {"data": {"image": str(path)}, "annotations": [_annotation("coat", 2, when.isoformat())]}
        (tmp_path / "t.json").write_text(json.dumps([task]))
        report = import_labelstudio(fresh, tmp_path / "t.json")
        return report.labeled, report.label_conflicts

    assert run(datetime(2000, 1, 1, tzinfo=timezone.utc)) == (0, 1)
    assert fresh.current_labels()[iid].label == "dress"
    assert run(labeled_at.replace(year=labeled_at.year + 1)) == (1, 0)
    assert fresh.current_labels()[iid].label == "coat"


def test_export_round_trips_labels_authors_and_times(
    source_store: Store, fresh: Store, sample: Path, tmp_path: Path
) -> None:
    pool = pd.read_csv(sample / "pool.csv").head(6).assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    source_store.add_classes(sorted(set(pool.label)))
    import_images(source_store, pool.head(4), author="ann")
    import_images(source_store, pool.tail(2).assign(label=None), label_col=None)
    first = source_store.images()[0].id
    source_store.add_label(first, pool.label.iloc[5], author="rev@example.org", source="human")

    out = export_labelstudio(source_store, tmp_path / "ls" / "tasks.json", document_root=sample)
    tasks = json.loads(out.read_text())
    assert len(tasks) == 6 and tasks[0]["data"]["image"].startswith("/data/local-files/?d=pool/")
    assert sum("annotations" in t for t in tasks) == 4
    # Label Studio refuses an annotation whose completed_by is not one of its members: the author rides in data
    assert not any("completed_by" in a for t in tasks for a in t.get("annotations", []))
    assert {t["data"].get("activelab_author") for t in tasks} == {"ann", "rev@example.org", None}
    assert 'toName="image"' in (tmp_path / "ls" / "tasks_label_config.xml").read_text()

    fresh.add_classes(source_store.class_names())
    report = import_labelstudio(fresh, out, images_root=sample)
    assert (report.added, report.labeled, report.n_rejected) == (6, 4, 0)

    def labels(store: Store) -> dict[str, tuple[str, str, datetime]]:
        sha = {img.id: img.sha256 for img in store.images()}
        return {sha[i]: (c.label, c.author, c.created_at) for i, c in store.current_labels().items()}

    assert labels(fresh) == labels(source_store)


def test_export_carries_latest_round_predictions_in_queue_order(
    source_store: Store, sample: Path, tmp_path: Path
) -> None:
    pool = pd.read_csv(sample / "pool.csv").head(3).assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    source_store.add_classes(["dress", "shirt"])
    import_images(source_store, pool, label_col=None)
    a, b, c = (img.id for img in source_store.images())
    number = source_store.start_round(strategy="margin", model="m", config={}, n_labeled=0)
    source_store.finish_round(
        number, metrics={}, selection=[(c, 0.5), (a, 0.9)], predictions=[(c, "shirt", 0.5), (a, "dress", 0.9)]
    )

    tasks = {
        t["data"]["activelab_id"]: t
        for t in json.loads(export_labelstudio(source_store, tmp_path / "t.json").read_text())
    }

    assert "predictions" not in tasks[b]
    (pc,), (pa,) = tasks[c]["predictions"], tasks[a]["predictions"]
    assert (pc["score"], pa["score"]) == (1.0, 0.5)
    assert pc["model_version"] == f"activelab-round-{number}"
    assert pc["result"][0]["value"] == {"choices": ["shirt"]} and pc["result"][0]["score"] == 0.5


def test_resolve_image_references(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_bytes(b"")
    assert resolve_image("/data/local-files/?d=a/b%20c.png", tmp_path) == tmp_path / "a" / "b c.png"
    assert resolve_image("/data/upload/2/0f0f0f0f-x.png", tmp_path) == tmp_path / "x.png"
    assert resolve_image("https://example.org/img/y.png?sig=1", tmp_path) == tmp_path / "y.png"
    assert resolve_image(f"file://{tmp_path}/z.png", tmp_path) == tmp_path / "z.png"


def test_unknown_class_is_reported_not_recorded(fresh: Store, sample: Path, tmp_path: Path) -> None:
    path = min((sample / "pool").glob("*.png"))
    task = {"data": {"image": str(path)}, "annotations": [_annotation("unicorn", 1, "2024-01-01T00:00:00Z")]}
    (tmp_path / "t.json").write_text(json.dumps([task]))
    report = import_labelstudio(fresh, tmp_path / "t.json", report_path=tmp_path / "r.csv")
    assert (report.added, report.labeled, dict(report.rejected)) == (1, 0, {"unknown_class": 1})
    assert "label 'unicorn' is not a class" in (tmp_path / "r.csv").read_text()


# ------------------------------------------------------------------ multi-label

ML_CLASSES = ["bag", "dress", "shirt"]


def _multi(choices: list[str], who: object, when: str) -> dict[str, object]:
    annotation = _annotation("x", who, when)
    annotation["result"][0]["value"] = {"choices": choices}  # type: ignore[index]
    return annotation


def test_multichoice_annotations_import_as_sets(fresh: Store, sample: Path, tmp_path: Path) -> None:
    files = sorted((sample / "pool").glob("*.png"))[:4]
    answers = [["shirt", "bag"], [], ["dress", "hat"], ["dress"]]
    tasks = [
        {"data": {"image": str(f)}, "annotations": [_multi(a, 5, f"2024-03-0{n + 1}T10:00:00Z")]}
        for n, (f, a) in enumerate(zip(files, answers))
    ]
    (tmp_path / "t.json").write_text(json.dumps(tasks))
    fresh.add_classes(ML_CLASSES)
    report = import_labelstudio(fresh, tmp_path / "t.json", task=get_task("multilabel"), report_path=tmp_path / "r.csv")
    assert (report.added, report.labeled, dict(report.rejected)) == (4, 3, {"unknown_class": 1})
    names = {img.id: Path(img.path).name for img in fresh.images()}
    current = {names[i]: (c.payload, c.author) for i, c in fresh.current_annotations().items()}
    assert current == {
        files[0].name: (["bag", "shirt"], "labelstudio-user-5"),
        files[1].name: ([], "labelstudio-user-5"),
        files[3].name: (["dress"], "labelstudio-user-5"),
    }
    assert "label 'hat' is not a class" in (tmp_path / "r.csv").read_text()
    again = import_labelstudio(fresh, tmp_path / "t.json", task=get_task("multilabel"))
    assert (again.labeled, again.label_conflicts) == (0, 0)


def test_several_choices_in_a_single_label_project_are_refused(fresh: Store, sample: Path, tmp_path: Path) -> None:
    path = min((sample / "pool").glob("*.png"))
    task = {"data": {"image": str(path)}, "annotations": [_multi(["bag", "shirt"], 1, "2024-01-01T00:00:00Z")]}
    (tmp_path / "t.json").write_text(json.dumps([task]))
    fresh.add_classes(ML_CLASSES)
    report = import_labelstudio(fresh, tmp_path / "t.json", report_path=tmp_path / "r.csv")
    assert (report.added, report.labeled, dict(report.rejected)) == (1, 0, {"invalid_label": 1})
    assert "chose 'bag', 'shirt', not an annotation of this project" in (tmp_path / "r.csv").read_text()


def test_multilabel_export_round_trips_sets_authors_and_times(
    source_store: Store, fresh: Store, sample: Path, tmp_path: Path
) -> None:
    task = get_task("multilabel")
    files = sorted((sample / "pool").glob("*.png"))[:4]
    source_store.add_classes(ML_CLASSES)
    table = pd.DataFrame({"filepath": [str(f) for f in files], "label": ["bag|shirt", "dress", "", ""]})
    import_images(source_store, table, task=task, author="ann")
    source_store.add_annotations([(source_store.images()[2].id, [])], author="rev", source="human")

    out = export_labelstudio(source_store, tmp_path / "ls" / "tasks.json", document_root=sample, task=task)
    tasks = json.loads(out.read_text())
    chosen = [[r["value"]["choices"] for a in t.get("annotations", []) for r in a["result"]] for t in tasks]
    assert chosen == [[["bag", "shirt"]], [["dress"]], [[]], []]
    assert 'choice="multiple"' in (tmp_path / "ls" / "tasks_label_config.xml").read_text()

    fresh.add_classes(ML_CLASSES)
    report = import_labelstudio(fresh, out, images_root=sample, task=task)
    assert (report.added, report.labeled, report.n_rejected) == (4, 3, 0)

    def annotations(store: Store) -> dict[str, tuple[object, str, datetime]]:
        sha = {img.id: img.sha256 for img in store.images()}
        return {sha[i]: (c.payload, c.author, c.created_at) for i, c in store.current_annotations().items()}

    assert annotations(fresh) == annotations(source_store)


def test_multilabel_export_carries_predicted_sets(source_store: Store, sample: Path, tmp_path: Path) -> None:
    files = sorted((sample / "pool").glob("*.png"))[:2]
    source_store.add_classes(ML_CLASSES)
    import_images(source_store, pd.DataFrame({"filepath": [str(f) for f in files]}), label_col=None)
    a, b = (img.id for img in source_store.images())
    number = source_store.start_round(strategy="cvirs", model="m", config={}, n_labeled=0)
    source_store.finish_round(
        number, metrics={}, selection=[(b, 0.7), (a, 0.2)], predictions=[(b, ["bag", "shirt"], 0.7), (a, [], 0.2)]
    )
    out = export_labelstudio(source_store, tmp_path / "t.json", task=get_task("multilabel"))
    tasks = {t["data"]["activelab_id"]: t for t in json.loads(out.read_text())}
    (pb,), (pa,) = tasks[b]["predictions"], tasks[a]["predictions"]
    assert (pb["score"], pa["score"]) == (1.0, 0.5)
    assert pb["result"][0]["value"] == {"choices": ["bag", "shirt"]} and pb["result"][0]["score"] == 0.7
    assert pa["result"][0]["value"] == {"choices": []}
