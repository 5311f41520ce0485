"""The labeling page of a detection project in real Chromium, under the CSP: boxes drawn with the mouse, classed
with number keys, nudged with an arrow key, a proposal accepted, Enter submits; the store records each box with
its origin, in image pixels whatever the scale the image was shown at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activelab.loop.project import open_project
from activelab.server import ServerSettings

from .browser import csp_violations, wait_until, with_csp
from .conftest import SCENE_SIZE, LiveServer, record_round

#: the page shows a 64 x 48 image at 8x: 512 x 384 screen pixels
SCALE = 8


def _history(root: Path, image_id: int) -> list[Any]:
    with open_project(root) as proj:
        return [e.payload for e in proj.store.label_history(image_id)]


def _boxes(page) -> list[tuple[str | None, str | None]]:
    return [
        (g.get_attribute("data-class"), g.get_attribute("data-origin")) for g in page.query_selector_all("#boxes g.box")
    ]


def _showing(page, image_id: int) -> None:
    wait_until(page, f"document.getElementById('image').dataset.imageId === '{image_id}'")


def test_draw_class_nudge_accept_and_submit_boxes(browser, detection_dir: Path) -> None:
    queue = record_round(detection_dir, 3)
    proposal = {"class": "shoe", "x": 40.0, "y": 8.0, "w": 16.0, "h": 20.0, "score": 0.9}
    faint = {"class": "bag", "x": 1.0, "y": 30.0, "w": 10.0, "h": 10.0, "score": 0.3}  # under the 0.5 threshold
    with open_project(detection_dir) as proj:
        proj.store.save_predictions(
            1, [(queue[0], [proposal, faint], 0.6), (queue[1], [proposal], 0.9), (queue[2], [proposal, faint], 0.6)]
        )
    problems: list[str] = []
    with LiveServer(ServerSettings(project=detection_dir, trainer=False, similar_index=False)) as server:
        context = browser.new_context(viewport={"width": 1100, "height": 1000})
        context.route("**/*", with_csp)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.extend(csp_violations([m.text])))
        page.goto(server.url + "/?user=ann")
        page.wait_for_selector("#label-app[data-ready='1']")
        _showing(page, queue[0])
        assert (
            page.is_visible("#box-actions") and page.is_visible("#keys-boxes") and not page.is_visible("#keys-single")
        )
        assert _boxes(page) == [("shoe", "unaccepted")]  # the faint box is not offered
        assert page.text_content("#hint") == "model: 2 boxes, 1 offered (60%, round 1)"
        wait_until(page, "document.getElementById('image').complete")
        layer = page.locator("#boxes").bounding_box()
        assert layer is not None and (layer["width"], layer["height"]) == (SCENE_SIZE[0] * SCALE, SCENE_SIZE[1] * SCALE)

        def drag(x0: float, y0: float, x1: float, y1: float) -> None:
            """Drag between two points given in image pixels."""
            page.mouse.move(layer["x"] + x0 * SCALE, layer["y"] + y0 * SCALE)
            page.mouse.down()
            page.mouse.move(layer["x"] + x1 * SCALE, layer["y"] + y1 * SCALE, steps=4)
            page.mouse.up()

        drag(2, 3, 11, 9)  # a new box takes the current class (the first one): then 2 makes it a shirt
        page.keyboard.press("2")
        drag(11, 9, 12, 10)  # its bottom-right corner handle, dragged: the top-left corner stays
        drag(30, 40, 20, 20)  # drawn from its bottom-right corner; 3 makes it a shoe
        page.keyboard.press("3")
        page.keyboard.press("ArrowLeft")  # nudged 1 image pixel left
        page.keyboard.press("Shift+ArrowUp")  # and 10 up
        assert _boxes(page) == [("shoe", "unaccepted"), ("shirt", "drawn"), ("shoe", "drawn")]
        page.keyboard.press("Tab")  # from the last box round to the proposal
        page.keyboard.press("a")
        assert _boxes(page) == [("shoe", "proposal"), ("shirt", "drawn"), ("shoe", "drawn")]
        assert page.text_content("#box-status").startswith("3 boxes · 0 proposals open · selected: shoe")
        page.keyboard.press("Enter")
        _showing(page, queue[1])

        (answer,) = _history(detection_dir, queue[0])
        assert [(b["class"], b["origin"]) for b in answer] == [
            ("shoe", "proposal"),
            ("shirt", "drawn"),
            ("shoe", "drawn"),
        ]
        assert answer[0] == {"class": "shoe", "x": 40.0, "y": 8.0, "w": 16.0, "h": 20.0, "origin": "proposal"}
        # one screen pixel is 1/8 image pixel: the boxes are where they were drawn, to that
        assert [answer[1][k] for k in "xywh"] == pytest.approx([2, 3, 10, 7], abs=1 / SCALE)
        assert [answer[2][k] for k in "xywh"] == pytest.approx([19, 10, 10, 20], abs=1 / SCALE)

        # Enter with no box sends nothing; the open proposal is no box; x records "nothing here"
        page.keyboard.press("Enter")
        wait_until(page, "document.getElementById('toast').textContent.startsWith('no box yet')")
        assert _history(detection_dir, queue[1]) == []
        drag(5, 5, 15, 15)  # a new box of the class set last (shoe); a proposal dragged is accepted as edited
        page.mouse.move(layer["x"] + 45 * SCALE, layer["y"] + 12 * SCALE)
        page.mouse.down()
        page.mouse.move(layer["x"] + 47 * SCALE, layer["y"] + 12 * SCALE, steps=2)
        page.mouse.up()
        assert _boxes(page) == [("shoe", "edited"), ("shoe", "drawn")]
        page.keyboard.press("x")  # refused while boxes are drawn
        wait_until(page, "document.getElementById('toast').textContent.startsWith('2 boxes drawn')")
        for _ in range(2):
            page.keyboard.press("Tab")
            page.keyboard.press("Delete")
        assert _boxes(page) == []
        page.keyboard.press("x")
        _showing(page, queue[2])
        assert _history(detection_dir, queue[1]) == [[]]

        page.keyboard.press("g")  # the grid: each image's proposals over its thumbnail, dashed
        page.wait_for_selector("#grid .cell")
        overlays = page.query_selector_all("#grid .cell .thumb-boxes")
        assert [o.evaluate("(svg) => svg.closest('.cell').dataset.imageId") for o in overlays] == [str(queue[2])]
        assert overlays[0].get_attribute("viewBox") == "0 0 64 48"
        assert [r.get_attribute("class") for r in overlays[0].query_selector_all("rect")] == ["box c2 proposal"]
        context.close()
    assert not problems, problems


def test_review_starts_from_the_current_boxes(browser, detection_dir: Path) -> None:
    ann = [{"class": "bag", "x": 4.0, "y": 4.0, "w": 20.0, "h": 10.0, "origin": "drawn"}]
    bob = [*ann, {"class": "shirt", "x": 30.0, "y": 20.0, "w": 10.0, "h": 10.0, "origin": "proposal"}]
    with open_project(detection_dir) as proj:
        proj.store.submit_annotation(1, ann, author="ann")
        assert proj.store.submit_annotation(1, bob, author="bob").flagged  # they disagree: flagged for review
    problems: list[str] = []
    with LiveServer(ServerSettings(project=detection_dir, trainer=False, similar_index=False)) as server:
        context = browser.new_context(viewport={"width": 1100, "height": 1000})
        context.route("**/*", with_csp)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.extend(csp_violations([m.text])))
        page.goto(server.url + "/review?user=rev")
        page.wait_for_selector("#label-app[data-ready='1']")
        _showing(page, 1)
        assert page.text_content("#review-banner") == (
            "Labelers disagree: ann said 1 box; bob said 2 boxes. Correct the boxes and press Enter."
        )
        assert _boxes(page) == [("bag", "drawn"), ("shirt", "proposal")]  # the current answer, origins kept

        # the similar-images panel: a look-alike's current boxes over its thumbnail, solid
        look_alike = {"image_id": 2, "url": "/api/images/2/file", "width": 64, "height": 48, "split": "pool"}
        look_alike |= {"origin": "similar", "similarity": 0.9, "boxes": [bob[1]], "held_by": None}
        answer = {
            "image_id": 1,
            "k": 12,
            "items": [look_alike],
            "index": {"status": "ready", "kind": "flat", "size": 6},
        }
        page.route("**/api/images/1/similar*", lambda route: route.fulfill(json=answer))
        page.keyboard.press("m")
        page.wait_for_selector("#similar-grid .cell")
        assert page.text_content("#similar-grid .cell .cell-hint") == "90% · 1 box"
        rects = page.query_selector_all("#similar-grid .cell .thumb-boxes rect")
        assert [r.get_attribute("class") for r in rects] == ["box c1"]
        assert [rects[0].get_attribute(k) for k in ("x", "y", "width", "height")] == ["30", "20", "10", "10"]
        page.click("#similar-close")
        page.keyboard.press("Shift+Tab")  # the last box: bob's accepted proposal, deleted
        page.keyboard.press("Delete")
        page.keyboard.press("Enter")
        wait_until(page, "document.getElementById('toast').textContent === '1 box'")
        context.close()
    assert not problems, problems
    with open_project(detection_dir) as proj:
        last = proj.store.label_history(1)[-1]
        assert (last.payload, last.author, last.source) == (ann, "rev", "review")
        assert proj.store.n_review_flags() == 0
