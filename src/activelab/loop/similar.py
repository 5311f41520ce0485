"""Similar images: "show me images like this one" over a whole project, with FAISS.

:class:`SimilarImages` indexes the cached backbone embeddings (see
:func:`activelab.loop.embed.embedding_model`) of every image of the project,
L2-normalised so that inner product is cosine similarity:

- below ``flat_threshold`` images, an exact ``IndexFlatIP``;
- above it, an inverted-file index with 8-bit scalar quantisation
  (``IndexIVFScalarQuantizer``, ``nlist = sqrt(N)`` lists, ``nprobe`` searched;
  a quarter of the flat index's memory, approximate similarities), read back
  memory-mapped so a million-image index does not have to sit in RAM.

The index lives in ``PROJECT/cache/similar/<model>/`` (``index.faiss``, ``ids.npy``
with the image id of each row, ``meta.json`` written last) and is rebuilt when the
store's images change (their count or largest id: images are never deleted and ids
only grow). Building embeds what the cache lacks first, then streams the cache a
page at a time into the index.

A server never builds inside a request: :meth:`SimilarImages.start_build` brings the
index up to date in a background thread, and :meth:`SimilarImages.search` answers
from the loaded index when it matches the store's images, or says it is not ready.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activelab._io import atomic_path, atomic_write_text
from activelab.exceptions import InputError, NotFoundError
from activelab.loop.embed import embed_project, embedding_model
from activelab.loop.project import Project
from activelab.models import FastAdapter
from activelab.store import Image

#: up to this many images the index is exact (IndexFlatIP); above it, IVF + 8-bit scalar quantisation
FLAT_THRESHOLD = 50_000
#: inverted lists searched per query (IVF only)
DEFAULT_NPROBE = 16
#: images read from the store and the cache per step while building
PAGE_SIZE = 20_000
MAX_K = 200
INDEX_FORMAT = 1
log = logging.getLogger(__name__)


class _BuildStopped(Exception):
    """:meth:`SimilarImages.stop` was called during a build (the server is shutting down)."""


@dataclass(frozen=True)
class IndexInfo:
    """What an index holds: kind (``flat`` / ``ivf``), rows, width, store fingerprint, build time."""

    kind: str
    n: int
    dim: int
    fingerprint: tuple[int, int]
    model_id: str
    seconds: float


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    norms[norms == 0] = 1.0
    return x / norms


class SimilarImages:
    """Nearest neighbours by cosine similarity of cached embeddings; see the module docstring.

    ``model``: the embedding adapter (default :func:`embedding_model` of the project).
    Safe to share between threads (the web app does): building is serialised.
    """

    def __init__(
        self,
        project: Project,
        *,
        model: FastAdapter | None = None,
        flat_threshold: int = FLAT_THRESHOLD,
        nprobe: int = DEFAULT_NPROBE,
        seed: int = 0,
    ) -> None:
        self.project = project
        self._model = model
        self.flat_threshold = int(flat_threshold)
        self.nprobe = int(nprobe)
        self.seed = int(seed)
        self._lock = threading.Lock()  # serialises loading and building
        self._lock_state = threading.Lock()  # guards starting the background thread
        #: (FAISS index, image id of each row, description), swapped in whole so a search never mixes two builds
        self._loaded: tuple[Any, np.ndarray, IndexInfo] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._failed: tuple[tuple[int, int], str] | None = None  # (fingerprint, message) of a failed build

    # --------------------------------------------------------------- model
    @property
    def model(self) -> FastAdapter:
        if self._model is None:
            self._model = embedding_model(self.project)
        return self._model

    @property
    def folder(self) -> Path:
        cache_folder = self.model.cache.folder(self.model.model_id)
        name = cache_folder.name if cache_folder is not None else "memory"
        return self.project.cache_dir / "similar" / name

    @property
    def info(self) -> IndexInfo | None:
        """The loaded index's description (None before :meth:`ensure`)."""
        return None if self._loaded is None else self._loaded[2]

    # ---------------------------------------------------------- background
    def start_build(self) -> None:
        """Load or build the index in a background thread (:meth:`ensure`); returns at once.

        Does nothing while a background build runs, or when the last one failed on the
        same images (it is tried again once the images change).
        """
        with self._lock_state:
            if self._stop.is_set() or (self._thread is not None and self._thread.is_alive()):
                return
            if self._failed is not None and self._failed[0] == self.project.store.images_fingerprint():
                return
            self._thread = threading.Thread(target=self._build_in_background, name="activelab-similar", daemon=True)
            self._thread.start()

    def _build_in_background(self) -> None:
        fingerprint = self.project.store.images_fingerprint()
        try:
            self.ensure()
        except _BuildStopped:
            return
        except Exception as exc:
            log.exception("activelab: the similar-images index could not be built")
            message = str(exc) if isinstance(exc, InputError) else f"{type(exc).__name__} (see the server log)"
            self._failed = (fingerprint, message)
        else:
            self._failed = None

    def wait(self, timeout: float | None = None) -> None:
        """Wait for a background build started by :meth:`start_build` (tests, scripts)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def stop(self, timeout: float | None = 30.0) -> None:
        """End background building (at server shutdown): a build stops after its current step
        (an embedding shard or a page of the index) and none starts again. Waits up to ``timeout``."""
        self._stop.set()
        self.wait(timeout)

    def _check_stop(self, *_: Any) -> None:
        if self._stop.is_set():
            raise _BuildStopped

    def status(self) -> dict[str, Any]:
        """``{"status": "ready", "kind", "size"}`` when the loaded index matches the store's images,
        ``{"status": "failed", "error"}`` after a failed build of these images, else ``{"status": "building"}``."""
        fingerprint = self.project.store.images_fingerprint()
        info = self.info
        if info is not None and info.fingerprint == fingerprint:
            return {"status": "ready", "kind": info.kind, "size": info.n}
        failed = self._failed
        if failed is not None and failed[0] == fingerprint:
            return {"status": "failed", "error": failed[1]}
        return {"status": "building"}

    # ------------------------------------------------------------ building
    def ensure(self, *, progress: bool = False) -> IndexInfo:
        """Load the persisted index, or (re)build it when missing or out of date with the store."""
        fingerprint = self.project.store.images_fingerprint()
        with self._lock:
            if self.info is not None and self.info.fingerprint == fingerprint:
                return self.info
            return self._load(fingerprint) or self._build(fingerprint, progress)

    def rebuild(self, *, progress: bool = False) -> IndexInfo:
        """Build the index anew from the cache (embedding what is missing first)."""
        with self._lock:
            return self._build(self.project.store.images_fingerprint(), progress)

    def _load(self, fingerprint: tuple[int, int]) -> IndexInfo | None:
        """Read the persisted index if it is the one for ``fingerprint`` (None when missing or out of date)."""
        import faiss

        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if (
            meta.get("format") != INDEX_FORMAT
            or tuple(meta.get("fingerprint", ())) != fingerprint
            or meta.get("model_id") != self.model.model_id
        ):
            return None
        flags = faiss.IO_FLAG_MMAP if meta["kind"] == "ivf" else 0
        index = faiss.read_index(str(self.folder / "index.faiss"), flags)
        if meta["kind"] == "ivf":
            index.nprobe = self.nprobe
        ids = np.load(self.folder / "ids.npy", mmap_mode="r")
        info = IndexInfo(
            meta["kind"], int(meta["n"]), int(meta["dim"]), fingerprint, meta["model_id"], float(meta["seconds"])
        )
        self._loaded = (index, ids, info)
        return info

    def _pages(self) -> Any:
        cache, model_id = self.model.cache, self.model.model_id
        for page in self.project.store.iter_images(batch_size=PAGE_SIZE):
            self._check_stop()
            emb, found = cache.get(model_id, [img.sha256 for img in page])
            ids = np.array([img.id for img in page], dtype=np.int64)
            yield ids[found], emb[found]

    def _build(self, fingerprint: tuple[int, int], progress: bool) -> IndexInfo:
        import faiss

        t0 = time.perf_counter()
        embed_project(self.project, model=self.model, progress=progress, on_shard=self._check_stop)
        self._check_stop()
        model_id = self.model.model_id
        n = sum(
            int(self.model.cache.contains(model_id, [img.sha256 for img in page]).sum())
            for page in self.project.store.iter_images(batch_size=PAGE_SIZE)
        )
        dim = self.model.cache.get(model_id, [])[0].shape[1] or int(self.model.backbone()[0].dim)
        if n == 0:
            raise InputError("the project has no readable images to search; import some first")
        if n <= self.flat_threshold:
            kind = "flat"
            index = faiss.IndexFlatIP(dim)
        else:
            kind = "ivf"
            nlist = int(min(65_536, max(16, math.sqrt(n))))
            quantizer = faiss.IndexFlatIP(dim)
            index = faiss.IndexIVFScalarQuantizer(
                quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
            )
            index.train(self._training_sample(n, nlist))
            index.nprobe = self.nprobe
        ids_parts = []
        for ids, emb in self._pages():
            if len(ids):
                index.add(_normalise(emb))
                ids_parts.append(ids)
        all_ids = np.concatenate(ids_parts)
        seconds = time.perf_counter() - t0
        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        meta_path = folder / "meta.json"
        if meta_path.exists():
            meta_path.unlink()  # the old index is invalid from here on
        with atomic_path(folder / "index.faiss") as tmp:
            faiss.write_index(index, str(tmp))
        with atomic_path(folder / "ids.npy") as tmp:
            np.save(tmp, all_ids)
        meta = {
            "format": INDEX_FORMAT,
            "kind": kind,
            "n": len(all_ids),
            "dim": int(dim),
            "fingerprint": list(fingerprint),
            "model_id": model_id,
            "seconds": round(seconds, 3),
            "nlist": int(getattr(index, "nlist", 0)),
        }
        atomic_write_text(meta_path, json.dumps(meta, indent=1))
        info = self._load(fingerprint)
        if info is None:  # pragma: no cover - written just above
            raise RuntimeError(f"could not read back the similar-images index in {folder}")
        return info

    def _training_sample(self, n: int, nlist: int) -> np.ndarray:
        """Rows at random positions (seeded) for IVF training: ``min(n, 40 * nlist)`` of them."""
        size = min(n, 40 * nlist)
        rng = np.random.default_rng(self.seed)
        wanted = np.sort(rng.choice(n, size=size, replace=False))
        parts, offset = [], 0
        for _, emb in self._pages():
            lo, hi = np.searchsorted(wanted, [offset, offset + len(emb)])
            if hi > lo:
                parts.append(_normalise(emb[wanted[lo:hi] - offset]))
            offset += len(emb)
        return np.concatenate(parts)

    # -------------------------------------------------------------- queries
    def similar(self, image_id: int, k: int = 12) -> list[tuple[int, float]]:
        """The ``k`` images most like ``image_id``: ``[(image id, cosine similarity)]``, most similar first.

        Loads or builds the index first when it is not up to date (in the caller's thread).
        The image itself is left out; exact copies under another id come first (similarity 1).
        """
        _check_k(k)
        image = self.project.store.get_image(image_id)
        self.ensure()
        return self._search(image, k)

    def search(self, image_id: int, k: int = 12) -> list[tuple[int, float]] | None:
        """As :meth:`similar`, but never loads or builds: None when the index does not match the store's
        images yet (start :meth:`start_build` and ask again)."""
        _check_k(k)
        image = self.project.store.get_image(image_id)
        if self.status()["status"] != "ready":
            return None
        return self._search(image, k)

    def _search(self, image: Image, k: int) -> list[tuple[int, float]]:
        assert self._loaded is not None
        index, ids, _ = self._loaded
        emb, found = self.model.cache.get(self.model.model_id, [image.sha256])
        if not found[0]:
            raise NotFoundError(
                f"image {image.id} has no embedding: its file could not be read when the index "
                "was built; check the file and import it again"
            )
        scores, rows = index.search(_normalise(emb), int(k) + 1)
        out = []
        for score, row in zip(scores[0], rows[0]):
            if row < 0:
                continue
            iid = int(ids[row])
            if iid != image.id:
                out.append((iid, float(min(1.0, score))))
        return out[: int(k)]


def _check_k(k: int) -> None:
    if not 1 <= int(k) <= MAX_K:
        raise InputError(f"k must be between 1 and {MAX_K}, got {k}")
