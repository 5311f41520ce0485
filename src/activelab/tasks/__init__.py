"""Tasks by name: ``get_task("multilabel")``. See :mod:`activelab.tasks.base` for the interface."""

from __future__ import annotations

from activelab.tasks.base import Payload, Task
from activelab.tasks.registry import check_task_name, get_task, list_tasks, register_task

__all__ = ["Payload", "Task", "check_task_name", "get_task", "list_tasks", "register_task"]
