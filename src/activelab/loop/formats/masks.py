"""Segmentation masks in a project: VOC mask folders, COCO segmentations and mask tables, imported and exported.

(Label Studio brushes and polygons are :mod:`activelab.loop.formats.labelstudio`'s, through the
same ``labelstudio`` format name.) Every import goes through the normal import (file checks,
duplicates, per-file report), and every mask through the segmentation task's ``validate``
against the image's real size and the project's classes: a mask of the wrong size, a colour
outside the VOC palette, a value that is not a class, a truncated PNG, a polygon outside the
image rejects that image's row with the reason and the rest of the import goes on.

- ``voc-masks``: a folder with ``JPEGImages/`` and ``SegmentationClass/`` (palette PNGs of class
  positions, 255 = not labeled), or ``images/`` and ``masks/``; masks pair with images by file
  stem, an image without a mask is imported unlabeled. ``ImageSets/Segmentation/train.txt``
  (``val.txt`` for ``--split eval``) limits the import to the stems it lists when present;
  ``classes_masks.txt`` or ``classes.txt`` (one name a line, position order) gives
  ``--add-classes`` the names.
- ``coco``: an instances JSON whose annotations carry ``segmentation`` polygons or RLE; category
  names map to the project's classes by name; the regions of an image are painted in file order
  (:func:`activelab.data.annotations.masks.paint`: later over earlier, uncovered pixels background
  unless the background class itself is annotated, then unlabeled).
- ``masks-table``: a CSV/parquet table with an ``image`` (or ``filepath``) column and a ``mask``
  column of PNG paths relative to the table's folder (the normal table import of a segmentation
  project); ``classes_masks.txt`` or ``classes.txt`` beside it gives ``--add-classes`` the names.

Exports write a new folder holding copies of the labeled images, named ``<image id>_<name>``:
``voc-masks`` the VOC layout with ``ImageSets/Segmentation/train.txt`` (pool) and ``val.txt``
(eval); ``coco`` ``<split>/images/`` and ``<split>/annotations.json`` (one RLE annotation per
class present in an image, background included, unlabeled pixels in none); ``masks-table``
``images/``, ``masks/`` and ``pool_masks.csv`` (and ``eval_masks.csv``). Each one imports back
to the same masks, pixel for pixel; ``classes.txt`` is written beside them.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activelab.data.annotations import AnnotationProblem
from activelab.data.annotations.masks import (
    VOC_IMAGES,
    VOC_LISTS,
    VOC_MASKS,
    paint,
    read_coco_regions,
    segmentation_mask,
    voc_mask_pairs,
    write_coco_masks,
    write_voc_list,
)
from activelab.data.sources import SourceItem
from activelab.exceptions import ImageRejected, InputError
from activelab.loop.formats._common import new_output_dir, stored_mask_key, with_background
from activelab.loop.ingest import MASK_COLUMN, ImportItem, ImportProblem, ImportReport, import_images, import_items
from activelab.progress import Progress
from activelab.store import CurrentAnnotation, Image, Store
from activelab.tasks import Task
from activelab.tasks.masks import encode_png

#: the formats of a segmentation project, as ``activelab import/export --format`` names them
MASK_FORMATS = ("voc-masks", "coco", "labelstudio", "masks-table")
#: the file naming the classes in position order, one a line, beside an exported set
CLASSES_FILE = "classes.txt"
#: where ``--add-classes`` looks for the names beside a folder or table, first found wins (fashion-scenes
#: writes ``classes_masks.txt`` beside its ``classes.txt`` of box classes, which has no background)
CLASSES_FILES = ("classes_masks.txt", CLASSES_FILE)
COCO_FILE = "annotations.json"
IMAGES_DIR, MASKS_DIR = "images", "masks"
#: the VOC list file of each project split
VOC_SPLITS = {"pool": "train", "eval": "val"}
#: (words in a reader's sentence, the report's reason), first match wins
_REASONS = (
    ("outside the image", "polygon_outside_image"),
    ("unknown category", "unknown_category"),
    ("category", "invalid_category"),
    ("not in the file's images list", "image_not_listed"),
    ("no image of the same name", "mask_without_image"),
    ("image size", "invalid_image"),
    ("image entry", "invalid_image"),
    ("appears twice", "invalid_image"),
)


def require_masks(task: Task, fmt: str) -> None:
    """Refuse a mask format for a project whose annotations are not masks, and an unknown format for one."""
    if task.output != "masks":
        raise InputError(
            f"{fmt} holds segmentation masks and this project's annotations are {task.output}; "
            "use a segmentation project (`activelab init PROJECT --task segmentation`)"
        )
    if fmt not in MASK_FORMATS:
        raise InputError(f"a segmentation project reads and writes --format {', '.join(MASK_FORMATS)}; got {fmt!r}")


def import_masks(
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
    """Import the images and masks of a VOC mask folder, a COCO JSON file or a mask table (``fmt``).

    COCO images are found under ``images_root`` when given, else beside the file or in its
    ``images/`` folder. ``add_classes`` adds the names the source gives (COCO categories in id
    order, ``classes.txt`` for a folder or table), after ``"background"`` when the project has
    no class yet and the names lack it. Label Studio files go to ``import_labelstudio``.
    """
    require_masks(task, fmt)
    if fmt == "labelstudio":
        raise InputError("Label Studio exports are read by activelab.loop.formats.import_labelstudio")
    source = Path(source)
    common: dict[str, Any] = {"split": split, "task": task, "author": author, "report_path": report_path}
    if fmt == "masks-table":
        new = _add_listed_classes(store, source.parent, add_classes)
        report = import_images(store, source, fmt="table", progress=progress, **common)
    elif fmt == "voc-masks":
        new = _add_listed_classes(store, source, add_classes)
        items, problems = _voc_items(source, split)
        report = import_items(store, items, problems=problems, progress=progress, **common)
    else:
        found = read_coco_regions(source)
        new = store.add_classes(with_background(store, found.classes)) if add_classes else []
        folders = [Path(images_root)] if images_root is not None else [source.parent, source.parent / IMAGES_DIR]
        items = list(_coco_items(found.items, folders, task, store.class_names()))
        report = import_items(store, items, problems=[_problem(p) for p in found.problems], progress=progress, **common)
    report.new_classes = new
    return report


def _add_listed_classes(store: Store, folder: Path, add_classes: bool) -> list[str]:
    """With ``add_classes``, the names of ``folder/classes_masks.txt`` (else ``classes.txt``) added in order;
    InputError when neither exists."""
    if not add_classes:
        return []
    path = next((folder / name for name in CLASSES_FILES if (folder / name).is_file()), folder / CLASSES_FILE)
    if not path.is_file():
        raise InputError(
            f"--add-classes needs the class names, but {path} does not exist: masks hold class positions, "
            f"so write the names one a line in position order (background first) into {CLASSES_FILE}, "
            "or add them with `activelab classes add`"
        )
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    have = store.class_names()
    if have != names[: len(have)]:
        raise InputError(
            f"{path} lists {names} but the project's classes are {have}: masks hold class positions, so the "
            "project's classes must be the first names of the file, in its order; import into a new project"
        )
    return store.add_classes(names)


def _voc_items(folder: Path, split: str) -> tuple[list[ImportItem], list[ImportProblem]]:
    """The images of a VOC mask folder with ``{"mask_file": ...}`` payloads (None: no mask), limited to the
    split's list file when there is one."""
    if split not in VOC_SPLITS:
        raise InputError(f"--split must be 'pool' or 'eval', got {split!r}")
    pairs, problems = voc_mask_pairs(folder)
    listed = folder / VOC_LISTS / f"{VOC_SPLITS[split]}.txt"
    if listed.is_file():
        stems = {line.strip() for line in listed.read_text(encoding="utf-8").splitlines() if line.strip()}
        pairs = [(image, mask) for image, mask in pairs if image.stem in stems]
    items = [
        ImportItem(
            SourceItem(image, None, row, image.relative_to(folder).as_posix()),
            None if mask is None else {"mask_file": str(mask.resolve())},
        )
        for row, (image, mask) in enumerate(pairs, start=1)
    ]
    return items, [_problem(p) for p in problems]


