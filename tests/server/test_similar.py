"""GET /api/images/{id}/similar on the real demo project (700 bundled images)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from activelab.loop.ingest import import_images
from activelab.loop.project import open_project

from .conftest import wait_for


def test_similar_images_route_finds_the_exact_copy_first(client_factory, project_dir: Path, tmp_path: Path) -> None:
    with open_project(project_dir) as proj:
        original = proj.store.images("pool")[0]
        copy = tmp_path / "copy.png"
        info = PngInfo()
        info.add_text("comment", "re-exported copy")
        Image.open(original.path).save(copy, pnginfo=info)
        import_images(proj.store, pd.DataFrame({"filepath": [str(copy)]}))
        copy_id = proj.store.find_image(proj.store.images()[-1].sha256).id
    client = client_factory()
    first = client.get(f"/api/images/{original.id}/similar", params={"k": 5})
    assert first.status_code == 200 and first.json()["items"] == []  # never built inside the request
    assert first.json()["index"] == {"status": "building"}
    client.app.state.service.similar_images.wait()
    res = client.get(f"/api/images/{original.id}/similar", params={"k": 5})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["image_id"] == original.id and body["index"] == {"status": "ready", "kind": "flat", "size": 701}
    items = body["items"]
    assert len(items) == 5 and items[0]["image_id"] == copy_id
    assert abs(items[0]["similarity"] - 1.0) < 1e-4
    sims = [i["similarity"] for i in items]
    assert sims == sorted(sims, reverse=True) and original.id not in [i["image_id"] for i in items]
    assert items[0]["url"] == f"/api/images/{copy_id}/file" and items[0]["origin"] == "similar"
    labeled = [i for i in items if i["label"] is not None]  # current labels come along (the demo has some)
    assert all(isinstance(i["label"], str) for i in labeled)
    # the index is kept on disk: a second app loads it at start instead of rebuilding it
    second = client_factory(similar_index=True)
    second.app.state.service.similar_images.wait()
    again = second.get(f"/api/images/{copy_id}/similar", params={"k": 1}).json()
    assert again["items"][0]["image_id"] == original.id
    assert second.app.state.service.similar_images.info.seconds == client.app.state.service.similar_images.info.seconds


def test_the_index_is_built_in_the_background_from_app_start(client_factory, monkeypatch) -> None:
    """A slow build (held by a gate) never holds up a request: they answer "building" meanwhile."""
    import threading

    from activelab.loop.similar import SimilarImages

    gate, builds = threading.Event(), []
    real_build = SimilarImages._build

    def slow_build(self, fingerprint, progress):  # type: ignore[no-untyped-def]
        builds.append(fingerprint)
        assert gate.wait(60)
        self._check_stop()  # the server shut down while this build waited
        return real_build(self, fingerprint, progress)

    monkeypatch.setattr(SimilarImages, "_build", slow_build)
    client = client_factory(similar_index=True)
    index = client.app.state.service.similar_images
    wait_for(lambda: builds, timeout=30)  # started by the app, before any request
    for _ in range(2):
        res = client.get("/api/images/1/similar", params={"k": 3})
        assert res.status_code == 200 and res.json()["items"] == [] and res.json()["index"]["status"] == "building"
    assert len(builds) == 1, "one build at a time"
    index.stop(timeout=0)  # shutdown: the build ends at its next step, none starts again
    gate.set()
    index.wait(30)
    assert not index._thread.is_alive() and index.info is None
    assert client.get("/api/images/1/similar").json()["index"] == {"status": "building"} and len(builds) == 1


def test_similar_images_route_validates(client_factory) -> None:
    client = client_factory()
    assert client.get("/api/images/999999/similar").status_code == 404
    assert client.get("/api/images/1/similar", params={"k": 0}).status_code == 422
    assert client.get("/api/images/1/similar", params={"k": 101}).status_code == 422


def test_similar_panel_in_the_browser_lets_a_labeler_label_a_look_alike(project_dir: Path) -> None:
    """Press m on the labeling page: the look-alikes appear; clicking one puts it on screen to label."""

    from activelab.server import ServerSettings

    from .browser import ARGS, CHROMIUM, require_chromium, wait_until
    from .conftest import LiveServer

    require_chromium()
    from playwright.sync_api import sync_playwright

    with LiveServer(ServerSettings(project=project_dir, trainer=False)) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{server.url}/?user=ann")
        page.wait_for_selector("#label-app[data-ready='1']")
        wait_until(page, "document.getElementById('image').naturalWidth > 0")
        page.keyboard.press("m")
        page.wait_for_selector("#similar-grid .cell", timeout=60_000)
        cells = page.query_selector_all("#similar-grid .cell")
        assert len(cells) == 12 and "%" in page.text_content("#similar-grid .cell .cell-hint")
        target = cells[0].get_attribute("data-image-id")
        cells[0].click()
        wait_until(page, f"document.getElementById('image').dataset.imageId === '{target}'")
        page.keyboard.press("1")  # label the look-alike with the first class
        wait_until(page, f"document.getElementById('image').dataset.imageId !== '{target}'")
        browser.close()
        assert not errors, errors
    with open_project(project_dir) as proj:
        history = proj.store.label_history(int(target))
        assert history[-1].author == "ann" and history[-1].label == proj.store.class_names()[0]
