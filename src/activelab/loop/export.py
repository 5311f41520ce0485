"""Exporting the current labels as a table or an ImageFolder tree.

CSV cells that a spreadsheet would run as a formula are neutralised; parquet
keeps the values raw. ImageFolder trees get one folder per class, with a
``classes.csv`` mapping each folder back to its exact class name.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd

from activelab.exceptions import InputError
from activelab.store import Store

EXPORT_FORMATS = ("csv", "parquet", "imagefolder")
EXPORT_COLUMNS = ["image_id", "filepath", "label", "split", "source", "author", "labeled_at", "round", "sha256"]
#: A spreadsheet runs a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CLASS_MAP_FILE = "classes.csv"


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

    ``csv``/``parquet`` write one table; in CSV, text cells that start like a
    formula get a leading ``'``. ``imagefolder`` copies each labeled image to
    ``out/train/<folder>/`` (and ``out/eval/<folder>/`` with ``include_eval``),
    named ``<image id>_<original name>`` so names never clash; each class gets
    its own folder and ``out/classes.csv`` maps ``folder`` to ``class``.
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"--format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    frame = labels_frame(store, include_eval=include_eval)
    out = Path(out)
    if fmt == "imagefolder":
        if out.exists() and any(out.iterdir()):
            raise InputError(f"{out} is not empty; export an ImageFolder tree into a new folder")
        folders = class_folders(sorted(set(frame.label)))
        for row in frame.itertuples(index=False):
            folder = out / ("eval" if row.split == "eval" else "train") / folders[row.label]
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(row.filepath, folder / f"{row.image_id}_{Path(row.filepath).name}")
        out.mkdir(parents=True, exist_ok=True)
        mapping = pd.DataFrame({"folder": list(folders.values()), "class": list(folders.keys())})
        neutralise_formulas(mapping).to_csv(out / CLASS_MAP_FILE, index=False)
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        neutralise_formulas(frame).to_csv(out, index=False)
    else:
        frame.to_parquet(out, index=False)
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
