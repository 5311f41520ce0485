"""The t-SNE report embeds only the points it plots on the finetune path (the whole pool was embedded before)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from activelab.simulate.reports import plot_tsne, tsne_embeddings


class _Model:
    """Records which paths it was asked to embed; an image's embedding is its pool position, then noise."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.embedded: list[str] = []

    def embed(self, paths, *, keys=None, progress=False):
        self.embedded += list(paths)
        pos = np.array([int(Path(p).stem) for p in paths], dtype=np.float32)
        noise = np.random.default_rng(0).normal(size=(len(paths), 3)).astype(np.float32)
        return np.column_stack([pos, noise])


class _Experiment:
    def __init__(self, mode: str, n: int = 300, tsne_points: int = 40) -> None:
        self.model = _Model(mode)
        self.config = SimpleNamespace(seeds=[0], tsne_points=tsne_points)
        self.dataset = SimpleNamespace(
            pool_paths=[f"/pool/{i}.png" for i in range(n)],
            pool_keys=[f"k{i}" for i in range(n)],
            y_pool=np.arange(n) % 3,
            classes=["a", "b", "c"],
        )
        self.pool_calls = 0

    def pool_embeddings(self) -> np.ndarray:
        self.pool_calls += 1
        return self.model.embed(self.dataset.pool_paths)


def test_finetune_embeds_only_the_sample_in_its_order():
    exp = _Experiment("finetune")
    sample = np.array([5, 17, 250])
    emb = tsne_embeddings(exp, sample)
    assert exp.model.embedded == ["/pool/5.png", "/pool/17.png", "/pool/250.png"] and exp.pool_calls == 0
    assert emb.dtype == np.float32 and emb[:, 0].tolist() == [5.0, 17.0, 250.0]


def test_frozen_reads_rows_of_the_cached_pool_embeddings():
    exp = _Experiment("frozen", n=30)
    emb = tsne_embeddings(exp, np.array([3, 29]))
    assert exp.pool_calls == 1 and emb[:, 0].tolist() == [3.0, 29.0]


def test_the_finetune_map_embeds_tsne_points_of_a_300_image_pool(tmp_path):
    exp = _Experiment("finetune")
    results = {"random": {0: {"initial": [0, 1, 2], "rounds": [{"picked": [10, 11]}, {"picked": [12]}]}}}
    assert plot_tsne(exp, results, tmp_path / "tsne.png").exists()
    embedded = {int(Path(p).stem) for p in exp.model.embedded}
    assert len(exp.model.embedded) == len(embedded) == 40
    assert {0, 1, 2, 10, 11, 12} <= embedded
