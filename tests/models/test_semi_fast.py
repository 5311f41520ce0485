"""Semi-supervised training on frozen embeddings: self-training and label spreading beat their
supervised twin on digits with few labels, read unlabeled images only when asked, and are seeded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from activelab.exceptions import InputError
from activelab.models import create_model, load_model
from activelab.models.semi import spread_labels, subsample

N_TRAIN, N_TEST = 600, 300


class Digits:
    def __init__(self, root: Path) -> None:
        from sklearn.datasets import load_digits

        d = load_digits()
        rng = np.random.default_rng(0)
        idx = rng.permutation(np.concatenate([rng.choice(np.flatnonzero(d.target == c), 90, replace=False)
                                              for c in range(10)]))  # fmt: skip
        images = (d.images[idx] * (255.0 / 16.0)).round().astype(np.uint8)
        self.paths = []
        for i, im in enumerate(images):
            p = root / f"d{i:04d}.png"
            Image.fromarray(im, mode="L").save(p)
            self.paths.append(str(p))
        self.labels = d.target[idx]
        self.test = self.paths[N_TRAIN:]

    def split(self, n_labeled: int, seed: int) -> tuple[list[str], np.ndarray, list[str]]:
        """``n_labeled`` seeded labeled training images, their labels, and the other training images."""
        lab = np.random.default_rng(seed).choice(N_TRAIN, n_labeled, replace=False)
        unl = np.setdiff1d(np.arange(N_TRAIN), lab)
        return [self.paths[i] for i in lab], self.labels[lab], [self.paths[i] for i in unl]

    def accuracy(self, model) -> float:
        return float((model.predict_proba(self.test).argmax(1) == self.labels[N_TRAIN:]).mean())


@pytest.fixture(scope="module")
def digits10(tmp_path_factory: pytest.TempPathFactory) -> Digits:
    """scikit-learn digits, 10 classes x 90 (8x8 PNGs): 600 train, 300 test."""
    return Digits(tmp_path_factory.mktemp("digits10"))


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("semi_cache")


def pixels(cache_dir: Path, **options):
    return create_model("pixels", num_classes=10, image_size=8, cache_dir=cache_dir, device="cpu", **options)


@pytest.mark.parametrize(
    "method,n_labeled,margin,options",
    # measured (2026-12-07): label spreading +9.7 to +16 points a seed, self-training +0.3 to +3
    [("label_spreading", 20, 0.08, {}), ("self_training", 40, 0.01, {"semi_iterations": 3})],
)
def test_each_method_beats_its_supervised_twin(digits10, cache_dir, method, n_labeled, margin, options) -> None:
    gains = []
    for seed in (0, 1, 2):
        labeled, y, unlabeled = digits10.split(n_labeled, seed)
        sup = pixels(cache_dir)
        sup.fit(labeled, y, seed=seed, unlabeled=unlabeled)
        semi = pixels(cache_dir, semi_supervised=method, **options)
        report = semi.fit(labeled, y, seed=seed, unlabeled=unlabeled)
        assert report.semi_supervised == method and 0 < report.n_unlabeled <= len(unlabeled)
        assert report.n_train == n_labeled
        gains.append(digits10.accuracy(semi) - digits10.accuracy(sup))
    assert np.mean(gains) >= margin and min(gains) > 0, gains


def test_unlabeled_images_are_read_only_when_semi_supervised(digits10, tmp_path) -> None:
    labeled, y, unlabeled = digits10.split(20, 0)
    missing = [str(tmp_path / f"missing{i}.png") for i in range(5)]  # reading one would raise
    sup = pixels(tmp_path / "a")
    report = sup.fit(labeled, y, unlabeled=missing)
    assert sup.forward_count == 20 and (report.n_unlabeled, report.semi_supervised) == (0, "none")

    semi = pixels(tmp_path / "b", semi_supervised="label_spreading", semi_max_unlabeled=100)
    report = semi.fit(labeled, y, unlabeled=unlabeled)
    assert semi.forward_count == 20 + 100  # a seeded subset of 100 of the 580, no more
    assert report.cache_misses == 120 and 0 < report.n_unlabeled <= 100


def test_same_seed_same_model_and_save_load_round_trip(digits10, cache_dir, tmp_path) -> None:
    labeled, y, unlabeled = digits10.split(20, 1)
    probs = []
    for _ in range(2):
        m = pixels(cache_dir, semi_supervised="label_spreading", semi_max_unlabeled=200)
        report = m.fit(labeled, y, seed=3, unlabeled=unlabeled)
        probs.append(m.predict_proba(digits10.test))
    np.testing.assert_array_equal(probs[0], probs[1])
    assert report.n_unlabeled > 0
    m.save(tmp_path / "semi.pt")
    loaded = load_model(tmp_path / "semi.pt")
    assert loaded.options["semi_supervised"] == "label_spreading"
    np.testing.assert_allclose(loaded.predict_proba(digits10.test), probs[0], atol=1e-6)
    np.testing.assert_array_equal(subsample(580, 200, 3), subsample(580, 200, 3))
    assert not np.array_equal(subsample(580, 200, 3), subsample(580, 200, 4))


def test_label_spreading_follows_the_clusters() -> None:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 5.0], [5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    y_u = np.repeat([0, 1, 2], 30)
    x_u = centres[y_u] + rng.normal(0, 0.3, (90, 3))
    pseudo = spread_labels(centres, np.array([0, 1, 2]), x_u, threshold=0.9, neighbors=10)
    assert len(pseudo) == 90  # every point is confidently in its own cluster
    np.testing.assert_array_equal(pseudo.labels, y_u[pseudo.index])
    assert (pseudo.confidence >= 0.9).all()
    # with 5 neighbours some points' graph component holds no labeled point: they get no pseudo-label
    assert 0 < len(spread_labels(centres, np.array([0, 1, 2]), x_u, threshold=0.9, neighbors=5)) < 90


def test_bad_options_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(InputError, match="'none', 'self_training', 'label_spreading'"):
        create_model("pixels", num_classes=3, semi_supervised="fixmatch")
    with pytest.raises(InputError, match="multi-label semi-supervision is not implemented"):
        create_model("pixels", num_classes=3, output="sigmoid", semi_supervised="label_spreading")
    with pytest.raises(InputError, match="semi_threshold"):
        create_model("pixels", num_classes=3, semi_supervised="self_training", semi_threshold=1.5)
    with pytest.raises(InputError, match="semi_max_unlabeled"):
        create_model("pixels", num_classes=3, semi_max_unlabeled=0)
