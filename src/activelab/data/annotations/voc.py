"""Pascal VOC XML: one ``<annotation>`` file per image with ``<size>`` and ``<object>``/``<bndbox>``.

VOC numbers pixels from 1 and its ``xmax``/``ymax`` are the last pixel inside the box, so a
box covering pixel columns 0..9 (0-based) is ``xmin=1, xmax=10``. The payload is continuous
(``x=0, w=10``): reading gives ``x = xmin - 1``, ``w = xmax - xmin + 1`` (Detectron2's
convention) and writing inverts it. Integers are written as integers, other values with two
decimals. A ``<score>`` element (not part of VOC, ignored by VOC tools) carries a prediction's
confidence. VOC files hold no class list: the classes are the names found, sorted, unless
``classes`` is given, and then any other name is reported as unknown.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from activelab.data.annotations._common import AnnotationProblem, AnnotationSet, ImageBoxes, check_size, make_box
from activelab.exceptions import InputError, NotFoundError


def read_voc(folder: str | Path, *, classes: Sequence[str] | None = None) -> AnnotationSet:
    """Read every ``*.xml`` under ``folder`` (sorted); each file is one image, ``[]`` when it has no object.

    A file that is not well-formed XML, or lacks ``<filename>`` or a positive ``<size>``, is
    reported and skipped; a bad ``<object>`` (unknown class, box outside the image, zero size,
    missing coordinates) is reported and the file's other objects are kept.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise NotFoundError(f"no VOC annotation folder at {folder}")
    known = None if classes is None else set(classes)
    problems: list[AnnotationProblem] = []
    items = []
    for path in sorted(folder.rglob("*.xml")):
        rel = path.relative_to(folder).as_posix()
        try:
            root = ET.parse(path).getroot()
            item = _image(root)
        except ET.ParseError as exc:
            problems.append(AnnotationProblem(rel, f"malformed XML: {exc}"))
            continue
        except InputError as exc:
            problems.append(AnnotationProblem(rel, str(exc)))
            continue
        for number, obj in enumerate(root.iter("object"), start=1):
            try:
                item.boxes.append(_object_box(obj, known, item))
            except InputError as exc:
                problems.append(AnnotationProblem(f"{rel} object {number}", str(exc)))
        items.append(item)
    names = sorted({box["class"] for item in items for box in item.boxes}) if classes is None else list(classes)
    return AnnotationSet(items, names, problems)


def _image(root: ET.Element) -> ImageBoxes:
    """The file name and size of an ``<annotation>`` element, without its boxes yet."""
    if root.tag != "annotation":
        raise InputError(f"root element is <{root.tag}>, not <annotation>")
    file_name = (root.findtext("filename") or "").strip()
    if not file_name:
        raise InputError("no <filename>")
    width, height = check_size(_int(root.findtext("size/width")), _int(root.findtext("size/height")))
    return ImageBoxes(file_name, width, height, [])


def _int(text: str | None) -> int | None:
    """An integer element's value, or None when absent or not an integer."""
    try:
        return int((text or "").strip())
    except ValueError:
        return None


def _object_box(obj: ET.Element, known: set[str] | None, item: ImageBoxes) -> dict[str, Any]:
    """One ``<object>`` as a payload box."""
    name = (obj.findtext("name") or "").strip()
    if not name:
        raise InputError("object has no <name>")
    if known is not None and name not in known:
        raise InputError(f"unknown class {name!r} (classes: {sorted(known)})")
    try:
        xmin, ymin, xmax, ymax = (float((obj.findtext(f"bndbox/{key}") or "").strip()) for key in _CORNERS)
        score_text = obj.findtext("score")
        score = None if score_text is None else float(score_text.strip())
    except ValueError as exc:
        raise InputError(f"<bndbox> needs the numbers {', '.join(_CORNERS)} ({exc})") from exc
    return make_box(name, xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1, item.width, item.height, score)


_CORNERS = ("xmin", "ymin", "xmax", "ymax")


def write_voc(folder: str | Path, items: Sequence[ImageBoxes]) -> None:
    """Write one ``<stem>.xml`` per item under ``folder`` (an item with no box gets a file with no object).

    Files are written in place, not atomically: an fsync per file would dominate for thousands of them.
    """
    folder = Path(folder)
    for item in items:
        root = ET.Element("annotation")
        ET.SubElement(root, "filename").text = item.file_name
        size = ET.SubElement(root, "size")
        for key, value in (("width", item.width), ("height", item.height), ("depth", 3)):
            ET.SubElement(size, key).text = str(value)
        for box in item.boxes:
            root.append(_object(box))
        ET.indent(root)
        text = ET.tostring(root, encoding="unicode") + "\n"
        path = (folder / item.file_name).with_suffix(".xml")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _object(box: dict[str, Any]) -> ET.Element:
    """A payload box as an ``<object>`` element in VOC's 1-based inclusive corners."""
    x, y, w, h = (float(box[key]) for key in ("x", "y", "w", "h"))
    obj = ET.Element("object")
    ET.SubElement(obj, "name").text = str(box["class"])
    for flag in ("truncated", "difficult"):
        ET.SubElement(obj, flag).text = "0"
    bndbox = ET.SubElement(obj, "bndbox")
    for key, corner in zip(_CORNERS, (x + 1, y + 1, x + w, y + h)):
        ET.SubElement(bndbox, key).text = _number(corner)
    if "score" in box:
        ET.SubElement(obj, "score").text = repr(float(box["score"]))
    return obj


def _number(value: float) -> str:
    """An integer as ``12``, anything else with two decimals (``12.35``)."""
    rounded = round(value, 2)
    return str(int(rounded)) if rounded == int(rounded) else f"{rounded:.2f}"
