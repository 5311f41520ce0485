"""Importing images into a project store, robustly.

Files are checked in parallel, then written in batches, one transaction each:
an import killed half-way keeps the finished batches and a re-run adds only
what is missing (images are keyed by content hash). Nothing bad stops the
import: every rejected file is counted by reason and listed in a CSV report,
written batch by batch so that a killed import still says what it did.
"""

from __future__ import annotations

import csv
import getpass
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path

import pandas as pd

from activelab.data.images import DEFAULT_MAX_FILE_MB, DEFAULT_MAX_PIXELS, ImageInfo, inspect_image
from activelab.data.sources import (
    SourceItem,
    folder_items,
    imagefolder_items,
    read_table,
    resolve_format,
    table_items,
)
from activelab.exceptions import ImageRejected, InputError
from activelab.progress import Progress, progress_task
from activelab.store import ImageRecord, Store
from activelab.store.classes import payload_classes
from activelab.tasks import Payload, Task, get_task

REPORT_COLUMNS = ["row", "path", "label", "status", "reason", "detail"]
#: the file-path column of a table that has no ``filepath`` column (fashion-scenes' tables)
IMAGE_COLUMN = "image"
#: the annotation column a table for a task with box annotations has in place of ``label``
BOX_COLUMN = "boxes"
#: the annotation column of a table for a task whose annotation is a mask (a PNG path per row)
MASK_COLUMN = "mask"
#: task output -> the table column its annotations are read from when the table has it (else ``label``)
ANNOTATION_COLUMNS = {"boxes": BOX_COLUMN, "masks": MASK_COLUMN}


def annotation_column(task: Task) -> str | None:
    """The column a table holds ``task``'s annotations in instead of ``label``: ``boxes``, ``mask``, or None."""
    return ANNOTATION_COLUMNS.get(task.output)


@dataclass
class ImportReport:
    """Outcome of one import: counts, rejections by reason, and the CSV report's path."""

    seen: int = 0
    added: int = 0
    labeled: int = 0
    duplicates: int = 0
    label_conflicts: int = 0
    #: copies of an image under another class folder, folded into its set (multi-label ImageFolder imports)
    merged: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    new_classes: list[str] = field(default_factory=list)
    report_path: Path | None = None

    @property
    def n_rejected(self) -> int:
        return sum(self.rejected.values())

    def summary(self) -> str:
        parts = [
            f"{self.seen} files seen",
            f"{self.added} added",
            f"{self.labeled} labels recorded",
            f"{self.duplicates} duplicates",
        ]
        if self.merged:
            parts.append(f"{self.merged} copies under other class folders merged")
        if self.label_conflicts:
            parts.append(f"{self.label_conflicts} label conflicts (kept the stored label)")
        parts.append(f"{self.n_rejected} rejected")
        text = ", ".join(parts)
        if self.rejected:
            text += " (" + ", ".join(f"{reason}: {n}" for reason, n in sorted(self.rejected.items())) + ")"
        return text


def iter_source(
    source: str | Path | pd.DataFrame,
    *,
    fmt: str = "auto",
    path_col: str = "filepath",
    label_col: str | None = "label",
    class_cols: Sequence[str] | None = None,
    box_col: str | None = None,
) -> Iterator[SourceItem]:
    """The items of any supported source: folder, ImageFolder tree, CSV/parquet file or DataFrame.

    A table without the default ``filepath`` column may name its files in ``image`` (as
    fashion-scenes' tables do). ``box_col`` (the task's :func:`annotation_column`: ``boxes``
    for detection, ``mask`` for segmentation) is read instead of the default ``label``
    column when the table has it.
    """
    if isinstance(source, pd.DataFrame):
        table, base_dir, name = source, None, "the DataFrame"
    else:
        kind = resolve_format(source, fmt)
        if kind == "folder":
            return folder_items(source)
        if kind == "imagefolder":
            return imagefolder_items(source)
        path = Path(source)
        table, base_dir, name = read_table(path), path.parent, str(path)
    if path_col == "filepath" and path_col not in table.columns and IMAGE_COLUMN in table.columns:
        path_col = IMAGE_COLUMN
    if label_col == "label" and box_col is not None and box_col in table.columns:
        label_col = box_col
    return table_items(
        table, path_col=path_col, label_col=label_col, class_cols=class_cols, base_dir=base_dir, name=name
    )


def import_images(
    store: Store,
    source: str | Path | pd.DataFrame,
    *,
    fmt: str = "auto",
    split: str = "pool",
    path_col: str = "filepath",
    label_col: str | None = "label",
    class_cols: Sequence[str] | str | None = None,
    label_sep: str = "|",
    task: Task | None = None,
    add_classes: bool = False,
    author: str | None = None,
    report_path: str | Path | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    batch_size: int = 256,
    workers: int = 4,
    progress: Progress = False,
) -> ImportReport:
    """Import images (and labels, if the source has them) from ``source`` into ``store``.

    Labels are read by ``task`` (default: single-label classification): a cell is
    parsed with ``task.parse`` (``label_sep`` separates several classes where the
    task allows them) and checked with ``task.validate``. ``class_cols`` reads one
    0/1 column per class instead of a label column (``"*"``: every column named
    like a class of the project). An image under several class folders of an
    ImageFolder tree gets all of them when the task's annotation is a set of
    classes (for single-label it stays a label conflict). A task whose annotation
    is a list of boxes reads the table's ``boxes`` column (the payload's JSON text)
    when it has one, and checks each box against the image's real size.

    ``add_classes`` adds label values that are not yet classes; otherwise such
    rows are rejected as ``unknown_class``. A cell naming a file (a segmentation
    project's ``mask`` column) is read relative to the table's folder. Files over ``max_file_mb`` are
    rejected as ``too_large`` without being read. The per-file report is written
    to ``report_path`` when given, one batch at a time as the import goes.
    """
    task = task or get_task("classification")
    if class_cols == "*":
        class_cols = _class_named_columns(source, store.class_names())
    sources = iter_source(
        source, fmt=fmt, path_col=path_col, label_col=label_col, class_cols=class_cols, box_col=annotation_column(task)
    )
    base = table_folder(source, fmt)
    items = [_parse(task, item, label_sep, base) for item in sources]
    merge_folders = (
        not isinstance(source, pd.DataFrame)
        and resolve_format(source, fmt) == "imagefolder"
        and any(isinstance(i.payload, list) for i in items)  # sets of classes; single-label copies stay conflicts
    )
    return import_items(
        store,
        items,
        split=split,
        task=task,
        add_classes=add_classes,
        author=author,
        report_path=report_path,
        label_sep=label_sep,
        max_pixels=max_pixels,
        max_file_mb=max_file_mb,
        batch_size=batch_size,
        workers=workers,
        progress=progress,
        merge_folders=merge_folders,
    )


@dataclass(frozen=True)
class ImportItem:
    """A source item with its annotation read (``None``: unlabeled), or the problem that stops it being read."""

    source: SourceItem
    payload: Payload | None
    problem: ImageRejected | None = None


@dataclass(frozen=True)
class ImportProblem:
    """Something an annotation file got wrong that belongs to no image of the import (a report row of its own)."""

    where: str
    reason: str
    detail: str


def import_items(
    store: Store,
    items: Sequence[ImportItem],
    *,
    split: str = "pool",
    task: Task | None = None,
    add_classes: bool = False,
    author: str | None = None,
    report_path: str | Path | None = None,
    problems: Sequence[ImportProblem] = (),
    label_sep: str = "|",
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_file_mb: float = DEFAULT_MAX_FILE_MB,
    batch_size: int = 256,
    workers: int = 4,
    progress: Progress = False,
    merge_folders: bool = False,
) -> ImportReport:
    """Import items whose annotations are already read (a table's cells, an annotation file's images).

    Each item's file is checked and its payload validated by ``task`` against the
    project's classes and the image's real ``(width, height)``; an item with a
    ``problem`` is rejected with it. ``problems`` are counted and reported
    first. The rest is :func:`import_images`'s contract.
    """
    if split not in ("pool", "eval"):
        raise InputError(f"--split must be 'pool' or 'eval', got {split!r}")
    task = task or get_task("classification")
    author = author or getpass.getuser()
    report = ImportReport(seen=len(items))
    if add_classes:
        names = [name for i in items if i.payload is not None for name in payload_classes(i.payload)]
        report.new_classes = store.add_classes(dict.fromkeys(names))
    check = _Checker(task, store.class_names(), max_pixels, max_file_mb)
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        _report_writer(report_path) as write_rows,
        progress_task(progress, "importing", total=len(items), unit="img") as bar,
    ):
        report.report_path = Path(report_path) if report_path is not None else None
        report.rejected.update(p.reason for p in problems)
        write_rows([["", p.where, "", "rejected", p.reason, p.detail] for p in problems])
        for batch, checked in _checked_batches(list(items), pool, check, batch_size, merge=merge_folders):
            rows = _store_batch(store, task, batch, checked, split, author, label_sep, report)
            write_rows(rows)
            bar.advance(len(batch))
    return report


