"""The active-learning session: train on the current annotations, score the pool, select, record.

The project's task (``task:`` in ``activelab.yaml``) reads the annotations into training
targets, turns model outputs into what strategies read, predictions and metrics; the
round itself is the loop's one :func:`~activelab.loop.round.play_round`. This is the only place that converts between the store's stable image ids and
the positions 0..N-1 that strategies and models see. Everything that can refuse a
round (unknown strategy, nothing left to select, too few labels, a model that
cannot give what the strategy reads) is checked before the store records it, so a
refused round leaves nothing behind. A round is then recorded as ``running`` and
completed (metrics + ranked selection) in one transaction at the end, so a round
killed half-way leaves no half-written result; the next round marks it ``failed``.

Cold start: before a model can be trained (no labels, or one distinct annotation), a strategy that
needs only embeddings (``random``, ``typiclust``, ``probcover``... read from the
registry's ``requires``) selects from the project's frozen backbone embeddings,
and no model is trained or saved.

Semi-supervised training (``train.semi_supervised``) and the representation choice
(``model.representation: auto``) are recorded with each round: ``metrics["n_unlabeled"]`` and
``metrics["semi_supervised"]`` (the unlabeled pool images the fit used, and how), and
``metrics["representation"]`` (the candidate in use, and the comparison when the round chose it).

Region rounds (segmentation, a strategy registered with ``unit="regions"``): the round asks for
the pixels of the regions it picked in each selected image. Each image's asked pixels are put
in the project's mask store (``masks/``) as a ``(H, W) uint8`` mask, 1 = asked, and its key is
recorded on the image's selection row (``Store.asked_mask_key(image_id)``, ``Store.round_asked``).
An image with some labeled pixels trains on them and stays selectable, region by region, until
no pixel of it is left unlabeled.
"""

from __future__ import annotations

import dataclasses
import json
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
from activelab.loop.input_size import InputSize, pool_native_side, resolve_input_size
from activelab.loop.inputs import check_capabilities, check_task, cold_start_strategies, needs_model
from activelab.loop.project import Project
from activelab.loop.round import (
    EvalSet,
    Images,
    Pool,
    RepresentationState,
    build_model,
    candidate_settings,
    chooses_representation,
    fit_on_pool,
    play_round,
    rechoose_representation,
)
from activelab.loop.stopping import CurvePoint, StoppingRules, stop_reason
from activelab.models import FitReport, ModelAdapter, load_model
from activelab.store import ImageRef, Store
from activelab.strategies import required_inputs
from activelab.tasks import Payload, Task
from activelab.tasks.masks import IGNORE

ModelFactory = Callable[[list[str]], ModelAdapter]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LabeledSet:
    """Images with a current annotation, in store order: paths, content hashes, payloads, the task's targets."""

    image_ids: list[int]
    paths: list[str]
    keys: list[str]
    payloads: list[Payload]
    y: np.ndarray  # (N,) class positions, (N, C) 0/1 (multi-label) or (N,) per-image box dicts (detection)

    @property
    def images(self) -> Images:
        return Images(self.paths, self.keys)


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
    asked: dict[int, str] = field(default_factory=dict)  # image id -> asked-pixels mask key (a region round)


