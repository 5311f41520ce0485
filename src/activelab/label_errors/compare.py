"""Eval score before and after review: the same model trained on the original vs the current labels.

*Original* labels are what an image carried before anyone reviewed it: its latest
label event that is not a ``review`` or ``correction`` (usually the ``import``).
*Current* labels are the derived labels the loop trains on (latest event; an image
whose label was withdrawn, "unsure / remove from training", drops out). Both models
use the project's model settings and the same seed and are scored on the labeled
``eval`` split by the project's task, with its headline metric (``metric``: accuracy;
micro-F1 for multi-label; COCO mAP for detection), as rounds and learning curves are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from activelab.exceptions import InputError
from activelab.label_errors.oof import ModelFactory
from activelab.label_errors.queue import REVIEW_SOURCES
from activelab.loop.project import Project
from activelab.loop.session import ActiveSession
from activelab.tasks import Payload


@dataclass(frozen=True)
class BeforeAfter:
    """Eval accuracy (the task's headline metric: mAP for detection) with the original and the current labels."""

    accuracy_before: float
    accuracy_after: float
    n_train_before: int
    n_train_after: int
    n_changed: int
    n_removed: int
    n_eval: int
    #: the metric ``accuracy_before`` / ``accuracy_after`` hold (the task's headline)
    metric: str = "accuracy"

    @property
    def delta(self) -> float:
        return self.accuracy_after - self.accuracy_before

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta}


def original_labels(project: Project, split: str = "pool") -> dict[int, Payload]:
    """Image id -> annotation before review (latest non-review/correction event that sets one)."""
    store = project.store
    current = store.current_annotations(split)
    split_ids = {img.id for img in store.images(split)}
    out = {iid: cur.payload for iid, cur in current.items() if cur.source not in REVIEW_SOURCES}
    touched = store.labeled_image_ids() & split_ids
    for iid in touched:
        if iid in out:
            continue
        events = [e for e in store.label_history(iid) if e.source not in REVIEW_SOURCES]
        if events and events[-1].payload is not None:
            out[iid] = events[-1].payload
    return out


def compare_before_after(
    project: Project,
    *,
    seed: int | None = None,
    model_factory: ModelFactory | None = None,
) -> BeforeAfter:
    """Train on original vs current pool labels; eval accuracy of each (module docstring)."""
    session = ActiveSession(project, model_factory=model_factory)
    task = session.task
    classes = project.store.class_names()
    evals = session.labeled_set("eval")
    if not evals.image_ids:
        raise InputError(
            f"no labeled eval images in {project.root}: import some with `activelab import "
            f"{project.root} TABLE --split eval` to compare before and after review"
        )
    images = {img.id: img for img in project.store.images("pool")}
    before = original_labels(project, "pool")
    after = {iid: cur.payload for iid, cur in project.store.current_annotations("pool").items()}
    seed = project.settings.train.seed if seed is None else seed

    def accuracy(labels: dict[int, Payload]) -> float:
        ids = sorted(labels)
        if len({repr(labels[i]) for i in ids}) < 2:
            raise InputError("need labeled pool images with at least two different labels to train")
        targets = task.targets([labels[i] for i in ids], classes)
        model = session.model_factory(classes)
        model.fit(
            [images[i].path for i in ids],
            targets if targets.ndim == 2 else targets.tolist(),
            keys=[images[i].sha256 for i in ids],
            seed=seed,
        )
        outputs = model.predict_proba(evals.paths, keys=evals.keys)
        return float(task.metrics(evals.y, outputs, classes)[task.headline])

    changed = sum(1 for iid, lab in after.items() if iid in before and before[iid] != lab)
    removed = sum(1 for iid in before if iid not in after)
    return BeforeAfter(
        accuracy(before),
        accuracy(after),
        len(before),
        len(after),
        changed,
        removed,
        len(evals.image_ids),
        task.headline,
    )
