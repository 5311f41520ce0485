"""Label errors in box annotations: missing boxes, wrong classes and badly placed boxes.

Out-of-fold detections (K-fold: each labeled image is predicted by a detector trained on
the other folds; 3 folds by default, since each fold fine-tunes a whole detector) feed
cleanlab's object-detection module (ObjectLab; Tkachenko, Thyagarajan & Mueller 2023,
"ObjectLab: Automated Diagnosis of Mislabeled Images in Object Detection Data"):

- ``rank.get_label_quality_scores``: one score per image in [0, 1], lowest = most likely
  mislabeled; the image ranking is sorted by it;
- ``filter.find_label_issues``'s decision: which images have an issue (``is_issue``);
- the per-box subtype scores, each in [0, 1], lowest = most likely wrong:
  ``compute_overlooked_box_scores`` (a confident predicted box that no labeled box
  overlaps: a **missing** box), ``compute_swap_box_scores`` (a labeled box that a
  confident prediction of another class covers: a **wrong class**) and
  ``compute_badloc_box_scores`` (a labeled box that the best overlapping prediction of
  its class places elsewhere: a **badly placed** box).

A box is a finding when its subtype score is at most cleanlab's own per-box threshold
(the class's average precision x 0.25 x 0.8, as ``filter.find_label_issues`` decides), so
the findings of an image are the reasons cleanlab flags it. Each finding names the box
(for a missing one: the model's box and class), its score, the model's suggestion and a
fix; the image ranking carries the given boxes, the boxes with every fix applied and the
findings' text as the review note.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from activelab._io import atomic_path
from activelab.exceptions import InputError
from activelab.label_errors.oof import OOF_CACHE_DIR, ModelFactory, _cache_key, fold_assignment
from activelab.label_errors.rank import RANKING_COLUMNS, _ranked
from activelab.loop.project import Project
from activelab.loop.session import ActiveSession
from activelab.models import ModelAdapter
from activelab.progress import track
from activelab.tasks import Payload

#: K of the K-fold out-of-fold detections: each fold fine-tunes a detector, so fewer than for classifiers
DEFAULT_BOX_FOLDS = 3
#: finding types, in the order a review reads them
ISSUE_TYPES = ("missing", "wrong_class", "badly_placed")
#: extra columns of a box project's image ranking (after ``RANKING_COLUMNS``)
BOX_RANKING_EXTRA = ["issues", "note"]
FINDING_COLUMNS = [
    "rank",
    "image_id",
    "filepath",
    "issue",
    "box_index",
    "given_class",
    "given_box",
    "suggested_class",
    "suggested_box",
    "model_score",
    "score",
    "image_score",
    "fix",
    "ranked_at",
]


@dataclass(frozen=True)
class BoxIssues:
    """The image ranking (one row per labeled image, most likely mislabeled first) and the findings
    (one row per suspicious box, most likely wrong first)."""

    ranking: pd.DataFrame
    findings: pd.DataFrame


def cleanlab_labels(targets: np.ndarray) -> list[dict[str, np.ndarray]]:
    """cleanlab's given labels from the task's targets: per image ``{"bboxes": (L, 4) xyxy, "labels": (L,)}``."""
    out = []
    for i, target in enumerate(targets):
        boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
        labels = np.asarray(target["labels"], dtype=np.int64).reshape(-1)
        if len(boxes) != len(labels):
            raise InputError(f"target {i} has {len(boxes)} boxes but {len(labels)} labels; pass one label per box")
        out.append({"bboxes": boxes, "labels": labels})
    return out


def cleanlab_predictions(outputs: np.ndarray, n_classes: int) -> list[list[np.ndarray]]:
    """cleanlab's predictions from a detector's outputs: per image, per class, a (K, 5) ``[x1, y1, x2, y2, score]``."""
    out = []
    for i, output in enumerate(outputs):
        boxes = np.asarray(output["boxes"], dtype=np.float64).reshape(-1, 4)
        scores = np.asarray(output["scores"], dtype=np.float64).reshape(-1)
        labels = np.asarray(output["labels"], dtype=np.int64).reshape(-1)
        if not len(boxes) == len(scores) == len(labels):
            raise InputError(f"prediction {i} has {len(boxes)} boxes, {len(scores)} scores and {len(labels)} labels")
        if len(labels) and (labels.min() < 0 or labels.max() >= n_classes):
            raise InputError(f"prediction {i} has class positions outside [0, {n_classes})")
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise InputError(f"prediction {i} has NaN or infinite boxes or scores")
        out.append([np.column_stack([boxes[labels == k], scores[labels == k]]) for k in range(n_classes)])
    return out


def rank_box_issues(
    targets: np.ndarray,
    outputs: np.ndarray,
    *,
    classes: Sequence[str],
    payloads: Sequence[Payload] | None = None,
    image_ids: Sequence[Any] | None = None,
    filepaths: Sequence[str | None] | None = None,
) -> BoxIssues:
    """Rank labeled images and their boxes by how likely the boxes are wrong (module docstring).

    ``targets``: (N,) per-image ``{"boxes": (L, 4) xyxy, "labels": (L,)}`` (the task's
    targets); ``outputs``: (N,) out-of-fold ``{"boxes", "scores", "labels"}`` (a detector's
    ``predict_proba``). ``payloads`` are the given annotations as stored (the ranking's
    ``given_label``, which the review queue compares with the current one); without them
    they are rebuilt from ``targets``.
    """
    n = len(targets)
    if len(outputs) != n:
        raise InputError(f"{len(outputs)} predictions for {n} labeled images; pass one prediction per image")
    ids = list(range(n)) if image_ids is None else list(image_ids)
    paths: list[str | None] = [None] * n if filepaths is None else list(filepaths)
    given = [_payload_from_target(t, classes) for t in targets] if payloads is None else list(payloads)
    if not len(ids) == len(paths) == len(given) == n:
        raise InputError(f"image_ids, filepaths and payloads must have one entry per labeled image ({n})")
    labels = cleanlab_labels(targets)
    predictions = cleanlab_predictions(outputs, len(classes))
    per_image: list[list[dict[str, Any]]] = []
    if n == 0:
        scores, flagged = np.zeros(0), np.zeros(0, dtype=bool)
    else:
        scores, flagged, per_image = _cleanlab_findings(labels, predictions, classes)
    rows, finding_rows = [], []
    for i in range(n):
        found = per_image[i]
        for f in found:
            finding_rows.append({"image_id": ids[i], "filepath": paths[i], "image_score": float(scores[i]), **f})
        rows.append(
            {
                "image_id": ids[i],
                "filepath": paths[i],
                "given_label": _cell(given[i]),
                "suggested_label": _cell(_apply_fixes(given[i], found)),
                "score": float(scores[i]),
                "is_issue": bool(flagged[i]),
                "p_given": np.nan,
                "p_suggested": np.nan,
                "issues": ",".join(dict.fromkeys(f["issue"] for f in found)),
                "note": "; ".join(f["fix"] for f in found),
            }
        )
    body = [c for c in RANKING_COLUMNS if c not in ("rank", "ranked_at")]
    ranking = _ranked(pd.DataFrame(rows, columns=[*body, *BOX_RANKING_EXTRA]), [*RANKING_COLUMNS, *BOX_RANKING_EXTRA])
    findings = pd.DataFrame(finding_rows, columns=[c for c in FINDING_COLUMNS if c not in ("rank", "ranked_at")])
    findings = findings.sort_values(["score", "image_score"], kind="stable").reset_index(drop=True)
    findings.insert(0, "rank", np.arange(1, len(findings) + 1))
    findings["box_index"] = findings["box_index"].astype("Int64")
    findings["ranked_at"] = ranking["ranked_at"].iloc[0] if n else datetime.now(timezone.utc).isoformat()
    return BoxIssues(ranking, findings)


def _cleanlab_findings(
    labels: list[dict[str, np.ndarray]], predictions: list[list[np.ndarray]], classes: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, list[list[dict[str, Any]]]]:
    """Image scores (N,), the flagged mask (N,) and each image's flagged boxes as finding dicts.

    An image is flagged when one of its boxes is, exactly as ``filter.find_label_issues``
    decides (same per-class AP thresholds); that function is not called itself because it
    returns only the image mask and would compute the per-class AP (a pool of worker
    processes per IoU threshold) a second time.
    """
    from cleanlab.internal import constants as c
    from cleanlab.object_detection.filter import _get_per_class_ap
    from cleanlab.object_detection.rank import (
        _get_valid_inputs_for_compute_scores,
        compute_badloc_box_scores,
        compute_overlooked_box_scores,
        compute_swap_box_scores,
        get_label_quality_scores,
    )

    with warnings.catch_warnings(), _inline_pool():
        warnings.simplefilter("ignore")  # numpy deprecations inside cleanlab's AP computation
        scores = np.asarray(get_label_quality_scores(labels, predictions, verbose=False), dtype=np.float64)
        class_ap = _get_per_class_ap(labels, predictions)
    aux = _get_valid_inputs_for_compute_scores(c.ALPHA, labels, predictions)
    overlooked = compute_overlooked_box_scores(
        alpha=c.ALPHA, high_probability_threshold=c.HIGH_PROBABILITY_THRESHOLD, auxiliary_inputs=aux
    )
    swap = compute_swap_box_scores(
        alpha=c.ALPHA, high_probability_threshold=c.HIGH_PROBABILITY_THRESHOLD, auxiliary_inputs=aux
    )
    badloc = compute_badloc_box_scores(
        alpha=c.ALPHA, low_probability_threshold=c.LOW_PROBABILITY_THRESHOLD, auxiliary_inputs=aux
    )

    def below(score: float, k: int, factor: float) -> bool:
        return bool(np.isfinite(score) and score <= class_ap[int(k)] * factor)

    per_image: list[list[dict[str, Any]]] = []
    for i, a in enumerate(aux):
        found: list[dict[str, Any]] = []
        sim, iou = a["similarity_matrix"], a["iou_matrix"]
        pred_boxes, pred_labels, pred_scores = a["pred_bboxes"], a["pred_labels"], a["pred_label_probs"]
        for m, k in enumerate(pred_labels):
            if below(overlooked[i][m], k, c.OVERLOOKED_THRESHOLD_FACTOR):
                found.append(
                    _finding("missing", None, None, None, classes, pred_boxes[m], k, pred_scores[m], overlooked[i][m])
                )
        for j, (box, k) in enumerate(zip(a["lab_bboxes"], a["lab_labels"])):
            if below(swap[i][j], k, c.SWAP_THRESHOLD_FACTOR):
                others = np.flatnonzero((pred_labels != k) & (pred_scores > c.HIGH_PROBABILITY_THRESHOLD))
                best = others[np.argmax(sim[j, others])] if len(others) else None
                found.append(
                    _finding(
                        "wrong_class", j, box, k, classes,
                        None if best is None else pred_boxes[best],
                        None if best is None else pred_labels[best],
                        None if best is None else pred_scores[best],
                        swap[i][j],
                    )
                )  # fmt: skip
            if below(badloc[i][j], k, c.BADLOC_THRESHOLD_FACTOR):
                same = np.flatnonzero((pred_labels == k) & (pred_scores > c.LOW_PROBABILITY_THRESHOLD) & (iou[j] > 0))
                best = same[np.argmax(sim[j, same])]
                found.append(
                    _finding("badly_placed", j, box, k, classes, pred_boxes[best], k, pred_scores[best], badloc[i][j])
                )
        per_image.append(sorted(found, key=lambda f: f["score"]))
    flagged = np.array([bool(found) for found in per_image], dtype=bool)
    return scores, flagged, per_image


class _InlinePool:
    """The two methods of ``multiprocessing.Pool`` cleanlab's AP computation uses, run in this process."""

    def __init__(self, processes: int | None = None) -> None:
        self.processes = processes

    def starmap(self, func: Callable[..., Any], iterable: Any) -> list[Any]:
        return [func(*args) for args in iterable]

    def close(self) -> None:
        """Nothing to release."""


