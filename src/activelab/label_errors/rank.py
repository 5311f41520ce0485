"""Rank labels by how likely they are wrong (cleanlab), and find near-duplicates with conflicting labels.

The ranking is cleanlab's label-quality score of each labeled image computed from
out-of-fold predicted probabilities (Northcutt, Jiang & Chuang 2021, "Confident
Learning: Estimating Uncertainty in Dataset Labels", JAIR 70), lowest first; the
flagged set (``is_issue``) is cleanlab's ``filter.find_label_issues``
(``prune_by_noise_rate`` by default), which estimates how many labels are wrong
per pair of classes from the confident joint.

Multi-label labels ((N, C) 0/1, from a multi-label project) go to cleanlab's
``multilabel_classification`` module instead: ``rank.get_label_quality_scores``
and ``filter.find_label_issues`` on out-of-fold per-class probabilities (Thyagarajan
et al. 2023, "Identifying Incorrect Annotations in Multi-Label Classification
Data"). Given and suggested labels are then the class sets joined by ``|``; the
suggested set is the classes with probability >= 0.5, and ``p_given`` /
``p_suggested`` are the probabilities of those whole sets under the independent
per-class outputs.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activelab._defaults import DEFAULT_MODEL
from activelab.exceptions import InputError
from activelab.label_errors.oof import (
    OutOfFold,
    embeddings_if_available,
    out_of_fold_probs,
    project_out_of_fold,
)
from activelab.loop.project import Project, open_project
from activelab.loop.settings import Settings
from activelab.models import ModelAdapter, create_model
from activelab.store import Store

RANKING_COLUMNS = [
    "rank",
    "image_id",
    "filepath",
    "given_label",
    "suggested_label",
    "score",
    "is_issue",
    "p_given",
    "p_suggested",
    "ranked_at",
]
DUPLICATE_COLUMNS = ["image_id_a", "image_id_b", "filepath_a", "filepath_b", "label_a", "label_b", "distance"]
SCORE_METHODS = ("self_confidence", "normalized_margin", "confidence_weighted_entropy")
#: cosine distance under which two images count as near-duplicates (fast-path embeddings)
DEFAULT_DUPLICATE_DISTANCE = 0.02
#: joins the classes of a multi-label set in the ranking's given/suggested columns (the table-cell convention)
SET_SEP = "|"
#: per-class probability from which a class is in a suggested multi-label set
SET_THRESHOLD = 0.5


def _check_probs(pred_probs: Any, n: int | None = None) -> np.ndarray:
    p = np.asarray(pred_probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise InputError(f"pred_probs must be (n_samples, n_classes) with n_classes >= 2, got shape {p.shape}")
    if n is not None and p.shape[0] != n:
        raise InputError(f"pred_probs has {p.shape[0]} rows but there are {n} labels; pass one row per labeled image")
    if not np.all(np.isfinite(p)):
        raise InputError("pred_probs contains NaN or infinite values")
    if np.any(p < 0) or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise InputError("pred_probs rows must be probabilities (non-negative, summing to 1)")
    return p / p.sum(axis=1, keepdims=True)


def _encode_labels(labels: Any, classes: Sequence[str] | None) -> tuple[np.ndarray, list[str]]:
    """Labels as class indices (or an (N, C) 0/1 multi-label matrix, kept), and the class names."""
    arr = np.asarray(labels)
    if arr.ndim == 2 and arr.dtype.kind in "iub":
        names = list(classes) if classes is not None else [str(c) for c in range(arr.shape[1])]
        return arr.astype(np.int64), names
    if arr.ndim != 1:
        raise InputError(
            f"labels must be 1-d (one label per image) or (N, C) 0/1 for multi-label, got shape {arr.shape}"
        )
    if arr.dtype.kind in "iu":
        names = list(classes) if classes is not None else [str(c) for c in range(int(arr.max()) + 1 if len(arr) else 0)]
        if len(arr) and (arr.min() < 0 or arr.max() >= len(names)):
            raise InputError(f"integer labels must lie in [0, {len(names)}), got {arr.min()}..{arr.max()}")
        return arr.astype(np.int64), names
    if pd.isna(pd.Series(arr)).any():
        row = int(np.flatnonzero(pd.isna(pd.Series(arr)))[0])
        raise InputError(f"label of row {row} is missing; drop unlabeled rows before ranking labels")
    strs = arr.astype(str)
    names = list(classes) if classes is not None else sorted(set(strs.tolist()))
    index = {n: i for i, n in enumerate(names)}
    unknown = sorted(set(strs.tolist()) - set(index))
    if unknown:
        raise InputError(f"label(s) {unknown[:5]} are not among the classes {names}")
    return np.array([index[s] for s in strs], dtype=np.int64), names


def rank_label_issues(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    classes: Sequence[str],
    image_ids: Sequence[Any] | None = None,
    filepaths: Sequence[str | None] | None = None,
    method: str = "self_confidence",
    filter_by: str = "prune_by_noise_rate",
) -> pd.DataFrame:
    """The ranking table from class indices ``labels`` (N,) and out-of-fold ``pred_probs`` (N, C).

    Rows are sorted by ``score`` ascending (most likely wrong first); ``score`` is
    cleanlab's label-quality score in [0, 1] (``self_confidence``: the out-of-fold
    probability of the given label). ``is_issue`` is cleanlab's flagged set.
    Multi-label ``labels`` (N, C) 0/1 with per-class ``pred_probs`` are ranked by
    :func:`rank_multilabel_issues`.
    """
    y = np.asarray(labels, dtype=np.int64)
    if y.ndim == 2:
        return rank_multilabel_issues(
            y, pred_probs, classes=classes, image_ids=image_ids, filepaths=filepaths, method=method, filter_by=filter_by
        )
    p = _check_probs(pred_probs, len(y))
    if p.shape[1] != len(classes):
        raise InputError(f"pred_probs has {p.shape[1]} columns but there are {len(classes)} classes")
    if method not in SCORE_METHODS:
        raise InputError(f"method must be one of {SCORE_METHODS}, got {method!r}")
    n = len(y)
    ids, paths = _ids_and_paths(n, image_ids, filepaths)
    from cleanlab.filter import find_label_issues as cl_find
    from cleanlab.rank import get_label_quality_scores

    scores = get_label_quality_scores(y, p, method=method) if n else np.zeros(0)
    flagged = _flagged(cl_find, y, p, filter_by) if n and len(np.unique(y)) > 1 else np.zeros(n, dtype=bool)
    suggested = p.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    names = np.asarray(list(classes), dtype=object)
    frame = pd.DataFrame(
        {
            "image_id": ids,
            "filepath": paths,
            "given_label": names[y] if n else [],
            "suggested_label": names[suggested] if n else [],
            "score": scores.astype(float),
            "is_issue": flagged,
            "p_given": p[np.arange(n), y] if n else [],
            "p_suggested": p[np.arange(n), suggested] if n else [],
        }
    )
    return _ranked(frame)


def rank_multilabel_issues(
    labels: np.ndarray,
    pred_probs: np.ndarray,
    *,
    classes: Sequence[str],
    image_ids: Sequence[Any] | None = None,
    filepaths: Sequence[str | None] | None = None,
    method: str = "self_confidence",
    filter_by: str = "prune_by_noise_rate",
) -> pd.DataFrame:
    """The ranking table of multi-label ``labels`` (N, C) 0/1 from out-of-fold per-class ``pred_probs`` (N, C).

    Columns and order as :func:`rank_label_issues`; ``score`` and ``is_issue`` come
    from cleanlab's ``multilabel_classification`` (rank / filter), which scores each
    class as a binary problem and aggregates the per-class scores of an image.
    """
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(pred_probs, dtype=np.float64)
    n = len(y)
    if p.shape != y.shape or y.shape[1:] != (len(classes),):
        raise InputError(
            f"multi-label labels and pred_probs must both be (n, n_classes={len(classes)}), got {y.shape} and {p.shape}"
        )
    if not np.isin(y, (0, 1)).all():
        raise InputError("multi-label labels must be 0/1 (one column per class)")
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise InputError("pred_probs must be per-class probabilities in [0, 1] (sigmoid outputs), without NaN")
    if method not in SCORE_METHODS:
        raise InputError(f"method must be one of {SCORE_METHODS}, got {method!r}")
    ids, paths = _ids_and_paths(n, image_ids, filepaths)
    from cleanlab.multilabel_classification.filter import find_label_issues as cl_find
    from cleanlab.multilabel_classification.rank import get_label_quality_scores

    as_lists = [np.flatnonzero(row).tolist() for row in y]
    scores = get_label_quality_scores(as_lists, p, method=method) if n else np.zeros(0)
    several = n > 0 and len({tuple(row) for row in y.tolist()}) > 1
    flagged = _flagged(cl_find, as_lists, p, filter_by) if several else np.zeros(n, dtype=bool)
    suggested = (p >= SET_THRESHOLD).astype(np.int64)
    frame = pd.DataFrame(
        {
            "image_id": ids,
            "filepath": paths,
            "given_label": label_texts(y, classes),
            "suggested_label": label_texts(suggested, classes),
            "score": np.asarray(scores, dtype=float),
            "is_issue": flagged,
            "p_given": _set_probability(y, p),
            "p_suggested": _set_probability(suggested, p),
        }
    )
    return _ranked(frame)


def _ids_and_paths(
    n: int, image_ids: Sequence[Any] | None, filepaths: Sequence[str | None] | None
) -> tuple[list[Any], list[str | None]]:
    ids = list(range(n)) if image_ids is None else list(image_ids)
    paths: list[str | None] = [None] * n if filepaths is None else list(filepaths)
    if len(ids) != n or len(paths) != n:
        raise InputError(f"image_ids / filepaths must have one entry per label ({n})")
    return ids, paths


def _flagged(find_issues: Any, labels: Any, p: np.ndarray, filter_by: str) -> np.ndarray:
    """cleanlab's flagged set as an (N,) bool mask, its warnings (about tiny classes) silenced."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(find_issues(labels, p, filter_by=filter_by, n_jobs=1), dtype=bool)


