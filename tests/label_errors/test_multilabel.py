"""Label errors in multi-label projects: cleanlab's multilabel_classification on out-of-fold sigmoid outputs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.label_errors import (
    RANKING_COLUMNS,
    compare_before_after,
    find_label_issues,
    label_error_report,
    original_labels,
    rank_label_issues,
)
from activelab.label_errors.oof import fold_assignment
from activelab.loop.ingest import import_images
from activelab.loop.project import Project, init_project
from activelab.loop.settings import save_settings
from activelab.tasks import get_task

CLASSES = ["bag", "sneaker", "trouser"]


def test_flipped_sets_rank_first_with_exact_columns() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, size=(40, 3))
    probs = np.clip(np.where(truth == 1, 0.9, 0.1) + rng.normal(0, 0.03, truth.shape), 0.01, 0.99)
    given = truth.copy()
    flipped = [3, 17, 29]
    given[flipped, 0] = 1 - given[flipped, 0]  # each flip toggles the 'bag' class of one image
    ranking = rank_label_issues(given, probs, classes=CLASSES, image_ids=[f"i{n}" for n in range(40)])
    assert list(ranking.columns) == RANKING_COLUMNS and ranking["score"].is_monotonic_increasing
    assert sorted(ranking.image_id[:3]) == sorted(f"i{n}" for n in flipped)
    assert set(ranking.image_id[ranking.is_issue]) == {f"i{n}" for n in flipped}
    row = ranking.set_index("image_id").loc["i3"]
    texts = ["|".join(c for c, on in zip(CLASSES, r) if on) for r in (given[3], truth[3])]
    assert (row.given_label, row.suggested_label) == tuple(texts)
    assert row.p_given == pytest.approx(np.prod(np.where(given[3] == 1, probs[3], 1 - probs[3])))
    assert row.p_suggested == pytest.approx(np.prod(np.maximum(probs[3], 1 - probs[3])))


def test_multilabel_inputs_are_checked() -> None:
    with pytest.raises(InputError, match=r"must both be \(n, n_classes=3\)"):
        rank_label_issues(np.zeros((4, 3), dtype=int), np.zeros((4, 2)), classes=CLASSES)
    with pytest.raises(InputError, match=r"per-class probabilities in \[0, 1\]"):
        rank_label_issues(np.zeros((2, 3), dtype=int), np.full((2, 3), 1.5), classes=CLASSES)


def test_multilabel_folds_are_shuffled_kfold() -> None:
    folds = fold_assignment(np.eye(3, dtype=int)[np.arange(10) % 3], 5, seed=0)
    assert sorted(np.bincount(folds).tolist()) == [2, 2, 2, 2, 2]
    assert folds.tolist() == fold_assignment(np.eye(3, dtype=int)[np.arange(10) % 3], 5, seed=0).tolist()


N_IMAGES = 48
N_EVAL = 12
FLIPPED = (5, 20, 33, 41)


@pytest.fixture
def pairs_project(tmp_path: Path, sample: Path, embedding_cache: Path) -> Iterator[tuple[Project, list[str]]]:
    """48 real pool images (plus 12 eval), each two sample images of different classes side by side.

    4 pool sets have a wrong class; the fixture yields the project and, per flipped file, its true set.
    """
    table = pd.read_csv(sample / "pool.csv")
    by_class = {c: table.filepath[table.label == c].tolist() for c in CLASSES}
    rng = np.random.default_rng(0)
    rows, names, truth = [], [], []
    for n in range(N_IMAGES + N_EVAL):
        left, right = rng.choice(len(CLASSES), size=2, replace=False)
        a = by_class[CLASSES[left]][n % len(by_class[CLASSES[left]])]
        b = by_class[CLASSES[right]][(n + 7) % len(by_class[CLASSES[right]])]
        pixels = np.hstack([np.asarray(Image.open(sample / p).convert("L")) for p in (a, b)])
        path = tmp_path / f"pair-{n:02d}.png"
        Image.fromarray(pixels).save(path)
        labels = {CLASSES[left], CLASSES[right]}
        truth.append(sorted(labels))
        if n in FLIPPED:  # swap one true class for the absent one
            labels = {CLASSES[left], *(set(CLASSES) - labels)}
        rows.append((str(path), "|".join(sorted(labels))))
        names.append(path.name)
    proj = init_project(tmp_path / "proj", CLASSES, task="multilabel")
    proj.settings.model.image_size = 64
    save_settings(proj.settings, proj.root / "activelab.yaml")
    proj.cache_dir.mkdir(parents=True, exist_ok=True)
    (proj.cache_dir / "embeddings").symlink_to(embedding_cache, target_is_directory=True)
    frame = pd.DataFrame(rows, columns=["filepath", "label"])
    import_images(proj.store, frame[:N_IMAGES], task=get_task("multilabel"))
    import_images(proj.store, frame[N_IMAGES:], split="eval", task=get_task("multilabel"))
    yield proj, {names[n]: truth[n] for n in FLIPPED}
    proj.close()


def test_project_ranking_finds_the_planted_wrong_classes(pairs_project: tuple[Project, dict[str, list[str]]]) -> None:
    proj, flipped = pairs_project
    report = label_error_report(proj, folds=4)
    ranking = report.ranking
    assert len(ranking) == N_IMAGES and report.summary["task"] == "multilabel"
    top = set(ranking.filepath[: len(FLIPPED) + 2].map(lambda p: Path(p).name))
    print(f"planted in the top {len(FLIPPED) + 2}: {len(top & set(flipped))}/{len(FLIPPED)}")
    assert set(flipped) <= top
    assert all("|" in text for text in ranking.given_label)  # every image carries a set of two classes
    again = find_label_issues(proj, folds=4)
    assert again.image_id.tolist() == ranking.image_id.tolist()  # the out-of-fold cache gives the same order


def test_compare_before_after_review_trains_on_sets(pairs_project: tuple[Project, dict[str, list[str]]]) -> None:
    proj, flipped = pairs_project
    ids = {Path(img.path).name: img.id for img in proj.store.images("pool")}
    proj.store.add_annotations([(ids[name], true) for name, true in flipped.items()], author="rev", source="correction")
    assert original_labels(proj)[ids[next(iter(flipped))]] != next(iter(flipped.values()))
    result = compare_before_after(proj)
    assert (result.n_changed, result.n_removed, result.n_train_before, result.n_train_after, result.n_eval) == (
        len(FLIPPED),
        0,
        N_IMAGES,
        N_IMAGES,
        len(proj.store.current_annotations("eval")),  # an eval composite may repeat a pool one: stored once
    )
    assert 0.0 <= result.accuracy_before <= 1.0 and 0.0 <= result.accuracy_after <= 1.0


def test_find_label_issues_takes_a_label_matrix() -> None:
    labels = np.array([[1, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]])
    probs = np.array(
        [[0.9, 0.1, 0.1], [0.1, 0.9, 0.1], [0.1, 0.9, 0.1], [0.1, 0.9, 0.2], [0.1, 0.1, 0.9], [0.2, 0.1, 0.8]]
    )
    ranking = find_label_issues(labels=labels, pred_probs=probs, classes=CLASSES)
    assert ranking.image_id.iloc[0] == 1 and ranking.given_label.iloc[0] == "bag"
    assert ranking.suggested_label.iloc[0] == "sneaker"


def test_cli_on_a_multilabel_project(pairs_project: tuple[Project, dict[str, list[str]]], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from activelab.cli.main import app

    proj, flipped = pairs_project

    def invoke(*args: object) -> str:
        result = CliRunner().invoke(app, [str(a) for a in args])
        assert result.exit_code == 0, result.output
        return result.output

    report = json.loads(invoke("errors", proj.root, "--folds", "4", "--top", "6", "--json"))
    assert report["summary"]["task"] == "multilabel" and report["summary"]["n_labeled"] == N_IMAGES
    assert set(flipped) <= {Path(row["filepath"]).name for row in report["top"]}
    trained = json.loads(invoke("train", proj.root, "--json"))
    assert {"micro_f1", "subset_accuracy", "map"} <= set(trained["metrics"]["eval"])
    invoke("predict", proj.root, tmp_path / "pred.csv", "--split", "eval")
    predictions = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    assert len(predictions) == len(proj.store.images("eval"))
    assert all(set(cell.split("|")) <= set(CLASSES) for cell in predictions.pred_label if cell)
    assert predictions.pred_label.str.contains("|", regex=False).mean() > 0.5  # most predicted sets hold both classes
