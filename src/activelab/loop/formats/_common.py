"""What the format modules share: finding stored images for files, and copying labeled images out."""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from activelab.exceptions import InputError
from activelab.loop.export import labels_frame
from activelab.store import Store
from activelab.tasks import Task

_CHUNK_BYTES = 1 << 20
#: the class a segmentation import puts first in a project without classes (mask value 0)
BACKGROUND = "background"


def file_sha256(path: Path) -> str | None:
    """The content hash the store keys images by, or None when the file cannot be read."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK_BYTES):
                digest.update(chunk)
    except OSError:
        return None
    return digest.hexdigest()


def image_ids_for(store: Store, paths: Iterable[Path]) -> dict[Path, int]:
    """Stored image id of each readable file in ``paths``, matched by content (the store's key)."""
    by_sha = {ref.sha256: ref.id for ref in store.image_refs()}
    out: dict[Path, int] = {}
    for path in dict.fromkeys(paths):
        sha = file_sha256(path)
        if sha is not None and sha in by_sha:
            out[path] = by_sha[sha]
    return out


#: the formats (``activelab import/export --format``) that hold each kind of annotation other than classes
FORMATS_FOR_OUTPUT = {
    "boxes": "coco, yolo, voc, labelstudio or a csv/parquet table",
    "masks": "voc-masks, coco, labelstudio or masks-table",
}


def require_classes(task: Task | None, fmt: str) -> None:
    """Refuse a format that holds classes for a project whose annotations are boxes or masks, naming the
    formats that fit."""
    if task is not None and task.output in FORMATS_FOR_OUTPUT:
        raise InputError(
            f"{fmt} holds image classes and this project's annotations are {task.output}; "
            f"use --format {FORMATS_FOR_OUTPUT[task.output]}"
        )


def with_background(store: Store, names: Iterable[str]) -> list[str]:
    """Class names to add for a segmentation import: ``names``, after ``"background"`` when the project has
    no class yet and ``names`` lack it, so that position 0 (pixels no region covers) is the background."""
    names = list(names)
    if store.class_names() or store.retired_classes() or BACKGROUND in names:
        return names
    return [BACKGROUND, *names]


def stored_mask_key(payload: object) -> str | None:
    """The mask key of a segmentation payload (``{"mask": key, ...}``); None for any other payload."""
    if isinstance(payload, dict) and isinstance(payload.get("mask"), str):
        return str(payload["mask"])
    return None


def new_output_dir(out: Path) -> Path:
    """``out`` created empty; refuses a folder that already holds files, so nothing is overwritten."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder; export into a new folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


def copy_labeled_images(
    store: Store, folder_of: dict[str, Path], *, include_eval: bool, task: Task | None = None
) -> pd.DataFrame:
    """Copy each labeled image into ``folder_of[split]`` as ``<image id>_<name>``; the labels with a ``file`` column.

    The id prefix keeps names unique when two source folders hold files of the same name.
    """
    frame = labels_frame(store, include_eval=include_eval, task=task)
    files = []
    for row in frame.itertuples(index=False):
        target = folder_of[row.split] / f"{row.image_id}_{Path(row.filepath).name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(row.filepath, target)
        files.append(target)
    return frame.assign(file=files)
