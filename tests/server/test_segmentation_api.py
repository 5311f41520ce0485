"""The REST API of a segmentation project: a mask answer (base64 PNG) checked against the image and the classes,
stored once under its content address, the event holding the canonical payload; mask PNGs served by key only;
an image's regions as runs; the model's mask and a round's asked pixels offered with each item."""

from __future__ import annotations

import base64
import hashlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage

from activelab.loop.project import open_project
from activelab.server import ServerSettings, create_app
from activelab.tasks.masks import IGNORE, encode_png, mask_key, read_mask
from activelab.tasks.regions import region_map

from .conftest import CLIENT_HEADERS, MASK_SIZE

WIDTH, HEIGHT = MASK_SIZE


@pytest.fixture
def client(segmentation_dir: Path) -> Iterator[TestClient]:
    """An app client on the segmentation project (no trainer, no similar-images index)."""
    app = create_app(ServerSettings(project=segmentation_dir, trainer=False, similar_index=False))
    with TestClient(app, base_url="http://127.0.0.1", headers=CLIENT_HEADERS) as c:
        yield c


def _painted() -> np.ndarray:
    """A partly labeled mask: a bag (1) in the top-left 8x6 block, a shirt (2) below it, background (0) in
    the right half's top row, the rest not labeled."""
    mask = np.full((HEIGHT, WIDTH), IGNORE, dtype=np.uint8)
    mask[0:6, 0:8] = 1
    mask[6:12, 0:8] = 2
    mask[0, WIDTH // 2 :] = 0
    return mask


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    PILImage.fromarray(array, mode=mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _submit(client, image_id: int, png: bytes | str):  # type: ignore[no-untyped-def]
    text = png if isinstance(png, str) else _b64(png)
    return client.post("/api/labels", json={"author": "ann", "image_id": image_id, "mask": {"png": text}})


def _events(root: Path, image_id: int) -> list[Any]:
    with open_project(root) as proj:
        return [e.payload for e in proj.store.label_history(image_id)]


def _mask_files(root: Path) -> list[Path]:
    return sorted((root / "masks").rglob("*.png")) if (root / "masks").exists() else []


def test_the_project_says_its_answers_are_masks(client: TestClient) -> None:
    info = client.get("/api/project").json()
    assert (info["task"], info["answer"], info["output"]) == ("segmentation", "mask", "masks")
    assert info["classes"] == ["background", "bag", "shirt"]
    assert info["regions"] == {"method": "slic", "size": 16}


def test_a_classification_project_has_no_masks(client_factory) -> None:
    client = client_factory()
    assert client.get("/api/project").json()["regions"] is None
    assert client.get("/api/images/1/regions").status_code == 404
    body = {"author": "ann", "image_id": 1, "mask": {"png": _b64(encode_png(_painted()))}}
    assert client.post("/api/labels", json=body).status_code == 422
    schema = client.get("/openapi.json").json()["components"]["schemas"]["LabelRequest"]
    assert schema["properties"]["mask"]["type"] == "null"


def test_a_mask_is_stored_once_under_its_content_address(client: TestClient, segmentation_dir: Path) -> None:
    mask = _painted()
    key = mask_key(mask)
    res = _submit(client, 1, encode_png(mask))
    assert res.status_code == 200, res.text
    canonical = {"mask": key, "width": WIDTH, "height": HEIGHT, "labeled": 8 * 12 + WIDTH // 2}
    assert _events(segmentation_dir, 1) == [canonical]
    assert res.json()["mask"] == {**canonical, "url": f"/api/masks/{key}"}

    (stored,) = _mask_files(segmentation_dir)
    assert stored == segmentation_dir / "masks" / key[:2] / f"{key}.png"
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == key
    served = client.get(f"/api/masks/{key}")
    assert served.status_code == 200 and served.headers["content-type"] == "image/png"
    assert served.content == stored.read_bytes()
    assert "immutable" in served.headers["cache-control"]
    np.testing.assert_array_equal(read_mask(served.content), mask)

    # the same classes painted in VOC colours (what the page's canvas sends): the same key, no second file
    rgb = np.asarray(PILImage.open(io.BytesIO(encode_png(mask))).convert("RGB"))
    again = _submit(client, 2, _png(rgb))
    assert again.status_code == 200, again.text
    assert _events(segmentation_dir, 2) == [canonical]
    assert _mask_files(segmentation_dir) == [stored]

    # a second answer on image 1, undone: the first mask is its label again, its file untouched
    other = mask.copy()
    other[12:, :] = 0
    assert _submit(client, 1, encode_png(other)).status_code == 200
    undone = client.post("/api/undo", json={"author": "ann"}).json()
    assert undone["item"]["image_id"] == 1 and undone["restored_mask"]["mask"] == key
    assert hashlib.sha256(stored.read_bytes()).hexdigest() == key
    detail = client.get("/api/images/1").json()
    assert detail["mask"]["mask"] == key  # the undo is a new event setting the first mask again
    assert [e["mask"]["mask"] for e in detail["history"]] == [key, mask_key(other), key]


def _wrong_size() -> bytes:
    return encode_png(np.zeros((HEIGHT, WIDTH - 1), dtype=np.uint8))


def _unknown_colour() -> bytes:
    rgb = np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8)
    rgb[:2, :3] = (1, 2, 3)
    return _png(rgb)


BAD_MASKS: list[tuple[bytes | str, str]] = [
    (_wrong_size(), f"the mask PNG is {WIDTH - 1}x{HEIGHT} px but the image is {WIDTH}x{HEIGHT} px"),
    (_unknown_colour(), "colour (1, 2, 3) and 0 other(s) (6 px) are not in the VOC palette"),
    (encode_png(_painted())[:60], "truncated or not a PNG"),
    (b"GIF89a not a png at all", "truncated or not a PNG"),
    ("not base64!", "not base64"),
    (encode_png(np.full((HEIGHT, WIDTH), 7, dtype=np.uint8)), f"mask values 7 ({WIDTH * HEIGHT} px) are not classes"),
    (encode_png(np.full((HEIGHT, WIDTH), IGNORE, dtype=np.uint8)), "labels no pixel"),
]


def test_a_bad_mask_is_refused_with_the_reason_and_nothing_stored(client: TestClient, segmentation_dir: Path) -> None:
    for png, message in BAD_MASKS:
        res = _submit(client, 1, png)
        assert res.status_code == 422, (message, res.text)
        assert message in res.json()["detail"]
        assert _events(segmentation_dir, 1) == []
        assert _mask_files(segmentation_dir) == []
    assert _submit(client, 1, encode_png(_painted())).status_code == 200  # the good one is kept
    assert len(_events(segmentation_dir, 1)) == len(_mask_files(segmentation_dir)) == 1


def test_other_answers_are_refused(client: TestClient, segmentation_dir: Path) -> None:
    body = {"author": "ann", "image_id": 1}
    assert client.post("/api/labels", json={**body, "label": "bag"}).status_code == 422
    both = client.post("/api/labels", json={**body, "boxes": [], "mask": {"png": "AAAA"}})
    assert both.status_code == 422 and "not both" in both.text
    extra = client.post("/api/labels", json={**body, "mask": {"png": "AAAA", "path": "/etc/passwd"}})
    assert extra.status_code == 422 and "Extra inputs are not permitted" in extra.text
    assert _events(segmentation_dir, 1) == []


BAD_KEYS = [
    ("0" * 64, 404),  # well formed, no such mask
    ("A" * 64, 422),  # upper case: not a key
    ("0" * 63, 422),
    ("%2E%2E", 422),
    ("..%2F..%2Factivelab.db", 404),  # %2F is a slash to the router: no route
    ("../../activelab.db", 404),  # no route: the path never reaches the mask store
]


def test_a_bad_mask_key_is_never_a_path(client: TestClient) -> None:
    for key, status in BAD_KEYS:
        res = client.get(f"/api/masks/{key}")
        assert res.status_code == status, (key, res.text)
        assert res.headers["content-type"].startswith("application/json") and "SQLite" not in res.text


def _unrun(runs: list[int], width: int, height: int) -> np.ndarray:
    pairs = np.asarray(runs).reshape(-1, 2)
    return np.repeat(pairs[:, 0], pairs[:, 1]).reshape(height, width)


def test_regions_are_the_tasks_region_map_as_runs(client: TestClient, segmentation_dir: Path) -> None:
    with open_project(segmentation_dir) as proj:
        path = proj.store.get_image(1).path
    patches = client.get("/api/images/1/regions?method=patch&size=8").json()
    assert (patches["width"], patches["height"], patches["n_regions"]) == (WIDTH, HEIGHT, 8 * 6)
    assert patches["runs"][:6] == [0, 8, 1, 8, 2, 8]  # the first row crosses the first four patches
    np.testing.assert_array_equal(_unrun(patches["runs"], WIDTH, HEIGHT), region_map(path, "patch", 8))
    slic = client.get("/api/images/1/regions").json()  # the task's defaults: SLIC, ~16x16 px each
    assert (slic["method"], slic["size"]) == ("slic", 16)
    np.testing.assert_array_equal(_unrun(slic["runs"], WIDTH, HEIGHT), region_map(path, "slic", 16))
    assert slic["n_regions"] == int(region_map(path, "slic", 16).max()) + 1
    assert client.get("/api/images/1/regions?size=1").status_code == 422
    assert client.get("/api/images/1/regions?method=grid").status_code == 422
    assert client.get("/api/images/99/regions").status_code == 404


def test_items_offer_the_models_mask_and_the_asked_pixels(client: TestClient, segmentation_dir: Path) -> None:
    predicted = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    predicted[:, 16:] = 2
    asked = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    asked[HEIGHT // 2 :, :] = 1
    earlier = np.full((HEIGHT, WIDTH), IGNORE, dtype=np.uint8)
    earlier[: HEIGHT // 2, :] = 1  # image 2's top half was labeled before the region round asks for the rest
    assert _submit(client, 2, encode_png(earlier)).status_code == 200
    with open_project(segmentation_dir) as proj:
        masks = proj.task().masks
        hint = {"mask": masks.put(predicted), "width": WIDTH, "height": HEIGHT, "labeled": WIDTH * HEIGHT}
        number = proj.store.start_round(strategy="region_entropy", model="unet_small", config={}, n_labeled=0)
        proj.store.finish_round(
            number,
            metrics={},
            selection=[(2, 0.9), (3, 0.5)],
            predictions=[(2, hint, 0.7)],
            asked={2: masks.put(asked)},
        )
    first, second = client.post("/api/next", json={"author": "ann", "n": 2}).json()["items"]
    assert (first["image_id"], second["image_id"]) == (2, 3)
    assert first["prediction"]["mask"] == {**hint, "url": f"/api/masks/{hint['mask']}"}
    assert (first["suggestion"]["confidence"], first["suggestion"]["round"]) == (0.7, 1)
    np.testing.assert_array_equal(read_mask(client.get(first["prediction"]["mask"]["url"]).content), predicted)
    assert first["asked"] == f"/api/masks/{mask_key(asked)}"
    assert first["mask"]["mask"] == mask_key(earlier)  # the page starts from it: the answer keeps it
    np.testing.assert_array_equal(read_mask(client.get(first["asked"]).content), asked)
    assert second["prediction"] is None and second["asked"] is None  # image 3: the whole image is asked
    assert second["mask"] is None
    with open_project(segmentation_dir) as proj:  # an image-level round selects image 2 again: asked whole
        number = proj.store.start_round(strategy="seg_entropy", model="unet_small", config={}, n_labeled=0)
        proj.store.finish_round(number, metrics={}, selection=[(2, 0.4)])
    assert client.get("/api/images/2").json()["asked"] is None
    stats = client.get("/api/stats").json()  # the dashboard plots mIoU and pixel accuracy
    assert [(m["key"], m["name"]) for m in stats["curve_metrics"]] == [
        ("miou", "mIoU"),
        ("pixel_accuracy", "pixel accuracy"),
    ]


def test_the_published_schema_takes_a_mask(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    body = schema["components"]["schemas"]["LabelRequest"]
    answer, unsure = body["allOf"][1]["anyOf"]
    assert answer["required"] == ["mask"] and answer["properties"]["mask"] == {"type": "object"}
    assert answer["properties"]["boxes"] == answer["properties"]["label"] == {"type": "null"}
    assert unsure["properties"]["mask"] == {"type": "null"}
    mask_in = schema["components"]["schemas"]["MaskIn"]
    assert mask_in["required"] == ["png"] and mask_in["additionalProperties"] is False
    assert "/api/masks/{key}" in schema["paths"] and "/api/images/{image_id}/regions" in schema["paths"]
