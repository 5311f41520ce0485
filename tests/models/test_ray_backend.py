"""The Ray backend on a local Ray instance (2 CPUs): same cache entries as the local pass."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from activelab.models import EmbeddingCache, create_model, file_key
from activelab.models.stream import stream_embed

if os.environ.get("ACTIVELAB_REQUIRE_RAY"):
    import ray  # noqa: F401  - the suite was told Ray is installed: fail, never skip
else:
    pytest.importorskip("ray.data", reason="Ray Data not installed (pip install 'activelab[ray]')")


def items(sample: Path, n: int) -> list[tuple[str, str]]:
    paths = sorted((sample / "pool").glob("*.png"))[:n]
    return [(file_key(p), str(p)) for p in paths]


@pytest.mark.slow
def test_ray_backend_writes_the_same_embeddings_as_the_local_pass(sample: Path, tmp_path: Path) -> None:
    from activelab.models.integrations.ray import ray_embed

    pairs = items(sample, 24)
    pairs.append(("0" * 64, str(tmp_path / "missing.png")))  # unreadable: reported, not cached, not fatal
    local = create_model("efficientnet_lite0", image_size=32, device="cpu", cache_dir=tmp_path / "local")
    stream_embed(local, pairs, batch_size=8)
    remote = create_model("efficientnet_lite0", image_size=32, device="cpu", cache_dir=tmp_path / "ray")
    shards: list[int] = []
    report = ray_embed(
        remote, pairs, workers=1, batch_size=8, shard_size=10, init_kwargs={"num_cpus": 2}, on_shard=shards.append
    )
    assert (report.backend, report.n_computed, report.n_failed) == ("ray", 24, 1)
    assert shards[-1] == 24 and len(shards) >= 3  # written shard by shard as results stream in
    keys = [k for k, _ in pairs[:24]]
    want, ok_local = local.cache.get(local.model_id, keys)
    got, ok_ray = EmbeddingCache(tmp_path / "ray").get(remote.model_id, keys)
    assert ok_local.all() and ok_ray.all()
    assert np.allclose(got, want, atol=1e-4)
    # resumable across backends: the local pass finds everything the Ray pass wrote
    again = stream_embed(remote, pairs[:24])
    assert (again.n_cached, again.n_computed) == (24, 0)
