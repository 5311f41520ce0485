"""The model-adapter interface the loop and the strategies' inputs come from.

A *model adapter* turns image files into what query strategies need, and nothing
framework-specific:

- ``predict_proba(paths) -> (N, C)`` float32 class probabilities: rows sum to 1 for a
  ``softmax`` model (one class per image), independent per-class probabilities
  ("marginals") for a ``sigmoid`` model (multi-label);
- ``embed(paths) -> (N, d)`` float32 features (see each adapter for which layer);
- ``mc_predict(paths, n_samples=T) -> (T, N, C)`` MC-dropout probabilities
  (Gal & Ghahramani, 2016), where the adapter has dropout;
- ``grad_embed(paths) -> (N, C * h)`` last-layer gradient embeddings for BADGE
  (Ash et al., 2020), where the adapter has a linear last layer.

``supports`` says which of ``{"probs", "embeddings", "mc_probs", "grad_embeddings"}``
an adapter can provide, so the loop computes what a strategy's ``requires`` names
and never special-cases an adapter by type.

Labels are integer positions into ``classes`` (softmax) or an (N, C) 0/1 matrix
(sigmoid); image ``keys`` are content hashes (sha256 hex) that let the frozen mode
cache backbone embeddings across rounds.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from activelab.exceptions import InputError

#: Everything an adapter may be able to provide (see :attr:`ModelAdapter.supports`).
CAPABILITIES: frozenset[str] = frozenset({"probs", "embeddings", "mc_probs", "grad_embeddings"})

#: What a model outputs: one distribution over the classes, one probability per class, scored boxes (detectors)
#: or a distribution over the classes per pixel (segmenters).
OUTPUTS: tuple[str, ...] = ("softmax", "sigmoid", "boxes", "masks")

#: Version of the file format written by ``save``; ``load`` refuses newer ones.
FORMAT_VERSION = 1

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class FitReport:
    """What one ``fit`` call did.

    ``epochs`` is the number of epochs run, ``best_epoch`` (1-based) the one whose
    weights were kept (early stopping on the validation split; the last epoch when
    there is no validation split). ``val_*`` are ``None`` without a validation split.
    ``cache_hits`` / ``cache_misses`` count images whose backbone embedding was found
    in / added to the embedding cache (fast path only; 0 on the full path).
    ``history`` holds one dict per epoch (``epoch``, ``train_loss`` and, with a
    validation split, ``val_loss`` and ``val_accuracy``). For a sigmoid (multi-label)
    model, losses are binary cross-entropy per (image, class) entry and accuracies the
    fraction of entries right at a 0.5 threshold.
    ``n_unlabeled`` counts the unlabeled images the fit actually trained on (pseudo-labeled,
    or in a consistency loss; 0 for a supervised fit) and ``semi_supervised`` names the
    method (``"none"`` when supervised): a model that used unlabeled images says so.
    """

    n_train: int
    n_val: int
    epochs: int
    best_epoch: int
    train_loss: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float
    device: str
    cache_hits: int = 0
    cache_misses: int = 0
    history: tuple[dict[str, float], ...] = field(default_factory=tuple)
    n_unlabeled: int = 0
    semi_supervised: str = "none"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable copy, for recording a round."""
        d = asdict(self)
        d["history"] = [dict(h) for h in self.history]
        return d


