"""The loop's one round and model factory, on small real models and hand-made embeddings."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.loop.inputs import check_capabilities, cold_start_strategies
from activelab.loop.round import (
    EvalSet,
    Images,
    Pool,
    RepresentationState,
    backbone_weights_file,
    build_model,
    model_settings,
    play_round,
    rechoose_representation,
)
from activelab.loop.settings import (
    ModelSettings,
    Settings,
    TrainSettings,
    parse_settings,
    resolve_semi_supervised,
)
from activelab.models import FitReport
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
        + ", ".join(cold_start_strategies(get_task("classification")))
    )
    assert embedder.calls == 0


def test_the_task_refuses_what_it_does_not_provide() -> None:
    with pytest.raises(InputError, match=r"'bald' reads \['mc_probs'\], which the 'multilabel' task does not provide"):
        check_capabilities(get_task("multilabel"), "bald", None, None)
    assert check_capabilities(get_task("multilabel"), "coreset", None, None) == {"embeddings"}


# ------------------------------------------------------------ semi-supervised training and representation
class RecordingModel:
    """A stand-in adapter that records what ``fit`` got and predicts fixed probabilities (seeded by path)."""

    name = "recording"
    mode = "frozen"
    supports = frozenset({"probs", "embeddings"})

    def __init__(self, classes: list[str], semi_supervised: str = "label_spreading") -> None:
        self.classes = classes
        self.semi = semi_supervised
        self.fits: list[dict[str, object]] = []

    @property
    def config(self) -> dict[str, object]:
        return {"name": self.name, "mode": self.mode, "options": {"semi_supervised": self.semi}}

    def fit(self, paths, labels, *, keys=None, seed=0, progress=False, **unlabeled):  # type: ignore[no-untyped-def]
        self.fits.append({"paths": list(paths), "labels": np.asarray(labels).tolist(), **unlabeled})
        used = len(unlabeled.get("unlabeled") or [])
        return FitReport(len(paths), 0, 1, 1, 0.0, None, None, 0.0, "cpu", n_unlabeled=used, semi_supervised=self.semi)

    def predict_proba(self, paths, *, keys=None, progress=False):  # type: ignore[no-untyped-def]
        rows = [np.random.default_rng(sum(map(ord, str(p)))).dirichlet(np.ones(len(self.classes))) for p in paths]
        return np.array(rows)

    def embed(self, paths, *, keys=None, progress=False):  # type: ignore[no-untyped-def]
        return self.predict_proba(paths)

    def save(self, path: Path) -> None:
        Path(path).mkdir(parents=True, exist_ok=True)


def test_resolve_semi_supervised_maps_auto_per_mode_and_refuses_what_a_mode_cannot_run() -> None:
    assert resolve_semi_supervised("auto", "frozen") == "self_training"
    assert resolve_semi_supervised("auto", "finetune") == "fixmatch"
    assert resolve_semi_supervised("auto", "frozen", "detection") == "none"
    assert resolve_semi_supervised("self_training", "frozen") == "self_training"
    assert resolve_semi_supervised("none", "finetune", "multilabel") == "none"
    with pytest.raises(InputError, match="'fixmatch' does not run in frozen mode: use one of none, auto, self_tr"):
        resolve_semi_supervised("fixmatch", "frozen")
    with pytest.raises(
        InputError, match="'label_spreading' does not run in finetune mode: use one of none, auto, fixm"
    ):
        resolve_semi_supervised("label_spreading", "finetune")
    with pytest.raises(InputError, match="a 'detection' project does not have: use none"):
        resolve_semi_supervised("fixmatch", "finetune", "detection")


def test_settings_validate_the_new_keys() -> None:
    settings = parse_settings({"train": {"semi_supervised": "auto"}, "model": {"representation": "auto"}})
    assert (settings.train.semi_supervised, settings.model.representation) == ("auto", "auto")
    assert (Settings().train.semi_supervised, Settings().model.representation) == ("none", "auto")
    assert Settings().model.backbone_weights is None
    with pytest.raises(InputError, match=r"settings: train\.semi_supervised 'fixmatch' does not run in frozen mode"):
        parse_settings({"train": {"semi_supervised": "fixmatch"}})
    with pytest.raises(InputError, match="train.semi_supervised: Input should be 'none', 'auto'"):
        parse_settings({"train": {"semi_supervised": "mixmatch"}})
    with pytest.raises(InputError, match="model.representation: Input should be 'auto' or 'fixed'"):
        parse_settings({"model": {"representation": "best"}})


def test_build_model_passes_the_resolved_method_and_the_backbone_file(tmp_path: Path) -> None:
    settings = ModelSettings.model_validate({"name": "small_cnn", "mode": "finetune", "pretrained": False})
    task = get_task("classification")
    plain = build_model(settings, ["a", "b"], task=task, cache_dir=None, image_size=28, train=TrainSettings())
    assert plain.config["options"]["semi_supervised"] == "none"
    auto = TrainSettings(semi_supervised="auto")
    semi = build_model(settings, ["a", "b"], task=task, cache_dir=None, image_size=28, train=auto)
    assert semi.config["options"]["semi_supervised"] == "fixmatch"
    multi = build_model(settings, ["a", "b"], task=get_task("multilabel"), cache_dir=None, image_size=28, train=auto)
    assert multi.config["options"]["semi_supervised"] == "none"  # auto is none beyond single-label classes
    with pytest.raises(InputError, match=r"model.backbone_weights: no file at .*ssl\.pt; run `activelab pretrain"):
        build_model(
            settings.model_copy(update={"backbone_weights": "ssl.pt"}),
            ["a", "b"],
            task=task,
            cache_dir=None,
            image_size=28,
            root=tmp_path,
        )
    (tmp_path / "ssl.pt").write_bytes(b"")
    assert backbone_weights_file("ssl.pt", tmp_path) == tmp_path / "ssl.pt"


def test_a_semi_supervised_fit_gets_exactly_the_unlabeled_pool_images_never_the_eval_ones() -> None:
    paths = [f"pool{i}.png" for i in range(12)]
    trained = np.zeros(12, dtype=bool)
    trained[[0, 1, 2, 3]] = True
    exclude = trained.copy()
    exclude[5] = True  # a withdrawn label: not trained, not selectable, not unlabeled either
    targets = np.full(12, -1)
    targets[:4] = [0, 1, 0, 1]
    pool = Pool(Images(paths, [f"k{i}" for i in range(12)]), targets, trained, exclude)
    evaluation = EvalSet(Images(["eval0.png", "eval1.png"]), np.array([0, 1]))
    model = RecordingModel(["a", "b"])
    outcome = play_round(
        get_task("classification"), model, pool, "margin", 3, classes=["a", "b"], seed=0, evaluation=evaluation
    )
    (fitted,) = model.fits
    assert fitted["paths"] == paths[:4] and fitted["labels"] == [0, 1, 0, 1]
    assert fitted["unlabeled"] == [paths[i] for i in (4, 6, 7, 8, 9, 10, 11)]
    assert fitted["unlabeled_keys"] == [f"k{i}" for i in (4, 6, 7, 8, 9, 10, 11)]
    assert outcome.fit is not None and outcome.fit.n_unlabeled == 7
    supervised = RecordingModel(["a", "b"], semi_supervised="none")
    play_round(get_task("classification"), supervised, pool, "margin", 0, classes=["a", "b"], seed=0)
    assert "unlabeled" not in supervised.fits[0]  # none: the keyword is not even passed


def fake_representation(monkeypatch: pytest.MonkeyPatch, chosen: tuple[str, int]) -> list[int]:
    """Install a stand-in ``activelab.loop.representation``: labels double rule, a comparison that picks
    ``chosen``; returns the list of label counts each comparison saw."""
    import dataclasses
    import sys
    import types

    @dataclasses.dataclass(frozen=True)
    class Candidate:
        name: str
        image_size: int | None = None
        backbone_weights: str | None = None

        @property
        def label(self) -> str:
            return f"{self.name}@{self.image_size}"

    @dataclasses.dataclass(frozen=True)
    class Choice:
        chosen: Candidate
        n_labels: int

        def to_dict(self) -> dict[str, object]:
            return {"chosen": self.chosen.label, "n_labels": self.n_labels}

    compared: list[int] = []

    def compare(candidates, paths, labels, **kwargs):  # type: ignore[no-untyped-def]
        compared.append(len(paths))
        return Choice(Candidate(*chosen), len(paths))

    module = types.ModuleType("activelab.loop.representation")
    module.Candidate = Candidate  # type: ignore[attr-defined]
    module.default_candidates = lambda name, size, **kw: [Candidate(name, size), Candidate(*chosen)]  # type: ignore[attr-defined]
    module.compare_representations = compare  # type: ignore[attr-defined]
    module.should_rechoose = (  # type: ignore[attr-defined]
        lambda n, last, n_classes: n >= 2 * n_classes if last is None else n >= 2 * last
    )
    monkeypatch.setitem(sys.modules, "activelab.loop.representation", module)
    return compared


def test_the_representation_is_compared_exactly_when_the_rule_says_and_kept_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compared = fake_representation(monkeypatch, ("pixels", 28))
    images = Images([f"img{i}.png" for i in range(40)])
    y = np.arange(40) % 4

    def choose(previous: RepresentationState | None, n: int) -> RepresentationState | None:
        return rechoose_representation(previous, images.take(np.arange(n)), y[:n], 4, name="lite", image_size=64)

    assert choose(None, 7) is None and compared == []  # fewer than 2 labels per class: the configured model
    first = choose(None, 8)
    assert first is not None and compared == [8] and first.label == "pixels@28" and first.choice is not None
    kept = choose(first, 15)
    assert kept is not None and compared == [8] and kept.choice is None and kept.n_labels == 8
    again = choose(kept, 16)
    assert again is not None and compared == [8, 16] and again.n_labels == 16
    record = again.to_record()
    assert record["label"] == "pixels@28" and record["chosen_now"] and record["comparison"]["n_labels"] == 16
    assert RepresentationState.from_record(record) == dataclasses.replace(again, choice=None)
