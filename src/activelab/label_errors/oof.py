"""Out-of-fold predicted probabilities: every labeled image scored by a model that never saw it.

Stratified K-fold cross-validation (Kohavi 1995) over the labeled images: the
model is fitted K times, each time on K-1 folds, and predicts the held-out fold.
On the fast path the backbone embeds each image once (embedding cache), so K-fold
costs K light head fits. These probabilities are what confident learning
(Northcutt, Jiang & Chuang 2021, "Confident Learning", JAIR) needs to rank labels.
For multi-label projects the labels are an (N, C) 0/1 matrix, the model is built
with sigmoid outputs (the project's task says so) and the out-of-fold outputs are
per-class probabilities; folds are then plain shuffled K-fold (scikit-learn has no
multi-label stratification).

For a project, the result is cached under ``PROJECT/cache/oof/`` as
``round-<N>-<key>.npz``, where ``key`` hashes the model settings, the number of
folds, the seed and every (image, content hash, label) pair: a new label, a
correction or another model gives a new file, an unchanged project reuses it.
"""

from __future__ import annotations

import hashlib
import json
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from activelab._io import atomic_path
from activelab.exceptions import InputError, NotFittedError, UnsupportedError
from activelab.loop.project import Project
from activelab.loop.session import ActiveSession
from activelab.models import ModelAdapter
from activelab.progress import track

ModelFactory = Callable[[list[str]], ModelAdapter]

OOF_CACHE_DIR = "oof"
#: K of the K-fold out-of-fold probabilities (a box project's default is detection.DEFAULT_BOX_FOLDS)
DEFAULT_FOLDS = 5
#: bump when the cached file's content or meaning changes
OOF_FORMAT = 1


@dataclass(frozen=True)
class OutOfFold:
    """Out-of-fold predictions for labeled images, in store order.

    ``probs``: (N, C) float32, row i from a model not trained on image i: rows sum to 1
    (single-label), or independent per-class probabilities (multi-label).
    ``labels``: (N,) int64 class indices, or (N, C) 0/1 for multi-label: what the models trained on.
    ``embeddings``: (N, d) float32 model embeddings when the model provides them, else None.
    ``folds``: (N,) int64, the fold each image was held out in.
    """

    image_ids: list[int]
    paths: list[str]
    keys: list[str]
    labels: np.ndarray
    probs: np.ndarray
    folds: np.ndarray
    classes: list[str]
    embeddings: np.ndarray | None = None
    cache_path: Path | None = None
    from_cache: bool = False
    seconds: float = 0.0


def fold_assignment(labels: np.ndarray, n_folds: int, *, seed: int) -> np.ndarray:
    """(N,) fold index of each item: stratified by label, shuffled with ``seed``.

    Classes with fewer members than ``n_folds`` are spread over as many folds as they
    have members (scikit-learn's StratifiedKFold warns about that; the split is still valid).
    Multi-label ``labels`` (N, C) and box targets (an object array of per-image dicts)
    get shuffled, unstratified folds.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(labels)
    if y.ndim not in (1, 2):
        raise InputError(f"labels must be (N,) class indices or (N, C) 0/1, got shape {y.shape}")
    if n_folds < 2:
        raise InputError(
            f"--folds must be at least 2 (each image is scored by a model trained on the others), got {n_folds}"
        )
    if len(y) < n_folds:
        raise InputError(f"{len(y)} labeled images cannot be split into {n_folds} folds; label more or use fewer folds")
    out = np.empty(len(y), dtype=np.int64)
    stratified = y.ndim == 1 and y.dtype != object
    splitter = (StratifiedKFold if stratified else KFold)(n_splits=n_folds, shuffle=True, random_state=int(seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "least populated class has only k members"
        for f, (_, test) in enumerate(splitter.split(np.zeros(len(y)), y if stratified else None)):
            out[test] = f
    return out


def out_of_fold_probs(
    model_factory: Callable[[], ModelAdapter],
    paths: Sequence[str],
    labels: np.ndarray,
    *,
    n_classes: int,
    keys: Sequence[str] | None = None,
    folds: int = DEFAULT_FOLDS,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """K-fold out-of-fold probabilities for images ``paths`` with class indices ``labels``.

    ``labels`` may also be an (N, C) 0/1 matrix (multi-label; the factory must then
    build sigmoid models, whose outputs are per-class probabilities).
    ``model_factory()`` builds a fresh, unfitted adapter (share one embedding cache
    between them so the backbone runs once per image). Returns ``(probs (N, C), folds (N,))``.
    """
    y = np.asarray(labels, dtype=np.int64)
    if len(paths) != len(y):
        raise InputError(f"{len(paths)} paths but {len(y)} labels; pass one label per image")
    if y.ndim == 2 and (y.shape[1] != n_classes or not np.isin(y, (0, 1)).all()):
        raise InputError(f"multi-label labels must be (N, {n_classes}) 0/1, got shape {y.shape}")
    if y.ndim == 1 and len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise InputError(f"labels must be class indices in [0, {n_classes}), got values {y.min()}..{y.max()}")
    assignment = fold_assignment(y, folds, seed=seed)
    probs = np.zeros((len(y), n_classes), dtype=np.float32)
    ks = list(keys) if keys is not None else None
    for f in track(range(folds), progress, "out-of-fold predictions", unit="folds"):
        test = np.flatnonzero(assignment == f).tolist()
        train = np.flatnonzero(assignment != f).tolist()
        if len(test) == 0:
            continue
        model = model_factory()
        model.fit(
            [paths[i] for i in train],
            y[train] if y.ndim == 2 else y[train].tolist(),
            keys=None if ks is None else [ks[i] for i in train],
            seed=seed,
            progress=progress,
        )
        probs[test] = model.predict_proba(
            [paths[i] for i in test], keys=None if ks is None else [ks[i] for i in test], progress=progress
        )
    return probs, assignment


def embeddings_if_available(
    model_factory: Callable[[], ModelAdapter], paths: Sequence[str], keys: Sequence[str] | None
) -> np.ndarray | None:
    """(N, d) embeddings from a fresh adapter when it provides ``embeddings``, else None."""
    model = model_factory()
    if "embeddings" not in model.supports:
        return None
    try:
        return np.asarray(model.embed(list(paths), keys=None if keys is None else list(keys)), dtype=np.float32)
    except (NotFittedError, UnsupportedError):
        return None


def project_model_factory(project: Project) -> ModelFactory:
    """The project's own model settings (embedding cache in ``PROJECT/cache/embeddings``)."""
    return ActiveSession(project).model_factory