def _ranked(frame: pd.DataFrame, columns: Sequence[str] = RANKING_COLUMNS) -> pd.DataFrame:
    """``frame`` sorted by score (stable: ties keep input order), ranked from 1 and time-stamped, as ``columns``."""
    n = len(frame)
    order = np.lexsort((np.arange(n), frame["score"].to_numpy()))
    frame = frame.iloc[order].reset_index(drop=True)
    frame.insert(0, "rank", np.arange(1, n + 1))
    frame["ranked_at"] = datetime.now(timezone.utc).isoformat()
    return frame[list(columns)]


def label_texts(labels: np.ndarray, classes: Sequence[str]) -> list[str]:
    """Each label as text: its class name, or a multi-label row's classes joined by ``|`` (as the ranking shows them)."""
    y = np.asarray(labels)
    if y.ndim == 2:
        return [SET_SEP.join(classes[j] for j in np.flatnonzero(row).tolist()) for row in y]
    return [str(name) for name in np.asarray(classes, dtype=object)[y]]


def _set_probability(sets: np.ndarray, p: np.ndarray) -> np.ndarray:
    """(N,) probability of each row's whole class set under independent per-class probabilities."""
    return np.prod(np.where(sets == 1, p, 1.0 - p), axis=1) if len(p) else np.zeros(0)


