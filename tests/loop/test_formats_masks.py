"""Masks in and out of a segmentation project: VOC mask folders, COCO, Label Studio and mask tables.

Each format's export imports back into a new store to the same masks, pixel for pixel (partly
labeled ones included); hand-built COCO and Label Studio files paint the masks worked out here;
bad masks, polygons and PNGs are rejected with their reason while the good rows are kept.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from activelab.data.annotations.ls_brush import decode_brush, encode_brush
from activelab.exceptions import InputError
from activelab.loop.formats import export_labelstudio, export_masks, import_labelstudio, import_masks
from activelab.loop.ingest import import_images
from activelab.store import Store, open_store, sqlite_url
from activelab.tasks import Task, get_task
from activelab.tasks.masks import IGNORE, encode_png

CLASSES = ["background", "bag", "shoe"]


def _masks() -> dict[str, tuple[str, np.ndarray | None]]:
    """Per image: its split and its mask (None: unlabeled). Sizes are (H, W)."""
    a = np.zeros((16, 16), np.uint8)
    a[2:9, 3:12] = 1
    a[10:15, 0:6] = 2
    b = np.full((16, 16), IGNORE, np.uint8)  # partly labeled, background included
    b[:8] = 0
    b[1:6, 4:10] = 1
    c = np.full((16, 32), IGNORE, np.uint8)  # partly labeled, no background pixel
    c[4:12, 20:30] = 2
    e = np.zeros((16, 16), np.uint8)
    e[5:11, 5:11] = 2
    return {
        "a.png": ("pool", a),
        "b.png": ("pool", b),
        "c.png": ("pool", c),
        "d.png": ("pool", None),
        "e.png": ("eval", e),
    }


MASKS = _masks()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Random-content images and their masks as PNG files, with a pool and an eval table."""
    rng = np.random.default_rng(0)
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    rows: dict[str, list[dict[str, str]]] = {"pool": [], "eval": []}
    for name, (split, mask) in MASKS.items():
        shape = (16, 32) if name == "c.png" else (16, 16)
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(tmp_path / "images" / name)
        cell = ""
        if mask is not None:
            (tmp_path / "masks" / name).write_bytes(encode_png(mask))
            cell = f"masks/{name}"
        rows[split].append({"image": f"images/{name}", "mask": cell})
    for split, table in rows.items():
        pd.DataFrame(table).to_csv(tmp_path / f"{split}.csv", index=False)
    return tmp_path


def _store(path: Path) -> Iterator[Store]:
    store = open_store(sqlite_url(path))
    yield store
    store.close()


@pytest.fixture
def source(tmp_path: Path, folder: Path) -> Iterator[tuple[Store, Task]]:
    """A segmentation store holding every image of :data:`MASKS` with its mask, imported from the tables."""
    for store in _store(tmp_path / "source.db"):
        task = get_task("segmentation")
        store.add_classes(CLASSES)
        for split in ("pool", "eval"):
            report = import_images(store, folder / f"{split}.csv", split=split, task=task)
            assert report.n_rejected == 0, report.summary()
        yield store, task


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Store]:
    yield from _store(tmp_path / "fresh.db")


def _by_content(store: Store, task: Task) -> dict[tuple[str, str], np.ndarray]:
    images = {img.id: img for img in store.images()}
    return {
        (images[i].sha256, images[i].split): task.masks.get(cur.payload["mask"])
        for i, cur in store.current_annotations().items()
    }


def _assert_same_masks(got: dict[tuple[str, str], np.ndarray], want: dict[tuple[str, str], np.ndarray]) -> None:
    assert got.keys() == want.keys()
    for key, mask in want.items():
        assert got[key].dtype == np.uint8 and np.array_equal(got[key], mask), key


def test_the_table_import_reads_mask_paths_relative_to_the_table(source: tuple[Store, Task]) -> None:
    store, task = source
    masks = _by_content(store, task)
    want = sorted(m.tobytes() for _, m in MASKS.values() if m is not None)
    assert sorted(m.tobytes() for m in masks.values()) == want
    assert len(store.images()) == 5  # d.png is in, unlabeled


