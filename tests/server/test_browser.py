"""The labeling page and dashboard in real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
from pathlib import Path

from activelab.loop.project import open_project
from activelab.loop.session import ActiveSession
from activelab.server import ServerSettings

from .browser import (
    csp_violations,
    wait_until,
    with_csp,
)
from .conftest import LiveServer

SCREENSHOTS = Path(os.environ.get("ACTIVELAB_SCREENSHOTS", "")) if os.environ.get("ACTIVELAB_SCREENSHOTS") else None


def _shown_id(page) -> int:
    return int(page.get_attribute("#image", "data-image-id"))


def test_label_with_keys_undo_and_dashboard(browser, project_dir: Path, tmp_path: Path) -> None:
    shots = SCREENSHOTS or tmp_path
    shots.mkdir(parents=True, exist_ok=True)
    settings = ServerSettings(project=project_dir, retrain_every=3, trainer_poll_seconds=0.3)
    with LiveServer(settings) as server:
        context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
        context.route("**/*", with_csp)
        page = context.new_page()
        errors: list[str] = []
        console: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("console", lambda m: console.append(m.text))
        page.goto(f"{server.url}/?user=ann")
        page.wait_for_selector("#label-app[data-ready='1']")
        # the trainer's first round (20 seed labels) fills the queue and the page shows it
        wait_until(page, "document.getElementById('trainer-text').textContent.includes('last round 1')", timeout=90_000)
        page.reload()
        page.wait_for_selector("#label-app[data-ready='1']")
        wait_until(page, "document.getElementById('image').naturalWidth > 0")
        assert "queue #1" in page.text_content("#image-meta")
        assert "model:" in page.text_content("#hint")
        classes = [b.get_attribute("data-label") for b in page.query_selector_all("#classes .class")]
        assert len(classes) == 10

        labeled = []
        for key in ["1", "2", "3"]:
            before = _shown_id(page)
            labeled.append(before)
            page.keyboard.press(key)
            wait_until(page, f"document.getElementById('image').dataset.imageId !== '{before}'")
        with open_project(project_dir) as proj:
            for iid, name in zip(labeled, classes):
                (ev,) = proj.store.label_history(iid)
                assert (ev.label, ev.author, ev.source) == (name, "ann", "human")

        page.keyboard.press("u")  # undo brings the last image back
        wait_until(page, f"document.getElementById('image').dataset.imageId === '{labeled[-1]}'")
        with open_project(project_dir) as proj:
            assert [e.label for e in proj.store.label_history(labeled[-1])] == [classes[2], None]
        page.keyboard.press("4")
        wait_until(page, f"document.getElementById('image').dataset.imageId !== '{labeled[-1]}'")
        page.keyboard.press("h")  # hide the hint (anchoring bias)
        assert page.is_hidden("#hint")
        page.keyboard.press("h")
        # three new labels since round 1: the trainer re-ranks the queue (round 2) while we keep going
        wait_until(page, "document.getElementById('trainer-text').textContent.includes('last round 2')", timeout=90_000)
        wait_until(page, "document.getElementById('image').naturalWidth > 0")
        # the page re-fetches its buffer in the new order: the next image is the new queue's best
        on_screen = _shown_id(page)
        with open_project(project_dir) as proj:
            queue2 = ActiveSession(proj).queue()
        expected = next(i for i in queue2 if i != on_screen)
        page.keyboard.press("5")
        wait_until(page, f"document.getElementById('image').dataset.imageId === '{expected}'")
        wait_until(page, "document.getElementById('image').naturalWidth > 0")
        page.screenshot(path=str(shots / "label.png"))
        page.keyboard.press("g")
        page.wait_for_selector("#grid .cell img")
        page.screenshot(path=str(shots / "grid.png"))

        page.goto(f"{server.url}/dashboard")
        page.wait_for_selector("#dashboard[data-ready='1']")
        page.wait_for_selector("#chart-curve svg circle")
        cards = page.text_content("#cards")
        assert "Labeled (pool)" in cards and "auto" in cards
        assert len(page.query_selector_all("#chart-curve svg circle")) >= 2
        page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
        with page.expect_download() as download:
            page.click("#export-csv")
        assert download.value.suggested_filename.endswith(".csv")
        assert not errors, errors
        assert not csp_violations(console), console
    with open_project(project_dir) as proj:
        assert len([r for r in proj.store.rounds() if r.status == "done"]) >= 2
        ann = [iid for iid, cur in proj.store.current_labels().items() if cur.author == "ann"]
        assert sorted(ann) == sorted(labeled[:2] + [labeled[-1], on_screen])
