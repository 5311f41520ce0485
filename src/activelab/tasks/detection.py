"""Object detection: an annotation is a list of boxes; the model is a detector.

The payload is a JSON list of boxes in image pixels, top-left origin::

    [{"class": "bag", "x": 12.0, "y": 30.5, "w": 40.0, "h": 22.0}, ...]

``[]`` says "nothing here": the image was looked at and holds no object of the
project's classes, a real answer distinct from "not labeled" (no annotation at all).
Predicted boxes carry a ``"score"`` and boxes from the app an ``"origin"``
(``"drawn"``, ``"proposal"``, ``"edited"``); training and metrics ignore ``origin``.
A table cell holds the payload's compact JSON text.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from activelab._defaults import DEFAULT_DETECTION_MODEL
from activelab.exceptions import InputError
from activelab.tasks.base import Payload, Task
from activelab.tasks.boxes import best_match, match_quality, payload_xyxy
from activelab.tasks.detection_metrics import coco_metrics
from activelab.tasks.registry import register_task

#: the keys every box has, in canonical order, and the optional ones after them
BOX_KEYS = ("class", "x", "y", "w", "h")
OPTIONAL_KEYS = ("score", "origin")
#: where a box in the app came from: drawn by hand, a model proposal accepted as is, or one changed
ORIGINS = frozenset({"drawn", "proposal", "edited"})
#: how far (pixels) a box may overshoot the image and be clipped rather than refused (rounding, drawing)
CLIP_TOLERANCE = 1.0
#: a predicted box at least this confident counts as an object (costs, decode's confidence)
OBJECT_SCORE = 0.5
#: strategy inputs that need the model's prediction on the horizontally flipped image (CALD)
FLIP_ARRAYS = frozenset({"box_flip_iou", "box_flip_probs"})
#: strategy inputs that need the model's predictions on noisy copies (localization stability)
NOISE_ARRAYS = frozenset({"box_noise_iou"})
#: PPAL's difficulty of a class without a labeled box yet: neither easy nor hard
UNKNOWN_DIFFICULTY = 0.5

_BOX_HELP = 'a box is {"class": name, "x": left, "y": top, "w": width, "h": height} in image pixels'


def _number(box: Mapping[str, Any], key: str, where: str) -> float:
    value = box[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):  # numpy scalars are Real too
        raise InputError(f"{where}: {key} must be a number, got {value!r}; {_BOX_HELP}")
    if not math.isfinite(value):
        raise InputError(f"{where}: {key} must be finite, got {value!r}; {_BOX_HELP}")
    return float(value)


def _span(start: float, length: float, limit: float | None, axis: str, where: str) -> tuple[float, float]:
    """``(start, length)`` along one axis clipped to ``[0, limit]``; InputError past the tolerance."""
    end = start + length
    low, high = max(start, 0.0), end if limit is None else min(end, limit)
    if start < -CLIP_TOLERANCE or (limit is not None and end > limit + CLIP_TOLERANCE):
        image = "starts at 0" if limit is None else f"spans 0 to {limit:g}"
        raise InputError(
            f"{where} lies outside the image along {axis}: it spans {start:g} to {end:g}, the image {image}; "
            "boxes are in image pixels with the origin at the top-left corner: convert normalised or centre "
            "coordinates first"
        )
    if high - low <= 0:
        raise InputError(f"{where} has no area inside the image along {axis}; remove it or redraw it")
    return low, high - low


def _validate_box(box: Any, position: int, classes: Sequence[str], size: tuple[int, int] | None) -> dict[str, Any]:
    where = f"box {position}"
    if not isinstance(box, Mapping):
        raise InputError(f"{where} must be an object, got {box!r}; {_BOX_HELP}")
    missing = [key for key in BOX_KEYS if key not in box]
    unknown = sorted(str(key) for key in box if key not in BOX_KEYS and key not in OPTIONAL_KEYS)
    if missing or unknown:
        problem = f"lacks {', '.join(missing)}" if missing else f"has unknown keys {', '.join(unknown)}"
        raise InputError(f"{where} {problem}; {_BOX_HELP}, optionally with score and origin")
    name = box["class"]
    if not isinstance(name, str) or name not in classes:
        raise InputError(f"{where}: unknown class {name!r}; known: {', '.join(classes)}")
    x, y, w, h = (_number(box, key, where) for key in ("x", "y", "w", "h"))
    for key, value in (("w", w), ("h", h)):
        if value <= 0:
            raise InputError(f"{where}: {key} must be > 0, got {value:g}; a box needs a positive width and height")
    width, height = (None, None) if size is None else (float(size[0]), float(size[1]))
    x, w = _span(x, w, width, "x", where)
    y, h = _span(y, h, height, "y", where)
    out: dict[str, Any] = {"class": name, "x": round(x, 2), "y": round(y, 2), "w": round(w, 2), "h": round(h, 2)}
    if out["w"] <= 0 or out["h"] <= 0:
        raise InputError(f"{where} is narrower than 0.01 px once rounded; remove it or redraw it")
    if "score" in box:
        score = _number(box, "score", where)
        if not 0.0 <= score <= 1.0:
            raise InputError(f"{where}: score must be in [0, 1], got {score:g}; it is the model's confidence")
        out["score"] = round(score, 2)
    if "origin" in box:
        if box["origin"] not in ORIGINS:
            raise InputError(f"{where}: origin must be one of {', '.join(sorted(ORIGINS))}, got {box['origin']!r}")
        out["origin"] = box["origin"]
    return out


def _object_array(items: Sequence[Any]) -> np.ndarray:
    """A ``(N,)`` object array of ``items`` (numpy would otherwise try to stack dicts of arrays)."""
    out = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        out[i] = item
    return out


def _per_box(outputs: np.ndarray, key: str, tail: tuple[int, ...] = ()) -> np.ndarray:
    """``outputs[i][key]`` of every image stacked over the pool's boxes: ``(M, *tail)`` float32."""
    return np.concatenate([np.zeros((0, *tail), np.float32), *(np.asarray(o[key], np.float32) for o in outputs)])


