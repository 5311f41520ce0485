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
so crowded images do not win by being crowded. With ``budget_unit="pixels"`` (segmentation)
each image costs its pixels, each region its own.

A region strategy (``get_strategy(name).unit == "regions"``: superpixels or patches scored by
their pixels, Mackowiak et al., BMVC 2018; Cai et al., CVPR 2021) picks regions from the flat
list the task's ``region_*`` arrays describe; the round turns them into the images owning them
(:attr:`RoundOutcome.positions`, in the order of their best region) and the pixels asked for in
each (:attr:`RoundOutcome.asked`). Its ``k`` in images counts regions.

:func:`build_model` is the one place a model is built from settings.

Semi-supervised training (``train.semi_supervised``): a model whose ``semi_supervised`` option is not
``none`` also gets the pool's unlabeled images (:func:`fit_on_pool`: neither trained on nor excluded;
eval images are never in a pool). A representation chosen among candidate feature extractors
(``model.representation: auto``, :func:`rechoose_representation`) replaces the configured backbone.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from activelab.exceptions import InputError
from activelab.loop.inputs import Embedder, check_capabilities, pool_arrays
from activelab.loop.settings import DEFAULT_TASK, ModelSettings, TrainSettings, resolve_semi_supervised
from activelab.models import FitReport, ModelAdapter, create_model
from activelab.models.registry import find_model
from activelab.strategies import get_strategy, select, select_budget
from activelab.tasks import Task

if TYPE_CHECKING:
    from activelab.loop.representation import Candidate


def build_model(
    settings: ModelSettings,
    classes: Sequence[str] | None,
    *,
    task: Task,
    cache_dir: str | Path | None,
    image_size: int | None,
    train: TrainSettings | None = None,
    root: str | Path | None = None,
    **options: Any,
) -> ModelAdapter:
    """A fresh adapter for ``classes`` as ``settings`` describe it, with ``task``'s output.

    ``classes=None`` builds a backbone to embed with (no head to train).

    ``frozen`` mode trains ``settings.head`` on cached backbone embeddings (under
    ``cache_dir``); ``finetune`` trains the whole network with ``train``'s epochs,
    learning rate and batch size (the model's defaults without ``train``). ``train.semi_supervised``
    becomes the model option ``semi_supervised`` (resolved by
    :func:`~activelab.loop.settings.resolve_semi_supervised`; not passed when it is ``none``, so models
    without the option still build). ``settings.backbone_weights`` is read relative to ``root`` (the
    project folder). ``settings.options`` (``model.options`` in activelab.yaml) and then ``options`` add
    or override model options.
    """
    mode_options: dict[str, Any] = {"head": settings.head}
    if settings.mode == "finetune":
        mode_options = {} if train is None else {"epochs": train.epochs, "lr": train.lr, "batch_size": train.batch_size}
    if train is not None:
        semi = resolve_semi_supervised(train.semi_supervised, settings.mode, task.name)
        if semi != "none":
            mode_options["semi_supervised"] = semi
    return create_model(
        settings.name,
        classes=None if classes is None else list(classes),
        mode=settings.mode,
        pretrained=settings.pretrained,
        device=settings.device,
        image_size=image_size,
        cache_dir=cache_dir,
        backbone_weights=backbone_weights_file(settings.backbone_weights, root),
        **{**mode_options, **task.model_options(), **settings.options, **options},
    )


def backbone_weights_file(value: str | None, root: str | Path | None) -> Path | None:
    """``model.backbone_weights`` as a file path (relative to ``root``, the project folder); None when unset.

    A missing file is an InputError naming it and how to make one.
    """
    if value is None:
        return None
    path = Path(value) if root is None else Path(root) / value
    if not path.is_file():
        raise InputError(
            f"model.backbone_weights: no file at {path}; run `activelab pretrain PROJECT` to write one, "
            "or remove the key to use the model's own weights"
        )
    return path


