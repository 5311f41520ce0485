"""The task registry: one name per task, everywhere (``--task``, ``task:`` in activelab.yaml, the loop).

The built-in tasks are known by name before their modules are imported, so checking a
project's ``task:`` (every command that opens a project does) costs no numpy; a task's
module is imported when :func:`get_task` first builds it.
"""

from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING

from activelab.exceptions import InputError
from activelab.tasks.base import Task

if TYPE_CHECKING:
    from activelab.tasks.masks import MaskStore

#: built-in task name -> the module whose import registers it
_BUILTINS = {
    "classification": "activelab.tasks.classification",
    "multilabel": "activelab.tasks.multilabel",
    "detection": "activelab.tasks.detection",
    "segmentation": "activelab.tasks.segmentation",
}
_TASKS: dict[str, type[Task]] = {}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator registering a task under ``cls.name``; a duplicate name (built-ins included) raises."""
    builtin_module = _BUILTINS.get(cls.name)
    if cls.name in _TASKS or (builtin_module is not None and cls.__module__ != builtin_module):
        raise ValueError(f"task {cls.name!r} is already registered")
    _TASKS[cls.name] = cls
    return cls


def list_tasks() -> list[str]:
    """Registered task names: the built-in ones, then the others in the order they were registered."""
    return [*_BUILTINS, *(name for name in _TASKS if name not in _BUILTINS)]


def check_task_name(name: str) -> str:
    """``name`` if a task is registered under it (its module is not imported); else InputError with the close names."""
    known = list_tasks()
    if name in known:
        return name
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise InputError(f"unknown task {name!r}{hint}; known: {', '.join(known)}")


def get_task(name: str, *, masks: MaskStore | None = None) -> Task:
    """A fresh instance of the task called ``name``; raises InputError with the close names.

    ``masks``: where the task keeps content-addressed mask files (a project's ``masks/`` folder;
    None: in memory). Only tasks with file payloads (segmentation) use it.
    """
    check_task_name(name)
    if name not in _TASKS:
        importlib.import_module(_BUILTINS[name])  # its @register_task adds it
    return _TASKS[name](masks=masks)
