"""Library progress: reported to the caller's reporter, never printed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from activelab.loop.ingest import import_images
from activelab.progress import progress_task, reporting, track
from activelab.store import open_store, sqlite_url


class Recorder:
    """A ProgressReporter that writes down what it is told."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    @contextmanager
    def task(self, description: str, *, total: float | None = None, unit: str = "item") -> Iterator[Recorder]:
        self.events.append(("start", (description, total, unit)))
        yield self
        self.events.append(("end", description))

    def advance(self, n: float = 1) -> None:
        self.events.append(("advance", n))

    def describe(self, description: str) -> None:
        self.events.append(("describe", description))


def test_track_reports_each_item_to_a_given_reporter() -> None:
    rec = Recorder()
    assert list(track("abc", rec, "letters", unit="letter")) == ["a", "b", "c"]
    assert rec.events == [
        ("start", ("letters", 3, "letter")),
        ("advance", 1),
        ("advance", 1),
        ("advance", 1),
        ("end", "letters"),
    ]


def test_true_means_the_installed_reporter_and_false_means_none() -> None:
    rec = Recorder()
    with progress_task(True, "unwatched") as task:
        task.advance(5)
    with reporting(rec):
        with progress_task(True, "watched", total=2) as task:
            task.advance(2)
        with progress_task(False, "silenced") as task:
            task.advance(1)
    assert rec.events == [("start", ("watched", 2, "item")), ("advance", 2), ("end", "watched")]


def test_import_reports_progress_and_prints_nothing(
    tmp_path: Path, sample: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    rec = Recorder()
    store = open_store(sqlite_url(tmp_path / "store.db"))
    import_images(store, sample / "pool", progress=True)
    assert capfd.readouterr() == ("", "")
    with reporting(rec):
        import_images(store, sample / "eval", split="eval", progress=True)
    assert rec.events[0] == ("start", ("importing", 200, "img"))
    assert sum(n for kind, n in rec.events if kind == "advance") == 200
    store.close()
