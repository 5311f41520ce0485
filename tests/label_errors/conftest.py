"""A project of 200 real bundled Fashion-MNIST images with 20 planted label flips."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project
from activelab.loop.settings import save_settings
from activelab.models.base import torch_threads

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]
N_PER_CLASS = 20
N_FLIPS = 20
IMAGE_SIZE = 64  # small input: CPU-cheap, still a real pretrained backbone


@dataclass
class Planted:
    project: Project
    flipped: dict[str, tuple[str, str]]  # file name -> (true label, planted label)
    truth: dict[str, str]  # file name -> true label


@pytest.fixture(scope="session")
def embedding_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for every project, kept in pytest's cache folder between runs.

    Entries are keyed by backbone + preprocessing + image content hash, so reuse is safe;
    ``pytest --cache-clear`` starts afresh; with ``-p no:cacheprovider`` it is a temporary folder.
    """
    cache = getattr(request.config, "cache", None)
    if cache is None:
        return tmp_path_factory.mktemp("embeddings")
    return Path(cache.mkdir("activelab-errors-embeddings"))


def make_planted(root: Path, sample: Path, embedding_cache: Path, *, n_eval_per_class: int = 5) -> Planted:
    proj = init_project(root, CLASSES)
    proj.settings.model.image_size = IMAGE_SIZE
    save_settings(proj.settings, root / "activelab.yaml")
    (proj.cache_dir).mkdir(parents=True, exist_ok=True)
    (proj.cache_dir / "embeddings").symlink_to(embedding_cache, target_is_directory=True)
    pool = pd.read_csv(sample / "pool.csv").groupby("label").head(N_PER_CLASS).reset_index(drop=True)
    truth = dict(zip(pool.filepath.map(lambda p: Path(p).name), pool.label))
    rng = np.random.default_rng(0)
    flip_rows = rng.choice(len(pool), size=N_FLIPS, replace=False)
    flipped = {}
    for r in flip_rows:
        true = pool.at[r, "label"]
        planted = str(rng.choice([c for c in CLASSES if c != true]))
        pool.at[r, "label"] = planted
        flipped[Path(pool.at[r, "filepath"]).name] = (true, planted)
    pool["filepath"] = [str(sample / p) for p in pool.filepath]
    import_images(proj.store, pool, author="importer")
    ev = pd.read_csv(sample / "eval.csv").groupby("label").head(n_eval_per_class)
    import_images(
        proj.store, ev.assign(filepath=[str(sample / p) for p in ev.filepath]), split="eval", author="importer"
    )
    return Planted(proj, flipped, truth)


@pytest.fixture
def planted(tmp_path: Path, sample: Path, embedding_cache: Path) -> Iterator[Planted]:
    p = make_planted(tmp_path / "proj", sample, embedding_cache)
    yield p
    p.project.close()


@pytest.fixture(autouse=True, scope="package")
def _one_torch_thread() -> Iterator[None]:
    """Head fits oversubscribe a shared 2-core machine badly (35 s vs 2 s); use one thread here."""
    with torch_threads(1):
        yield
