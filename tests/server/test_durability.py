"""Acknowledged labels survive SIGKILL: a real ``activelab serve`` process killed mid-stream, then restarted.

One client streams labels at a real uvicorn process (``activelab serve --no-trainer``
on 127.0.0.1); another thread SIGKILLs the process while requests are in flight.
After a restart on the same project: every label the server acknowledged (a 200
with its ``event_id``) is in the store as that event, SQLite's ``integrity_check``
says ``ok``, and labeling goes on where it stopped.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import CLIENT_HEADERS, free_port, stop_process, wait_for

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

CLASSES = ["t-shirt", "trouser", "pullover", "dress", "coat"]
KILL_AFTER_ACKS = 12  # the kill lands while the stream is running, after this many acknowledged labels
MAX_LABELS = 200  # upper bound of the stream (the kill comes long before)


def _serve(project: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    exe = Path(sys.executable).parent / "activelab"
    cmd = [str(exe), "serve", str(project), "--port", str(port), "--no-trainer"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, stdout=log.open("ab"), stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"activelab serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(up, timeout=60, interval=0.2)
    return proc


def test_acknowledged_labels_survive_sigkill_and_labeling_continues(project_dir: Path, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _serve(project_dir, port, log)
    acked: dict[int, tuple[int, str]] = {}  # event_id -> (image_id, label), only from 200 responses
    killed = threading.Event()
    enough = threading.Event()

    def killer() -> None:
        enough.wait(60)
        time.sleep(0.01)  # land inside the stream, not between two bursts
        os.kill(proc.pid, signal.SIGKILL)
        killed.set()

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        with httpx.Client(base_url=url, headers=CLIENT_HEADERS, timeout=10) as client:
            n = 0
            while n < MAX_LABELS and not killed.is_set():
                try:
                    items = client.post("/api/next", json={"user": "ann", "n": 5}).json()["items"]
                    for item in items:
                        label = CLASSES[n % len(CLASSES)]
                        res = client.post(
                            "/api/labels", json={"user": "ann", "image_id": item["image_id"], "label": label}
                        )
                        n += 1
                        if res.status_code == 200:
                            body = res.json()
                            acked[body["event_id"]] = (item["image_id"], label)
                        if len(acked) >= KILL_AFTER_ACKS:
                            enough.set()
                except httpx.TransportError:
                    break  # the server is gone: requests in flight were never acknowledged
        thread.join(30)
        assert killed.is_set() and proc.wait(10) == -signal.SIGKILL
        assert KILL_AFTER_ACKS <= len(acked) < MAX_LABELS

        db = project_dir / "activelab.db"  # read it as a crash left it, before anything reopens it
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
            stored = {
                row[0]: (row[1], row[2])
                for row in conn.execute(
                    "SELECT e.id, e.image_id, c.name FROM label_events e JOIN classes c ON c.id = e.class_id"
                )
            }
        lost = {eid: v for eid, v in acked.items() if stored.get(eid) != v}
        assert not lost, f"acknowledged labels missing after SIGKILL: {lost}"

        proc = _serve(project_dir, port, log)  # restart on the same project
        with httpx.Client(base_url=url, headers=CLIENT_HEADERS, timeout=10) as client:
            for event_id, (image_id, label) in list(acked.items())[:5]:
                detail = client.get(f"/api/images/{image_id}").json()
                assert detail["label"] == label and event_id in [e["event_id"] for e in detail["history"]]
            items = client.post("/api/next", json={"user": "ann", "n": 3}).json()["items"]
            labeled = {image_id for image_id, _ in acked.values()}
            assert len(items) == 3 and not {i["image_id"] for i in items} & labeled
            res = client.post("/api/labels", json={"user": "ann", "image_id": items[0]["image_id"], "label": "bag"})
            assert res.status_code == 200 and res.json()["event_id"] > max(acked)
            stats = client.get("/api/stats").json()
            assert stats["labeled"]["pool"] >= 20 + len(acked) + 1
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        if proc.poll() is None:
            stop_process(proc)
