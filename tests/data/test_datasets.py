"""Bundled and packaged datasets are written as real PNGs plus tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from activelab.data.datasets import FASHION_MNIST_CLASSES, fetch_dataset, list_datasets, load_fashion_mnist
from activelab.exceptions import InputError


def test_fashion_mnist_arrays_are_the_real_set() -> None:
    x_train, y_train, x_test, y_test = load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_fetch_fashion_mnist_subset_is_balanced(tmp_path: Path) -> None:
    out = fetch_dataset("fashion-mnist", tmp_path, limit=30, eval_limit=10, seed=1)
    pool, evals = pd.read_csv(out / "pool.csv"), pd.read_csv(out / "eval.csv")
    assert len(pool) == 30 and len(evals) == 10
    assert pool["label"].value_counts().tolist() == [3] * 10
    x_train, y_train, _, _ = load_fashion_mnist()
    first = pool.iloc[0]
    idx = int(Path(first["filepath"]).stem)
    assert np.array_equal(np.asarray(Image.open(out / first["filepath"])), x_train[idx])
    assert first["label"] == FASHION_MNIST_CLASSES[y_train[idx]]


def test_fetch_digits(tmp_path: Path) -> None:
    out = fetch_dataset("digits", tmp_path)
    assert len(pd.read_csv(out / "pool.csv")) == 1397 and len(pd.read_csv(out / "eval.csv")) == 400
    assert Image.open(out / "pool" / "00000.png").size == (8, 8)


def test_fetch_sample_and_list(tmp_path: Path) -> None:
    out = fetch_dataset("sample", tmp_path)
    assert len(list((out / "pool").glob("*.png"))) == 500
    names = {d.name: d for d in list_datasets()}
    assert names["sample"].available and names["sample"].n_pool == 500 and names["sample"].n_eval == 200
    assert names["digits"].available


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset 'cifar'.*fashion-mnist, digits, sample"):
        fetch_dataset("cifar", tmp_path)