def semi_supervised_method(model: ModelAdapter) -> str:
    """The model's ``semi_supervised`` option (``none`` for a model without one)."""
    return str(model.config.get("options", {}).get("semi_supervised", "none"))


def fit_on_pool(model: ModelAdapter, pool: Pool, *, seed: int, progress: bool = False) -> FitReport:
    """Fit ``model`` on the pool's trained rows; a semi-supervised model also gets the unlabeled rows.

    Unlabeled: neither trained on nor excluded (a withdrawn label is no unlabeled image to learn from).
    Eval images are never in a pool, so they never reach ``fit``.
    """
    rows = np.flatnonzero(pool.trained)
    train = pool.images.take(rows)
    extra: dict[str, Any] = {}
    if semi_supervised_method(model) != "none":
        free = pool.images.take(np.flatnonzero(~pool.trained & ~pool.labeled))
        extra = {"unlabeled": list(free.paths), "unlabeled_keys": None if free.keys is None else list(free.keys)}
    return model.fit(train.paths, pool.targets[rows], keys=train.keys, seed=seed, progress=progress, **extra)


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


def chooses_representation(settings: ModelSettings, task: Task) -> bool:
    """Whether ``model.representation: auto`` applies: frozen mode and single-label classification (a
    comparison by leave-one-out accuracy needs one class per image and a cheap head); elsewhere ``auto``
    behaves as ``fixed``."""
    return settings.representation == "auto" and settings.mode == "frozen" and task.name == DEFAULT_TASK


@dataclass(frozen=True)
class RepresentationState:
    """The feature extractor rounds use under ``model.representation: auto``, and when it was chosen.

    ``candidate``: a :class:`~activelab.loop.representation.Candidate`; ``n_labels``: labeled images
    when it was chosen; ``choice``: the comparison (``RepresentationChoice.to_dict()``) when the current
    round chose it, None when the round kept an earlier choice.
    """

    candidate: Candidate
    n_labels: int
    choice: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.candidate.label

    def to_record(self) -> dict[str, Any]:
        """What a round records (``metrics["representation"]``); :meth:`from_record` reads it back."""
        record: dict[str, Any] = {
            "label": self.label,
            "candidate": dataclasses.asdict(self.candidate),
            "n_labels": self.n_labels,
            "chosen_now": self.choice is not None,
        }
        if self.choice is not None:
            record["comparison"] = self.choice
        return record

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> RepresentationState:
        from activelab.loop.representation import Candidate

        return cls(Candidate(**record["candidate"]), int(record["n_labels"]))


def rechoose_representation(
    previous: RepresentationState | None,
    images: Images,
    targets: np.ndarray,
    n_classes: int,
    *,
    name: str,
    image_size: int | None,
    native_size: int | None = None,
    ssl_weights: str | None = None,
    cache_dir: str | Path | None = None,
    device: str | None = None,
    seed: int = 0,
    progress: bool = False,
) -> RepresentationState | None:
    """The representation a round on the labeled ``images`` (``targets``: ``(N,)`` class positions) uses.

    Where :func:`~activelab.loop.representation.should_rechoose` says so (the first time there are
    enough labels, then whenever they have doubled), the candidates of
    :func:`~activelab.loop.representation.default_candidates` (``name`` at ``image_size``, the other
    sensible size, raw pixels at ``native_size``, the ``ssl_weights`` backbone) are compared on these
    labels and the best is returned with its comparison; otherwise ``previous`` is kept (None: the
    configured model, no choice made yet).
    """
    from activelab.loop.representation import compare_representations, default_candidates, should_rechoose

    if not should_rechoose(len(images), None if previous is None else previous.n_labels, n_classes):
        return None if previous is None else dataclasses.replace(previous, choice=None)
    candidates = default_candidates(name, image_size, native_size=native_size, ssl_weights=ssl_weights)
    choice = compare_representations(
        candidates,
        images.paths,
        targets,
        keys=images.keys,
        cache_dir=cache_dir,
        device=device,
        seed=seed,
        progress=progress,
    )
    return RepresentationState(choice.chosen, len(images), choice.to_dict())