class ActiveSession:
    """Rounds of train -> score -> select over one project, for the project's task.

    ``model_factory(classes)`` builds a fresh adapter each round; by default it
    follows the project's ``model`` settings (:func:`~activelab.loop.round.build_model`),
    with the embedding cache in the project's ``cache/`` folder, and a fine-tuned model
    picks up where the previous round's left off (see :meth:`_warm_start`).
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
        self._representation: RepresentationState | None = None  # set by a round that chose one

    @property
    def store(self) -> Store:
        return self.project.store

    @property
    def task(self) -> Task:
        return self.project.task()

    @property
    def models_dir(self) -> Path:
        return self.project.root / "models"

    @property
    def rounds_dir(self) -> Path:
        return self.project.root / "rounds"

    def _settings_model(self, classes: list[str]) -> ModelAdapter:
        settings = self.project.settings
        model, image_size = settings.model, resolve_input_size(self.project).pixels
        state = self.representation()
        if state is not None:
            model = candidate_settings(model, state.candidate)
            image_size = state.candidate.image_size or image_size
        fresh = build_model(
            model,
            classes,
            task=self.task,
            cache_dir=self.project.cache_dir / "embeddings",
            image_size=image_size,
            train=settings.train,
            root=self.project.root,
        )
        return self._warm_start(fresh)

    # ------------------------------------------------------- representation
    def representation(self) -> RepresentationState | None:
        """The feature extractor rounds use under ``model.representation: auto``: this session's latest choice,
        else the one the latest finished round recorded; None with ``fixed`` (or before any choice)."""
        if not chooses_representation(self.project.settings.model, self.task):
            return None
        if self._representation is not None:
            return self._representation
        for rnd in reversed(self.store.rounds()):
            record = (rnd.metrics or {}).get("representation") if rnd.status == "done" else None
            if record:
                return RepresentationState.from_record(record)
        return None

    def _rechoose(self, pool: Pool, classes: list[str], seed: int) -> RepresentationState | None:
        """Compare the candidate extractors on the labeled pool images where the rule says so (see
        :func:`~activelab.loop.round.rechoose_representation`); the state the round uses, or None."""
        settings = self.project.settings
        if self.model_factory != self._settings_model or not chooses_representation(settings.model, self.task):
            return None
        from activelab.loop.pretrain import candidate_weights

        rows = np.flatnonzero(pool.trained)
        state = rechoose_representation(
            self.representation(),
            pool.images.take(rows),
            pool.targets[rows],
            len(classes),
            name=settings.model.name,
            image_size=resolve_input_size(self.project).pixels,
            native_size=pool_native_side(self.project),
            ssl_weights=candidate_weights(self.project),
            cache_dir=self.project.cache_dir / "embeddings",
            device=settings.model.device,
            seed=seed,
            progress=self.progress,
        )
        if state is not None and state.choice is not None:
            self._representation = state
        return state

    def _warm_start(self, fresh: ModelAdapter) -> ModelAdapter:
        """The previous round's saved model instead of ``fresh`` when it is the same fine-tuned network (same
        name, backbone, classes and options): a model whose ``fit`` continues from its weights (a detector)
        then trains on from the last round's instead of from scratch; one whose ``fit`` starts afresh (a
        fine-tuned classifier) trains as it would have. Frozen mode always builds fresh (its head refits in
        seconds, and a loaded copy would lose the project's embedding cache)."""
        latest = self.models_dir / "latest"
        if getattr(fresh, "mode", None) != "finetune" or not latest.exists():
            return fresh
        try:
            previous = load_model(latest, device=self.project.settings.model.device)
        except (InputError, OSError) as exc:
            log.warning("not warm-starting from %s (%s): training a fresh model", latest, exc)
            return fresh
        return previous if previous.config == fresh.config else fresh

    # ----------------------------------------------------------- data views
    def _payloads(self, split: str) -> dict[int, Payload]:
        """Image id -> current annotation payload of the images of ``split`` that have one."""
        return {iid: a.payload for iid, a in self.store.current_annotations(split).items()}

    def labeled_set(self, split: str) -> LabeledSet:
        """Images of ``split`` with a current annotation, and their training targets."""
        payloads = self._payloads(split)
        images = [img for img in self.store.image_refs(split) if img.id in payloads]
        labeled = [payloads[img.id] for img in images]
        return LabeledSet(
            [img.id for img in images],
            [img.path for img in images],
            [img.sha256 for img in images],
            labeled,
            self.task.targets(labeled, self.store.class_names()),
        )

    def pool(self) -> tuple[list[ImageRef], Pool, list[Payload]]:
        """Pool images, the round's view of them, and the payloads it trains on (in pool order).

        An image is excluded from selection once it has any label event, even
        one that withdrew its label ("unsure"): nobody is asked twice. The exception is an
        image labeled in part (a mask with unlabeled pixels): a region strategy may still
        ask for its unlabeled regions (an image strategy never picks a trained image).
        """
        images = self.store.image_refs("pool")
        payloads = self._payloads("pool")
        touched = self.store.labeled_image_ids()
        trained = np.array([img.id in payloads for img in images], dtype=bool)
        labeled = [payloads[img.id] for img in images if img.id in payloads]
        classes = self.store.class_names()
        targets = self.task.targets(labeled, classes)
        full = _no_targets(targets, len(images))
        full[trained] = targets
        exclude = np.array([img.id in touched for img in images], dtype=bool)
        exclude[trained] = [not _partly_labeled(target) for target in targets]
        pool = Pool(Images([img.path for img in images], [img.sha256 for img in images]), full, trained, exclude)
        return images, pool, labeled

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

    def train(self, *, seed: int | None = None) -> tuple[ModelAdapter, dict[str, Any]]:
        """Fit a fresh model on the current pool annotations; evaluate it on the eval split."""
        classes = self.store.class_names()
        train = self.labeled_set("pool")
        problem = self._untrainable(train.payloads)
        if problem:
            raise InputError(f"cannot train: {problem}; label images of at least two classes (or import labels) first")
        seed = self.project.settings.train.seed if seed is None else seed
        model = self.model_factory(classes)
        _, pool, _ = self.pool()
        report = fit_on_pool(model, pool, seed=seed, progress=self.progress)
        metrics: dict[str, Any] = {"n_labeled": len(train.image_ids), **_semi_supervised(report)}
        state = self.representation()
        if state is not None:
            metrics["representation"] = dataclasses.replace(state, choice=None).to_record()
        metrics["fit"] = report.to_dict()
        metrics.update(self.evaluate(model))
        return model, metrics

    def evaluate(self, model: ModelAdapter) -> dict[str, Any]:
        """Eval-split metrics (empty when no eval image is labeled)."""
        evals = self.labeled_set("eval")
        if not evals.image_ids:
            return {}
        outputs = model.predict_proba(evals.paths, keys=evals.keys, progress=self.progress)
        # scored at the task's default rule, as rounds are (play_round): tuned thresholds only shape predictions
        metrics = self.task.metrics(evals.y, outputs, self.store.class_names())
        thresholds = self.task.choose_thresholds(evals.y, outputs)
        return {"eval": {**metrics, "eval_predictions": self._eval_predictions(evals, outputs, thresholds)}}

    def _eval_predictions(
        self, evals: LabeledSet, outputs: np.ndarray, thresholds: np.ndarray | None
    ) -> dict[str, Any]:
        """Image id -> the predicted target (a class position, or a 0/1 row): what round agreement compares.

        Empty for a task whose targets are per-image objects (detection's boxes, segmentation's
        masks): Cohen's kappa compares decisions per image, and keeping every predicted box or
        mask of every eval image in each round's record would only weigh it down.
        """
        if evals.y.dtype == object:  # per-image objects (boxes, masks): decoding would only store predicted masks
            return {}
        classes = self.store.class_names()
        decoded = self.task.decode(outputs, classes, thresholds=thresholds)
        predicted = self.task.targets([payload for payload, _ in decoded], classes)
        return {str(i): p for i, p in zip(evals.image_ids, predicted.tolist())}

    def _untrainable(self, payloads: list[Payload]) -> str | None:
        """Why no model can be trained on the labeled pool ``payloads`` (fewer than two distinct ones), or None."""
        if not payloads:
            return "no labeled pool images yet"
        if len({json.dumps(p, sort_keys=True) for p in payloads}) >= 2:
            return None
        return f"all {len(payloads)} labeled pool images are labeled {self.task.format(payloads[0])!r}"

    def _plan(self, strategy: str, params: dict[str, Any], pool: Pool, payloads: list[Payload]) -> ModelAdapter | None:
        """Refuse an invalid round before anything is recorded; the checked model to train (None: a cold start)."""
        model_needed = needs_model(strategy, params)  # unknown strategy names fail here
        if not len(pool.images):
            raise InputError("the pool has no images: import some with `activelab import PROJECT FOLDER`")
        if pool.labeled.all():
            raise InputError("every pool image is already labeled: import more images to select from")
        problem = self._untrainable(payloads)
        if problem:
            if not model_needed:
                check_capabilities(self.task, strategy, params, None)
                return None
            cold = self.project.settings.active_learner.cold_start_strategy
            raise InputError(
                f"strategy {strategy!r} reads {sorted(required_inputs(strategy, **params))}, which needs a trained "
                f"model, but {problem}. Label a few images of at least two classes, or start with a strategy that "
                f"needs no model: {', '.join(cold_start_strategies(self.task))} (the app's fresh queue uses {cold!r}, "
                "active_learner.cold_start_strategy)"
            )
        check_task(self.task, strategy, params)  # before building a model: the task alone can refuse
        model = self.model_factory(self.store.class_names())
        check_capabilities(self.task, strategy, params, model)
        return model

    def run_round(
        self, strategy: str | None = None, k: int | None = None, *, seed: int | None = None, **params: Any
    ) -> RoundResult:
        """One round: train, evaluate, score the unlabeled pool, select ``k``, record it all.

        ``k`` counts ``active_learner.budget_unit`` (images, or boxes). Before a model can be
        trained, a strategy that needs only embeddings runs a cold-start round instead (see
        the module docstring; it counts ``k`` in images, having no predictions to count boxes in);
        one that needs a model is refused.
        """
        al = self.project.settings.active_learner
        strategy = strategy or al.strategy
        k = k or al.k
        seed = al.seed if seed is None else seed
        needs_model(strategy, params)  # unknown names fail before any work
        self.recover()
        images, pool, payloads = self.pool()
        if strategy == "auto" and self._untrainable(payloads):
            # auto's first phase is typicality, which is what a cold start runs: before any model, the project's
            # cold-start strategy (typiclust by default) stands in for it
            strategy, params = al.cold_start_strategy, {}
        model = self._plan(strategy, params, pool, payloads)
        budget_unit = al.budget_unit if model is not None else "images"
        input_size = resolve_input_size(self.project)
        config = {
            "strategy": strategy,
            "k": k,
            "seed": seed,
            "params": params,
            "budget_unit": budget_unit,
            "cold_start": model is None,
            "task": self.task.name,
            "model": self.project.settings.model.model_dump(),
            "_owner": {"host": socket.gethostname(), "pid": os.getpid()},
        }
        number = self.store.start_round(
            strategy=strategy,
            model=self.project.settings.model.name,
            config=config,
            n_labeled=int(pool.trained.sum()),
        )
        evals = self.labeled_set("eval") if model is not None else None
        classes = self.store.class_names()
        representation = None
        choosing = 0.0
        try:
            embedder = None
            if model is None and "embeddings" in required_inputs(strategy, **params):
                embedder = embedding_model(self.project)
            if model is not None:
                started = time.perf_counter()
                representation = self._rechoose(pool, classes, seed)
                choosing = time.perf_counter() - started
                if representation is not None and representation.choice is not None:
                    model = self.model_factory(classes)  # built from the candidate just chosen
                    check_capabilities(self.task, strategy, params, model)
            outcome = play_round(
                self.task,
                model,
                pool,
                strategy,
                k,
                classes=classes,
                seed=seed,
                rng=np.random.default_rng([seed, number]),
                params=params,
                evaluation=EvalSet(evals.images, evals.y) if evals and evals.image_ids else None,
                embedder=embedder,
                budget_unit=budget_unit,
                progress=self.progress,
            )
        except BaseException as exc:
            self.store.fail_round(number, f"{type(exc).__name__}: {exc}")
            raise
        selected = [images[int(p)].id for p in outcome.positions]
        asked = self._store_asked(images, outcome.asked)
        metrics: dict[str, Any] = {"n_labeled": int(pool.trained.sum()), "headline": self.task.headline}
        if outcome.asked is not None:
            metrics["asked_pixels"] = int(sum(int(mask.sum()) for mask in outcome.asked.values()))
        if outcome.model is None:
            scores: list[float | None] = [None] * len(selected)
            metrics.update(cold_start=True, embedding_model=None if embedder is None else embedder.name)
            metrics["seconds"] = {
                "embed": outcome.seconds.get("score_pool", 0.0),
                "select": outcome.seconds.get("select", 0.0),
            }
            self.store.finish_round(number, metrics=metrics, selection=list(zip(selected, scores)), asked=asked)
            return RoundResult(number, strategy, selected, scores, metrics, metrics["seconds"], input_size, asked)
        assert outcome.fit is not None
        metrics.update(_semi_supervised(outcome.fit))
        if representation is not None:
            metrics["representation"] = representation.to_record()
        metrics["fit"] = outcome.fit.to_dict()
        if evals and evals.image_ids and outcome.eval_outputs is not None:
            predictions = self._eval_predictions(evals, outcome.eval_outputs, outcome.thresholds)
            metrics["eval"] = {**outcome.metrics, "eval_predictions": predictions}
        decoded = self.task.decode(outcome.picked_outputs(pool), classes, thresholds=outcome.thresholds)
        scores = [confidence for _, confidence in decoded]
        hints = [(iid, payload, confidence) for iid, (payload, confidence) in zip(selected, decoded)]
        metrics = self._with_agreement(number, metrics)
        metrics["seconds"] = dict(outcome.seconds)
        if representation is not None and representation.choice is not None:
            metrics["seconds"]["representation"] = choosing
        self.models_dir.mkdir(parents=True, exist_ok=True)
        outcome.model.save(self.models_dir / "latest")
        self.store.finish_round(
            number, metrics=metrics, selection=list(zip(selected, scores)), predictions=hints, asked=asked
        )
        return RoundResult(number, strategy, selected, scores, metrics, metrics["seconds"], input_size, asked)

    def _store_asked(self, images: list[ImageRef], asked: dict[int, np.ndarray] | None) -> dict[int, str]:
        """Put each picked image's asked pixels (pool position -> ``(H, W)`` bool) in the project's mask store
        as a uint8 mask, 1 = asked; image id -> its key (empty for an image strategy: whole images asked)."""
        if not asked:
            return {}
        masks = self.project.mask_store()
        return {images[position].id: masks.put(mask.astype(np.uint8)) for position, mask in asked.items()}

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
            if a.shape == b.shape:  # a class added between the rounds changes a multi-label row's length
                metrics["agreement"] = prediction_agreement(a.ravel(), b.ravel())
        return metrics

    # ------------------------------------------------------------ learning curve
    def curve(self) -> list[CurvePoint]:
        """The learning curve of finished rounds, oldest first, in the task's headline metric."""
        points = []
        for rnd in self.store.rounds():
            if rnd.status != "done" or rnd.metrics is None or rnd.metrics.get("cold_start"):
                continue  # a cold-start round trained no model: no point on the curve
            acc = rnd.metrics.get("eval", {}).get(self.task.headline)
            points.append(CurvePoint(rnd.n_labeled, acc, rnd.metrics.get("agreement")))
        return points

    def stop_reason(self, rules: StoppingRules) -> str | None:
        """Why to stop labeling now (see :class:`StoppingRules`), or None."""
        return stop_reason(self.curve(), rules)

    def queue(self) -> list[int]:
        """Image ids of the latest round's selection not yet labeled, best first.

        A fresh project (no round yet, no pool label) first runs a cold-start round
        with ``active_learner.cold_start_strategy``, once: it is recorded like any round.
        A region round may ask again for an image labeled in part before it: such an image
        leaves the queue once it has a label event made after the round started.
        """
        rounds = self.store.rounds()
        if not rounds and self._fresh():
            self._cold_start_queue()
            rounds = self.store.rounds()
        done = [r for r in rounds if r.status == "done"]
        if not done:
            return []
        latest = done[-1]
        touched = self.store.labeled_image_ids()
        asked = self.store.round_asked(latest.number)
        if asked:
            since = self.store.labeled_image_ids(since=latest.started_at)
            touched = (touched - asked.keys()) | since
        return [iid for iid, _ in self.store.round_selection(latest.number) if iid not in touched]

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
            self.run_round(al.cold_start_strategy, al.k)
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


def _semi_supervised(report: FitReport) -> dict[str, Any]:
    """What a round records of its fit's semi-supervised training: the method and the unlabeled images used."""
    return {"semi_supervised": report.semi_supervised, "n_unlabeled": report.n_unlabeled}


def _partly_labeled(target: Any) -> bool:
    """Whether a training target is a mask with pixels nobody labeled yet (IGNORE)."""
    return isinstance(target, np.ndarray) and target.ndim == 2 and bool((target == IGNORE).any())


def _no_targets(targets: np.ndarray, n: int) -> np.ndarray:
    """``n`` rows of "no target" in the layout of ``targets``: ``-1`` for class targets, None for per-image dicts."""
    if targets.dtype == object:
        return np.full(n, None, dtype=object)
    return np.full((n, *targets.shape[1:]), -1, dtype=np.int64)


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
