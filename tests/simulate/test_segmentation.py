"""Segmentation simulations: the oracle answers asked pixels only, and a short run records mIoU and labeled pixels.

The oracle is checked on hand-made 4x4 masks; the end-to-end run trains the real default
segmenter (``unet_small``) for a few steps on 8 tiny fashion-scenes, so its mIoU is low: what is
checked is the plumbing (mask tables read, pixels counted, region and image strategies answered,
reports on pixels).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from activelab.cli.simulate import register
from activelab.data.scenes import SEGMENTATION_TABLES, write_scenes
from activelab.exceptions import ConfigError
from activelab.models import list_models
from activelab.simulate import Experiment, SimulationConfig, load_dataset
from activelab.simulate.oracle import Oracle
from activelab.tasks import get_task
from activelab.tasks.masks import IGNORE, read_mask


def _objects(*masks: np.ndarray) -> np.ndarray:
    out = np.empty(len(masks), dtype=object)
    out[:] = list(masks)
    return out


def test_the_oracle_reveals_only_the_asked_pixels_and_keeps_them_across_rounds() -> None:
    truth = _objects(np.array([[0, 1], [2, 1]], np.uint8), np.array([[1, 1], [1, 0]], np.uint8))
    oracle = Oracle(truth)
    assert oracle.masks and oracle.n_pixels == 0 and oracle.targets.tolist() == [None, None]
    left = np.array([[True, False], [True, False]])
    assert oracle.answer(np.array([0]), {0: left}, n_classes=3) == [1, 0, 1]  # a 0 and a 2 revealed
    assert oracle.targets[0].tolist() == [[0, IGNORE], [2, IGNORE]] and oracle.targets[1] is None
    assert oracle.labeled.tolist() == [True, False] and oracle.exclude.tolist() == [False, False]
    # asked again for the whole image: only the two new pixels count; an image strategy's answer is the whole mask
    assert oracle.answer(np.array([0, 1]), {0: np.ones((2, 2), bool)}, n_classes=3) == [1, 5, 0]  # 2 + 3 ones
    assert oracle.targets[0].tolist() == [[0, 1], [2, 1]] and oracle.targets[1].tolist() == [[1, 1], [1, 0]]
    assert oracle.n_pixels == 8 and oracle.exclude.tolist() == [True, True]
    again = Oracle(truth)
    again.restore(Oracle(truth).state())  # nothing answered: nothing restored
    assert again.n_pixels == 0
    partial = Oracle(truth)
    partial.answer(np.array([1]), {1: left}, n_classes=3)
    restored = Oracle(truth)
    restored.restore(partial.state())
    assert restored.targets[1].tolist() == [[1, IGNORE], [1, IGNORE]] and restored.labeled.tolist() == [False, True]


def test_class_targets_are_answered_whole() -> None:
    oracle = Oracle(np.array([2, 0, 1]))
    assert oracle.answer(np.array([1])) == [] and oracle.exclude is None
    assert oracle.labeled.tolist() == [False, True, False] and oracle.targets.tolist() == [2, 0, 1]


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 pool and 4 eval fashion-scenes at 64 px with their mask tables."""
    return write_scenes(tmp_path_factory.mktemp("scenes"), n_pool=8, n_eval=4, size=64)


def test_a_scenes_folder_reads_the_mask_tables(scenes: Path, sim_cache: Path) -> None:
    ds = load_dataset(str(scenes), sim_cache / "images", task=get_task("segmentation"))
    listed = (scenes / SEGMENTATION_TABLES["classes"]).read_text().split()
    assert ds.classes == listed and ds.classes[0] == "background"
    assert (ds.n_pool, ds.n_eval) == (8, 4) and ds.y_pool.dtype == object
    table = pd.read_csv(scenes / SEGMENTATION_TABLES["answers"])
    np.testing.assert_array_equal(ds.y_pool[3], read_mask(scenes / table["mask"][3]))
    assert ds.pool_paths[3] == str(scenes / table["image"][3])


def test_the_fashion_scenes_name_generates_the_set_once_at_the_limits(tmp_path: Path) -> None:
    ds = load_dataset("fashion-scenes", tmp_path / "images", pool_limit=5, eval_limit=3, task=get_task("segmentation"))
    folder = tmp_path / "fashion-scenes-5-3"
    assert (ds.n_pool, ds.n_eval) == (5, 3) and ds.name == str(folder) and ds.y_pool[0].shape == (128, 128)
    written = (folder / SEGMENTATION_TABLES["answers"]).stat().st_mtime_ns
    again = load_dataset("fashion-scenes", tmp_path / "images", pool_limit=5, eval_limit=3, task=get_task("detection"))
    assert again.n_pool == 5 and again.y_pool[0].keys() == {"boxes", "labels"}  # the same folder's box tables
    assert (folder / SEGMENTATION_TABLES["answers"]).stat().st_mtime_ns == written
    assert [p.name for p in tmp_path.iterdir()] == ["fashion-scenes-5-3"]  # no temporary folder left


