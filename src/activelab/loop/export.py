"""Exporting the current labels as a table or an ImageFolder tree.

The label column is each annotation as the project's task writes a table cell
(a class name; several joined by ``sep`` for multi-label). Where the task trains
on one 0/1 target per class (multi-label), the table also gets one such column per
class, named by the class, so that "none of these classes" (an empty cell in
the label column, which an import reads as unlabeled) survives a round trip
through ``activelab import --class-columns '*'``. CSV cells that a spreadsheet
would run as a formula are neutralised; parquet keeps the values raw.
ImageFolder trees get one folder per class (an image with several classes is
copied into each), with a ``classes.csv`` mapping each folder back to its exact
class name.

A segmentation project's table has a ``mask`` column: each current mask is written once,
as its canonical PNG named by its content address, to ``<table name>_masks/`` beside the
table, and the cell is that file's path relative to the table's folder, which is what
``activelab import`` reads back (the other mask formats are in :mod:`activelab.loop.formats`).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from activelab.exceptions import InputError
from activelab.loop.ingest import annotation_column
from activelab.store import Store
from activelab.tasks import Task, get_task
from activelab.tasks.masks import encode_png

EXPORT_FORMATS = ("csv", "parquet", "imagefolder")
EXPORT_COLUMNS = ["image_id", "filepath", "label", "split", "source", "author", "labeled_at", "round", "sha256"]
#: A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CLASS_MAP_FILE = "classes.csv"


def labels_frame(store: Store, *, include_eval: bool = False, task: Task | None = None, sep: str = "|") -> pd.DataFrame:
    """Current labels, one row per labeled image; the ``eval`` split only when asked.

    ``label`` is the task's cell text (default task: single-label classification);
    a task whose targets are one 0/1 column per class adds those columns, named by class.
    For a task whose annotation is a list of boxes the column is ``boxes`` (the list's
    JSON text), the column ``activelab import`` reads boxes from; for masks it is ``mask``
    (the canonical payload's JSON text: the mask's key in the project's mask store).
    """
    task = task or get_task("classification")
    images = {img.id: img for img in store.images()}
    columns = label_columns(task)
    rows = []
    payloads = []
    for iid, cur in store.current_annotations().items():
        img = images[iid]
        if img.split == "eval" and not include_eval:
            continue
        label = task.format(cur.payload, sep=sep)
        rows.append(
            [iid, img.path, label, img.split, cur.source, cur.author, cur.created_at, cur.round_number, img.sha256]
        )
        payloads.append(cur.payload)
    frame = pd.DataFrame(rows, columns=columns)
    classes = [*store.class_names(), *store.retired_classes()]
    targets = task.targets(payloads, classes)
    if targets.ndim == 2:
        clash = [name for name in classes if name in columns]
        if clash:
            raise InputError(
                f"class {clash[0]!r} has the name of an export column ({', '.join(columns)}); "
                "rename the class to export per-class columns"
            )
        flags = pd.DataFrame(targets.reshape(len(frame), len(classes)), columns=classes, index=frame.index)
        frame = pd.concat([frame, flags.astype("int64")], axis=1)
    return frame


def label_columns(task: Task) -> list[str]:
    """The export table's columns for ``task``: the annotation column is ``boxes`` where the annotation is boxes,
    ``mask`` where it is a mask."""
    label = annotation_column(task) or "label"
    return [label if name == "label" else name for name in EXPORT_COLUMNS]


def export_labels(
    store: Store,
    out: str | Path,
    *,
    fmt: str = "csv",
    include_eval: bool = False,
    task: Task | None = None,
    sep: str = "|",
) -> Path:
    """Write the current labels to ``out``; returns what was written.

    ``csv``/``parquet`` write one table (see :func:`labels_frame`); in CSV, text
    cells that start like a formula get a leading ``'``. ``imagefolder`` copies
    each labeled image to ``out/train/<folder>/`` (and ``out/eval/<folder>/``
    with ``include_eval``), named ``<image id>_<original name>`` so names never
    clash, once per class it carries; each class gets its own folder and
    ``out/classes.csv`` maps ``folder`` to ``class``. An image labeled with none
    of the classes has no folder to go to: such a project exports as a table.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"--format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    task = task or get_task("classification")
    out = Path(out)
    if fmt == "imagefolder":
        if task.output == "boxes":
            raise InputError(
                "an ImageFolder tree holds one class per folder, not boxes; export this project with "
                "--format coco, yolo, voc, labelstudio or csv"
            )
        if task.output == "masks":
            raise InputError(
                "an ImageFolder tree holds one class per folder, not masks; export this project with "
                "--format voc-masks, coco, masks-table, labelstudio or csv"
            )
        return _export_imagefolder(store, out, include_eval=include_eval)
    frame = labels_frame(store, include_eval=include_eval, task=task, sep=sep)
    out.parent.mkdir(parents=True, exist_ok=True)
    if task.output == "masks":
        frame = _write_masks(frame, task, out)
    if fmt == "csv":
        neutralise_formulas(frame).to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    return out


def _write_masks(frame: pd.DataFrame, task: Task, out: Path) -> pd.DataFrame:
    """``frame`` with each ``mask`` cell (a canonical payload's JSON) replaced by the path, relative to the
    table's folder, of the mask's PNG written to ``<table stem>_masks/<key>.png`` (once per distinct mask)."""
    import json

    column = annotation_column(task) or "label"
    folder = out.parent / f"{out.stem}_masks"
    folder.mkdir(parents=True, exist_ok=True)
    cells = []
    for cell in frame[column]:
        key = json.loads(cell)["mask"]
        path = folder / f"{key}.png"
        if not path.exists():
            path.write_bytes(encode_png(task.masks.get(key)))
        cells.append(f"{folder.name}/{path.name}")
    return frame.assign(**{column: cells})


def _export_imagefolder(store: Store, out: Path, *, include_eval: bool) -> Path:
    if out.exists() and any(out.iterdir()):
        raise InputError(f"{out} is not empty; export an ImageFolder tree into a new folder")
    images = {img.id: img for img in store.images()}
    placed: list[tuple[int, str, list[str]]] = []
    for iid, cur in store.current_annotations().items():
        img = images[iid]
        if img.split == "eval" and not include_eval:
            continue
        names = [cur.payload] if isinstance(cur.payload, str) else list(cur.payload)
        if not names:
            raise InputError(
                f"image {iid} ({img.path}) is labeled with none of the classes, which an ImageFolder tree "
                "cannot hold; export a table (csv or parquet) instead"
            )
        placed.append((iid, img.path, names))
    folders = class_folders(sorted({name for _, _, names in placed for name in names}))
    for iid, path, names in placed:
        split_dir = "eval" if images[iid].split == "eval" else "train"
        for name in names:
            folder = out / split_dir / folders[name]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, folder / f"{iid}_{Path(path).name}")
    out.mkdir(parents=True, exist_ok=True)
    mapping = pd.DataFrame({"folder": list(folders.values()), "class": list(folders.keys())})
    neutralise_formulas(mapping).to_csv(out / CLASS_MAP_FILE, index=False)
    return out


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells starting with ``= + - @``, tab or CR begin with ``'``.

    Spreadsheets then show the text instead of running it (OWASP's rule for CSV injection).
    """
    out = frame.copy()
    for col in out.columns:
        if pd.api.types.is_string_dtype(out[col]):
            out[col] = out[col].map(lambda v: f"'{v}" if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v)
    return out


def class_folders(classes: list[str]) -> dict[str, str]:
    """A distinct, file-system-safe folder name for each class, in order.

    When names map to the same folder (``cat/x`` and ``cat_x``, or ``A`` and
    ``a`` on a case-insensitive disk), a name that is already a safe folder name
    keeps it and the others get ``-2``, ``-3``...
    """
    folders: dict[str, str] = {}
    taken: set[str] = set()
    for name in sorted(classes, key=lambda c: _safe_dir_name(c) != c):
        base = folder = _safe_dir_name(name)
        n = 1
        while folder.casefold() in taken:
            n += 1
            folder = f"{base}-{n}"
        taken.add(folder.casefold())
        folders[name] = folder
    return {name: folders[name] for name in classes}


def _safe_dir_name(label: str) -> str:
    """A class name usable as a folder name on every OS (``a/b`` -> ``a_b``).

    A name that would start like a formula or a command-line option (``=``,
    ``-``...) gets a leading ``_``, so ``classes.csv`` can name it unchanged.
    """
    name = re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", label).strip(". ") or "_"
    return f"_{name}" if name.startswith(FORMULA_PREFIXES) else name
