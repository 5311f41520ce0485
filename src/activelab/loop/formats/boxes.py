"""Box annotation files in a project: COCO JSON, YOLO and Pascal VOC, imported and exported.

The file formats are :mod:`activelab.data.annotations`' pure readers and writers; this
module finds the images an annotation file names, imports them with their boxes through
the normal import (file checks, duplicates, per-file report, each payload validated by
the task against the image's real size) and writes a project's current boxes beside
copies of its images.

A reader skips each bad box or image and says why in a sentence; the report files
it under a reason (``box_outside_image``, ``crowd_region``, ``unknown_category``, ``invalid_category``,
``image_not_listed``, ``invalid_image``, ``malformed_file``, ``unreadable_image``,
``invalid_box``) with the sentence as its detail (docs/formats.md lists them). The image of a skipped box is imported with its other boxes. Boxes whose
class the project lacks make their image's row ``unknown_class`` (nothing of it is
stored), as for a table row, unless ``add_classes`` adds the file's classes first.

An export writes one folder per split, ``pool/`` (and ``eval/`` with ``include_eval``),
each with the labeled images under ``images/`` as ``<image id>_<name>``:
COCO adds ``<split>/annotations.json`` (``file_name`` relative to ``images/``), YOLO
``<split>/labels/`` and one ``data.yaml`` (``train``: pool, ``val``: eval), VOC one
``<split>/annotations/<stem>.xml`` per image. Import each split back from that file
or folder with ``--split`` set to match.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

from activelab.data.annotations import (
    AnnotationProblem,
    AnnotationSet,
    ImageBoxes,
    read_coco,
    read_voc,
    read_yolo,
    write_coco,
    write_voc,
    write_yolo,
)
from activelab.data.annotations.yolo import _layout as yolo_layout  # its split's images folder, as read_yolo finds it
from activelab.data.sources import SourceItem
from activelab.exceptions import InputError
from activelab.loop.formats._common import new_output_dir
from activelab.loop.ingest import ImportItem, ImportProblem, ImportReport, import_items
from activelab.progress import Progress
from activelab.store import Store
from activelab.tasks import Task

BOX_FORMATS = ("coco", "yolo", "voc")
#: the YOLO ``data.yaml`` key of each project split
YOLO_SPLITS = {"pool": "train", "eval": "val"}
COCO_FILE = "annotations.json"
IMAGES_DIR = "images"
VOC_DIR = "annotations"
#: (words in a reader's sentence, the report's reason), first match wins
_REASONS = (
    ("outside the image", "box_outside_image"),
    ("crowd region", "crowd_region"),
    ("unknown category", "unknown_category"),
    ("unknown class", "unknown_category"),
    ("category", "invalid_category"),
    ("not in the file's images list", "image_not_listed"),
    ("with no image", "image_not_listed"),
    ("unreadable image", "unreadable_image"),
    ("image size", "invalid_image"),
    ("image entry", "invalid_image"),
    ("appears twice", "invalid_image"),
    ("malformed", "malformed_file"),
    ("root element", "malformed_file"),
    ("no <filename>", "malformed_file"),
    ("unreadable label file", "malformed_file"),
)


def import_boxes(
    store: Store,
    source: str | Path,
    fmt: str,
    *,
    task: Task,
    images_root: str | Path | None = None,
    split: str = "pool",
    add_classes: bool = False,
    author: str | None = None,
    report_path: str | Path | None = None,
    progress: Progress = False,
) -> ImportReport:
    """Import the images of a COCO JSON file, a YOLO dataset (its ``data.yaml`` or folder) or a VOC folder.

    Images are found under ``images_root`` when given, else where the format keeps them:
    beside a COCO file or in its ``images/`` folder; in the YOLO split's images folder
    (``train`` for the pool, ``val`` for ``--split eval``); beside a VOC folder's XML files
    or in the ``images/`` or ``JPEGImages/`` folder next to it. ``add_classes`` adds the
    file's classes, in its order, before anything is checked.
    """
    _require_boxes(task, fmt)
    source = Path(source)
    found, folders = _read(source, fmt, split)
    if images_root is not None:
        folders = [Path(images_root)]
    new_classes = store.add_classes(found.classes) if add_classes else []
    items = [
        ImportItem(SourceItem(_find(item.file_name, folders), None, row, item.file_name), item.boxes)
        for row, item in enumerate(found.items, start=1)
    ]
    report = import_items(
        store,
        items,
        split=split,
        task=task,
        author=author,
        report_path=report_path,
        problems=[_problem(p) for p in found.problems],
        progress=progress,
    )
    report.new_classes = new_classes
    return report


def _require_boxes(task: Task, fmt: str) -> None:
    """Refuse an unknown format, and box files for a project whose annotations are classes."""
    if fmt not in BOX_FORMATS:
        raise InputError(f"box formats are {', '.join(BOX_FORMATS)}; got {fmt!r}")
    if task.output != "boxes":
        raise InputError(
            f"{fmt} files hold boxes and this project's annotations are classes; use a detection project "
            "(`activelab init PROJECT --task detection`), or for classes csv, parquet, imagefolder, labelstudio, "
            "hf-imagefolder or fiftyone"
        )


def _read(source: Path, fmt: str, split: str) -> tuple[AnnotationSet, list[Path]]:
    """What the file says and the folders its images may be in, most likely first."""
    if fmt == "coco":
        return read_coco(source), [source.parent, source.parent / IMAGES_DIR]
    if fmt == "yolo":
        if split not in YOLO_SPLITS:
            raise InputError(f"--split must be 'pool' or 'eval', got {split!r}")
        key = YOLO_SPLITS[split]
        return read_yolo(source, split=key), [yolo_layout(source, key)[0]]
    return read_voc(source), [source, source.parent / IMAGES_DIR, source.parent / "JPEGImages"]


def _find(file_name: str, folders: Sequence[Path]) -> Path:
    """The first of ``folders`` holding ``file_name`` (an absolute name is itself); else where it should be."""
    if Path(file_name).is_absolute():
        return Path(file_name)
    for folder in folders:
        if (folder / file_name).is_file():
            return folder / file_name
    return folders[0] / file_name


def _problem(problem: AnnotationProblem) -> ImportProblem:
    """A reader's problem as a report row: its sentence filed under a reason."""
    text = problem.reason.lower()
    reason = next((reason for words, reason in _REASONS if words in text), "invalid_box")
    return ImportProblem(problem.where, reason, problem.reason)


def export_boxes(store: Store, out: str | Path, fmt: str, *, task: Task, include_eval: bool = False) -> Path:
    """Write the current boxes of every labeled image in ``fmt`` (COCO, YOLO or VOC) into the new folder ``out``.

    An image labeled "nothing here" (``[]``) is written with no box; unlabeled images are
    not written. Classes are the project's in order (retired ones last), so category ids
    and YOLO indexes follow the project's class order. A box's ``origin`` is not written:
    none of these formats has a place for it.
    """
    _require_boxes(task, fmt)
    out = new_output_dir(Path(out))
    classes = [*store.class_names(), *store.retired_classes()]
    current = store.current_annotations()
    splits = ("pool", "eval") if include_eval else ("pool",)
    for split in splits:
        folder = out / split
        items = []
        for img in store.images(split):
            cur = current.get(img.id)
            if cur is None:
                continue
            name = f"{img.id}_{Path(img.path).name}"
            (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
            shutil.copy2(img.path, folder / IMAGES_DIR / name)
            items.append(ImageBoxes(name, img.width, img.height, cast("list[dict[str, Any]]", cur.payload)))
        if fmt == "coco":
            write_coco(folder / COCO_FILE, items, classes)
        elif fmt == "yolo":
            write_yolo(out, items, classes, split=YOLO_SPLITS[split], folder=split)
        else:
            write_voc(folder / VOC_DIR, items)
    return out
