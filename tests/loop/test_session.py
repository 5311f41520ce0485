"""Rounds on the bundled real Fashion-MNIST sample: learning, caching, crash safety, queue."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activelab.exceptions import InputError
from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project, open_project
from activelab.loop.session import ActiveSession
from activelab.loop.settings import SETTINGS_FILE, save_settings
from activelab.loop.stopping import StoppingRules

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def make_project(root: Path, sample: Path, seed_per_class: int = 3) -> Project:
    """Pool of 500 real images (seed_per_class labeled per class), eval split of 200 labeled."""
    proj = init_project(root, CLASSES)
    proj.settings.model.image_size = 64  # 28 px images; 224 px costs 10x the CPU for little gain here
    save_settings(proj.settings, root / SETTINGS_FILE)
    pool = pd.read_csv(sample / "pool.csv").assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
    seed = pool.groupby("label").head(seed_per_class)
    import_images(proj.store, pool.assign(label=None))
    import_images(proj.store, seed)
    import_images(proj.store, sample / "eval.csv", split="eval")
    return proj


@pytest.fixture
def project(tmp_path: Path, sample: Path) -> Project:
    proj = make_project(tmp_path / "p", sample)
    yield proj
    proj.close()


def test_round_learns_records_and_queues(project: Project) -> None:
    session = ActiveSession(project)
    result = session.run_round("margin", 20)
    acc = result.metrics["eval"]["accuracy"]
    assert acc > 0.4, f"30 labels of real images should beat chance (0.1) clearly, got {acc}"
    assert len(result.selected) == 20 and len(set(result.selected)) == 20
    labeled = project.store.labeled_image_ids()
    assert not set(result.selected) & labeled
    (rnd,) = project.store.rounds()
    assert rnd.status == "done" and rnd.n_labeled == 30 and rnd.strategy == "margin"
    assert [iid for iid, _ in project.store.round_selection(1)] == result.selected
    assert session.queue() == result.selected
    # the labeler's hints for the selection are recorded with the round, in the same transaction
    hints = project.store.latest_predictions(result.selected)
    assert sorted(hints) == sorted(result.selected)
    assert [round(hints[i][1], 6) for i in result.selected] == [round(s, 6) for s in result.scores]
    assert {h[2] for h in hints.values()} == {1} and {h[0] for h in hints.values()} <= set(CLASSES)
    project.store.add_label(result.selected[0], "bag", author="ann")
    assert session.queue() == result.selected[1:]
    assert session.latest_model().classes == CLASSES


def test_second_round_hits_the_embedding_cache(project: Project) -> None:
    session = ActiveSession(project)
    first = session.run_round("entropy", 10)
    assert first.metrics["fit"]["cache_misses"] == 30
    images = {img.id: img for img in project.store.images()}
    truth = pd.read_csv(Path(images[first.selected[0]].path).parent.parent / "pool.csv")
    by_name = dict(zip(truth.filepath.map(lambda p: Path(p).name), truth.label))
    project.store.add_labels([(iid, by_name[Path(images[iid].path).name]) for iid in first.selected],
                             author="oracle", source="oracle")
    second = session.run_round("entropy", 10)
    assert second.metrics["fit"]["cache_hits"] == 40 and second.metrics["fit"]["cache_misses"] == 0
    assert second.metrics["n_labeled"] == 40
    assert "agreement" in second.metrics
    assert project.store.current_labels()[first.selected[0]].round_index == 1


def test_unknown_strategy_and_too_few_labels(tmp_path: Path, sample: Path) -> None:
    proj = init_project(tmp_path / "q", CLASSES)
    import_images(proj.store, sample / "pool")
    session = ActiveSession(proj)
    with pytest.raises(InputError, match="unknown strategy"):
        session.run_round("magrin", 5)
    with pytest.raises(InputError, match="no labeled pool images"):
        session.run_round("margin", 5)
    assert proj.store.rounds()[0].status == "failed"
    proj.close()


KILLER = textwrap.dedent(
    """
    import os, sys
    from activelab.loop.project import open_project
    from activelab.loop.session import ActiveSession
    import activelab.strategies as strategies_pkg
    import activelab.loop.session as session_mod
    def die(*a, **k):
        os._exit(137)   # killed after training, before the round is recorded
    session_mod.select = die
    ActiveSession(open_project(sys.argv[1])).run_round("margin", 5)
    """
)


def test_killed_round_leaves_nothing_half_written(project: Project) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", KILLER, str(project.root)], env=env)
    assert done.returncode == 137
    (rnd,) = project.store.rounds()
    assert rnd.status == "running" and project.store.round_selection(1) == []
    session = ActiveSession(open_project(project.root))
    result = session.run_round("margin", 5)
    assert [r.status for r in project.store.rounds()] == ["failed", "done"]
    assert result.number == 2 and len(project.store.round_selection(2)) == 5
    assert project.store.round_index() == 1


def test_stopping_rule_reads_the_recorded_curve(project: Project) -> None:
    session = ActiveSession(project)
    session.run_round("random", 5)
    assert session.stop_reason(StoppingRules(budget=30)) == "label budget reached: 30 >= 30"
    assert session.stop_reason(StoppingRules(budget=31)) is None
    acc = session.curve()[-1].accuracy
    assert acc is not None and 0 < acc <= 1


def test_strategy_needing_mc_samples_on_a_model_without_dropout(project: Project) -> None:
    with pytest.raises(InputError, match="cannot provide \\['mc_probs'\\].*head: mlp"):
        ActiveSession(project).run_round("bald", 5)


def test_mc_strategy_with_mlp_head(project: Project) -> None:
    project.settings.model.head = "mlp"
    result = ActiveSession(project).run_round("bald", 5)
    assert len(result.selected) == 5
    assert np.isfinite(result.metrics["eval"]["accuracy"])


def test_badge_round_uses_last_layer_features(project: Project) -> None:
    session = ActiveSession(project)
    result = session.run_round("badge", 8)
    assert len(set(result.selected)) == 8
    assert not set(result.selected) & project.store.labeled_image_ids()
