"""Importing real and broken images: nothing lost, everything explained, re-runs idempotent."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.loop.ingest import import_images
from activelab.store import Store, open_store, sqlite_url
from activelab.tasks import get_task

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


@pytest.fixture
def classes_store(store: Store) -> Store:
    store.add_classes(CLASSES)
    return store


def test_folder_with_broken_files_keeps_the_good_ones(
    classes_store: Store, sample_copy: Path, broken_files: dict[str, Path], tmp_path: Path
) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    good = sorted((sample_copy / "pool").glob("*.png"))[:5]
    shutil.copy(good[0], folder / "with space.png")
    shutil.copy(good[1], folder / "naïve-日本.png")
    for g in good[2:]:
        shutil.copy(g, folder / g.name)
    shutil.copy(good[2], folder / "copy of a stored one.png")
    for path in broken_files.values():
        shutil.copy(path, folder / path.name)
    report_path = tmp_path / "report.csv"
    report = import_images(classes_store, folder, report_path=report_path)
    assert (report.seen, report.added, report.duplicates) == (10, 5, 1)
    assert dict(report.rejected) == {r: 1 for r in broken_files}
    rows = pd.read_csv(report_path)
    rejected = rows[rows.status == "rejected"].set_index("reason")["path"].map(lambda p: Path(p).name)
    assert rejected.to_dict() == {r: p.name for r, p in broken_files.items()}
    dup = rows[rows.status == "duplicate"].iloc[0]
    assert Path(dup.path).name == "copy of a stored one.png" and good[2].name in dup.detail
    stored = {Path(i.path).name for i in classes_store.images()}
    assert {"with space.png", "naïve-日本.png"} <= stored
    assert "rejected" in report.summary() and "decompression_bomb: 1" in report.summary()


def test_reimport_adds_nothing(classes_store: Store, sample: Path) -> None:
    first = import_images(classes_store, sample / "pool.csv")
    assert (first.added, first.labeled) == (500, 500)
    events = classes_store.n_label_events()
    again = import_images(classes_store, sample / "pool.csv")
    assert (again.added, again.labeled, again.duplicates) == (0, 0, 500)
    assert classes_store.n_label_events() == events
    assert len(classes_store.images()) == 500


def test_table_labels_match_the_source(classes_store: Store, sample: Path) -> None:
    import_images(classes_store, sample / "eval.csv", split="eval")
    truth = pd.read_csv(sample / "eval.csv")
    by_name = {Path(i.path).name: i.id for i in classes_store.images("eval")}
    labels = classes_store.current_labels("eval")
    assert all(labels[by_name[Path(p).name]].label == y for p, y in zip(truth.filepath, truth.label))
    assert classes_store.images("pool") == []


def test_parquet_dataframe_and_custom_columns(classes_store: Store, sample: Path, tmp_path: Path) -> None:
    frame = pd.read_csv(sample / "pool.csv").head(20)
    frame["filepath"] = [str(sample / p) for p in frame.filepath]
    frame.rename(columns={"filepath": "file", "label": "y"}).to_parquet(tmp_path / "t.parquet")
    report = import_images(classes_store, tmp_path / "t.parquet", path_col="file", label_col="y")
    assert (report.added, report.labeled) == (20, 20)
    report = import_images(
        classes_store,
        pd.read_csv(sample / "pool.csv").head(30).assign(filepath=lambda f: [str(sample / p) for p in f.filepath]),
    )
    assert (report.added, report.duplicates) == (10, 20)


def test_imagefolder_import(classes_store: Store, sample: Path, tmp_path: Path) -> None:
    truth = pd.read_csv(sample / "pool.csv").head(12)
    for p, y in zip(truth.filepath, truth.label):
        (tmp_path / "tree" / y).mkdir(parents=True, exist_ok=True)
        shutil.copy(sample / p, tmp_path / "tree" / y)
    report = import_images(classes_store, tmp_path / "tree", fmt="imagefolder")
    assert (report.added, report.labeled) == (12, 12)
    assert sorted(c.label for c in classes_store.current_labels().values()) == sorted(truth.label)


def test_unknown_classes_rejected_or_added(store: Store, sample: Path, tmp_path: Path) -> None:
    store.add_classes(["bag"])
    frame = pd.read_csv(sample / "pool.csv").head(20).assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    report = import_images(store, frame, report_path=tmp_path / "r.csv")
    n_bag = int((frame.label == "bag").sum())
    assert report.added == n_bag and report.rejected["unknown_class"] == 20 - n_bag
    assert "add it with `activelab classes add`" in pd.read_csv(tmp_path / "r.csv").detail.dropna().iloc[0]
    report = import_images(store, frame, add_classes=True)
    assert report.added == 20 - n_bag and set(report.new_classes) == set(frame.label) - {"bag"}


def test_missing_paths_and_files_in_a_table(classes_store: Store, tmp_path: Path) -> None:
    frame = pd.DataFrame({"filepath": ["", str(tmp_path / "gone.png")], "label": ["bag", "bag"]})
    report = import_images(classes_store, frame)
    assert dict(report.rejected) == {"missing_path": 1, "missing_file": 1}


def test_label_conflict_keeps_stored_label(classes_store: Store, sample: Path) -> None:
    frame = pd.read_csv(sample / "pool.csv").head(3).assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    import_images(classes_store, frame)
    flipped = frame.assign(label=["bag", "bag", "bag"])
    report = import_images(classes_store, flipped)
    changed = int((frame.label != "bag").sum())
    assert report.label_conflicts == changed
    assert sorted(c.label for c in classes_store.current_labels().values()) == sorted(frame.label)


def test_bad_split(classes_store: Store, sample: Path) -> None:
    with pytest.raises(InputError, match="--split"):
        import_images(classes_store, sample / "pool.csv", split="test")


KILLER = textwrap.dedent(
    """
    import os, sys
    import activelab.store.events as st
    from activelab.loop.ingest import import_images
    from activelab.store import open_store
    calls = {"n": 0}
    original = st.event_row
    def dying_event(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == int(sys.argv[3]):
            os._exit(137)  # killed inside a write transaction
        return original(*args, **kwargs)
    st.event_row = dying_event
    report = sys.argv[4] if len(sys.argv) > 4 else None
    import_images(open_store(sys.argv[1]), sys.argv[2], batch_size=50, report_path=report)
    """
)


def test_import_killed_midway_is_consistent_and_resumes(tmp_path: Path, sample: Path) -> None:
    url = sqlite_url(tmp_path / "k.db")
    with open_store(url) as s:
        s.add_classes(CLASSES)
    proc = subprocess.run([sys.executable, "-c", KILLER, url, str(sample / "pool.csv"), "130"])
    assert proc.returncode == 137
    with open_store(url) as s:
        n_images = len(s.images())
        assert n_images == 100  # two whole batches; the third died before commit
        assert len(s.current_labels()) == n_images
        report = import_images(s, sample / "pool.csv", batch_size=50)
        assert (report.added, report.duplicates) == (400, 100)
        assert len(s.images()) == 500 and len(s.current_labels()) == 500


def test_killed_import_leaves_the_report_of_finished_batches(tmp_path: Path, sample: Path) -> None:
    url = sqlite_url(tmp_path / "k.db")
    with open_store(url) as s:
        s.add_classes(CLASSES)
    report_path = tmp_path / "report.csv"
    proc = subprocess.run([sys.executable, "-c", KILLER, url, str(sample / "pool.csv"), "130", str(report_path)])
    assert proc.returncode == 137
    rows = pd.read_csv(report_path)
    assert len(rows) == 100 and set(rows.status) == {"added"}
    with open_store(url) as s:
        assert sorted(i.path for i in s.images()) == sorted(str((sample / p).resolve()) for p in rows.path)


def test_too_large_and_symlink_loop_are_reported(classes_store: Store, sample: Path, tmp_path: Path) -> None:
    folder = tmp_path / "odd"
    folder.mkdir()
    good = sorted((sample / "pool").glob("*.png"))[0]
    shutil.copy(good, folder / "small.png")
    with (folder / "huge.jpg").open("wb") as fh:
        fh.truncate(2_000_000)
    (folder / "loop1.png").symlink_to(folder / "loop2.png")
    (folder / "loop2.png").symlink_to(folder / "loop1.png")
    report = import_images(classes_store, folder, max_file_mb=1, report_path=tmp_path / "r.csv")
    assert report.added == 1
    assert dict(report.rejected) == {"too_large": 1, "symlink_loop": 2}
    detail = pd.read_csv(tmp_path / "r.csv").set_index("reason").loc["too_large", "detail"]
    assert "2.0 MB, over the limit of 1 MB" in detail


def test_exif_rotated_image_is_stored_as_displayed_with_its_format(classes_store: Store, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    Image.new("RGB", (40, 20), (200, 10, 10)).save(folder / "rotated.jpg", exif=exif)
    Image.new("RGB", (8, 8)).save(folder / "named-as-html.html", format="PNG")
    import_images(classes_store, folder)
    stored = {Path(i.path).name: i for i in classes_store.images()}
    assert (stored["rotated.jpg"].width, stored["rotated.jpg"].height) == (20, 40)
    assert (stored["rotated.jpg"].format, stored["named-as-html.html"].format) == ("JPEG", "PNG")


# ------------------------------------------------------------------ multi-label

ML_CLASSES = ["bag", "dress", "shirt"]


@pytest.fixture
def ml_store(store: Store) -> Store:
    store.add_classes(ML_CLASSES)
    return store


@pytest.fixture
def pngs(sample: Path) -> list[Path]:
    return sorted((sample / "pool").glob("*.png"))[:4]


def _annotations(store: Store) -> dict[str, object]:
    names = {img.id: Path(img.path).name for img in store.images()}
    return {names[iid]: cur.payload for iid, cur in store.current_annotations().items()}


def test_multilabel_cells_split_on_the_separator(ml_store: Store, pngs: list[Path], tmp_path: Path) -> None:
    table = pd.DataFrame({"filepath": [str(p) for p in pngs], "label": ["shirt;bag", " dress ", "", "bag;shirt;bag"]})
    report = import_images(ml_store, table, task=get_task("multilabel"), label_sep=";", report_path=tmp_path / "r.csv")
    assert (report.seen, report.added, report.labeled) == (4, 4, 3)
    assert _annotations(ml_store) == {
        pngs[0].name: ["bag", "shirt"],
        pngs[1].name: ["dress"],
        pngs[3].name: ["bag", "shirt"],
    }
    assert pd.read_csv(tmp_path / "r.csv", keep_default_na=False).label.tolist() == [
        "bag;shirt",
        "dress",
        "",
        "bag;shirt",
    ]


def test_multilabel_unknown_class_duplicate_and_conflicting_set(ml_store: Store, pngs: list[Path]) -> None:
    task = get_task("multilabel")
    first = pd.DataFrame({"filepath": [str(pngs[0]), str(pngs[1])], "label": ["bag|shirt", "bag|hat"]})
    report = import_images(ml_store, first, task=task)
    assert (report.added, report.labeled, dict(report.rejected)) == (1, 1, {"unknown_class": 1})
    again = pd.DataFrame({"filepath": [str(pngs[0]), str(pngs[0])], "label": ["shirt|bag", "dress"]})
    report = import_images(ml_store, again, task=task)
    assert (report.added, report.labeled, report.duplicates, report.label_conflicts) == (0, 0, 1, 1)
    assert _annotations(ml_store) == {pngs[0].name: ["bag", "shirt"]}
    added = import_images(ml_store, first.assign(label=["", "bag|dress"]), task=task, add_classes=False)
    assert (added.added, added.labeled) == (1, 1)
    assert _annotations(ml_store)[pngs[1].name] == ["bag", "dress"]


def test_multilabel_add_classes_creates_every_named_class(store: Store, pngs: list[Path]) -> None:
    table = pd.DataFrame({"filepath": [str(pngs[0])], "label": ["sock|hat"]})
    report = import_images(store, table, task=get_task("multilabel"), add_classes=True)
    assert report.new_classes == ["hat", "sock"] and _annotations(store) == {pngs[0].name: ["hat", "sock"]}


def test_class_columns_read_flags_and_keep_an_empty_set(ml_store: Store, pngs: list[Path], tmp_path: Path) -> None:
    table = pd.DataFrame(
        {
            "filepath": [p.name for p in pngs[:3]],
            "bag": ["1", "yes", "0"],
            "shirt": ["TRUE", "no", "false"],
            "dress": ["0", "1", "No"],
            "note": ["x", "y", "z"],
        }
    )
    for p in pngs[:3]:
        shutil.copy(p, tmp_path / p.name)
    table.to_csv(tmp_path / "flags.csv", index=False)
    task = get_task("multilabel")
    report = import_images(ml_store, tmp_path / "flags.csv", class_cols="*", task=task)
    assert (report.added, report.labeled) == (3, 3)
    assert _annotations(ml_store) == {pngs[0].name: ["bag", "shirt"], pngs[1].name: ["bag", "dress"], pngs[2].name: []}


def test_class_column_with_a_bad_value_names_file_row_and_column(
    ml_store: Store, pngs: list[Path], tmp_path: Path
) -> None:
    pd.DataFrame({"filepath": [str(p) for p in pngs[:2]], "bag": ["1", "maybe"]}).to_csv(
        tmp_path / "f.csv", index=False
    )
    with pytest.raises(InputError, match=r"f\.csv, row 2, column 'bag': 'maybe' is not a class flag"):
        import_images(ml_store, tmp_path / "f.csv", class_cols=["bag"], task=get_task("multilabel"))
    with pytest.raises(InputError, match=r"no column\(s\) \['hat'\]"):
        import_images(ml_store, tmp_path / "f.csv", class_cols=["hat"], task=get_task("multilabel"))


def test_class_columns_in_a_single_label_project_are_refused_per_row(classes_store: Store, pngs: list[Path]) -> None:
    table = pd.DataFrame({"filepath": [str(pngs[0])], "bag": [1], "shirt": [0]})
    report = import_images(classes_store, table, class_cols=["bag", "shirt"])
    assert (report.added, dict(report.rejected)) == (0, {"invalid_label": 1})


def _tree(root: Path, layout: dict[str, list[Path]]) -> Path:
    for cls, files in layout.items():
        (root / cls).mkdir(parents=True)
        for f in files:
            shutil.copy(f, root / cls / f.name)
    return root


def test_image_under_several_class_folders_gets_all_of_them(ml_store: Store, pngs: list[Path], tmp_path: Path) -> None:
    root = _tree(tmp_path / "tree", {"bag": [pngs[0], pngs[1]], "dress": [pngs[2]], "shirt": [pngs[0], pngs[2]]})
    report = import_images(
        ml_store, root, fmt="imagefolder", task=get_task("multilabel"), batch_size=1, report_path=tmp_path / "r.csv"
    )
    assert (report.seen, report.added, report.labeled, report.duplicates, report.label_conflicts) == (5, 3, 3, 0, 0)
    assert report.merged == 2 and "2 copies under other class folders merged" in report.summary()
    assert _annotations(ml_store) == {
        pngs[0].name: ["bag", "shirt"],
        pngs[1].name: ["bag"],
        pngs[2].name: ["dress", "shirt"],
    }
    rows = pd.read_csv(tmp_path / "r.csv")
    assert rows.status.value_counts().to_dict() == {"added": 3, "merged": 2}
    both = next(img.id for img in ml_store.images() if Path(img.path).name == pngs[0].name)
    assert [ev.payload for ev in ml_store.label_history(both)] == [["bag", "shirt"]]  # one event, not one per folder
    again = import_images(ml_store, root, fmt="imagefolder", task=get_task("multilabel"))
    assert (again.added, again.labeled, again.duplicates, again.label_conflicts) == (0, 0, 3, 0)


def test_single_label_image_under_two_class_folders_stays_a_conflict(
    classes_store: Store, pngs: list[Path], tmp_path: Path
) -> None:
    root = _tree(tmp_path / "tree", {"bag": [pngs[0]], "shirt": [pngs[0]]})
    report = import_images(classes_store, root, fmt="imagefolder")
    assert (report.added, report.labeled, report.label_conflicts) == (1, 1, 1)
    assert [cur.label for cur in classes_store.current_labels().values()] == ["bag"]
