"""``activelab errors PROJECT``: rank the labels most likely wrong (out-of-fold + cleanlab)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from activelab.cli.output import console, friendly_errors
from activelab.errors import (
    DEFAULT_DUPLICATE_DISTANCE,
    compare_before_after,
    label_error_report,
)
from activelab.loop.project import open_project

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).")]


def register(app: typer.Typer) -> None:
    """Add the ``errors`` command to ``app``."""
    app.command("errors")(friendly_errors(errors))


def errors(
    project: ProjectArg,
    top: Annotated[int, typer.Option("--top", min=0, help="How many of the most suspicious labels to print.")] = 20,
    folds: Annotated[int, typer.Option("--folds", min=2, help="K of the K-fold out-of-fold predictions.")] = 5,
    out: Annotated[
        Path | None, typer.Option("--out", help="Folder for ranking.csv, near_duplicates.csv, swaps.png "
                                                   "(default: PROJECT/reports/errors).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the folds and the model (default: train.seed).")] = None,
    max_distance: Annotated[
        float, typer.Option("--max-distance", help="Cosine distance under which images count as near-duplicates.")
    ] = DEFAULT_DUPLICATE_DISTANCE,
    compare: Annotated[
        bool, typer.Option("--compare", help="Also train on the original vs the current labels and report eval "
                                             "accuracy of each.")
    ] = False,
    refresh: Annotated[bool, typer.Option(help="Recompute out-of-fold predictions even if cached.")] = False,
) -> None:
    """Rank labeled images by how likely their label is wrong; write the full ranking and a swap plot."""
    with open_project(project) as proj:
        console.print(f"out-of-fold predictions ({folds} folds) for the labeled pool images of {project} ...",
                      highlight=False)
        report = label_error_report(proj, out_dir=out, folds=folds, seed=seed, max_distance=max_distance,
                                    refresh=refresh, progress=True)
        ranking, summary = report.ranking, report.summary
        cached = " (out-of-fold predictions from cache)" if summary["oof_from_cache"] else ""
        console.print(f"{summary['n_labeled']} labels ranked, {summary['n_issues']} flagged as likely wrong, "
                      f"{summary['n_near_duplicate_conflicts']} near-duplicate pairs with different labels"
                      f"{cached}", highlight=False)
        if top:
            table = Table(title=f"top {min(top, len(ranking))} suspected label errors (lowest score first)")
            for col, justify in (("rank", "right"), ("image_id", "right"), ("given", "left"),
                                 ("suggested", "left"), ("score", "right"), ("flagged", "left"),
                                 ("file", "left")):
                table.add_column(col, justify=justify)  # type: ignore[arg-type]
            for row in ranking.head(top).itertuples(index=False):
                table.add_row(str(row.rank), str(row.image_id), str(row.given_label), str(row.suggested_label),
                              f"{row.score:.3f}", "yes" if row.is_issue else "", Path(str(row.filepath)).name)
            console.print(table)
        if len(report.duplicates):
            console.print("near-duplicates with different labels (closest first):")
            for row in report.duplicates.head(min(top, 10) or 10).itertuples(index=False):
                console.print(f"  {row.image_id_a} ({row.label_a}) ~ {row.image_id_b} ({row.label_b}): "
                              f"distance {row.distance:.4f}", highlight=False)
        for kind, path in report.files.items():
            console.print(f"{kind}: {path}", highlight=False)
        if compare:
            console.print("training on the original and on the current labels ...", highlight=False)
            ba = compare_before_after(proj, seed=seed)
            console.print(
                f"eval accuracy with original labels {ba.accuracy_before:.3f} ({ba.n_train_before} train), "
                f"with current labels {ba.accuracy_after:.3f} ({ba.n_train_after} train): "
                f"{ba.delta:+.3f}; {ba.n_changed} labels changed, {ba.n_removed} removed by review, "
                f"{ba.n_eval} eval images",
                highlight=False,
            )
