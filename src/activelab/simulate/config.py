"""The configuration of a simulation: one pydantic model, read from flags, a dict or a YAML (or JSON) file.

Unknown keys and wrong types raise :class:`ConfigError` naming the file, the key and
the fix. ``config_hash`` keys the results folder on everything that changes results
(dataset, model, initial set, labels per round, budget), but not on the strategies and seeds
lists: adding a strategy or a seed reuses the folder and runs only what is new.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from activelab._defaults import DEFAULT_MODEL
from activelab.exceptions import ConfigError, InputError
from activelab.loop.settings import (
    DEFAULT_TASK,
    OLD_MODE_NAMES,
    BudgetUnit,
    Head,
    Mode,
    PositiveInt,
    Representation,
    Section,
    SemiSupervised,
    check_task,
    describe_validation_error,
    read_yaml_mapping,
    semi_supervised_problem,
    task_default_strategy,
)

#: how the initial set can be chosen besides a cold-start strategy name
INITIAL_RANDOM = ("balanced", "random")


def _split_commas(kind: type) -> BeforeValidator:
    """Accept ``"a,b"`` (a command-line flag) or one number where a list is expected."""

    def split(value: Any) -> Any:
        if isinstance(value, str):
            parts = [part.strip() for part in value.split(",") if part.strip()]
            try:
                return [kind(part) for part in parts]
            except ValueError:
                raise ValueError(f"{value!r} is not a comma-separated list of {kind.__name__}") from None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and kind is not str:
            return [value]
        return value

    return BeforeValidator(split)


def _unique(value: list[Any]) -> list[Any]:
    if len(set(value)) != len(value):
        raise ValueError(f"lists an entry twice: {value}")
    return value


def _default_strategies(task: str, defaults: list[str]) -> list[str]:
    """The default strategies ``task`` can feed, and its default uncertainty strategy where one of them is missing
    (detection: random and det_entropy)."""
    from activelab.strategies import required_inputs
    from activelab.tasks import get_task

    provides = get_task(task).provides
    fed = [name for name in defaults if required_inputs(name) <= provides]
    if fed == defaults:
        return defaults
    return [*fed, task_default_strategy(task)]


class SimulationConfig(Section):
    """Everything a simulation needs; see docs/simulation.md for each key.

    Shares its validation, key vocabulary (``mode``, ``head``, ``k``) and messages with
    the project settings (:mod:`activelab.loop.settings`). Exactly one of ``rounds`` /
    ``budget`` may be left None (both set: stop at the first reached). ``budget`` counts
    every label, the initial set included. ``model`` left unset is the task's default
    model, ``strategies`` left unset those of the defaults the task can feed (plus its default
    strategy where one is missing). ``budget_unit: boxes`` makes ``k`` a budget of boxes per round (each image
    costing the boxes the model predicts in it), ``budget_unit: pixels`` a budget of pixels (each image
    costing its pixels, each region of a region strategy its own); the run then lasts ``rounds`` rounds,
    which must be set, and ``budget`` (in images) is not used. A region strategy's ``k`` in images counts
    regions. ``region_method`` / ``region_size`` cut segmentation images into regions (SLIC superpixels of
    about ``region_size**2`` pixels, or ``region_size`` square patches).
    """

    model_config = ConfigDict(protected_namespaces=())  # allows the model_options key
    renamed: ClassVar[dict[str, str]] = {"batch_size": "k", "path": "mode"}

    task: str = DEFAULT_TASK
    dataset: str = Field("digits", min_length=1)
    pool_limit: PositiveInt | None = None
    eval_limit: PositiveInt | None = None
    strategies: Annotated[list[Annotated[str, Field(min_length=1)]], _split_commas(str), AfterValidator(_unique)] = (
        Field(default_factory=lambda: ["random", "entropy", "margin"], min_length=1)
    )
    strategy_params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    initial: str = Field("balanced", min_length=1)
    initial_size: PositiveInt = 20
    k: PositiveInt = 10
    budget_unit: BudgetUnit = "images"
    region_method: Literal["slic", "patch"] = "slic"
    region_size: PositiveInt = 16
    rounds: PositiveInt | None = None
    budget: PositiveInt | None = 200
    seeds: Annotated[list[Annotated[int, Field(ge=0)]], _split_commas(int), AfterValidator(_unique)] = Field(
        default_factory=lambda: [0, 1, 2], min_length=1
    )
    model: str = DEFAULT_MODEL
    mode: Mode | None = None
    head: Head | None = None
    image_size: PositiveInt | None = None
    model_options: dict[str, Any] = Field(default_factory=dict)
    semi_supervised: SemiSupervised = "none"
    representation: Representation = "fixed"
    mc_samples: PositiveInt = 10
    pool_subset: PositiveInt | None = None
    device: str | None = None
    threads: PositiveInt | None = None
    targets: Annotated[list[Annotated[float, Field(gt=0, le=1)]], _split_commas(float)] = Field(
        default_factory=lambda: [0.8, 0.9]
    )
    output: str = "simulations"
    cache_dir: str | None = None
    plots: bool = True
    tsne: bool = True
    tsne_points: int = Field(2000, ge=10)
    tensorboard: str | None = None
    trackers: list[Literal["tensorboard", "mlflow", "wandb"]] = Field(default_factory=list)

    def __init__(self, _source: str = "config", /, **data: Any) -> None:
        """Validate ``data``; a problem raises :class:`ConfigError` naming ``_source`` (a file, "command line")."""
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise ConfigError(describe_validation_error(exc, type(self), _source)) from None

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        return check_task(value)

    @model_validator(mode="after")
    def _consistent(self) -> SimulationConfig:
        if "model" not in self.model_fields_set:
            from activelab.tasks import get_task

            self.model = get_task(self.task).default_model
        if "strategies" not in self.model_fields_set:
            self.strategies = _default_strategies(self.task, self.strategies)
        if self.semi_supervised not in ("none", "auto"):  # the model table is read only for an explicit method
            problem = semi_supervised_problem(self.semi_supervised, self.model_mode, self.task)
            if problem:
                raise ValueError(problem)
        if self.budget_unit in ("boxes", "pixels"):
            if self.rounds is None:
                raise ValueError(
                    f"rounds: with budget_unit {self.budget_unit}, k counts {self.budget_unit} per round and budget "
                    "(images) is not used; set rounds"
                )
            return self._known_params()
        if self.rounds is None and self.budget is None:
            raise ValueError("rounds: set rounds (acquisition rounds) or budget (total labels), or both")
        if self.budget is not None and self.budget < self.initial_size:
            raise ValueError(
                f"budget: the budget ({self.budget}) is smaller than the initial set ({self.initial_size})"
            )
        return self._known_params()

    def _known_params(self) -> SimulationConfig:
        extra = sorted(set(self.strategy_params) - set(self.strategies) - {self.initial})
        if extra:
            raise ValueError(f"strategy_params: has parameters for {extra}, which are not in strategies")
        return self

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
    def model_mode(self) -> str:
        """``mode``, or the model's own default mode when unset."""
        if self.mode is not None:
            return self.mode
        from activelab.models.registry import find_model

        return find_model(self.model)[0].modes[0]

    @property
    def n_rounds(self) -> int:
        """Acquisition rounds to run (after the initial set)."""
        if self.budget_unit in ("boxes", "pixels"):
            assert self.rounds is not None  # _consistent requires it
            return self.rounds
        by_budget = math.ceil((self.budget - self.initial_size) / self.k) if self.budget is not None else None
        if self.rounds is None:
            assert by_budget is not None
            return by_budget
        return self.rounds if by_budget is None else min(self.rounds, by_budget)

    def batch_for_round(self, r: int) -> int:
        """Labels (images or regions, boxes, pixels) acquired in acquisition round ``r`` (1-based); the last may
        be cut to the budget in images."""
        k = self.k
        if self.budget is not None and self.budget_unit == "images":
            k = min(k, self.budget - self.initial_size - (r - 1) * self.k)
        return k

    def to_dict(self) -> dict[str, Any]:
        """Every key with its value, as a YAML or JSON file would hold it."""
        return self.model_dump(mode="json")

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
        if self.budget_unit != "images":  # only when not the default: older results folders keep their key
            out["budget_unit"] = self.budget_unit
        for key, default in (("region_method", "slic"), ("region_size", 16)):
            if getattr(self, key) != default:  # only when set: older results folders keep their key
                out[key] = getattr(self, key)
        for key, default in (("semi_supervised", "none"), ("representation", "fixed")):
            if getattr(self, key) != default:  # only when set: older results folders keep their key
                out[key] = getattr(self, key)
        if self.initial in self.strategy_params:
            out["initial_params"] = self.strategy_params[self.initial]
        if os.path.isdir(self.dataset):
            out["dataset"] = str(Path(self.dataset).resolve())
        return out

    def config_hash(self) -> str:
        """12 hex digits of sha256 over :meth:`result_fields` (the results folder's key)."""
        fields = self.result_fields()
        # hashed under the 0.1.0 names (batch_size, path: fast|full), so existing results folders are still found
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
    def from_dict(cls, data: Any, *, source: str = "config") -> SimulationConfig:
        """Build from a mapping (old key names accepted); errors name ``source``, the key and the closest known key."""
        if not isinstance(data, dict):
            raise ConfigError(
                f"{source}: expected a mapping of keys to values at the top level, got {type(data).__name__}"
            )
        return cls(source, **{str(key): value for key, value in data.items()})

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