def candidate_settings(settings: ModelSettings, candidate: Candidate) -> ModelSettings:
    """``settings`` for the model ``candidate`` names, with its backbone weights (its input size,
    ``candidate.image_size``, is the caller's to pass); pretrained only where that model has weights."""
    pretrained = settings.pretrained and find_model(candidate.name)[0].pretrained
    return settings.model_copy(
        update={"name": candidate.name, "backbone_weights": candidate.backbone_weights, "pretrained": pretrained}
    )


def native_image_size(paths: Sequence[str], *, sample: int = 50) -> int | None:
    """The median longer side in pixels of (up to ``sample`` of) ``paths``, read from the file headers."""
    from PIL import Image

    sides = []
    for path in list(paths)[:sample]:
        with Image.open(path) as img:
            sides.append(max(img.size))
    return int(np.median(sides)) if sides else None


#: how a round's ``k`` is counted: images (regions, for a region strategy), the boxes the task estimates each
#: image holds, or pixels (an image's width x height; a region's pixel count)
BUDGET_UNITS: tuple[str, ...] = ("images", "boxes", "pixels")
#: the region arrays a region strategy's round needs besides its own: where each region lies and its size
REGION_ROUND_INPUTS: frozenset[str] = frozenset({"region_map", "region_owner", "region_pixels", "region_labeled"})


def strategy_unit(strategy: str) -> str:
    """What ``strategy`` picks: ``"images"`` or ``"regions"`` (its registered ``unit``)."""
    return str(getattr(get_strategy(strategy), "unit", "images"))


def image_pixels(paths: Sequence[str]) -> np.ndarray:
    """``(N,)`` float64 width x height of each image, read from the file headers (no model needed)."""
    from PIL import Image

    sizes = []
    for path in paths:
        with Image.open(path) as img:
            sizes.append(img.size[0] * img.size[1])
    return np.asarray(sizes, dtype=np.float64)