def _n_classes(outputs: np.ndarray) -> int:
    return int(np.shape(outputs[0]["probs"])[1]) if len(outputs) else 0


def _view(views: Mapping[str, list[np.ndarray]] | None, name: str, arrays: frozenset[str]) -> list[np.ndarray]:
    if views is None or not views.get(name):
        raise InputError(
            f"the strategy inputs {', '.join(sorted(arrays))} need the model's predictions on the {name!r} view; "
            f"pass views={{{name!r}: model.predict_views(paths, [{name!r}])[{name!r}]}} (Task.views_for says which)"
        )
    return views[name]


def _flip_arrays(outputs: np.ndarray, flipped: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """CALD's per-box IoU with its best match in the flipped view, and that match's class distribution."""
    ious, probs = [np.zeros(0)], [np.zeros((0, n_classes), np.float32)]
    for own, other in zip(outputs, flipped, strict=True):
        iou, index = best_match(own["boxes"], other["boxes"])
        other_probs = np.asarray(other["probs"], dtype=np.float32).reshape(-1, n_classes)
        matched = np.full((len(iou), n_classes), 1.0 / n_classes, dtype=np.float32)
        found = index >= 0
        matched[found] = other_probs[index[found]]
        ious.append(iou)
        probs.append(matched)
    return np.concatenate(ious).astype(np.float32), np.concatenate(probs)


def _noise_iou(outputs: np.ndarray, levels: Sequence[np.ndarray]) -> np.ndarray:
    """``(M, K)``: each box's best IoU in the prediction at each of the K noise levels (Kao et al. 2018)."""
    iou = np.zeros((sum(len(o["scores"]) for o in outputs), len(levels)), dtype=np.float32)
    for k, noisy in enumerate(levels):
        per_image = [best_match(own["boxes"], other["boxes"])[0] for own, other in zip(outputs, noisy, strict=True)]
        iou[:, k] = np.concatenate([np.zeros(0), *per_image])
    return iou


def class_difficulty(outputs: np.ndarray, targets: np.ndarray, labeled: np.ndarray, n_classes: int) -> np.ndarray:
    """PPAL's ``(C,)`` class difficulty on the labeled images (Yang et al., CVPR 2024).

    ``1 - mean quality`` of the class's ground-truth boxes, where a box's quality is
    the highest IoU x score among the model's same-class predictions on its image (0
    for a missed box); :data:`UNKNOWN_DIFFICULTY` for a class with no labeled box yet.
    """
    total, count = np.zeros(n_classes), np.zeros(n_classes)
    for i in np.flatnonzero(labeled):
        truth, pred = targets[i], outputs[i]
        quality = match_quality(truth["boxes"], truth["labels"], pred["boxes"], pred["labels"], pred["scores"])
        np.add.at(total, truth["labels"], quality)
        np.add.at(count, truth["labels"], 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(count > 0, 1.0 - total / count, UNKNOWN_DIFFICULTY)


@register_task
class Detection(Task):
    """Boxes of the project's classes on each image (``[]`` for "nothing here")."""

    name: ClassVar[str] = "detection"
    output: ClassVar[str] = "boxes"
    default_model: ClassVar[str] = DEFAULT_DETECTION_MODEL
    input_upscale: ClassVar[int] = 1
    provides: ClassVar[frozenset[str]] = frozenset(
        {
            "box_probs",
            "box_scores",
            "box_owner",
            "box_features",
            "box_flip_iou",
            "box_flip_probs",
            "box_noise_iou",
            "class_difficulty",
            "embeddings",
        }
    )
    headline: ClassVar[str] = "map"

    def validate(
        self, payload: Payload, classes: Sequence[str], *, size: tuple[int, int] | None = None
    ) -> list[dict[str, Any]]:
        """The canonical box list: keys in order class, x, y, w, h (+ score, origin), floats to 2 decimals.

        A box overshooting the image (``size`` = (width, height); only the top and left
        edges are known without it) by at most :data:`CLIP_TOLERANCE` px is clipped to it;
        further out is an error naming the box's position in the list.
        """
        if not isinstance(payload, (list, tuple)):
            raise InputError(
                f"a detection annotation is a list of boxes ([] for an image with nothing in it), got {payload!r}; "
                "read a table cell with parse()"
            )
        return [_validate_box(box, i, classes, size) for i, box in enumerate(payload)]

    def parse(self, text: str, *, sep: str = "|", base: Path | None = None) -> list[Any]:
        """The box list in a cell's JSON text (``sep`` is not used: boxes are JSON)."""
        if not text.strip():
            raise InputError("an empty box cell is ambiguous; write [] for an image with nothing in it")
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(f"a box cell must be a JSON list of boxes, got {text[:80]!r}: {exc}") from exc
        if not isinstance(payload, list):
            raise InputError(f"a box cell must be a JSON list of boxes ([] for nothing), got {text[:80]!r}")
        return payload

    def format(self, payload: Payload, *, sep: str = "|") -> str:
        return json.dumps(payload, separators=(",", ":"))

    def targets(self, payloads: Sequence[Payload], classes: Sequence[str]) -> np.ndarray:
        """``(N,)`` object array of ``{"boxes": (M, 4) float32 xyxy, "labels": (M,) int64 class positions}``."""
        index = {name: i for i, name in enumerate(classes)}
        out = []
        for payload in payloads:
            unknown = [b["class"] for b in payload if b["class"] not in index]
            if unknown:
                raise InputError(f"unknown class {unknown[0]!r} in a box list; known: {', '.join(classes)}")
            labels = np.array([index[b["class"]] for b in payload], dtype=np.int64)
            out.append({"boxes": payload_xyxy(payload), "labels": labels})
        return _object_array(out)

    def decode(
        self, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> list[tuple[Payload, float]]:
        """Every predicted box (with its ``score``, most confident first) and a confidence per image.

        The app shows the boxes above its proposal threshold, so all of them are kept.
        The confidence is the mean score of the boxes at or above :data:`OBJECT_SCORE`
        (how sure the model is of what it found) or, with none, ``1 - `` the highest
        score (how sure it is that nothing is there; 1 for no box at all).
        """
        decoded: list[tuple[Payload, float]] = []
        for out in outputs:
            scores = np.asarray(out["scores"], dtype=np.float64)
            order = np.argsort(-scores, kind="stable")
            boxes = np.asarray(out["boxes"], dtype=np.float64).reshape(-1, 4)
            payload = [
                {
                    "class": classes[int(out["labels"][j])],
                    "x": round(float(boxes[j, 0]), 2),
                    "y": round(float(boxes[j, 1]), 2),
                    "w": round(float(boxes[j, 2] - boxes[j, 0]), 2),
                    "h": round(float(boxes[j, 3] - boxes[j, 1]), 2),
                    "score": round(float(scores[j]), 2),
                }
                for j in order
            ]
            confident = scores[scores >= OBJECT_SCORE]
            confidence = confident.mean() if len(confident) else 1.0 - (scores.max() if len(scores) else 0.0)
            decoded.append((payload, float(confidence)))
        return decoded

    def views_for(self, needed: frozenset[str]) -> list[str]:
        return [view for view, arrays in (("hflip", FLIP_ARRAYS), ("noise", NOISE_ARRAYS)) if needed & arrays]

    def strategy_arrays(
        self,
        needed: frozenset[str],
        outputs: np.ndarray,
        *,
        targets: np.ndarray | None = None,
        labeled: np.ndarray | None = None,
        views: Mapping[str, list[np.ndarray]] | None = None,
        images: Sequence[str] | None = None,
    ) -> dict[str, np.ndarray]:
        """The box arrays in ``needed``, flat over the ``M`` predicted boxes of the pool.

        ``box_owner`` gives each box's image; the view arrays compare each box with
        its best-overlapping box (any class) in ``views["hflip"][0]`` and in each
        ``views["noise"]`` level; ``class_difficulty`` reads the labeled rows of
        ``targets`` (every class 0.5 without them).
        """
        n_classes = _n_classes(outputs)
        arrays: dict[str, np.ndarray] = {}
        if "box_probs" in needed:
            arrays["box_probs"] = _per_box(outputs, "probs", (n_classes,))
        if "box_scores" in needed:
            arrays["box_scores"] = _per_box(outputs, "scores")
        if "box_owner" in needed:
            counts = [len(o["scores"]) for o in outputs]
            arrays["box_owner"] = np.repeat(np.arange(len(outputs), dtype=np.int64), counts)
        if "box_features" in needed:
            width = int(np.shape(outputs[0]["features"])[1]) if len(outputs) else 0
            arrays["box_features"] = _per_box(outputs, "features", (width,))
        if needed & FLIP_ARRAYS:
            flip_iou, flip_probs = _flip_arrays(outputs, _view(views, "hflip", needed & FLIP_ARRAYS)[0], n_classes)
            arrays.update({"box_flip_iou": flip_iou, "box_flip_probs": flip_probs})
        if needed & NOISE_ARRAYS:
            arrays["box_noise_iou"] = _noise_iou(outputs, _view(views, "noise", needed & NOISE_ARRAYS))
        if "class_difficulty" in needed:
            if targets is None or labeled is None:
                arrays["class_difficulty"] = np.full(n_classes, UNKNOWN_DIFFICULTY)
            else:
                arrays["class_difficulty"] = class_difficulty(outputs, targets, labeled, n_classes)
        return {key: value for key, value in arrays.items() if key in needed}

    def costs(self, outputs: np.ndarray) -> np.ndarray:
        """``(N,)`` float: ``max(1, boxes scored >= 0.5)``, an image's labeling work in boxes."""
        found = [int((np.asarray(o["scores"]) >= OBJECT_SCORE).sum()) for o in outputs]
        return np.maximum(np.array(found, dtype=np.float64).reshape(len(found)), 1.0)

    def metrics(
        self, targets: np.ndarray, outputs: np.ndarray, classes: Sequence[str], *, thresholds: np.ndarray | None = None
    ) -> dict[str, Any]:
        """COCO mAP@[.5:.95], mAP@.5, mAP@.75 and per-class AP from pycocotools (see :func:`coco_metrics`)."""
        return coco_metrics(targets, outputs, classes)
