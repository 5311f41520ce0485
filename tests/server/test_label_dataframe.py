"""``label_dataframe`` / ``ActiveLearner.label``: the app opened on a DataFrame's rows, labeled over its API."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import httpx
import pandas as pd
import pytest

from activelab import ActiveLearner
from activelab.exceptions import NotFoundError
from activelab.server import label_dataframe

from .conftest import CLIENT_HEADERS

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot"]


def _rows(sample: Path, n: int) -> pd.DataFrame:
    pool = pd.read_csv(sample / "pool.csv").head(n)
    return pool.assign(filepath=[str(sample / p) for p in pool.filepath])


def _labeler(urls: queue.Queue[str], truth: dict[str, str], stop_after: int | None = None) -> threading.Thread:
    """A labeler in a thread: takes what /api/next gives and answers from ``truth``, like a person at the page."""

    def work() -> None:
        url = urls.get(timeout=60)
        with httpx.Client(base_url=url, headers=CLIENT_HEADERS, timeout=10) as client:
            done = 0
            while stop_after is None or done < stop_after:
                items = client.post("/api/next", json={"user": "ann", "n": 3}).json()["items"]
                if not items:
                    return
                for item in items:
                    iid = item["image_id"]
                    content = client.get(item["url"]).content  # what the person sees
                    label = truth[_BY_CONTENT[content]]
                    res = client.post("/api/labels", json={"user": "ann", "image_id": iid, "label": label})
                    assert res.status_code == 200, res.text
                    done += 1
                    if stop_after is not None and done >= stop_after:
                        break
            assert client.post("/api/done").json() == {"ok": True}

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


_BY_CONTENT: dict[bytes, str] = {}  # file content -> path, to answer from the truth table


def test_label_dataframe_blocks_until_every_row_is_labeled(sample: Path, tmp_path: Path) -> None:
    df = _rows(sample, 7)
    df = pd.concat([df, df.iloc[[0]]], ignore_index=True)  # the same file twice: one image, one label
    truth = dict(zip(df.filepath, df.label))
    _BY_CONTENT.update({Path(p).read_bytes(): p for p in df.filepath})
    given = df.drop(columns=["label"]).assign(label=[df.label[0]] + [None] * (len(df) - 1))  # one row already labeled
    urls: queue.Queue[str] = queue.Queue()
    worker = _labeler(urls, truth)
    out = label_dataframe(given, CLASSES, output_filename=tmp_path / "labeled", on_ready=urls.put, timeout=120)
    worker.join(10)
    assert list(out.filepath) == list(df.filepath) and list(out.label) == list(df.label)
    assert list(pd.read_parquet(tmp_path / "labeled.parquet").label) == list(df.label)
    assert "label" not in given.columns or given.label.isna().sum() == len(df) - 1  # the input is not modified


def test_active_learner_label_opens_the_app_and_stops_on_done(sample: Path, tmp_path: Path) -> None:
    df = _rows(sample, 6).drop(columns=["label"])
    truth = dict(zip(_rows(sample, 6).filepath, _rows(sample, 6).label))
    _BY_CONTENT.update({Path(p).read_bytes(): p for p in df.filepath})
    learner = ActiveLearner("small_cnn")
    learner.classes = list(CLASSES)
    urls: queue.Queue[str] = queue.Queue()
    worker = _labeler(urls, truth, stop_after=2)  # labels two rows, then presses "done"
    out = learner.label(df, tmp_path / "two.parquet", labeler=label_dataframe, on_ready=urls.put, timeout=120)
    worker.join(10)
    assert out.label.notna().sum() == 2 and len(out) == 6
    assert all(truth[p] == lab for p, lab in zip(out.filepath, out.label) if pd.notna(lab))
    assert pd.read_parquet(tmp_path / "two.parquet").label.notna().sum() == 2
    with pytest.raises(NotFoundError, match="row 0"):
        label_dataframe(df.assign(filepath="/nope.png"), CLASSES)
