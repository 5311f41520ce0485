"""Shared CLI plumbing: one error style, one table style, JSON output and rich progress."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from datetime import timedelta
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from activelab.exceptions import ActivelabError
from activelab.progress import ProgressReporter, progress_task, reporting

# soft_wrap: messages are never broken mid-path by rich (the terminal wraps them); tables still fit the width
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])


def print_error(message: str) -> None:
    """The one error style of every command: ``error: ...`` on stderr, never wrapped mid-path."""
    err_console.print(Text.assemble(("error:", "bold red"), " ", message), highlight=False, soft_wrap=True)


def friendly_errors(fn: F) -> F:
    """Print activelab's own errors as one clear line and exit 2, instead of a traceback.

    The command also runs with the CLI's progress reporter installed, so library code
    called with ``progress=True`` shows rich bars (unless ``--quiet`` or output is piped).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            with reporting(cli_progress()):
                return fn(*args, **kwargs)
        except ActivelabError as exc:
            print_error(str(exc))
            raise typer.Exit(code=2) from exc

    return wrapper  # type: ignore[return-value]


_QUIET: ContextVar[bool] = ContextVar("activelab_cli_quiet", default=False)


def set_quiet(quiet: bool) -> None:
    """Record the global ``--quiet`` flag (the app's callback runs before every command)."""
    _QUIET.set(quiet)


def is_quiet() -> bool:
    """True under the global ``--quiet`` flag or when stdout is not a terminal."""
    return _QUIET.get() or not console.is_terminal


class RichProgress:
    """The CLI's :class:`~activelab.progress.ProgressReporter`: one rich display on stderr, a bar per step.

    Steps nest (a round trains, and training embeds): they share one live display, which
    rich requires, and each bar disappears when its step ends.
    """

    def __init__(self, target: Console) -> None:
        self.display = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            _CountColumn(),
            TimeElapsedColumn(),
            console=target,
            transient=True,
        )
        self.open_steps = 0

    @contextmanager
    def task(self, description: str, *, total: float | None = None, unit: str = "item") -> Iterator[_RichTask]:
        """Show a bar until the block exits (a pulsing one, without a count, when ``total`` is unknown)."""
        if self.open_steps == 0:
            self.display.start()
        self.open_steps += 1
        task_id = self.display.add_task(description, total=total, unit=unit)
        self.display.refresh()  # shown at once, not at the next tick: a step may be quick
        try:
            yield _RichTask(self.display, task_id)
        finally:
            self.display.refresh()
            self.display.remove_task(task_id)
            self.open_steps -= 1
            if self.open_steps == 0:
                self.display.stop()


class _CountColumn(ProgressColumn):
    """``250/500 img, eta 0:00:12`` for a counted step; nothing for a step without a count."""

    def render(self, task: Task) -> Text:
        if task.total is None:
            return Text("")
        eta = "" if task.time_remaining is None else f", eta {timedelta(seconds=round(task.time_remaining))}"
        return Text(f"{task.completed:.0f}/{task.total:.0f} {task.fields['unit']}{eta}", style="progress.download")


class _RichTask:
    def __init__(self, bar: Progress, task_id: Any) -> None:
        self.bar, self.task_id = bar, task_id

    def advance(self, n: float = 1) -> None:
        self.bar.advance(self.task_id, n)

    def describe(self, description: str) -> None:
        self.bar.update(self.task_id, description=description)


def cli_progress() -> ProgressReporter | None:
    """The reporter installed around every command: rich bars on stderr, or None when quiet."""
    return None if is_quiet() else RichProgress(Console(stderr=True))  # a new console sees today's terminal


def status_line(message: str) -> AbstractContextManager[Any]:
    """A step without a count (training, a whole round) in the same display as the bars inside it."""
    return progress_task(True, message)


def print_json(data: Any) -> None:
    """Machine-readable output of ``--json``: plain JSON on stdout, nothing else."""
    typer.echo(json.dumps(data, indent=2, default=_plain))


def _plain(value: Any) -> Any:
    """numpy scalars as Python numbers, anything else (paths, times) as text."""
    return value.item() if hasattr(value, "item") else str(value)


def result_table(
    title: str | None, columns: list[tuple[str, str]], rows: list[list[str]], caption: str | None = None
) -> Table:
    """The one table style of every command: ``columns`` are (name, "left"|"right")."""
    table = Table(title=title, caption=caption, show_header=True, title_justify="left", caption_justify="left")
    for name, justify in columns:
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for row in rows:
        table.add_row(*row)
    return table


def status_tables(summary: dict[str, Any], title: str) -> list[Table]:
    """Render ``Store.summary()`` as rich tables (a project of masks has no per-image class counts: its
    ``labeled_pixels`` line says what is labeled)."""
    splits = [
        [split, str(n), str(summary["labeled"][split]), str(n - summary["labeled"][split])]
        for split, n in summary["images"].items()
    ]
    overview = result_table(
        title, [("split", "left"), ("images", "right"), ("labeled", "right"), ("unlabeled", "right")], splits
    )
    per_class = result_table(
        "labels per class",
        [("class", "left"), ("pool", "right"), ("eval", "right")],
        [[name, str(c["pool"]), str(c["eval"])] for name, c in summary["per_class"].items()],
    )
    return [overview] if "labeled_pixels" in summary else [overview, per_class]
