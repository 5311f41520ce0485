"""Fixtures shared by the loop tests: an empty store, and labels keyed by content for round trips."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from activelab.store import Store, open_store, sqlite_url

LabelsByContent = Callable[[Store], dict[tuple[str, str], str]]


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Store]:
    """An empty store to import an export back into."""
    s = open_store(sqlite_url(tmp_path / "fresh.db"))
    yield s
    s.close()


def _labels_by_content(store: Store) -> dict[tuple[str, str], str]:
    images = {img.id: img for img in store.images()}
    return {(images[i].sha256, images[i].split): c.label for i, c in store.current_labels().items()}


@pytest.fixture
def labels_by_content() -> LabelsByContent:
    """Current labels keyed by (content hash, split): equal across stores when a round trip kept them."""
    return _labels_by_content