@runtime_checkable
class ModelAdapter(Protocol):
    """What the loop needs from a model. See the module docstring for shapes."""

    name: str
    classes: list[str]
    supports: frozenset[str]

    @property
    def config(self) -> dict[str, Any]:
        """JSON-serialisable configuration (model name, mode, output, options), for recording."""
        ...

    def fit(
        self,
        paths: Sequence[PathLike],
        labels: Sequence[int] | np.ndarray,
        *,
        keys: Sequence[str] | None = None,
        seed: int = 0,
        progress: bool = False,
    ) -> FitReport:
        """Train on labeled ``paths``. Adapters with a ``semi_supervised`` option also take
        ``unlabeled=`` (unlabeled image paths, never eval images) and ``unlabeled_keys=``;
        they ignore (and never read) them when ``semi_supervised="none"``; the loop passes them
        only when that option is not "none"."""
        ...

    def predict_proba(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray: ...

    def embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray: ...

    def last_layer_features(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray:
        """(N, h) input of the last linear layer; with ``probs`` it is BADGE's factored gradient embedding."""
        ...

    def mc_predict(
        self,
        paths: Sequence[PathLike],
        *,
        n_samples: int = 10,
        seed: int = 0,
        keys: Sequence[str] | None = None,
        progress: bool = False,
    ) -> np.ndarray: ...

    def grad_embed(
        self, paths: Sequence[PathLike], *, keys: Sequence[str] | None = None, progress: bool = False
    ) -> np.ndarray: ...

    def save(self, path: PathLike) -> None: ...

    @classmethod
    def load(cls, path: PathLike, *, device: str | None = None) -> ModelAdapter: ...


# ---------------------------------------------------------------------------
# helpers shared by the adapters


def pick_device(device: str | None = None) -> str:
    """``device`` if given, else ``"cuda"`` when available, then ``"mps"``, then ``"cpu"``."""
    import torch

    if device is not None:
        dev = str(device)
        if dev.startswith("cuda") and not torch.cuda.is_available():
            raise InputError(f"device={dev!r} was asked for but CUDA is not available; use device='cpu'")
        return dev
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


@contextmanager
def seeded(seed: int, device: str = "cpu") -> Iterator[None]:
    """Run a block with torch's global RNG seeded, restoring the caller's RNG state after.

    Model initialisation, dropout and torchvision's random transforms draw from
    torch's global generator; forking it keeps ``fit(seed=...)`` reproducible
    without leaking state into the caller.
    """
    import torch

    devices = [torch.cuda.current_device()] if device.startswith("cuda") and torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(int(seed))
        yield


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with torch limited to ``n`` CPU threads (None: unchanged), restoring the setting after."""
    import torch

    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def file_key(path: PathLike) -> str:
    """sha256 hex of a file's bytes: the key used when callers pass no ``keys``."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except FileNotFoundError as e:
        from activelab.exceptions import NotFoundError

        raise NotFoundError(f"image file not found: {os.fspath(path)}") from e
    return h.hexdigest()


def check_paths(paths: Sequence[PathLike], keys: Sequence[str] | None = None) -> list[str]:
    """Paths as strings; checks ``keys`` (if given) has one string per path."""
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise InputError("paths must be a sequence of image paths, not a single path; wrap it in a list")
    out = [os.fspath(p) for p in paths]
    if keys is not None:
        if isinstance(keys, str) or len(keys) != len(out):
            raise InputError(
                f"keys must have one entry per path: got {len(keys) if not isinstance(keys, str) else 'a string'}"
                f" keys for {len(out)} paths"
            )
        for i, k in enumerate(keys):
            if not isinstance(k, str) or not k or "\n" in k:
                raise InputError(f"keys[{i}] must be a non-empty one-line string (the image's sha256), got {k!r}")
    return out


def resolve_keys(paths: Sequence[str], keys: Sequence[str] | None) -> list[str]:
    """``keys`` as a list, or the files' sha256 when ``keys`` is None."""
    return list(keys) if keys is not None else [file_key(p) for p in paths]


def check_labels(labels: Sequence[int], n: int, n_classes: int | None) -> np.ndarray:
    """Labels as an int64 array of length ``n`` with values in ``[0, n_classes)``."""
    arr = np.asarray(labels)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InputError(f"labels must be a 1-d sequence with one label per path: got shape {arr.shape} for {n} paths")
    if n == 0:
        raise InputError("fit needs at least one labeled image; got none")
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise InputError(
                f"labels must be integer class positions (0..C-1), got dtype {arr.dtype}; "
                "map class names to positions in `classes` first"
            )
    arr = arr.astype(np.int64)
    if arr.min() < 0:
        raise InputError(f"labels must be >= 0; found {int(arr.min())} at position {int(np.argmin(arr))}")
    if n_classes is not None and arr.max() >= n_classes:
        bad = int(np.argmax(arr >= n_classes))
        raise InputError(
            f"label {int(arr[bad])} at position {bad} is out of range for {n_classes} classes; "
            "pass num_classes= or classes= covering every label to create_model"
        )
    return arr


def check_n_samples(n_samples: int) -> int:
    if not isinstance(n_samples, (int, np.integer)) or isinstance(n_samples, bool) or n_samples < 1:
        raise InputError(f"n_samples must be a positive integer, got {n_samples!r}")
    return int(n_samples)


def normalise_rows(p: np.ndarray) -> np.ndarray:
    """Float32 probabilities whose rows sum to 1 (renormalised in float64 first)."""
    p64 = np.asarray(p, dtype=np.float64)
    p64 = np.clip(p64, 0.0, None)
    p64 /= p64.sum(axis=-1, keepdims=True)
    return p64.astype(np.float32)


def check_label_matrix(labels: Any, n: int, n_classes: int | None) -> np.ndarray:
    """Multi-label targets as an (n, C) float32 0/1 array (a sigmoid model's ``fit`` labels)."""
    arr = np.asarray(labels)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise InputError(
            f"a sigmoid (multi-label) model takes labels as an (N, C) 0/1 array with one row per path: "
            f"got shape {arr.shape} for {n} paths"
        )
    if n == 0:
        raise InputError("fit needs at least one labeled image; got none")
    if n_classes is not None and arr.shape[1] != n_classes:
        raise InputError(
            f"labels have {arr.shape[1]} columns but the model has {n_classes} classes; "
            "give one column per class, in the order of `classes`"
        )
    if arr.dtype.kind not in "biuf" or not np.isin(arr, (0, 1)).all():
        bad = np.argwhere(~np.isin(arr, (0, 1)))[0] if arr.dtype.kind in "biuf" else None
        where = f" (e.g. {arr[tuple(bad)].item()!r} at row {bad[0]}, column {bad[1]})" if bad is not None else ""
        raise InputError(f"multi-label targets must be 0 or 1{where}; map each image's class names to a 0/1 row")
    return arr.astype(np.float32)


def grad_embedding(probs: np.ndarray, hidden: np.ndarray, output: str = "softmax") -> np.ndarray:
    """BADGE gradient embeddings (Ash et al., 2020, "Deep Batch Active Learning by
    Diverse, Uncertain Gradient Lower Bounds").

    probs: (N, C) model outputs; hidden: (N, h) input of the last linear layer.
    Returns (N, C * h) float32: the gradient of the loss with respect to the last
    layer's weights, taking the predicted label as the target, i.e. ``(p - ŷ) ⊗ hidden``
    (sign flipped; only norms and distances matter). ``ŷ`` is ``onehot(argmax p)`` for
    softmax/cross-entropy and ``p >= 0.5`` per class for sigmoid/binary cross-entropy.
    """
    n = probs.shape[0]
    p = probs.astype(np.float32)
    if output == "sigmoid":
        target = (p >= 0.5).astype(np.float32)
    else:
        target = np.zeros_like(p)
        target[np.arange(n), p.argmax(axis=1)] = 1.0
    g = target - p
    return (g[:, :, None] * hidden.astype(np.float32)[:, None, :]).reshape(n, -1)


def finish_probs(p: np.ndarray, output: str) -> np.ndarray:
    """Float32 outputs: rows renormalised to sum to 1 (softmax) or clipped to [0, 1] (sigmoid)."""
    if output == "sigmoid":
        return np.clip(np.asarray(p, dtype=np.float32), 0.0, 1.0)
    return normalise_rows(p)


def check_format(obj: Any, path: PathLike, kind: str | None = None) -> dict[str, Any]:
    if not isinstance(obj, dict) or obj.get("format") != "activelab-model":
        raise InputError(f"{os.fspath(path)} is not an activelab model file (saved with adapter.save)")
    if int(obj.get("version", 0)) > FORMAT_VERSION:
        raise InputError(
            f"{os.fspath(path)} was saved by a newer activelab (format {obj.get('version')}); upgrade activelab"
        )
    if kind is not None and obj.get("kind") != kind:
        raise InputError(
            f"{os.fspath(path)} holds a {obj.get('kind')!r} model, not {kind!r}; "
            "use activelab.models.load_model(path) to load any kind"
        )
    return obj
