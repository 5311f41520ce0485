"""The label-error report of a project: ranking CSV, near-duplicate conflicts CSV, swap plot.

``label_error_report(project, out_dir=...)`` writes into ``out_dir`` (default
``PROJECT/reports/errors/``):

- ``ranking.csv``: every labeled image, most likely wrong first (see ``find_label_issues``);
- ``near_duplicates.csv``: pairs of near-identical images with different labels;
- ``swaps.png``: a confusion-style matrix of the flagged images, given label (rows)
  vs suggested label (columns): which classes get mixed up;
- ``summary.json``: counts, settings, timings and versions, for reproducibility.

A project whose task outputs boxes (detection) gets, instead of the first three
(:mod:`activelab.label_errors.detection`): ``ranking.csv`` (every labeled image, most
likely mislabeled first, with its given boxes, the boxes with the fixes applied and the
findings as a note), ``findings.csv`` / ``findings.json`` (every suspicious box: missing,
wrong class or badly placed, with the model's box, scores and a fix) and ``swaps.png``
(given vs suggested class of the wrong-class findings).

The review queue of the web app reads ``ranking.csv`` (see :func:`ranking_path`).
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activelab._io import atomic_write_text
from activelab.label_errors.detection import (
    DEFAULT_BOX_FOLDS,
    ISSUE_TYPES,
    project_box_out_of_fold,
    rank_box_issues,
)
from activelab.label_errors.oof import DEFAULT_FOLDS, ModelFactory, project_out_of_fold
from activelab.label_errors.rank import (
    DEFAULT_DUPLICATE_DISTANCE,
    DUPLICATE_COLUMNS,
    find_near_duplicates,
    label_texts,
    rank_label_issues,
)
from activelab.loop.project import Project

REPORT_DIR = Path("reports") / "errors"
RANKING_FILE = "ranking.csv"
DUPLICATES_FILE = "near_duplicates.csv"
SWAPS_FILE = "swaps.png"
SUMMARY_FILE = "summary.json"
FINDINGS_FILE = "findings.csv"
FINDINGS_JSON = "findings.json"


def ranking_path(project_root: str | Path) -> Path:
    """Where ``activelab errors`` writes a project's latest ranking (read by the review queue)."""
    return Path(project_root) / REPORT_DIR / RANKING_FILE


@dataclass
class LabelErrorReport:
    """What :func:`label_error_report` computed and wrote."""

    ranking: pd.DataFrame
    duplicates: pd.DataFrame
    swaps: pd.DataFrame
    files: dict[str, Path] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    #: box projects: one row per suspicious box (missing, wrong class, badly placed), most likely wrong first
    findings: pd.DataFrame | None = None


def swap_matrix(ranking: pd.DataFrame, classes: Sequence[str], *, issues_only: bool = True) -> pd.DataFrame:
    """(C, C) counts of flagged images: rows = given label, columns = suggested label."""
    rows = ranking[ranking["is_issue"].astype(bool)] if issues_only else ranking
    m = pd.DataFrame(0, index=list(classes), columns=list(classes), dtype=np.int64)
    for (g, s), n in rows.groupby(["given_label", "suggested_label"]).size().items():
        if g in m.index and s in m.columns:
            m.loc[g, s] = int(n)
    m.index.name, m.columns.name = "given", "suggested"
    return m


