"""Fixtures for the labeling app: a real demo project (bundled Fashion-MNIST) and app clients.

The demo project is built once per session with ``activelab demo`` and copied per
test. Its model is switched to the small CNN at 28 px so a round takes seconds on
two CPU cores; everything else (store, loop, strategies) is the real thing.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Self

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from activelab.loop.settings import load_settings, save_settings
from activelab.server import ServerSettings, create_app

CLIENT_HEADERS = {"X-Activelab-Client": "1"}


def fast_settings(root: Path, **active_learner: Any) -> None:
    """Make a project's rounds quick: small CNN, 28 px, 2 epochs, 20 labels per round."""
    path = root / "activelab.yaml"
    settings = load_settings(path)
    settings.model.name = "small_cnn"
    settings.model.mode = "finetune"
    settings.model.pretrained = False
    settings.model.image_size = 28
    settings.model.device = "cpu"
    settings.train.epochs = 2
    settings.active_learner.k = 20
    for key, value in active_learner.items():
        setattr(settings.active_learner, key, value)
    save_settings(settings, path)


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``activelab demo``: 500 pool images (20 labeled), 200 labeled eval images, 10 classes."""
    from activelab.cli.main import app

    root = tmp_path_factory.mktemp("demo") / "project"
    result = CliRunner().invoke(app, ["demo", str(root), "--no-serve"])
    assert result.exit_code == 0, result.output
    fast_settings(root)
    return root


@pytest.fixture
def project_dir(tmp_path: Path, demo_template: Path) -> Path:
    dest = tmp_path / "project"
    shutil.copytree(demo_template, dest)
    return dest


#: the classes of the multi-label test project
TAGS = ["bag", "shirt", "sandal", "sneaker"]


@pytest.fixture
def multilabel_dir(tmp_path: Path, demo_template: Path) -> Path:
    """A multi-label project (task ``multilabel``, classes :data:`TAGS`) over 12 of the demo's pool images, unlabeled."""
    from activelab.loop.project import init_project, open_project
    from activelab.store import ImageRecord

    root = tmp_path / "tags"
    with open_project(demo_template) as demo:
        images = demo.store.images("pool")[:12]
    with init_project(root, TAGS, task="multilabel") as proj:
        proj.store.add_images(
            [
                ImageRecord(
                    sha256=i.sha256, path=i.path, width=i.width, height=i.height, n_bytes=i.n_bytes, format=i.format
                )
                for i in images
            ],
            author="import",
        )
    fast_settings(root, strategy="multilabel_uncertainty")  # margin reads softmax probabilities
    return root


@pytest.fixture
def client_factory(project_dir: Path) -> Iterator[Callable[..., TestClient]]:
    """Build (and finally close) app clients on ``project_dir``; the trainer is off unless asked for."""
    opened: list[TestClient] = []

    def make(*, headers: dict[str, str] | None = None, **settings: Any) -> TestClient:
        settings.setdefault("trainer", False)
        settings.setdefault("similar_index", False)
        settings.setdefault("trainer_poll_seconds", 0.2)
        app = create_app(ServerSettings(project=settings.pop("project", project_dir), **settings))
        # the app answers only to the host names it serves (DNS-rebinding protection), not to "testserver"
        client = TestClient(app, base_url="http://127.0.0.1", headers=CLIENT_HEADERS if headers is None else headers)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def record_round(project_dir: Path, n: int) -> list[int]:
    """Record finished round 1 without training: its selection (the queue) is the first ``n`` unlabeled pool
    images by id. Returns it, best first: a queue whose ranks a test knows exactly (hints can be added with
    ``store.save_predictions(1, ...)``)."""
    from activelab.loop.project import open_project

    with open_project(project_dir) as proj:
        labeled = proj.store.labeled_image_ids()
        selection = [img.id for img in proj.store.images("pool") if img.id not in labeled][:n]
        number = proj.store.start_round(strategy="margin", model="small_cnn", config={}, n_labeled=len(labeled))
        proj.store.finish_round(number, metrics={}, selection=[(iid, None) for iid in selection])
    return selection


