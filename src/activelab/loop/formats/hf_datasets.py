"""Hugging Face ``datasets``: an ``imagefolder`` with metadata out; ``save_to_disk`` or ``imagefolder`` in.

The export is the layout ``datasets.load_dataset("imagefolder", data_dir=OUT)``
reads: ``train/`` (and ``test/`` for the eval split) holding the images and a
``metadata.csv`` whose ``file_name`` and ``label`` columns name each image's
class, plus its author, source and time. The ``datasets`` library is needed only
to read a dataset written by ``save_to_disk``; the imagefolder side is plain files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from activelab.data.images import sniff_format
from activelab.data.sources import imagefolder_items
from activelab.exceptions import InputError
from activelab.loop.formats._common import copy_labeled_images, new_output_dir, require_classes
from activelab.loop.ingest import ImportReport, import_images
from activelab.store import Store
from activelab.tasks import Task

METADATA_FILE = "metadata.csv"
METADATA_COLUMNS = ["file_name", "label", "image_id", "author", "source", "labeled_at"]
#: the imagefolder split a store split is written to, and back
SPLIT_DIRS = {"pool": "train", "eval": "test"}
EVAL_SPLIT_NAMES = ("test", "validation", "valid", "val", "eval")
_SUFFIXES = {"JPEG": ".jpg", "TIFF": ".tif"}


# ------------------------------------------------------------------ exporting


def export_hf_imagefolder(
    store: Store, out: str | Path, *, include_eval: bool = False, task: Task | None = None
) -> Path:
    """Copy the labeled images into an ``imagefolder`` layout with a ``metadata.csv`` per split; returns ``out``.

    One class per image (``datasets`` reads ``label`` as a ``ClassLabel``): a ``task``
    whose classes are independent (multi-label) is refused before anything is written.
    """
    require_classes(task, "a Hugging Face imagefolder")
    if task is not None and task.output == "sigmoid":
        raise InputError(
            "the Hugging Face imagefolder export holds one class per image, and this project's annotations are "
            "sets of classes: export csv or parquet (one 0/1 column per class), imagefolder or labelstudio instead"
        )
    out = new_output_dir(Path(out))
    frame = copy_labeled_images(store, {s: out / d for s, d in SPLIT_DIRS.items()}, include_eval=include_eval)
    for split, folder in SPLIT_DIRS.items():
        part = frame[frame.split == split]
        if part.empty:
            continue
        table = pd.DataFrame(
            {
                "file_name": [Path(f).name for f in part.file],
                "label": part.label,
                "image_id": part.image_id,
                "author": part.author,
                "source": part.source,
                "labeled_at": [t.isoformat() for t in part.labeled_at],
            }
        )
        table.to_csv(out / folder / METADATA_FILE, index=False)
    return out


# ------------------------------------------------------------------ importing


def is_saved_dataset(folder: Path) -> bool:
    """Whether ``folder`` was written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``."""
    return (folder / "dataset_dict.json").is_file() or (folder / "state.json").is_file()


def import_hf(
    store: Store,
    source: str | Path,
    *,
    media_dir: str | Path,
    split: str = "pool",
    add_classes: bool = False,
    author: str | None = None,
    report_path: str | Path | None = None,
    progress: bool = False,
    task: Task | None = None,
) -> list[ImportReport]:
    """Import a Hugging Face dataset saved on disk, or an ``imagefolder`` tree; one report per split read.

    A ``train`` split goes to ``split``; ``test``/``validation`` splits go to
    ``eval``. Images held inside a saved dataset are written to ``media_dir``
    first (the store keeps paths to files).
    """
    require_classes(task, "a Hugging Face dataset of image classes")
    source = Path(source)
    if not source.is_dir():
        raise InputError(f"{source} is not a folder; give the folder written by save_to_disk or an imagefolder")
    tables = saved_dataset_tables(source, Path(media_dir)) if is_saved_dataset(source) else imagefolder_tables(source)
    reports = []
    for hf_split, table in tables.items():
        target = "eval" if hf_split in EVAL_SPLIT_NAMES else split
        label_col = "label" if table["label"].notna().any() else None
        reports.append(
            import_images(
                store,
                table,
                split=target,
                label_col=label_col,
                add_classes=add_classes,
                author=author,
                report_path=_split_report(report_path, hf_split, len(tables)),
                progress=progress,
                task=task,
            )
        )
    return reports


def imagefolder_tables(root: Path) -> dict[str, pd.DataFrame]:
    """``filepath``/``label`` tables of an imagefolder: per split folder, from its metadata or class folders."""
    split_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and _has_metadata(d)]
    if _has_metadata(root):
        return {"train": _metadata_table(root)}
    if split_dirs:
        return {d.name: _metadata_table(d) for d in split_dirs}
    named = [d for d in sorted(root.iterdir()) if d.is_dir() and d.name in ("train", *EVAL_SPLIT_NAMES)]
    folders = {d.name: d for d in named} or {"train": root}
    return {
        name: pd.DataFrame([(str(i.path), i.label) for i in imagefolder_items(folder)], columns=["filepath", "label"])
        for name, folder in folders.items()
    }


def _has_metadata(folder: Path) -> bool:
    return any((folder / f"metadata.{ext}").is_file() for ext in ("csv", "jsonl"))


def _metadata_table(folder: Path) -> pd.DataFrame:
    """The ``metadata.csv``/``.jsonl`` of one imagefolder split as ``filepath``/``label``."""
    csv_file, jsonl_file = folder / "metadata.csv", folder / "metadata.jsonl"
    meta = (
        pd.read_csv(csv_file, dtype=str, keep_default_na=False)
        if csv_file.is_file()
        else pd.read_json(jsonl_file, lines=True, dtype=False)
    )
    if "file_name" not in meta.columns:
        raise InputError(
            f"{csv_file if csv_file.is_file() else jsonl_file} has no file_name column; "
            "Hugging Face imagefolder metadata names each image in file_name"
        )
    labels = meta["label"].map(lambda v: None if v in ("", None) else str(v)) if "label" in meta.columns else None
    return pd.DataFrame(
        {
            "filepath": [str(folder / name) for name in meta["file_name"]],
            "label": labels if labels is not None else [None] * len(meta),
        }
    )


def saved_dataset_tables(folder: Path, media_dir: Path) -> dict[str, pd.DataFrame]:
    """Write the images of a ``save_to_disk`` dataset to ``media_dir/<split>/`` and return their tables."""
    try:
        import datasets
    except ImportError as exc:
        raise InputError(f"reading {folder} needs the `datasets` library: pip install 'activelab[formats]'") from exc
    loaded = datasets.load_from_disk(str(folder))
    parts = dict(loaded) if isinstance(loaded, datasets.DatasetDict) else {"train": loaded}
    return {name: _write_images(part, media_dir / name, folder) for name, part in parts.items()}


def _write_images(part: Any, dest: Path, folder: Path) -> pd.DataFrame:
    import datasets

    image_col = _column_of(part.features, datasets.Image, "image", folder)
    label_col = _column_of(part.features, datasets.ClassLabel, "label", folder, required=False)
    raw = part.cast_column(image_col, datasets.Image(decode=False))
    names = part.features[label_col].names if label_col and hasattr(part.features[label_col], "names") else None
    dest.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, row in enumerate(raw):
        data = _image_bytes(row[image_col], folder)
        target = dest / f"{n:07d}{_suffix(data)}"
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)
        value = row[label_col] if label_col else None
        label = None if value is None or value == -1 else (names[value] if names else str(value))
        rows.append((str(target), label))
    return pd.DataFrame(rows, columns=["filepath", "label"])


def _column_of(features: Any, kind: type, default: str, folder: Path, *, required: bool = True) -> str | None:
    """The first feature of ``kind`` (``default`` when several), so ``img``/``fine_label`` datasets work too."""
    found = [name for name, feature in features.items() if isinstance(feature, kind)]
    if default in found or (not found and default in features):
        return default
    if found:
        return found[0]
    if required:
        raise InputError(f"the dataset in {folder} has no {kind.__name__} column (columns: {list(features)})")
    return None


def _image_bytes(cell: dict[str, Any], folder: Path) -> bytes:
    if cell.get("bytes"):
        return bytes(cell["bytes"])
    path = cell.get("path")
    if path and Path(path).is_file():
        return Path(path).read_bytes()
    raise InputError(f"an image of the dataset in {folder} has neither bytes nor a readable path ({path!r})")


def _suffix(data: bytes) -> str:
    fmt = sniff_format(data[:16]) or "bin"
    return _SUFFIXES.get(fmt, f".{fmt.lower()}")


def _split_report(report_path: str | Path | None, hf_split: str, n_splits: int) -> Path | None:
    if report_path is None:
        return None
    path = Path(report_path)
    return path if n_splits == 1 else path.with_name(f"{path.stem}-{hf_split}{path.suffix}")
