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
from activelab.tasks import Payload, Task, get_task

REPORT_COLUMNS = ["row", "path", "label", "status", "reason", "detail"]


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
) -> Iterator[SourceItem]:
    """The items of any supported source: folder, ImageFolder tree, CSV/parquet file or DataFrame."""
    if isinstance(source, pd.DataFrame):
        return table_items(source, path_col=path_col, label_col=label_col, class_cols=class_cols, name="the DataFrame")
    kind = resolve_format(source, fmt)
    if kind == "folder":
        return folder_items(source)
    if kind == "imagefolder":
        return imagefolder_items(source)
    path = Path(source)
    table = read_table(path)
    return table_items(
        table, path_col=path_col, label_col=label_col, class_cols=class_cols, base_dir=path.parent, name=str(path)
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
    classes (for single-label it stays a label conflict).

    ``add_classes`` adds label values that are not yet classes; otherwise such
    rows are rejected as ``unknown_class``. Files over ``max_file_mb`` are
    rejected as ``too_large`` without being read. The per-file report is written
    to ``report_path`` when given, one batch at a time as the import goes.
    """
    if split not in ("pool", "eval"):
        raise InputError(f"--split must be 'pool' or 'eval', got {split!r}")
    task = task or get_task("classification")
    author = author or getpass.getuser()
    if class_cols == "*":
        class_cols = _class_named_columns(source, store.class_names())
    items = [
        _Item(item, _parse(task, item.label, label_sep))
        for item in iter_source(source, fmt=fmt, path_col=path_col, label_col=label_col, class_cols=class_cols)
    ]
    report = ImportReport(seen=len(items))
    if add_classes:
        names = [name for i in items if isinstance(i.payload, str | list) for name in _payload_classes(i.payload)]
        report.new_classes = store.add_classes(dict.fromkeys(names))
    classes = store.class_names()
    merge_folders = (
        not isinstance(source, pd.DataFrame)
        and resolve_format(source, fmt) == "imagefolder"
        and any(isinstance(i.payload, list) for i in items)  # sets of classes; single-label copies stay conflicts
    )
    check = _Checker(task, classes, max_pixels, max_file_mb)
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        _report_writer(report_path) as write_rows,
        progress_task(progress, "importing", total=len(items), unit="img") as bar,
    ):
        report.report_path = Path(report_path) if report_path is not None else None
        for batch, checked in _checked_batches(items, pool, check, batch_size, merge=merge_folders):
            rows = _store_batch(store, task, batch, checked, split, author, label_sep, report)
            write_rows(rows)
            bar.advance(len(batch))
    return report


@dataclass(frozen=True)
class _Item:
    """A source item with its label parsed by the task (``None``: unlabeled)."""

    source: SourceItem
    payload: Payload | None


def _parse(task: Task, label: str | tuple[str, ...] | None, sep: str) -> Payload | None:
    if label is None:
        return None
    return list(label) if isinstance(label, tuple) else task.parse(label, sep=sep)


def _payload_classes(payload: Payload) -> list[str]:
    """The class names a payload mentions (a class name, or a list of them)."""
    return [payload] if isinstance(payload, str) else [str(name) for name in payload]


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
class _Checker:
    """Checks one item: its label against the task and classes, then its file."""

    task: Task
    classes: list[str]
    max_pixels: int
    max_file_mb: float

    def __call__(self, item: _Item) -> ImageInfo | ImageRejected:
        if item.source.path is None:
            return ImageRejected("missing_path", f"row {item.source.row} has an empty file path")
        if item.payload is not None:
            problem = self.label_problem(item.payload)
            if problem is not None:
                return problem
        try:
            return inspect_image(item.source.path, max_pixels=self.max_pixels, max_file_mb=self.max_file_mb)
        except ImageRejected as exc:
            return exc

    def label_problem(self, payload: Payload) -> ImageRejected | None:
        if isinstance(payload, str | list):
            unknown = [name for name in _payload_classes(payload) if name not in self.classes]
            if unknown:
                return ImageRejected(
                    "unknown_class",
                    f"label {', '.join(map(repr, unknown))} is not a class of this project "
                    f"({', '.join(sorted(self.classes)) or 'none yet'}); "
                    "add it with `activelab classes add` or re-import with --add-classes",
                )
        try:
            self.task.validate(payload, self.classes)
        except InputError as exc:
            return ImageRejected("invalid_label", str(exc))
        return None


_Checked = list[ImageInfo | ImageRejected]


def _checked_batches(
    items: list[_Item], pool: ThreadPoolExecutor, check: _Checker, batch_size: int, *, merge: bool
) -> Iterator[tuple[list[_Item], _Checked]]:
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
    checked = list(pool.map(check, items))
    merged_items, merged_checks = _merge_copies(items, checked, check)
    for start in range(0, len(merged_items), batch_size):
        yield merged_items[start : start + batch_size], merged_checks[start : start + batch_size]


def _merge_copies(items: list[_Item], checked: _Checked, check: _Checker) -> tuple[list[_Item], _Checked]:
    """Fold copies of one image (same content) with set payloads into its first item; copies are kept as merged."""
    first: dict[str, int] = {}
    out_items = list(items)
    out_checks = list(checked)
    for pos, (item, info) in enumerate(zip(items, checked)):
        if not isinstance(info, ImageInfo) or not isinstance(item.payload, list):
            continue
        if info.sha256 not in first:
            first[info.sha256] = pos
            continue
        keep = first[info.sha256]
        kept = out_items[keep]
        if not isinstance(kept.payload, list):
            continue
        union = sorted(set(kept.payload) | set(item.payload))
        problem = check.label_problem(union)
        if problem is not None:
            out_checks[pos] = problem
            continue
        out_items[keep] = _Item(kept.source, check.task.validate(union, check.classes))
        out_checks[pos] = _Merged(kept.source.raw_path)
    return out_items, out_checks


class _Merged(ImageRejected):
    """Not a rejection: this file's image is already in the import under another class folder."""

    def __init__(self, first_path: str) -> None:
        super().__init__("merged", f"same content as {first_path}; its class folder joins that image's labels")


def _store_batch(
    store: Store,
    task: Task,
    batch: list[_Item],
    checked: _Checked,
    split: str,
    author: str,
    sep: str,
    report: ImportReport,
) -> list[list[object]]:
    """Write one batch of images with their labels (classes or sets) in one transaction; the report's rows."""
    rows: list[list[object]] = []
    good: list[tuple[_Item, ImageInfo]] = []
    for item, info in zip(batch, checked):
        if isinstance(info, _Merged):
            report.merged += 1
            rows.append(_row(task, item, "merged", "", info.detail, sep))
        elif isinstance(info, ImageRejected):
            report.rejected[info.reason] += 1
            rows.append(_row(task, item, "rejected", info.reason, info.detail, sep))
        else:
            good.append((item, info))
    records = [
        ImageRecord(
            sha256=info.sha256,
            path=str(item.source.path.resolve()) if item.source.path else "",
            width=info.width,
            height=info.height,
            n_bytes=info.n_bytes,
            format=info.format,
            split=split,
            label=item.payload,
        )
        for item, info in good
    ]
    outcome = store.add_images(records, author=author, source="import")
    report.labeled += outcome.labels_added
    for (item, _), status, existing in zip(good, outcome.status, outcome.existing_path):
        if status == "added":
            report.added += 1
            rows.append(_row(task, item, "added", "", "", sep))
        elif status == "labeled":
            rows.append(_row(task, item, "labeled", "", f"already stored as {existing}; label added", sep))
        elif status == "duplicate":
            report.duplicates += 1
            rows.append(_row(task, item, "duplicate", "duplicate", f"same content as {existing}", sep))
        else:
            report.label_conflicts += 1
            rows.append(
                _row(
                    task,
                    item,
                    "label_conflict",
                    "label_conflict",
                    f"{existing} already has another label; kept it",
                    sep,
                )
            )
    return rows


def default_report_path(project_root: Path) -> Path:
    """Where the CLI writes an import's per-file report: ``reports/import-<time>.csv``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return project_root / "reports" / f"import-{stamp}.csv"


def _row(task: Task, item: _Item, status: str, reason: str, detail: str, sep: str) -> list[object]:
    src = item.source
    label = "" if item.payload is None else _label_text(task, item.payload, src.label, sep)
    return [src.row if src.row is not None else "", src.raw_path, label, status, reason, detail]


def _label_text(task: Task, payload: Payload, raw: str | tuple[str, ...] | None, sep: str) -> str:
    """The label as the report shows it: the task's cell text, or the raw text when the task cannot format it."""
    try:
        return task.format(payload, sep=sep)
    except (TypeError, ValueError):
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


def _batched(items: Iterable[_Item], size: int) -> Iterator[list[_Item]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