@contextmanager
def _inline_pool() -> Iterator[None]:
    """Run cleanlab's per-class AP in this process.

    cleanlab 2.9 opens a worker pool for every IoU threshold even with one process (ten
    forks of this process, torch and all, per ranking: seconds of overhead, and forking a
    process whose OpenMP threads are running is unsafe); the work itself is small numpy code.
    """
    from cleanlab.object_detection import filter as cleanlab_filter

    original = cleanlab_filter.Pool
    cleanlab_filter.Pool = _InlinePool  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        cleanlab_filter.Pool = original  # type: ignore[misc]


def _finding(
    issue: str,
    index: int | None,
    given_box: np.ndarray | None,
    given_class: int | None,
    classes: Sequence[str],
    model_box: np.ndarray | None,
    model_class: int | None,
    model_score: float | None,
    score: float,
) -> dict[str, Any]:
    given = None if given_box is None else _xywh(given_box)
    suggested = None if model_box is None else _xywh(model_box)
    given_name = None if given_class is None else classes[int(given_class)]
    suggested_name = None if model_class is None else classes[int(model_class)]
    if issue == "missing":
        fix = f"add a {suggested_name} box at {_box_text(suggested)} (the model finds one there, unlabeled)"
    elif issue == "wrong_class" and suggested_name is None:
        fix = f"box {index} ({given_name}) has a twin of another class on the same object: keep the right one"
    elif issue == "wrong_class":
        fix = f"change box {index} at {_box_text(given)} from {given_name} to {suggested_name}"
    else:
        fix = f"move box {index} ({given_name}) from {_box_text(given)} to {_box_text(suggested)}"
    return {
        "issue": issue,
        "box_index": index,
        "given_class": given_name,
        "given_box": given,
        "suggested_class": suggested_name,
        "suggested_box": suggested,
        "model_score": None if model_score is None else round(float(model_score), 4),
        "score": float(score),
        "fix": fix,
    }


