"""Two processes writing one SQLite store at once: every write lands, nothing corrupts."""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from activelab.store import ImageRecord, open_store, sqlite_url


def _writer(url: str, worker: int, n: int) -> None:
    store = open_store(url)
    for i in range(n):
        sha = f"{worker:032x}{i:032x}"
        (iid,) = store.add_images(
            [ImageRecord(sha, f"/w{worker}/{i}.png", 1, 1, 1, label="a")], author=f"w{worker}"
        ).image_id
        store.add_label(iid, "b", author=f"w{worker}", source="correction")
    store.close()


def test_two_processes_write_concurrently(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shared.db")
    with open_store(url) as store:
        store.add_classes(["a", "b"])
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w, 40)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    with open_store(url) as store:
        assert len(store.images()) == 80
        assert store.n_label_events() == 160
        labels = store.current_labels()
        assert len(labels) == 80 and {c.label for c in labels.values()} == {"b"}
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA integrity_check").scalar() == "ok"


def test_opening_a_new_store_from_two_processes(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "fresh.db")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(url, w, 0)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    with open_store(url) as store:
        assert store.class_names() == []