def table_folder(source: str | Path | pd.DataFrame, fmt: str = "auto") -> Path | None:
    """The folder of a table file, where relative paths in its cells start; None for a DataFrame or a folder."""
    if isinstance(source, pd.DataFrame) or resolve_format(source, fmt) != "table":
        return None
    return Path(source).resolve().parent


def _parse(task: Task, item: SourceItem, sep: str, base: Path | None = None) -> ImportItem:
    """``item`` with its label read by ``task`` (file names relative to ``base``); a cell the task cannot
    read is the item's problem."""
    if item.label is None:
        return ImportItem(item, None)
    if isinstance(item.label, tuple):
        return ImportItem(item, list(item.label))
    try:
        return ImportItem(item, task.parse(item.label, sep=sep, base=base))
    except (InputError, ValueError) as exc:
        return ImportItem(item, None, ImageRejected("invalid_label", f"row {item.row}: {exc}"))


def _class_named_columns(source: str | Path | pd.DataFrame, classes: Sequence[str]) -> list[str]:
    """``--class-columns '*'``: the table's columns named like a project class, in class order."""
    if isinstance(source, pd.DataFrame):
        columns = {str(c) for c in source.columns}
    else:
        columns = {str(c) for c in read_table(source).columns}
    found = [name for name in classes if name in columns]
    if not found:
        raise InputError(
            f"{source}: no column is named like a class of this project ({', '.join(classes) or 'none yet'}); "
            "add the classes first (`activelab classes add`) or name the columns with --class-columns"
        )
    return found


@dataclass(frozen=True)
class _Good:
    """A file that passed its checks, and its annotation in the task's canonical form (``None``: unlabeled)."""

    info: ImageInfo
    payload: Payload | None


@dataclass(frozen=True)
class _Checker:
    """Checks one item: its classes, then its file, then its annotation against the task and the image's size."""

    task: Task
    classes: list[str]
    max_pixels: int
    max_file_mb: float

    def __call__(self, item: ImportItem) -> _Good | ImageRejected:
        if item.problem is not None:
            return item.problem
        if item.source.path is None:
            return ImageRejected("missing_path", f"row {item.source.row} has an empty file path")
        unknown = None if item.payload is None else self.unknown_classes(item.payload)
        if unknown is not None:
            return unknown
        try:
            info = inspect_image(item.source.path, max_pixels=self.max_pixels, max_file_mb=self.max_file_mb)
        except ImageRejected as exc:
            return exc
        if item.payload is None:
            return _Good(info, None)
        payload = self.validated(item.payload, (info.width, info.height))
        return payload if isinstance(payload, ImageRejected) else _Good(info, payload)

    def unknown_classes(self, payload: Payload) -> ImageRejected | None:
        unknown = [name for name in dict.fromkeys(payload_classes(payload)) if name not in self.classes]
        if not unknown:
            return None
        return ImageRejected(
            "unknown_class",
            f"label {', '.join(map(repr, unknown))} is not a class of this project "
            f"({', '.join(sorted(self.classes)) or 'none yet'}); "
            "add it with `activelab classes add` or re-import with --add-classes",
        )

    def validated(self, payload: Payload, size: tuple[int, int] | None = None) -> Payload | ImageRejected:
        """``payload`` in the task's canonical form, or the rejection saying why it is not an annotation."""
        unknown = self.unknown_classes(payload)
        if unknown is not None:
            return unknown
        try:
            return self.task.validate(payload, self.classes, size=size)
        except InputError as exc:
            return ImageRejected("invalid_label", str(exc))


_Checked = list[_Good | ImageRejected]


def _checked_batches(
    items: list[ImportItem], pool: ThreadPoolExecutor, check: _Checker, batch_size: int, *, merge: bool
) -> Iterator[tuple[list[ImportItem], _Checked]]:
    """Batches of items with their checks, in parallel.

    With ``merge`` (an ImageFolder tree read for a task whose annotation is a set
    of classes), every file is checked first, so that copies of one image under
    several class folders become one item carrying all their classes; the copies
    are reported as ``merged``.
    """
    if not merge:
        for batch in _batched(items, batch_size):
            yield batch, list(pool.map(check, batch))
        return
    merged = _merge_copies(items, list(pool.map(check, items)), check)
    for start in range(0, len(items), batch_size):
        yield items[start : start + batch_size], merged[start : start + batch_size]


