"""Make the README's screenshots of the labeling app from the real demo project.

Builds the demo project (bundled Fashion-MNIST sample, EfficientNet-Lite0 fast path at
64 px), answers a few rounds of margin sampling from the sample's true labels so the
learning curve has points, then serves the app and photographs the labeling page and
the dashboard with Debian's Chromium.

Run:  .venv/bin/python docs/make_screenshots.py      (about two minutes on 2 CPU cores)
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import pandas as pd
import uvicorn
from playwright.sync_api import sync_playwright
from typer.testing import CliRunner

from activelab.cli.main import app
from activelab.loop.project import open_project
from activelab.loop.session import ActiveSession
from activelab.server import ServerSettings, create_app

OUT = Path(__file__).resolve().parent / "img"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="activelab-shots-"))
    project = work / "demo"
    result = CliRunner().invoke(app, ["demo", str(project), "--no-serve"])
    assert result.exit_code == 0, result.output
    truth = pd.read_csv(project / "data" / "answers.csv")
    by_name = dict(zip(truth["filepath"].map(lambda p: Path(p).name), truth["label"]))
    with open_project(project) as proj:
        session = ActiveSession(proj)
        images = {img.id: img for img in proj.store.images("pool")}
        for _ in range(4):
            picked = session.run_round("margin", 20).selected
            proj.store.add_labels(
                [(i, by_name[Path(images[i].path).name]) for i in picked], author="oracle", source="oracle"
            )
        session.run_round("margin", 20)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(ServerSettings(project=project, trainer=False)), host="127.0.0.1", port=port, log_level="warning"
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.1)
    OUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(f"http://127.0.0.1:{port}/?user=ann")
            page.wait_for_selector("#image", state="visible")
            time.sleep(1)
            page.screenshot(path=str(OUT / "webapp_label.png"))
            page.goto(f"http://127.0.0.1:{port}/dashboard")
            time.sleep(2)
            page.screenshot(path=str(OUT / "webapp_dashboard.png"), full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(30)
        shutil.rmtree(work, ignore_errors=True)
    print(f"wrote {OUT / 'webapp_label.png'} and {OUT / 'webapp_dashboard.png'}")


if __name__ == "__main__":
    main()
