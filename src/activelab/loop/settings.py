"""Project settings: the ``activelab.yaml`` file beside (or pointing at) the store.

Sections follow what users of active-labeling tools expect (``model``, ``train``,
``active_learner``); unknown keys are rejected with the file and key named, so a
typo never silently falls back to a default. Keys renamed since 0.1.0 (``model.path``
-> ``model.mode``, ``active_learner.batch_size`` -> ``active_learner.k``) are still
read, so older files keep working; files are always written with the new names.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from activelab._defaults import DEFAULT_MODEL
from activelab.exceptions import InputError, NotFoundError

SETTINGS_FILE = "activelab.yaml"
DEFAULT_TASK = "classification"
DEFAULT_STRATEGY = "auto"

#: the model modes' names in 0.1.0: ``path: fast | full``
OLD_MODE_NAMES = {"fast": "frozen", "full": "finetune"}


def _mode_from_old_name(value: Any) -> Any:
    return OLD_MODE_NAMES.get(value, value) if isinstance(value, str) else value


#: ``frozen``: train a light head on cached embeddings of a frozen backbone; ``finetune``: train the whole network
Mode = Annotated[Literal["frozen", "finetune"], BeforeValidator(_mode_from_old_name)]
Head = Literal["logreg", "mlp"]
#: how a round trains on the pool's unlabeled images (docs/models.md): ``auto`` is :data:`AUTO_SEMI_SUPERVISED`
SemiSupervised = Literal["none", "auto", "self_training", "label_spreading", "fixmatch"]
#: ``auto``: pick among candidate feature extractors as labels grow; ``fixed``: ``model.name`` as it is
Representation = Literal["auto", "fixed"]
BudgetUnit = Literal["images", "boxes", "pixels"]
PositiveInt = Annotated[int, Field(ge=1)]


class Section(BaseModel):
    """A settings mapping: unknown keys are errors, renamed keys (``renamed``: old -> new) still read."""

    model_config = ConfigDict(extra="forbid")
    renamed: ClassVar[dict[str, str]] = {}

    @model_validator(mode="before")
    @classmethod
    def _read_old_names(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not cls.renamed.keys() & data.keys():
            return data
        data = dict(data)
        for old, new in cls.renamed.items():
            if old in data:
                if new in data and _mode_from_old_name(data[new]) != _mode_from_old_name(data[old]):
                    raise ValueError(f"both {old!r} and {new!r} are given; keep only {new!r} (the new name of {old!r})")
                data[new] = data.pop(old)
        return data


def upgrade_keys(data: dict[str, Any]) -> dict[str, Any]:
    """A settings mapping with each section's old key names replaced by the new ones (for merging files)."""
    sections = {name: field.annotation for name, field in Settings.model_fields.items()}
    out = dict(data)
    for name, values in data.items():
        section = sections.get(name)
        if isinstance(values, dict) and isinstance(section, type) and issubclass(section, Section):
            out[name] = {section.renamed.get(key, key): value for key, value in values.items()}
    return out


def check_task(name: str) -> str:
    """``name`` if it is a registered task; otherwise an error listing the known ones."""
    from activelab.tasks import check_task_name

    return check_task_name(name)


class ModelSettings(Section):
    renamed: ClassVar[dict[str, str]] = {"path": "mode"}

    name: str = DEFAULT_MODEL
    mode: Mode = "frozen"
    head: Head = "logreg"
    pretrained: bool = True
    image_size: int | None = Field(None, ge=1)
    device: str | None = None
    options: dict[str, Any] = Field(
        default_factory=dict,
        description="The model's own options (docs/models.md), e.g. {min_steps: 100} for a detector; "
        "an option the model does not have is an error that lists those it has.",
    )
    representation: Representation = Field(
        "auto",
        description="auto: at the first rounds and whenever labels have doubled, compare candidate feature "
        "extractors on the labeled pool images and use the best, keeping model.name unless another clearly "
        "beats it (frozen mode, single-label classification; elsewhere it behaves as fixed); fixed: use "
        "model.name as it is.",
    )
    backbone_weights: str | None = Field(
        None,
        description="A state-dict file loaded over the backbone (e.g. written by `activelab pretrain`), "
        "relative to the project folder.",
    )