def find_near_duplicates(
    embeddings: np.ndarray,
    labels: Sequence[Any],
    *,
    image_ids: Sequence[Any] | None = None,
    filepaths: Sequence[str | None] | None = None,
    max_distance: float = DEFAULT_DUPLICATE_DISTANCE,
    k: int = 10,
    chunk_size: int = 4096,
    conflicts_only: bool = True,
) -> pd.DataFrame:
    """Pairs of images whose embeddings are within ``max_distance`` cosine distance.

    ``embeddings``: (N, d). Each image's ``k`` nearest neighbours are searched with
    faiss (exact inner product on L2-normalised rows), ``chunk_size`` queries at a
    time, so memory is O(N * k), never N x N. With ``conflicts_only`` (default) only
    pairs with different labels are kept. Each pair appears once (``image_id_a`` is the
    earlier row), sorted by distance.
    """
    import faiss

    x = np.ascontiguousarray(np.asarray(embeddings, dtype=np.float32))
    n = x.shape[0] if x.ndim == 2 else -1
    if x.ndim != 2:
        raise InputError(f"embeddings must be (n_samples, dim), got shape {x.shape}")
    if len(labels) != n:
        raise InputError(f"{n} embeddings but {len(labels)} labels")
    if not np.all(np.isfinite(x)):
        raise InputError("embeddings contain NaN or infinite values")
    ids = list(range(n)) if image_ids is None else list(image_ids)
    paths = [None] * n if filepaths is None else list(filepaths)
    labs = list(labels)
    rows: list[tuple[Any, ...]] = []
    if n >= 2:
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        index = faiss.IndexFlatIP(x.shape[1])
        index.add(x)
        kk = min(k + 1, n)
        for start in range(0, n, chunk_size):
            sims, nbrs = index.search(x[start : start + chunk_size], kk)
            for qi in range(sims.shape[0]):
                i = start + qi
                for sim, j in zip(sims[qi], nbrs[qi]):
                    j = int(j)
                    dist = float(max(0.0, 1.0 - sim))
                    if j < 0 or j == i or dist > max_distance:
                        continue
                    a, b = (i, j) if i < j else (j, i)
                    if conflicts_only and labs[a] == labs[b]:
                        continue
                    rows.append((a, b, dist))
    seen: dict[tuple[int, int], float] = {}
    for a, b, d in rows:
        seen[(a, b)] = min(d, seen.get((a, b), d))
    out = [(ids[a], ids[b], paths[a], paths[b], labs[a], labs[b], d) for (a, b), d in seen.items()]
    frame = pd.DataFrame(out, columns=DUPLICATE_COLUMNS)
    return frame.sort_values(["distance", "image_id_a", "image_id_b"], kind="stable").reset_index(drop=True)


