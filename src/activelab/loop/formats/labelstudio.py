"""Label Studio image classification and detection: read its JSON export, write tasks it imports as they are.

A Label Studio task holds an image reference in ``data`` (``data.image`` by
default), the people's ``annotations`` and the models' ``predictions``; a
classification answer is a result of ``type: choices``: one choice for a
single-label project, any number (``choice="multiple"`` in the labeling config)
for a multi-label one; the project's task turns the choices into its annotation
payload. Each annotation becomes
one label event with its annotator as the author and its time kept, so the
store's history reads as it happened in Label Studio. Exported predictions carry
the latest round's queue position as their ``score`` (Label Studio's "Prediction
score" column sorts by it) and the model's confidence per result.

A detection project's answer is a list of ``rectanglelabels`` results, one per box,
whose ``x``, ``y``, ``width`` and ``height`` are percents of the image that Label
Studio saw (``original_width`` x ``original_height``; the image's real size where a
result does not say): a box at 12 px in a 200 px wide image is ``x: 6.0``. An
annotation with no rectangle is "nothing here". Rotated rectangles are refused.

A segmentation project's answer is a list of ``brushlabels`` results (Label Studio's brush
RLE, :mod:`activelab.data.annotations.ls_brush`, painted on an ``original_width`` x
``original_height`` image, which must be the image's real size) and ``polygonlabels``
results (``points`` in percent of the image), each naming one class. They are painted in
order, later over earlier, into one mask (:func:`activelab.data.annotations.masks.paint`:
uncovered pixels are the background, class 0, unless a region paints the background
class, and then they stay unlabeled). An export writes one brush per class present, the
background included, so unlabeled pixels are in no region.
"""

from __future__ import annotations

import csv
import json
import os.path
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import quoteattr

import pandas as pd

from activelab.data.annotations.ls_brush import decode_brush, encode_brush
from activelab.data.annotations.masks import FILL_KEY, class_regions, paint, polygon_mask
from activelab.exceptions import InputError
from activelab.loop.formats._common import image_ids_for, stored_mask_key, with_background
from activelab.loop.ingest import ImportReport, import_images
from activelab.store import Store
from activelab.tasks import Payload, Task, get_task

#: the control and object names of the labeling config written beside an export
FROM_NAME = "choice"
#: the control name of a detection project's ``RectangleLabels`` (Label Studio's template calls it so)
BOX_FROM_NAME = "label"
#: the control names of a segmentation project's ``BrushLabels`` and ``PolygonLabels``
BRUSH_FROM_NAME, POLYGON_FROM_NAME = "brush", "polygon"
#: Label Studio result types of a segmentation answer
REGION_TYPES = ("brushlabels", "polygonlabels")
TO_NAME = "image"
LOCAL_FILES_URL = "/data/local-files/?d="
UNKNOWN_AUTHOR = "labelstudio"
#: task data key of the activelab author of an exported annotation (Label Studio refuses unknown annotators)
AUTHOR_KEY = "activelab_author"
#: joins a result's choices into one cell for :meth:`Task.parse` (a character no class name holds)
CHOICE_SEP = "\x1f"


@dataclass(frozen=True)
class ForeignBox:
    """One ``rectanglelabels`` region: its class and rectangle in percent of the image Label Studio showed."""

    label: str
    x: float
    y: float
    width: float
    height: float
    #: ``(original_width, original_height)`` the percents refer to; None when the result does not say
    original_size: tuple[int, int] | None = None

    def pixels(self, size: tuple[int, int] | None) -> dict[str, Any]:
        """The box in pixels, top-left origin: percents of ``original_size``, else of the image's ``size``."""
        reference = self.original_size or size
        if reference is None:
            raise InputError(
                f"a {self.label!r} rectangle has no original_width/original_height; "
                "import it with the image at hand so its real size converts the percents"
            )
        width, height = reference
        return {
            "class": self.label,
            "x": self.x * width / 100,
            "y": self.y * height / 100,
            "w": self.width * width / 100,
            "h": self.height * height / 100,
        }


