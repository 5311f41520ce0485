"""The active-learning session: train on the current labels, score the pool, select, record.

This is the only place that converts between the store's stable image ids and
the positions 0..N-1 that strategies and models see. Everything that can refuse a
round (unknown strategy, nothing left to select, too few labels, a model that
cannot give what the strategy reads) is checked before the store records it, so a
refused round leaves nothing behind. A round is then recorded as ``running`` and
completed (metrics + ranked selection) in one transaction at the end, so a round
killed half-way leaves no half-written result; the next round marks it ``failed``.

Cold start: before a model can be trained (no labels, or one class), a strategy that
needs only embeddings (``random``, ``typiclust``, ``probcover``... read from the
registry's ``requires``) selects from the project's frozen backbone embeddings,
and no model is trained or saved.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from activelab.exceptions import InputError, StoreError
from activelab.loop.embed import embedding_model
from activelab.loop.evaluate import prediction_agreement
from activelab.loop.input_size import InputSize, resolve_input_size
from activelab.loop.inputs import (
    check_model_provides,
    cold_start_strategies,
    needs_model,
    strategy_inputs,
)
from activelab.loop.project import Project
from activelab.loop.stopping import CurvePoint, StoppingRules, stop_reason
from activelab.models import ModelAdapter, create_model, load_model
from activelab.store import ImageRef, Store
from activelab.strategies import required_inputs, select
from activelab.tasks.metrics import classification_metrics

ModelFactory = Callable[[list[str]], ModelAdapter]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabeledSet:
    """Images with a current label, in store order: paths, content hashes, class indices."""

    image_ids: list[int]
    paths: list[str]
    keys: list[str]
    y: np.ndarray


@dataclass
class RoundResult:
    """What one round did: the ranked selection (image ids, best first) and its metrics."""

    number: int
    strategy: str
    selected: list[int]
    scores: list[float | None]
    metrics: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    input_size: InputSize | None = None  # the backbone's input size, and why (chosen by this round, or set)


class ActiveSession:
    """Rounds of train -> score -> select over one project.

    ``model_factory(classes)`` builds a fresh adapter each round; by default it
    follows the project's ``model`` settings, with the embedding cache in the
    project's ``cache/`` folder.
    """

    def __init__(
        self,
        project: Project,
        *,
        model_factory: ModelFactory | None = None,
        progress: bool = False,
    ) -> None:
        self.project = project
        self.model_factory = model_factory or self._settings_model
        self.progress = progress

    @property
    def store(self) -> Store:
        return self.project.store

    @property
    def models_dir(self) -> Path:
        return self.project.root / "models"

    @property
    def rounds_dir(self) -> Path:
        return self.project.root / "rounds"

    def _settings_model(self, classes: list[str]) -> ModelAdapter:
        m = self.project.settings.model
        train = self.project.settings.train
        options: dict[str, Any] = (
            {"head": m.head}
            if m.path == "fast"
            else {
                "epochs": train.epochs,
                "lr": train.lr,
                "batch_size": train.batch_size,
            }
        )
        return create_model(
            m.name,
            classes=classes,
            path=m.path,
            pretrained=m.pretrained,
            device=m.device,
            image_size=resolve_input_size(self.project).pixels,
            cache_dir=self.project.cache_dir / "embeddings",
            **options,
        )

    # ----------------------------------------------------------- data views
    def labeled_set(self, split: str) -> LabeledSet:
        """Images of ``split`` with a current label, and their class indices."""
        classes = {name: i for i, name in enumerate(self.store.class_names())}
        labels = self.store.current_labels(split)
        images = [img for img in self.store.image_refs(split) if img.id in labels]
        return LabeledSet(
            [img.id for img in images],
            [img.path for img in images],
            [img.sha256 for img in images],
            np.array([classes[labels[img.id].label] for img in images], dtype=np.int64),
        )

    def pool(self) -> tuple[list[ImageRef], np.ndarray, np.ndarray]:
        """Pool images, the mask of those never to select again, and class indices (-1 unlabeled).

        An image is excluded from selection once it has any label event, even
        one that withdrew its label ("unsure"): nobody is asked twice.
        """
        images = self.store.image_refs("pool")
        classes = {name: i for i, name in enumerate(self.store.class_names())}
        current = self.store.current_labels("pool")
        touched = self.store.labeled_image_ids()
        mask = np.array([img.id in touched for img in images], dtype=bool)
        labels = np.array(
            [classes[current[img.id].label] if img.id in current else -1 for img in images], dtype=np.int64
        )
        return images, mask, labels

    # --------------------------------------------------------------- rounds
    def recover(self) -> list[int]:
        """Mark rounds left ``running`` by a dead process as failed; return their numbers."""
        failed = []
        for rnd in self.store.rounds():
            if rnd.status != "running":
                continue
            owner = rnd.config.get("_owner", {})
            if owner.get("host") == socket.gethostname() and _pid_alive(owner.get("pid")):
                raise StoreError(f"round {rnd.number} is running in process {owner['pid']}; wait for it to finish")
            self.store.fail_round(rnd.number, "interrupted: the process running it stopped")
            failed.append(rnd.number)
        return failed

    def train(
        self, *, seed: int | None = None, train_set: LabeledSet | None = None, model: ModelAdapter | None = None
    ) -> tuple[ModelAdapter, dict[str, Any]]:
        """Fit a fresh model on the current pool labels; evaluate it on the eval split.

        ``train_set`` lets a caller that already read the pool pass its labeled part
        instead of reading it again; ``model`` an adapter it already built (and checked).
        """
        classes = self.store.class_names()
        train = self.labeled_set("pool") if train_set is None else train_set
        problem = _untrainable(train.y, classes)
        if problem:
            raise InputError(f"cannot train: {problem}; label images of at least two classes (or import labels) first")
        seed = self.project.settings.train.seed if seed is None else seed
        model = self.model_factory(classes) if model is None else model
        report = model.fit(train.paths, train.y.tolist(), keys=train.keys, seed=seed, progress=self.progress)
        metrics: dict[str, Any] = {"n_labeled": len(train.image_ids), "fit": report.to_dict()}
        metrics.update(self.evaluate(model))
        return model, metrics

    def evaluate(self, model: ModelAdapter) -> dict[str, Any]:
        """Eval-split metrics (empty when no eval image is labeled)."""
        evals = self.labeled_set("eval")
        if not evals.image_ids:
            return {}
        probs = model.predict_proba(evals.paths, keys=evals.keys, progress=self.progress)
        out = classification_metrics(evals.y.tolist(), probs, self.store.class_names())
        out["eval_predictions"] = {str(i): p for i, p in zip(evals.image_ids, probs.argmax(axis=1).tolist())}
        return {"eval": out}

    def _plan(
        self, strategy: str, params: dict[str, Any], images: list[ImageRef], mask: np.ndarray, labels: np.ndarray
    ) -> tuple[ModelAdapter | None, InputSize]:
        """Refuse an invalid round before anything is recorded.

        Returns the checked model to train (None: a cold start) and the backbone's input
        size, chosen (and recorded in the settings) once the labels allow the round.
        """
        model_needed = needs_model(strategy, params)  # unknown strategy names fail here
        if not images:
            raise InputError("the pool has no images: import some with `activelab import PROJECT FOLDER`")
        if mask.all():
            raise InputError("every pool image is already labeled: import more images to select from")
        classes = self.store.class_names()
        problem = _untrainable(labels[labels >= 0], classes)
        if problem:
            if not model_needed:
                return None, resolve_input_size(self.project)
            cold = self.project.settings.active_learner.cold_start_strategy
            raise InputError(
                f"strategy {strategy!r} reads {sorted(required_inputs(strategy, **params))}, which needs a trained "
                f"model, but {problem}. Label a few images of at least two classes, or start with a strategy that "
                f"needs no model: {', '.join(cold_start_strategies())} (the app's fresh queue uses {cold!r}, "
                "active_learner.cold_start_strategy)"
            )
        input_size = resolve_input_size(self.project)
        model = self.model_factory(classes)
        check_model_provides(model, strategy, params)
        return model, input_size

    def run_round(
        self, strategy: str | None = None, k: int | None = None, *, seed: int | None = None, **params: Any
    ) -> RoundResult:
        """One round: train, evaluate, score the unlabeled pool, select ``k``, record it all.

        Before a model can be trained, a strategy that needs only embeddings runs a
        cold-start round instead (see the module docstring); one that needs a model is refused.
        """
        al = self.project.settings.active_learner
        strategy = strategy or al.strategy
        k = k or al.batch_size
        seed = al.seed if seed is None else seed
        needs_model(strategy, params)  # unknown names fail before any work
        self.recover()
        images, mask, labels = self.pool()
        model, input_size = self._plan(strategy, params, images, mask, labels)
        config = {
            "strategy": strategy,
            "k": k,
            "seed": seed,
            "params": params,
            "cold_start": model is None,
            "model": self.project.settings.model.model_dump(),
            "_owner": {"host": socket.gethostname(), "pid": os.getpid()},
        }
        number = self.store.start_round(
            strategy=strategy, model=self.project.settings.model.name, config=config, n_labeled=int((labels >= 0).sum())
        )
        if model is None:
            result = self._cold_start_round(number, strategy, k, seed, params, images, mask, labels)
            result.input_size = input_size
            return result
        try:
            t0 = time.perf_counter()
            keep = np.flatnonzero(labels >= 0)
            train_set = LabeledSet(
                [images[i].id for i in keep],
                [images[i].path for i in keep],
                [images[i].sha256 for i in keep],
                labels[keep],
            )
            model, metrics = self.train(seed=seed, train_set=train_set, model=model)
            t1 = time.perf_counter()
            inputs = strategy_inputs(
                model,
                strategy,
                [img.path for img in images],
                keys=[img.sha256 for img in images],
                params=params,
                labels=labels,
                seed=seed,
                progress=self.progress,
            )
            t2 = time.perf_counter()
            positions = select(strategy, k, rng=np.random.default_rng([seed, number]), labeled=mask, **inputs, **params)
            t3 = time.perf_counter()
        except BaseException as exc:
            self.store.fail_round(number, f"{type(exc).__name__}: {exc}")
            raise
        chosen = [images[int(p)] for p in positions]
        selected = [img.id for img in chosen]
        if "probs" in inputs:
            probs = inputs["probs"][positions]
        else:
            probs = model.predict_proba([img.path for img in chosen], keys=[img.sha256 for img in chosen])
        scores: list[float | None] = [float(p.max()) for p in probs]
        hints = [(iid, model.classes[int(p.argmax())], float(p.max())) for iid, p in zip(selected, probs)]
        metrics = self._with_agreement(number, metrics)
        metrics["seconds"] = {"train": t1 - t0, "score_pool": t2 - t1, "select": t3 - t2}
        self.models_dir.mkdir(parents=True, exist_ok=True)
        model.save(self.models_dir / "latest")
        self.store.finish_round(number, metrics=metrics, selection=list(zip(selected, scores)), predictions=hints)
        return RoundResult(number, strategy, selected, scores, metrics, metrics["seconds"], input_size)

    def _cold_start_round(
        self,
        number: int,
        strategy: str,
        k: int,
        seed: int,
        params: dict[str, Any],
        images: list[ImageRef],
        mask: np.ndarray,
        labels: np.ndarray,
    ) -> RoundResult:
        """Select from frozen backbone embeddings (the embedding cache) without training; record the round."""
        needed = required_inputs(strategy, **params)
        try:
            t0 = time.perf_counter()
            inputs: dict[str, np.ndarray] = {"labels": labels}
            embedder = embedding_model(self.project) if "embeddings" in needed else None
            if embedder is not None:
                inputs["embeddings"] = embedder.embed(
                    [img.path for img in images], keys=[img.sha256 for img in images], progress=self.progress
                )
            t1 = time.perf_counter()
            positions = select(strategy, k, rng=np.random.default_rng([seed, number]), labeled=mask, **inputs, **params)
            t2 = time.perf_counter()
        except BaseException as exc:
            self.store.fail_round(number, f"{type(exc).__name__}: {exc}")
            raise
        selected = [images[int(p)].id for p in positions]
        scores: list[float | None] = [None] * len(selected)
        metrics: dict[str, Any] = {
            "n_labeled": int((labels >= 0).sum()),
            "cold_start": True,
            "embedding_model": None if embedder is None else embedder.name,
            "seconds": {"embed": t1 - t0, "select": t2 - t1},
        }
        self.store.finish_round(number, metrics=metrics, selection=list(zip(selected, scores)))
        return RoundResult(number, strategy, selected, scores, metrics, metrics["seconds"])

    def _with_agreement(self, number: int, metrics: dict[str, Any]) -> dict[str, Any]:
        """Add kappa between this round's and the previous finished round's eval predictions."""
        current = metrics.get("eval", {}).get("eval_predictions")
        previous_rounds = [
            r
            for r in self.store.rounds()
            if r.status == "done" and r.number < number and not (r.metrics or {}).get("cold_start")
        ]
        if current is None or not previous_rounds:
            return metrics
        prev = (previous_rounds[-1].metrics or {}).get("eval", {}).get("eval_predictions") or {}
        common = [iid for iid in current if iid in prev]
        if common:
            a = np.array([prev[i] for i in common])
            b = np.array([current[i] for i in common])
            metrics["agreement"] = prediction_agreement(a, b)
        return metrics

    # ------------------------------------------------------------ learning curve
    def curve(self) -> list[CurvePoint]:
        """The learning curve of finished rounds, oldest first."""
        points = []
        for rnd in self.store.rounds():
            if rnd.status != "done" or rnd.metrics is None or rnd.metrics.get("cold_start"):
                continue  # a cold-start round trained no model: no point on the curve
            acc = rnd.metrics.get("eval", {}).get("accuracy")
            points.append(CurvePoint(rnd.n_labeled, acc, rnd.metrics.get("agreement")))
        return points

    def stop_reason(self, rules: StoppingRules) -> str | None:
        """Why to stop labeling now (see :class:`StoppingRules`), or None."""
        return stop_reason(self.curve(), rules)

    def queue(self) -> list[int]:
        """Image ids of the latest round's selection not yet labeled, best first.

        A fresh project (no round yet, no pool label) first runs a cold-start round
        with ``active_learner.cold_start_strategy``, once: it is recorded like any round.
        """
        rounds = self.store.rounds()
        if not rounds and self._fresh():
            self._cold_start_queue()
            rounds = self.store.rounds()
        done = [r for r in rounds if r.status == "done"]
        if not done:
            return []
        touched = self.store.labeled_image_ids()
        return [iid for iid, _ in self.store.round_selection(done[-1].number) if iid not in touched]

    def _fresh(self) -> bool:
        """Pool images and none of them labeled (cheap counts first: called on every queue read)."""
        if self.store.n_images("pool") == 0:
            return False
        return self.store.n_label_events() == 0 or not self.store.current_labels("pool")

    def _cold_start_queue(self) -> None:
        """Run the cold-start round behind a fresh queue; on failure the queue stays in file order.

        The labeling app reads the queue on every request, so a failure is logged rather
        than raised: a round that started is recorded as failed with its error, and a
        refused one (e.g. a cold-start strategy that needs a model) is refused again next time.
        """
        al = self.project.settings.active_learner
        try:
            self.run_round(al.cold_start_strategy, al.batch_size)
        except Exception as exc:
            log.warning(
                "cold-start queue (%s) not computed, serving images in file order: %s", al.cold_start_strategy, exc
            )

    def latest_model(self) -> ModelAdapter:
        """The model saved by the latest round (or ``activelab train``)."""
        path = self.models_dir / "latest"
        if not path.exists():
            raise InputError("no trained model yet: run `activelab train` or a round first")
        return load_model(path)


def _untrainable(y: np.ndarray, classes: list[str]) -> str | None:
    """Why no classifier can be trained on labels ``y`` (class indices), or None when one can."""
    if len(y) == 0:
        return "no labeled pool images yet"
    present = np.unique(y)
    if len(present) < 2:
        return f"all {len(y)} labeled pool images are of class {classes[int(present[0])]!r}"
    return None


def _pid_alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
