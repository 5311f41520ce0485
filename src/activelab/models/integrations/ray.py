"""The Ray backend of the embedding pass: Ray Data spreads the backbone over a cluster.

The driver (this process) reads the pool lazily, keeps only the images not cached
yet, and hands them to Ray Data a window at a time; a pool of actors (one backbone
each, on a GPU where ``gpus_per_worker`` > 0) reads and embeds them; the driver
streams the results back and writes them to the *same* :class:`EmbeddingCache`
shard by shard, so a pass interrupted on Ray resumes on Ray or locally and vice
versa. Workers read images by path: on a real cluster every node must see the
images under the same path (shared filesystem), see docs/scale.md.

``ray`` is imported only here and only when the backend is used; without it the
error says how to install it (``pip install 'activelab[ray]'``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from activelab.exceptions import MissingDependencyError
from activelab.models.backbones import BackboneSpec, build_body
from activelab.models.fast import FastAdapter
from activelab.models.stream import (
    ShardCallback,
    ShardWriter,
    StreamReport,
    check_sizes,
    missing,
    windows,
)


def import_ray() -> Any:
    """``ray`` (with Ray Data), or a :class:`MissingDependencyError` naming the extra to install."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise MissingDependencyError(
            "the Ray backend needs Ray Data: pip install 'activelab[ray]' (or pip install 'ray[data]'), "
            "or use --backend local"
        ) from e
    return ray


class RayEmbedder:
    """A Ray Data actor: builds the backbone once, embeds batches of ``{"key", "path"}`` rows.

    Returns ``{"key", "embedding" (B, d) float32, "error"}``; an unreadable image gets a
    zero row and its error message (the driver leaves it out of the cache).
    """

    def __init__(self, spec: dict[str, Any], device: str, amp: bool) -> None:
        import torch

        self.torch = torch
        self.body = build_body(BackboneSpec.from_dict(spec), load_weights=True)
        self.device = device
        self.cuda = device.startswith("cuda")
        self.amp = amp
        self.body.module.eval().requires_grad_(False).to(device)
        if self.cuda:
            self.body.module.to(memory_format=torch.channels_last)
        self.transform = self.body.preprocess.eval_transform()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from activelab.data.images import load_rgb

        torch = self.torch
        size = self.body.preprocess.size
        xs, errors = [], []
        for path in batch["path"]:
            try:
                xs.append(self.transform(load_rgb(str(path))))
                errors.append("")
            except Exception as e:
                xs.append(torch.zeros(3, size, size))
                errors.append(str(e) or type(e).__name__)
        x = torch.stack(xs).to(self.device)
        if self.cuda:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            if self.cuda and self.amp:
                with torch.autocast("cuda", dtype=torch.float16):
                    out = self.body(x)
            else:
                out = self.body(x)
        return {
            "key": batch["key"],
            "embedding": out.float().cpu().numpy().astype(np.float32),
            "error": np.array(errors, dtype=object),
            "path": batch["path"],
        }


def ray_embed(
    adapter: FastAdapter,
    items: Iterable[tuple[str, str]],
    *,
    address: str | None = None,
    workers: int = 2,
    batch_size: int = 64,
    shard_size: int = 1024,
    window: int = 50_000,
    gpus_per_worker: float = 0.0,
    amp: bool = True,
    init_kwargs: dict[str, Any] | None = None,
    on_shard: ShardCallback | None = None,
) -> StreamReport:
    """Embed every ``(key, path)`` of ``items`` not yet in ``adapter.cache`` on Ray; same cache, same keys.

    ``address``: a running cluster (``"auto"``, ``"ray://head:10001"``, ``"head:6379"``);
    None starts a local Ray instance for this pass (``init_kwargs`` go to ``ray.init``,
    e.g. ``num_cpus=2``) and stops it after. An already initialised Ray is reused as is.
    ``workers``: number of embedding actors. ``gpus_per_worker``: GPUs per actor (0: CPU).
    """
    check_sizes(batch_size, 1 if workers >= 1 else 0, shard_size, window)
    ray = import_ray()
    model_id = adapter.model_id
    if adapter.spec.source == "small_cnn":  # pragma: no cover - create_model refuses it on the fast path
        raise MissingDependencyError("the Ray backend needs a pretrained backbone")
    report = StreamReport(model_id=model_id, backend="ray")
    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        kwargs.update(init_kwargs or {})
        ray.init(address=address, **kwargs)
        started_here = True
    t0 = time.perf_counter()
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False
        device = "cuda" if gpus_per_worker > 0 else "cpu"
        writer = ShardWriter(adapter, report, shard_size, on_shard)

        for chunk in windows(items, window):
            todo = missing(adapter, chunk, report)
            if not todo:
                continue
            ds = ray.data.from_items([{"key": k, "path": p} for k, p in todo])
            ds = ds.map_batches(
                RayEmbedder,
                fn_constructor_kwargs={"spec": adapter.spec.to_dict(), "device": device, "amp": amp},
                batch_size=batch_size,
                batch_format="numpy",
                concurrency=max(1, int(workers)),
                num_gpus=gpus_per_worker if gpus_per_worker > 0 else None,
            )
            for batch in ds.iter_batches(batch_size=shard_size, batch_format="numpy"):
                errors = batch["error"]
                ok = np.array([not e for e in errors], dtype=bool)
                for path, e in zip(batch["path"][~ok], errors[~ok]):
                    report.fail(str(path), str(e))
                if ok.any():
                    writer.add((str(k) for k in batch["key"][ok]), np.asarray(batch["embedding"], dtype=np.float32)[ok])
            writer.flush()
    finally:
        report.seconds = time.perf_counter() - t0
        if started_here:
            ray.shutdown()
    return report
