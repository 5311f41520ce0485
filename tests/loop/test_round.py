"""The loop's one round and model factory, on small real models and hand-made embeddings."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.loop.inputs import check_capabilities, cold_start_strategies
from activelab.loop.round import Images, Pool, build_model, model_settings, play_round
from activelab.loop.settings import ModelSettings, TrainSettings
from activelab.strategies import select
from activelab.tasks import get_task


class FixedEmbedder:
    """A frozen backbone stand-in: fixed embeddings per path (what a cold start reads)."""

    name = "fixed"

    def __init__(self, table: dict[str, np.ndarray]) -> None:
        self.table = table
        self.calls = 0

    def embed(self, paths: Sequence[str], *, keys: Sequence[str] | None = None, progress: bool = False) -> np.ndarray:
        self.calls += 1
        return np.stack([self.table[p] for p in paths])


def test_model_settings_fill_what_is_unset_from_the_model_table() -> None:
    cnn = model_settings("small_cnn")
    assert (cnn.mode, cnn.pretrained, cnn.head) == ("finetune", False, "logreg")
    lite = model_settings("efficientnet_lite0", head="mlp", device="cpu")
    assert (lite.mode, lite.pretrained, lite.head, lite.device) == ("frozen", True, "mlp", "cpu")


def test_build_model_passes_the_task_output_and_the_training_settings() -> None:
    settings = ModelSettings.model_validate({"name": "small_cnn", "mode": "finetune", "pretrained": False})
    train = TrainSettings.model_validate({"epochs": 2, "lr": 0.01, "batch_size": 8})
    model = build_model(
        settings, ["a", "b", "c"], task=get_task("multilabel"), cache_dir=None, image_size=28, train=train
    )
    assert model.classes == ["a", "b", "c"] and model.output == "sigmoid"
    assert (model.config["options"]["epochs"], model.config["options"]["lr"]) == (2, 0.01)
    single = build_model(settings, ["a", "b"], task=get_task("classification"), cache_dir=None, image_size=28)
    assert single.output == "softmax"


def test_cold_start_selects_from_the_embedder_without_a_model() -> None:
    rng = np.random.default_rng(3)
    paths = [f"img{i}.png" for i in range(40)]
    embedder = FixedEmbedder({p: rng.normal(size=4) for p in paths})
    labeled = np.zeros(40, dtype=bool)
    labeled[[0, 5]] = True
    targets = np.full((40, 3), -1)
    targets[[0, 5]] = [[1, 0, 1], [0, 1, 0]]
    pool = Pool(Images(paths), targets, labeled)
    outcome = play_round(
        get_task("multilabel"), None, pool, "typiclust", 6, classes=["a", "b", "c"], seed=7, embedder=embedder
    )
    expected = select(
        "typiclust",
        6,
        rng=np.random.default_rng(7),
        labeled=labeled,
        embeddings=np.stack([embedder.table[p] for p in paths]),
    )
    assert outcome.positions.tolist() == expected.tolist()
    assert outcome.model is None and outcome.fit is None and outcome.outputs is None and embedder.calls == 1
    assert not set(outcome.positions.tolist()) & {0, 5}


def test_a_cold_start_refuses_a_strategy_that_needs_a_model_before_any_work() -> None:
    embedder = FixedEmbedder({})
    pool = Pool(Images(["a.png"]), np.array([-1]), np.zeros(1, dtype=bool))
    with pytest.raises(InputError) as err:
        play_round(get_task("classification"), None, pool, "margin", 1, classes=["x", "y"], seed=0, embedder=embedder)
    assert str(err.value) == (
        "strategy 'margin' reads ['probs'], which needs a trained model; strategies that need none: "
        + ", ".join(cold_start_strategies())
    )
    assert embedder.calls == 0


def test_the_task_refuses_what_it_does_not_provide() -> None:
    with pytest.raises(InputError, match=r"'bald' reads \['mc_probs'\], which the 'multilabel' task does not provide"):
        check_capabilities(get_task("multilabel"), "bald", None, None)
    assert check_capabilities(get_task("multilabel"), "coreset", None, None) == {"embeddings"}
