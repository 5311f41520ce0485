"""The types every box reader returns and the one box check they share.

Readers keep every good image and box and record each bad one as an :class:`AnnotationProblem`
instead of raising, so one broken row of a 10,000-image export does not stop an import; only
a top-level file that cannot be read at all raises.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from activelab.exceptions import InputError

#: how far (pixels) a box may overshoot the image and still be kept, clipped to it
CLIP_TOLERANCE = 1.0
#: decimals kept of every box coordinate, as the detection task's canonical payload does
DECIMALS = 2


@dataclass(frozen=True)
class AnnotationProblem:
    """One bad image or box a reader skipped: ``where`` names the file and row, ``reason`` what is wrong."""

    where: str
    reason: str


@dataclass
class ImageBoxes:
    """The boxes of one image, in the payload form: ``{"class", "x", "y", "w", "h"}`` (+ ``"score"``).

    Coordinates are pixels with the origin at the image's top-left corner; ``x``, ``y`` are the
    box's top-left corner and ``w``, ``h`` its size. ``boxes == []`` means "nothing here".
    """

    file_name: str
    width: int
    height: int
    boxes: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class AnnotationSet:
    """What a reader found: the good images with their boxes, the class names, and what it skipped."""

    items: list[ImageBoxes]
    classes: list[str]
    problems: list[AnnotationProblem] = field(default_factory=list)


def make_box(
    name: str, x: float, y: float, w: float, h: float, width: int, height: int, score: float | None = None
) -> dict[str, Any]:
    """The payload dict of a box checked against a ``width`` x ``height`` image.

    A box overshooting the image by at most :data:`CLIP_TOLERANCE` px is clipped to it (exporters
    often round outward); anything else wrong raises :class:`InputError` whose message is the
    reason the reader records.
    """
    values = {"x": x, "y": y, "w": w, "h": h} if score is None else {"x": x, "y": y, "w": w, "h": h, "score": score}
    bad = [key for key, value in values.items() if not math.isfinite(value)]
    if bad:
        raise InputError(f"non-finite {', '.join(bad)} ({', '.join(f'{k}={values[k]}' for k in bad)})")
    if w <= 0 or h <= 0:
        raise InputError(f"box has zero or negative size (w={w:g}, h={h:g})")
    x1, y1, x2, y2 = x, y, x + w, y + h
    if x1 < -CLIP_TOLERANCE or y1 < -CLIP_TOLERANCE or x2 > width + CLIP_TOLERANCE or y2 > height + CLIP_TOLERANCE:
        raise InputError(
            f"box outside the image: [{x1:g}, {y1:g}, {x2:g}, {y2:g}] (x1, y1, x2, y2) "
            f"is more than {CLIP_TOLERANCE:g} px beyond the {width}x{height} image"
        )
    x1, y1, x2, y2 = max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise InputError(f"box has zero size inside the {width}x{height} image after clipping")
    box: dict[str, Any] = {
        "class": name,
        "x": round(x1, DECIMALS),
        "y": round(y1, DECIMALS),
        "w": round(x2 - x1, DECIMALS),
        "h": round(y2 - y1, DECIMALS),
    }
    if score is not None:
        if not 0.0 <= score <= 1.0:
            raise InputError(f"score {score:g} is outside [0, 1]")
        box["score"] = float(score)
    return box


def check_size(width: Any, height: Any) -> tuple[int, int]:
    """An image's ``(width, height)`` as positive ints, or :class:`InputError` naming what is wrong."""
    try:
        w, h = int(width), int(height)
    except (TypeError, ValueError) as exc:
        raise InputError(f"image size is not a pair of integers (width={width!r}, height={height!r})") from exc
    if w <= 0 or h <= 0 or w != width or h != height:
        raise InputError(f"image size must be positive integers, got width={width!r}, height={height!r}")
    return w, h


def class_positions(classes: list[str]) -> dict[str, int]:
    """Each class name's position, raising when a name repeats (a writer would merge two classes)."""
    positions = {name: i for i, name in enumerate(classes)}
    if len(positions) != len(classes):
        repeated = sorted({name for name in classes if classes.count(name) > 1})
        raise InputError(f"class names repeat: {repeated}; give each class once")
    return positions


def box_class_index(box: dict[str, Any], positions: dict[str, int], file_name: str) -> int:
    """The class position of a box being written, or :class:`InputError` naming the image and the fix."""
    name = box.get("class")
    if name not in positions:
        raise InputError(f"{file_name}: box class {name!r} is not one of the classes {list(positions)}; add it")
    return positions[name]