def asked_regions(
    picks: np.ndarray, region_owner: np.ndarray, region_map: np.ndarray
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """The images owning the picked regions and the pixels asked for in each.

    ``picks``: positions into the flat region list, best first; ``region_owner``: ``(R,)`` the
    image of each region, regions ordered image by image, then by id; ``region_map``: object
    ``(N,)`` of ``(H, W)`` int region ids. Returns the owners' pool positions (unique, in the
    order of their best region) and ``{position: (H, W) bool}``, the union of its picked regions.
    """
    owner = np.asarray(region_owner, dtype=np.int64)
    starts = np.searchsorted(owner, np.arange(len(region_map)))
    positions: list[int] = []
    ids: dict[int, list[int]] = {}
    for r in np.asarray(picks, dtype=np.int64).tolist():
        image = int(owner[r])
        if image not in ids:
            positions.append(image)
            ids[image] = []
        ids[image].append(r - int(starts[image]))
    asked = {image: np.isin(np.asarray(region_map[image]), local) for image, local in ids.items()}
    return np.asarray(positions, dtype=np.int64), asked


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

    Segmentation: an image with some labeled pixels is ``trained`` (the model fits on its
    labeled pixels); an image strategy never picks it again, but a region strategy may until
    it is in ``exclude`` (the caller's rule: no IGNORE pixel left) and never picks a region
    the task says is labeled (``region_labeled``).
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
    ``asked``: for a region strategy, ``{position: (H, W) bool}`` the pixels asked for in each
    picked image (the union of its picked regions); None for an image strategy (the whole image).
    """

    positions: np.ndarray
    model: ModelAdapter | None
    fit: FitReport | None = None
    outputs: np.ndarray | None = None
    eval_outputs: np.ndarray | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    thresholds: np.ndarray | None = None
    asked: dict[int, np.ndarray] | None = None

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
    needs ``"images"``. ``budget_unit="pixels"``: ``k`` is a budget of pixels, each image costing
    its width x height and each region (a region strategy) its ``region_pixels``; a cold start
    can count them. A region strategy's ``k`` in images counts regions, and the outcome's
    ``asked`` says which pixels of each picked image are asked for. Everything the strategy
    needs is checked before training; an InputError names what is missing and what would work.
    """
    params = dict(params or {})
    check_capabilities(task, strategy, params, model)
    unit = strategy_unit(strategy)
    _check_budget_unit(budget_unit, model, unit)
    rng = np.random.default_rng(seed) if rng is None else rng
    outcome = RoundOutcome(np.zeros(0, dtype=np.int64), model)
    t0 = time.perf_counter()
    if model is not None and fit:
        outcome.fit = fit_on_pool(model, pool, seed=seed, progress=progress)
        if evaluation is not None and len(evaluation.images):
            ev = evaluation.images
            outcome.eval_outputs = model.predict_proba(ev.paths, keys=ev.keys, progress=progress)
            # scored at the task's default decision rule: thresholds tuned on these same images would
            # flatter the metrics; they only sharpen the hints shown for pool images
            outcome.metrics = task.metrics(evaluation.targets, outcome.eval_outputs, list(classes))
            outcome.thresholds = task.choose_thresholds(evaluation.targets, outcome.eval_outputs)
    t1 = time.perf_counter()
    outcome.seconds = {"train": t1 - t0}
    # an image strategy never asks for an image with labels again; a region strategy may, region by region
    blocked = pool.labeled if unit == "regions" else pool.labeled | pool.trained
    if k <= 0 or blocked.all():
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
        extra=REGION_ROUND_INPUTS if unit == "regions" else frozenset(),
    )
    if unit == "regions":
        # regions of an excluded image count as labeled: the strategy never returns a region_labeled one
        owner = np.asarray(arrays["region_owner"], dtype=np.int64)
        arrays["region_labeled"] = np.asarray(arrays["region_labeled"], dtype=bool) | blocked[owner]
    costs = None
    if budget_unit == "boxes":
        assert model is not None  # _check_budget_unit refused a cold start
        if outcome.outputs is None:
            outcome.outputs = model.predict_proba(pool.images.paths, keys=pool.images.keys, progress=progress)
        costs = task.costs(outcome.outputs)
    elif budget_unit == "pixels":
        costs = arrays["region_pixels"] if unit == "regions" else image_pixels(pool.images.paths)
    t2 = time.perf_counter()
    chosen = {"rng": rng, "labeled": blocked, **arrays, **params}
    if costs is None:
        picks = select(strategy, k, **chosen)
    else:
        picks = select_budget(strategy, k, np.asarray(costs, dtype=np.float64), **chosen)
    if unit == "regions":
        outcome.positions, outcome.asked = asked_regions(picks, arrays["region_owner"], arrays["region_map"])
    else:
        outcome.positions = picks
    outcome.seconds.update(score_pool=t2 - t1, select=time.perf_counter() - t2)
    return outcome


def _check_budget_unit(budget_unit: str, model: ModelAdapter | None, unit: str = "images") -> None:
    """Refuse an unknown unit, a box budget without a model whose predictions say what an image costs, and a
    box budget for a region strategy (a region holds no countable boxes)."""
    if budget_unit not in BUDGET_UNITS:
        raise InputError(f"budget_unit {budget_unit!r} is not one of {', '.join(BUDGET_UNITS)}")
    if budget_unit == "boxes" and unit == "regions":
        raise InputError(
            "a budget in boxes counts the boxes predicted in whole images, and a region strategy asks for regions: "
            "count its k in pixels (budget_unit: pixels) or in regions (budget_unit: images)"
        )
    if budget_unit == "boxes" and model is None:
        raise InputError(
            "a budget in boxes counts the boxes a trained model predicts in each image, and a cold start has no "
            "model yet: count the cold-start round in images (budget_unit: images)"
        )
