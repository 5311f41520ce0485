"""Out-of-fold predictions: no image is scored by a model trained on it; folds are stratified; caching."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from activelab.exceptions import InputError
from activelab.label_errors import fold_assignment, out_of_fold_probs, project_out_of_fold


class RecordingModel:
    """A fake adapter that remembers what it was trained on and predicts its training labels' mean."""

    supports = frozenset({"probs"})

    def __init__(self, log: list[set[str]], n_classes: int) -> None:
        self.log, self.n_classes = log, n_classes
        self.trained_on: set[str] = set()

    def fit(self, paths: Sequence[str], labels: Sequence[int], **_: Any) -> None:
        self.trained_on = set(paths)
        self.log.append(self.trained_on)

    def predict_proba(self, paths: Sequence[str], **_: Any) -> np.ndarray:
        assert not self.trained_on & set(paths), "an image was scored by a model trained on it"
        return np.full((len(paths), self.n_classes), 1.0 / self.n_classes, dtype=np.float32)


def test_fold_assignment_is_stratified_seeded_and_complete() -> None:
    y = np.repeat(np.arange(4), 10)
    folds = fold_assignment(y, 5, seed=3)
    assert folds.shape == (40,) and set(folds) == set(range(5))
    for f in range(5):
        assert np.bincount(y[folds == f], minlength=4).tolist() == [2, 2, 2, 2]
    assert np.array_equal(folds, fold_assignment(y, 5, seed=3))
    assert not np.array_equal(folds, fold_assignment(y, 5, seed=4))
    with pytest.raises(InputError, match="at least 2"):
        fold_assignment(y, 1, seed=0)
    with pytest.raises(InputError, match="cannot be split"):
        fold_assignment(y[:3], 5, seed=0)


def test_out_of_fold_never_scores_a_training_image() -> None:
    log: list[set[str]] = []
    paths = [f"img{i}.png" for i in range(23)]
    y = np.array([i % 3 for i in range(23)])
    probs, folds = out_of_fold_probs(lambda: RecordingModel(log, 3), paths, y, n_classes=3, folds=4, seed=0)
    assert probs.shape == (23, 3) and np.allclose(probs.sum(1), 1)
    assert len(log) == 4
    for f, trained in enumerate(log):
        held_out = {p for p, ff in zip(paths, folds) if ff == f}
        assert trained == set(paths) - held_out
    with pytest.raises(InputError, match="class indices"):
        out_of_fold_probs(lambda: RecordingModel(log, 3), paths, y + 1, n_classes=3, folds=4, seed=0)


def test_project_oof_is_cached_per_labels(planted) -> None:  # type: ignore[no-untyped-def]
    proj = planted.project
    first = project_out_of_fold(proj, folds=3, with_embeddings=False)
    assert not first.from_cache and first.cache_path is not None and first.cache_path.exists()
    assert first.cache_path.parent == proj.root / "cache" / "oof" and first.cache_path.name.startswith("round-0-")
    again = project_out_of_fold(proj, folds=3, with_embeddings=False)
    assert again.from_cache and np.array_equal(again.probs, first.probs)
    proj.store.add_label(
        first.image_ids[0], "bag" if first.labels[0] != 8 else "sandal", author="ann", source="correction"
    )
    changed = project_out_of_fold(proj, folds=3, with_embeddings=False)
    assert not changed.from_cache and changed.cache_path != first.cache_path
