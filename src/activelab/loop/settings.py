"""Project settings: the ``activelab.yaml`` file beside (or pointing at) the store.

Sections follow what users of active-labeling tools expect (``model``, ``train``,
``active_learner``); unknown keys are rejected with the file and key named, so a
typo never silently falls back to a default.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from activelab.exceptions import InputError, NotFoundError

SETTINGS_FILE = "activelab.yaml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelSettings(_Section):
    name: str = "efficientnet_lite0"
    path: Literal["fast", "full"] = "fast"
    head: Literal["logreg", "mlp"] = "logreg"
    pretrained: bool = True
    image_size: int | None = None
    device: str | None = None


class TrainSettings(_Section):
    epochs: int = Field(10, ge=1)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=1)
    seed: int = 0


class ActiveLearnerSettings(_Section):
    strategy: str = "margin"
    cold_start_strategy: str = Field(
        "typiclust",
        description="Orders a fresh project's queue before any label "
        "exists; must need no trained model (docs/strategies.md, 'Cold start').",
    )
    batch_size: int = Field(50, ge=1)
    retrain_every: int = Field(20, ge=1)
    eval_fraction: float = Field(0.2, ge=0, lt=1)
    seed: int = 0


class LabelingSettings(_Section):
    """What labelers may change from the web app."""

    allow_new_classes: bool = Field(
        True,
        description="POST /api/classes (the page's 'add a class') may add "
        "classes; false: only `activelab classes add` can, the API answers 403.",
    )


class Settings(_Section):
    """Everything ``activelab.yaml`` may hold."""

    version: int = 1
    name: str = "activelab project"
    db: str = "sqlite:///activelab.db"
    model: ModelSettings = ModelSettings()
    train: TrainSettings = TrainSettings()
    active_learner: ActiveLearnerSettings = ActiveLearnerSettings()
    labeling: LabelingSettings = LabelingSettings()


def read_yaml_mapping(path: str | Path, what: str = "file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping; errors name the file (an empty file is ``{}``)."""
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
    if not isinstance(data, dict):
        raise InputError(f"{source} must be a mapping of sections, got {type(data).__name__}")
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise InputError(f"{source}: {problems}") from exc


def save_settings(settings: Settings, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(settings.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