def _cache_key(
    model_config: dict[str, Any],
    folds: int,
    seed: int,
    image_ids: Sequence[int],
    keys: Sequence[str],
    labels: np.ndarray,
    classes: Sequence[str],
) -> str:
    h = hashlib.sha256()
    h.update(
        json.dumps(
            {"format": OOF_FORMAT, "model": model_config, "folds": folds, "seed": seed, "classes": list(classes)},
            sort_keys=True,
            default=str,
        ).encode()
    )
    for iid, key, lab in zip(image_ids, keys, labels.tolist()):
        h.update(f"{iid}:{key}:{lab};".encode())
    return h.hexdigest()[:16]


def project_out_of_fold(
    project: Project,
    *,
    folds: int = DEFAULT_FOLDS,
    seed: int | None = None,
    split: str = "pool",
    model_factory: ModelFactory | None = None,
    refresh: bool = False,
    with_embeddings: bool = True,
    progress: bool = False,
) -> OutOfFold:
    """Out-of-fold probabilities for the labeled images of ``split``, cached per project state.

    The cache file is ``PROJECT/cache/oof/round-<N>-<key>.npz`` (N = rounds finished;
    ``key`` hashes model settings, folds, seed, images and labels). ``refresh`` recomputes.
    A custom ``model_factory`` is keyed by the config of the adapter it builds. Embeddings
    (for near-duplicate search) are not stored there: they come from the embedding cache.
    """
    session = ActiveSession(project)
    if session.task.output == "boxes":
        raise InputError(
            f"{project.root} is a {project.settings.task} project: its labels are boxes, ranked by "
            "label_error_report(project) (`activelab errors`) or label_errors.detection.project_box_out_of_fold"
        )
    classes = project.store.class_names()
    labeled = session.labeled_set(split)
    if len(labeled.image_ids) < folds:
        raise InputError(
            f"only {len(labeled.image_ids)} labeled {split} images in {project.root}; "
            f"out-of-fold ranking needs at least {folds} (import labels or use --folds {max(2, len(labeled.image_ids))})"
        )
    seed = project.settings.train.seed if seed is None else seed
    factory = model_factory or session.model_factory
    probe = factory(classes)
    config = dict(getattr(probe, "config", {}) or {})
    key = _cache_key(config, folds, seed, labeled.image_ids, labeled.keys, labeled.y, classes)
    folder = project.cache_dir / OOF_CACHE_DIR
    path = folder / f"round-{project.store.round_number()}-{key}.npz"
    existing = sorted(folder.glob(f"round-*-{key}.npz")) if folder.is_dir() else []
    if existing and not refresh:
        with np.load(existing[0], allow_pickle=False) as z:
            probs, assignment = z["probs"], z["folds"]
        emb = embeddings_if_available(lambda: probe, labeled.paths, labeled.keys) if with_embeddings else None
        return OutOfFold(
            labeled.image_ids,
            labeled.paths,
            labeled.keys,
            labeled.y,
            probs,
            assignment,
            classes,
            emb,
            existing[0],
            True,
            0.0,
        )
    t0 = time.perf_counter()
    probs, assignment = out_of_fold_probs(
        lambda: factory(classes),
        labeled.paths,
        labeled.y,
        n_classes=len(classes),
        keys=labeled.keys,
        folds=folds,
        seed=seed,
        progress=progress,
    )
    emb = embeddings_if_available(lambda: probe, labeled.paths, labeled.keys) if with_embeddings else None
    seconds = time.perf_counter() - t0
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a killed run never leaves a half-written cache file
        np.savez(
            tmp,
            probs=probs,
            folds=assignment,
            labels=labeled.y,
            image_ids=np.asarray(labeled.image_ids, dtype=np.int64),
        )
    return OutOfFold(
        labeled.image_ids, labeled.paths, labeled.keys, labeled.y, probs, assignment, classes, emb, path, False, seconds
    )
