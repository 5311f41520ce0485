"""EmbeddingCache: incremental, shared through disk, atomic per shard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.models import EmbeddingCache

MID = "toy-backbone;weights=random;size=8"


def _emb(keys: list[str]) -> np.ndarray:
    return np.array([[float(int(k[1:])), 1.0, -1.0] for k in keys], dtype=np.float32)


@pytest.mark.parametrize("on_disk", [True, False])
def test_get_or_compute_computes_only_misses(tmp_path, on_disk: bool) -> None:
    cache = EmbeddingCache(tmp_path if on_disk else None)
    calls: list[list[int]] = []
    keys = [f"k{i}" for i in range(10)]

    def compute(pos: list[int]) -> np.ndarray:
        calls.append(list(pos))
        return _emb([keys[i] for i in pos])

    out = cache.get_or_compute(MID, keys[:6], compute, chunk_size=4)
    assert calls == [[0, 1, 2, 3], [4, 5]]  # two shards
    np.testing.assert_array_equal(out, _emb(keys[:6]))
    assert (cache.last_stats.hits, cache.last_stats.misses) == (0, 6)
    calls.clear()
    out = cache.get_or_compute(MID, keys, compute, chunk_size=4)
    assert calls == [[6, 7, 8, 9]]
    np.testing.assert_array_equal(out, _emb(keys))
    assert (cache.last_stats.hits, cache.last_stats.misses) == (6, 4)
    assert cache.count(MID) == 10


def test_interrupted_pass_keeps_finished_batches_and_other_instances_see_them(tmp_path) -> None:
    keys = [f"k{i}" for i in range(9)]
    cache = EmbeddingCache(tmp_path)

    def failing(pos: list[int]) -> np.ndarray:
        if 6 in pos:
            raise KeyboardInterrupt
        return _emb([keys[i] for i in pos])

    with pytest.raises(KeyboardInterrupt):
        cache.get_or_compute(MID, keys, failing, chunk_size=3)
    assert cache.count(MID) == 6
    assert not list(tmp_path.rglob("*.tmp"))  # nothing half-written

    fresh = EmbeddingCache(tmp_path)  # e.g. the next process
    done = []
    out = fresh.get_or_compute(MID, keys, lambda pos: done.append(pos) or _emb([keys[i] for i in pos]))
    assert done == [[6, 7, 8]]
    np.testing.assert_array_equal(out, _emb(keys))
    meta = json.loads(next(tmp_path.rglob("model.json")).read_text())
    assert meta == {"model_id": MID, "dim": 3}


def test_duplicate_keys_computed_once(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path)
    seen = []
    out = cache.get_or_compute(
        MID, ["k1", "k2", "k1"], lambda pos: seen.append(pos) or _emb([["k1", "k2"][i] for i in pos])
    )
    assert seen == [[0, 1]]
    np.testing.assert_array_equal(out, _emb(["k1", "k2", "k1"]))


def test_models_are_kept_apart_and_compact_merges_shards(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path)
    keys = [f"k{i}" for i in range(7)]
    cache.get_or_compute(MID, keys, lambda pos: _emb([keys[i] for i in pos]), chunk_size=2)
    cache.put("other", ["k1"], np.zeros((1, 5), np.float32))
    assert cache.count("other") == 1
    _, found = cache.get("other", keys)
    assert found.tolist() == [False, True, False, False, False, False, False]
    folder = cache.folder(MID)
    assert len(list(folder.glob("*.npy"))) == 4
    cache.compact(MID)
    assert len(list(folder.glob("*.npy"))) == 1
    emb, found = EmbeddingCache(tmp_path).get(MID, keys)
    assert found.all()
    np.testing.assert_array_equal(emb, _emb(keys))
    cache.clear(MID)
    assert EmbeddingCache(tmp_path).count(MID) == 0 and EmbeddingCache(tmp_path).count("other") == 1


def test_rejects_bad_embeddings(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path)
    cache.put(MID, ["a"], np.ones((1, 3), np.float32))
    with pytest.raises(InputError, match="width"):
        cache.put(MID, ["b"], np.ones((1, 4), np.float32))
    with pytest.raises(InputError, match="non-finite"):
        cache.put(MID, ["c"], np.full((1, 3), np.nan, np.float32))
    with pytest.raises(InputError, match="len\\(keys\\)"):
        cache.put(MID, ["d", "e"], np.ones((1, 3), np.float32))