@dataclass(frozen=True)
class ForeignRegion:
    """One ``brushlabels`` or ``polygonlabels`` region: its class and what Label Studio stored for it.

    ``kind`` is ``"brush"`` (``data``: the brush RLE, a list of bytes) or ``"polygon"``
    (``data``: ``[[x, y], ...]`` in percent of the image).
    """

    label: str
    kind: str
    data: tuple[Any, ...]
    original_size: tuple[int, int] | None = None

    def pixels(self, size: tuple[int, int]) -> Any:
        """The ``(H, W)`` bool pixels of the region on an image of ``size`` (width, height).

        A brush must have been painted on an image of that size (else InputError: a mask of the
        wrong size); polygon percents convert to pixels of ``size``.
        """
        width, height = size
        if self.kind == "polygon":
            flat = [value * extent / 100 for x, y in self.data for value, extent in ((x, width), (y, height))]
            return polygon_mask(flat, width, height)
        painted = self.original_size or size
        if painted != size:
            raise InputError(
                f"the {self.label!r} brush was painted on a {painted[0]}x{painted[1]} image but the image is "
                f"{width}x{height} px; a mask must have the image's size"
            )
        return decode_brush(self.data, width, height)


@dataclass(frozen=True)
class ForeignLabel:
    """A label made in another tool: the classes chosen (or boxes drawn), who made it and when (None: unknown).

    ``boxes`` is None for a classification answer; for a detection one it holds the
    rectangles and ``choices`` the classes they name; for a segmentation one ``regions``
    holds the brushes and polygons in painting order.
    """

    choices: tuple[str, ...]
    author: str
    created_at: datetime | None
    boxes: tuple[ForeignBox, ...] | None = None
    regions: tuple[ForeignRegion, ...] | None = None
    #: what pixels no region covers are ("background", "ignore"; the task's ``data.activelab_fill``), None: the rule
    fill: str | None = None

    def payload(self, task: Task, size: tuple[int, int] | None = None, classes: Sequence[str] | None = None) -> Payload:
        """The answer as ``task``'s annotation: the boxes in pixels of an image of ``size`` (width, height),
        the regions painted into an ``(H, W)`` mask of positions in ``classes``, or the choices read
        like the table cell the task writes for them."""
        if self.regions is not None:
            if size is None or classes is None:
                raise InputError("painting brushes and polygons needs the image's size and the project's classes")
            positions = {name: i for i, name in enumerate(classes)}
            return paint([(positions[r.label], r.pixels(size)) for r in self.regions], size, self.fill)
        if self.boxes is not None:
            return [box.pixels(size) for box in self.boxes]
        return task.parse(CHOICE_SEP.join(self.choices), sep=CHOICE_SEP)


@dataclass(frozen=True)
class ForeignTask:
    """One task of an export: where its image is, what it was called there, its labels oldest first."""

    path: Path
    reference: str
    labels: list[ForeignLabel]
    problems: list[tuple[str, str]]  # (reason, detail) of annotations that could not be read


# ------------------------------------------------------------------ reading


