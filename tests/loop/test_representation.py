"""Choosing the representation: the criterion by hand, the choice on a constructed case, the rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.loop.representation import (
    Candidate,
    Comparison,
    RepresentationChoice,
    compare_representations,
    cv_logreg_accuracy,
    default_candidates,
    knn_loo_accuracy,
    should_rechoose,
)


def checkerboards(folder: Path, n_per_class: int, *, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """16x16 grayscale PNGs whose class is the phase of a 1-pixel checkerboard, under noise.

    At 16 px the class is in the pixels; resized to 8 px (2x2 averages) every image is the
    same flat gray plus noise, so a candidate at 8 px cannot tell the classes apart.
    """
    rng = np.random.default_rng(seed)
    board = (np.indices((16, 16)).sum(axis=0) % 2).astype(float)
    folder.mkdir(parents=True, exist_ok=True)
    paths, labels = [], []
    for i in range(2 * n_per_class):
        label = i % 2
        pattern = board if label == 0 else 1 - board
        image = 60 + 120 * pattern + rng.normal(0, 25, (16, 16))
        path = folder / f"{i:03d}.png"
        Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), mode="L").save(path)
        paths.append(str(path))
        labels.append(label)
    return paths, np.array(labels)


def test_knn_loo_accuracy_by_hand() -> None:
    x = np.array([[0.0, 1.0], [0.1, 1.0], [1.0, 0.0], [1.0, 0.1]])
    assert knn_loo_accuracy(x, [0, 0, 1, 1], k=1) == 1.0
    assert knn_loo_accuracy(x, [0, 1, 0, 1], k=1) == 0.0
    # 5 points on a line (after standardising, cosine only sees the side of the mean):
    # with k=3 the vote of the two middle-class neighbours wins
    x = np.array([[-2.0, 0.0], [-1.0, 0.0], [1.0, 0.0], [2.0, 0.0], [3.0, 0.0]])
    assert knn_loo_accuracy(x, [0, 0, 1, 1, 1], k=1) == 1.0
    assert knn_loo_accuracy(x, [0, 0, 1, 1, 1]) == pytest.approx(0.6)  # k=3: the 0s see two 1s among 3
    assert knn_loo_accuracy(x, [0, 0, 1, 1, 1], k=9) == knn_loo_accuracy(x, [0, 0, 1, 1, 1], k=4) == 0.6
    with pytest.raises(InputError, match="k must be at least 1"):
        knn_loo_accuracy(x, [0, 0, 1, 1, 1], k=0)
    with pytest.raises(InputError, match=r"\(n, d\) with labels \(n,\)"):
        knn_loo_accuracy(x, [0, 1])


def test_knn_ties_are_broken_by_the_seed_and_blocks_do_not_change_it() -> None:
    x = np.ones((6, 3))  # every image at the same similarity: the neighbour is the seed's pick
    y = np.array([0, 1, 0, 1, 0, 1])
    scores = {knn_loo_accuracy(x, y, k=1, seed=s) for s in range(20)}
    assert len(scores) > 1  # the tie-break depends on the seed...
    assert all(knn_loo_accuracy(x, y, k=1, seed=s) == knn_loo_accuracy(x, y, k=1, seed=s, block=2) for s in range(5))
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(50, 4)), rng.integers(0, 3, 50)
    assert knn_loo_accuracy(x, y, k=3, seed=4) == knn_loo_accuracy(x, y, k=3, seed=4, block=7)


def test_cv_logreg_accuracy_separates_separable_and_shuffled_labels() -> None:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = rng.normal(size=(40, 5)) + 3 * y[:, None]
    assert cv_logreg_accuracy(x, y) == 1.0
    assert cv_logreg_accuracy(x, rng.permutation(y)) < 0.8


def test_the_choice_picks_the_candidate_that_keeps_the_class(tmp_path: Path) -> None:
    paths, y = checkerboards(tmp_path / "img", 12)
    keep, destroy = Candidate("pixels", 16), Candidate("pixels", 8)
    choice = compare_representations([destroy, keep], paths, y, cache_dir=tmp_path / "cache", seed=0)
    assert choice.chosen == keep and choice.n_labels == 24 and choice.criterion == "knn_loo"
    assert [c.candidate for c in choice.comparisons] == [destroy, keep]
    assert [c.dim for c in choice.comparisons] == [64, 256]
    scores = {c.candidate: c.score for c in choice.comparisons}
    assert scores[keep] == 1.0 and scores[destroy] < 0.75
    again = compare_representations([destroy, keep], paths, y, cache_dir=tmp_path / "cache", seed=0)
    assert [c.score for c in again.comparisons] == [c.score for c in choice.comparisons]
    assert "highest leave-one-out 3-NN accuracy on 24 labeled images: 1.000, next pixels@8" in choice.reason
    cv = compare_representations([destroy, keep], paths, y, criterion="logreg_cv")
    assert cv.chosen == keep and cv.criterion == "logreg_cv"


def test_the_configured_model_is_kept_unless_clearly_beaten() -> None:
    from activelab.loop.representation import _keep_first_unless_clearly_beaten

    first, other = Candidate("efficientnet_lite0", 64), Candidate("pixels", 28)
    # on 200 images, 0.70 against 0.74: two standard errors of the difference are
    # 2 sqrt((0.7 * 0.3 + 0.74 * 0.26) / 200) = 0.0897, so 0.04 is noise and the first stays
    close = [Comparison(first, 0.70, 0.0, 1), Comparison(other, 0.74, 0.0, 1)]
    assert _keep_first_unless_clearly_beaten(close, 200).candidate == first
    choice = RepresentationChoice(first, tuple(close), 200, "knn_loo")
    assert "configured model is kept" in choice.reason and "within two standard errors" in choice.reason
    # 0.70 against 0.80 clears it (0.0860); on 100 images the same gap does not (0.1217)
    clear = [Comparison(first, 0.70, 0.0, 1), Comparison(other, 0.80, 0.0, 1)]
    assert _keep_first_unless_clearly_beaten(clear, 200).candidate == other
    assert _keep_first_unless_clearly_beaten(clear, 100).candidate == first


def test_compare_refuses_what_it_cannot_score(tmp_path: Path) -> None:
    paths, y = checkerboards(tmp_path / "img", 2)
    with pytest.raises(InputError, match="at least 2 classes"):
        compare_representations([Candidate("pixels", 16)], paths, np.zeros(len(paths), int))
    with pytest.raises(InputError, match="no candidates"):
        compare_representations([], paths, y)
    with pytest.raises(InputError, match="unknown criterion"):
        compare_representations([Candidate("pixels", 16)], paths, y, criterion="vibes")


def test_should_rechoose_first_at_two_labels_per_class_then_when_labels_double() -> None:
    assert not should_rechoose(19, None, 10)
    assert should_rechoose(20, None, 10)
    assert not should_rechoose(39, 20, 10)
    assert should_rechoose(40, 20, 10)
    assert not should_rechoose(79, 40, 10) and should_rechoose(80, 40, 10)


def test_default_candidates() -> None:
    lite = "efficientnet_lite0"
    assert default_candidates(lite, 64, native_size=28) == [Candidate(lite, 64), Candidate(lite, 224),
                                                              Candidate("pixels", 28)]  # fmt: skip
    assert default_candidates(lite, 224, native_size=300, ssl_weights="ssl.pt") == [
        Candidate(lite, 224), Candidate(lite, 64), Candidate("pixels", 64), Candidate(lite, 224, "ssl.pt"),
    ]  # fmt: skip
    # small_cnn has no frozen embedding: efficientnet_lite0 stands in, and small_cnn's weights do not fit it
    assert default_candidates("small_cnn", 64, native_size=8, ssl_weights="cnn.pt") == [
        Candidate(lite, 64), Candidate(lite, 224), Candidate("pixels", 8),
    ]  # fmt: skip
    assert default_candidates("pixels", 28, native_size=28) == [Candidate("pixels", 28)]
    assert default_candidates(lite, None)[-1] == Candidate("pixels", 28)


def test_candidate_labels_parse_and_the_choice_round_trips() -> None:
    assert Candidate("efficientnet_lite0", 64, "w.pt").label == "efficientnet_lite0@64+ssl"
    assert Candidate.parse("pixels@28") == Candidate("pixels", 28) and Candidate.parse("pixels").label == "pixels"
    with pytest.raises(InputError, match="NAME or NAME@SIZE"):
        Candidate.parse("pixels@big")
    with pytest.raises(InputError, match="unknown model"):
        Candidate.parse("nonsense_net@64")
    choice = RepresentationChoice(
        Candidate("pixels", 28),
        (Comparison(Candidate("efficientnet_lite0", 64), 0.5, 1.25, 1280), Comparison(Candidate("pixels", 28), 0.75,
                                                                                      0.5, 784)),
        40,
        "knn_loo",
    )  # fmt: skip
    d = json.loads(json.dumps(choice.to_dict()))
    assert d["label"] == "pixels@28" and d["comparisons"][0]["label"] == "efficientnet_lite0@64"
    assert RepresentationChoice.from_dict(d) == choice
