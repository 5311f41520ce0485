"""The labeling page of a segmentation project in real Chromium, under the CSP: a stroke of the brush, a superpixel
filled with a click, the model's mask accepted in the superpixel under the pointer, an edit undone, Enter submits;
then, on an image labeled in part before that a region round asks for again, a polygon closed by a double-click
paints only the asked pixels and the answer keeps the earlier labels. The stored events' masks hold those classes
at those pixels, 255 where nobody painted."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from activelab.loop.project import open_project
from activelab.server import ServerSettings
from activelab.tasks.masks import IGNORE
from activelab.tasks.regions import region_map

from .browser import csp_violations, wait_until, with_csp
from .conftest import MASK_SIZE, LiveServer

#: the page shows a 64 x 48 image at 8x: 512 x 384 screen pixels
SCALE = 8
WIDTH, HEIGHT = MASK_SIZE
#: where to keep the page's screenshots (ACTIVELAB_SCREENSHOTS=DIR), none by default
SCREENSHOTS = os.environ.get("ACTIVELAB_SCREENSHOTS")


def _shot(page, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"masks-{name}.png"), full_page=True)


def _stored_mask(root: Path, image_id: int) -> np.ndarray:
    """The mask of the image's latest label event, checked against the event's payload."""
    with open_project(root) as proj:
        payload = proj.store.label_history(image_id)[-1].payload
        assert (payload["width"], payload["height"]) == MASK_SIZE
        mask = proj.task().masks.get(payload["mask"])
    assert payload["labeled"] == int((mask != IGNORE).sum())
    return mask


def _showing(page, image_id: int) -> None:
    wait_until(page, f"document.getElementById('image').dataset.imageId === '{image_id}'")
    wait_until(page, "document.getElementById('mask-layer').dataset.loaded === '1'")


def test_brush_fill_accept_undo_polygon_and_submit(browser, segmentation_dir: Path) -> None:
    model = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    model[: HEIGHT // 2, WIDTH // 2 :] = 1  # the model sees a bag in the top-right quadrant
    asked = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    asked[HEIGHT // 2 :, :] = 1  # image 2: the round asks for its bottom half only
    earlier = np.full((HEIGHT, WIDTH), IGNORE, dtype=np.uint8)
    earlier[: HEIGHT // 2, :] = 1  # image 2's top half was labeled before (a bag)
    with open_project(segmentation_dir) as proj:
        task = proj.task()
        masks = task.masks
        labeled = task.validate(earlier, proj.store.class_names(), size=MASK_SIZE)
        proj.store.submit_annotation(2, labeled, author="ann")
        hint = {"mask": masks.put(model), "width": WIDTH, "height": HEIGHT, "labeled": WIDTH * HEIGHT}
        number = proj.store.start_round(strategy="region_entropy", model="unet_small", config={}, n_labeled=0)
        proj.store.finish_round(
            number,
            metrics={},
            selection=[(1, 0.9), (2, 0.8)],
            predictions=[(1, hint, 0.8)],
            asked={2: masks.put(asked)},
        )
        path = proj.store.get_image(1).path
    regions = region_map(path, "slic", 16)
    problems: list[str] = []
    with LiveServer(ServerSettings(project=segmentation_dir, trainer=False, similar_index=False)) as server:
        context = browser.new_context(viewport={"width": 1100, "height": 1000})
        context.route("**/*", with_csp)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.extend(csp_violations([m.text])))
        trainer = {"state": "idle", "round": None, "paused": False, "requested": False, "running": False}
        trainer |= {"retrain_every": 20, "last_round": 1, "last_error": None, "updated_at": "2026-12-08T00:00:00"}
        trainer["last_metrics"] = {"round": 1, "miou": 0.4234, "n_eval": 4, "n_labeled": 2, "asked_pixels": 1536}
        page.route("**/api/trainer", lambda route: route.fulfill(json=trainer))
        page.goto(server.url + "/?user=ann")
        page.wait_for_selector("#label-app[data-ready='1']")
        _showing(page, 1)
        assert (
            page.is_visible("#mask-actions") and page.is_visible("#keys-masks") and not page.is_visible("#keys-single")
        )
        assert [k.text_content() for k in page.query_selector_all("#classes kbd")] == ["0", "1", "2"]
        assert (
            page.text_content("#hint") == "model: mask (80%, round 1) · a: accept it under the pointer, A: everywhere"
        )
        assert page.text_content("#trainer-text") == (
            "trainer: idle · last round 1: eval mIoU 42.3% on 4, 2 labels · asks for 1,536 px · retrains every 20 labels"
        )
        layer = page.locator("#mask-layer").bounding_box()
        assert layer is not None and (layer["width"], layer["height"]) == (WIDTH * SCALE, HEIGHT * SCALE)

        def at(x: float, y: float) -> tuple[float, float]:
            """Screen coordinates of a point given in image pixels."""
            return layer["x"] + x * SCALE, layer["y"] + y * SCALE

        def status() -> str:
            return page.text_content("#mask-status") or ""

        # a brush stroke of the bag (1), 2 px wide, along row 2 from x 2.5 to 9.5
        page.keyboard.press("1")
        for _ in range(3):
            page.keyboard.press("-")  # 6 -> 4 -> 3 -> 2 px
        assert status().startswith("brush 2 px · bag · 0 px labeled")
        page.mouse.move(*at(2.5, 2.5))
        page.mouse.down()
        page.mouse.move(*at(9.5, 2.5), steps=5)
        page.mouse.up()
        # a click fills the superpixel under it with the shirt (2)
        page.keyboard.press("f")
        page.keyboard.press("2")
        page.mouse.click(*at(5.5, 40.5))
        # the model's mask, accepted in the superpixel under the pointer (top-right)
        page.mouse.move(*at(52.5, 4.5))
        page.keyboard.press("a")
        before = status()
        page.mouse.click(*at(52.5, 40.5))  # another fill (shirt), undone with u
        assert status() != before
        page.keyboard.press("u")
        assert status() == before
        _shot(page, "painted")
        page.keyboard.press("Enter")
        _showing(page, 2)

        mask = _stored_mask(segmentation_dir, 1)
        bag = mask == 1
        assert bag[2, 3:9].all()  # the stroke's core
        rows, cols = np.nonzero(bag & (regions != regions[4, 52]))
        assert rows.min() >= 1 and rows.max() <= 3 and cols.min() >= 1 and cols.max() <= 10  # and no further
        shirt = regions == regions[40, 5]
        assert (mask[shirt] == 2).all() and (mask == 2).sum() == shirt.sum()
        accepted = regions == regions[4, 52]
        np.testing.assert_array_equal(mask[accepted], model[accepted])
        painted = bag | shirt | accepted
        assert (mask[~painted] == IGNORE).all()

        # image 2: only its bottom half was asked for, its top half labeled before; a polygon over the whole image
        # paints the bottom half only, the answer keeps the top half
        assert status().endswith(f"{WIDTH * HEIGHT // 2:,} px asked (only they take paint)")
        page.keyboard.press("p")
        page.keyboard.press("0")
        for x, y in [(0.2, 0.2), (WIDTH - 0.2, 0.2), (WIDTH - 0.2, HEIGHT - 0.2)]:
            page.mouse.click(*at(x, y))
        page.mouse.dblclick(*at(0.2, HEIGHT - 0.2))  # the last point, and the double-click closes the polygon
        assert status().startswith(f"polygon · background · {WIDTH * HEIGHT:,} px labeled")
        _shot(page, "asked")
        page.keyboard.press("A")  # no model mask for this image: said, nothing changes
        wait_until(page, "document.getElementById('toast').textContent === 'no model mask for this image yet'")
        page.keyboard.press("Enter")
        wait_until(page, "document.getElementById('toast').textContent.startsWith('mask, 3,072 px labeled')")
        context.close()
    assert not problems, problems
    expected = earlier.copy()
    expected[HEIGHT // 2 :, :] = 0
    np.testing.assert_array_equal(_stored_mask(segmentation_dir, 2), expected)