def read_tasks(
    export: str | Path,
    *,
    images_root: str | Path | None = None,
    image_key: str = "image",
    boxes: bool = False,
    masks: bool = False,
) -> list[ForeignTask]:
    """The tasks of a Label Studio JSON export (a list of tasks), with each image found on disk.

    ``images_root`` is where the files are: Label Studio's local-files document
    root, or a folder holding the uploaded files (default: the export's folder).
    ``boxes`` reads each annotation's rectangles (detection), ``masks`` its brushes and
    polygons (segmentation), instead of its choices.
    """
    export = Path(export)
    try:
        tasks = json.loads(export.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(
            f"{export} is not a readable Label Studio JSON export ({exc}); export the project as JSON from Label Studio"
        ) from exc
    if isinstance(tasks, dict):
        tasks = [tasks]
    if not isinstance(tasks, list) or not all(isinstance(t, dict) for t in tasks):
        raise InputError(f"{export} does not hold a list of tasks; export the project as JSON (not CSV)")
    root = Path(images_root) if images_root is not None else export.parent
    return [_read_task(task, n, export, root, image_key, boxes, masks) for n, task in enumerate(tasks, start=1)]


def _read_task(
    task: dict[str, Any], n: int, export: Path, root: Path, image_key: str, boxes: bool, masks: bool
) -> ForeignTask:
    data = task.get("data")
    if not isinstance(data, dict):
        raise InputError(f"task {n} of {export} has no 'data' object; export as JSON, not JSON_MIN or CSV")
    reference = image_reference(data, image_key)
    if reference is None:
        raise InputError(
            f"task {n} of {export} has no image under data.{image_key}; name the data key with image_key= (--image-key)"
        )
    labels: list[ForeignLabel] = []
    problems: list[tuple[str, str]] = []
    for annotation in task.get("annotations") or []:
        try:
            label = annotation_label(
                annotation, default_author=str(data.get(AUTHOR_KEY) or UNKNOWN_AUTHOR), boxes=boxes, masks=masks
            )
        except InputError as exc:
            problems.append(("bad_annotation", f"task {n}: {exc}"))
            continue
        if label is not None:
            labels.append(replace(label, fill=data[FILL_KEY]) if masks and data.get(FILL_KEY) else label)
    labels.sort(key=lambda lab: lab.created_at or datetime.max.replace(tzinfo=timezone.utc))
    return ForeignTask(resolve_image(reference, root), reference, labels, problems)


def image_reference(data: dict[str, Any], image_key: str = "image") -> str | None:
    """The task's image URL or path: ``data[image_key]``, else its only text value."""
    value = data.get(image_key)
    if isinstance(value, str) and value:
        return value
    texts = [v for v in data.values() if isinstance(v, str) and v]
    return texts[0] if len(texts) == 1 else None


def resolve_image(reference: str, root: Path) -> Path:
    """Where the file behind a Label Studio image reference is on this machine.

    ``/data/local-files/?d=a/b.png`` is ``root/a/b.png``; ``file://`` URLs and
    existing absolute paths are themselves; an upload (``/data/upload/3/1a2b3c4d-b.png``)
    or a web URL is looked up in ``root`` by its file name, with or without the
    8-character prefix Label Studio gives uploads.
    """
    parts = urlsplit(reference)
    if parts.path.endswith("/data/local-files/") or parts.path == "/data/local-files":
        (relative,) = parse_qs(parts.query).get("d", [""])
        return root / relative
    if parts.scheme == "file":
        return Path(unquote(parts.path))
    if not parts.scheme and Path(reference).is_absolute() and Path(reference).exists():
        return Path(reference)
    name = PurePosixPath(unquote(parts.path)).name
    candidate = root / name
    stem, sep, rest = name.partition("-")
    if not candidate.exists() and sep and len(stem) == 8 and (root / rest).exists():
        return root / rest
    return candidate


def annotation_label(
    annotation: dict[str, Any], *, default_author: str = UNKNOWN_AUTHOR, boxes: bool = False, masks: bool = False
) -> ForeignLabel | None:
    """The classes one annotation chose (with ``boxes``, the rectangles it drew; with ``masks``, the
    brushes and polygons it painted), its author and time.

    None for a skipped annotation, a classification one without a choice, or a segmentation
    one without a region. ``default_author`` is recorded when the annotation names no
    annotator. An annotation with an empty choice list (multi-label "none of these") is
    kept, and so is a detection annotation without a rectangle ("nothing here").
    """
    if annotation.get("was_cancelled"):
        return None
    who = annotation.get("completed_by")
    author = default_author if who is None else annotator(who)
    created_at = _parse_time(annotation.get("updated_at") or annotation.get("created_at"))
    results = [r for r in annotation.get("result") or [] if isinstance(r, dict)]
    if masks:
        regions = tuple(_region(r, annotation.get("id")) for r in results if r.get("type") in REGION_TYPES)
        if not regions:
            return None
        return ForeignLabel(tuple(dict.fromkeys(r.label for r in regions)), author, created_at, regions=regions)
    if boxes:
        rectangles = tuple(_rectangle(r, annotation.get("id")) for r in results if r.get("type") == "rectanglelabels")
        return ForeignLabel(tuple(dict.fromkeys(b.label for b in rectangles)), author, created_at, rectangles)
    choices = [r.get("value", {}).get("choices") for r in results if r.get("type") == "choices"]
    if not choices:
        return None
    if len(choices) > 1 or not isinstance(choices[0], list) or not all(isinstance(c, str) for c in choices[0]):
        raise InputError(
            f"annotation {annotation.get('id')} has {len(choices)} choices results {choices}; "
            "one choices control (a list of class names) per image is supported"
        )
    return ForeignLabel(tuple(choices[0]), author, created_at)


def _rectangle(result: dict[str, Any], annotation_id: Any) -> ForeignBox:
    """A ``rectanglelabels`` result as a box in percent; InputError naming the annotation when it is not one."""
    value = result.get("value") or {}
    labels = value.get("rectanglelabels")
    where = f"annotation {annotation_id}, region {result.get('id', '?')}"
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
        raise InputError(f"{where}: rectanglelabels {labels!r} should name exactly one class")
    if value.get("rotation"):
        raise InputError(f"{where}: the rectangle is rotated by {value['rotation']} degrees; draw it unrotated")
    try:
        x, y, width, height = (float(value[key]) for key in ("x", "y", "width", "height"))
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{where}: x, y, width and height must be numbers (percent of the image)") from exc
    return ForeignBox(labels[0], x, y, width, height, _original_size(result))


def _region(result: dict[str, Any], annotation_id: Any) -> ForeignRegion:
    """A ``brushlabels`` or ``polygonlabels`` result; InputError naming the annotation when it is not one."""
    value = result.get("value") or {}
    kind = "brush" if result["type"] == "brushlabels" else "polygon"
    labels = value.get(result["type"])
    where = f"annotation {annotation_id}, region {result.get('id', '?')}"
    if not isinstance(labels, list) or len(labels) != 1 or not isinstance(labels[0], str):
        raise InputError(f"{where}: {result['type']} {labels!r} should name exactly one class")
    if kind == "brush":
        rle = value.get("rle", result.get("rle"))
        if value.get("format", "rle") != "rle" or not isinstance(rle, list):
            raise InputError(f"{where}: a brush needs its RLE (format 'rle', a list of bytes); export as JSON")
        return ForeignRegion(labels[0], kind, tuple(rle), _original_size(result))
    points = value.get("points")
    if (
        not isinstance(points, list)
        or len(points) < 3
        or not all(
            isinstance(p, list | tuple)
            and len(p) == 2
            and all(isinstance(v, int | float) and not isinstance(v, bool) for v in p)
            for p in points
        )
    ):
        raise InputError(f"{where}: a polygon needs at least 3 points [x, y] in percent of the image")
    return ForeignRegion(labels[0], kind, tuple((float(x), float(y)) for x, y in points), _original_size(result))


def _original_size(result: dict[str, Any]) -> tuple[int, int] | None:
    """``(original_width, original_height)`` of a result, None unless both are positive numbers."""
    width, height = result.get("original_width"), result.get("original_height")
    if isinstance(width, int | float) and isinstance(height, int | float) and width > 0 and height > 0:
        return int(width), int(height)
    return None


def annotator(completed_by: Any) -> str:
    """The author to record for Label Studio's ``completed_by``: the email, else ``labelstudio-user-<id>``."""
    if isinstance(completed_by, dict):
        email = completed_by.get("email")
        if email:
            return str(email)
        completed_by = completed_by.get("id")
    if isinstance(completed_by, str) and completed_by:
        return completed_by
    if isinstance(completed_by, int):
        return f"labelstudio-user-{completed_by}"
    return UNKNOWN_AUTHOR


def _parse_time(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


# ------------------------------------------------------------------ importing


def import_labelstudio(
    store: Store,
    export: str | Path,
    *,
    images_root: str | Path | None = None,
    image_key: str = "image",
    split: str = "pool",
    add_classes: bool = False,
    report_path: str | Path | None = None,
    progress: bool = False,
    task: Task | None = None,
) -> ImportReport:
    """Import the images and labels of a Label Studio JSON export into ``store``.

    Images go through the normal import (checks, duplicates, per-file report);
    each annotation becomes a label event with its annotator and time, its
    choices (or, where ``task``'s annotation is boxes, its rectangles in pixels of
    the image's size) read by ``task`` (default: single-label classification) and
    validated by it; a segmentation ``task``'s brushes and polygons become one mask each.
    A label newer than the stored one is appended; an older,
    different one is counted as a conflict and the stored label kept. Re-running
    adds nothing new.
    """
    task = task or get_task("classification")
    masks = task.output == "masks"
    ls_tasks = read_tasks(
        export, images_root=images_root, image_key=image_key, boxes=task.output == "boxes", masks=masks
    )
    frame = pd.DataFrame({"filepath": [str(t.path) for t in ls_tasks]})
    report = import_images(store, frame, split=split, label_col=None, report_path=report_path, progress=progress)
    problems = [p for t in ls_tasks for p in t.problems]
    if add_classes:
        found = list(dict.fromkeys(c for t in ls_tasks for lab in t.labels for c in lab.choices))
        report.new_classes = store.add_classes(with_background(store, found) if masks else found)
    classes = store.class_names()
    ids = image_ids_for(store, (t.path for t in ls_tasks))
    sizes = image_sizes(store, ids.values())
    wanted: dict[int, list[tuple[ForeignLabel, Payload]]] = defaultdict(list)
    for ls_task in ls_tasks:
        if ls_task.path not in ids:
            continue
        iid = ids[ls_task.path]
        for lab in ls_task.labels:
            unknown = [c for c in lab.choices if c not in classes]
            if unknown:
                problems.append(
                    (
                        "unknown_class",
                        f"{ls_task.reference}: label {', '.join(map(repr, unknown))} is not a class; "
                        "add it with `activelab classes add` or re-import with --add-classes",
                    )
                )
                continue
            try:
                payload = lab.payload(task, sizes[iid], classes)
                wanted[iid].append((lab, task.validate(payload, classes, size=sizes[iid])))
            except InputError as exc:
                answer = (
                    "drew boxes"
                    if lab.boxes is not None
                    else "painted regions"
                    if lab.regions is not None
                    else f"chose {', '.join(map(repr, lab.choices)) or 'no class'}"
                )
                problems.append(
                    ("invalid_label", f"{ls_task.reference}: {answer}, not an annotation of this project ({exc})")
                )
    report.labeled, report.label_conflicts = record_labels(store, wanted)
    report.rejected.update(reason for reason, _ in problems)
    _append_report(report_path, problems)
    return report


def image_sizes(store: Store, image_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """``(width, height)`` of each stored image in ``image_ids``, as read at import."""
    wanted = set(image_ids)
    return {img.id: (img.width, img.height) for img in store.images() if img.id in wanted}


def record_labels(
    store: Store, wanted: dict[int, list[tuple[ForeignLabel, Payload]]], *, source: str = "import"
) -> tuple[int, int]:
    """Append the labels made elsewhere (per image, oldest first, each with its validated payload) that the
    store does not hold yet.

    Returns ``(events added, conflicts)``. The current label is the latest event, so a
    label is appended only when it differs from the image's current label and is
    newer than it (or has no time); an older different label that is not already
    in the history is a conflict and the stored label is kept.
    """
    current = store.current_annotations()
    passes: list[list[tuple[int, ForeignLabel, Payload]]] = []
    conflicts = 0
    for iid, labels in wanted.items():
        cur = current.get(iid)
        have_label, have_time = (cur.payload, cur.created_at) if cur else (None, None)
        step = 0
        for lab, payload in labels:
            if payload == have_label:
                continue
            if have_time is not None and (lab.created_at is None or lab.created_at <= have_time):
                conflicts += not _in_history(store, iid, lab, payload)
                continue
            if step == len(passes):
                passes.append([])
            passes[step].append((iid, lab, payload))
            step += 1
            have_label, have_time = payload, lab.created_at
    added = 0
    for batch in passes:  # one pass per event position keeps each image's events in time order
        by_author: dict[str, list[tuple[int, ForeignLabel, Payload]]] = defaultdict(list)
        for item in batch:
            by_author[item[1].author].append(item)
        for author, items in by_author.items():
            now = datetime.now(timezone.utc)
            store.add_annotations(
                [(iid, payload) for iid, _, payload in items],
                author=author,
                source=source,
                created_at=[lab.created_at or now for _, lab, _ in items],
            )
            added += len(items)
    return added, conflicts


def _in_history(store: Store, image_id: int, lab: ForeignLabel, payload: Payload) -> bool:
    return any(
        ev.payload == payload and ev.author == lab.author and ev.created_at == lab.created_at
        for ev in store.label_history(image_id)
    )


def _append_report(report_path: str | Path | None, problems: Sequence[tuple[str, str]]) -> None:
    """Add the annotations that could not be used to the import's per-file report."""
    if report_path is None or not problems:
        return
    with Path(report_path).open("a", newline="", encoding="utf-8") as fh:
        csv.writer(fh).writerows(["", "", "", "rejected", reason, detail] for reason, detail in problems)


# ------------------------------------------------------------------ exporting


def label_config(classes: Iterable[str], *, multiple: bool = False, boxes: bool = False, masks: bool = False) -> str:
    """The Label Studio labeling config (XML) that the exported tasks' results refer to.

    ``multiple`` lets a person choose several classes (``choice="multiple"``: multi-label);
    ``boxes`` asks for rectangles, each with one class (``RectangleLabels``: detection);
    ``masks`` for brushes and polygons (``BrushLabels``, ``PolygonLabels``: segmentation),
    each class in its VOC palette colour.
    """
    if masks:
        from activelab.tasks.masks import voc_palette

        palette = voc_palette()
        labels = "\n".join(
            f'    <Label value={quoteattr(name)} background="#{bytes(palette[i].tolist()).hex()}"/>'
            for i, name in enumerate(classes)
        )
        controls = "".join(
            f'  <{tag} name="{name}" toName="{TO_NAME}">\n{labels}\n  </{tag}>\n'
            for tag, name in (("BrushLabels", BRUSH_FROM_NAME), ("PolygonLabels", POLYGON_FROM_NAME))
        )
        return f'<View>\n  <Image name="{TO_NAME}" value="$image" zoom="true"/>\n{controls}</View>\n'
    if boxes:
        labels = "\n".join(f"    <Label value={quoteattr(name)}/>" for name in classes)
        return (
            f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
            f'  <RectangleLabels name="{BOX_FROM_NAME}" toName="{TO_NAME}">\n'
            f"{labels}\n  </RectangleLabels>\n</View>\n"
        )
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in classes)
    kind = "multiple" if multiple else "single"
    return (
        f'<View>\n  <Image name="{TO_NAME}" value="$image"/>\n'
        f'  <Choices name="{FROM_NAME}" toName="{TO_NAME}" choice="{kind}" showInLine="true">\n'
        f"{choices}\n  </Choices>\n</View>\n"
    )


def image_url(path: str, document_root: Path | None, url_prefix: str | None) -> str:
    """How a Label Studio task refers to a stored image.

    With ``url_prefix`` (a static file server), the prefix plus the path under
    ``document_root``; else a local-files URL relative to ``document_root``
    (Label Studio's ``LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT``).
    """
    file = Path(path)
    if document_root is not None:
        try:
            file = file.relative_to(document_root)
        except ValueError as exc:
            raise InputError(
                f"image {path} is not under the document root {document_root}; "
                "choose a root that holds every image (--document-root)"
            ) from exc
    relative = quote(file.as_posix().lstrip("/"))
    return f"{url_prefix.rstrip('/')}/{relative}" if url_prefix else f"{LOCAL_FILES_URL}{relative}"


def queue_scores(store: Store) -> tuple[int | None, dict[int, float]]:
    """The latest finished round and each image's place in its queue as a score in (0, 1].

    The first image to label scores 1.0, the last 1/n: sorting Label Studio's
    "Prediction score" from high to low gives activelab's active-learning order.
    """
    done = [r.number for r in store.rounds() if r.status == "done"]
    if not done:
        return None, {}
    selection = store.round_selection(done[-1])
    n = len(selection)
    return done[-1], {iid: (n - rank) / n for rank, (iid, _) in enumerate(selection)}


def choice_result(label: Payload, score: float | None = None) -> dict[str, Any]:
    """One ``choices`` result naming ``label``, a class or a list of them (the model's confidence as ``score``)."""
    result: dict[str, Any] = {
        "from_name": FROM_NAME,
        "to_name": TO_NAME,
        "type": "choices",
        "value": {"choices": [label] if isinstance(label, str) else list(label)},
    }
    if score is not None:
        result["score"] = score
    return result


def rectangle_result(
    box: dict[str, Any], size: tuple[int, int], *, from_name: str = BOX_FROM_NAME, to_name: str = TO_NAME
) -> dict[str, Any]:
    """One ``rectanglelabels`` result for a box in pixels of an image of ``size`` (width, height).

    Label Studio wants percents of the image: ``x`` = 100 * x / width, and so on; the
    box's ``score`` (a prediction's confidence) is kept.
    """
    width, height = size
    result: dict[str, Any] = {
        "from_name": from_name,
        "to_name": to_name,
        "type": "rectanglelabels",
        "original_width": width,
        "original_height": height,
        "image_rotation": 0,
        "value": {
            "x": 100 * box["x"] / width,
            "y": 100 * box["y"] / height,
            "width": 100 * box["w"] / width,
            "height": 100 * box["h"] / height,
            "rotation": 0,
            "rectanglelabels": [box["class"]],
        },
    }
    if "score" in box:
        result["score"] = box["score"]
    return result


def brush_results(mask: Any, classes: Sequence[str]) -> list[dict[str, Any]]:
    """One ``brushlabels`` result per class present in an ``(H, W)`` mask (background included, unlabeled
    pixels in none), in class order."""
    height, width = mask.shape
    return [
        {
            "from_name": BRUSH_FROM_NAME,
            "to_name": TO_NAME,
            "type": "brushlabels",
            "original_width": width,
            "original_height": height,
            "image_rotation": 0,
            "value": {"format": "rle", "rle": encode_brush(region), "brushlabels": [classes[position]]},
        }
        for position, region in class_regions(mask)
    ]


def answer_results(
    payload: Payload,
    size: tuple[int, int],
    *,
    boxes: bool,
    task: Task | None = None,
    classes: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """An annotation's (or prediction's) results: one rectangle per box with ``boxes``, one brush per class
    for a mask payload of a segmentation ``task`` (its mask read from ``task.masks``), else one choices result."""
    key = stored_mask_key(payload)
    if task is not None and task.output == "masks" and key is not None:
        return brush_results(task.masks.get(key), classes)
    return [rectangle_result(box, size) for box in payload] if boxes else [choice_result(payload)]


def prediction(
    label: Payload,
    confidence: float,
    priority: float,
    model_version: str,
    *,
    size: tuple[int, int] | None = None,
    boxes: bool = False,
    task: Task | None = None,
    classes: Sequence[str] = (),
) -> dict[str, Any]:
    """A Label Studio prediction, ``score`` = queue priority: the class (or classes) with its confidence,
    with ``boxes`` one rectangle per predicted box (in an image of ``size``) with the box's score, or for a
    segmentation ``task`` one brush per class of the predicted mask (names from ``classes``)."""
    if task is not None and task.output == "masks":
        result = answer_results(label, size or (0, 0), boxes=False, task=task, classes=classes)
    elif boxes:
        if size is None:
            raise InputError("a box prediction needs the image's (width, height) to become Label Studio percents")
        result = [rectangle_result(box, size) for box in label]
    else:
        result = [choice_result(label, confidence)]
    return {"model_version": model_version, "score": priority, "result": result}


def export_labelstudio(
    store: Store,
    out: str | Path,
    *,
    include_eval: bool = False,
    document_root: str | Path | None = None,
    url_prefix: str | None = None,
    task: Task | None = None,
) -> Path:
    """Write every image as a Label Studio task to ``out`` (JSON) and its labeling config beside it.

    Labeled images carry their current label as an annotation with its time
    (several choices for a ``task`` whose classes are independent: multi-label;
    one rectangle per box where its annotation is boxes: detection);
    the author goes in ``data.activelab_author``, not ``completed_by``, which Label
    Studio refuses for people who are not members of its organisation (the
    annotation then belongs to whoever imports it). A segmentation project's masks are
    brushes, one per class present, and a partly labeled mask marks its task
    ``data.activelab_fill: "ignore"``. Images the latest round predicted carry
    that prediction. ``document_root`` (default: the images' common folder) is
    what Label Studio's local-files serving must point at; the config is written
    to ``<out stem>_label_config.xml``.
    """
    out = Path(out)
    images = [img for img in store.images() if include_eval or img.split == "pool"]
    root = Path(document_root) if document_root is not None else _common_root([img.path for img in images])
    task = task or get_task("classification")
    multiple = task.output == "sigmoid"  # independent classes: several choices
    boxes = task.output == "boxes"
    masks = task.output == "masks"
    classes = [*store.class_names(), *store.retired_classes()]
    current = store.current_annotations()
    round_number, priority = queue_scores(store)
    predicted = store.latest_predictions([img.id for img in images]) if round_number is not None else {}
    entries = []
    for img in images:
        entry: dict[str, Any] = {
            "data": {"image": image_url(img.path, root, url_prefix), "activelab_id": img.id, "split": img.split}
        }
        cur = current.get(img.id)
        if cur is not None:
            entry["data"][AUTHOR_KEY] = cur.author
            if masks and isinstance(cur.payload, dict) and cur.payload.get("labeled", 0) < img.width * img.height:
                entry["data"][FILL_KEY] = "ignore"
            entry["annotations"] = [
                {
                    "result": answer_results(
                        cur.payload, (img.width, img.height), boxes=boxes, task=task, classes=classes
                    ),
                    "created_at": cur.created_at.isoformat(),
                    "updated_at": cur.created_at.isoformat(),
                    "ground_truth": False,
                    "was_cancelled": False,
                }
            ]
        pred = predicted.get(img.id)
        if pred is not None and pred[2] == round_number and (not masks or stored_mask_key(pred[0]) in task.masks):
            label, confidence, number = pred
            entry["predictions"] = [
                prediction(
                    label,
                    confidence,
                    priority.get(img.id, 0.0),
                    f"activelab-round-{number}",
                    size=(img.width, img.height),
                    boxes=boxes,
                    task=task,
                    classes=classes,
                )
            ]
        entries.append(entry)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(entries, indent=1), encoding="utf-8")
    config = label_config(store.class_names(), multiple=multiple, boxes=boxes, masks=masks)
    out.with_name(f"{out.stem}_label_config.xml").write_text(config, encoding="utf-8")
    return out


def _common_root(paths: Sequence[str]) -> Path | None:
    if not paths:
        return None
    parents = {str(Path(p).parent) for p in paths}
    return Path(os.path.commonpath(sorted(parents)))
