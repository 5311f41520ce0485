"""Bundled and packaged datasets are written as real PNGs plus an unlabeled pool, seed, answers and eval tables."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from activelab.data.datasets import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_ENV,
    fetch_dataset,
    list_datasets,
    load_fashion_mnist,
    sample_dir,
)
from activelab.exceptions import InputError, NotFoundError


def test_fashion_mnist_arrays_are_the_real_set() -> None:
    x_train, y_train, x_test, y_test = load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_fetch_fashion_mnist_subset_is_balanced(tmp_path: Path) -> None:
    out = fetch_dataset("fashion-mnist", tmp_path, limit=30, eval_limit=10, seed=1)
    pool, evals = pd.read_csv(out / "answers.csv"), pd.read_csv(out / "eval.csv")
    assert len(pool) == 30 and len(evals) == 10
    assert pool["label"].value_counts().tolist() == [3] * 10
    x_train, y_train, _, _ = load_fashion_mnist()
    first = pool.iloc[0]
    idx = int(Path(first["filepath"]).stem)
    assert np.array_equal(np.asarray(Image.open(out / first["filepath"])), x_train[idx])
    assert first["label"] == FASHION_MNIST_CLASSES[y_train[idx]]


def test_fetch_digits(tmp_path: Path) -> None:
    out = fetch_dataset("digits", tmp_path)
    assert len(pd.read_csv(out / "answers.csv")) == 1397 and len(pd.read_csv(out / "eval.csv")) == 400
    assert Image.open(out / "pool" / "00000.png").size == (8, 8)


def test_fetch_sample_and_list(tmp_path: Path) -> None:
    out = fetch_dataset("fashion-mnist-sample", tmp_path)
    assert len(list((out / "pool").glob("*.png"))) == 500
    names = {d.name: d for d in list_datasets()}
    sample = names["fashion-mnist-sample"]
    assert sample.available and sample.n_pool == 500 and sample.n_eval == 200
    assert names["digits"].available


def test_fetch_writes_an_unlabeled_pool_with_seed_and_answers_apart(tmp_path: Path) -> None:
    out = fetch_dataset("sample", tmp_path, seed_per_class=3)  # the old name still works
    pool, seed, answers = (pd.read_csv(out / f"{t}.csv") for t in ("pool", "seed", "answers"))
    assert pool.columns.tolist() == ["filepath"] and len(pool) == 500
    assert answers["filepath"].tolist() == pool["filepath"].tolist()
    assert answers.iloc[0].tolist() == ["pool/00223.png", "dress"]  # the bundled sample's first row
    assert len(seed) == 30 and seed["label"].value_counts().tolist() == [3] * 10
    assert seed.merge(answers, on=["filepath", "label"]).shape[0] == 30  # seed labels are the true ones
    assert pd.read_csv(out / "eval.csv")["label"].notna().all()


def test_fetch_sample_subset_is_balanced_and_copies_the_bytes(tmp_path: Path) -> None:
    out = fetch_dataset("fashion-mnist-sample", tmp_path, limit=20, eval_limit=10, seed_per_class=0)
    answers, evals = pd.read_csv(out / "answers.csv"), pd.read_csv(out / "eval.csv")
    assert answers["label"].value_counts().tolist() == [2] * 10 and len(evals) == 10
    assert len(pd.read_csv(out / "seed.csv")) == 0
    first = answers["filepath"].iloc[0]
    assert (out / first).read_bytes() == (sample_dir() / first).read_bytes()


def test_fetch_fashion_mnist_without_the_package_says_how_to_get_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    with pytest.raises(NotFoundError) as caught:
        fetch_dataset("fashion-mnist", tmp_path / "out")
    assert str(caught.value) == (
        f"Fashion-MNIST is not installed here: {tmp_path} has no train-images-idx3-ubyte.gz. Install it with "
        "`sudo apt-get install dataset-fashion-mnist` (Debian/Ubuntu; or set ACTIVELAB_FASHION_MNIST_DIR to a "
        "folder holding its four idx .gz files), or use the 700-image sample that ships with activelab: "
        "`activelab datasets fetch fashion-mnist-sample DEST`"
    )
    listed = {d.name: d for d in list_datasets()}["fashion-mnist"]
    assert not listed.available
    assert listed.how_to_get == "sudo apt-get install dataset-fashion-mnist, or use fashion-mnist-sample"


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown dataset 'cifar'; known: fashion-mnist, digits, fashion-mnist-sample"):
        fetch_dataset("cifar", tmp_path)


def test_negative_seed_per_class(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="seed_per_class must be 0 or more, got -1"):
        fetch_dataset("fashion-mnist-sample", tmp_path, seed_per_class=-1)
