"""Experiment trackers: where per-round scalars go besides the results folder.

A tracker has ``start_run(name, config)``, ``log(metrics, step)`` and ``end_run()``.
TensorBoard (``torch.utils.tensorboard``) is always available; MLflow and Weights &
Biases (offline mode) are imported only when asked for, and raise
:class:`~activelab.exceptions.MissingDependencyError` with the install command when absent.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from activelab.exceptions import InputError, MissingDependencyError


@runtime_checkable
class Tracker(Protocol):
    """Receives one run's scalars; ``step`` is the number of labels used."""

    def start_run(self, name: str, config: Mapping[str, Any]) -> None: ...

    def log(self, metrics: Mapping[str, float], step: int) -> None: ...

    def end_run(self) -> None: ...


class TensorBoardTracker:
    """Scalars under ``log_dir/<run name>/`` (``tensorboard --logdir log_dir``)."""

    def __init__(self, log_dir: str | os.PathLike[str]) -> None:
        self.log_dir = Path(log_dir)
        self._writer: Any = None

    def start_run(self, name: str, config: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._writer = SummaryWriter(log_dir=str(self.log_dir / name))
        self._writer.add_text("config", "\n".join(f"    {k}: {v}" for k, v in config.items()))

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        for key, value in metrics.items():
            self._writer.add_scalar(key, float(value), global_step=int(step))

    def end_run(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class MLflowTracker:
    """One MLflow run per (strategy, seed); ``tracking_uri`` defaults to MLflow's own."""

    def __init__(self, tracking_uri: str | None = None, experiment: str = "activelab-simulate") -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self._mlflow: Any = None

    def start_run(self, name: str, config: Mapping[str, Any]) -> None:
        try:
            import mlflow
        except ImportError as e:
            raise MissingDependencyError("the mlflow tracker needs mlflow: pip install mlflow") from e
        self._mlflow = mlflow
        if self.tracking_uri:
            mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.set_experiment(self.experiment)
        mlflow.start_run(run_name=name)
        mlflow.log_params({k: str(v)[:250] for k, v in config.items()})

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self._mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=int(step))

    def end_run(self) -> None:
        if self._mlflow is not None:
            self._mlflow.end_run()


class WandbTracker:
    """One W&B run per (strategy, seed), offline by default (``wandb sync`` later)."""

    def __init__(
        self,
        project: str = "activelab-simulate",
        mode: str = "offline",
        directory: str | os.PathLike[str] | None = None,
    ) -> None:
        self.project = project
        self.mode = mode
        self.directory = directory
        self._run: Any = None

    def start_run(self, name: str, config: Mapping[str, Any]) -> None:
        try:
            import wandb
        except ImportError as e:
            raise MissingDependencyError("the wandb tracker needs wandb: pip install wandb") from e
        self._run = wandb.init(
            project=self.project,
            name=name,
            config=dict(config),
            mode=self.mode,
            dir=None if self.directory is None else str(self.directory),
            reinit=True,
        )

    def log(self, metrics: Mapping[str, float], step: int) -> None:
        self._run.log(dict(metrics), step=int(step))

    def end_run(self) -> None:
        if self._run is not None:
            self._run.finish()
            self._run = None


def make_tracker(name: str, directory: str | os.PathLike[str]) -> Tracker:
    """``tensorboard`` / ``mlflow`` / ``wandb`` writing under ``directory`` where the tool allows."""
    if name == "tensorboard":
        return TensorBoardTracker(directory)
    if name == "mlflow":
        return MLflowTracker(tracking_uri=Path(directory).resolve().as_uri())
    if name == "wandb":
        return WandbTracker(directory=directory)
    raise InputError(f"unknown tracker {name!r}; known: tensorboard, mlflow, wandb")