class TrainSettings(Section):
    epochs: int = Field(10, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    seed: int = 0
    semi_supervised: SemiSupervised = Field(
        "none",
        description="Train on the pool's unlabeled images too: self_training or label_spreading (frozen mode), "
        "fixmatch (finetune mode), auto (the mode's method; none for a task other than single-label "
        "classification) or none. Eval images are never used.",
    )


#: the semi-supervised methods each model mode can run
SEMI_SUPERVISED_METHODS: dict[str, tuple[str, ...]] = {
    "frozen": ("self_training", "label_spreading"),
    "finetune": ("fixmatch",),
}
#: what ``semi_supervised: auto`` runs in each mode (single-label classification)
AUTO_SEMI_SUPERVISED: dict[str, str] = {"frozen": "self_training", "finetune": "fixmatch"}


def semi_supervised_problem(value: str, mode: str, task: str = DEFAULT_TASK) -> str | None:
    """Why ``value`` cannot run in ``mode`` for ``task`` (naming the values that can), or None."""
    if value in ("none", "auto"):
        return None
    if task != DEFAULT_TASK:
        return (
            f"semi_supervised {value!r} trains on pseudo-labels of one class per image, which a {task!r} project "
            "does not have: use none (or auto, which is none here)"
        )
    valid = SEMI_SUPERVISED_METHODS.get(mode, ())
    if value not in valid:
        return (
            f"semi_supervised {value!r} does not run in {mode} mode: use one of "
            f"{', '.join(('none', 'auto', *valid))} (or change model.mode)"
        )
    return None


def resolve_semi_supervised(value: str, mode: str, task: str = DEFAULT_TASK) -> str:
    """The method a model option ``semi_supervised`` gets: ``auto`` becomes the mode's method
    (:data:`AUTO_SEMI_SUPERVISED`) for single-label classification and ``none`` for other tasks; an explicit
    method the mode or task cannot run raises InputError naming the valid ones."""
    problem = semi_supervised_problem(value, mode, task)
    if problem:
        raise InputError(problem)
    if value == "auto":
        return AUTO_SEMI_SUPERVISED.get(mode, "none") if task == DEFAULT_TASK else "none"
    return value


class ActiveLearnerSettings(Section):
    renamed: ClassVar[dict[str, str]] = {"batch_size": "k"}

    strategy: str = Field(
        DEFAULT_STRATEGY,
        description="The round's query strategy; unset, auto (typicality while labels are few, then class-balanced "
        "margin; before any model, the cold-start strategy) where the task feeds it, else the task's "
        "simplest uncertainty strategy (det_entropy for detection, multilabel_uncertainty for multilabel).",
    )
    cold_start_strategy: str = Field(
        "typiclust",
        description="Orders a fresh project's queue before any label "
        "exists; must need no trained model (docs/strategies.md, 'Cold start').",
    )
    k: PositiveInt = Field(50, description="Labels per round: how many images (or boxes) a round selects.")
    budget_unit: BudgetUnit = Field(
        "images",
        description="What k counts: images (regions, for a region strategy), boxes (detection: each image costs "
        "the boxes the model predicts in it, so crowded images do not win by being crowded; a cold start counts "
        "images) or pixels (segmentation: each image costs its pixels, each region its own).",
    )
    retrain_every: int = Field(20, ge=1)
    eval_fraction: float = Field(0.2, ge=0, lt=1)
    seed: int = 0


class LabelingSettings(Section):
    """What labelers may change from the web app."""

    allow_new_classes: bool = Field(
        True,
        description="POST /api/classes (the page's 'add a class') may add "
        "classes; false: only `activelab classes add` can, the API answers 403.",
    )
    proposal_threshold: float = Field(
        0.5,
        ge=0,
        le=1,
        description="Detection: the labeling page offers the model's boxes scoring at least this as proposals.",
    )


class Settings(Section):
    """Everything ``activelab.yaml`` may hold."""

    version: int = 1
    name: str = "activelab project"
    db: str = "sqlite:///activelab.db"
    task: str = Field(DEFAULT_TASK, description="What an annotation is: a registered task name (activelab.tasks).")
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    active_learner: ActiveLearnerSettings = ActiveLearnerSettings()
    labeling: LabelingSettings = LabelingSettings()

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        return check_task(value)

    @model_validator(mode="after")
    def _task_defaults(self) -> Settings:
        """A model left unnamed is the task's default (a detector for detection), in that model's own
        mode and with its own weights where those are left unset too; a strategy left unset is one
        the task can feed (:func:`task_default_strategy`)."""
        if "name" not in self.model.model_fields_set:
            self.model = task_default_model(self.task, self.model)
            if self.model.name != DEFAULT_MODEL:
                self.train = model_train_defaults(self.task, self.model, self.train)
        if "strategy" not in self.active_learner.model_fields_set:
            self.active_learner.strategy = task_default_strategy(self.task)
        problem = semi_supervised_problem(self.train.semi_supervised, self.model.mode, self.task)
        if problem:
            raise ValueError(f"train.{problem}")
        return self


def task_default_model(task: str, model: ModelSettings) -> ModelSettings:
    """``model`` with its name set to ``task``'s default model; its mode and weights follow that model
    where ``model`` leaves them unset (the model table is read only for a model other than DEFAULT_MODEL)."""
    from activelab.tasks import get_task

    name = get_task(task).default_model
    if name == DEFAULT_MODEL:
        return model.model_copy(update={"name": name})
    from activelab.loop.round import model_settings  # the model table: imported only for such a task

    given = model.model_fields_set
    resolved = model_settings(
        name,
        mode=model.mode if "mode" in given else None,
        head=model.head,
        pretrained=model.pretrained if "pretrained" in given else None,
        device=model.device,
    )
    return resolved.model_copy(update={"image_size": model.image_size})


def model_train_defaults(task: str, model: ModelSettings, train: TrainSettings) -> TrainSettings:
    """``train`` with the epochs, learning rate and batch size it leaves unset taken from ``model``'s own
    defaults (a detector's batch of 8 images, not a classifier's 64): the task chose the model, so its
    recipe comes with it. The model is built without weights or a network to read them."""
    unset = {"epochs", "lr", "batch_size"} - train.model_fields_set
    if not unset:
        return train
    from activelab.models import create_model
    from activelab.tasks import get_task

    probe = create_model(
        model.name,
        classes=["background", "object"],
        mode=model.mode,
        pretrained=False,
        **get_task(task).model_options(),
    )
    options = probe.config.get("options", {})
    return train.model_copy(update={key: options[key] for key in sorted(unset) if key in options})


def task_default_strategy(task: str) -> str:
    """:data:`DEFAULT_STRATEGY` where ``task`` provides what it reads; otherwise the strategy with the fewest
    inputs among those that read ``task``'s predictions (ties by name): the simplest uncertainty measure the
    task can feed (``det_entropy`` for detection, ``multilabel_uncertainty`` for multi-label, ``seg_entropy``
    for segmentation). A strategy reading only what single-label classification also provides comes after the
    task's own: segmentation's per-image ``mc_probs`` feed ``seg_bald``, not classification's ``bald``."""
    from activelab.strategies import list_strategies, required_inputs
    from activelab.tasks import get_task

    provides = get_task(task).provides
    if required_inputs(DEFAULT_STRATEGY) <= provides:
        return DEFAULT_STRATEGY
    from activelab.loop.inputs import MODEL_FREE_INPUTS  # loads the models (torch): only for such a task

    fed = [name for name in list_strategies() if required_inputs(name) <= provides]
    uncertain = [name for name in fed if not required_inputs(name) <= MODEL_FREE_INPUTS]
    generic = get_task(DEFAULT_TASK).provides
    return min(uncertain, key=lambda name: (required_inputs(name) <= generic, len(required_inputs(name)), name))


def describe_validation_error(exc: ValidationError, model: type[BaseModel], source: str) -> str:
    """One line per problem, naming ``source`` and the key; an unknown key gets the closest known one."""
    problems = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"]]
        if err["type"] == "extra_forbidden":
            problems.append(_unknown_key(model, loc, source))
        else:
            key = ".".join(loc)
            msg = str(err["msg"]).removeprefix("Value error, ")
            problems.append(f"{source}: {key}: {msg}" if key else f"{source}: {msg}")
    return "; ".join(problems)


def _unknown_key(model: type[BaseModel], loc: list[str], source: str) -> str:
    *sections, key = loc
    for name in sections:
        inner = model.model_fields[name].annotation if name in model.model_fields else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            break
        model = inner
    known = list(model.model_fields)
    renamed: dict[str, str] = getattr(model, "renamed", {})
    where = f"{source} (section {'.'.join(sections)!r})" if sections else source
    close = difflib.get_close_matches(key, known + list(renamed), n=1)
    if not close:
        hint = ""
    elif close[0] in renamed:
        hint = f"; did you mean {renamed[close[0]]!r} (formerly {close[0]!r})?"
    else:
        hint = f"; did you mean {close[0]!r}?"
    return f"unknown key {key!r} in {where}{hint} Known keys: {', '.join(known)}"


def read_yaml_mapping(path: str | Path, what: str = "file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping; errors name the file (an empty file is ``{}``)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"no {what} at {path}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise InputError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise InputError(f"{path} must be a mapping of keys to values at the top level, got {type(data).__name__}")
    return data


def load_settings(path: str | Path) -> Settings:
    """Read and validate a settings file; errors name the file and the offending key."""
    return parse_settings(read_yaml_mapping(path, "settings file"), source=str(path))


def parse_settings(data: Any, *, source: str = "settings") -> Settings:
    """Validate a mapping of sections (old key names accepted); errors name ``source`` and the key."""
    if not isinstance(data, dict):
        raise InputError(f"{source} must be a mapping of sections, got {type(data).__name__}")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise InputError(describe_validation_error(exc, Settings, source)) from exc


def save_settings(settings: Settings, path: str | Path) -> None:
    """Write ``settings`` as YAML, with the current key names."""
    import yaml

    Path(path).write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