def config(scenes: Path, out: Path, cache: Path, **kw: object) -> SimulationConfig:
    base: dict[str, object] = {
        "task": "segmentation",
        "dataset": str(scenes),
        "strategies": ["random", "region_random"],
        "initial": "random",
        "initial_size": 2,
        "k": 2048,
        "budget_unit": "pixels",
        "rounds": 1,
        "seeds": [0],
        "region_method": "patch",
        "model_options": {"min_steps": 2, "epochs": 1, "batch_size": 2},
        "output": str(out),
        "cache_dir": str(cache),
        "threads": 1,
        "tsne": False,
        "targets": [0.05],
    }
    return SimulationConfig.from_dict({**base, **kw})


def test_a_pixel_budget_needs_rounds(scenes: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="with budget_unit pixels, k counts pixels per round.*set rounds"):
        config(scenes, tmp_path, tmp_path, rounds=None)
    cfg = config(scenes, tmp_path, tmp_path)
    assert cfg.model == get_task("segmentation").default_model and (cfg.n_rounds, cfg.batch_for_round(1)) == (1, 2048)
    assert cfg.config_hash() != config(scenes, tmp_path, tmp_path, region_method="slic").config_hash()


@pytest.mark.skipif("unet_small" not in list_models(), reason="the segmentation models are not registered yet")
def test_simulate_segmentation_records_miou_and_labeled_pixels(scenes: Path, tmp_path: Path, sim_cache: Path) -> None:
    """2 rounds each of random (whole 64x64 images: 2048 px fit none, so 4096 px) and region_random (16x16
    patches of 256 px: 8 of them), run through the command line."""
    app = typer.Typer()
    register(app)
    app.command()(lambda: None)  # a second command keeps "simulate" a subcommand
    cfg = tmp_path / "sim.yaml"
    cfg.write_text(config(scenes, tmp_path / "out", sim_cache, k=4096).to_yaml())
    result = CliRunner().invoke(app, ["simulate", "--config", str(cfg), "--no-progress", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    exp = Experiment(config(scenes, tmp_path / "out", sim_cache, k=4096), progress=False)
    assert exp.curve_x == "n_pixels" and exp.headline_metric == "miou"
    results = exp.results()
    initial = exp.initial_set(0)
    for strategy, per_image in (("random", 4096), ("region_random", 256)):
        rounds = results[strategy][0]["rounds"]
        assert [r["n_pixels"] for r in rounds] == [2 * 4096, 2 * 4096 + 4096]
        assert rounds[0]["n_labeled"] == 2 and {"miou", "pixel_accuracy"} <= set(rounds[0]["metrics"])
        assert 0.0 <= rounds[0]["metrics"]["miou"] <= 1.0 and len(rounds[0]["per_class_iou"]) == 11
        assert rounds[0]["budget_unit"] == "pixels" and sum(rounds[0]["picked_classes"]) == 4096
        assert not set(rounds[0]["picked"]) & set(initial.tolist())
        assert len(rounds[0]["picked"]) <= 4096 // per_image
    assert len(results["random"][0]["rounds"][0]["picked"]) == 1
    assert {row["strategy"] for row in summary["summary"]} == {"random", "region_random"}
    assert summary["summary"][0]["max_labels"] == 3 * 4096  # labels counted in pixels
    files = summary["files"]
    table = pd.read_csv(files["rounds_csv"])
    assert {"n_labeled", "n_pixels", "miou"} <= set(table.columns)
    assert Path(files["learning_curves_pixels"]).stat().st_size > 0
    assert "pixels to random's final" in Path(files["summary_md"]).read_text()


class _Stop(Exception):
    pass


class _StopAtRound1:
    """A tracker that interrupts the run while logging its second round (after the first was saved)."""

    def start_run(self, name: str, config: dict[str, object]) -> None: ...

    def log(self, metrics: dict[str, float], step: int) -> None:
        if step > 2:
            raise _Stop

    def end_run(self) -> None: ...


@pytest.mark.skipif("unet_small" not in list_models(), reason="the segmentation models are not registered yet")
def test_an_interrupted_region_run_resumes_with_the_pixels_it_had_revealed(
    scenes: Path, tmp_path: Path, sim_cache: Path
) -> None:
    cfg = config(scenes, tmp_path, sim_cache, strategies=["region_random"], k=1000)
    with pytest.raises(_Stop):
        Experiment(cfg, trackers=[_StopAtRound1()], progress=False).run()
    partial = tmp_path / cfg.results_dir().name / "runs" / "region_random__seed0.partial.json"
    assert partial.exists() and partial.with_suffix(".npz").exists()
    run = Experiment(cfg, progress=False).run()["region_random"][0]
    assert not partial.exists() and not partial.with_suffix(".npz").exists()
    first, second = run["rounds"]
    # 3 patches of 256 px fit in 1000: round 1 starts from the 2 initial images plus exactly those pixels
    assert (first["n_pixels"], second["n_pixels"]) == (2 * 4096, 2 * 4096 + 3 * 256)
    assert second["n_labeled"] == 2 + len(first["picked"])
