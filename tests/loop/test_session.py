"""Rounds on the bundled real Fashion-MNIST sample and a tiny real multi-label set: learning, caching, crash
safety, queue, capability checks.

Every round runs the real packaged EfficientNet-Lite0 backbone; most tests share one embedding cache
(``shared_embeddings``), so each image is embedded once per test run and a round trains only its head.
``test_second_round_hits_the_embedding_cache`` and ``test_the_cold_start_strategy_is_a_setting`` keep a
project's own cache, end to end."""

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
from activelab.loop.embed import embedding_model
from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project, open_project
from activelab.loop.round import build_model
from activelab.loop.session import ActiveSession
from activelab.loop.settings import SETTINGS_FILE, load_settings, save_settings
from activelab.loop.stopping import StoppingRules
from activelab.models import ModelAdapter
from activelab.strategies import select

from .conftest import multilabel_project, share_embeddings
from .test_round import RecordingModel, fake_representation

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def make_project(root: Path, sample: Path, seed_per_class: int = 3) -> Project:
    """Pool of 200 real images, 20 per class (seed_per_class labeled per class), eval split of 100 labeled."""
    proj = init_project(root, CLASSES)
    proj.settings.model.image_size = 64  # 28 px images; 224 px costs 10x the CPU for little gain here
    save_settings(proj.settings, root / SETTINGS_FILE)
    pool, evals = (
        pd.read_csv(sample / f"{split}.csv")
        .assign(filepath=lambda f: [str(sample / p) for p in f.filepath])
        .groupby("label")
        .head(n)
        for split, n in (("pool", 20), ("eval", 10))
    )
    import_images(proj.store, pool.assign(label=None))
    import_images(proj.store, pool.groupby("label").head(seed_per_class))
    import_images(proj.store, evals, split="eval")
    return proj


@pytest.fixture
def project(tmp_path: Path, sample: Path, shared_embeddings: Path) -> Project:
    proj = share_embeddings(make_project(tmp_path / "p", sample), shared_embeddings)
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


def test_second_round_hits_the_embedding_cache(tmp_path: Path, sample: Path) -> None:
    project = make_project(tmp_path / "own", sample)  # its own cache: every image embedded here
    project.settings.model.representation = "fixed"  # no comparison embeds the labeled images first
    session = ActiveSession(project)
    first = session.run_round("entropy", 10)
    assert first.metrics["fit"]["cache_misses"] == 30
    images = {img.id: img for img in project.store.images()}
    truth = pd.read_csv(Path(images[first.selected[0]].path).parent.parent / "pool.csv")
    by_name = dict(zip(truth.filepath.map(lambda p: Path(p).name), truth.label))
    project.store.add_labels(
        [(iid, by_name[Path(images[iid].path).name]) for iid in first.selected], author="oracle", source="oracle"
    )
    second = session.run_round("entropy", 10)
    assert second.metrics["fit"]["cache_hits"] == 40 and second.metrics["fit"]["cache_misses"] == 0
    assert second.metrics["n_labeled"] == 40
    assert "agreement" in second.metrics
    assert project.store.current_labels()[first.selected[0]].round_number == 1
    project.close()


def test_unknown_strategy_and_too_few_labels(tmp_path: Path, sample: Path) -> None:
    proj = init_project(tmp_path / "q", CLASSES)
    import_images(proj.store, sample / "pool")
    session = ActiveSession(proj)
    with pytest.raises(InputError, match="unknown strategy"):
        session.run_round("magrin", 5)
    with pytest.raises(InputError, match="no labeled pool images.*typiclust"):
        session.run_round("margin", 5)
    assert proj.store.rounds() == []  # refused before anything was recorded
    proj.close()


