"""Review queue (labels to re-check, best first) and mixing it with the unlabeled-pool queue.

Relabel or label new? Both actions spend one labeler decision. We put both on one
scale: *the probability that the label the model would train on is wrong*.

- review item (a labeled image): ``1 - score`` where ``score`` is the label-quality
  score of the ranking (``self_confidence``: the out-of-fold probability of the given
  label), i.e. the model's estimate that the given label is wrong;
- new item (an unlabeled image): ``1 - max_c p(c | x)``, the model's probability of
  being wrong about it (least confidence), i.e. the chance a label teaches it something.

:func:`mix_queues` merges the two by that value, highest first, so each decision goes
where a wrong label is most likely: this is the rule of ActiveLab (Goh, Tkachenko &
Mueller 2022, "ActiveLab: Active Learning with Re-Labeling by Multiple Annotators"),
which compares labeled examples' label quality with unlabeled examples' model
confidence, simplified to one annotator. ``review_weight`` scales the review values
(e.g. > 1 when bad labels hurt more than missing ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd

from activelab.exceptions import InputError, NotFoundError
from activelab.store import Store
from activelab.tasks import Payload, Task

#: label-event sources that count as a decision about an existing label
REVIEW_SOURCES = ("review", "correction")


@dataclass(frozen=True)
class QueueItem:
    """One entry of a mixed queue: ``kind`` is ``"review"`` or ``"new"``; ``value`` the merged priority."""

    kind: str
    image_id: int
    value: float


def load_ranking(ranking: pd.DataFrame | str | Path) -> pd.DataFrame:
    """A ranking table (from ``find_label_issues`` / ``ranking.csv``), checked."""
    if isinstance(ranking, pd.DataFrame):
        frame = ranking
    else:
        path = Path(ranking)
        if not path.is_file():
            raise NotFoundError(f"no label-error ranking at {path}; run `activelab errors PROJECT` first")
        frame = pd.read_csv(path)
    missing = [c for c in ("image_id", "score", "is_issue", "ranked_at") if c not in frame.columns]
    if missing:
        raise InputError(f"the ranking lacks column(s) {missing}; make it with find_label_issues / activelab errors")
    return frame


def _parse_time(value: object) -> datetime:
    ts = pd.Timestamp(value)  # type: ignore[arg-type]
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.to_pydatetime()


def review_queue(
    store: Store,
    ranking: pd.DataFrame | str | Path,
    *,
    issues_only: bool = True,
    limit: int | None = None,
    max_score: float | None = None,
    reviewed_since: datetime | None = None,
    task: Task | None = None,
) -> list[int]:
    """Image ids to review, most likely wrong first.

    ``ranking`` is the table of :func:`~activelab.label_errors.find_label_issues` or the
    path of its CSV (``ranking_path(project.root)``). Left out: images with a
    ``review`` or ``correction`` label event after the ranking was made
    (``ranked_at``), images no longer labeled, and (with ``issues_only``, the default)
    images not flagged by cleanlab, or with ``max_score``, those scoring above it.
    Any annotation counts (a class, a set of classes, a list of boxes; an empty set or list too). With ``task``
    (the project's), an image whose annotation is no longer the ranking's ``given_label``
    (read by ``task.parse``) is left out too: the ranking judged a label it no longer has.
    ``reviewed_since`` (timezone-aware) replaces ``ranked_at`` as the cut-off, e.g.
    ``datetime.min.replace(tzinfo=timezone.utc)`` to skip every image ever reviewed.
    """
    frame = load_ranking(ranking).sort_values("score", kind="stable")
    if issues_only:
        frame = frame[frame["is_issue"].astype(str).str.lower().isin(("true", "1"))]
    if max_score is not None:
        frame = frame[frame["score"] <= max_score]
    if frame.empty:
        return []
    ranked_at = reviewed_since or min(_parse_time(v) for v in frame["ranked_at"].unique())
    current = store.current_annotations()
    given = _given_payloads(frame, task)
    out: list[int] = []
    for pos, iid in enumerate(int(i) for i in frame["image_id"]):
        cur = current.get(iid)
        if cur is None:  # label withdrawn ("unsure / remove from training") or never labeled
            continue
        if given is not None and cur.payload != given[pos]:
            continue
        if cur.created_at > ranked_at and _reviewed_since(store, iid, ranked_at, cur.source):
            continue
        out.append(iid)
        if limit is not None and len(out) >= limit:
            break
    return out


def _given_payloads(frame: pd.DataFrame, task: Task | None) -> list[Payload] | None:
    """The ranking's given labels as ``task``'s payloads, in row order (None without a task or the column).

    A blank cell is the empty text (CSV reads a multi-label "none of these" back as NaN).
    """
    if task is None or "given_label" not in frame.columns:
        return None
    return [task.parse("" if pd.isna(cell) else str(cell)) for cell in frame["given_label"]]


def _reviewed_since(store: Store, image_id: int, since: datetime, latest_source: str) -> bool:
    if latest_source in REVIEW_SOURCES:
        return True
    return any(e.source in REVIEW_SOURCES and e.created_at > since for e in store.label_history(image_id))


def review_priority(scores: Sequence[float] | np.ndarray) -> np.ndarray:
    """Review values from label-quality scores in [0, 1]: ``1 - score`` (P(given label wrong))."""
    s = _check_scores(scores, "review_scores")
    return 1.0 - s


def new_priority(probs: np.ndarray) -> np.ndarray:
    """New-item values from (N, C) pool probabilities: ``1 - max prob`` (P(model's guess wrong))."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or not np.all(np.isfinite(p)):
        raise InputError(f"probs must be a finite (n_samples, n_classes) array, got shape {p.shape}")
    return 1.0 - p.max(axis=1) if len(p) else np.zeros(0)


def _check_scores(scores: Sequence[float] | np.ndarray, name: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise InputError(f"{name} must be 1-d, got shape {s.shape}")
    if not np.all(np.isfinite(s)):
        raise InputError(f"{name} contains NaN or infinite values")
    return s


def mix_queues(
    review_ids: Sequence[int],
    review_scores: Sequence[float] | np.ndarray,
    new_ids: Sequence[int],
    new_scores: Sequence[float] | np.ndarray,
    *,
    k: int | None = None,
    review_weight: float = 1.0,
    scores_are: str = "priority",
) -> list[QueueItem]:
    """Interleave a review queue and an unlabeled-pool queue by expected value (module docstring).

    ``review_scores`` / ``new_scores``: one per id. With ``scores_are="priority"``
    (default) higher = more valuable (e.g. :func:`review_priority`, :func:`new_priority`);
    with ``"quality"`` they are the raw inputs (label-quality scores for review, the
    model's max probability for new items) and are turned into ``1 - x`` here.
    Review values are multiplied by ``review_weight``. Returns up to ``k`` items
    (all when None), highest value first; ties go to review items, then to the
    earlier position in their own queue. An id in both queues is kept once, as review.
    """
    if len(review_ids) != len(review_scores) or len(new_ids) != len(new_scores):
        raise InputError("each queue needs one score per id")
    if scores_are not in ("priority", "quality"):
        raise InputError(f"scores_are must be 'priority' or 'quality', got {scores_are!r}")
    if review_weight < 0 or not np.isfinite(review_weight):
        raise InputError(f"review_weight must be a finite number >= 0, got {review_weight}")
    if k is not None and k < 0:
        raise InputError(f"k must be >= 0, got {k}")
    rs = _check_scores(review_scores, "review_scores")
    ns = _check_scores(new_scores, "new_scores")
    if scores_are == "quality":
        rs, ns = 1.0 - rs, 1.0 - ns
    rs = rs * review_weight
    entries: list[tuple[float, int, int, str, int]] = []
    for pos, (iid, v) in enumerate(zip(review_ids, rs)):
        entries.append((-float(v), 0, pos, "review", int(iid)))
    for pos, (iid, v) in enumerate(zip(new_ids, ns)):
        entries.append((-float(v), 1, pos, "new", int(iid)))
    entries.sort()
    out: list[QueueItem] = []
    seen: set[int] = set()
    review_set = {int(i) for i in review_ids}
    for neg, _, _, kind, iid in entries:
        if iid in seen or (kind == "new" and iid in review_set):
            continue
        seen.add(iid)
        out.append(QueueItem(kind, iid, -neg))
        if k is not None and len(out) >= k:
            break
    return out
