"""Memory of the streaming pool pass stays flat as the pool grows (issue 8).

``stream_embed`` over 100 and then 400 real images (the bundled Fashion-MNIST
sample, each file used under several cache keys so every one is a distinct cache
entry) at a tiny input size with small windows and shards: Python's peak traced memory (tracemalloc:
numpy arrays, lists, the cache index) must not grow with the pool. A pass that
kept every embedding (N x 1,280 float32: 0.5 MiB at 100, 2 MiB at 400) or every
decoded image would fail; one window of keys and one shard of outputs are what
it may hold.

Measured on the 2-core dev machine (efficientnet_lite0 at 16 px, window 32,
shard 32): 0.42 MiB peak at 100 images, 0.54 MiB at 400 (8 s under load).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from activelab.models import EmbeddingCache, create_model
from activelab.models.fast import FastAdapter
from activelab.models.stream import stream_embed

SMALL, LARGE = 100, 400
OPTS = {"batch_size": 32, "shard_size": 32, "window": 32}


def items(paths: list[Path], n: int, tag: str) -> Iterator[tuple[str, str]]:
    """``n`` (key, path) pairs, read lazily: distinct keys over the real sample files."""
    for i in range(n):
        yield f"{tag}{i:060d}", str(paths[i % len(paths)])


def peak_of_pass(model: FastAdapter, cache_dir: Path, paths: list[Path], n: int, tag: str) -> tuple[int, int]:
    """(peak traced bytes above the start, images computed) of one pass into a fresh on-disk cache."""
    model.cache = EmbeddingCache(cache_dir)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        report = stream_embed(model, items(paths, n, tag), **OPTS)
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return peak, report.n_computed


def test_peak_memory_of_a_pool_pass_does_not_grow_with_the_pool(sample: Path, tmp_path: Path) -> None:
    paths = sorted((sample / "pool").glob("*.png"))
    assert len(paths) >= 100
    model = create_model("efficientnet_lite0", num_classes=3, image_size=16, device="cpu")
    assert isinstance(model, FastAdapter)
    model.cache = EmbeddingCache(tmp_path / "warm")  # untraced warm-up: imports, backbone, torch's allocator
    stream_embed(model, items(paths, 32, "w"), **OPTS)
    small, n_small = peak_of_pass(model, tmp_path / "small", paths, SMALL, "s")
    large, n_large = peak_of_pass(model, tmp_path / "large", paths, LARGE, "l")
    assert (n_small, n_large) == (SMALL, LARGE)
    mib = 2**20
    print(f"\npeak traced memory: {SMALL} images {small / mib:.2f} MiB, {LARGE} images {large / mib:.2f} MiB")
    # all LARGE embeddings alone would be LARGE * 1280 * 4 bytes = 3.9 MiB
    held_all = LARGE * 1280 * 4
    assert large < 1.5 * small + 0.5 * mib, (small, large)
    assert large - small < 0.25 * held_all, (small, large)
    # and the pass wrote everything: the cache has all LARGE rows, read back memory-mapped
    emb, found = model.cache.get(model.model_id, [k for k, _ in items(paths, LARGE, "l")])
    assert found.all() and emb.shape == (LARGE, 1280) and np.isfinite(emb).all()
