"""Computing what a strategy needs from a model: one function for the loop, ActiveLearner and simulations."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from activelab.exceptions import InputError
from activelab.models import ModelAdapter
from activelab.strategies import get_strategy, list_strategies, required_inputs

#: arrays a round computes without a trained model: backbone embeddings and the labels it has
MODEL_FREE_INPUTS: frozenset[str] = frozenset({"embeddings", "labels"})


def needs_model(strategy: str, params: Mapping[str, Any] | None = None) -> bool:
    """Whether ``strategy`` (with ``params``) reads anything only a trained model gives (from its ``requires``)."""
    return not required_inputs(strategy, **dict(params or {})) <= MODEL_FREE_INPUTS


def cold_start_strategies() -> list[str]:
    """Registered strategies that work before any label exists (with their default parameters), sorted."""
    return [name for name in list_strategies() if not needs_model(name)]


def check_model_provides(model: ModelAdapter, strategy: str, params: Mapping[str, Any] | None = None) -> frozenset[str]:
    """The arrays ``strategy`` needs; raises InputError (before any training) if ``model`` cannot provide them."""
    needed = required_inputs(strategy, **dict(params or {}))
    missing = set(needed) - set(model.supports) - {"labels"}
    if missing:
        raise InputError(
            f"strategy {strategy!r}: model {model.name!r} cannot provide {sorted(missing)} (it provides "
            f"{sorted(model.supports)}); pick a strategy that needs less, or a model/head that provides it "
            "(e.g. head: mlp for mc_probs)"
        )
    return needed


def strategy_inputs(
    model: ModelAdapter,
    strategy: str,
    paths: Sequence[str],
    *,
    keys: Sequence[str] | None = None,
    params: Mapping[str, Any] | None = None,
    labels: np.ndarray | None = None,
    mc_samples: int = 10,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, np.ndarray]:
    """The arrays ``strategy`` (with ``params``) asks for, over ``paths`` in their order.

    ``labels`` (N,) holds class indices with -1 for unlabeled (class-balanced
    strategies). For gradient-embedding strategies (BADGE) ``embeddings`` are the
    input of the model's last layer, so that with ``probs`` they factor its
    gradients exactly; for the others they are the model's ``embed`` features.
    """
    params = dict(params or {})
    needed = check_model_provides(model, strategy, params)
    gradients = "grad_embeddings" in get_strategy(strategy).requires_for(**params)
    out: dict[str, np.ndarray] = {}
    if "probs" in needed:
        out["probs"] = model.predict_proba(paths, keys=keys, progress=progress)
    if "embeddings" in needed:
        features = model.last_layer_features if gradients else model.embed
        out["embeddings"] = features(paths, keys=keys, progress=progress)
    if "mc_probs" in needed:
        out["mc_probs"] = model.mc_predict(paths, keys=keys, n_samples=mc_samples, seed=seed, progress=progress)
    if "labels" in needed:
        if labels is None:
            raise InputError(f"strategy {strategy!r} needs the class of each labeled item (labels, -1 = unlabeled)")
        out["labels"] = np.asarray(labels, dtype=np.int64)
    return out
