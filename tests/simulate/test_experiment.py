from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from activelab.models import FitReport
from activelab.simulate import Experiment, SimDataset, SimulationConfig, from_arrays

from ..loop.test_round import fake_representation
from .conftest import tiny_config


def test_every_strategy_starts_from_the_same_initial_set(finished: Experiment) -> None:
    results = finished.results()
    assert set(results) == {"random", "margin", "coreset"}
    for seed in (0, 1):
        initials = {s: tuple(results[s][seed]["initial"]) for s in results}
        assert len(set(initials.values())) == 1, initials
        first_round = {s: results[s][seed]["rounds"][0]["accuracy"] for s in results}
        assert len(set(first_round.values())) == 1  # same labels, same seed -> same model
    assert results["random"][0]["initial"] != results["random"][1]["initial"]
    init = np.array(results["random"][0]["initial"])
    assert len(init) == 10 and len(np.unique(finished.dataset.y_pool[init])) == 10  # one per class


def test_every_round_is_recorded(finished: Experiment) -> None:
    for by_seed in finished.results().values():
        for run in by_seed.values():
            assert [r["n_labeled"] for r in run["rounds"]] == [10, 20, 30]
            assert [len(r["picked"]) for r in run["rounds"]] == [10, 10, 0]
            picks = [p for r in run["rounds"] for p in r["picked"]]
            assert len(set(picks) | set(run["initial"])) == 30  # never picks a labeled item
            assert all(0 <= r["accuracy"] <= 1 for r in run["rounds"])


def test_second_run_skips_finished_work(finished: Experiment) -> None:
    again = Experiment(finished.config, dataset=finished.dataset, progress=False)
    mtimes = {p: p.stat().st_mtime_ns for p in (finished.results_dir / "runs").glob("*.json")}
    again.run()
    assert again.ran == []
    assert sorted(again.skipped) == sorted(f"{s}__seed{k}" for s in ("random", "margin", "coreset") for k in (0, 1))
    assert {p: p.stat().st_mtime_ns for p in (finished.results_dir / "runs").glob("*.json")} == mtimes


def test_interrupted_run_resumes_at_the_last_round(tmp_path: Path, sim_cache: Path) -> None:
    cfg = tiny_config(tmp_path, sim_cache, strategies=["margin"], seeds=[0])
    full = Experiment(cfg, progress=False)
    run = full.run()["margin"][0]
    done = full.run_path("margin", 0)
    # pretend the process died after round 1: only the partial file of rounds 0-1 is left
    done.unlink()
    done.with_suffix(".partial.json").write_text(json.dumps({"rounds": run["rounds"][:2]}))
    resumed = Experiment(cfg, progress=False)
    calls: list[int] = []
    model = resumed.model
    original_fit = model.fit

    def counting_fit(*a: Any, **k: Any) -> Any:
        calls.append(1)
        return original_fit(*a, **k)

    model.fit = counting_fit  # type: ignore[method-assign]
    again = resumed.run()["margin"][0]
    assert len(calls) == 1  # only the last round was redone
    assert [r["picked"] for r in again["rounds"]] == [r["picked"] for r in run["rounds"]]
    assert again["rounds"][-1]["accuracy"] == pytest.approx(run["rounds"][-1]["accuracy"])
    assert not done.with_suffix(".partial.json").exists()


def test_reports_are_written(finished: Experiment) -> None:
    d = finished.results_dir
    for name in (
        "rounds.csv",
        "rounds.json",
        "summary.csv",
        "summary.json",
        "summary.md",
        "config.yaml",
        "environment.json",
    ):
        assert (d / name).stat().st_size > 0, name
    for name in ("learning_curves.png", "class_histogram.png", "tsne.png"):
        with Image.open(d / name) as im:
            assert im.size[0] > 200 and im.size[1] > 200
            assert np.asarray(im.convert("L")).std() > 5  # not a blank canvas
    table = pd.read_csv(d / "rounds.csv")
    assert len(table) == 3 * 2 * 3
    summary = {r["strategy"]: r for r in json.loads((d / "summary.json").read_text())}
    assert summary["random"]["auc_ratio"] == pytest.approx(1.0)
    env = json.loads((d / "environment.json").read_text())
    assert "numpy" in env["versions"] and env["cpu"]
    assert list((Path(finished.config.tensorboard or "") / "margin__seed0").glob("events.out.tfevents.*"))