def _merge_copies(items: list[ImportItem], checked: _Checked, check: _Checker) -> _Checked:
    """Fold copies of one image (same content) with set payloads into its first item; copies are kept as merged."""
    first: dict[str, int] = {}
    out = list(checked)
    for pos, good in enumerate(checked):
        if not isinstance(good, _Good) or not isinstance(good.payload, list):
            continue
        if good.info.sha256 not in first:
            first[good.info.sha256] = pos
            continue
        keep = first[good.info.sha256]
        kept = out[keep]
        if not isinstance(kept, _Good) or not isinstance(kept.payload, list):
            continue
        union = check.validated(sorted(set(kept.payload) | set(good.payload)))
        if isinstance(union, ImageRejected):
            out[pos] = union
            continue
        out[keep] = _Good(kept.info, union)
        out[pos] = _Merged(items[keep].source.raw_path)
    return out


class _Merged(ImageRejected):
    """Not a rejection: this file's image is already in the import under another class folder."""

    def __init__(self, first_path: str) -> None:
        super().__init__("merged", f"same content as {first_path}; its class folder joins that image's labels")


def _store_batch(
    store: Store,
    task: Task,
    batch: list[ImportItem],
    checked: _Checked,
    split: str,
    author: str,
    sep: str,
    report: ImportReport,
) -> list[list[object]]:
    """Write one batch of images with their annotations in one transaction; the report's rows."""
    rows: list[list[object]] = []
    good: list[tuple[ImportItem, _Good]] = []
    for item, outcome in zip(batch, checked):
        if isinstance(outcome, _Merged):
            report.merged += 1
            rows.append(_row(task, item, item.payload, "merged", "", outcome.detail, sep))
        elif isinstance(outcome, ImageRejected):
            report.rejected[outcome.reason] += 1
            rows.append(_row(task, item, item.payload, "rejected", outcome.reason, outcome.detail, sep))
        else:
            good.append((item, outcome))
    records = [
        ImageRecord(
            sha256=ok.info.sha256,
            path=str(item.source.path.resolve()) if item.source.path else "",
            width=ok.info.width,
            height=ok.info.height,
            n_bytes=ok.info.n_bytes,
            format=ok.info.format,
            split=split,
            label=ok.payload,
        )
        for item, ok in good
    ]
    added = store.add_images(records, author=author, source="import")
    report.labeled += added.labels_added
    for (item, ok), status, existing in zip(good, added.status, added.existing_path):
        if status == "added":
            report.added += 1
            rows.append(_row(task, item, ok.payload, "added", "", "", sep))
        elif status == "labeled":
            rows.append(_row(task, item, ok.payload, "labeled", "", f"already stored as {existing}; label added", sep))
        elif status == "duplicate":
            report.duplicates += 1
            rows.append(_row(task, item, ok.payload, "duplicate", "duplicate", f"same content as {existing}", sep))
        else:
            report.label_conflicts += 1
            detail = f"{existing} already has another label; kept it"
            rows.append(_row(task, item, ok.payload, "label_conflict", "label_conflict", detail, sep))
    return rows


def default_report_path(project_root: Path) -> Path:
    """Where the CLI writes an import's per-file report: ``reports/import-<time>.csv``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return project_root / "reports" / f"import-{stamp}.csv"


def _row(
    task: Task, item: ImportItem, payload: Payload | None, status: str, reason: str, detail: str, sep: str
) -> list[object]:
    src = item.source
    if payload is None:
        label = src.label if isinstance(src.label, str) else ""
    else:
        label = _label_text(task, payload, src.label, sep)
    return [src.row if src.row is not None else "", src.raw_path, label, status, reason, detail]


def _label_text(task: Task, payload: Payload, raw: str | tuple[str, ...] | None, sep: str) -> str:
    """The label as the report shows it: the task's cell text, or the raw text when the task cannot format it."""
    try:
        return task.format(payload, sep=sep)
    except (TypeError, ValueError, KeyError, InputError):
        return raw if isinstance(raw, str) else sep.join(raw or ())


@contextmanager
def _report_writer(path: str | Path | None) -> Iterator[Callable[[list[list[object]]], None]]:
    """A function that appends rows to the CSV report at ``path`` and flushes them (a no-op without a path)."""
    if path is None:
        yield lambda rows: None
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)

        def write_rows(rows: list[list[object]]) -> None:
            writer.writerows(rows)
            fh.flush()

        writer.writerow(REPORT_COLUMNS)
        fh.flush()
        yield write_rows


def _batched(items: Iterable[ImportItem], size: int) -> Iterator[list[ImportItem]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
