"""A detection simulation on tiny fashion-scenes with the real default detector (a few training steps).

The scores of so short a training are near zero; what is checked is the plumbing: the
folder's boxes are read by the task, rounds record images and boxes and follow mAP, every
run starts from a fresh detector, and the reports plot mAP against images and boxes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from activelab._defaults import DEFAULT_DETECTION_MODEL
from activelab.cli.simulate import register
from activelab.data.datasets import fetch_dataset
from activelab.exceptions import ConfigError
from activelab.simulate import Experiment, SimulationConfig, load_dataset
from activelab.tasks import get_task


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 pool and 12 eval fashion-scenes at 64 px."""
    return fetch_dataset("fashion-scenes", tmp_path_factory.mktemp("scenes"), limit=24, eval_limit=12, size=64)


def config(scenes: Path, out: Path, cache: Path, **kw: object) -> SimulationConfig:
    base: dict[str, object] = {
        "task": "detection",
        "dataset": str(scenes),
        "strategies": ["random", "cald"],
        "initial": "random",
        "initial_size": 8,
        "k": 4,
        "budget": 12,
        "seeds": [0],
        "image_size": 64,
        "model_options": {"min_steps": 6, "epochs": 1},
        "output": str(out),
        "cache_dir": str(cache),
        "threads": 1,
        "tsne": False,
    }
    return SimulationConfig.from_dict({**base, **kw})


def _payload_sizes(scenes: Path) -> list[int]:
    return [len(json.loads(cell)) for cell in pd.read_csv(scenes / "answers.csv")["boxes"]]


def test_a_scenes_folder_reads_boxes_with_the_listed_classes(scenes: Path, sim_cache: Path) -> None:
    ds = load_dataset(str(scenes), sim_cache / "images", task=get_task("detection"))
    assert ds.classes == (scenes / "classes.txt").read_text().split("\n")[:-1]
    assert (ds.n_pool, ds.n_eval) == (24, 12)
    assert ds.y_pool.dtype == object
    assert [len(t["labels"]) for t in ds.y_pool] == _payload_sizes(scenes)
    first = json.loads(pd.read_csv(scenes / "answers.csv")["boxes"][0])[0]
    np.testing.assert_allclose(
        ds.y_pool[0]["boxes"][0], [first["x"], first["y"], first["x"] + first["w"], first["y"] + first["h"]], atol=0.01
    )


def test_the_default_model_and_strategies_follow_the_task(scenes: Path, tmp_path: Path) -> None:
    assert config(scenes, tmp_path, tmp_path).model == DEFAULT_DETECTION_MODEL
    assert config(scenes, tmp_path, tmp_path, model="fcos_small").model == "fcos_small"
    assert SimulationConfig.from_dict({"dataset": "digits"}).model == "efficientnet_lite0"
    # unset strategies: the defaults the task can feed (not entropy or margin) and its own default strategy
    assert SimulationConfig.from_dict({"task": "detection"}).strategies == ["random", "det_entropy"]
    assert SimulationConfig.from_dict({}).strategies == ["random", "entropy", "margin"]


def test_detection_simulation_records_map_images_and_boxes(scenes: Path, tmp_path: Path, sim_cache: Path) -> None:
    exp = Experiment(config(scenes, tmp_path / "out", sim_cache), progress=False)
    results = exp.run()
    sizes = np.array(_payload_sizes(scenes))
    initial = exp.initial_set(0)
    first_map = set()
    for strategy, by_seed in results.items():
        rounds = by_seed[0]["rounds"]
        assert [r["n_labeled"] for r in rounds] == [8, 12], strategy
        labeled = list(initial)
        for r in rounds:
            assert r["n_boxes"] == int(sizes[labeled].sum())  # the labeled images' ground-truth boxes
            assert {"map", "map_50", "map_75"} <= set(r["metrics"]) and "accuracy" not in r
            assert 0.0 <= r["metrics"]["map"] <= r["metrics"]["map_50"] <= 1.0
            assert sum(r["picked_classes"]) == int(sizes[r["picked"]].sum())  # boxes per class of the picks
            labeled += r["picked"]
        first_map.add(rounds[0]["metrics"]["map"])
    assert len(first_map) == 1  # each run trains a fresh detector from the same initial set
    assert exp.headline_metric == "map"
    rows = {row["strategy"]: row for row in exp.summary()}
    assert rows["cald"]["final_accuracy"] == results["cald"][0]["rounds"][-1]["metrics"]["map"]

    paths = exp.report(plots=True, tsne=True)
    table = pd.read_csv(paths["rounds_csv"])
    assert list(table.columns) == ["strategy", "seed", "round", "n_labeled", "n_boxes", "map", "n_picked", "seconds"]
    assert paths["learning_curves_boxes"].stat().st_size > 0 and paths["learning_curves"].stat().st_size > 0
    assert "tsne" not in paths  # no single class colours a scene
    assert "| final map |" in paths["summary_md"].read_text()


def test_a_box_budget_needs_rounds(scenes: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="with budget_unit boxes, k counts boxes per round.*set rounds"):
        config(scenes, tmp_path, tmp_path, budget_unit="boxes")
    cfg = config(scenes, tmp_path, tmp_path, budget_unit="boxes", rounds=3, k=7)
    assert (cfg.n_rounds, cfg.batch_for_round(3)) == (3, 7)  # budget (images) no longer cuts the rounds


def test_simulate_command_with_a_box_budget(scenes: Path, tmp_path: Path, sim_cache: Path) -> None:
    app = typer.Typer()
    register(app)
    app.command()(lambda: None)  # a second command keeps "simulate" a subcommand
    out = tmp_path / "out"
    args = ["simulate", "--task", "detection", "--dataset", str(scenes), "--strategy", "det_entropy"]
    args += ["--initial", "random", "--initial-size", "8", "-k", "5", "--budget-unit", "boxes", "--rounds", "1"]
    args += ["--seeds", "0", "--image-size", "64", "--out", str(out), "--no-plots", "--json", "--no-progress"]
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(f"model_options: {{min_steps: 6, epochs: 1}}\ncache_dir: {sim_cache}\nthreads: 1\n")
    result = CliRunner().invoke(app, [*args, "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    run = json.loads(next((Path(summary["results_dir"]) / "runs").glob("det_entropy__seed0.json")).read_text())
    picked = run["rounds"][0]["picked"]
    assert 1 <= len(picked) <= 5  # each picked image costs at least one of the 5 boxes
    assert summary["summary"][0]["strategy"] == "det_entropy"
