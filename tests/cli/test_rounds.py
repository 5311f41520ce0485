"""``activelab query`` on a fresh project: a cold-start round, the chosen input size, no refused rounds."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from activelab.cli.main import app

runner = CliRunner()


def invoke(*args: object):  # type: ignore[no-untyped-def]
    return runner.invoke(app, [str(a) for a in args])


def test_query_on_a_fresh_project_runs_a_cold_start_round(tmp_path: Path, sample: Path) -> None:
    pool = pd.read_csv(sample / "pool.csv").head(40)
    table = tmp_path / "pool.csv"
    pool.assign(filepath=[str(sample / p) for p in pool.filepath]).drop(columns="label").to_csv(table, index=False)
    project = tmp_path / "p"
    assert invoke("init", project, "--classes", "a,b").exit_code == 0
    assert invoke("import", project, table).exit_code == 0
    refused = invoke("query", project, "--strategy", "margin", "-k", "5")
    assert refused.exit_code == 2 and "needs no model: cluster, coreset" in refused.output
    result = invoke("query", project, "--strategy", "typiclust", "-k", "5")
    assert result.exit_code == 0, result.output
    assert "input size 64 px (chosen from 28x28 images" in result.output
    assert (
        "round 1 (typiclust): cold start: no model trained on 0 labels; selected from efficientnet_lite0"
        in result.output
    )
    assert len(pd.read_csv(project / "rounds" / "round-0001-selection.csv")) == 5
    assert "input size 64 px (model.image_size)" in invoke("status", project).output
    embedded = invoke("embed", project, "--split", "pool")
    assert embedded.exit_code == 0, embedded.output
    assert "input size 64 px (model.image_size in activelab.yaml)" in embedded.output
    assert "40 images: 40 already cached" in embedded.output  # the cold-start round filled the same cache


def test_the_round_line_names_each_tasks_metrics() -> None:
    from activelab.cli.rounds import _metrics_line

    single = {"n_labeled": 50, "eval": {"n": 100, "accuracy": 0.81, "macro_f1": 0.8}}
    assert _metrics_line(single) == ("trained on 50 labels: eval accuracy 0.8100, macro-F1 0.8000 on 100 eval images")
    multi = {"n_labeled": 36, "eval": {"n": 60, "accuracy": 0.1, "micro_f1": 0.5, "macro_f1": 0.45, "map": 0.6}}
    assert _metrics_line(multi) == (
        "trained on 36 labels: micro-F1 0.5000, subset accuracy 0.1000, macro-F1 0.4500, mAP 0.6000 on 60 eval images"
    )


def test_the_round_line_says_when_the_model_used_unlabeled_images_and_which_representation() -> None:
    from activelab.cli.rounds import _metrics_line

    semi = {
        "n_labeled": 50,
        "eval": {"n": 100, "accuracy": 0.81, "macro_f1": 0.8},
        "semi_supervised": "label_spreading",
        "n_unlabeled": 1234,
        "representation": {"label": "pixels@28", "n_labels": 20, "chosen_now": False},
    }
    assert _metrics_line(semi) == (
        "trained on 50 labels: eval accuracy 0.8100, macro-F1 0.8000 on 100 eval images; "
        "semi-supervised (label_spreading): 1,234 unlabeled images; representation pixels@28 (chosen at 20 labels)"
    )
    fresh = {
        "n_labeled": 40,
        "semi_supervised": "none",
        "n_unlabeled": 0,
        "representation": {**semi["representation"], "chosen_now": True},
    }  # type: ignore[dict-item]
    assert _metrics_line(fresh) == (
        "trained on 40 labels; representation pixels@28 (chosen this round) (no labeled eval split: import one "
        "with --split eval)"
    )
