"""A multi-label simulation on the bundled fashion-pairs set: the loop's round with the task's metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activelab.data.datasets import fetch_dataset
from activelab.exceptions import InputError
from activelab.simulate import Experiment, SimulationConfig, load_dataset
from activelab.tasks import get_task


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """60 pool and 30 eval fashion-pairs images (two sample items side by side, labeled 'a|b')."""
    return fetch_dataset("fashion-pairs", tmp_path_factory.mktemp("pairs"), limit=60, eval_limit=30)


def config(pairs: Path, out: Path, cache: Path, **kw: object) -> SimulationConfig:
    base: dict[str, object] = {
        "task": "multilabel",
        "dataset": str(pairs),
        "strategies": ["random", "multilabel_uncertainty"],
        "initial": "balanced",
        "initial_size": 10,
        "k": 10,
        "budget": 30,
        "seeds": [0],
        "image_size": 32,
        "output": str(out),
        "cache_dir": str(cache),
        "threads": 1,
        "plots": False,
        "tsne": False,
    }
    return SimulationConfig.from_dict({**base, **kw})


def test_a_folder_reads_label_sets(pairs: Path, sim_cache: Path) -> None:
    ds = load_dataset(str(pairs), sim_cache / "images", task=get_task("multilabel"))
    assert ds.y_pool.shape == (60, len(ds.classes)) and ds.y_eval.shape == (30, len(ds.classes))
    assert set(np.unique(ds.y_pool)) == {0, 1} and (ds.y_pool.sum(axis=1) >= 1).all()
    assert (ds.y_pool.sum(axis=1) <= 2).all()  # two items side by side: one or two classes


def test_multilabel_simulation_records_f1_and_map_curves(pairs: Path, tmp_path: Path, sim_cache: Path) -> None:
    exp = Experiment(config(pairs, tmp_path / "out", sim_cache), progress=False)
    results = exp.run()
    assert set(results) == {"random", "multilabel_uncertainty"}
    ds = exp.dataset
    initial = exp.initial_set(0)
    for strategy, by_seed in results.items():
        rounds = by_seed[0]["rounds"]
        assert [r["n_labeled"] for r in rounds] == [10, 20, 30], strategy
        for r in rounds:
            assert {"micro_f1", "macro_f1", "map", "subset_accuracy", "accuracy"} <= set(r["metrics"])
            assert all(0.0 <= r["metrics"][key] <= 1.0 for key in ("micro_f1", "macro_f1", "map"))
        picked = [p for r in rounds for p in r["picked"]]
        assert len(picked) == 20 and len(set(picked) | set(initial.tolist())) == 30  # never a labeled image twice
        first = rounds[0]
        assert first["picked_classes"] == ds.y_pool[first["picked"]].sum(axis=0).tolist()
    # the same initial set and seed: both strategies' first models are the same
    assert results["random"][0]["rounds"][0]["metrics"] == results["multilabel_uncertainty"][0]["rounds"][0]["metrics"]
    for metric in ("accuracy", "micro_f1", "map"):
        rows = {row["strategy"]: row for row in exp.summary(metric)}
        assert set(rows) == {"random", "multilabel_uncertainty"}
        final = results["random"][0]["rounds"][-1]["metrics"][metric]  # one seed: the mean is its value
        assert rows["random"]["final_accuracy"] == pytest.approx(final)
    with pytest.raises(InputError, match="no metric 'top5'"):
        exp.summary("top5")
    # by default summaries and reports follow the task's headline metric, micro-F1 (accuracy is subset accuracy)
    assert exp.headline_metric == "micro_f1" and exp.summary() == exp.summary("micro_f1")
    paths = exp.report(plots=False, tsne=False)
    table = pd.read_csv(paths["rounds_csv"])
    assert table["micro_f1"].tolist() == [
        r["metrics"]["micro_f1"] for s in table["strategy"].unique() for r in results[s][0]["rounds"]
    ]
    assert "| final micro_f1 |" in paths["summary_md"].read_text()


def test_a_single_label_strategy_is_refused_before_any_round(pairs: Path, tmp_path: Path, sim_cache: Path) -> None:
    exp = Experiment(config(pairs, tmp_path / "out", sim_cache, strategies=["margin"]), progress=False)
    with pytest.raises(InputError, match="'multilabel' task does not provide"):
        exp.run()
    assert not list((exp.results_dir / "runs").glob("*.json"))
