"""Streaming, resumable embedding of many images into the :class:`EmbeddingCache`.

``stream_embed(adapter, items)`` reads ``(key, path)`` pairs lazily, a window at a
time, skips those already cached, and runs the frozen backbone over the rest with
one torch ``DataLoader`` per window (worker processes, pinned memory on CUDA,
float16 autocast and ``channels_last`` on CUDA). Outputs are written to the cache
as shards of ``shard_size`` rows as soon as they are full, so:

- an interrupted pass keeps every finished shard, and the next pass computes only
  what is missing (the cache's own atomic shard writes make this safe);
- memory stays flat: one window of keys and one shard of outputs are held at a
  time, never a whole-pool array.

Unreadable images do not stop the pass: they are counted, named in the report,
and left out of the cache (so a later pass retries them).

The Ray backend (:mod:`activelab.models.integrations.ray`) writes the same cache.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from activelab.data.images import load_rgb
from activelab.exceptions import ActivelabError, InputError
from activelab.models.fast import FastAdapter
from activelab.models.images import make_loader
from activelab.progress import Progress, progress_task

#: failures named in a report (the count covers all)
MAX_FAILED_LISTED = 100

#: a callback after each shard is written: ``on_shard(images computed so far in this pass)``
ShardCallback = Callable[[int], None]


@dataclass
class StreamReport:
    """What one pass did: images asked for, found cached, computed now, unreadable."""

    model_id: str
    backend: str
    n_images: int = 0
    n_cached: int = 0
    n_computed: int = 0
    n_failed: int = 0
    n_shards: int = 0
    seconds: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)

    @property
    def images_per_second(self) -> float:
        """Computed images per second of the pass (0 when nothing was computed)."""
        return self.n_computed / self.seconds if self.seconds > 0 and self.n_computed else 0.0

    def fail(self, path: str, reason: str) -> None:
        self.n_failed += 1
        if len(self.failed) < MAX_FAILED_LISTED:
            self.failed.append((path, reason))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_id": self.model_id,
            "backend": self.backend,
            "n_images": self.n_images,
            "n_cached": self.n_cached,
            "n_computed": self.n_computed,
            "n_failed": self.n_failed,
            "n_shards": self.n_shards,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 1),
            "failed": [list(f) for f in self.failed],
        }


class _SafeImages(Dataset):  # type: ignore[type-arg]
    """``(tensor, position, error)``: an unreadable image gives zeros and its error message."""

    def __init__(self, paths: list[str], transform: Callable[[Any], torch.Tensor], size: int) -> None:
        self.paths = paths
        self.transform = transform
        self.size = size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        try:
            return self.transform(load_rgb(self.paths[i])), i, ""
        except (ActivelabError, OSError, ValueError) as e:
            return torch.zeros(3, self.size, self.size), i, str(e) or type(e).__name__


class ShardWriter:
    """Buffers computed embeddings and writes them to the cache in shards of ``shard_size`` rows.

    Shared by the local and the Ray pass, so both leave the cache in the same
    state: whatever was flushed survives an interruption.
    """

    def __init__(
        self, adapter: FastAdapter, report: StreamReport, shard_size: int, on_shard: ShardCallback | None = None
    ) -> None:
        self.adapter = adapter
        self.report = report
        self.shard_size = shard_size
        self.on_shard = on_shard
        self._keys: list[str] = []
        self._emb: list[np.ndarray] = []

    def add(self, keys: Iterable[str], embeddings: np.ndarray) -> None:
        """Buffer rows; write a shard once ``shard_size`` rows are waiting."""
        self._keys.extend(keys)
        self._emb.append(embeddings)
        if len(self._keys) >= self.shard_size:
            self.flush()

    def flush(self) -> None:
        """Write what is buffered as one shard (nothing when empty)."""
        if not self._keys:
            return
        self.adapter.cache.put(self.report.model_id, self._keys, np.concatenate(self._emb))
        self.report.n_computed += len(self._keys)
        self.report.n_shards += 1
        self._keys, self._emb = [], []
        if self.on_shard is not None:
            self.on_shard(self.report.n_computed)


def windows(items: Iterable[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    """``items`` in lists of at most ``size``, read lazily."""
    it = iter(items)
    while True:
        chunk = list(itertools.islice(it, size))
        if not chunk:
            return
        yield chunk


def missing(adapter: FastAdapter, window: list[tuple[str, str]], report: StreamReport) -> list[tuple[str, str]]:
    """The window's ``(key, path)`` pairs not cached yet, each key once; counts the rest as cached."""
    keys = [k for k, _ in window]
    found = adapter.cache.contains(adapter.model_id, keys)
    report.n_images += len(window)
    report.n_cached += int(found.sum())
    seen: set[str] = set()
    todo = []
    for (key, path), hit in zip(window, found):
        if not hit and key not in seen:
            seen.add(key)
            todo.append((key, path))
    return todo


