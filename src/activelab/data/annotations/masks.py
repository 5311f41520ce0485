"""Semantic masks in other tools' files: COCO segmentations (polygons, RLE), VOC segmentation folders, regions.

Pure file formats (no task, no store). A mask is ``(H, W) uint8``: pixel value = class position,
255 = not labeled (:data:`activelab.tasks.masks.IGNORE`). Tools that store one region per object or
per class (COCO annotations, Label Studio brushes and polygons) are turned into a mask by
:func:`paint`: regions are painted in order, a later region over an earlier one (the order the
file lists them), and pixels no region covers are class 0, the background, unless a region of the
background class itself is present: then the file says where the background is and the pixels
nobody painted are not labeled. Exports write the background as a region of its own, and mark an
image whose mask has unlabeled pixels with :data:`FILL_KEY` ``"ignore"`` (COCO image entry, Label
Studio task data), which readers honour over the rule, so a partly labeled mask survives the trip.

COCO polygons are ``[x1, y1, x2, y2, ...]`` in pixels, rasterised by pycocotools (the same
``frPyObjects`` that COCO's own tools use); RLE is COCO's column-major run-length code, compressed
(``counts`` a string) or not (a list of ints).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from activelab._io import atomic_write_text
from activelab.data.annotations._common import CLIP_TOLERANCE, AnnotationProblem, check_size, class_positions
from activelab.exceptions import InputError, NotFoundError

IGNORE = 255  # activelab.tasks.masks.IGNORE; data/ does not import tasks/
BACKGROUND = 0
#: VOC segmentation folders: the images, the class masks (palette PNGs) and the split lists
VOC_IMAGES, VOC_MASKS, VOC_LISTS = "JPEGImages", "SegmentationClass", "ImageSets/Segmentation"
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
#: the key (COCO image entry, Label Studio task data) saying what uncovered pixels are: "ignore" or "background"
FILL_KEY = "activelab_fill"
FILLS = {"background": BACKGROUND, "ignore": IGNORE}


@dataclass
class ImageRegions:
    """The regions of one image as a file lists them: ``(class name, segmentation)`` in painting order.

    A segmentation is what the file holds (a COCO polygon list or RLE dict, a Label Studio
    result); :func:`region_mask` or the caller turns it into an ``(H, W)`` bool array.
    """

    file_name: str
    width: int
    height: int
    regions: list[tuple[str, Any]] = field(default_factory=list)
    #: what pixels no region covers are ("background", "ignore"); None: :func:`paint`'s rule
    fill: str | None = None


@dataclass
class RegionSet:
    """What a reader found: the images with their regions, the class names in the file, what it skipped."""

    items: list[ImageRegions]
    classes: list[str]
    problems: list[AnnotationProblem] = field(default_factory=list)


def paint(regions: Sequence[tuple[int, np.ndarray]], size: tuple[int, int], fill: str | None = None) -> np.ndarray:
    """The ``(H, W) uint8`` mask of ``(class position, (H, W) bool)`` regions, later over earlier.

    Uncovered pixels are ``fill`` (``"background"``: 0, ``"ignore"``: 255); by default the
    background unless a region is of the background class (then IGNORE).
    """
    width, height = size
    if fill is None:
        value = IGNORE if any(position == BACKGROUND for position, _ in regions) else BACKGROUND
    elif fill in FILLS:
        value = FILLS[fill]
    else:
        raise InputError(f"{FILL_KEY} must be one of {', '.join(FILLS)}, got {fill!r}")
    mask = np.full((height, width), value, dtype=np.uint8)
    for position, region in regions:
        mask[region] = position
    return mask


def class_regions(mask: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """``(class position, (H, W) bool)`` of every class present in ``mask``, background included, IGNORE not."""
    return [(int(value), mask == value) for value in np.unique(mask) if value != IGNORE]


def polygon_mask(polygon: Sequence[float], width: int, height: int) -> np.ndarray:
    """The ``(H, W)`` bool pixels inside a COCO polygon ``[x1, y1, x2, y2, ...]`` (pixels, top-left origin).

    InputError when it is not an even list of at least 3 finite points, or a point lies more than
    :data:`CLIP_TOLERANCE` px outside the image.
    """
    values = np.asarray(polygon, dtype=np.float64) if _numbers(polygon) else None
    if values is None or values.size < 6 or values.size % 2 or not np.isfinite(values).all():
        raise InputError(f"a polygon is a flat list of at least 3 finite x, y points, got {_short(polygon)}")
    points = values.reshape(-1, 2)
    outside = (
        (points[:, 0] < -CLIP_TOLERANCE)
        | (points[:, 1] < -CLIP_TOLERANCE)
        | (points[:, 0] > width + CLIP_TOLERANCE)
        | (points[:, 1] > height + CLIP_TOLERANCE)
    )
    if outside.any():
        x, y = points[int(np.argmax(outside))]
        raise InputError(
            f"polygon outside the image: point ({x:g}, {y:g}) is more than {CLIP_TOLERANCE:g} px beyond "
            f"the {width}x{height} image"
        )
    from pycocotools import mask as mask_utils

    rles = mask_utils.frPyObjects([values.tolist()], height, width)
    return mask_utils.decode(mask_utils.merge(rles)).astype(bool)


def rle_mask(rle: Any, width: int, height: int) -> np.ndarray:
    """The ``(H, W)`` bool pixels of a COCO RLE (``{"size": [h, w], "counts": str | list}``)."""
    from pycocotools import mask as mask_utils

    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise InputError(f"an RLE is {{'size': [h, w], 'counts': ...}}, got {_short(rle)}")
    if list(rle["size"]) != [height, width]:
        raise InputError(f"RLE size {rle['size']} (height, width) is not the image's [{height}, {width}]")
    counts = rle["counts"]
    try:
        if isinstance(counts, list):
            if sum(counts) != width * height:
                raise InputError(f"RLE counts add up to {sum(counts)} pixels, not the image's {width * height}")
            encoded = mask_utils.frPyObjects(rle, height, width)
        else:
            encoded = {"size": [height, width], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
        return mask_utils.decode(encoded).astype(bool)
    except (TypeError, ValueError, UnicodeEncodeError) as exc:
        raise InputError(f"RLE counts cannot be decoded ({exc})") from exc


def segmentation_mask(segmentation: Any, width: int, height: int) -> np.ndarray:
    """The ``(H, W)`` bool pixels of a COCO ``segmentation``: a list of polygons (their union) or an RLE."""
    if isinstance(segmentation, dict):
        return rle_mask(segmentation, width, height)
    if not isinstance(segmentation, list) or not segmentation:
        raise InputError(f"segmentation must be a list of polygons or an RLE object, got {_short(segmentation)}")
    out = np.zeros((height, width), dtype=bool)
    for polygon in segmentation:
        out |= polygon_mask(polygon, width, height)
    return out


def mask_rle(region: np.ndarray) -> dict[str, Any]:
    """The compressed COCO RLE of an ``(H, W)`` bool region (``counts`` as text, as COCO JSON holds it)."""
    from pycocotools import mask as mask_utils

    encoded = mask_utils.encode(np.asfortranarray(region.astype(np.uint8)))
    return {"size": [int(v) for v in encoded["size"]], "counts": encoded["counts"].decode("ascii")}


# ------------------------------------------------------------------ COCO


def read_coco_regions(path: str | Path) -> RegionSet:
    """Every image of a COCO instances file with the ``segmentation`` of each of its annotations, in file order.

    Bad rows (an image without a usable size or listed twice, an annotation of an unlisted image
    or an unknown category, one without a segmentation) are reported and skipped; a
    segmentation's pixels are checked when it is painted. Only a missing file, one that is not
    JSON, or one without ``images`` and ``categories`` lists raises.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no COCO annotation file at {path}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not valid JSON ({exc}); export the COCO annotations again") from exc
    if not isinstance(data, dict) or any(not isinstance(data.get(key), list) for key in ("images", "categories")):
        raise InputError(f"{path} is not a COCO instances file: it needs the lists 'images' and 'categories'")
    problems: list[AnnotationProblem] = []
    names: dict[int, str] = {}
    for i, cat in enumerate(data["categories"]):
        if not isinstance(cat, dict) or not isinstance(cat.get("id"), int) or not isinstance(cat.get("name"), str):
            problems.append(
                AnnotationProblem(f"{path.name} categories[{i}]", "category needs an int 'id' and a 'name'")
            )
        elif cat["id"] in names or cat["name"] in names.values():
            problems.append(AnnotationProblem(f"{path.name} categories[{i}]", f"category {cat['id']} repeats"))
        else:
            names[cat["id"]] = cat["name"]
    items: dict[Any, ImageRegions] = {}
    for i, image in enumerate(data["images"]):
        try:
            if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
                raise InputError("image entry needs 'id' and 'file_name'")
            if image["id"] in items:
                raise InputError(f"image id {image['id']!r} appears twice in the images list")
            width, height = check_size(image.get("width"), image.get("height"))
        except InputError as exc:
            problems.append(AnnotationProblem(f"{path.name} images[{i}]", str(exc)))
            continue
        items[image["id"]] = ImageRegions(image["file_name"], width, height, fill=image.get(FILL_KEY))
    for i, ann in enumerate(data.get("annotations") or []):
        where = f"{path.name} annotations[{i}]"
        if not isinstance(ann, dict) or ann.get("image_id") not in items:
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            problems.append(AnnotationProblem(where, f"image id {image_id!r} is not in the file's images list"))
        elif ann.get("category_id") not in names:
            problems.append(AnnotationProblem(where, f"unknown category id {ann.get('category_id')!r}"))
        elif not ann.get("segmentation"):
            problems.append(AnnotationProblem(where, "annotation has no segmentation (polygons or RLE)"))
        else:
            items[ann["image_id"]].regions.append((names[ann["category_id"]], ann["segmentation"]))
    return RegionSet(list(items.values()), [names[key] for key in sorted(names)], problems)


def write_coco_masks(
    path: str | Path, files: Sequence[tuple[str, np.ndarray]], classes: Sequence[str], *, polygons: bool = False
) -> None:
    """Write ``(file name, (H, W) mask)`` pairs as a COCO instances file (atomically).

    One annotation per class present in an image (background included, IGNORE pixels in none, the
    image entry marked ``activelab_fill: "ignore"`` when it has some),
    its ``segmentation`` the class's compressed RLE, or with ``polygons`` its outer contours
    (scikit-image's ``find_contours``; a polygon only approximates the pixels, so a round trip is
    exact with RLE only). Category ids are class positions + 1, image ids file positions + 1.
    """
    from pycocotools import mask as mask_utils

    class_positions(list(classes))
    images, annotations = [], []
    for image_id, (file_name, mask) in enumerate(files, start=1):
        height, width = mask.shape
        entry: dict[str, Any] = {"id": image_id, "file_name": file_name, "width": width, "height": height}
        if (mask == IGNORE).any():
            entry[FILL_KEY] = "ignore"
        images.append(entry)
        for position, region in class_regions(mask):
            if position >= len(classes):
                raise InputError(f"{file_name}: mask value {position} is not a class ({len(classes)} classes)")
            rle = mask_rle(region)
            encoded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
            segmentation: Any = _contours(region) if polygons else rle
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": position + 1,
                    "segmentation": segmentation,
                    "area": float(mask_utils.area(encoded)),
                    "bbox": [float(v) for v in mask_utils.toBbox(encoded)],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": i + 1, "name": name, "supercategory": "object"} for i, name in enumerate(classes)]
    data = {"images": images, "categories": categories, "annotations": annotations}
    atomic_write_text(path, json.dumps(data, separators=(",", ":")))


