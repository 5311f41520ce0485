"""One round of active learning, for every caller: check -> train -> the strategy's arrays -> select.

The project session, :class:`~activelab.loop.learner.ActiveLearner` and simulations
all call :func:`play_round`, so a strategy sees the same arrays whoever runs it. The
task turns model outputs into the arrays strategies read (``probs`` or ``marginals``,
``grad_factors``, ``labels`` or ``label_matrix``); the model gives embeddings and MC
samples. What the strategy needs is checked against the task and the model before
anything is trained (:func:`~activelab.loop.inputs.check_capabilities`).

A round's ``k`` counts images, or with ``budget_unit="boxes"`` boxes: each image then
costs what the task estimates from the model's predictions
(:meth:`~activelab.tasks.base.Task.costs`, for detection the boxes the detector sees),
so crowded images do not win by being crowded.

:func:`build_model` is the one place a model is built from settings.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from activelab.exceptions import InputError
from activelab.loop.inputs import Embedder, check_capabilities, pool_arrays
from activelab.loop.settings import ModelSettings, TrainSettings
from activelab.models import FitReport, ModelAdapter, create_model
from activelab.models.registry import find_model
from activelab.strategies import select, select_budget
from activelab.tasks import Task


def build_model(
    settings: ModelSettings,
    classes: Sequence[str] | None,
    *,
    task: Task,
    cache_dir: str | Path | None,
    image_size: int | None,
    train: TrainSettings | None = None,
    **options: Any,
) -> ModelAdapter:
    """A fresh adapter for ``classes`` as ``settings`` describe it, with ``task``'s output.

    ``classes=None`` builds a backbone to embed with (no head to train).

    ``frozen`` mode trains ``settings.head`` on cached backbone embeddings (under
    ``cache_dir``); ``finetune`` trains the whole network with ``train``'s epochs,
    learning rate and batch size (the model's defaults without ``train``). ``settings.options``
    (``model.options`` in activelab.yaml) and then ``options`` add or override model options.
    """
    mode_options: dict[str, Any] = {"head": settings.head}
    if settings.mode == "finetune":
        mode_options = {} if train is None else {"epochs": train.epochs, "lr": train.lr, "batch_size": train.batch_size}
    return create_model(
        settings.name,
        classes=None if classes is None else list(classes),
        mode=settings.mode,
        pretrained=settings.pretrained,
        device=settings.device,
        image_size=image_size,
        cache_dir=cache_dir,
        **{**mode_options, **task.model_options(), **settings.options, **options},
    )


def model_settings(
    name: str,
    *,
    mode: str | None = None,
    head: str | None = None,
    pretrained: bool | None = None,
    device: str | None = None,
) -> ModelSettings:
    """Model settings for ``name`` where what is left unset is the model's own default (its first mode,
    whether it has pretrained weights), as a simulation's or ``ActiveLearner``'s arguments mean it."""
    entry, _ = find_model(name)
    return ModelSettings.model_validate(
        {
            "name": name,
            "mode": mode or entry.modes[0],
            "head": head or "logreg",
            "pretrained": entry.pretrained if pretrained is None else pretrained,
            "device": device,
        }
    )


#: how a round's ``k`` is counted: images, or the boxes the task estimates each image holds
BUDGET_UNITS: tuple[str, ...] = ("images", "boxes")


@dataclass(frozen=True)
class Images:
    """Image files and their cache keys (sha256; None: hashed on read), in one order."""

    paths: Sequence[str]
    keys: Sequence[str] | None = None

    def __len__(self) -> int:
        return len(self.paths)

    def take(self, positions: np.ndarray) -> Images:
        """The images at ``positions``, in that order."""
        keys = None if self.keys is None else [self.keys[int(i)] for i in positions]
        return Images([self.paths[int(i)] for i in positions], keys)


@dataclass(frozen=True)
class Pool:
    """What a round selects from, in the positions 0..N-1 strategies see.

    ``targets``: the task's training targets (``(N,)`` class positions, ``(N, C)``
    0/1, or an object array ``(N,)`` of per-image box dicts), read only where
    ``trained``; ``trained``: ``(N,)`` bool, the rows the model fits on; ``exclude``:
    ``(N,)`` bool, rows never to select (default: ``trained``; a withdrawn label excludes
    an image that has no target).
    """

    images: Images
    targets: np.ndarray
    trained: np.ndarray
    exclude: np.ndarray | None = None

    @property
    def labeled(self) -> np.ndarray:
        return self.trained if self.exclude is None else self.exclude


@dataclass(frozen=True)
class EvalSet:
    """Held-out labeled images and their targets: the round's metrics."""

    images: Images
    targets: np.ndarray


