"""Markup in class names, labeler names, the project name and the trainer's last error never runs
as script on any page (label, review, similar panel, dashboard) and is shown literally, under the
strict Content-Security-Policy (no violation on any page). Also the page side of class
confirmation and retirement, the similar-index "building" state and advisory leases (`held_by`).

One Chromium and one server for the module; the trainer is off, so nothing here waits for a round.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from activelab.loop.project import open_project
from activelab.loop.settings import load_settings, save_settings
from activelab.loop.trainer import STATE_KEY
from activelab.server import ServerSettings

from .browser import CHROMIUM, csp_violations, wait_until, with_csp
from .conftest import LiveServer

if not CHROMIUM.exists():
    pytestmark = pytest.mark.skip(reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")

PAYLOADS = ["<img src=x onerror=window.__xss=1>", "<script>window.__xss=1</script>", '"><svg onload=window.__xss=1>']
LABELERS = [f"ann{p}" for p in PAYLOADS]
PROJECT_NAME = "<img src=y onerror=window.__xss=2>"
LAST_ERROR = f"ValueError: class {PAYLOADS[0]} has too few labels"
STATIC = Path(__file__).parents[2] / "src" / "activelab" / "server"
PAGE_USER = "ann"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, demo_template: Path) -> dict[str, Any]:
    """A demo project with markup everywhere the pages show server text."""
    root = tmp_path_factory.mktemp("xss") / "project"
    shutil.copytree(demo_template, root)
    settings = load_settings(root / "activelab.yaml")
    settings.name = PROJECT_NAME
    save_settings(settings, root / "activelab.yaml")
    with open_project(root) as proj:
        store = proj.store
        store.add_classes(PAYLOADS)
        labeled = store.current_labels()
        unlabeled = [im.id for im in store.images("pool") if im.id not in labeled]
        flagged = unlabeled[0]
        store.submit_label(flagged, PAYLOADS[0], author=LABELERS[0], note=PAYLOADS[2])
        outcome = store.submit_label(flagged, PAYLOADS[1], author=LABELERS[1])
        assert outcome.flagged
        store.set_service_state(STATE_KEY, {"last_error": LAST_ERROR})
    return {"root": root, "flagged": flagged, "far": unlabeled[-1], "other": unlabeled[-2]}


@pytest.fixture(scope="module")
def server(project: dict[str, Any]) -> Iterator[LiveServer]:
    with LiveServer(ServerSettings(project=project["root"], trainer=False)) as live:
        yield live


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page under the CSP; afterwards: no script ran, no CSP violation, no page error."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    context.route("**/*", with_csp)
    pg = context.new_page()
    console: list[str] = []
    errors: list[str] = []
    pg.on("console", lambda m: console.append(m.text))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.add_init_script(
        "window.__csp = [];"
        "document.addEventListener('securitypolicyviolation', (e) => window.__csp.push(e.violatedDirective));"
    )
    yield pg
    pg.wait_for_timeout(300)  # an injected <img onerror> would fire after its failed load
    assert pg.evaluate("window.__xss") is None
    assert pg.evaluate("window.__csp") == []
    assert not csp_violations(console), console
    assert not errors, errors
    context.close()


def _text(page: Any, selector: str) -> str:
    return page.eval_on_selector(selector, "e => e.textContent")


def _similar_route(items: list[dict[str, Any]], calls: list[str]) -> Any:
    """Answer /similar like the API: the index is being built on the first call, ready on the next."""

    def handle(route: Any) -> None:
        calls.append(route.request.url)
        image_id = int(re.search(r"/images/(\d+)/similar", route.request.url).group(1))
        building = len(calls) == 1
        body = {
            "image_id": image_id,
            "k": 12,
            "items": [] if building else items,
            "index": {"status": "building"} if building else {"status": "ready", "kind": "flat", "size": 520},
        }
        route.fulfill(status=200, content_type="application/json", body=json.dumps(body))

    return handle


def test_static_files_build_no_html() -> None:
    """No script may parse text as HTML, and templates hold nothing the CSP refuses."""
    for js in (STATIC / "static").glob("*.js"):
        code = js.read_text()
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert sink not in code, f"{js.name} uses {sink}"
    for html in (STATIC / "templates").glob("*.html"):
        text = html.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), f"{html.name} has an inline <script>"
        assert not re.search(r"\s(on\w+|style)\s*=", text, re.IGNORECASE), f"{html.name} has an inline handler or style"


def test_label_page_shows_markup_as_text(page: Any, server: LiveServer, project: dict[str, Any]) -> None:
    page.goto(f"{server.url}/?user={PAGE_USER}")
    page.wait_for_selector("#label-app[data-ready='1']")
    assert _text(page, "#project-name").startswith(PROJECT_NAME)
    assert PAYLOADS[0] in _text(page, "#trainer-text")
    buttons = page.query_selector_all("#classes .class")
    assert [b.get_attribute("data-label") for b in buttons[-3:]] == PAYLOADS
    assert [b.text_content() for b in buttons[-3:]] == PAYLOADS  # classes 11-13: no key
    assert page.query_selector("#classes img, #classes script, #classes svg") is None

    # similar panel: "building" first, then look-alikes labeled and held by markup names
    far, other = project["far"], project["other"]
    items = [
        {
            "image_id": far,
            "url": f"/api/images/{far}/file",
            "width": 28,
            "height": 28,
            "split": "pool",
            "origin": "similar",
            "similarity": 0.91,
            "label": PAYLOADS[2],
            "held_by": LABELERS[2],
        },
        {
            "image_id": other,
            "url": "javascript:window.__xss=3",
            "width": 28,
            "height": 28,
            "split": "pool",
            "origin": "similar",
            "similarity": 0.5,
            "label": None,
            "held_by": None,
        },
        {
            "image_id": other + 100_000,
            "url": "//evil.example/x.png",
            "width": 28,
            "height": 28,
            "split": "pool",
            "origin": "similar",
            "similarity": 0.4,
            "label": None,
            "held_by": None,
        },
    ]
    calls: list[str] = []
    page.route("**/api/images/*/similar*", _similar_route(items, calls))
    page.keyboard.press("m")
    wait_until(page, "document.getElementById('similar-title').textContent === 'Building the similarity index…'")
    page.wait_for_selector("#similar-grid .cell", timeout=10_000)
    assert len(calls) == 2
    assert PAYLOADS[2] in _text(page, f"#similar-grid .cell[data-image-id='{far}'] .cell-hint")
    assert page.get_attribute(f"#similar-grid .cell[data-image-id='{other}'] img", "src") is None
    assert page.get_attribute(f"#similar-grid .cell[data-image-id='{other + 100_000}'] img", "src") is None

    # an image another labeler holds can still be labeled here, and the page says who holds it
    assert page.is_hidden("#held-by")
    page.click(f"#similar-grid .cell[data-image-id='{far}']")
    wait_until(page, f"document.getElementById('image').dataset.imageId === '{far}'")
    assert _text(page, "#held-by") == f"also open for {LABELERS[2]}"
    assert page.is_visible("#held-by")
    buttons[-2].click()
    wait_until(page, f"document.getElementById('image').dataset.imageId !== '{far}'")
    assert PAYLOADS[1] in _text(page, "#toast")
    assert page.is_hidden("#held-by")
    with open_project(project["root"]) as proj:
        (event,) = proj.store.label_history(far)
    assert (event.label, event.author) == (PAYLOADS[1], PAGE_USER)


def test_labeler_name_with_markup_stays_text(page: Any, server: LiveServer, project: dict[str, Any]) -> None:
    page.goto(f"{server.url}/?{urlencode({'user': LABELERS[0]})}")
    page.wait_for_selector("#label-app[data-ready='1']")
    assert page.input_value("#user") == LABELERS[0]
    image_id = int(page.get_attribute("#image", "data-image-id"))
    page.keyboard.press("1")
    wait_until(page, f"document.getElementById('image').dataset.imageId !== '{image_id}'")
    with open_project(project["root"]) as proj:
        (event,) = proj.store.label_history(image_id)
    assert event.author == LABELERS[0]


def test_review_page_shows_markup_as_text(page: Any, server: LiveServer, project: dict[str, Any]) -> None:
    page.goto(f"{server.url}/review?user={PAGE_USER}")
    page.wait_for_selector("#label-app[data-ready='1']")
    assert page.get_attribute("#image", "data-image-id") == str(project["flagged"])
    banner = _text(page, "#review-banner")
    assert f"{LABELERS[0]} said {PAYLOADS[0]}" in banner and f"{LABELERS[1]} said {PAYLOADS[1]}" in banner
    history = [li.text_content() for li in page.query_selector_all("#history li")]
    assert any(f"{PAYLOADS[0]} by {LABELERS[0]} (human) · {PAYLOADS[2]}" in h for h in history), history
    assert any(f"{PAYLOADS[1]} by {LABELERS[1]} (human)" in h for h in history), history
    assert page.query_selector("#history img, #history script, #history svg, #review-banner *") is None


def test_dashboard_shows_markup_as_text(page: Any, server: LiveServer) -> None:
    page.goto(f"{server.url}/dashboard")
    page.wait_for_selector("#dashboard[data-ready='1']")
    assert f"last error: {LAST_ERROR}" in _text(page, "#cards")
    assert page.query_selector("#cards img, #cards script, #cards svg") is None
    assert PAYLOADS[1] in _text(page, "#chart-classes svg")
    assert page.query_selector("#chart-classes svg img, #chart-classes svg script, #chart-classes svg svg") is None
    wait_until(page, "document.getElementById('trainer-text').textContent.includes('last error')")
    assert LAST_ERROR in _text(page, "#trainer-text")


def test_adding_a_class_is_confirmed_with_the_keyboard(page: Any, server: LiveServer, project: dict[str, Any]) -> None:
    name = "<b>new</b> class"
    page.goto(f"{server.url}/?user={PAGE_USER}")
    page.wait_for_selector("#label-app[data-ready='1']")
    page.keyboard.press("c")
    page.keyboard.type(name)
    page.keyboard.press("Enter")
    assert page.is_visible("#class-confirm")
    assert _text(page, "#class-confirm-text") == f"Add the class “{name}” for everyone on this project?"
    page.keyboard.press("1")  # keys do nothing while the confirmation is open
    page.keyboard.press("Escape")
    assert page.is_hidden("#class-confirm")
    with open_project(project["root"]) as proj:
        assert name not in proj.store.class_names()
        assert proj.store.label_history(int(page.get_attribute("#image", "data-image-id"))) == []
    page.keyboard.press("Enter")  # the name field has the focus again
    page.keyboard.press("Enter")  # confirm
    page.wait_for_selector(f"#classes .class[data-label='{name}']")
    assert page.is_hidden("#class-confirm")
    with open_project(project["root"]) as proj:
        assert proj.store.class_names()[-1] == name


def test_no_class_adding_when_switched_off_and_retired_classes_have_no_key(page: Any, server: LiveServer) -> None:
    def project_info(route: Any) -> None:
        info = route.fetch().json()
        info.update(allow_new_classes=False, retired_classes=[PAYLOADS[0]])
        route.fulfill(status=200, content_type="application/json", body=json.dumps(info))

    page.route("**/api/project", project_info)
    page.goto(f"{server.url}/?user={PAGE_USER}")
    page.wait_for_selector("#label-app[data-ready='1']")
    labels = [b.get_attribute("data-label") for b in page.query_selector_all("#classes .class")]
    assert PAYLOADS[0] not in labels and PAYLOADS[1] in labels
    assert page.is_hidden("#class-add") and page.is_hidden("#key-new-class")
    page.keyboard.press("c")
    assert page.evaluate("document.activeElement.id") != "new-class"
