"""Fixtures shared by the loop tests: an empty store, labels keyed by content for round trips, one embedding
cache for the rounds, and a tiny real multi-label set."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project
from activelab.loop.settings import SETTINGS_FILE, save_settings
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


@pytest.fixture(scope="session")
def shared_embeddings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the loop tests: the real backbone embeds each image once per test run."""
    return tmp_path_factory.mktemp("embeddings")


def share_embeddings(project: Project, cache: Path) -> Project:
    """Point ``project``'s embedding cache at ``cache`` (keyed by model, input size and content: safe to share)."""
    project.cache_dir.mkdir(parents=True, exist_ok=True)
    (project.cache_dir / "embeddings").symlink_to(cache, target_is_directory=True)
    return project


@pytest.fixture(scope="session")
def pairs(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """A tiny real multi-label set: two sample images side by side (28x56 px), labeled with both classes.

    ``{"pool": [(path, classes)] * 60, "eval": [(path, classes)] * 30}``; the two halves are of
    different classes, so every image carries exactly two.
    """
    folder = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(0)
    out: dict[str, list[tuple[str, list[str]]]] = {}
    for split, n in (("pool", 60), ("eval", 30)):
        table = pd.read_csv(sample / f"{split}.csv")
        rows: list[tuple[str, list[str]]] = []
        while len(rows) < n:
            a, b = rng.choice(len(table), size=2, replace=False)
            if table.label[a] == table.label[b]:
                continue
            left, right = (np.asarray(Image.open(sample / table.filepath[i]).convert("L")) for i in (a, b))
            path = folder / f"{split}-{len(rows):03d}.png"
            Image.fromarray(np.hstack([left, right])).save(path)
            rows.append((str(path), sorted([table.label[a], table.label[b]])))
        out[split] = rows
    return out


def multilabel_project(root: Path, pairs: dict[str, list[tuple[str, list[str]]]], n_labeled: int = 12) -> Project:
    """A multi-label project: 60 pool images (the first ``n_labeled`` annotated) and 30 annotated eval images."""
    classes = sorted({name for rows in pairs.values() for _, names in rows for name in names})
    proj = init_project(root, classes, task="multilabel")
    proj.settings.model.image_size = 64
    save_settings(proj.settings, root / SETTINGS_FILE)
    for split, rows in pairs.items():
        import_images(proj.store, pd.DataFrame({"filepath": [p for p, _ in rows]}), split=split)
        ids = {Path(img.path).name: img.id for img in proj.store.image_refs(split)}
        keep = rows[:n_labeled] if split == "pool" else rows
        proj.store.add_annotations([(ids[Path(p).name], names) for p, names in keep], author="oracle", source="import")
    return proj
