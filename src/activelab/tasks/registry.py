"""The task registry: one name per task, everywhere (``--task``, ``task:`` in activelab.yaml, the loop)."""

from __future__ import annotations

import difflib

from activelab.exceptions import InputError
from activelab.tasks.base import Task

_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator registering a task under ``cls.name``; a duplicate name raises."""
    if cls.name in _TASKS:
        raise ValueError(f"task {cls.name!r} is already registered")
    _TASKS[cls.name] = cls
    return cls


def _load_builtins() -> None:
    from activelab.tasks import classification, multilabel  # noqa: F401  (registers them)


def list_tasks() -> list[str]:
    """Registered task names, in the order they were registered."""
    _load_builtins()
    return list(_TASKS)


def get_task(name: str) -> Task:
    """A fresh instance of the task called ``name``; raises InputError with the close names."""
    _load_builtins()
    try:
        return _TASKS[name]()
    except KeyError:
        close = difflib.get_close_matches(name, list(_TASKS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise InputError(f"unknown task {name!r}{hint}; known: {', '.join(_TASKS)}") from None
