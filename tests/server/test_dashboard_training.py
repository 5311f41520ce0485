"""The dashboard says when a round's model used unlabeled images and which representation it chose:
``/api/stats``'s latest round, the Training card and the trainer line (shown as text, under the CSP)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from activelab.loop.project import open_project
from activelab.loop.trainer import STATE_KEY
from activelab.server import ServerSettings

from .browser import CHROMIUM, csp_violations, with_csp
from .conftest import LiveServer

MARKUP = "<img src=x onerror=window.__xss=1>"
ROUND_METRICS = {
    "n_labeled": 20,
    "semi_supervised": "label_spreading",
    "n_unlabeled": 1234,
    "representation": {"label": f"pixels@28{MARKUP}", "n_labels": 20, "chosen_now": True},
}


@pytest.fixture(scope="module")
def project_root(tmp_path_factory: pytest.TempPathFactory, demo_template: Path) -> Path:
    """The demo project with one finished semi-supervised round and the trainer's line about it."""
    root = tmp_path_factory.mktemp("semi") / "project"
    shutil.copytree(demo_template, root)
    with open_project(root) as proj:
        number = proj.store.start_round(strategy="margin", model="small_cnn", config={}, n_labeled=20)
        proj.store.finish_round(number, metrics=ROUND_METRICS, selection=[])
        last = {"round": number, "n_labeled": 20, "accuracy": 0.5, "n_eval": 200, "semi_supervised": "label_spreading",
                "n_unlabeled": 1234, "representation": f"pixels@28{MARKUP}"}  # fmt: skip
        proj.store.set_service_state(STATE_KEY, {"last_round": number, "last_metrics": last})
    return root


def test_stats_report_the_latest_rounds_unlabeled_images_and_representation(client_factory, project_root: Path) -> None:
    client = client_factory(project=project_root)
    latest = client.get("/api/stats").json()["latest_round"]
    assert latest["number"] == 1 and latest["n_labeled"] == 20
    assert (latest["semi_supervised"], latest["n_unlabeled"]) == ("label_spreading", 1234)
    assert latest["representation"] == f"pixels@28{MARKUP}"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_the_dashboard_shows_the_training_line_as_text(browser: Any, project_root: Path) -> None:
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.route("**/*", with_csp)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    expected = f"semi-supervised (label_spreading): 1,234 unlabeled images · representation pixels@28{MARKUP}"
    with LiveServer(ServerSettings(project=project_root, trainer=False, similar_index=False)) as live:
        page.goto(f"{live.url}/dashboard")
        page.wait_for_selector("#dashboard[data-ready='1']")
        cards = page.eval_on_selector("#cards", "e => e.textContent")
        assert f"Trainingsemi-supervised{expected}" in cards
        page.wait_for_function("document.getElementById('trainer-text').textContent.includes('unlabeled')")
        assert expected in page.eval_on_selector("#trainer-text", "e => e.textContent")
        page.wait_for_timeout(300)  # an injected <img onerror> would fire after its failed load
        assert page.evaluate("window.__xss") is None and page.query_selector("#cards img") is None
        context.close()  # before the server stops: it waits for open connections
    assert not csp_violations(console), console