def _xywh(box: np.ndarray) -> list[float]:
    x1, y1, x2, y2 = (float(v) for v in box)
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


def _box_text(box: list[float] | None) -> str:
    return "?" if box is None else "x={:g}, y={:g}, w={:g}, h={:g}".format(*box)


def _payload_from_target(target: dict[str, np.ndarray], classes: Sequence[str]) -> list[dict[str, Any]]:
    boxes = np.asarray(target["boxes"], dtype=np.float64).reshape(-1, 4)
    labels = np.asarray(target["labels"], dtype=np.int64).reshape(-1)
    return [dict(zip(("class", "x", "y", "w", "h"), (classes[int(k)], *_xywh(b)))) for b, k in zip(boxes, labels)]


def _apply_fixes(payload: Payload, found: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The given boxes with every finding's fix applied: classes changed, boxes moved, missing boxes added.

    A changed or added box carries only class and coordinates (the ``origin`` of the drawn box no longer holds).
    """
    boxes = [dict(b) for b in payload]
    changed: set[int] = set()
    for f in found:
        if f["issue"] == "missing":
            boxes.append(dict(zip(("class", "x", "y", "w", "h"), (f["suggested_class"], *f["suggested_box"]))))
        elif f["suggested_class"] is not None:
            j = int(f["box_index"])
            if f["issue"] == "wrong_class":
                boxes[j]["class"] = f["suggested_class"]
            else:
                boxes[j].update(zip(("x", "y", "w", "h"), f["suggested_box"]))
            changed.add(j)
    return [{key: b[key] for key in ("class", "x", "y", "w", "h")} if j in changed else b for j, b in enumerate(boxes)]


def _cell(payload: Payload) -> str:
    """The table-cell text of a box payload (the detection task's ``format``)."""
    return json.dumps(payload, separators=(",", ":"))


def out_of_fold_detections(
    model_factory: Callable[[], ModelAdapter],
    paths: Sequence[str],
    targets: np.ndarray,
    *,
    keys: Sequence[str] | None = None,
    folds: int = DEFAULT_BOX_FOLDS,
    seed: int = 0,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """K-fold out-of-fold detections: ``(outputs (N,) object array of per-image dicts, folds (N,))``.

    ``model_factory()`` builds a fresh, unfitted detector; each fold's detector is trained on
    the other folds' images (``targets``: the task's box targets) and predicts the held-out ones.
    Folds are shuffled with ``seed`` and not stratified (an image holds several classes).
    """
    if len(paths) != len(targets):
        raise InputError(f"{len(paths)} paths but {len(targets)} targets; pass one target per image")
    assignment = fold_assignment(np.asarray(targets, dtype=object), folds, seed=seed)
    outputs = np.empty(len(paths), dtype=object)
    ks = None if keys is None else list(keys)
    for f in track(range(folds), progress, "out-of-fold detections", unit="folds"):
        test = np.flatnonzero(assignment == f).tolist()
        train = np.flatnonzero(assignment != f).tolist()
        if len(test) == 0:
            continue
        model = model_factory()
        model.fit(
            [paths[i] for i in train],
            targets[train],
            keys=None if ks is None else [ks[i] for i in train],
            seed=seed,
            progress=progress,
        )
        predicted = model.predict_proba(
            [paths[i] for i in test], keys=None if ks is None else [ks[i] for i in test], progress=progress
        )
        for i, output in zip(test, predicted):
            outputs[i] = output
    return outputs, assignment


@dataclass(frozen=True)
class BoxOutOfFold:
    """Out-of-fold detections for the labeled images of a box project, in store order.

    ``payloads``: the current annotations as stored; ``targets``: the task's box targets
    (what the detectors trained on); ``outputs``: (N,) object array of per-image
    ``{"boxes" (M, 4) xyxy, "scores" (M,), "labels" (M,)}`` from a detector not trained on
    that image; ``folds``: (N,) the fold each image was held out in.
    """

    image_ids: list[int]
    paths: list[str]
    payloads: list[Payload]
    targets: np.ndarray
    outputs: np.ndarray
    folds: np.ndarray
    classes: list[str]
    cache_path: Path | None = None
    from_cache: bool = False
    seconds: float = 0.0


def project_box_out_of_fold(
    project: Project,
    *,
    folds: int = DEFAULT_BOX_FOLDS,
    seed: int | None = None,
    split: str = "pool",
    model_factory: ModelFactory | None = None,
    refresh: bool = False,
    progress: bool = False,
) -> BoxOutOfFold:
    """Out-of-fold detections for the labeled images of ``split``, cached per project state.

    The detectors are the project's model (``model`` settings, the task's ``boxes`` output;
    or ``model_factory(classes)``). The cache file is
    ``PROJECT/cache/oof/boxes-round-<N>-<key>.npz`` (``key`` hashes the model settings,
    folds, seed, images and annotations); it keeps the boxes, scores and labels cleanlab
    reads, not the per-box class distributions or features. ``refresh`` recomputes.
    """
    session = ActiveSession(project)
    classes = project.store.class_names()
    labeled = session.labeled_set(split)
    current = project.store.current_annotations(split)
    payloads = [current[iid].payload for iid in labeled.image_ids]
    if len(payloads) < folds:
        raise InputError(
            f"only {len(payloads)} labeled {split} images in {project.root}; out-of-fold detections need at "
            f"least {folds} (import labels or use --folds {max(2, len(payloads))})"
        )
    seed = project.settings.train.seed if seed is None else seed
    factory = model_factory or session.model_factory
    config = dict(getattr(factory(classes), "config", {}) or {})
    cells = np.array([_cell(p) for p in payloads], dtype=object)
    key = _cache_key(config, folds, seed, labeled.image_ids, labeled.keys, cells, classes)
    folder = project.cache_dir / OOF_CACHE_DIR
    existing = sorted(folder.glob(f"boxes-round-*-{key}.npz")) if folder.is_dir() else []
    common = (labeled.image_ids, labeled.paths, payloads, labeled.y)
    if existing and not refresh:
        outputs, assignment = _load_detections(existing[0], len(payloads))
        return BoxOutOfFold(*common, outputs, assignment, classes, existing[0], True, 0.0)
    t0 = time.perf_counter()
    outputs, assignment = out_of_fold_detections(
        lambda: factory(classes),
        labeled.paths,
        labeled.y,
        keys=labeled.keys,
        folds=folds,
        seed=seed,
        progress=progress,
    )
    path = folder / f"boxes-round-{project.store.round_number()}-{key}.npz"
    _save_detections(path, outputs, assignment, labeled.image_ids)
    return BoxOutOfFold(*common, outputs, assignment, classes, path, False, time.perf_counter() - t0)


def _save_detections(path: Path, outputs: np.ndarray, assignment: np.ndarray, image_ids: Sequence[int]) -> None:
    """The detections flattened over images (``owner``: each box's image position), written atomically."""
    boxes = [np.asarray(o["boxes"], dtype=np.float32).reshape(-1, 4) for o in outputs]
    scores = [np.asarray(o["scores"], dtype=np.float32).reshape(-1) for o in outputs]
    labels = [np.asarray(o["labels"], dtype=np.int64).reshape(-1) for o in outputs]
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a killed run never leaves a half-written cache file
        np.savez(
            tmp,
            boxes=np.concatenate([np.zeros((0, 4), np.float32), *boxes]),
            scores=np.concatenate([np.zeros(0, np.float32), *scores]),
            labels=np.concatenate([np.zeros(0, np.int64), *labels]),
            owner=np.repeat(np.arange(len(boxes), dtype=np.int64), [len(b) for b in boxes]),
            folds=assignment,
            image_ids=np.asarray(image_ids, dtype=np.int64),
        )


def _load_detections(path: Path, n: int) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        boxes, scores, labels, owner, assignment = (z[k] for k in ("boxes", "scores", "labels", "owner", "folds"))
    outputs = np.empty(n, dtype=object)
    for i in range(n):
        rows = owner == i
        outputs[i] = {"boxes": boxes[rows], "scores": scores[rows], "labels": labels[rows].astype(np.int64)}
    return outputs, assignment