KILLER = textwrap.dedent(
    """
    import os, sys
    from activelab.loop.project import open_project
    from activelab.loop.session import ActiveSession
    import activelab.loop.round as round_mod
    def die(*a, **k):
        os._exit(137)   # killed after training, before the round is recorded
    round_mod.select = die
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
    assert project.store.round_number() == 1


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


def fresh_project(root: Path, sample: Path, n: int = 100) -> Project:
    """A project as `init` + `import` leave it: the first ``n`` sample pool images, no label, no image size."""
    proj = init_project(root, CLASSES)
    pool = pd.read_csv(sample / "pool.csv").head(n)
    import_images(proj.store, pool.assign(filepath=[str(sample / p) for p in pool.filepath], label=None))
    return proj


@pytest.fixture
def fresh(tmp_path: Path, sample: Path, shared_embeddings: Path) -> Project:
    proj = share_embeddings(fresh_project(tmp_path / "fresh", sample), shared_embeddings)
    yield proj
    proj.close()


def sample_truth(sample: Path) -> dict[str, str]:
    """File name -> true class of the bundled pool images."""
    pool = pd.read_csv(sample / "pool.csv")
    return dict(zip(pool.filepath.map(lambda p: Path(p).name), pool.label))


def test_cold_start_round_selects_from_cached_embeddings_without_a_model(fresh: Project, sample: Path) -> None:
    result = ActiveSession(fresh).run_round("typiclust", 10)
    assert result.number == 1 and result.metrics["cold_start"] is True and result.scores == [None] * 10
    (rnd,) = fresh.store.rounds()
    assert (rnd.status, rnd.n_labeled, rnd.strategy) == ("done", 0, "typiclust")
    assert [iid for iid, _ in fresh.store.round_selection(1)] == result.selected
    assert not (fresh.root / "models").exists()  # no model trained, none written
    assert load_settings(fresh.root / SETTINGS_FILE).model.image_size == 64  # chosen for 28x28 images
    assert result.input_size is not None
    assert result.input_size.describe().startswith("input size 64 px (chosen from 28x28 images")
    # the embeddings came from the project's backbone through its embedding cache
    embedder = embedding_model(fresh)
    images = fresh.store.image_refs("pool")
    emb = embedder.embed([img.path for img in images], keys=[img.sha256 for img in images])
    assert embedder.forward_count == 0
    expected = select(
        "typiclust", 10, rng=np.random.default_rng([0, 1]), labeled=np.zeros(len(images), bool), embeddings=emb
    )
    assert result.selected == [images[int(p)].id for p in expected]
    paths = {img.id: img.path for img in images}
    truth = sample_truth(sample)
    assert len({truth[Path(paths[iid]).name] for iid in result.selected}) == 8  # 10 typical images, 8 of the 10 classes


def test_the_default_auto_strategy_runs_the_cold_start_strategy_until_a_model_can_train(fresh: Project) -> None:
    session = ActiveSession(fresh)
    assert fresh.settings.active_learner.strategy == "auto"
    cold = session.run_round(k=5)  # auto reads probs; with no labels its typicality phase is the cold start
    assert cold.metrics["cold_start"] is True and fresh.store.rounds()[-1].strategy == "typiclust"
    assert fresh.store.rounds()[-1].config["strategy"] == "typiclust" and len(set(cold.selected)) == 5


def test_strategy_needing_a_model_is_refused_naming_the_cold_start_ones(fresh: Project) -> None:
    session = ActiveSession(fresh)
    with pytest.raises(InputError) as err:
        session.run_round("margin", 5)
    message = str(err.value)
    assert "no labeled pool images yet" in message and "['probs']" in message
    assert "coreset, outlier, probcover, proximity, random, typiclust" in message
    first = fresh.store.image_refs("pool")[0].id
    fresh.store.add_label(first, "bag", author="ann")
    with pytest.raises(InputError, match="all 1 labeled pool images are labeled 'bag'"):
        session.run_round("entropy", 5)
    assert fresh.store.rounds() == []
    result = session.run_round("random", 5)  # one class cannot train a model; random needs none
    assert result.number == 1 and first not in result.selected and result.metrics["embedding_model"] is None


def test_three_refused_queries_then_a_real_one_is_round_1(fresh: Project, sample: Path) -> None:
    session = ActiveSession(fresh)
    with pytest.raises(InputError, match="no labeled pool images"):
        session.run_round("margin", 5)
    assert load_settings(fresh.root / SETTINGS_FILE).model.image_size is None  # nothing chosen either
    truth = sample_truth(sample)
    images = fresh.store.image_refs("pool")
    fresh.store.add_labels([(img.id, truth[Path(img.path).name]) for img in images[:12]], author="ann")
    with pytest.raises(InputError, match="unknown strategy 'magrin'"):
        session.run_round("magrin", 5)
    with pytest.raises(InputError, match="cannot provide \\['mc_probs'\\]"):
        session.run_round("bald", 5)
    assert fresh.store.rounds() == []
    result = session.run_round("margin", 5)
    assert result.number == 1 and [r.number for r in fresh.store.rounds()] == [1]
    assert result.metrics["n_labeled"] == 12 and "cold_start" not in result.metrics


def test_a_fresh_queue_is_the_cold_start_selection_computed_once(fresh: Project) -> None:
    fresh.settings.active_learner.k = 8
    session = ActiveSession(fresh)
    queue = session.queue()
    (rnd,) = fresh.store.rounds()
    assert (rnd.strategy, rnd.config["cold_start"], len(queue)) == ("typiclust", True, 8)
    assert queue == [iid for iid, _ in fresh.store.round_selection(1)]
    assert session.queue() == queue and len(fresh.store.rounds()) == 1  # done once
    fresh.store.add_label(queue[0], "bag", author="ann")
    assert session.queue() == queue[1:]
    assert session.curve() == []  # no model, no learning-curve point


def test_the_cold_start_strategy_is_a_setting(tmp_path: Path, sample: Path) -> None:
    with fresh_project(tmp_path / "p", sample, n=30) as proj:
        proj.settings.active_learner.cold_start_strategy = "random"
        proj.settings.active_learner.k = 5
        queue = ActiveSession(proj).queue()
        assert [r.strategy for r in proj.store.rounds()] == ["random"] and len(queue) == 5
        assert not (proj.cache_dir / "embeddings").exists()  # random reads no embeddings: nothing embedded


class CountingFits:
    """A model factory building the project's real model and counting the ``fit`` calls of what it built."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.fits = 0

    def __call__(self, classes: list[str]) -> ModelAdapter:
        session = ActiveSession(self.project)
        model = build_model(
            self.project.settings.model,
            classes,
            task=session.task,
            cache_dir=self.project.cache_dir / "embeddings",
            image_size=self.project.settings.model.image_size,
        )
        fit = model.fit

        def counted(*args: object, **kwargs: object) -> object:
            self.fits += 1
            return fit(*args, **kwargs)

        model.fit = counted  # type: ignore[method-assign]
        return model


def test_capability_check_refuses_before_training(project: Project) -> None:
    factory = CountingFits(project)
    session = ActiveSession(project, model_factory=factory)
    with pytest.raises(InputError) as err:
        session.run_round("bald", 5)  # mc_probs: the default logreg head has no dropout to sample
    message = str(err.value)
    assert "cannot provide ['mc_probs']" in message and "head: mlp" in message
    assert "strategies that work with it: " in message and "margin" in message and "bald," not in message
    assert factory.fits == 0 and project.store.rounds() == []
    result = session.run_round("margin", 5)
    assert factory.fits == 1 and len(result.selected) == 5


@pytest.fixture
def multilabel(tmp_path: Path, pairs: dict[str, list[tuple[str, list[str]]]], shared_embeddings: Path) -> Project:
    proj = share_embeddings(multilabel_project(tmp_path / "ml", pairs), shared_embeddings)
    yield proj
    proj.close()


def test_multilabel_round_selects_k_with_the_task_metrics(
    multilabel: Project, pairs: dict[str, list[tuple[str, list[str]]]]
) -> None:
    session = ActiveSession(multilabel)
    result = session.run_round("multilabel_uncertainty", 6)
    assert len(result.selected) == 6 and len(set(result.selected)) == 6
    assert not set(result.selected) & multilabel.store.labeled_image_ids()
    fit = result.metrics["fit"]
    assert result.metrics["n_labeled"] == 12 and fit["n_train"] + fit["n_val"] == 12
    ev = result.metrics["eval"]
    assert ev["n"] == 30
    assert {"micro_f1", "macro_f1", "map", "subset_accuracy", "accuracy"} <= set(ev)
    assert all(0.0 <= ev[key] <= 1.0 for key in ("micro_f1", "macro_f1", "map", "subset_accuracy"))
    # eval predictions are 0/1 rows over the classes, one per eval image, for round agreement
    rows = list(ev["eval_predictions"].values())
    assert len(rows) == 30 and {len(r) for r in rows} == {len(multilabel.store.class_names())}
    # mean probability of the side decided per class; a class tuned below 0.5 may be predicted on p < 0.5
    assert all(0.0 <= s <= 1.0 for s in result.scores) and len(set(result.scores)) > 1
    # the labeler's hints are predicted sets, recorded with the round
    hints = multilabel.store.latest_predictions(result.selected)
    assert sorted(hints) == sorted(result.selected)
    assert [round(hints[i][1], 6) for i in result.selected] == [round(s, 6) for s in result.scores]
    classes = set(multilabel.store.class_names())
    assert all(isinstance(h[0], list) and set(h[0]) <= classes and h[2] == 1 for h in hints.values())
    (rnd,) = multilabel.store.rounds()
    assert (rnd.status, rnd.n_labeled, rnd.config["task"]) == ("done", 12, "multilabel")
    assert session.queue() == result.selected
    # the oracle answers; the next round trains on 18 and compares its predictions with the last
    names = {Path(p).name: labels for p, labels in pairs["pool"]}
    paths = {img.id: Path(img.path).name for img in multilabel.store.image_refs("pool")}
    multilabel.store.add_annotations(
        [(iid, names[paths[iid]]) for iid in result.selected], author="oracle", source="oracle"
    )
    second = session.run_round("badge", 4)
    assert second.metrics["n_labeled"] == 18 and len(set(second.selected)) == 4
    assert not set(second.selected) & set(result.selected)
    assert -1.0 <= second.metrics["agreement"] <= 1.0


def test_multilabel_refuses_single_label_strategies_naming_what_works(multilabel: Project) -> None:
    factory = CountingFits(multilabel)
    with pytest.raises(InputError) as err:
        ActiveSession(multilabel, model_factory=factory).run_round("margin", 5)
    message = str(err.value)
    assert "reads ['probs'], which the 'multilabel' task does not provide" in message
    assert "cvirs" in message and "multilabel_uncertainty" in message and "entropy" not in message
    assert factory.fits == 0 and multilabel.store.rounds() == []


def test_train_scores_multilabel_eval_at_the_default_rule_like_rounds(multilabel: Project) -> None:
    from activelab.tasks.metrics import multilabel_metrics

    session = ActiveSession(multilabel)
    model, metrics = session.train()
    evals = session.labeled_set("eval")
    outputs = model.predict_proba(evals.paths, keys=evals.keys)
    at_half = multilabel_metrics(evals.y, outputs, multilabel.store.class_names(), np.full(outputs.shape[1], 0.5))
    assert metrics["eval"]["micro_f1"] == at_half["micro_f1"]
    assert metrics["eval"]["subset_accuracy"] == at_half["subset_accuracy"]


def test_a_semi_supervised_round_trains_on_the_unlabeled_pool_and_records_how_many(project: Project) -> None:
    models: list[RecordingModel] = []

    def factory(classes: list[str]) -> RecordingModel:
        models.append(RecordingModel(classes))
        return models[-1]

    session = ActiveSession(project, model_factory=factory)  # type: ignore[arg-type]
    result = session.run_round("margin", 5)
    assert result.metrics["semi_supervised"] == "label_spreading" and result.metrics["n_unlabeled"] == 170
    fitted = models[-1].fits[0]
    labeled = project.store.labeled_image_ids()
    pool = {img.id: img.path for img in project.store.images("pool")}
    assert fitted["unlabeled"] == [path for iid, path in pool.items() if iid not in labeled]
    assert not set(fitted["unlabeled"]) & {img.path for img in project.store.images("eval")}
    (rnd,) = project.store.rounds()
    assert (rnd.metrics or {})["n_unlabeled"] == 170
    _, metrics = session.train()  # `activelab train` fits the same way
    assert metrics["n_unlabeled"] == 170 and models[-1].fits[0]["unlabeled"] == fitted["unlabeled"]


def test_the_representation_is_chosen_at_the_rounds_the_rule_names_and_recorded(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    compared = fake_representation(monkeypatch, ("efficientnet_lite0", 64))
    project.settings.model.representation = "auto"
    first = ActiveSession(project).run_round("margin", 10)
    assert compared == [30]
    assert first.metrics["representation"]["label"] == "efficientnet_lite0@64"
    assert first.metrics["representation"]["chosen_now"] and first.metrics["seconds"]["representation"] >= 0
    project.store.add_labels([(iid, "bag") for iid in first.selected], author="oracle", source="oracle")
    second = ActiveSession(project).run_round("margin", 10)  # a new session reads the choice from the store
    assert compared == [30]  # 40 labels: not yet twice the 30 of the last choice
    assert second.metrics["representation"] == {
        "label": "efficientnet_lite0@64",
        "candidate": {"name": "efficientnet_lite0", "image_size": 64, "backbone_weights": None},
        "n_labels": 30,
        "chosen_now": False,
    }
