"""The configuration of a simulation: one dataclass, read from flags, a dict or a YAML file.

Unknown keys and wrong types raise :class:`ConfigError` naming the file, the key and
the fix. ``config_hash`` keys the results folder on everything that changes results
(dataset, model, initial set, batch size, budget), but not on the strategies and seeds
lists: adding a strategy or a seed reuses the folder and runs only what is new.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from activelab.exceptions import InputError
from activelab.loop.settings import OLD_MODE_NAMES, check_task, read_yaml_mapping

#: keys renamed in 0.x (old -> new), still read
RENAMED = {"batch_size": "k", "path": "mode"}

#: how the initial set can be chosen besides a cold-start strategy name
INITIAL_RANDOM = ("balanced", "random")


class ConfigError(InputError):
    """A simulation config with an unknown key or a bad value."""


@dataclass
class SimulationConfig:
    """Everything a simulation needs; see docs/simulation.md for each key.

    Exactly one of ``rounds`` / ``budget`` may be left None (both set: stop at the
    first reached). ``budget`` counts every label, the initial set included.
    """

    dataset: str = "digits"
    task: str = "classification"
    pool_limit: int | None = None
    eval_limit: int | None = None
    strategies: list[str] = field(default_factory=lambda: ["random", "entropy", "margin"])
    strategy_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    initial: str = "balanced"
    initial_size: int = 20
    k: int = 10
    rounds: int | None = None
    budget: int | None = 200
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    model: str = "efficientnet_lite0"
    mode: str | None = None
    head: str | None = None
    image_size: int | None = None
    model_options: dict[str, Any] = field(default_factory=dict)
    mc_samples: int = 10
    pool_subset: int | None = None
    device: str | None = None
    threads: int | None = None
    targets: list[float] = field(default_factory=lambda: [0.8, 0.9])
    output: str = "simulations"
    cache_dir: str | None = None
    plots: bool = True
    tsne: bool = True
    tsne_points: int = 2000
    tensorboard: str | None = None
    trackers: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self, source: str = "config") -> None:
        def fail(key: str, msg: str) -> None:
            raise ConfigError(f"{source}: {key}: {msg}")

        def pos_int(key: str, minimum: int = 1, optional: bool = False) -> None:
            v = getattr(self, key)
            if v is None and optional:
                return
            if not isinstance(v, int) or isinstance(v, bool) or v < minimum:
                fail(key, f"must be an integer >= {minimum}, got {v!r}")

        if not isinstance(self.dataset, str) or not self.dataset:
            fail("dataset", f"must be a dataset name or folder, got {self.dataset!r}")
        for key in (
            "pool_limit",
            "eval_limit",
            "rounds",
            "budget",
            "image_size",
            "threads",
            "pool_subset",
        ):
            pos_int(key, optional=True)
        pos_int("initial_size")
        pos_int("k")
        pos_int("mc_samples")
        pos_int("tsne_points", 10)
        if self.rounds is None and self.budget is None:
            fail(
                "rounds",
                "set rounds (acquisition rounds) or budget (total labels), or both",
            )
        if self.budget is not None and self.budget < self.initial_size:
            fail(
                "budget",
                f"the budget ({self.budget}) is smaller than the initial set ({self.initial_size})",
            )
        if (
            not isinstance(self.strategies, list)
            or not self.strategies
            or not all(isinstance(s, str) and s for s in self.strategies)
        ):
            fail(
                "strategies",
                f"must be a non-empty list of strategy names, got {self.strategies!r}",
            )
        if len(set(self.strategies)) != len(self.strategies):
            fail("strategies", f"lists a strategy twice: {self.strategies}")
        if not isinstance(self.strategy_params, dict) or not all(
            isinstance(v, dict) for v in self.strategy_params.values()
        ):
            fail(
                "strategy_params",
                "must map strategy names to dicts of parameters, e.g. {coreset: {metric: cosine}}",
            )
        extra = sorted(set(self.strategy_params) - set(self.strategies) - {self.initial})
        if extra:
            fail(
                "strategy_params",
                f"has parameters for {extra}, which are not in strategies",
            )
        if (
            not isinstance(self.seeds, list)
            or not self.seeds
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.seeds)
        ):
            fail(
                "seeds",
                f"must be a non-empty list of non-negative integers, got {self.seeds!r}",
            )
        if len(set(self.seeds)) != len(self.seeds):
            fail("seeds", f"lists a seed twice: {self.seeds}")
        self.mode = OLD_MODE_NAMES.get(self.mode, self.mode) if isinstance(self.mode, str) else self.mode
        if self.mode not in (None, "frozen", "finetune"):
            fail("mode", f"must be 'frozen' or 'finetune', got {self.mode!r}")
        try:
            check_task(self.task)
        except InputError as e:
            fail("task", str(e))
        if self.head not in (None, "logreg", "mlp"):
            fail("head", f"must be 'logreg' or 'mlp', got {self.head!r}")
        if not isinstance(self.model_options, dict):
            fail(
                "model_options",
                f"must be a mapping of model options, got {self.model_options!r}",
            )
        if not isinstance(self.targets, list) or not all(
            isinstance(t, (int, float)) and not isinstance(t, bool) and 0 < t <= 1 for t in self.targets
        ):
            fail(
                "targets",
                f"must be a list of accuracies in (0, 1], e.g. [0.8, 0.9]; got {self.targets!r}",
            )
        if not isinstance(self.trackers, list) or not all(
            t in ("tensorboard", "mlflow", "wandb") for t in self.trackers
        ):
            fail(
                "trackers",
                f"must be a list of tensorboard, mlflow, wandb; got {self.trackers!r}",
            )
        if not isinstance(self.initial, str) or not self.initial:
            fail(
                "initial",
                f"must be 'balanced', 'random' or a cold-start strategy name, got {self.initial!r}",
            )

    def check_strategies(self) -> None:
        """Fail early on unknown strategy names (needs the strategy registry)."""
        from activelab.strategies import get_strategy, required_inputs

        for name in self.strategies:
            try:
                get_strategy(name)
            except InputError as e:
                raise ConfigError(f"strategies: {e}") from None
        if self.initial not in INITIAL_RANDOM:
            try:
                needs = required_inputs(self.initial, **self.strategy_params.get(self.initial, {}))
            except InputError as e:
                raise ConfigError(f"initial: {e} (or use 'balanced' / 'random')") from None
            if needs - {"embeddings"}:
                raise ConfigError(
                    f"initial: {self.initial!r} needs {sorted(needs)}, but before the first label only "
                    "embeddings exist; use a cold-start strategy (typiclust, probcover, coreset, cluster) or 'balanced'"
                )

    # ------------------------------------------------------------------ derived
    @property
    def n_rounds(self) -> int:
        """Acquisition rounds to run (after the initial set)."""
        by_budget = math.ceil((self.budget - self.initial_size) / self.k) if self.budget is not None else None
        if self.rounds is None:
            assert by_budget is not None
            return by_budget
        return self.rounds if by_budget is None else min(self.rounds, by_budget)

    def batch_for_round(self, r: int) -> int:
        """Labels acquired in acquisition round ``r`` (1-based); the last may be cut to the budget."""
        k = self.k
        if self.budget is not None:
            k = min(k, self.budget - self.initial_size - (r - 1) * self.k)
        return k

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def result_fields(self) -> dict[str, Any]:
        """The fields that change a (strategy, seed) run's results."""
        d = self.to_dict()
        keep = (
            "dataset",
            "pool_limit",
            "eval_limit",
            "initial",
            "initial_size",
            "k",
            "rounds",
            "budget",
            "model",
            "mode",
            "head",
            "image_size",
            "model_options",
            "mc_samples",
        )
        out = {k: d[k] for k in keep}
        if self.task != "classification":  # only when not the default: older results folders keep their key
            out["task"] = self.task
        if self.pool_subset is not None:  # only when set: older results folders keep their key
            out["pool_subset"] = self.pool_subset
        if self.initial in self.strategy_params:
            out["initial_params"] = self.strategy_params[self.initial]
        if os.path.isdir(self.dataset):
            out["dataset"] = str(Path(self.dataset).resolve())
        return out

    def config_hash(self) -> str:
        """12 hex digits of sha256 over :meth:`result_fields` (the results folder's key)."""
        fields = self.result_fields()
        # hashed under the names before the 0.x renames, so existing results folders are still found
        fields["batch_size"] = fields.pop("k")
        mode = fields.pop("mode")
        fields["path"] = {new: old for old, new in OLD_MODE_NAMES.items()}.get(mode, mode)
        blob = json.dumps(fields, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def results_dir(self) -> Path:
        """``output/<dataset>-<hash>``."""
        slug = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(self.dataset).name)[:30] or "data"
        return Path(self.output) / f"{slug}-{self.config_hash()}"

    # ------------------------------------------------------------------ reading
    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> SimulationConfig:
        """Build from a mapping; unknown keys raise naming the closest known key."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: expected a mapping of keys to values at the top level, got {type(data).__name__}"
            )
        known = [f.name for f in dataclasses.fields(cls)]
        data = {RENAMED.get(key, key): value for key, value in data.items()}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ConfigError(f"{source}: unknown key {key!r}{hint} Known keys: {', '.join(known)}")
        data = dict(data)
        for key in ("strategies", "seeds", "targets", "trackers"):
            v = data.get(key)
            if isinstance(v, str):
                data[key] = _split(
                    v,
                    int if key == "seeds" else float if key == "targets" else str,
                    source,
                    key,
                )
            elif isinstance(v, (int, float)) and not isinstance(v, bool) and key in ("seeds", "targets"):
                data[key] = [v]
        cfg = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name in data:
                value = data[f.name]
            elif f.default is not dataclasses.MISSING:
                value = f.default
            else:
                value = f.default_factory()  # type: ignore[misc,operator]
            setattr(cfg, f.name, value)
        cfg.validate(source)
        return cfg

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str], **overrides: Any) -> SimulationConfig:
        """Read a YAML file; ``overrides`` (e.g. from CLI flags, None = not given) win."""
        p = Path(path)
        try:
            data = read_yaml_mapping(p, "simulation config")
        except InputError as e:
            raise ConfigError(str(e)) from None
        data.update({k: v for k, v in overrides.items() if v is not None})
        return cls.from_dict(data, source=str(p))

    def to_yaml(self) -> str:
        import yaml

        return str(yaml.safe_dump(self.to_dict(), sort_keys=False))


def _split(text: str, kind: type, source: str, key: str) -> list[Any]:
    out = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        try:
            out.append(kind(part))
        except ValueError:
            raise ConfigError(f"{source}: {key}: {part!r} is not a valid {kind.__name__}") from None
    return out