def check_sizes(batch_size: int, num_workers: int, shard_size: int, window: int) -> None:
    for name, value, low in (
        ("batch_size", batch_size, 1),
        ("workers", num_workers, 0),
        ("shard_size", shard_size, 1),
        ("window", window, 1),
    ):
        if int(value) < low:
            raise InputError(f"{name} must be >= {low}, got {value}")


def stream_embed(
    adapter: FastAdapter,
    items: Iterable[tuple[str, str]],
    *,
    batch_size: int = 64,
    num_workers: int = 0,
    shard_size: int = 1024,
    window: int = 50_000,
    amp: bool = True,
    channels_last: bool = True,
    progress: Progress = False,
    total: int | None = None,
    on_shard: ShardCallback | None = None,
) -> StreamReport:
    """Embed every ``(key, path)`` of ``items`` not yet in ``adapter.cache``; see the module docstring.

    ``key`` is the image's content hash (the cache key), ``path`` its file. ``amp`` and
    ``channels_last`` apply on CUDA only. ``total`` (optional) sizes the progress bar.
    Returns a :class:`StreamReport`; the embeddings are read back with
    ``adapter.cache.get(adapter.model_id, keys)`` or ``adapter.embed(paths, keys=keys)``.
    """
    check_sizes(batch_size, num_workers, shard_size, window)
    body, preprocess = adapter.backbone()
    device = adapter.device
    cuda = device.startswith("cuda")
    module = body.module
    if cuda and channels_last:
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    model_id = adapter.model_id
    report = StreamReport(model_id=model_id, backend="local")
    transform = preprocess.eval_transform()
    t0 = time.perf_counter()
    writer = ShardWriter(adapter, report, shard_size, on_shard)

    with progress_task(progress, f"embedding with {adapter.name}", total=total, unit="img") as bar:
        try:
            for chunk in windows(items, window):
                todo = missing(adapter, chunk, report)
                bar.advance(len(chunk) - len(todo))
                if not todo:
                    continue
                paths = [p for _, p in todo]
                loader = make_loader(
                    _SafeImages(paths, transform, preprocess.size),
                    batch_size=batch_size,
                    num_workers=num_workers,
                    device=device,
                )
                with torch.inference_mode():
                    for x, pos, err in loader:
                        x = x.to(device, non_blocking=True)
                        if cuda and channels_last:
                            x = x.contiguous(memory_format=torch.channels_last)
                        if amp and cuda:
                            with torch.autocast("cuda", dtype=torch.float16):
                                out = body.features(module, x)
                        else:
                            out = body.features(module, x)
                        emb = out.float().cpu().numpy()
                        ok = np.array([not e for e in err], dtype=bool)
                        for p, e in zip(pos.tolist(), err):
                            if e:
                                report.fail(paths[p], e)
                        if ok.any():
                            writer.add((todo[p][0] for p in pos[torch.from_numpy(ok)].tolist()), emb[ok])
                        bar.advance(len(err))
                writer.flush()
                adapter.forward_count += len(todo)
        finally:
            report.seconds = time.perf_counter() - t0
    return report