@pytest.mark.parametrize("fmt", ["voc-masks", "coco", "masks-table"])
def test_each_folder_format_exports_and_imports_back_to_the_same_masks(
    fmt: str, tmp_path: Path, source: tuple[Store, Task], fresh: Store
) -> None:
    store, task = source
    out = export_masks(store, tmp_path / "out", fmt, task=task, include_eval=True)
    assert (out / "classes.txt").read_text().split() == CLASSES
    back = get_task("segmentation")
    for split in ("pool", "eval"):
        where = {"voc-masks": out, "coco": out / split / "annotations.json", "masks-table": out / f"{split}_masks.csv"}
        report = import_masks(fresh, where[fmt], fmt, task=back, split=split, add_classes=True)
        assert report.n_rejected == 0, report.summary()
    assert fresh.class_names() == CLASSES
    _assert_same_masks(_by_content(fresh, back), _by_content(store, task))


def test_the_voc_export_is_a_voc_folder_of_palette_pngs(tmp_path: Path, source: tuple[Store, Task]) -> None:
    store, task = source
    out = export_masks(store, tmp_path / "voc", "voc-masks", task=task, include_eval=True)
    train = (out / "ImageSets" / "Segmentation" / "train.txt").read_text().split()
    assert len(train) == 3 and (out / "ImageSets" / "Segmentation" / "val.txt").read_text().split() == ["5_e"]
    with Image.open(out / "SegmentationClass" / f"{train[1]}.png") as png:
        assert png.mode == "P" and png.getpalette()[255 * 3 : 256 * 3] == [224, 224, 192]
        assert (np.asarray(png) == IGNORE).sum() == (MASKS["b.png"][1] == IGNORE).sum()
    assert all((out / "JPEGImages" / f"{stem}.png").is_file() for stem in train)


def test_the_coco_export_loads_in_pycocotools(tmp_path: Path, source: tuple[Store, Task]) -> None:
    from pycocotools.coco import COCO

    store, task = source
    out = export_masks(store, tmp_path / "coco", "coco", task=task)
    coco = COCO(str(out / "pool" / "annotations.json"))
    assert [c["name"] for c in coco.loadCats(coco.getCatIds())] == CLASSES
    by_name = {img["file_name"]: img["id"] for img in coco.dataset["images"]}
    b = MASKS["b.png"][1]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[by_name["2_b.png"]]))
    assert [a["category_id"] for a in anns] == [1, 2]  # background and bag; the unlabeled half in none
    for ann in anns:
        assert np.array_equal(coco.annToMask(ann).astype(bool), b == ann["category_id"] - 1)
    assert coco.imgs[by_name["2_b.png"]]["activelab_fill"] == "ignore"