# --------------------------------------------------------------------------- a separable toy problem
class PixelLogReg:
    """A model adapter whose features are an image's two pixel values (a toy, for speed)."""

    name = "pixel_logreg"
    supports = frozenset({"probs", "embeddings"})
    path = "fast"

    def __init__(self, classes: list[str]) -> None:
        self.classes = classes
        self.config = {"name": self.name}
        self._clf: Any = None

    @staticmethod
    def _x(paths: Sequence[str]) -> np.ndarray:
        return np.array([np.asarray(Image.open(p), dtype=np.float64).ravel() / 255.0 for p in paths])

    def fit(
        self,
        paths: Sequence[str],
        labels: Sequence[int],
        *,
        keys: Any = None,
        seed: int = 0,
        progress: bool = False,
    ) -> None:
        from sklearn.linear_model import LogisticRegression

        self._clf = LogisticRegression(C=100.0).fit(self._x(paths), labels)

    def predict_proba(self, paths: Sequence[str], *, keys: Any = None, progress: bool = False) -> np.ndarray:
        return self._clf.predict_proba(self._x(paths))

    def embed(self, paths: Sequence[str], *, keys: Any = None, progress: bool = False) -> np.ndarray:
        return self._x(paths)


def test_uncertainty_beats_random_on_a_separable_toy_set(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    pts = rng.integers(0, 256, size=(700, 1, 2)).astype(np.uint8)  # 1x2-pixel images
    y = (pts[:, 0, 0].astype(int) + pts[:, 0, 1] > 255).astype(np.int64)  # a diagonal boundary
    ds: SimDataset = from_arrays("toy", pts[:500], y[:500], pts[500:], y[500:], ["low", "high"], tmp_path / "img")
    cfg = SimulationConfig(
        dataset="toy",
        strategies=["random", "margin"],
        initial_size=4,
        batch_size=2,
        budget=14,
        seeds=list(range(6)),
        output=str(tmp_path / "out"),
        targets=[0.97],
    )
    exp = Experiment(cfg, dataset=ds, model_factory=PixelLogReg, progress=False)
    exp.run()
    rows = {r["strategy"]: r for r in exp.summary()}
    assert rows["margin"]["final_accuracy"] > rows["random"]["final_accuracy"] + 0.01
    assert rows["margin"]["auc"] > rows["random"]["auc"]


def test_pool_subset_scores_the_labeled_set_plus_a_random_draw(tmp_path: Path, sim_cache: Path) -> None:
    cfg = tiny_config(tmp_path, sim_cache, pool_subset=25, strategies=["margin", "coreset"], seeds=[0])
    assert cfg.config_hash() != tiny_config(tmp_path, sim_cache).config_hash()
    assert "pool_subset" not in tiny_config(tmp_path, sim_cache).result_fields()
    exp = Experiment(cfg, progress=False)
    labeled = np.zeros(120, dtype=bool)
    labeled[[3, 7]] = True
    view = exp._candidates(labeled, seed=0, r=1)
    assert len(view) == 27 and {3, 7} <= set(view.tolist())
    assert np.array_equal(view, np.unique(view))
    assert np.array_equal(view, exp._candidates(labeled, seed=0, r=1))
    assert not np.array_equal(view, exp._candidates(labeled, seed=0, r=2))

    exp.run()
    for strategy in cfg.strategies:
        run = exp.results()[strategy][0]
        mask = np.zeros(120, dtype=bool)
        mask[run["initial"]] = True
        for rec in run["rounds"][:-1]:
            drawn = set(exp._candidates(mask, 0, rec["round"]).tolist()) - set(np.flatnonzero(mask).tolist())
            assert len(rec["picked"]) == 10 and set(rec["picked"]) <= drawn
            mask[rec["picked"]] = True


class SemiPixelLogReg(PixelLogReg):
    """PixelLogReg with a ``semi_supervised`` option: records the unlabeled images each fit was given."""

    def __init__(self, classes: list[str]) -> None:
        super().__init__(classes)
        self.config = {"name": self.name, "options": {"semi_supervised": "self_training"}}
        self.unlabeled: list[list[str]] = []

    def fit(self, paths: Sequence[str], labels: Sequence[int], **kwargs: Any) -> FitReport:  # type: ignore[override]
        self.unlabeled.append(list(kwargs.pop("unlabeled")))
        super().fit(paths, labels)
        return FitReport(len(paths), 0, 1, 1, 0.0, None, None, 0.0, "cpu", n_unlabeled=len(self.unlabeled[-1]),
                         semi_supervised="self_training")  # fmt: skip


def toy_set(folder: Path) -> SimDataset:
    rng = np.random.default_rng(0)
    pts = rng.integers(0, 256, size=(60, 1, 2)).astype(np.uint8)
    y = (pts[:, 0, 0].astype(int) + pts[:, 0, 1] > 255).astype(np.int64)
    return from_arrays("toy", pts[:40], y[:40], pts[40:], y[40:], ["low", "high"], folder)


def test_a_semi_supervised_simulation_fits_on_the_unlabeled_pool_every_round_never_on_eval(tmp_path: Path) -> None:
    ds = toy_set(tmp_path / "img")
    cfg = SimulationConfig(
        dataset="toy", strategies=["margin"], initial_size=4, k=3, budget=10, seeds=[0],
        output=str(tmp_path / "out"), semi_supervised="self_training",
    )  # fmt: skip
    models: list[SemiPixelLogReg] = []

    def factory(classes: list[str]) -> SemiPixelLogReg:
        models.append(SemiPixelLogReg(classes))
        return models[-1]

    exp = Experiment(cfg, dataset=ds, model_factory=factory, progress=False)
    (run,) = exp.run()["margin"].values()
    assert [r["n_unlabeled"] for r in run["rounds"]] == [36, 33, 30]  # the last round (no selection) too
    assert {r["semi_supervised"] for r in run["rounds"]} == {"self_training"}
    given = {p for batch in models[-1].unlabeled for p in batch}
    assert given <= set(ds.pool_paths) and not given & set(ds.eval_paths)
    paths = exp.report(plots=False, tsne=False)
    assert pd.read_csv(paths["rounds_csv"])["n_unlabeled"].tolist() == [36, 33, 30]
    assert "Semi-supervised (self_training): the models also trained on up to 36 unlabeled pool images" in (
        paths["summary_md"].read_text()
    )


def test_representation_auto_builds_each_round_from_the_candidate_in_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared = fake_representation(monkeypatch, ("pixels", 2))
    ds = toy_set(tmp_path / "img")
    cfg = SimulationConfig(
        dataset="toy", strategies=["random"], initial_size=4, k=2, budget=10, seeds=[0],
        output=str(tmp_path / "out"), representation="auto",
    )  # fmt: skip
    exp = Experiment(cfg, dataset=ds, progress=False)
    built: list[tuple[str, int | None]] = []

    def build(settings: Any, image_size: int | None) -> PixelLogReg:
        built.append((settings.name, image_size))
        model = PixelLogReg(ds.classes)
        model.mode = "frozen"  # type: ignore[attr-defined]  # one model for every run, as the frozen mode's
        return model

    monkeypatch.setattr(exp, "_settings_model", build)
    (run,) = exp.run()["random"].values()
    assert compared == [4, 8]  # 2 per class first, then when the labels have doubled
    assert [r["representation"] for r in run["rounds"]] == ["pixels@2"] * 4
    assert [r["representation_choice"]["chosen_now"] for r in run["rounds"]] == [True, False, True, False]
    assert built == [(cfg.model, None), ("pixels", 2)]  # the configured model (initial set), then one per candidate
    assert (
        "representation" in cfg.result_fields()
        and cfg.config_hash() != cfg.model_copy(update={"representation": "fixed"}).config_hash()
    )
