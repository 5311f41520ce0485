"""Labeled datasets for simulations: a pool and an eval split with known labels.

Models read image files (that is what the loop and the adapters see), so in-memory
arrays (Fashion-MNIST, digits) are written once as PNG files into an image folder
named by content hash and reused; each image's cache key is the sha256 of its pixels,
so the fast path's embedding cache is shared by every run, strategy and seed.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from activelab._io import atomic_path
from activelab.exceptions import InputError, NotFoundError
from activelab.store.classes import payload_classes
from activelab.tasks import Task, get_task

#: dataset names understood besides a folder path
BUILTIN_DATASETS = ("digits", "fashion-mnist", "fashion-mnist-sample", "sample", "fashion-scenes")
#: a folder table's label column, first found (single-label, multi-label, detection)
LABEL_COLUMNS = ("label", "labels", "boxes")


@dataclass(frozen=True)
class SimDataset:
    """A pool and an eval split, both fully labeled (the oracle's answers).

    ``pool_paths`` / ``eval_paths``: image files; ``pool_keys`` / ``eval_keys``: their
    cache keys (sha256 hex); ``y_pool`` / ``y_eval``: the task's targets, ``(N,)`` int64
    positions into ``classes`` (single-label), ``(N, C)`` 0/1 (multi-label) or an object
    array ``(N,)`` of ``{"boxes", "labels"}`` dicts (detection) or of ``(H, W) uint8`` masks
    (segmentation). ``name`` says where it
    came from (recorded with results).
    """

    name: str
    classes: list[str]
    pool_paths: list[str]
    pool_keys: list[str]
    y_pool: np.ndarray
    eval_paths: list[str]
    eval_keys: list[str]
    y_eval: np.ndarray

    @property
    def n_pool(self) -> int:
        return len(self.pool_paths)

    @property
    def n_eval(self) -> int:
        return len(self.eval_paths)


def array_key(image: np.ndarray) -> str:
    """Cache key of an in-memory image: sha256 of its dtype, shape and pixel bytes."""
    a = np.ascontiguousarray(image)
    h = hashlib.sha256(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
    return h.hexdigest()


def write_images(images: np.ndarray, folder: str | os.PathLike[str]) -> tuple[list[str], list[str]]:
    """Write (N, H, W) or (N, H, W, 3) uint8 ``images`` as ``folder/<key>.png`` (skipping
    files already there); returns ``(paths, keys)`` in input order."""
    arr = np.asarray(images)
    if arr.dtype != np.uint8 or arr.ndim not in (3, 4):
        raise InputError(f"images must be uint8 (N, H, W) or (N, H, W, 3); got {arr.dtype} {arr.shape}")
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    paths, keys = [], []
    for img in arr:
        key = array_key(img)
        path = out / f"{key}.png"
        if not path.exists():
            with atomic_path(path) as tmp:
                Image.fromarray(img).save(tmp)
        paths.append(str(path))
        keys.append(key)
    return paths, keys


def strata(y: np.ndarray) -> np.ndarray:
    """``(N,)`` int stratum of each target: its class, or for a ``(N, C)`` 0/1 row the position of its label set.

    Per-image box dicts (detection) all share one stratum: no class stands for a whole
    scene, so "stratified" and "balanced" draws are plain random ones there.
    """
    y = np.asarray(y)
    if y.dtype == object:
        return np.zeros(len(y), dtype=np.int64)
    if y.ndim == 1:
        return y
    return np.unique(y, axis=0, return_inverse=True)[1].reshape(-1)


def box_counts(y: np.ndarray) -> np.ndarray | None:
    """``(N,)`` ground-truth boxes of each image for detection targets (dicts with ``labels``); None for class
    targets, which label an image, not objects in it, and for masks."""
    y = np.asarray(y)
    if y.dtype != object or not all(isinstance(t, dict) for t in y):
        return None
    return np.array([len(t["labels"]) for t in y], dtype=np.int64)


def class_counts(y: np.ndarray, positions: np.ndarray, n_classes: int) -> list[int]:
    """How many of the images at ``positions`` carry each class; for detection targets, how many boxes; for
    masks, how many labeled pixels."""
    picked = np.asarray(y)[np.asarray(positions, dtype=np.int64)]
    if picked.dtype == object and not all(isinstance(t, dict) for t in picked):
        counts = np.zeros(n_classes, dtype=np.int64)
        for mask in picked:
            values = np.asarray(mask).ravel()
            counts += np.bincount(values[values < n_classes], minlength=n_classes)[:n_classes]
        return counts.tolist()
    if picked.dtype == object:
        labels = [np.asarray(t["labels"], dtype=np.int64) for t in picked]
        flat = np.concatenate(labels) if labels else np.zeros(0, dtype=np.int64)
        return np.bincount(flat, minlength=n_classes).tolist()
    if picked.ndim == 1:
        return np.bincount(picked, minlength=n_classes).tolist()
    return picked.sum(axis=0, dtype=np.int64).tolist() if len(picked) else [0] * n_classes


def _stratified(y: np.ndarray, limit: int | None, seed: int) -> np.ndarray:
    """Indices of a stratified (by class, or by label set) random subset of size ``limit`` (all when None), sorted."""
    if limit is None or limit >= len(y):
        return np.arange(len(y))
    if limit < 1:
        raise InputError(f"a subset size must be at least 1, got {limit}")
    y = strata(y)
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts / counts.sum() * limit).astype(int)
    for i in np.argsort(-(counts / counts.sum() * limit - quota))[: limit - quota.sum()]:
        quota[i] += 1
    picks = [rng.choice(np.flatnonzero(y == c), size=q, replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picks))


def from_arrays(
    name: str,
    x_pool: np.ndarray,
    y_pool: np.ndarray,
    x_eval: np.ndarray,
    y_eval: np.ndarray,
    classes: Sequence[str],
    image_dir: str | os.PathLike[str],
    *,
    pool_limit: int | None = None,
    eval_limit: int | None = None,
    subset_seed: int = 0,
) -> SimDataset:
    """A :class:`SimDataset` from image arrays, written as PNGs under ``image_dir``.

    ``pool_limit`` / ``eval_limit`` keep a class-stratified random subset (fixed by
    ``subset_seed``) of that many images.
    """
    ip = _stratified(np.asarray(y_pool), pool_limit, subset_seed)
    ie = _stratified(np.asarray(y_eval), eval_limit, subset_seed + 1)
    pp, pk = write_images(np.asarray(x_pool)[ip], image_dir)
    ep, ek = write_images(np.asarray(x_eval)[ie], image_dir)
    return SimDataset(
        name,
        [str(c) for c in classes],
        pp,
        pk,
        np.asarray(y_pool, dtype=np.int64)[ip],
        ep,
        ek,
        np.asarray(y_eval, dtype=np.int64)[ie],
    )


def from_folder(
    folder: str | os.PathLike[str],
    *,
    pool_limit: int | None = None,
    eval_limit: int | None = None,
    subset_seed: int = 0,
    path_col: str = "filepath",
    label_col: str | None = None,
    task: Task | None = None,
) -> SimDataset:
    """A :class:`SimDataset` from ``folder/pool.csv`` and ``folder/eval.csv`` (columns
    ``filepath`` relative to ``folder`` and ``label``), the layout ``fetch_dataset`` writes.

    The pool's labels come from ``folder/answers.csv`` where it exists: ``fetch_dataset``
    keeps them there so that its ``pool.csv`` imports unlabeled. Each label cell is read
    by ``task`` (default single-label classification): a multi-label cell holds
    ``"a|b"`` and a detection cell the JSON list of boxes, in a ``label`` (or ``labels``,
    or ``boxes``) column unless ``label_col`` names another. The image column is
    ``path_col``, or ``image`` where a table has no ``path_col`` (fashion-scenes' tables).
    The classes are those of ``folder/classes.txt`` (one per line, in that order) where it
    exists, else the sorted names the labels mention."""
    from activelab.models import file_key

    task = task or get_task("classification")
    root = Path(folder)
    tables, sources, payloads, image_cols = {}, {}, {}, {}
    for split in ("pool", "eval"):
        table = root / f"{split}.csv"
        if split == "pool" and (root / "answers.csv").is_file():
            table = root / "answers.csv"
        if not table.is_file():
            raise NotFoundError(
                f"{table} not found: a simulation dataset folder needs pool.csv (or answers.csv) and eval.csv "
                f"(columns {path_col},{label_col or 'label'}); write one with `activelab datasets fetch`"
            )
        df = pd.read_csv(table)
        col = label_col or next((c for c in LABEL_COLUMNS if c in df.columns), LABEL_COLUMNS[0])
        image_col = "image" if path_col not in df.columns and "image" in df.columns else path_col
        for needed in (image_col, col):
            if needed not in df.columns:
                raise InputError(f"{table} has no column {needed!r} (columns: {', '.join(map(str, df.columns))})")
        missing = df[col].isna()
        if missing.any():
            row = int(np.flatnonzero(missing.to_numpy())[0]) + 2
            raise InputError(f"{table} row {row} has no label: every image of a simulation needs one")
        tables[split] = df
        image_cols[split] = image_col
        sources[split] = table
        payloads[split] = [task.parse(str(v)) for v in df[col]]
    mentioned = {name for split in payloads.values() for p in split for name in payload_classes(p)}
    classes = (
        _listed_classes(root / "classes.txt", mentioned) if (root / "classes.txt").is_file() else sorted(mentioned)
    )
    parts = []
    for split, limit, off in (("pool", pool_limit, 0), ("eval", eval_limit, 1)):
        df = tables[split]
        y = task.targets(payloads[split], classes)
        keep = _stratified(y, limit, subset_seed + off)
        paths = [str(root / str(df[image_cols[split]].iloc[i])) for i in keep]
        for p in paths:
            if not os.path.isfile(p):
                raise NotFoundError(f"{p} (listed in {sources[split]}) does not exist")
        parts.append((paths, [file_key(p) for p in paths], y[keep]))
    (pp, pk, yp), (ep, ek, ye) = parts
    return SimDataset(str(root), classes, pp, pk, yp, ep, ek, ye)


def from_mask_folder(
    folder: str | os.PathLike[str],
    task: Task,
    *,
    pool_limit: int | None = None,
    eval_limit: int | None = None,
    subset_seed: int = 0,
) -> SimDataset:
    """A :class:`SimDataset` of segmentation masks from a fashion-scenes folder's mask tables.

    The tables are :data:`activelab.data.scenes.SEGMENTATION_TABLES`: ``answers_masks.csv``
    (the pool's oracle) and ``eval_masks.csv`` with columns ``image`` and ``mask`` (a mask PNG,
    paths relative to ``folder``), and ``classes_masks.txt`` (``background`` first), whose
    order gives the pixel values. Each mask is validated by ``task`` (kept in its mask store);
    the targets are ``(N,)`` object arrays of ``(H, W) uint8`` masks. ``pool_limit`` /
    ``eval_limit`` keep a random subset (fixed by ``subset_seed``).
    """
    from activelab.data.scenes import SEGMENTATION_TABLES
    from activelab.models import file_key

    root = Path(folder)
    classes_file = root / SEGMENTATION_TABLES["classes"]
    if not classes_file.is_file():
        raise NotFoundError(
            f"{classes_file} not found: a segmentation dataset folder needs {SEGMENTATION_TABLES['classes']}, "
            f"{SEGMENTATION_TABLES['answers']} and {SEGMENTATION_TABLES['eval']}; write one with "
            "`activelab datasets fetch fashion-scenes DIR`"
        )
    classes = _listed_classes(classes_file, set())
    parts = []
    for split, limit, off in (("answers", pool_limit, 0), ("eval", eval_limit, 1)):
        table = root / SEGMENTATION_TABLES[split]
        if not table.is_file():
            raise NotFoundError(f"{table} not found (columns image, mask); write it with `activelab datasets fetch`")
        df = pd.read_csv(table, dtype=str, keep_default_na=False)
        for needed in ("image", "mask"):
            if needed not in df.columns:
                raise InputError(f"{table} has no column {needed!r} (columns: {', '.join(map(str, df.columns))})")
        keep = _stratified(np.zeros(len(df), dtype=np.int64), limit, subset_seed + off)
        paths, payloads = [], []
        for i in keep.tolist():
            path = root / df["image"].iloc[i]
            if not path.is_file():
                raise NotFoundError(f"{path} (listed in {table}, row {i + 2}) does not exist")
            try:
                payloads.append(task.validate(task.parse(df["mask"].iloc[i], base=root), classes))
            except InputError as e:
                raise InputError(f"{table} row {i + 2}: {e}") from None
            paths.append(str(path))
        parts.append((paths, [file_key(p) for p in paths], task.targets(payloads, classes)))
    (pp, pk, yp), (ep, ek, ye) = parts
    return SimDataset(str(root), classes, pp, pk, yp, ep, ek, ye)


def scenes_folder(cache: str | os.PathLike[str], n_pool: int | None, n_eval: int | None) -> Path:
    """``cache/fashion-scenes-<n_pool>-<n_eval>``: fashion-scenes (128 px, seed 0) with its box and mask tables,
    generated on first use (``None``: the set's default sizes) and reused after."""
    from activelab.data.datasets import SCENES_SIZES
    from activelab.data.scenes import SEGMENTATION_TABLES, write_scenes

    n_pool = SCENES_SIZES["pool"] if n_pool is None else n_pool
    n_eval = SCENES_SIZES["eval"] if n_eval is None else n_eval
    folder = Path(cache) / f"fashion-scenes-{n_pool}-{n_eval}"
    if not (folder / SEGMENTATION_TABLES["eval"]).is_file():
        tmp = folder.with_name(f".{folder.name}.{os.getpid()}.tmp")
        write_scenes(tmp, n_pool=n_pool, n_eval=n_eval)
        os.replace(tmp, folder)  # whole or not at all: an interrupted generation is not mistaken for a set
    return folder


def _listed_classes(path: Path, mentioned: set[str]) -> list[str]:
    """The class names of ``path`` (one per line, blank lines skipped); every ``mentioned`` one must be there."""
    listed = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    unknown = sorted(mentioned - set(listed))
    if unknown:
        raise InputError(f"labels name classes {unknown} that {path} does not list: add them to it")
    return listed


def load_dataset(
    name: str,
    image_dir: str | os.PathLike[str],
    *,
    pool_limit: int | None = None,
    eval_limit: int | None = None,
    subset_seed: int = 0,
    task: Task | None = None,
) -> SimDataset:
    """``digits``, ``fashion-mnist`` (60k pool / 10k eval), ``fashion-mnist-sample`` (or ``sample``: the
    bundled Fashion-MNIST sample), ``fashion-scenes`` (generated once beside ``image_dir``:
    :func:`scenes_folder`) or a folder holding ``pool.csv`` (or ``answers.csv``) and ``eval.csv``.

    ``task`` reads a folder's label cells (:func:`from_folder`); a task whose labels are masks reads a
    fashion-scenes folder's mask tables (:func:`from_mask_folder`); the built-in sets are single-label."""
    from activelab.data.datasets import (
        DIGITS_CLASSES,
        FASHION_MNIST_CLASSES,
        load_digits_arrays,
        load_fashion_mnist,
        sample_dir,
    )

    kw: dict[str, Any] = {
        "pool_limit": pool_limit,
        "eval_limit": eval_limit,
        "subset_seed": subset_seed,
    }
    if name == "digits":
        return from_arrays(name, *load_digits_arrays(), DIGITS_CLASSES, image_dir, **kw)
    if name == "fashion-mnist":
        return from_arrays(name, *load_fashion_mnist(), FASHION_MNIST_CLASSES, image_dir, **kw)
    if name in ("fashion-mnist-sample", "sample"):
        ds = from_folder(sample_dir(), **kw)
        return SimDataset(
            "sample",
            *[
                getattr(ds, f)
                for f in (
                    "classes",
                    "pool_paths",
                    "pool_keys",
                    "y_pool",
                    "eval_paths",
                    "eval_keys",
                    "y_eval",
                )
            ],
        )
    if name == "fashion-scenes":
        name = str(scenes_folder(Path(image_dir).parent, pool_limit, eval_limit))
        kw.update(pool_limit=None, eval_limit=None)  # generated at those sizes
    if os.path.isdir(name) and task is not None and task.output == "masks":
        return from_mask_folder(name, task, **kw)
    if os.path.isdir(name):
        return from_folder(name, task=task, **kw)
    raise InputError(
        f"unknown dataset {name!r}: use one of {', '.join(BUILTIN_DATASETS)} or a folder holding pool.csv and eval.csv"
    )
