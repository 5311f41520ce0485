"""What a strategy reads, and where each array comes from: the task, the model, or neither.

Arrays derived from model outputs (``probs``, ``marginals``, ``grad_factors``, the
detection task's ``box_*`` arrays, segmentation's ``pixel_probs``), from the labels (``labels``,
``label_matrix``) and from the images and labels (segmentation's ``region_*`` arrays and
``pixel_labeled_fraction``) come from the task (:meth:`~activelab.tasks.base.Task.strategy_arrays`); ``embeddings``
and ``mc_probs`` come from the model itself. Some task arrays compare the model's
predictions with its predictions on other views of each image (a flipped copy, noisy
copies): the task names those views (:meth:`~activelab.tasks.base.Task.views_for`) and
the model computes them (capability ``views``). :func:`check_capabilities` checks it
all before any training.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import numpy as np

from activelab.exceptions import InputError
from activelab.models import ModelAdapter
from activelab.strategies import get_strategy, list_strategies, required_inputs
from activelab.tasks import Task, get_task

#: arrays the task derives from the labels alone
LABEL_INPUTS: frozenset[str] = frozenset({"labels", "label_matrix"})
#: arrays the task reads from the pool's images and labels (segmentation's regions), without a model
REGION_INPUTS: frozenset[str] = frozenset(
    {"region_map", "region_owner", "region_pixels", "region_labeled", "pixel_labeled_fraction"}
)
#: arrays a round computes without a trained model: backbone embeddings, the labels it has, the images' regions
MODEL_FREE_INPUTS: frozenset[str] = frozenset({"embeddings"}) | LABEL_INPUTS | REGION_INPUTS
#: arrays the model computes itself, and the capability (``model.supports``) each needs
MODEL_INPUTS: Mapping[str, str] = {"embeddings": "embeddings", "mc_probs": "mc_probs"}


class Embedder(Protocol):
    """What a cold start needs of a frozen backbone: its name and ``(N, d)`` embeddings of image files."""

    @property
    def name(self) -> str: ...

    def embed(self, paths: Sequence[str], *, keys: Sequence[str] | None = None, progress: bool = False) -> np.ndarray:
        """``(N, d)`` features of ``paths``."""
        ...


class ViewPredictor(Protocol):
    """What a model with the ``views`` capability (a detector) adds: predictions on other views of each image."""

    def predict_views(
        self,
        paths: Sequence[str],
        views: Sequence[str],
        *,
        seed: int = 0,
        keys: Sequence[str] | None = None,
        progress: bool = False,
    ) -> dict[str, list[np.ndarray]]:
        """View name -> one outputs array (as ``predict_proba``'s) per variant of that view."""
        ...


def needs_model(strategy: str, params: Mapping[str, Any] | None = None) -> bool:
    """Whether ``strategy`` (with ``params``) reads anything only a trained model gives (from its ``requires``)."""
    return not required_inputs(strategy, **dict(params or {})) <= MODEL_FREE_INPUTS


def cold_start_strategies(task: Task | None = None) -> list[str]:
    """Registered strategies that work before any label exists (with their default parameters), sorted;
    with ``task``, only those whose inputs it provides (``region_random`` only for segmentation)."""
    return [
        name
        for name in list_strategies()
        if not needs_model(name) and (task is None or required_inputs(name) <= task.provides)
    ]


def _model_needs(task: Task, needed: frozenset[str]) -> set[str]:
    """The model capabilities (``supports`` names) that computing ``needed`` takes."""
    out = {MODEL_INPUTS[name] for name in needed if name in MODEL_INPUTS}
    if needed - MODEL_INPUTS.keys() - LABEL_INPUTS - REGION_INPUTS:
        out.add("probs")
    if task.views_for(needed):
        out.add("views")
    return out


def _missing(task: Task, needed: frozenset[str], model: ModelAdapter | None) -> set[str]:
    """What ``model`` lacks to compute ``needed`` (None: a cold start, which has only model-free arrays)."""
    if model is None:
        return set(needed) - MODEL_FREE_INPUTS
    return _model_needs(task, needed) - set(model.supports)


def workable_strategies(task: Task, model: ModelAdapter | None) -> list[str]:
    """Registered strategies (default parameters) whose every input ``task`` and ``model`` provide, sorted."""
    return [
        name
        for name in list_strategies()
        if required_inputs(name) <= task.provides and not _missing(task, required_inputs(name), model)
    ]


def check_task(task: Task, strategy: str, params: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The arrays ``strategy`` reads; raises InputError when ``task`` cannot give one (no model needed to tell)."""
    needed = required_inputs(strategy, **dict(params or {}))
    missing = set(needed) - set(task.provides)
    if missing:
        works = [name for name in list_strategies() if required_inputs(name) <= task.provides]
        raise InputError(
            f"strategy {strategy!r} reads {sorted(missing)}, which the {task.name!r} task does not provide "
            f"(it provides {sorted(task.provides)}); strategies that work here: {', '.join(works) or 'none'}"
        )
    return needed


def check_capabilities(
    task: Task, strategy: str, params: Mapping[str, Any] | None, model: ModelAdapter | None
) -> frozenset[str]:
    """The arrays ``strategy`` reads; raises InputError, before any training, when one cannot be had.

    ``model=None`` checks a cold start: only model-free arrays (embeddings, labels).
    The message names what is missing and the strategies that would work.
    """
    needed = check_task(task, strategy, params)
    from_model = _missing(task, needed, model)
    if not from_model:
        return needed
    works = ", ".join(workable_strategies(task, model)) or "none"
    if model is None:
        raise InputError(
            f"strategy {strategy!r} reads {sorted(from_model)}, which needs a trained model; "
            f"strategies that need none: {works}"
        )
    raise InputError(
        f"strategy {strategy!r}: model {model.name!r} cannot provide {sorted(from_model)} (it provides "
        f"{sorted(model.supports)}); strategies that work with it: {works}; or pick a model/head that provides it "
        "(e.g. head: mlp for mc_probs)"
    )


def pool_arrays(
    task: Task,
    model: ModelAdapter | None,
    strategy: str,
    paths: Sequence[str],
    *,
    keys: Sequence[str] | None,
    params: Mapping[str, Any],
    n_classes: int,
    targets: np.ndarray,
    labeled: np.ndarray,
    embedder: Embedder | None = None,
    mc_samples: int = 10,
    seed: int = 0,
    progress: bool = False,
    extra: frozenset[str] = frozenset(),
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """The arrays ``strategy`` reads over ``paths``, and the model's outputs when it needed them
    (``(N, C)``, or an object array ``(N,)`` of per-image dicts for detection).

    ``model=None`` is a cold start: only model-free arrays, embeddings from ``embedder``.
    The views the task asks for (:meth:`~activelab.tasks.base.Task.views_for`) are
    predicted with ``seed`` (noise draws) and handed to the task with the outputs.
    For gradient-embedding strategies (BADGE) ``embeddings`` are the input of the
    model's last layer, so that with ``grad_factors`` (or ``probs``) they factor its
    gradients exactly; for the others they are the model's ``embed`` features. ``extra``: task
    arrays the caller reads besides the strategy's (a region round's ``region_map`` and
    ``region_pixels``); they must need no model.
    """
    needed = check_capabilities(task, strategy, params, model) | _check_extra(task, extra)
    arrays: dict[str, np.ndarray] = {}
    outputs: np.ndarray | None = None
    derived = frozenset(needed - MODEL_INPUTS.keys())
    if derived:
        if derived <= LABEL_INPUTS | REGION_INPUTS:
            base = np.zeros((len(paths), n_classes), dtype=np.float32)
        else:
            assert model is not None  # check_capabilities refused model-free rounds needing outputs
            base = outputs = model.predict_proba(paths, keys=keys, progress=progress)
        views = task.views_for(derived)
        predicted_views = None
        if views:
            # check_capabilities made sure the model supports "views"
            predictor = cast(ViewPredictor, model)
            predicted_views = predictor.predict_views(paths, views, seed=seed, keys=keys, progress=progress)
        arrays.update(
            task.strategy_arrays(
                derived, base, targets=targets, labeled=labeled, views=predicted_views, images=list(paths)
            )
        )
    if "embeddings" in needed:
        gradients = "grad_factors" in needed or "grad_embeddings" in get_strategy(strategy).requires_for(**params)
        if model is not None:
            features = model.last_layer_features if gradients else model.embed
            arrays["embeddings"] = features(paths, keys=keys, progress=progress)
        elif embedder is not None:
            arrays["embeddings"] = embedder.embed(paths, keys=keys, progress=progress)
        else:
            raise InputError(f"strategy {strategy!r} reads embeddings: a cold start needs a frozen backbone to embed")
    if "mc_probs" in needed:
        assert model is not None
        arrays["mc_probs"] = model.mc_predict(paths, keys=keys, n_samples=mc_samples, seed=seed, progress=progress)
    return arrays, outputs


def _check_extra(task: Task, extra: frozenset[str]) -> frozenset[str]:
    """``extra`` when ``task`` provides each array without a model; InputError naming what it lacks."""
    missing = sorted(set(extra) - set(task.provides))
    if missing:
        raise InputError(
            f"the {task.name!r} task does not provide {missing}, which a region strategy's round reads: "
            "use an image strategy with this task"
        )
    if extra - MODEL_FREE_INPUTS:
        raise InputError(f"extra round inputs must need no model, got {sorted(extra - MODEL_FREE_INPUTS)}")
    return frozenset(extra)


def strategy_inputs(
    model: ModelAdapter,
    strategy: str,
    paths: Sequence[str],
    *,
    keys: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    labels: np.ndarray | None = None,
    task: Task | None = None,
    mc_samples: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """The arrays ``strategy`` (with ``params``) reads from a fitted ``model`` over ``paths``, in their order.

    ``labels``: the task's targets with ``-1`` rows (or a ``-1`` first column) for
    unlabeled items, or for per-image dicts (detection) None; ``task`` defaults to
    single-label classification.
    """
    task = task or get_task("classification")
    n = len(paths)
    targets = np.full(n, -1, dtype=np.int64) if labels is None else np.asarray(labels)
    if targets.dtype == object:
        labeled = np.array([t is not None for t in targets], dtype=bool)
    else:
        labeled = (targets >= 0) if targets.ndim == 1 else (targets[:, 0] >= 0)
    arrays, _ = pool_arrays(
        task,
        model,
        strategy,
        paths,
        keys=keys,
        params=dict(params or {}),
        n_classes=len(model.classes),
        targets=targets,
        labeled=labeled,
        mc_samples=mc_samples,
        seed=seed,
        progress=progress,
    )
    return arrays
