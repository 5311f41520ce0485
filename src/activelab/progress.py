"""Progress reporting that never prints: long-running functions report, the caller decides how to show it.

Library functions take ``progress: Progress``: ``False`` (or ``None``) reports nothing, a
:class:`ProgressReporter` reports to it, and ``True`` reports to the reporter installed with
:func:`reporting` (none by default, so library code stays silent unless a caller asks). The
CLI implements a reporter with rich; a notebook or a web app can implement their own.

    with progress_task(progress, "embedding", total=len(paths), unit="img") as task:
        for batch in batches:
            ...
            task.advance(len(batch))
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from typing import Protocol, TypeVar, runtime_checkable

T = TypeVar("T")


@runtime_checkable
class ProgressTask(Protocol):
    """One running step (embedding, training, a fold...) as seen by its reporter."""

    def advance(self, n: float = 1) -> None:
        """Mark ``n`` more units done."""

    def describe(self, description: str) -> None:
        """Replace the step's description (e.g. the current round or loss)."""


@runtime_checkable
class ProgressReporter(Protocol):
    """Something that shows steps: ``task(...)`` opens one for the duration of a ``with`` block."""

    def task(
        self, description: str, *, total: float | None = None, unit: str = "item"
    ) -> AbstractContextManager[ProgressTask]:
        """Start a step of ``total`` units (None: unknown); it ends when the block exits."""


Progress = bool | ProgressReporter | None


class _SilentTask:
    """A step nobody watches."""

    def advance(self, n: float = 1) -> None:
        pass

    def describe(self, description: str) -> None:
        pass


_SILENT = _SilentTask()
_AMBIENT: ContextVar[ProgressReporter | None] = ContextVar("activelab_progress", default=None)


def resolve(progress: Progress) -> ProgressReporter | None:
    """The reporter ``progress`` stands for (None: report nothing)."""
    if progress is True:
        return _AMBIENT.get()
    if progress is None or progress is False:
        return None
    return progress


def progress_task(
    progress: Progress, description: str, *, total: float | None = None, unit: str = "item"
) -> AbstractContextManager[ProgressTask]:
    """A step reported to ``progress``'s reporter, or a silent one."""
    reporter = resolve(progress)
    if reporter is None:
        return nullcontext(_SILENT)
    return reporter.task(description, total=total, unit=unit)


def track(
    items: Iterable[T], progress: Progress, description: str, *, total: float | None = None, unit: str = "item"
) -> Iterator[T]:
    """Iterate ``items``, advancing one unit per item (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with progress_task(progress, description, total=total, unit=unit) as task:
        for item in items:
            yield item
            task.advance(1)


@contextmanager
def reporting(reporter: ProgressReporter | None) -> Iterator[None]:
    """Within the block, ``progress=True`` reports to ``reporter`` (the CLI wraps each command in this)."""
    token = _AMBIENT.set(reporter)
    try:
        yield
    finally:
        _AMBIENT.reset(token)
