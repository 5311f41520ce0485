"""`activelab datasets fetch`: the tables it writes, the commands it suggests, and the missing-package error."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.data.datasets import FASHION_MNIST_ENV

runner = CliRunner()


def test_fetch_prints_the_imports_of_an_unlabeled_pool(tmp_path: Path) -> None:
    dest = tmp_path / "data"
    result = runner.invoke(
        app,
        [
            "datasets",
            "fetch",
            "fashion-mnist-sample",
            str(dest),
            "--limit",
            "20",
            "--eval-limit",
            "10",
            "--seed-per-class",
            "1",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        (
            f"wrote fashion-mnist-sample to {dest}; import the unlabeled pool, the held-out eval split and "
            "1 labels per class to start from with:"
        ),
        f"  activelab import PROJECT {dest / 'pool.csv'}",
        f"  activelab import PROJECT {dest / 'eval.csv'} --split eval",
        f"  activelab import PROJECT {dest / 'seed.csv'}",
        f"{dest / 'answers.csv'} holds every pool label: the oracle of `activelab simulate --dataset {dest}`",
    ]
    assert len(pd.read_csv(dest / "seed.csv")) == 10


def test_fetch_json_names_every_table(tmp_path: Path) -> None:
    result = runner.invoke(app, ["datasets", "fetch", "fashion-mnist-sample", str(tmp_path), "--limit", "10", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {
        "path": str(tmp_path),
        **{t: str(tmp_path / f"{t}.csv") for t in ("pool", "seed", "answers", "eval")},
    }


def test_fetch_fashion_mnist_without_the_package_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(FASHION_MNIST_ENV, str(tmp_path))
    result = runner.invoke(app, ["datasets", "fetch", "fashion-mnist", str(tmp_path / "out")])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    assert message.startswith(
        f"error: Fashion-MNIST is not installed here: {tmp_path} has no "
        "train-images-idx3-ubyte.gz. Install it with `sudo apt-get install "
        "dataset-fashion-mnist`"
    )
    assert message.endswith("`activelab datasets fetch fashion-mnist-sample DEST`")
    assert not (tmp_path / "out").exists()
