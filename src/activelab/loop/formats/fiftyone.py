"""FiftyOne image classification: its ``FiftyOneImageClassificationDataset`` layout out, three layouts in.

The export is ``data/<image>`` plus ``labels.json`` (``{"classes": [...],
"labels": {"<file stem>": <class index>}}``), which
``fo.Dataset.from_dir(OUT, dataset_type=fo.types.FiftyOneImageClassificationDataset)``
reads as a classification dataset; with the eval split, ``OUT/eval/`` is a second
dataset of the same layout. Imports read that layout, a full FiftyOne export
(``samples.json``, its first ``Classification`` field) and a class-folder tree
(``ImageClassificationDirectoryTree``). Plain files: the ``fiftyone`` package is not needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from activelab.data.sources import imagefolder_items
from activelab.exceptions import InputError
from activelab.loop.formats._common import copy_labeled_images, new_output_dir, require_classes
from activelab.loop.ingest import ImportReport, import_images
from activelab.store import Store
from activelab.tasks import Payload, Task

LABELS_FILE = "labels.json"
SAMPLES_FILE = "samples.json"
DATA_DIR = "data"
EVAL_DIR = "eval"
PREFERRED_FIELD = "ground_truth"
#: FiftyOne label types read from ``samples.json``: one class, or several (multi-label)
LABEL_CLASSES = ("Classification", "Classifications")


# ------------------------------------------------------------------ exporting


def export_fiftyone(store: Store, out: str | Path, *, include_eval: bool = False, task: Task | None = None) -> Path:
    """Copy the labeled images to ``out/data/`` and write ``out/labels.json`` (eval: ``out/eval/``).

    A target is a class index, or a list of them for a set of classes (multi-label:
    FiftyOne reads a list as ``Classifications``).
    """
    require_classes(task, "a FiftyOne classification export")
    out = new_output_dir(Path(out))
    roots = {"pool": out, "eval": out / EVAL_DIR}
    frame = copy_labeled_images(
        store, {s: root / DATA_DIR for s, root in roots.items()}, include_eval=include_eval, task=task
    )
    classes = [*store.class_names(), *store.retired_classes()]
    index = {name: i for i, name in enumerate(classes)}
    payloads = {iid: cur.payload for iid, cur in store.current_annotations().items()}
    for split, root in roots.items():
        part = frame[frame.split == split]
        if part.empty and split == "eval":
            continue
        labels = {Path(f).stem: _target(payloads[iid], index) for f, iid in zip(part.file, part.image_id)}
        root.mkdir(parents=True, exist_ok=True)
        (root / LABELS_FILE).write_text(json.dumps({"classes": classes, "labels": labels}, indent=1), encoding="utf-8")
    return out


def _target(payload: Payload, index: dict[str, int]) -> int | list[int]:
    return index[payload] if isinstance(payload, str) else [index[name] for name in payload]


# ------------------------------------------------------------------ importing


def import_fiftyone(
    store: Store,
    source: str | Path,
    *,
    split: str = "pool",
    add_classes: bool = False,
    author: str | None = None,
    report_path: str | Path | None = None,
    progress: bool = False,
    task: Task | None = None,
) -> list[ImportReport]:
    """Import a FiftyOne classification export; ``source/eval/`` (as this module exports it) goes to ``eval``.

    A list target (``Classifications``) is a set of classes, for a multi-label ``task``.
    """
    require_classes(task, "a FiftyOne classification export")
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"{source} is not a folder; give the folder FiftyOne exported to")
    parts = {split: source}
    if (source / EVAL_DIR / LABELS_FILE).is_file():
        parts["eval"] = source / EVAL_DIR
    reports = []
    for target, folder in parts.items():
        table = fiftyone_table(folder)
        label_col = "label" if table["label"].notna().any() else None
        path = None if report_path is None else Path(report_path)
        if path is not None and target == "eval":
            path = path.with_name(f"{path.stem}-eval{path.suffix}")
        reports.append(
            import_images(
                store,
                table,
                split=target,
                label_col=label_col,
                add_classes=add_classes,
                author=author,
                report_path=path,
                progress=progress,
                task=task,
            )
        )
    return reports


def fiftyone_table(folder: Path) -> pd.DataFrame:
    """``filepath``/``label`` rows of one exported FiftyOne dataset folder, whichever of the three layouts."""
    if (folder / LABELS_FILE).is_file():
        return _classification_dataset(folder)
    if (folder / SAMPLES_FILE).is_file():
        return _fiftyone_dataset(folder)
    return pd.DataFrame([(str(i.path), i.label) for i in imagefolder_items(folder)], columns=["filepath", "label"])


def _classification_dataset(folder: Path) -> pd.DataFrame:
    """``FiftyOneImageClassificationDataset``: targets are class indices (with ``classes``) or names."""
    meta = _read_json(folder / LABELS_FILE)
    classes = meta.get("classes")
    labels = meta.get("labels")
    if not isinstance(labels, dict):
        raise InputError(f"{folder / LABELS_FILE} has no 'labels' object mapping file names to classes")
    files = {p.stem: p for p in sorted((folder / DATA_DIR).glob("*")) if p.is_file()}
    rows = []
    for stem, target in labels.items():
        path = files.get(stem, folder / DATA_DIR / stem)
        rows.append((str(path), _target_label(target, classes, folder)))
    listed = set(labels)
    rows += [(str(p), None) for stem, p in files.items() if stem not in listed]
    return pd.DataFrame(rows, columns=["filepath", "label"])


def _target_label(target: Any, classes: list[str] | None, folder: Path) -> str | tuple[str, ...] | None:
    """A class name, or the tuple of names of a list target (``Classifications``; a dict may wrap either)."""
    if isinstance(target, dict):
        target = target.get("classifications", target.get("label"))
    if isinstance(target, list):
        names = [_target_label(t, classes, folder) for t in target]
        return tuple(str(name) for name in names if name is not None)
    if target is None:
        return None
    if isinstance(target, int) and classes is not None:
        if not 0 <= target < len(classes):
            raise InputError(
                f"{folder / LABELS_FILE}: class index {target} is outside 'classes' (0..{len(classes) - 1})"
            )
        return str(classes[target])
    return str(target)


def _fiftyone_dataset(folder: Path) -> pd.DataFrame:
    """A full ``FiftyOneDataset`` export: ``samples.json`` with a ``Classification`` field per sample.

    A ``Classifications`` field (several labels per sample: multi-label) is read as a
    set of classes; a ``Classification`` field is preferred when a sample has both.
    """
    samples = _read_json(folder / SAMPLES_FILE).get("samples") or []
    kinds = {
        name: v.get("_cls")
        for s in samples
        for name, v in s.items()
        if isinstance(v, dict) and v.get("_cls") in LABEL_CLASSES
    }
    fields = sorted(kinds, key=lambda name: (kinds[name] != "Classification", name != PREFERRED_FIELD))
    field = fields[0] if fields else None
    rows = []
    for sample in samples:
        path = Path(sample.get("filepath", ""))
        cell = sample.get(field) if field else None
        rows.append((str(path if path.is_absolute() else folder / path), _target_label(cell, None, folder)))
    return pd.DataFrame(rows, columns=["filepath", "label"])


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path} is not readable JSON ({exc}); export the dataset again from FiftyOne") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} does not hold a JSON object; is it a FiftyOne export?")
    return data