def _contours(region: np.ndarray) -> list[list[float]]:
    """Outer contours of a bool region as COCO polygons (pixel centres, one polygon per connected part)."""
    from skimage import measure

    padded = np.pad(region.astype(np.uint8), 1)
    out = []
    for contour in measure.find_contours(padded, 0.5):
        points = np.flip(contour - 1, axis=1)  # (row, col) -> (x, y), undo the padding
        if len(points) >= 3:
            out.append([round(float(v), 2) for v in points.ravel()])
    return out


# ------------------------------------------------------------------ VOC segmentation folders


def voc_mask_pairs(folder: str | Path) -> tuple[list[tuple[Path, Path | None]], list[AnnotationProblem]]:
    """Each image of a VOC-style segmentation folder with its mask PNG (None: no mask), sorted; masks left unpaired.

    The folder holds ``JPEGImages/`` and ``SegmentationClass/`` (Pascal VOC) or ``images/`` and
    ``masks/``; a mask pairs with the image of the same stem. An image without a mask is not an
    error (the import adds it unlabeled); a mask without an image is reported.
    """
    folder = Path(folder)
    layouts = [(folder / VOC_IMAGES, folder / VOC_MASKS), (folder / "images", folder / "masks")]
    found = next(((images, masks) for images, masks in layouts if images.is_dir() and masks.is_dir()), None)
    if found is None:
        raise NotFoundError(
            f"{folder} is not a VOC segmentation folder: it needs {VOC_IMAGES}/ and {VOC_MASKS}/ "
            "(or images/ and masks/) with a mask PNG per image of the same name"
        )
    images_dir, masks_dir = found
    images = {p.stem: p for p in sorted(images_dir.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}
    masks = {p.stem: p for p in sorted(masks_dir.iterdir()) if p.suffix.lower() == ".png"}
    problems = [
        AnnotationProblem(str(path), f"mask with no image of the same name in {images_dir}")
        for stem, path in masks.items()
        if stem not in images
    ]
    return [(images[stem], masks.get(stem)) for stem in sorted(images)], problems


def write_voc_list(folder: str | Path, name: str, stems: Sequence[str]) -> Path:
    """``ImageSets/Segmentation/<name>.txt``: one stem a line, the list VOC tools read a split from."""
    path = Path(folder) / VOC_LISTS / f"{name}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{stem}\n" for stem in stems), encoding="utf-8")
    return path


def _numbers(values: Any) -> bool:
    return isinstance(values, list | tuple) and all(
        isinstance(v, int | float) and not isinstance(v, bool) for v in values
    )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