@dataclass
class RoundOutcome:
    """What :func:`play_round` did.

    ``positions``: pool positions picked, best first; ``model``: the fitted adapter
    (None for a cold start); ``outputs``: the pool's model outputs (``(N, C)``, or an
    object array ``(N,)`` for detection) when the strategy or a box budget read them;
    ``eval_outputs`` / ``metrics``: the eval set's outputs and the task's metrics (empty
    without one); ``thresholds``: the task's per-class decision thresholds chosen on the
    eval set for the hints (None: the task decides by arg-max, or no eval set); the
    metrics use the task's default rule, never thresholds tuned on the images they score.
    """

    positions: np.ndarray
    model: ModelAdapter | None
    fit: FitReport | None = None
    outputs: np.ndarray | None = None
    eval_outputs: np.ndarray | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    thresholds: np.ndarray | None = None

    def picked_outputs(self, pool: Pool) -> np.ndarray:
        """The outputs of the picked images, in pick order (predicted now when the round read none)."""
        if self.model is None:
            raise ValueError("a cold-start round has no model outputs")
        if self.outputs is not None:
            return self.outputs[self.positions]
        picked = pool.images.take(self.positions)
        return self.model.predict_proba(picked.paths, keys=picked.keys)


def play_round(
    task: Task,
    model: ModelAdapter | None,
    pool: Pool,
    strategy: str,
    k: int,
    *,
    classes: Sequence[str],
    seed: int,
    rng: np.random.Generator | None = None,
    params: Mapping[str, Any] | None = None,
    evaluation: EvalSet | None = None,
    embedder: Embedder | None = None,
    mc_samples: int = 10,
    fit: bool = True,
    budget_unit: str = "images",
    progress: bool = False,
) -> RoundOutcome:
    """Train ``model`` on the pool's labeled rows, evaluate, compute what ``strategy`` reads, select ``k``.

    ``model=None`` is a cold start: nothing is trained and the strategy may read only
    model-free arrays, embeddings coming from ``embedder`` (a frozen backbone).
    ``seed`` seeds training and MC sampling; ``rng`` (default seeded by ``seed``) the
    selection. ``k=0`` trains and evaluates only; ``fit=False`` selects with ``model``
    as it is (already fitted). ``budget_unit="boxes"``: ``k`` is a budget of boxes, each
    image costing :meth:`~activelab.tasks.base.Task.costs` of the model's outputs
    (:func:`~activelab.strategies.select_budget`); a cold start has no predictions to count, so it
    needs ``"images"``. Everything the strategy needs is checked before training; an
    InputError names what is missing and what would work.
    """
    params = dict(params or {})
    check_capabilities(task, strategy, params, model)
    _check_budget_unit(budget_unit, model)
    rng = np.random.default_rng(seed) if rng is None else rng
    outcome = RoundOutcome(np.zeros(0, dtype=np.int64), model)
    t0 = time.perf_counter()
    if model is not None and fit:
        rows = np.flatnonzero(pool.trained)
        train = pool.images.take(rows)
        outcome.fit = model.fit(train.paths, pool.targets[rows], keys=train.keys, seed=seed, progress=progress)
        if evaluation is not None and len(evaluation.images):
            ev = evaluation.images
            outcome.eval_outputs = model.predict_proba(ev.paths, keys=ev.keys, progress=progress)
            # scored at the task's default decision rule: thresholds tuned on these same images would
            # flatter the metrics; they only sharpen the hints shown for pool images
            outcome.metrics = task.metrics(evaluation.targets, outcome.eval_outputs, list(classes))
            outcome.thresholds = task.choose_thresholds(evaluation.targets, outcome.eval_outputs)
    t1 = time.perf_counter()
    outcome.seconds = {"train": t1 - t0}
    if k <= 0 or pool.labeled.all():
        return outcome
    arrays, outcome.outputs = pool_arrays(
        task,
        model,
        strategy,
        pool.images.paths,
        keys=pool.images.keys,
        params=params,
        n_classes=len(classes),
        targets=pool.targets,
        labeled=pool.trained,
        embedder=embedder,
        mc_samples=mc_samples,
        seed=seed,
        progress=progress,
    )
    costs = None
    if budget_unit == "boxes":
        assert model is not None  # _check_budget_unit refused a cold start
        if outcome.outputs is None:
            outcome.outputs = model.predict_proba(pool.images.paths, keys=pool.images.keys, progress=progress)
        costs = task.costs(outcome.outputs)
    t2 = time.perf_counter()
    chosen = {"rng": rng, "labeled": pool.labeled, **arrays, **params}
    if costs is None:
        outcome.positions = select(strategy, k, **chosen)
    else:
        outcome.positions = select_budget(strategy, k, costs, **chosen)
    outcome.seconds.update(score_pool=t2 - t1, select=time.perf_counter() - t2)
    return outcome


def _check_budget_unit(budget_unit: str, model: ModelAdapter | None) -> None:
    """Refuse an unknown unit, and a box budget without a model whose predictions say what an image costs."""
    if budget_unit not in BUDGET_UNITS:
        raise InputError(f"budget_unit {budget_unit!r} is not one of {', '.join(BUDGET_UNITS)}")
    if budget_unit == "boxes" and model is None:
        raise InputError(
            "a budget in boxes counts the boxes a trained model predicts in each image, and a cold start has no "
            "model yet: count the cold-start round in images (budget_unit: images)"
        )
