"""COCO instances JSON: one file of ``images``, ``categories`` and ``annotations`` with ``bbox``.

COCO boxes are ``[x, y, w, h]`` in pixels from the image's top-left corner, the payload's own
convention, so no coordinate changes. Classes are the categories in id order. Image and
annotation ids are written from 1 (pycocotools' COCOeval treats id 0 as "unmatched").
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from activelab._io import atomic_write_text
from activelab.data.annotations._common import (
    AnnotationProblem,
    AnnotationSet,
    ImageBoxes,
    box_class_index,
    check_size,
    class_positions,
    make_box,
)
from activelab.exceptions import InputError, NotFoundError


def read_coco(path: str | Path) -> AnnotationSet:
    """Read a COCO instances JSON file; every image of its ``images`` list is an item (``[]`` if unannotated).

    Bad rows (an annotation whose image id is not in ``images``, an unknown category id, a box
    outside the image or of zero size, an image without a usable size) are skipped and reported,
    and so are crowd regions (``iscrowd=1``), which COCO's own evaluation ignores as well.
    Only a file that is missing, not JSON, or without the ``images`` / ``categories`` /
    ``annotations`` lists raises :class:`InputError` (:class:`NotFoundError` when missing).
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no COCO annotation file at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); export the COCO annotations again") from exc
    if not isinstance(data, dict) or any(not isinstance(data.get(key), list) for key in ("images", "categories")):
        raise InputError(
            f"{path} is not a COCO instances file: it needs the lists 'images' and 'categories' (and 'annotations')"
        )
    problems: list[AnnotationProblem] = []
    names = _categories(data["categories"], path.name, problems)
    items: dict[Any, ImageBoxes] = {}
    file_names: set[str] = set()
    for i, image in enumerate(data["images"]):
        where = f"{path.name} images[{i}]"
        try:
            if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
                raise InputError("image entry needs 'id' and 'file_name'")
            if image["id"] in items:
                raise InputError(f"image id {image['id']!r} appears twice in the images list")
            if image["file_name"] in file_names:
                raise InputError(f"file_name {image['file_name']!r} appears twice in the images list")
            width, height = check_size(image.get("width"), image.get("height"))
        except InputError as exc:
            problems.append(AnnotationProblem(where, str(exc)))
            continue
        items[image["id"]] = ImageBoxes(image["file_name"], width, height, [])
        file_names.add(image["file_name"])
    for i, ann in enumerate(data.get("annotations") or []):
        where = f"{path.name} annotations[{i}]"
        try:
            image_id, box = _annotation_box(ann, items, names)
        except InputError as exc:
            problems.append(AnnotationProblem(where, str(exc)))
            continue
        items[image_id].boxes.append(box)
    classes = [names[key] for key in sorted(names)]
    return AnnotationSet(list(items.values()), classes, problems)


def _categories(categories: list[Any], file_name: str, problems: list[AnnotationProblem]) -> dict[int, str]:
    """Category id -> name; a category without an int id and a name, or a repeated id, is reported."""
    names: dict[int, str] = {}
    for i, cat in enumerate(categories):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            problems.append(
                AnnotationProblem(f"{file_name} categories[{i}]", "category needs an int 'id' and a 'name'")
            )
        elif cat["id"] in names or cat["name"] in names.values():
            problems.append(
                AnnotationProblem(f"{file_name} categories[{i}]", f"category {cat['id']} {cat['name']!r} repeats")
            )
        else:
            names[cat["id"]] = cat["name"]
    return names


def _annotation_box(ann: Any, items: dict[Any, ImageBoxes], names: dict[int, str]) -> tuple[Any, dict[str, Any]]:
    """The image id and payload box of one annotation, or :class:`InputError` with the reason it is bad."""
    if not isinstance(ann, dict):
        raise InputError("annotation is not an object")
    if ann.get("image_id") not in items:
        raise InputError(f"image id {ann.get('image_id')!r} is not in the file's images list")
    if ann.get("category_id") not in names:
        raise InputError(f"unknown category id {ann.get('category_id')!r}")
    if ann.get("iscrowd"):
        raise InputError("crowd region (iscrowd=1): a box payload holds single objects, so it was skipped")
    bbox = ann.get("bbox")
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
    ):
        raise InputError(f"bbox must be a list of 4 numbers [x, y, w, h], got {bbox!r}")
    score = ann.get("score")
    if score is not None and (not isinstance(score, int | float) or isinstance(score, bool)):
        raise InputError(f"score must be a number, got {score!r}")
    image = items[ann["image_id"]]
    x, y, w, h = (float(v) for v in bbox)
    box = make_box(names[ann["category_id"]], x, y, w, h, image.width, image.height, score=score)
    return ann["image_id"], box


def write_coco(
    path: str | Path,
    items: Sequence[ImageBoxes],
    classes: Sequence[str],
    *,
    segmentations: Sequence[Sequence[dict[str, Any]]] | None = None,
) -> None:
    """Write ``items`` as a COCO instances JSON file (atomically).

    Category ids are the class positions + 1, image ids the item positions + 1. A box with a
    ``"score"`` keeps it, so predictions written here load with pycocotools' ``loadRes`` (pass
    it the ``annotations`` list). ``segmentations`` gives per item, per box, a COCO RLE
    (``{"size": [h, w], "counts": str}``) whose pixel count becomes the ``area``; without it the
    segmentation is the box polygon and the area the box's.
    """
    positions = class_positions(list(classes))
    if segmentations is not None and len(segmentations) != len(items):
        raise InputError(f"segmentations has {len(segmentations)} entries for {len(items)} images; give one per image")
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, item in enumerate(items, start=1):
        images.append({"id": image_id, "file_name": item.file_name, "width": item.width, "height": item.height})
        rles = None if segmentations is None else segmentations[image_id - 1]
        if rles is not None and len(rles) != len(item.boxes):
            raise InputError(
                f"{item.file_name}: {len(rles)} segmentations for {len(item.boxes)} boxes; give one per box"
            )
        for j, box in enumerate(item.boxes):
            ann = _annotation(box, positions, item.file_name, None if rles is None else rles[j])
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, **ann})
    categories = [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(classes)]
    data = {"images": images, "categories": categories, "annotations": annotations}
    atomic_write_text(path, json.dumps(data, separators=(",", ":")))


def _annotation(box: dict[str, Any], positions: dict[str, int], file_name: str, rle: dict[str, Any] | None) -> dict:
    """The COCO fields of one payload box (without ids)."""
    x, y, w, h = (float(box[key]) for key in ("x", "y", "w", "h"))
    if rle is None:
        segmentation: Any = [[x, y, x + w, y, x + w, y + h, x, y + h]]
        area = w * h
    else:
        from pycocotools import mask as mask_utils

        segmentation, area = rle, float(mask_utils.area(_encoded(rle)))
    ann = {
        "category_id": box_class_index(box, positions, file_name) + 1,
        "bbox": [x, y, w, h],
        "area": area,
        "iscrowd": 0,
        "segmentation": segmentation,
    }
    if "score" in box:
        ann["score"] = float(box["score"])
    return ann


def _encoded(rle: dict[str, Any]) -> dict[str, Any]:
    """An RLE as pycocotools' C functions take it: ``counts`` as bytes."""
    counts = rle["counts"]
    return {"size": list(rle["size"]), "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
