"""Enumerating what an import should read: folders, ImageFolder trees, tables.

Each source yields :class:`SourceItem` rows (a path and maybe a label) without
opening any image; checking the files is the importer's job. A label is what the
source says, unparsed: a cell's text (the project's task parses it, e.g. ``bag|shirt``
for multi-label) or, from a table with one 0/1 column per class, the classes marked.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from activelab.exceptions import InputError, NotFoundError

SOURCE_FORMATS = ("auto", "folder", "imagefolder", "table")
TABLE_SUFFIXES = {".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".pq": "parquet"}
#: cell values of a per-class column (``--class-columns``), case-insensitive, and what they mean
FLAG_VALUES = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


@dataclass(frozen=True)
class SourceItem:
    """One candidate image: ``path`` None when a table row had no path; ``row`` is the table row (1-based).

    ``label`` is a cell's or folder's text, or the tuple of classes a row marks in per-class columns.
    """

    path: Path | None
    label: str | tuple[str, ...] | None
    row: int | None
    raw_path: str


def _walk_files(root: Path) -> Iterator[Path]:
    """Every non-hidden regular file below ``root``, in a stable (sorted) order."""
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.is_file() or path.is_symlink():
            yield path


def folder_items(root: str | Path) -> Iterator[SourceItem]:
    """All files below ``root`` (recursive), unlabeled."""
    root = _existing_dir(root)
    for path in _walk_files(root):
        yield SourceItem(path, None, None, str(path))


def imagefolder_items(root: str | Path) -> Iterator[SourceItem]:
    """An ImageFolder tree: ``root/<class>/**/<image>``; the first folder level is the label."""
    root = _existing_dir(root)
    class_dirs = [p for p in sorted(root.iterdir()) if p.is_dir() and not p.name.startswith(".")]
    if not class_dirs:
        raise InputError(
            f"{root} has no class sub-folders; an ImageFolder tree looks like {root}/cat/1.jpg. "
            "For a flat folder of unlabeled images use --format folder."
        )
    for class_dir in class_dirs:
        for path in _walk_files(class_dir):
            yield SourceItem(path, class_dir.name, None, str(path))


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV, TSV or parquet table, with errors that name the file."""
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no table at {path}")
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise InputError(f"{path}: unknown table type {path.suffix!r}; use one of {sorted(TABLE_SUFFIXES)}")
    try:
        if kind == "parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, sep="\t" if kind == "tsv" else ",", dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas raises many types for malformed files
        raise InputError(f"cannot read {path} as {kind}: {exc}") from exc


def table_items(
    table: pd.DataFrame,
    *,
    path_col: str = "filepath",
    label_col: str | None = "label",
    class_cols: Sequence[str] | None = None,
    base_dir: str | Path | None = None,
    name: str = "the table",
) -> Iterator[SourceItem]:
    """Rows of a table with a file-path column and an optional label column, or one flag column per class.

    Relative paths are resolved against ``base_dir`` (the table's folder when it
    came from a file). The default ``label`` column may also be spelled ``labels``; when
    neither exists the import is unlabeled, while a named column must exist. ``class_cols``
    (instead of a label column) are per-class columns holding 0/1, true/false or
    yes/no: each row's label is the tuple of the classes it marks (possibly empty).
    """
    columns = [str(c) for c in table.columns]
    if path_col not in table.columns:
        raise InputError(
            f"{name} has no column {path_col!r} (columns: {columns}); name the file-path column with --path-col"
        )
    if class_cols is not None:
        yield from _class_column_items(table, path_col, list(class_cols), base_dir, name)
        return
    if label_col == "label" and "label" not in table.columns and "labels" in table.columns:
        label_col = "labels"  # multi-label tables (fashion-pairs) name the column for the sets they hold
    if label_col is not None and label_col not in table.columns:
        if label_col != "label":
            raise InputError(
                f"{name} has no column {label_col!r} (columns: {columns}); name the label column with --label-col"
            )
        label_col = None
    labels = table[label_col].tolist() if label_col is not None else [None] * len(table)
    base = _base(base_dir)
    for row, (raw, label) in enumerate(zip(table[path_col].tolist(), labels), start=1):
        path, raw_str = _row_path(raw, base)
        yield SourceItem(path, _clean_label(label), row, raw_str)


def _class_column_items(
    table: pd.DataFrame, path_col: str, class_cols: list[str], base_dir: str | Path | None, name: str
) -> Iterator[SourceItem]:
    """Rows whose label is the tuple of ``class_cols`` holding a true flag; a cell that is not a flag raises."""
    missing = [c for c in class_cols if c not in table.columns]
    if missing:
        raise InputError(
            f"{name} has no column(s) {missing} (columns: {[str(c) for c in table.columns]}); "
            "--class-columns names one 0/1 column per class"
        )
    if not class_cols:
        raise InputError("--class-columns names no column; give the per-class columns, e.g. --class-columns cat,dog")
    flags = {col: table[col].tolist() for col in class_cols}
    base = _base(base_dir)
    for row, raw in enumerate(table[path_col].tolist(), start=1):
        path, raw_str = _row_path(raw, base)
        marked = tuple(col for col in class_cols if _flag(flags[col][row - 1], name, row, col))
        yield SourceItem(path, marked, row, raw_str)


def _flag(value: object, name: str, row: int, col: str) -> bool:
    """A per-class cell as a bool (parquet may hold real booleans or numbers)."""
    if isinstance(value, bool | int | float) and value in (0, 1):
        return bool(value)
    flag = FLAG_VALUES.get(str(value).strip().lower())
    if flag is None:
        raise InputError(
            f"{name}, row {row}, column {col!r}: {value!r} is not a class flag; "
            f"use one of {', '.join(FLAG_VALUES)} (case does not matter)"
        )
    return flag


def _base(base_dir: str | Path | None) -> Path:
    """The folder relative table paths resolve against: ``base_dir``, else the working folder (read once per table)."""
    return Path(base_dir) if base_dir is not None else Path.cwd()


def _row_path(raw: object, base: Path) -> tuple[Path | None, str]:
    """A table cell's file path (a relative one under ``base``) and its text."""
    raw_str = "" if _is_blank(raw) else str(raw).strip()
    path = None if not raw_str else (Path(raw_str) if Path(raw_str).is_absolute() else base / raw_str)
    return path, raw_str


def _clean_label(value: object) -> str | tuple[str, ...] | None:
    """A label cell: stripped text, or the class names of a list/tuple cell (a DataFrame built in Python)."""
    if isinstance(value, list | tuple):
        return tuple(str(name).strip() for name in value)
    return None if _is_blank(value) else str(value).strip()


def _is_blank(value: object) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    return isinstance(value, str) and not value.strip()


def _existing_dir(root: str | Path) -> Path:
    root = Path(root)
    if not root.exists():
        raise NotFoundError(f"no folder at {root}")
    if not root.is_dir():
        raise InputError(f"{root} is a file; pass a folder, or a .csv/.parquet table")
    return root


def resolve_format(source: str | Path, fmt: str) -> str:
    """Turn ``auto`` into ``table`` for table files and ``folder`` for directories."""
    if fmt not in SOURCE_FORMATS:
        raise InputError(f"--format must be one of {SOURCE_FORMATS}, got {fmt!r}")
    if fmt != "auto":
        return fmt
    path = Path(source)
    if not path.exists():
        raise NotFoundError(f"no file or folder at {path}")
    if path.is_dir():
        return "folder"
    if path.suffix.lower() in TABLE_SUFFIXES:
        return "table"
    raise InputError(f"{path} is neither a folder nor a table ({', '.join(sorted(TABLE_SUFFIXES))})")
