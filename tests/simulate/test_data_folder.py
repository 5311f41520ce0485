"""A simulation reads a fetched folder's labels from answers.csv, and an older labeled pool.csv still works."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd

from activelab.data.datasets import fetch_dataset
from activelab.simulate.data import from_folder


def test_fetched_folder_answers_come_from_answers_csv(tmp_path: Path) -> None:
    out = fetch_dataset("fashion-mnist-sample", tmp_path, limit=20, eval_limit=10)
    ds = from_folder(out)
    answers = pd.read_csv(out / "answers.csv")
    assert ds.pool_paths == [str(out / p) for p in answers["filepath"]]
    assert [ds.classes[i] for i in ds.y_pool] == answers["label"].tolist()
    assert len(ds.eval_paths) == 10


def test_folder_with_a_labeled_pool_csv_still_works(tmp_path: Path) -> None:
    out = fetch_dataset("fashion-mnist-sample", tmp_path, limit=20, eval_limit=10)
    shutil.move(out / "answers.csv", out / "pool.csv")
    ds = from_folder(out)
    assert [ds.classes[i] for i in ds.y_pool] == pd.read_csv(out / "pool.csv")["label"].tolist()
