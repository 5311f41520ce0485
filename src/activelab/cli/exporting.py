"""Which format ``activelab export`` writes: the one OUT's extension names, unless ``--format`` says otherwise."""

from __future__ import annotations

from pathlib import Path

from activelab.exceptions import InputError

FORMAT_BY_SUFFIX = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
FOLDER_FORMAT = "imagefolder"


def export_format(out: Path, requested: str | None) -> str:
    """The format to write ``out`` in; refuses a ``--format`` that contradicts ``out``'s extension.

    A known table extension decides the format (``labels.parquet`` is parquet); a name
    without an extension is a folder (an ImageFolder tree unless ``--format`` names
    another folder format); any other extension needs ``--format``.
    """
    suffix = out.suffix.lower()
    implied = FORMAT_BY_SUFFIX.get(suffix)
    if requested is None:
        if implied is not None:
            return implied
        if not suffix:
            return FOLDER_FORMAT
        raise InputError(f"cannot tell the export format from {out.name!r}: name it .csv or .parquet, or pass --format")
    if implied is not None and requested != implied:
        raise InputError(
            f"--format {requested} contradicts the extension of {out.name!r}, which means "
            f"{implied}: drop --format or rename the output"
        )
    return requested
