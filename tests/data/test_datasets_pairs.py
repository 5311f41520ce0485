"""``fashion-pairs``: the bundled multi-label set of two Fashion-MNIST items side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.data.datasets import FASHION_MNIST_CLASSES, fetch_dataset, list_datasets, sample_dir
from activelab.tasks import get_task


def sample_classes(split: str) -> dict[bytes, str]:
    """The class of each bundled ``split`` image, keyed by its pixels."""
    table = pd.read_csv(sample_dir() / f"{split}.csv")
    return {
        np.asarray(Image.open(sample_dir() / rel)).tobytes(): label
        for rel, label in zip(table["filepath"], table["label"], strict=True)
    }


def test_labels_name_the_two_composed_items(tmp_path: Path) -> None:
    out = fetch_dataset("fashion-pairs", tmp_path, limit=60, eval_limit=25, seed_per_class=2)
    task = get_task("multilabel")
    for split, table in (("pool", "answers"), ("eval", "eval")):
        known = sample_classes(split)
        rows = pd.read_csv(out / f"{table}.csv")
        assert rows.columns.tolist() == ["filepath", "labels"] and len(rows) == (60 if split == "pool" else 25)
        for rel, cell in zip(rows["filepath"], rows["labels"], strict=True):
            pixels = np.asarray(Image.open(out / rel))
            assert pixels.shape == (28, 56)
            left, right = known[pixels[:, :28].tobytes()], known[pixels[:, 28:].tobytes()]
            assert cell == "|".join(sorted({left, right}))
            assert task.validate(task.parse(cell), FASHION_MNIST_CLASSES) == sorted({left, right})
    pool, seed = pd.read_csv(out / "pool.csv"), pd.read_csv(out / "seed.csv")
    answers = pd.read_csv(out / "answers.csv")
    assert pool["filepath"].tolist() == answers["filepath"].tolist()
    # seed: the first 2 pool images holding each class, in pool order
    holders = {
        c: [i for i, cell in enumerate(answers["labels"]) if c in cell.split("|")] for c in FASHION_MNIST_CLASSES
    }
    want = sorted({i for rows in holders.values() for i in rows[:2]})
    assert seed.to_dict("records") == answers.iloc[want].to_dict("records")


def test_same_seed_same_files_other_seed_other_pairs(tmp_path: Path) -> None:
    a = fetch_dataset("fashion-pairs", tmp_path / "a", limit=30, eval_limit=10, seed=4)
    b = fetch_dataset("fashion-pairs", tmp_path / "b", limit=30, eval_limit=10, seed=4)
    c = fetch_dataset("fashion-pairs", tmp_path / "c", limit=30, eval_limit=10, seed=5)
    for table in ("pool", "seed", "answers", "eval"):
        assert (a / f"{table}.csv").read_bytes() == (b / f"{table}.csv").read_bytes()
    assert all((a / rel).read_bytes() == (b / rel).read_bytes() for rel in pd.read_csv(a / "eval.csv")["filepath"])
    assert pd.read_csv(a / "answers.csv")["labels"].tolist() != pd.read_csv(c / "answers.csv")["labels"].tolist()


def test_listed_as_a_multilabel_set_of_the_documented_size() -> None:
    info = {d.name: d for d in list_datasets()}["fashion-pairs"]
    assert (info.n_pool, info.n_eval, info.task, info.available) == (1000, 300, "multilabel", True)
    assert info.classes == FASHION_MNIST_CLASSES


def test_cli_fetch(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["datasets", "fetch", "fashion-pairs", str(tmp_path), "--limit", "12", "--json"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(tmp_path / "answers.csv")) == 12 and len(list((tmp_path / "pool").glob("*.png"))) == 12
