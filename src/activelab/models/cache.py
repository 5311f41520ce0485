"""On-disk cache of backbone embeddings, keyed by (model id, image key).

Layout under ``cache_dir``::

    <slug>-<sha1(model_id)[:12]>/      one folder per model id (backbone + weights + preprocessing)
        model.json                      {"model_id": ..., "dim": d}
        <shard>.npy                     float32 (rows, d), memory-mapped when read
        <shard>.keys.json               the rows' image keys, written *after* the .npy

A shard is written per computed batch (atomically: temp file then ``os.replace``, see :mod:`activelab._io`),
and only shards whose ``.keys.json`` exists are read, so an interrupted pass keeps
every finished batch and never leaves a half-written one. Any process sharing the
folder sees the others' shards (the index is refreshed from disk on every lookup).
``compact`` merges many small shards into one. With ``cache_dir=None`` the cache
lives in memory only (still reused across rounds within one process).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from activelab._io import atomic_path, atomic_write_text
from activelab.exceptions import InputError
from activelab.progress import Progress, progress_task


@dataclass
class CacheStats:
    """Images found in (``hits``) and added to (``misses``) the cache."""

    hits: int = 0
    misses: int = 0


class _Space:
    """The cached embeddings of one model id."""

    def __init__(self, model_id: str, folder: Path | None) -> None:
        self.model_id = model_id
        self.folder = folder
        self.dim: int | None = None
        self.index: dict[str, tuple[str, int]] = {}
        self.arrays: dict[str, np.ndarray] = {}
        if folder is not None:
            meta = folder / "model.json"
            if meta.exists():
                m = json.loads(meta.read_text())
                if m.get("model_id") != model_id:  # pragma: no cover - sha1 prefix clash
                    raise InputError(f"embedding cache folder {folder} belongs to another model ({m.get('model_id')})")
                self.dim = int(m["dim"])

    def refresh(self) -> None:
        if self.folder is None or not self.folder.exists():
            return
        for kf in sorted(self.folder.glob("*.keys.json")):
            shard = kf.name[: -len(".keys.json")]
            if shard in self.arrays:
                continue
            try:
                keys = json.loads(kf.read_text())
                arr = np.load(self.folder / f"{shard}.npy", mmap_mode="r")
            except (FileNotFoundError, ValueError, json.JSONDecodeError):
                continue  # removed by a concurrent compact, or being written
            self.arrays[shard] = arr
            for row, k in enumerate(keys):
                self.index[k] = (shard, row)

    def forget_missing(self) -> None:
        """Drop shards whose files disappeared (another process compacted)."""
        if self.folder is None:
            return
        gone = [s for s in self.arrays if not (self.folder / f"{s}.keys.json").exists()]
        for s in gone:
            del self.arrays[s]
        if gone:
            self.index = {k: v for k, v in self.index.items() if v[0] not in gone}


def _slug(model_id: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_.-]+", "_", model_id.split(";")[0])[:40]
    return f"{s}-{hashlib.sha1(model_id.encode()).hexdigest()[:12]}"


class EmbeddingCache:
    """Embeddings of images, keyed by ``(model_id, key)``; see the module docstring.

    ``stats`` counts hits and misses since creation; ``last_stats`` those of the
    last :meth:`get_or_compute` call.
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None) -> None:
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.stats = CacheStats()
        self.last_stats = CacheStats()
        self._spaces: dict[str, _Space] = {}

    def __repr__(self) -> str:
        return f"EmbeddingCache({str(self.cache_dir) if self.cache_dir else None!r})"

    def _space(self, model_id: str) -> _Space:
        sp = self._spaces.get(model_id)
        if sp is None:
            folder = self.cache_dir / _slug(model_id) if self.cache_dir is not None else None
            sp = self._spaces[model_id] = _Space(model_id, folder)
        sp.refresh()
        return sp

    def folder(self, model_id: str) -> Path | None:
        """Where ``model_id``'s shards live (None for an in-memory cache)."""
        return self.cache_dir / _slug(model_id) if self.cache_dir is not None else None

    def count(self, model_id: str) -> int:
        """Number of distinct images cached for ``model_id``."""
        return len(self._space(model_id).index)

    def contains(self, model_id: str, keys: Sequence[str]) -> np.ndarray:
        """(N,) bool: which keys are cached for ``model_id``."""
        sp = self._space(model_id)
        return np.array([k in sp.index for k in keys], dtype=bool)

    def get(self, model_id: str, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(embeddings (N, d) float32, found (N,) bool)``; rows not found are zeros.

        ``d`` is 0 when nothing was ever cached for ``model_id``.
        """
        sp = self._space(model_id)
        for attempt in range(2):
            try:
                return self._gather(sp, keys)
            except FileNotFoundError:
                if attempt:
                    raise
                sp.forget_missing()
                sp.refresh()
        raise AssertionError("unreachable")  # pragma: no cover

    def _gather(self, sp: _Space, keys: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        d = sp.dim or 0
        out = np.zeros((len(keys), d), dtype=np.float32)
        found = np.zeros(len(keys), dtype=bool)
        by_shard: dict[str, tuple[list[int], list[int]]] = {}
        for i, k in enumerate(keys):
            loc = sp.index.get(k)
            if loc is not None:
                pos, rows = by_shard.setdefault(loc[0], ([], []))
                pos.append(i)
                rows.append(loc[1])
        for shard, (pos, rows) in by_shard.items():
            out[pos] = sp.arrays[shard][rows]
            found[pos] = True
        return out, found

    def put(self, model_id: str, keys: Sequence[str], embeddings: np.ndarray) -> None:
        """Store one shard: ``embeddings`` (len(keys), d) for ``keys``."""
        emb = np.ascontiguousarray(embeddings, dtype=np.float32)
        if emb.ndim != 2 or emb.shape[0] != len(keys):
            raise InputError(f"embeddings must be (len(keys), d) = ({len(keys)}, d); got {emb.shape}")
        if not np.all(np.isfinite(emb)):
            raise InputError(f"refusing to cache non-finite embeddings for model {model_id!r}")
        if len(keys) == 0:
            return
        sp = self._space(model_id)
        if sp.dim is None:
            sp.dim = int(emb.shape[1])
            if sp.folder is not None:
                sp.folder.mkdir(parents=True, exist_ok=True)
                meta = {"model_id": model_id, "dim": sp.dim}
                atomic_write_text(sp.folder / "model.json", json.dumps(meta))
        elif emb.shape[1] != sp.dim:
            raise InputError(f"embedding width {emb.shape[1]} != cached width {sp.dim} for model {model_id!r}")
        shard = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:20]
        if sp.folder is None:
            sp.arrays[shard] = emb.copy()
        else:
            with atomic_path(sp.folder / f"{shard}.npy") as tmp:
                np.save(tmp, emb)
            atomic_write_text(sp.folder / f"{shard}.keys.json", json.dumps(list(keys)))
            sp.arrays[shard] = np.load(sp.folder / f"{shard}.npy", mmap_mode="r")
        for row, k in enumerate(keys):
            sp.index[k] = (shard, row)

    def get_or_compute(
        self,
        model_id: str,
        keys: Sequence[str],
        compute: Callable[[list[int]], np.ndarray],
        *,
        chunk_size: int = 256,
        progress: Progress = False,
        desc: str = "embedding",
    ) -> np.ndarray:
        """Embeddings (N, d) float32 for ``keys``, computing only the missing ones.

        ``compute(positions)`` returns the embeddings of those positions of ``keys``;
        it is called on chunks of at most ``chunk_size`` missing images, each stored
        as a shard before the next is computed, so an interrupted call loses at most
        one chunk. Duplicate keys are computed once.
        """
        keys = list(keys)
        out, found = self.get(model_id, keys)
        first: dict[str, int] = {}
        for i, k in enumerate(keys):
            if not found[i] and k not in first:
                first[k] = i
        todo = list(first.values())
        self.last_stats = CacheStats(hits=int(found.sum()), misses=len(todo))
        self.stats.hits += self.last_stats.hits
        self.stats.misses += self.last_stats.misses
        if not todo:
            return out
        with progress_task(progress, desc, total=len(todo), unit="img") as bar:
            for start in range(0, len(todo), chunk_size):
                pos = todo[start : start + chunk_size]
                emb = np.asarray(compute(pos), dtype=np.float32)
                self.put(model_id, [keys[i] for i in pos], emb)
                bar.advance(len(pos))
        out, found = self.get(model_id, keys)
        if not found.all():  # pragma: no cover - defensive
            raise RuntimeError("embedding cache lost rows it just wrote")
        return out

    def compact(self, model_id: str) -> None:
        """Merge all of ``model_id``'s shards into one (faster reads of large pools)."""
        sp = self._space(model_id)
        if len(sp.arrays) <= 1:
            return
        keys = list(sp.index)
        emb, _ = self.get(model_id, keys)
        old = list(sp.arrays)
        self.put(model_id, keys, emb)
        new = hashlib.sha1("\n".join(keys).encode()).hexdigest()[:20]
        for s in old:
            if s == new:
                continue
            sp.arrays.pop(s, None)
            if sp.folder is not None:
                for suffix in (".keys.json", ".npy"):
                    with _suppress_missing():
                        os.unlink(sp.folder / f"{s}{suffix}")

    def clear(self, model_id: str | None = None) -> None:
        """Delete the cached embeddings of ``model_id`` (all models when None)."""
        import shutil

        ids = [model_id] if model_id is not None else list(self._spaces)
        for mid in ids:
            self._spaces.pop(mid, None)
            folder = self.folder(mid)
            if folder is not None and folder.exists():
                shutil.rmtree(folder)
        if model_id is None and self.cache_dir is not None and self.cache_dir.exists():
            for child in self.cache_dir.iterdir():
                if child.is_dir() and (child / "model.json").exists():
                    shutil.rmtree(child)


class _suppress_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, et: object, ev: object, tb: object) -> bool:
        return et is FileNotFoundError
