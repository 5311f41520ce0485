"""``activelab errors PROJECT``: rank the labels most likely wrong (out-of-fold + cleanlab).

A detection project gets its suspicious boxes instead: missing, wrong class, badly placed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from activelab.cli.output import (
    console,
    friendly_errors,
    print_json,
    result_table,
    status_line,
)

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).", show_default=False)]
MAX_DISTANCE_DEFAULT = 0.02  # activelab.label_errors.rank.DEFAULT_DUPLICATE_DISTANCE, not imported: it loads torch


def register(app: typer.Typer) -> None:
    """Add the ``errors`` command to ``app``."""
    app.command("errors")(friendly_errors(errors))


def errors(
    project: ProjectArg,
    top: Annotated[int, typer.Option("--top", min=0, help="How many of the most suspicious labels to print.")] = 20,
    folds: Annotated[
        int | None,
        typer.Option("--folds", min=2, help="K of the K-fold out-of-fold predictions (default: 5; 3 for detection)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            help="Folder for ranking.csv, near_duplicates.csv (detection: findings.csv/.json), swaps.png "
            "(default: PROJECT/reports/errors).",
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the folds and the model (default: train.seed).")] = None,
    max_distance: Annotated[
        float, typer.Option("--max-distance", help="Cosine distance under which images count as near-duplicates.")
    ] = MAX_DISTANCE_DEFAULT,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare", help="Also train on the original vs the current labels and report eval accuracy of each."
        ),
    ] = False,
    refresh: Annotated[bool, typer.Option(help="Recompute out-of-fold predictions even if cached.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (nothing else).")] = False,
) -> None:
    """Rank labeled images by how likely their label is wrong; write the full ranking and a swap plot."""
    from activelab.label_errors import compare_before_after, label_error_report
    from activelab.loop.project import open_project

    with open_project(project) as proj:
        report = label_error_report(
            proj, out_dir=out, folds=folds, seed=seed, max_distance=max_distance, refresh=refresh, progress=True
        )
        ba = None
        if compare:
            with status_line("training on the original and on the current labels"):
                ba = compare_before_after(proj, seed=seed)
    ranking, summary = report.ranking, report.summary
    if report.findings is not None:
        _print_box_report(report, top, as_json, ba)
        return
    if as_json:
        print_json(
            {
                "summary": summary,
                "top": _top_rows(ranking, top),
                "near_duplicates": report.duplicates.head(top).to_dict(orient="records"),
                "files": {kind: str(path) for kind, path in report.files.items()},
                "compare": None if ba is None else {**vars(ba), "delta": ba.delta},
            }
        )
        return
    cached = " (out-of-fold predictions from cache)" if summary["oof_from_cache"] else ""
    console.print(
        f"{summary['n_labeled']} labels ranked, {summary['n_issues']} flagged as likely wrong, "
        f"{summary['n_near_duplicate_conflicts']} near-duplicate pairs with different labels"
        f"{cached}",
        highlight=False,
    )
    if top:
        console.print(_ranking_table(ranking.head(top), len(ranking), int(summary["n_issues"])))
    if len(report.duplicates):
        rows = [
            [str(r.image_id_a), str(r.label_a), str(r.image_id_b), str(r.label_b), f"{r.distance:.4f}"]
            for r in report.duplicates.head(min(top, 10) or 10).itertuples(index=False)
        ]
        console.print(
            result_table(
                "near-duplicates with different labels (closest first)",
                [("image", "right"), ("label", "left"), ("image", "right"), ("label", "left"), ("distance", "right")],
                rows,
            )
        )
    for kind, path in report.files.items():
        console.print(f"{kind}: {path}", highlight=False, soft_wrap=True)
    if ba is not None:
        _print_compare(ba)


def _print_compare(ba: Any) -> None:
    console.print(
        f"eval {ba.metric} with original labels {ba.accuracy_before:.3f} ({ba.n_train_before} train), "
        f"with current labels {ba.accuracy_after:.3f} ({ba.n_train_after} train): "
        f"{ba.delta:+.3f}; {ba.n_changed} labels changed, {ba.n_removed} removed by review, "
        f"{ba.n_eval} eval images",
        highlight=False,
    )


def _print_box_report(report: Any, top: int, as_json: bool, ba: Any) -> None:
    """A detection project's report: the suspicious boxes, most likely wrong first."""
    findings, summary = report.findings, report.summary
    if as_json:
        import json

        print_json(
            {
                "summary": summary,
                "top": json.loads(findings.head(top).to_json(orient="records")),
                "files": {kind: str(path) for kind, path in report.files.items()},
                "compare": None if ba is None else ba.to_dict(),
            }
        )
        return
    by_issue = ", ".join(f"{n} {issue.replace('_', ' ')}" for issue, n in summary["findings_by_issue"].items())
    cached = " (out-of-fold detections from cache)" if summary["oof_from_cache"] else ""
    console.print(
        f"{summary['n_labeled']} labeled images ranked, {summary['n_issues']} flagged; "
        f"{summary['n_findings']} suspicious boxes: {by_issue}{cached}",
        highlight=False,
    )
    if top and len(findings):
        rows = [
            [str(r.rank), str(r.image_id), r.issue.replace("_", " "), format_score(float(r.score)), r.fix]
            for r in findings.head(top).itertuples(index=False)
        ]
        console.print(
            result_table(
                f"top {len(rows)} of {len(findings)} suspicious boxes, most likely wrong first",
                [("rank", "right"), ("image_id", "right"), ("issue", "left"), ("score", "right"), ("fix", "left")],
                rows,
                caption="score: cleanlab's per-box quality (lower = more likely wrong); review them with activelab serve",
            )
        )
    for kind, path in report.files.items():
        console.print(f"{kind}: {path}", highlight=False, soft_wrap=True)
    if ba is not None:
        _print_compare(ba)


def format_score(score: float) -> str:
    """Label-quality scores span many decades near 0: three significant digits, never a row of 0.000."""
    return f"{score:.3g}" if score >= 1e-3 or score == 0 else f"{score:.2e}"


def _top_rows(ranking: Any, top: int) -> list[dict[str, Any]]:
    cols = ["rank", "image_id", "given_label", "suggested_label", "score", "is_issue", "filepath"]
    return list(ranking[cols].head(top).to_dict(orient="records"))


def _ranking_table(shown: Any, n_ranked: int, n_flagged: int) -> Any:
    """The most suspicious labels; a line separates those cleanlab flags from those it does not."""
    table = result_table(
        f"top {len(shown)} of {n_ranked} labels, most likely wrong first",
        [
            ("rank", "right"),
            ("image_id", "right"),
            ("given", "left"),
            ("suggested", "left"),
            ("score", "right"),
            ("flagged", "left"),
            ("file", "left"),
        ],
        [],
        caption=f"score: out-of-fold probability of the given label; {n_flagged} flagged "
        "(above the line) as likely wrong",
    )
    previous = True
    for row in shown.itertuples(index=False):
        if previous and not row.is_issue and table.row_count:
            table.add_section()
        previous = bool(row.is_issue)
        table.add_row(
            str(row.rank),
            str(row.image_id),
            str(row.given_label),
            str(row.suggested_label),
            format_score(float(row.score)),
            "yes" if row.is_issue else "",
            Path(str(row.filepath)).name,
        )
    return table
