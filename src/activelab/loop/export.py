"""Exporting the current labels as a table or an ImageFolder tree."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from activelab.exceptions import InputError
from activelab.store import Store

EXPORT_FORMATS = ("csv", "parquet", "imagefolder")
EXPORT_COLUMNS = ["image_id", "filepath", "label", "split", "source", "author", "labeled_at", "round", "sha256"]


def labels_frame(store: Store, *, include_eval: bool = False) -> pd.DataFrame:
    """Current labels, one row per labeled image; the ``eval`` split only when asked."""
    images = {img.id: img for img in store.images()}
    rows = []
    for iid, cur in store.current_labels().items():
        img = images[iid]
        if img.split == "eval" and not include_eval:
            continue
        rows.append(
            [iid, img.path, cur.label, img.split, cur.source, cur.author, cur.created_at, cur.round_index, img.sha256]
        )
    return pd.DataFrame(rows, columns=EXPORT_COLUMNS)


def export_labels(store: Store, out: str | Path, *, fmt: str = "csv", include_eval: bool = False) -> Path:
    """Write the current labels to ``out``; returns what was written.

    ``csv``/``parquet`` write one table. ``imagefolder`` copies each labeled
    image to ``out/train/<class>/`` (and ``out/eval/<class>/`` with
    ``include_eval``), named ``<image id>_<original name>`` so names never clash.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"--format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    frame = labels_frame(store, include_eval=include_eval)
    out = Path(out)
    if fmt == "imagefolder":
        if out.exists() and any(out.iterdir()):
            raise InputError(f"{out} is not empty; export an ImageFolder tree into a new folder")
        for row in frame.itertuples(index=False):
            folder = out / ("eval" if row.split == "eval" else "train") / _safe_dir_name(row.label)
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(row.filepath, folder / f"{row.image_id}_{Path(row.filepath).name}")
        out.mkdir(parents=True, exist_ok=True)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        frame.to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
    return out


def _safe_dir_name(label: str) -> str:
    """A class name usable as a folder name on every OS (``a/b`` -> ``a_b``)."""
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", label).strip(". ") or "_"