def _coco_items(
    images: Sequence[Any], folders: Sequence[Path], task: Task, classes: Sequence[str]
) -> Iterator[ImportItem]:
    """Each COCO image with its regions painted into a mask (stored, canonical payload), or why it cannot be."""
    positions = {name: i for i, name in enumerate(classes)}
    for row, item in enumerate(images, start=1):
        source = SourceItem(_find(item.file_name, folders), None, row, item.file_name)
        if not item.regions:
            yield ImportItem(source, None)
            continue
        unknown = sorted({name for name, _ in item.regions if name not in positions})
        if unknown:
            detail = (
                f"{item.file_name}: categor{'ies' if len(unknown) > 1 else 'y'} {', '.join(map(repr, unknown))} "
                f"not classes of this project ({', '.join(classes) or 'none yet'}); "
                "add them with `activelab classes add` or re-import with --add-classes"
            )
            yield ImportItem(source, None, ImageRejected("unknown_class", detail))
            continue
        size = (item.width, item.height)
        try:
            regions = [(positions[name], segmentation_mask(seg, *size)) for name, seg in item.regions]
            payload = task.validate(paint(regions, size, item.fill), classes, size=size)
        except InputError as exc:
            yield ImportItem(source, None, ImageRejected("invalid_label", f"{item.file_name}: {exc}"))
            continue
        yield ImportItem(source, payload)


