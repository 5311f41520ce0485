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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import islice
from pathlib import Path

import pandas as pd

from activelab.data.images import (
    DEFAULT_MAX_FILE_MB,
    DEFAULT_MAX_PIXELS,
    ImageInfo,
    ImageRejected,
    inspect_image,
)
from activelab.data.sources import (
    SourceItem,
    folder_items,
    imagefolder_items,
    read_table,
    resolve_format,
    table_items,
)
from activelab.exceptions import InputError
from activelab.progress import Progress, progress_task
from activelab.store import ImageRecord, Store

REPORT_COLUMNS = ["row", "path", "label", "status", "reason", "detail"]


@dataclass
class ImportReport:
    """Outcome of one import: counts, rejections by reason, and the CSV report's path."""

    seen: int = 0
    added: int = 0
    labeled: int = 0
    duplicates: int = 0
    label_conflicts: int = 0
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
) -> Iterator[SourceItem]:
    """The items of any supported source: folder, ImageFolder tree, CSV/parquet file or DataFrame."""
    if isinstance(source, pd.DataFrame):
        return table_items(source, path_col=path_col, label_col=label_col, name="the DataFrame")
    kind = resolve_format(source, fmt)
    if kind == "folder":
        return folder_items(source)
    if kind == "imagefolder":
        return imagefolder_items(source)
    path = Path(source)
    return table_items(read_table(path), path_col=path_col, label_col=label_col, base_dir=path.parent, name=str(path))


def import_images(
    store: Store,
    source: str | Path | pd.DataFrame,
    *,
    fmt: str = "auto",
    split: str = "pool",
    path_col: str = "filepath",
    label_col: str | None = "label",
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

    ``add_classes`` adds label values that are not yet classes; otherwise such
    rows are rejected as ``unknown_class``. Files over ``max_file_mb`` are
    rejected as ``too_large`` without being read. The per-file report is written
    to ``report_path`` when given, one batch at a time as the import goes.
    """
    if split not in ("pool", "eval"):
        raise InputError(f"--split must be 'pool' or 'eval', got {split!r}")
    author = author or getpass.getuser()
    items = list(iter_source(source, fmt=fmt, path_col=path_col, label_col=label_col))
    report = ImportReport(seen=len(items))
    if add_classes:
        labels_seen = [i.label for i in items if i.label is not None]
        report.new_classes = store.add_classes(dict.fromkeys(labels_seen))
    known = set(store.class_names())
    with (
        ThreadPoolExecutor(max_workers=workers) as pool,
        _report_writer(report_path) as write_rows,
        progress_task(progress, "importing", total=len(items), unit="img") as bar,
    ):
        report.report_path = Path(report_path) if report_path is not None else None
        for batch in _batched(items, batch_size):
            checked = list(pool.map(lambda item: _check(item, known, max_pixels, max_file_mb), batch))
            good = [(item, info) for item, info in zip(batch, checked) if isinstance(info, ImageInfo)]
            rejected = [(item, info) for item, info in zip(batch, checked) if isinstance(info, ImageRejected)]
            report.rejected.update(info.reason for _, info in rejected)
            write_rows([_row(item, "rejected", info.reason, info.detail) for item, info in rejected])
            records = [
                ImageRecord(
                    sha256=info.sha256,
                    path=str(item.path.resolve()) if item.path else "",
                    width=info.width,
                    height=info.height,
                    n_bytes=info.n_bytes,
                    format=info.format,
                    split=split,
                    label=item.label,
                )
                for item, info in good
            ]
            outcome = store.add_images(records, author=author, source="import")
            report.labeled += outcome.labels_added
            rows: list[list[object]] = []
            for (item, _), status, existing in zip(good, outcome.status, outcome.existing_path):
                if status == "added":
                    report.added += 1
                    rows.append(_row(item, "added", "", ""))
                elif status == "labeled":
                    rows.append(_row(item, "labeled", "", f"already stored as {existing}; label added"))
                elif status == "duplicate":
                    report.duplicates += 1
                    rows.append(_row(item, "duplicate", "duplicate", f"same content as {existing}"))
                else:
                    report.label_conflicts += 1
                    rows.append(
                        _row(item, "label_conflict", "label_conflict", f"{existing} already has another label; kept it")
                    )
            write_rows(rows)
            bar.advance(len(batch))
    return report


def default_report_path(project_root: Path) -> Path:
    """Where the CLI writes an import's per-file report: ``reports/import-<time>.csv``."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return project_root / "reports" / f"import-{stamp}.csv"


def _check(item: SourceItem, known: set[str], max_pixels: int, max_file_mb: float) -> ImageInfo | ImageRejected:
    if item.path is None:
        return ImageRejected("missing_path", f"row {item.row} has an empty file path")
    if item.label is not None and item.label not in known:
        return ImageRejected(
            "unknown_class",
            f"label {item.label!r} is not a class of this project ({', '.join(sorted(known)) or 'none yet'}); "
            "add it with `activelab classes add` or re-import with --add-classes",
        )
    try:
        return inspect_image(item.path, max_pixels=max_pixels, max_file_mb=max_file_mb)
    except ImageRejected as exc:
        return exc


def _row(item: SourceItem, status: str, reason: str, detail: str) -> list[object]:
    return [item.row if item.row is not None else "", item.raw_path, item.label or "", status, reason, detail]


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


def _batched(items: Iterable[SourceItem], size: int) -> Iterator[list[SourceItem]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch
