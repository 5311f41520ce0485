"""Real-image fixtures for the model tests: Fashion-MNIST and scikit-learn digits as PNGs."""

from __future__ import annotations

import os
from pathlib import Path

# No network here: make the Hugging Face Hub fail at once instead of retrying DNS for ~47 s.
# (Must be set before huggingface_hub is imported; it reads the variable at import time.)
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import pytest
from PIL import Image

from activelab.data.datasets import load_fashion_mnist

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


class ImageSet:
    """Paths and integer labels of PNG files written for a test, split into train and test."""

    def __init__(self, train_paths, train_labels, test_paths, test_labels, classes):
        self.train_paths = train_paths
        self.train_labels = train_labels
        self.test_paths = test_paths
        self.test_labels = test_labels
        self.classes = classes


def _write(folder: Path, images: np.ndarray, labels: np.ndarray, prefix: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (im, y) in enumerate(zip(images, labels)):
        p = folder / f"{prefix}{i:04d}_c{int(y)}.png"
        Image.fromarray(im, mode="L").save(p)
        paths.append(str(p))
    return paths


def _pick(labels: np.ndarray, classes: list[int], per_class: int, rng: np.random.Generator) -> np.ndarray:
    idx = np.concatenate([rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in classes])
    return rng.permutation(idx)


@pytest.fixture(scope="session")
def fashion(tmp_path_factory: pytest.TempPathFactory) -> ImageSet:
    """Fashion-MNIST, 3 classes (T-shirt/top, Trouser, Sneaker): 210 train, 90 test PNGs (28x28)."""
    if not (FASHION_DIR / "train-images-idx3-ubyte.gz").exists():
        pytest.skip("Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)")
    _, _, images, labels = load_fashion_mnist(FASHION_DIR)
    originals = [0, 1, 7]
    rng = np.random.default_rng(0)
    idx = _pick(labels, originals, 100, rng)
    y = np.searchsorted(originals, labels[idx])
    root = tmp_path_factory.mktemp("fashion")
    paths = _write(root, images[idx], y, "f")
    return ImageSet(paths[:210], y[:210].tolist(), paths[210:], y[210:].tolist(), ["tshirt", "trouser", "sneaker"])


@pytest.fixture(scope="session")
def digits(tmp_path_factory: pytest.TempPathFactory) -> ImageSet:
    """scikit-learn digits 0-3 (8x8, scaled to 0-255): 240 train, 80 test PNGs."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)
    rng = np.random.default_rng(0)
    idx = _pick(d.target, [0, 1, 2, 3], 80, rng)
    y = d.target[idx]
    root = tmp_path_factory.mktemp("digits")
    paths = _write(root, images[idx], y, "d")
    return ImageSet(paths[:240], y[:240].tolist(), paths[240:], y[240:].tolist(), ["0", "1", "2", "3"])


def accuracy(probs: np.ndarray, labels: list[int]) -> float:
    return float((probs.argmax(1) == np.asarray(labels)).mean())