def _find(file_name: str, folders: Sequence[Path]) -> Path:
    """The first of ``folders`` holding ``file_name`` (an absolute name is itself); else where it should be."""
    if Path(file_name).is_absolute():
        return Path(file_name)
    return next((folder / file_name for folder in folders if (folder / file_name).is_file()), folders[0] / file_name)


def _problem(problem: AnnotationProblem) -> ImportProblem:
    """A reader's problem as a report row: its sentence filed under a reason."""
    text = problem.reason.lower()
    reason = next((reason for words, reason in _REASONS if words in text), "invalid_segmentation")
    return ImportProblem(problem.where, reason, problem.reason)


# ------------------------------------------------------------------ exporting


def labeled_masks(store: Store, task: Task, split: str) -> Iterator[tuple[Image, CurrentAnnotation, np.ndarray]]:
    """``(image, its current annotation, (H, W) mask)`` of each labeled image of ``split``, by image id."""
    current = store.current_annotations()
    for img in store.images(split):
        cur = current.get(img.id)
        key = None if cur is None else stored_mask_key(cur.payload)
        if cur is not None and key is not None:
            yield img, cur, task.masks.get(key)


def export_masks(
    store: Store,
    out: str | Path,
    fmt: str,
    *,
    task: Task,
    include_eval: bool = False,
    polygons: bool = False,
) -> Path:
    """Write the current mask of every labeled image in ``fmt`` (``voc-masks``, ``coco``, ``masks-table``)
    into the new folder ``out``; returns it.

    Classes are the project's in order (retired ones last), so mask values, category ids
    (position + 1) and ``classes.txt`` lines agree. ``polygons`` writes COCO polygons (contours,
    approximate) instead of RLE. Label Studio files are ``export_labelstudio``'s.
    """
    require_masks(task, fmt)
    if fmt == "labelstudio":
        raise InputError("Label Studio files are written by activelab.loop.formats.export_labelstudio")
    out = new_output_dir(Path(out))
    classes = [*store.class_names(), *store.retired_classes()]
    (out / CLASSES_FILE).write_text("".join(f"{name}\n" for name in classes), encoding="utf-8")
    for split in ("pool", "eval") if include_eval else ("pool",):
        if fmt == "voc-masks":
            _export_voc(store, task, out, split)
        elif fmt == "coco":
            files = []
            for img, _, mask in labeled_masks(store, task, split):
                files.append((_copy_image(img, out / split / IMAGES_DIR), mask))
            write_coco_masks(out / split / COCO_FILE, files, classes, polygons=polygons)
        else:
            _export_table(store, task, out, split)
    return out


def _copy_image(img: Image, folder: Path) -> str:
    """Copy a stored image into ``folder`` as ``<id>_<name>``; its new file name."""
    name = f"{img.id}_{Path(img.path).name}"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(img.path, folder / name)
    return name


def _export_voc(store: Store, task: Task, out: Path, split: str) -> None:
    stems = []
    for img, _, mask in labeled_masks(store, task, split):
        name = _copy_image(img, out / VOC_IMAGES)
        stem = Path(name).stem
        (out / VOC_MASKS).mkdir(parents=True, exist_ok=True)
        (out / VOC_MASKS / f"{stem}.png").write_bytes(encode_png(mask))
        stems.append(stem)
    write_voc_list(out, VOC_SPLITS[split], stems)


def _export_table(store: Store, task: Task, out: Path, split: str) -> None:
    rows = []
    for img, cur, mask in labeled_masks(store, task, split):
        name = _copy_image(img, out / IMAGES_DIR)
        mask_name = f"{Path(name).stem}.png"
        (out / MASKS_DIR).mkdir(parents=True, exist_ok=True)
        (out / MASKS_DIR / mask_name).write_bytes(encode_png(mask))
        rows.append(
            {
                "image": f"{IMAGES_DIR}/{name}",
                MASK_COLUMN: f"{MASKS_DIR}/{mask_name}",
                "split": img.split,
                "author": cur.author,
                "labeled_at": cur.created_at.isoformat(),
                "round": cur.round_number,
                "image_id": img.id,
            }
        )
    columns = ["image", MASK_COLUMN, "split", "author", "labeled_at", "round", "image_id"]
    pd.DataFrame(rows, columns=columns).to_csv(out / f"{split}_masks.csv", index=False)