def _open(data: Project | Store | str | Path, cache_dir: str | Path | None, stack: list[Callable[[], None]]) -> Project:
    if isinstance(data, Project):
        return data
    if isinstance(data, Store):
        if cache_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="activelab-oof-")
            stack.append(tmp.cleanup)
            root = Path(tmp.name)
        else:
            root = Path(cache_dir)
        return Project(root, Settings(), data)
    project = open_project(data)
    stack.append(project.close)
    return project


def find_label_issues(
    data: Project | Store | str | Path | pd.DataFrame | None = None,
    *,
    labels: Sequence[Any] | np.ndarray | None = None,
    pred_probs: np.ndarray | None = None,
    classes: Sequence[str] | None = None,
    image_ids: Sequence[Any] | None = None,
    filepaths: Sequence[str] | None = None,
    folds: int = 5,
    seed: int | None = None,
    split: str = "pool",
    model: str = DEFAULT_MODEL,
    model_factory: Callable[[list[str]], ModelAdapter] | None = None,
    cache_dir: str | Path | None = None,
    path_col: str = "filepath",
    label_col: str = "label",
    method: str = "self_confidence",
    filter_by: str = "prune_by_noise_rate",
    refresh: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """Labeled images ranked by cleanlab label-quality score, most likely wrong first.

    One of:

    - ``find_label_issues(project)``: a :class:`Project`, a project folder, or a
      :class:`Store` (then ``cache_dir`` holds the out-of-fold cache; a temporary folder
      when None). Out-of-fold probabilities come from ``folds``-fold CV with the project's
      model (or ``model_factory(classes)``) on the labeled images of ``split``, cached in
      ``PROJECT/cache/oof/``. ``image_id`` is the store's id.
    - ``find_label_issues(frame)``: a DataFrame with ``path_col`` and ``label_col``;
      CV runs with ``create_model(model)`` (or ``model_factory``), embeddings cached in
      ``cache_dir``. ``image_id`` is the frame's ``image_id`` column, else its index.
    - ``find_label_issues(labels=..., pred_probs=...)``: your own out-of-fold
      probabilities (N, C), rows summing to 1; labels as indices or class names.

    Returns a DataFrame with columns ``rank, image_id, filepath, given_label,
    suggested_label, score, is_issue, p_given, p_suggested, ranked_at`` (see
    :func:`rank_label_issues`). For near-duplicate conflicts see :func:`label_error_report`.
    """
    if data is None:
        if labels is None or pred_probs is None:
            raise InputError("pass a project, a DataFrame, or both labels= and pred_probs=")
        y, names = _encode_labels(labels, classes)
        return rank_label_issues(
            y, pred_probs, classes=names, image_ids=image_ids, filepaths=filepaths, method=method, filter_by=filter_by
        )
    if isinstance(data, pd.DataFrame):
        y, names, ids, paths, probs = _frame_probs(
            data,
            pred_probs=pred_probs,
            classes=classes,
            folds=folds,
            seed=seed or 0,
            model=model,
            model_factory=model_factory,
            cache_dir=cache_dir,
            path_col=path_col,
            label_col=label_col,
            progress=progress,
        )
        return rank_label_issues(
            y, probs, classes=names, image_ids=ids, filepaths=paths, method=method, filter_by=filter_by
        )
    oof = _project_oof(
        data,
        folds=folds,
        seed=seed,
        split=split,
        model_factory=model_factory,
        cache_dir=cache_dir,
        refresh=refresh,
        with_embeddings=False,
        progress=progress,
    )
    return rank_label_issues(
        oof.labels,
        oof.probs,
        classes=oof.classes,
        image_ids=oof.image_ids,
        filepaths=oof.paths,
        method=method,
        filter_by=filter_by,
    )


def _project_oof(data: Project | Store | str | Path, *, cache_dir: str | Path | None, **kwargs: Any) -> OutOfFold:
    closers: list[Callable[[], None]] = []
    try:
        project = _open(data, cache_dir, closers)
        return project_out_of_fold(project, **kwargs)
    finally:
        for close in reversed(closers):
            close()


def _frame_probs(
    frame: pd.DataFrame,
    *,
    pred_probs: np.ndarray | None,
    classes: Sequence[str] | None,
    folds: int,
    seed: int,
    model: str,
    model_factory: Callable[[list[str]], ModelAdapter] | None,
    cache_dir: str | Path | None,
    path_col: str,
    label_col: str,
    progress: bool,
) -> tuple[np.ndarray, list[str], list[Any], list[str], np.ndarray]:
    for col in (path_col, label_col):
        if col not in frame.columns:
            raise InputError(
                f"the DataFrame has no column {col!r} (columns: {list(frame.columns)}); "
                f"name it with path_col= / label_col="
            )
    y, names = _encode_labels(frame[label_col].to_numpy(), classes)
    ids = frame["image_id"].tolist() if "image_id" in frame.columns else frame.index.tolist()
    paths = [str(p) for p in frame[path_col]]
    if pred_probs is None:
        from activelab.models import EmbeddingCache

        cache = EmbeddingCache(cache_dir)

        def factory() -> ModelAdapter:
            if model_factory is not None:
                return model_factory(names)
            return create_model(model, classes=names, cache=cache)

        probs, _ = out_of_fold_probs(factory, paths, y, n_classes=len(names), folds=folds, seed=seed, progress=progress)
    else:
        probs = pred_probs
    return y, names, ids, paths, probs


def frame_embeddings(
    frame: pd.DataFrame,
    *,
    model: str = DEFAULT_MODEL,
    cache_dir: str | Path | None = None,
    path_col: str = "filepath",
) -> np.ndarray | None:
    """(N, d) backbone embeddings of a frame's images (None when the model has none)."""
    paths = [str(p) for p in frame[path_col]]
    return embeddings_if_available(lambda: create_model(model, num_classes=2, cache_dir=cache_dir), paths, None)
