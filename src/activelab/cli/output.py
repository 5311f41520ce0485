"""Shared CLI plumbing: error handling and tables."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from activelab.exceptions import ActivelabError

console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def friendly_errors(fn: F) -> F:
    """Print activelab's own errors as one clear line and exit 2, instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ActivelabError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(code=2) from exc

    return wrapper  # type: ignore[return-value]


def status_tables(summary: dict[str, Any], title: str) -> list[Table]:
    """Render ``Store.summary()`` as rich tables."""
    overview = Table(title=title, show_header=True)
    overview.add_column("split")
    overview.add_column("images", justify="right")
    overview.add_column("labeled", justify="right")
    overview.add_column("unlabeled", justify="right")
    for split, n in summary["images"].items():
        lab = summary["labeled"][split]
        overview.add_row(split, str(n), str(lab), str(n - lab))
    per_class = Table(title="labels per class", show_header=True)
    per_class.add_column("class")
    per_class.add_column("pool", justify="right")
    per_class.add_column("eval", justify="right")
    for name, counts in summary["per_class"].items():
        per_class.add_row(name, str(counts["pool"]), str(counts["eval"]))
    return [overview, per_class]
