"""YOLO (Ultralytics / Darknet) labels: one ``labels/<stem>.txt`` per image beside ``images/``.

Each line is ``class cx cy w h`` (an optional sixth number is a prediction's confidence),
the class a 0-based index into the dataset's ``names`` and the box its centre and size as
fractions of the image's width and height; a segmentation line (``class x1 y1 x2 y2 ...``,
fractions too) is read as the box around its points. The class names come from a ``data.yaml``
(``path``, ``train``, ``val``, ``test``, ``names``) or, for a bare ``images/`` + ``labels/``
folder, a ``classes.txt`` beside them. The files hold no image size, so readers open each
image's header (EXIF-rotated, as Ultralytics does) to turn fractions into pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from PIL import Image, UnidentifiedImageError

from activelab._io import atomic_write_text
from activelab.data.annotations._common import (
    AnnotationProblem,
    AnnotationSet,
    ImageBoxes,
    box_class_index,
    class_positions,
    make_box,
)
from activelab.exceptions import InputError, NotFoundError

DATA_YAML = "data.yaml"
CLASSES_TXT = "classes.txt"
SPLITS = ("train", "val", "test")
#: image file suffixes a YOLO images folder is scanned for (Ultralytics' IMG_FORMATS)
IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}
_ORIENTATION_TAG = 0x0112
_SWAPS_AXES = {5, 6, 7, 8}


def read_yolo(source: str | Path, *, split: str = "train") -> AnnotationSet:
    """Read one split of a YOLO dataset: ``source`` is a ``data.yaml``, a folder holding one, or a split folder.

    With a ``data.yaml`` the ``split`` key (``train``, ``val`` or ``test``) names the images
    folder, relative to ``path`` (or to the yaml's folder when ``path`` is absent or moved);
    its labels are the sibling folder with ``images`` replaced by ``labels``. A folder without
    a ``data.yaml`` must hold ``images/``, ``labels/`` and ``classes.txt``. Every image in the
    images folder is an item; a missing label file means "no objects". Bad lines, label files
    without an image and unreadable images are skipped and reported.
    """
    images_dir, labels_dir, classes = _layout(Path(source), split)
    problems: list[AnnotationProblem] = []
    items = []
    image_paths = sorted(p for p in images_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    stems = set()
    for image_path in image_paths:
        rel = image_path.relative_to(images_dir)
        label_path = (labels_dir / rel).with_suffix(".txt")
        stems.add(label_path)
        try:
            width, height = _image_size(image_path)
        except (OSError, UnidentifiedImageError) as exc:
            problems.append(AnnotationProblem(str(rel), f"unreadable image ({exc}); it was skipped"))
            continue
        item = ImageBoxes(rel.as_posix(), width, height, [])
        if label_path.is_file():
            item.boxes = _read_label_file(label_path, labels_dir, classes, width, height, problems)
        items.append(item)
    if labels_dir.is_dir():
        for orphan in sorted(set(labels_dir.rglob("*.txt")) - stems):
            problems.append(
                AnnotationProblem(
                    orphan.relative_to(labels_dir).as_posix(), f"label file with no image in {images_dir}"
                )
            )
    return AnnotationSet(items, classes, problems)


def _layout(source: Path, split: str) -> tuple[Path, Path, list[str]]:
    """The images folder, labels folder and class names of ``split`` of the dataset at ``source``."""
    if split not in SPLITS:
        raise InputError(f"unknown YOLO split {split!r}; use one of {list(SPLITS)}")
    if source.is_dir() and (source / DATA_YAML).is_file():
        source = source / DATA_YAML
    if source.is_file():
        return _yaml_layout(source, split)
    if not source.is_dir():
        raise NotFoundError(f"no YOLO dataset at {source}: give its data.yaml or a folder with images/ and labels/")
    if not (source / CLASSES_TXT).is_file() or not (source / "images").is_dir():
        raise InputError(
            f"{source} has no {DATA_YAML}, and no images/ folder with a {CLASSES_TXT} beside it; "
            "give the dataset's data.yaml or add a classes.txt (one class name per line)"
        )
    names = [line.strip() for line in (source / CLASSES_TXT).read_text(encoding="utf-8").splitlines() if line.strip()]
    return source / "images", source / "labels", names


def _yaml_layout(path: Path, split: str) -> tuple[Path, Path, list[str]]:
    """Read a ``data.yaml``: the ``split`` images folder, its labels folder, and ``names``."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InputError(f"{path} is not valid YAML ({exc})") from exc
    if not isinstance(data, dict) or split not in data or "names" not in data:
        raise InputError(f"{path} needs the keys 'names' and {split!r} (the {split} images folder)")
    names = _names(data["names"], path)
    root = Path(str(data["path"])) if data.get("path") else path.parent
    if not root.is_absolute():
        root = path.parent / root
    if not (root / str(data[split])).is_dir():
        root = path.parent  # the dataset folder was moved since data.yaml recorded its absolute path
    images_dir = root / str(data[split])
    if not images_dir.is_dir():
        raise NotFoundError(f"{path}: the {split} images folder {images_dir} does not exist")
    parts = list(images_dir.parts)
    if "images" not in parts:
        raise InputError(f"{path}: the {split} folder {images_dir} has no 'images' part to find its 'labels' beside")
    at = len(parts) - 1 - parts[::-1].index("images")
    return images_dir, Path(*parts[:at], "labels", *parts[at + 1 :]), names


def _names(names: Any, path: Path) -> list[str]:
    """``names`` as a list: YOLO writes a list or a mapping ``{0: name, 1: name, ...}`` (keys maybe quoted)."""
    if isinstance(names, list):
        return [str(name) for name in names]
    if isinstance(names, dict):
        by_index = {int(key): str(name) for key, name in names.items() if str(key).isdigit()}
        if sorted(by_index) == list(range(len(names))):
            return [by_index[i] for i in range(len(names))]
    raise InputError(f"{path}: 'names' must be a list or a mapping of 0..C-1 to class names")


def _image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` from the header, swapped when the EXIF orientation turns the image on its side."""
    with Image.open(path) as im:
        width, height = im.size
        orientation = im.getexif().get(_ORIENTATION_TAG)
    return (height, width) if orientation in _SWAPS_AXES else (width, height)


def _read_label_file(
    path: Path, labels_dir: Path, classes: list[str], width: int, height: int, problems: list[AnnotationProblem]
) -> list[dict[str, Any]]:
    """The good boxes of one label file; each bad line is reported with its line number."""
    rel = path.relative_to(labels_dir).as_posix()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(AnnotationProblem(rel, f"unreadable label file ({exc})"))
        return []
    boxes = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            boxes.append(_parse_line(line, classes, width, height))
        except InputError as exc:
            problems.append(AnnotationProblem(f"{rel} line {number}", str(exc)))
    return boxes


def _parse_line(line: str, classes: list[str], width: int, height: int) -> dict[str, Any]:
    """One ``class cx cy w h [score]`` line, or a segment ``class x1 y1 x2 y2 x3 y3 ...``, as a payload box in pixels.

    A segment (Ultralytics' segmentation labels: 3 or more points) becomes the box around its
    points, as Ultralytics does when it trains a detector on them.
    """
    fields = line.split()
    if len(fields) not in (5, 6) and (len(fields) < 7 or len(fields) % 2 == 0):
        raise InputError(
            f"expected 'class cx cy w h' (5 numbers, 6 with a score) or a segment 'class x1 y1 x2 y2 x3 y3 ...', "
            f"got {len(fields)} fields"
        )
    try:
        index = int(fields[0])
        values = [float(v) for v in fields[1:]]
    except ValueError as exc:
        raise InputError(f"not a number: {exc}") from exc
    if not 0 <= index < len(classes):
        raise InputError(f"unknown class index {index} (the dataset has {len(classes)} classes, 0..{len(classes) - 1})")
    if len(values) > 5:
        xs, ys = values[0::2], values[1::2]
        x, y = min(xs) * width, min(ys) * height
        return make_box(classes[index], x, y, max(xs) * width - x, max(ys) * height - y, width, height)
    cx, cy, w, h = values[:4]
    w_px, h_px = w * width, h * height
    score = values[4] if len(values) == 5 else None
    return make_box(classes[index], cx * width - w_px / 2, cy * height - h_px / 2, w_px, h_px, width, height, score)


def write_yolo(
    root: str | Path, items: Sequence[ImageBoxes], classes: Sequence[str], *, split: str, folder: str | None = None
) -> None:
    """Write the label files of ``items`` under ``root/<folder>/labels`` and record the split in ``root/data.yaml``.

    ``split`` is the data.yaml key (``train``, ``val`` or ``test``); ``folder`` (default: the
    split's name) is where its ``images/`` are expected, relative to ``root``; each item's
    ``file_name`` is relative to that images folder. Images are not copied. Every item gets a
    label file, empty for an image with no box; scores are written as a sixth column. Label files
    are written in place (an atomic write's fsync per file would dominate for thousands of them).
    ``data.yaml`` keeps the other splits it already lists, and its ``path`` is ``root`` absolute,
    as Ultralytics resolves a relative ``path`` against its own datasets folder.
    """
    if split not in SPLITS:
        raise InputError(f"unknown YOLO split {split!r}; use one of {list(SPLITS)}")
    root = Path(root)
    folder = split if folder is None else folder
    positions = class_positions(list(classes))
    labels_dir = root / folder / "labels"
    for item in items:
        lines = [_label_line(box, positions, item) for box in item.boxes]
        path = (labels_dir / item.file_name).with_suffix(".txt")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    yaml_path = root / DATA_YAML
    data = yaml.safe_load(yaml_path.read_text(encoding="utf-8")) if yaml_path.is_file() else None
    data = data if isinstance(data, dict) else {}
    data.update({"path": str(root.resolve()), split: f"{folder}/images", "names": dict(enumerate(classes))})
    ordered = {key: data[key] for key in ("path", *SPLITS, "names") if key in data}
    atomic_write_text(yaml_path, yaml.safe_dump({**ordered, **data}, sort_keys=False, allow_unicode=True))


def _label_line(box: dict[str, Any], positions: dict[str, int], item: ImageBoxes) -> str:
    """One payload box as a ``class cx cy w h [score]`` line, fractions to 6 decimals (0.001 px at 1000 px)."""
    index = box_class_index(box, positions, item.file_name)
    x, y, w, h = (float(box[key]) for key in ("x", "y", "w", "h"))
    values = [(x + w / 2) / item.width, (y + h / 2) / item.height, w / item.width, h / item.height]
    if "score" in box:
        values.append(float(box["score"]))
    return " ".join([str(index), *(f"{v:.6f}" for v in values)])
