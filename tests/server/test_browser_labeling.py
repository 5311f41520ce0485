"""The labeling page in real Chromium: the suggested class (highlight, Enter, banner and hint agree), the
first visit without a labeler name, and queue ranks as they are now. No training: rounds are recorded."""

from __future__ import annotations

from pathlib import Path

import pytest

from activelab.loop.project import open_project
from activelab.server import ServerSettings

from .browser import csp_violations, wait_until, with_csp
from .conftest import LiveServer, record_round, write_ranking


@pytest.fixture
def open_page(browser, project_dir: Path):
    """Serve the project (no trainer) and open a page of it in a fresh browser context, under the CSP."""
    problems: list[str] = []
    with LiveServer(ServerSettings(project=project_dir, trainer=False, similar_index=False)) as server:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.route("**/*", with_csp)

        def open_(path: str):
            page = context.new_page()
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("console", lambda m: problems.extend(csp_violations([m.text])))
            page.goto(server.url + path)
            page.wait_for_selector("#label-app[data-ready='1']")
            return page

        yield open_
        context.close()
    assert not problems, problems


def _history(project_dir: Path, image_id: int) -> list[tuple[str | None, str, str]]:
    with open_project(project_dir) as proj:
        return [(e.label, e.author, e.source) for e in proj.store.label_history(image_id)]


def _suggested_buttons(page) -> list[str]:
    return [b.get_attribute("data-label") for b in page.query_selector_all("#classes .class.suggested")]


def test_hint_highlights_the_predicted_class_and_enter_accepts_it(open_page, project_dir: Path) -> None:
    q = record_round(project_dir, 5)
    with open_project(project_dir) as proj:
        proj.store.save_predictions(1, [(q[0], "sandal", 0.8), (q[1], "bag", 0.6)])
    page = open_page("/?user=ann")
    assert page.get_attribute("#image", "data-image-id") == str(q[0])
    assert page.text_content("#hint") == "model: sandal (80%, round 1)"
    assert page.text_content("#image-meta") == f"image {q[0]} · queue #1 of 5"
    assert _suggested_buttons(page) == ["sandal"]

    page.fill("#note", "strap")
    page.focus("#note")
    page.keyboard.press("Enter")  # in the note field Enter keeps the note, as before
    assert page.evaluate("document.activeElement.id") != "note" and page.input_value("#note") == "strap"
    assert _history(project_dir, q[0]) == []
    page.keyboard.press("Enter")
    wait_until(page, f"document.getElementById('image').dataset.imageId === '{q[1]}'")
    assert _history(project_dir, q[0]) == [("sandal", "ann", "human")]
    # the image that was second is first now, and the page says so
    wait_until(page, "document.getElementById('image-meta').textContent.endsWith('queue #1 of 4')")
    assert _suggested_buttons(page) == ["bag"]

    page.keyboard.press("h")  # hint hidden: nothing highlighted, Enter accepts nothing
    assert _suggested_buttons(page) == []
    page.keyboard.press("Enter")
    wait_until(page, "document.getElementById('toast').textContent.includes('show it first')")
    assert _history(project_dir, q[1]) == []


def test_first_visit_asks_for_a_name_and_keys_work_once_it_is_typed(open_page, project_dir: Path) -> None:
    page = open_page("/")
    assert page.evaluate("document.activeElement.id") == "user"
    assert page.is_visible("#need-user") and "Type your name" in page.text_content("#need-user")
    page.click("#stage")  # leave the field: a key then puts the cursor back and says why
    page.keyboard.press("1")
    assert page.evaluate("document.activeElement.id") == "user"
    assert page.input_value("#user") == ""
    wait_until(page, "document.getElementById('toast').textContent.includes('type your name first')")

    page.keyboard.type("ann")
    page.keyboard.press("Enter")
    page.keyboard.press("2")  # at once: the key waits for the first images
    wait_until(page, "document.getElementById('progress').textContent.startsWith('1 labeled')")
    assert page.is_hidden("#need-user")
    with open_project(project_dir) as proj:
        classes = proj.store.class_names()
        (ann,) = [(iid, cur.label) for iid, cur in proj.store.current_labels().items() if cur.author == "ann"]
    assert ann[1] == classes[1]


def test_review_banner_hint_and_highlight_name_the_same_class(open_page, project_dir: Path) -> None:
    with open_project(project_dir) as proj:
        current = proj.store.current_labels("pool")
    image_id = min(current)
    given = current[image_id].label
    suggested = "dress" if given != "dress" else "bag"
    write_ranking(
        project_dir,
        {
            "image_id": [image_id],
            "given_label": [given],
            "suggested_label": [suggested],
            "score": [0.02],
            "is_issue": [True],
            "p_suggested": [0.9],
        },
    )
    page = open_page("/review?user=rev")
    assert page.get_attribute("#image", "data-image-id") == str(image_id)
    assert f"the model suggests {suggested}" in page.text_content("#review-banner")
    assert page.text_content("#hint") == f"model: {suggested} (90%, out-of-fold, label-error ranking)"
    assert _suggested_buttons(page) == [suggested]
    assert page.text_content("#nav-flags") == "1"
    page.keyboard.press("Enter")
    wait_until(page, "document.getElementById('progress').textContent.startsWith('1 labeled')")
    assert _history(project_dir, image_id)[-1] == (suggested, "rev", "review")