def test_coco_polygons_and_rle_paint_later_over_earlier(tmp_path: Path, folder: Path, fresh: Store) -> None:
    fresh.add_classes(CLASSES)
    stripe = np.zeros((16, 16), np.uint8)
    stripe[8:12] = 1
    counts, value, run = [], 0, 0
    for pixel in stripe.ravel(order="F"):  # uncompressed COCO RLE, column-major, first run of zeros
        if pixel != value:
            counts.append(run)
            value, run = pixel, 0
        run += 1
    counts.append(run)
    data = {
        "images": [{"id": 7, "file_name": "a.png", "width": 16, "height": 16}],
        "categories": [{"id": 3, "name": "bag"}, {"id": 9, "name": "shoe"}],
        "annotations": [
            {"id": 1, "image_id": 7, "category_id": 3, "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]]},
            {"id": 2, "image_id": 7, "category_id": 9, "segmentation": {"size": [16, 16], "counts": counts}},
        ],
    }
    (folder / "images" / "coco.json").write_text(json.dumps(data))
    task = get_task("segmentation")
    report = import_masks(fresh, folder / "images" / "coco.json", "coco", task=task)
    assert (report.added, report.labeled, report.n_rejected) == (1, 1, 0)
    want = np.zeros((16, 16), np.uint8)
    want[2:10, 2:10] = 1  # pycocotools fills the pixels whose centres the square covers
    want[8:12] = 2
    (got,) = _by_content(fresh, task).values()
    assert np.array_equal(got, want)


def test_bad_coco_regions_reject_their_image_and_keep_the_others(tmp_path: Path, folder: Path, fresh: Store) -> None:
    fresh.add_classes(CLASSES)
    square = [[2, 2, 10, 2, 10, 10, 2, 10]]
    data = {
        "images": [
            {"id": 1, "file_name": "a.png", "width": 16, "height": 16},
            {"id": 2, "file_name": "b.png", "width": 16, "height": 16},
            {"id": 3, "file_name": "e.png", "width": 16, "height": 16},
            {"id": 4, "file_name": "d.png", "width": 8, "height": 8},
        ],
        "categories": [{"id": 1, "name": "bag"}, {"id": 2, "name": "hat"}],
        "annotations": [
            {"image_id": 1, "category_id": 1, "segmentation": square},
            {"image_id": 2, "category_id": 1, "segmentation": [[2, 2, 30, 2, 30, 10]]},  # beyond the 16 px image
            {"image_id": 3, "category_id": 2, "segmentation": square},  # hat is not a class
            {"image_id": 4, "category_id": 1, "segmentation": [[1, 1, 6, 1, 6, 6]]},  # 8x8 mask, 16x16 image
            {"image_id": 99, "category_id": 1, "segmentation": square},
        ],
    }
    (folder / "images" / "coco.json").write_text(json.dumps(data))
    report = import_masks(
        fresh, folder / "images" / "coco.json", "coco", task=get_task("segmentation"), report_path=tmp_path / "r.csv"
    )
    assert (report.added, report.labeled) == (1, 1)
    assert dict(report.rejected) == {"invalid_label": 2, "unknown_class": 1, "image_not_listed": 1}
    rows = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    detail = dict(zip(rows.path, rows.detail))
    assert "polygon outside the image: point (30, 2)" in detail["b.png"]
    assert "'hat'" in detail["e.png"]
    assert "8x8 image, the image is 16x16" in detail["d.png"]


def test_bad_mask_files_in_a_table_are_rejected_with_their_reason(tmp_path: Path, folder: Path, fresh: Store) -> None:
    fresh.add_classes(CLASSES)
    good = np.zeros((16, 16), np.uint8)
    good[4:8, 4:8] = 1
    (folder / "masks" / "good.png").write_bytes(encode_png(good))
    (folder / "masks" / "small.png").write_bytes(encode_png(np.zeros((8, 8), np.uint8)))
    colours = np.zeros((16, 16, 3), np.uint8)
    colours[0, :5] = (1, 2, 3)
    Image.fromarray(colours).save(folder / "masks" / "colours.png")
    (folder / "masks" / "cut.png").write_bytes(encode_png(good)[:40])
    (folder / "masks" / "values.png").write_bytes(encode_png(np.full((16, 32), 7, np.uint8)))
    names = ["good", "small", "colours", "cut", "values"]
    table = pd.DataFrame({"image": [f"images/{n}" for n in ("a.png", "b.png", "d.png", "e.png", "c.png")]})
    table["mask"] = [f"masks/{n}.png" for n in names]
    table.to_csv(folder / "bad.csv", index=False)
    task = get_task("segmentation")
    report = import_images(fresh, folder / "bad.csv", task=task, report_path=tmp_path / "r.csv")
    assert (report.added, report.labeled, dict(report.rejected)) == (1, 1, {"invalid_label": 4})
    rows = pd.read_csv(tmp_path / "r.csv", keep_default_na=False)
    detail = dict(zip(rows.path, rows.detail))
    assert "8x8 px but the image is 16x16 px" in detail["images/b.png"]
    assert "colour (1, 2, 3)" in detail["images/d.png"] and "5 px" in detail["images/d.png"]
    assert "truncated or not a PNG" in detail["images/e.png"]
    assert "mask values 7" in detail["images/c.png"]
    (mask,) = _by_content(fresh, task).values()
    assert np.array_equal(mask, good)


def test_label_studio_brushes_go_out_and_back(
    tmp_path: Path, folder: Path, source: tuple[Store, Task], fresh: Store
) -> None:
    store, task = source
    out = export_labelstudio(store, tmp_path / "ls" / "tasks.json", task=task)
    config = (tmp_path / "ls" / "tasks_label_config.xml").read_text()
    assert "<BrushLabels" in config and "<PolygonLabels" in config and 'background="#800000"' in config
    entries = json.loads(out.read_text())
    results = [r for e in entries for a in e.get("annotations", []) for r in a["result"]]
    assert {r["type"] for r in results} == {"brushlabels"} and len(results) == 3 + 2 + 1
    back = get_task("segmentation")
    report = import_labelstudio(fresh, out, task=back, add_classes=True, images_root=folder / "images")
    assert (report.labeled, report.n_rejected) == (3, 0)
    assert fresh.class_names() == CLASSES
    want = {key: mask for key, mask in _by_content(store, task).items() if key[1] == "pool"}
    _assert_same_masks(_by_content(fresh, back), want)


def test_label_studio_polygons_and_bad_regions(tmp_path: Path, folder: Path, fresh: Store) -> None:
    fresh.add_classes(CLASSES)

    def region(kind: str, label: str, value: dict, size: int = 16) -> dict:
        value = {**value, f"{kind}labels": [label]}
        return {"type": f"{kind}labels", "original_width": size, "original_height": size, "value": value}

    brush = np.zeros((16, 16), bool)
    brush[0:4] = True
    polygon = {"points": [[25, 25], [75, 25], [75, 75], [25, 75]]}  # percent: pixels 4..12
    tasks = [
        {
            "data": {"image": "a.png"},
            "annotations": [
                {"result": [region("brush", "shoe", {"rle": encode_brush(brush)}), region("polygon", "bag", polygon)]}
            ],
        },
        {
            "data": {"image": "b.png"},
            "annotations": [{"result": [region("polygon", "bag", {"points": [[0, 0], [150, 0], [50, 50]]})]}],
        },
        {
            "data": {"image": "e.png"},
            "annotations": [{"result": [region("brush", "bag", {"rle": encode_brush(np.ones((8, 8), bool))}, 8)]}],
        },
    ]
    (folder / "images" / "ls.json").write_text(json.dumps(tasks))
    task = get_task("segmentation")
    report = import_labelstudio(fresh, folder / "images" / "ls.json", task=task, report_path=tmp_path / "r.csv")
    assert (report.added, report.labeled, dict(report.rejected)) == (3, 1, {"invalid_label": 2})
    want = np.zeros((16, 16), np.uint8)
    want[0:4] = 2
    want[4:12, 4:12] = 1
    (got,) = _by_content(fresh, task).values()
    assert np.array_equal(got, want)
    details = " ".join(pd.read_csv(tmp_path / "r.csv", keep_default_na=False).detail)
    assert "polygon outside the image: point (24, 0)" in details
    assert "painted on a 8x8 image but the image is 16x16 px" in details


def test_the_brush_rle_decodes_a_hand_built_stream_with_literal_and_repeated_runs() -> None:
    # a 2x1 RGBA image: pixel 0 transparent (4 literal bytes), pixel 1 opaque (a run of 4 x 255)
    header = f"{8:032b}{7:05b}" + "".join(f"{s - 1:04b}" for s in (3, 4, 8, 16))
    body = "0" + "00" + f"{3:03b}" + f"{0:08b}" * 4 + "1" + "00" + f"{3:03b}" + f"{255:08b}"
    bits = header + body + "0" * (-len(header + body) % 8)
    rle = list(int(bits, 2).to_bytes(len(bits) // 8, "big"))
    assert decode_brush(rle, 2, 1).tolist() == [[False, True]]
    region = np.random.default_rng(3).random((9, 13)) > 0.6
    assert np.array_equal(decode_brush(encode_brush(region), 13, 9), region)
    with pytest.raises(InputError, match="holds 468 values but a 9x9"):
        decode_brush(encode_brush(region), 9, 9)
    with pytest.raises(InputError, match="ends before its last run"):
        decode_brush(encode_brush(region)[:-5], 13, 9)


def test_mask_formats_are_refused_where_they_do_not_fit(tmp_path: Path, source: tuple[Store, Task]) -> None:
    store, task = source
    with pytest.raises(InputError, match="voc-masks, coco, labelstudio, masks-table; got 'yolo'"):
        export_masks(store, tmp_path / "y", "yolo", task=task)
    with pytest.raises(InputError, match="annotations are boxes"):
        import_masks(store, tmp_path, "voc-masks", task=get_task("detection"))
    with pytest.raises(InputError, match="classes.txt does not exist"):
        import_masks(store, tmp_path / "nothing.csv", "masks-table", task=task, add_classes=True)
    (tmp_path / "classes.txt").write_text("_background_\nbag\nshoe\n")
    with pytest.raises(InputError, match="must be the first names of the file"):
        import_masks(store, tmp_path / "nothing.csv", "masks-table", task=task, add_classes=True)
    assert store.class_names() == CLASSES


def test_the_cli_imports_and_exports_masks_and_names_the_formats_that_work(tmp_path: Path, folder: Path) -> None:
    from activelab.cli.main import app
    from activelab.loop.project import open_project

    runner = CliRunner()

    def invoke(*args: object):  # type: ignore[no-untyped-def]
        return runner.invoke(app, [str(a) for a in args])

    project = tmp_path / "p"
    assert invoke("init", project, "--task", "segmentation", "--classes", ",".join(CLASSES)).exit_code == 0
    result = invoke("import", project, folder / "pool.csv", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["labels_recorded"] == 3
    result = invoke("export", project, tmp_path / "voc", "--format", "voc-masks")
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "voc" / "SegmentationClass").iterdir())) == 3
    assert invoke("init", tmp_path / "q", "--task", "segmentation").exit_code == 0
    result = invoke("import", tmp_path / "q", tmp_path / "voc", "--format", "voc-masks", "--add-classes", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["labels_recorded"] == 3
    with open_project(tmp_path / "q") as proj:
        assert proj.store.class_names() == CLASSES  # init may add "background" itself; classes.txt adds the rest
    result = invoke("export", project, tmp_path / "y", "--format", "yolo")
    assert result.exit_code != 0 and "voc-masks, coco, labelstudio, masks-table" in result.output


def test_fashion_scenes_mask_tables_import_with_their_class_list(tmp_path: Path, fresh: Store) -> None:
    from activelab.data.scenes import SEGMENTATION_TABLES, write_scenes
    from activelab.tasks.masks import read_mask

    root = tmp_path / "scenes"
    write_scenes(root, n_pool=8, n_eval=4, size=64)
    task = get_task("segmentation")
    report = import_masks(fresh, root / SEGMENTATION_TABLES["answers"], "masks-table", task=task, add_classes=True)
    assert (report.added, report.labeled, report.n_rejected) == (8, 8, 0)
    names = (root / SEGMENTATION_TABLES["classes"]).read_text().split("\n")
    assert fresh.class_names() == [n for n in names if n] and fresh.class_names()[0] == "background"
    table = pd.read_csv(root / SEGMENTATION_TABLES["answers"])
    by_sha = {sha: mask for (sha, _), mask in _by_content(fresh, task).items()}
    first = next(img for img in fresh.images() if Path(img.path).name == Path(table.image[0]).name)
    assert np.array_equal(by_sha[first.sha256], read_mask(root / table["mask"][0]))
