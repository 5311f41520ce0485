"""The labeling page of a multi-label project in real Chromium, under the CSP: number keys turn classes on
and off, Enter submits the set, x submits "none of these", Enter with nothing on records nothing."""

from __future__ import annotations

from pathlib import Path

from activelab.loop.project import open_project
from activelab.server import ServerSettings

from .browser import csp_violations, wait_until, with_csp
from .conftest import LiveServer, record_round


def _on(page) -> list[str]:
    return [b.get_attribute("data-label") for b in page.query_selector_all("#classes .class.on")]


def _shown(page) -> str | None:
    return page.get_attribute("#image", "data-image-id")


def _events(root: Path, image_id: int) -> list[tuple[list[str] | None, str, str]]:
    with open_project(root) as proj:
        return [(e.annotation, e.author, e.source) for e in proj.store.label_history(image_id)]


def test_keyboard_labels_several_classes_per_image(browser, multilabel_dir: Path) -> None:
    queue = record_round(multilabel_dir, 4)
    with open_project(multilabel_dir) as proj:
        proj.store.save_predictions(1, [(queue[0], ["bag", "shirt"], 0.75)])
    problems: list[str] = []
    with LiveServer(ServerSettings(project=multilabel_dir, trainer=False, similar_index=False)) as server:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.route("**/*", with_csp)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.extend(csp_violations([m.text])))
        page.goto(server.url + "/?user=ann")
        page.wait_for_selector("#label-app[data-ready='1']")
        assert (
            page.is_visible("#set-actions") and page.is_visible("#keys-multi") and not page.is_visible("#keys-single")
        )
        assert _shown(page) == str(queue[0])
        # the hint names the predicted set and outlines each predicted class; it turns none of them on
        assert page.text_content("#hint") == "model: bag, shirt (75%, round 1)"
        assert [b.get_attribute("data-label") for b in page.query_selector_all("#classes .class.suggested")] == [
            "bag",
            "shirt",
        ]
        assert _on(page) == []

        for key in ("1", "2", "3", "2"):  # bag, shirt, sandal on; shirt off again
            page.keyboard.press(key)
        assert _on(page) == ["bag", "sandal"]
        assert page.text_content("#chosen") == "on: bag, sandal"
        assert page.get_attribute("#classes .class[data-label='bag']", "aria-pressed") == "true"
        assert page.get_attribute("#classes .class[data-label='shirt']", "aria-pressed") == "false"
        page.keyboard.press("Enter")
        wait_until(page, f"document.getElementById('image').dataset.imageId === '{queue[1]}'")
        assert _on(page) == [] and page.text_content("#chosen") == "no class on"

        # Enter with no class on is not "none of these": nothing is sent, the image stays
        page.keyboard.press("Enter")
        wait_until(page, "document.getElementById('toast').textContent.startsWith('no class is on')")
        assert _shown(page) == str(queue[1]) and _events(multilabel_dir, queue[1]) == []
        page.keyboard.press("x")  # the explicit "none of these"
        wait_until(page, f"document.getElementById('image').dataset.imageId === '{queue[2]}'")

        page.keyboard.press("4")
        page.click("#classes .class[data-label='shirt']")  # a click toggles too
        page.keyboard.press("Enter")
        wait_until(page, f"document.getElementById('image').dataset.imageId === '{queue[3]}'")

        assert _events(multilabel_dir, queue[0]) == [(["bag", "sandal"], "ann", "human")]
        assert _events(multilabel_dir, queue[1]) == [([], "ann", "human")]
        assert _events(multilabel_dir, queue[2]) == [(["shirt", "sneaker"], "ann", "human")]

        page.keyboard.press("u")  # undo brings the last image back, its set withdrawn
        wait_until(page, f"document.getElementById('image').dataset.imageId === '{queue[2]}'")
        assert _events(multilabel_dir, queue[2])[-1][0] is None
        context.close()
    assert not problems, problems