def write_ranking(project_dir: Path, rows: dict[str, list[Any]]) -> None:
    """Write an ``activelab errors`` ranking (columns ``image_id, given_label, suggested_label, score, is_issue``
    and optional ``p_suggested``) made now, where the review queue reads it."""
    from datetime import datetime, timezone

    import pandas as pd

    from activelab.label_errors import ranking_path

    path = ranking_path(project_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame(rows)
    frame["ranked_at"] = datetime.now(timezone.utc).isoformat()
    frame.to_csv(path, index=False)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Stop a served process as Ctrl-C would (SIGINT), killing it if it has not exited within 15 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_for(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.2) -> Any:
    """Poll until ``predicate()`` is truthy; return its value or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """uvicorn serving one app on 127.0.0.1 in a background thread."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        import uvicorn

        config = uvicorn.Config(create_app(self.settings), host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        wait_for(lambda: self._server.started, timeout=30)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        assert self._thread is not None
        self._thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's headless Chromium, one per test module (skipped without it, except in CI)."""
    from playwright.sync_api import sync_playwright

    from .browser import ARGS, CHROMIUM, require_chromium

    require_chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield b
        b.close()


#: the classes of the detection test project
OBJECTS = ["bag", "shirt", "shoe"]
#: the size of its images: shown at 8x (512 x 384 px) on the labeling page
SCENE_SIZE = (64, 48)


@pytest.fixture
def detection_dir(tmp_path: Path) -> Path:
    """A detection project (task ``detection``, classes :data:`OBJECTS`) of 6 unlabeled 64x48 PNGs of noise."""
    import numpy as np
    from PIL import Image as PILImage

    from activelab.data.images import inspect_image
    from activelab.loop.project import init_project
    from activelab.store import ImageRecord

    root = tmp_path / "boxes"
    folder = tmp_path / "scenes"
    folder.mkdir()
    rng = np.random.default_rng(0)
    records = []
    for i in range(6):
        path = folder / f"scene{i}.png"
        pixels = rng.integers(0, 256, (SCENE_SIZE[1], SCENE_SIZE[0], 3), dtype=np.uint8)
        PILImage.fromarray(pixels).save(path)
        info = inspect_image(path)
        records.append(
            ImageRecord(
                sha256=info.sha256,
                path=str(path),
                width=info.width,
                height=info.height,
                n_bytes=info.n_bytes,
                format=info.format,
            )
        )
    with init_project(root, OBJECTS, task="detection") as proj:
        proj.store.add_images(records, author="import")
    return root


#: the classes of the segmentation test project: background first, as a segmentation project's list is
REGIONS_CLASSES = ["background", "bag", "shirt"]
#: the size of its images (width, height): shown at 8x (512 x 384 px) on the labeling page; about 12 SLIC
#: superpixels of ~16x16 px each (the task's default), three to a quadrant
MASK_SIZE = (64, 48)


@pytest.fixture
def segmentation_dir(tmp_path: Path) -> Path:
    """A segmentation project (classes :data:`REGIONS_CLASSES`) of 4 unlabeled 64x48 PNGs: four flat-coloured
    quadrants each (so SLIC regions follow them), slightly noisy."""
    import numpy as np
    from PIL import Image as PILImage

    from activelab.data.images import inspect_image
    from activelab.loop.project import init_project
    from activelab.store import ImageRecord

    root = tmp_path / "masks"
    folder = tmp_path / "pictures"
    folder.mkdir()
    rng = np.random.default_rng(0)
    width, height = MASK_SIZE
    colours = np.array([[200, 40, 40], [40, 200, 40], [40, 40, 200], [220, 220, 60]], dtype=np.int16)
    records = []
    for i in range(4):
        quadrant = (np.arange(height)[:, None] >= height // 2) * 2 + (np.arange(width)[None, :] >= width // 2)
        pixels = colours[(quadrant + i) % 4] + rng.integers(-8, 9, (height, width, 3))
        path = folder / f"picture{i}.png"
        PILImage.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path)
        info = inspect_image(path)
        records.append(
            ImageRecord(
                sha256=info.sha256,
                path=str(path),
                width=info.width,
                height=info.height,
                n_bytes=info.n_bytes,
                format=info.format,
            )
        )
    with init_project(root, REGIONS_CLASSES, task="segmentation") as proj:
        proj.store.add_images(records, author="import")
    return root