def plot_swaps(matrix: pd.DataFrame, path: str | Path, *, title: str = "suspected label swaps") -> Path:
    """Draw ``swap_matrix`` as an annotated heat map PNG (matplotlib, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    c = len(matrix)
    fig = Figure(figsize=(max(4.0, 0.6 * c + 2.5), max(3.5, 0.55 * c + 2.0)), dpi=110)
    ax = fig.add_subplot(1, 1, 1)
    values = matrix.to_numpy()
    im = ax.imshow(values, cmap="Reds", vmin=0)
    ax.set_xticks(range(c), [str(x) for x in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(c), [str(x) for x in matrix.index])
    ax.set_xlabel("suggested label (out-of-fold model)")
    ax.set_ylabel("given label")
    ax.set_title(f"{title} ({int(values.sum())} flagged)")
    top = values.max() if values.size else 0
    for i in range(c):
        for j in range(c):
            if values[i, j]:
                ax.text(
                    j,
                    i,
                    str(int(values[i, j])),
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if values[i, j] > 0.6 * top else "black",
                )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def label_error_report(
    project: Project,
    *,
    out_dir: str | Path | None = None,
    folds: int | None = None,
    seed: int | None = None,
    split: str = "pool",
    model_factory: ModelFactory | None = None,
    method: str = "self_confidence",
    max_distance: float = DEFAULT_DUPLICATE_DISTANCE,
    refresh: bool = False,
    progress: bool = False,
) -> LabelErrorReport:
    """Rank a project's labels, find near-duplicate conflicts, write the files (module docstring).

    ``folds`` defaults to 5, or 3 for a box project (each fold trains a detector).
    """
    if project.task().output == "boxes":
        return box_error_report(
            project,
            out_dir=out_dir,
            folds=DEFAULT_BOX_FOLDS if folds is None else folds,
            seed=seed,
            split=split,
            model_factory=model_factory,
            refresh=refresh,
            progress=progress,
        )
    folds = DEFAULT_FOLDS if folds is None else folds
    t0 = time.perf_counter()
    oof = project_out_of_fold(
        project,
        folds=folds,
        seed=seed,
        split=split,
        model_factory=model_factory,
        refresh=refresh,
        with_embeddings=True,
        progress=progress,
    )
    ranking = rank_label_issues(
        oof.labels, oof.probs, classes=oof.classes, image_ids=oof.image_ids, filepaths=oof.paths, method=method
    )
    if oof.embeddings is not None:
        duplicates = find_near_duplicates(
            oof.embeddings,
            label_texts(oof.labels, oof.classes),
            image_ids=oof.image_ids,
            filepaths=oof.paths,
            max_distance=max_distance,
        )
    else:
        duplicates = pd.DataFrame(
            columns=["image_id_a", "image_id_b", "filepath_a", "filepath_b", "label_a", "label_b", "distance"]
        )
    swaps = swap_matrix(ranking, oof.classes)
    out = Path(out_dir) if out_dir is not None else project.root / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "ranking": out / RANKING_FILE,
        "near_duplicates": out / DUPLICATES_FILE,
        "swaps": out / SWAPS_FILE,
        "summary": out / SUMMARY_FILE,
    }
    _atomic_csv(ranking, files["ranking"])
    _atomic_csv(duplicates, files["near_duplicates"])
    plot_swaps(swaps, files["swaps"])
    import cleanlab

    summary = {
        "project": str(project.root),
        "split": split,
        "task": project.settings.task,
        "n_labeled": len(ranking),
        "n_issues": int(ranking["is_issue"].sum()),
        "n_near_duplicate_conflicts": len(duplicates),
        "folds": folds,
        "seed": project.settings.train.seed if seed is None else seed,
        "method": method,
        "max_distance": max_distance,
        "model": project.settings.model.model_dump() if model_factory is None else "custom model_factory",
        "oof_cache": str(oof.cache_path) if oof.cache_path else None,
        "oof_from_cache": oof.from_cache,
        "seconds": round(time.perf_counter() - t0, 2),
        "ranked_at": str(ranking["ranked_at"].iloc[0]) if len(ranking) else None,
        "versions": {"cleanlab": cleanlab.__version__, "python": platform.python_version()},
    }
    files["summary"].write_text(json.dumps(summary, indent=2), encoding="utf-8")
    return LabelErrorReport(ranking, duplicates, swaps, files, summary)


def box_error_report(
    project: Project,
    *,
    out_dir: str | Path | None = None,
    folds: int = DEFAULT_BOX_FOLDS,
    seed: int | None = None,
    split: str = "pool",
    model_factory: ModelFactory | None = None,
    refresh: bool = False,
    progress: bool = False,
) -> LabelErrorReport:
    """A box project's report: out-of-fold detections, cleanlab's image ranking and box findings (module docstring)."""
    t0 = time.perf_counter()
    oof = project_box_out_of_fold(
        project, folds=folds, seed=seed, split=split, model_factory=model_factory, refresh=refresh, progress=progress
    )
    issues = rank_box_issues(
        oof.targets,
        oof.outputs,
        classes=oof.classes,
        payloads=oof.payloads,
        image_ids=oof.image_ids,
        filepaths=oof.paths,
    )
    findings = issues.findings
    swapped = findings[findings["issue"] == "wrong_class"].dropna(subset=["suggested_class"])
    swaps = swap_matrix(
        pd.DataFrame({"given_label": swapped["given_class"], "suggested_label": swapped["suggested_class"]}),
        oof.classes,
        issues_only=False,
    )
    out = Path(out_dir) if out_dir is not None else project.root / REPORT_DIR
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "ranking": out / RANKING_FILE,
        "findings": out / FINDINGS_FILE,
        "findings_json": out / FINDINGS_JSON,
        "swaps": out / SWAPS_FILE,
        "summary": out / SUMMARY_FILE,
    }
    _atomic_csv(issues.ranking, files["ranking"])
    _atomic_csv(findings, files["findings"])
    atomic_write_text(files["findings_json"], findings.to_json(orient="records", indent=2))
    plot_swaps(swaps, files["swaps"], title="suspected class swaps")
    import cleanlab

    counts = findings["issue"].value_counts()
    summary = {
        "project": str(project.root),
        "split": split,
        "task": project.settings.task,
        "n_labeled": len(issues.ranking),
        "n_issues": int(issues.ranking["is_issue"].sum()),
        "n_findings": len(findings),
        "findings_by_issue": {issue: int(counts.get(issue, 0)) for issue in ISSUE_TYPES},
        "folds": folds,
        "seed": project.settings.train.seed if seed is None else seed,
        "method": "cleanlab.object_detection (ObjectLab)",
        "model": project.settings.model.model_dump() if model_factory is None else "custom model_factory",
        "oof_cache": str(oof.cache_path) if oof.cache_path else None,
        "oof_from_cache": oof.from_cache,
        "seconds": round(time.perf_counter() - t0, 2),
        "ranked_at": str(issues.ranking["ranked_at"].iloc[0]) if len(issues.ranking) else None,
        "versions": {"cleanlab": cleanlab.__version__, "python": platform.python_version()},
    }
    atomic_write_text(files["summary"], json.dumps(summary, indent=2))
    empty = pd.DataFrame(columns=DUPLICATE_COLUMNS)
    return LabelErrorReport(issues.ranking, empty, swaps, files, summary, findings)


def _atomic_csv(frame: pd.DataFrame, path: Path) -> None:
    atomic_write_text(path, frame.to_csv(index=False))
