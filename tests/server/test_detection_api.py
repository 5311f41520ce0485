"""The REST API of a detection project: box answers validated against the image's size, stored with their
origins, the model's boxes served as proposals above labeling.proposal_threshold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from activelab.loop.project import open_project
from activelab.loop.settings import load_settings, save_settings

from .conftest import record_round


def _box(cls: str, x: float, y: float, w: float, h: float, **extra: Any) -> dict[str, Any]:
    return {"class": cls, "x": x, "y": y, "w": w, "h": h, **extra}


def _submit(client, image_id: int, **answer: Any):  # type: ignore[no-untyped-def]
    return client.post("/api/labels", json={"author": "ann", "image_id": image_id, **answer})


def _events(root: Path, image_id: int) -> list[tuple[Any, str]]:
    with open_project(root) as proj:
        return [(e.payload, e.author) for e in proj.store.label_history(image_id)]


def test_the_project_says_its_answers_are_boxes(client_factory, detection_dir: Path) -> None:
    info = client_factory(project=detection_dir).get("/api/project").json()
    assert (info["task"], info["answer"], info["output"], info["proposal_threshold"]) == (
        "detection",
        "boxes",
        "boxes",
        0.5,
    )
    assert info["classes"] == ["bag", "shirt", "shoe"]


def test_boxes_are_stored_with_their_origins_in_the_event_history(client_factory, detection_dir: Path) -> None:
    record_round(detection_dir, 6)  # a finished round: the stats read its queue instead of training a cold start
    client = client_factory(project=detection_dir)
    drawn = [
        _box("bag", 1.004, 2, 10, 5, origin="drawn"),
        _box("shoe", 31, 20.5, 33.5, 27.5, origin="proposal"),  # 0.5 px over the right edge: clipped
        _box("shirt", 0, 0, 8, 8, origin="edited"),
    ]
    res = _submit(client, 1, boxes=drawn)
    assert res.status_code == 200, res.text
    stored = [
        {"class": "bag", "x": 1.0, "y": 2.0, "w": 10.0, "h": 5.0, "origin": "drawn"},
        {"class": "shoe", "x": 31.0, "y": 20.5, "w": 33.0, "h": 27.5, "origin": "proposal"},
        {"class": "shirt", "x": 0.0, "y": 0.0, "w": 8.0, "h": 8.0, "origin": "edited"},
    ]
    body = res.json()
    assert (body["label"], body["labels"]) == (None, None)
    assert [{k: v for k, v in b.items() if v is not None} for b in body["boxes"]] == stored
    assert _events(detection_dir, 1) == [(stored, "ann")]

    # "nothing here" is an answer of its own: an empty list, not "not sure" (no payload)
    assert _submit(client, 2, boxes=[]).status_code == 200
    assert _submit(client, 3, unsure=True).status_code == 200
    assert _events(detection_dir, 2) == [([], "ann")]
    assert _events(detection_dir, 3) == [(None, "ann")]

    detail = client.get("/api/images/1").json()
    assert (detail["boxes"][1]["class"], detail["boxes"][1]["origin"]) == ("shoe", "proposal")
    assert [e["boxes"] is not None for e in detail["history"]] == [True]
    stats = client.get("/api/stats").json()  # one count per box (an image may be held out for evaluation)
    assert {name: n["pool"] + n["eval"] for name, n in stats["per_class"].items()} == {"bag": 1, "shirt": 1, "shoe": 1}
    assert [m["key"] for m in stats["curve_metrics"]] == ["map", "map_50"]

    # a class some box carries cannot be retired (the store counts the classes of boxes)
    busy = client.post("/api/classes/retire", json={"author": "ann", "name": "shirt"})
    assert busy.status_code == 409 and "current label of 1 image(s)" in busy.text

    # a second answer, undone: the first one's boxes come back, origins and all
    assert _submit(client, 1, boxes=[_box("bag", 5, 5, 5, 5, origin="drawn")]).status_code == 200
    undone = client.post("/api/undo", json={"author": "ann"}).json()
    assert undone["item"]["image_id"] == 1
    assert [{k: v for k, v in b.items() if v is not None} for b in undone["restored_boxes"]] == stored


@pytest.mark.parametrize(
    ("box", "status", "message"),
    [
        (_box("bag", 50, 0, 20, 10), 422, "box 1 lies outside the image along x: it spans 50 to 70"),
        (_box("bag", 0, -3, 20, 10), 422, "box 1 lies outside the image along y"),
        (_box("bag", 0, 0, 0, 10), 422, "greater than 0"),
        (_box("unicorn", 0, 0, 5, 5), 404, "no class named 'unicorn'"),
        (_box("bag", 0, 0, 5, 5, score=0.9), 422, "Extra inputs are not permitted"),
        (_box("bag", 0, 0, 5, 5, origin="guessed"), 422, "'drawn', 'proposal' or 'edited'"),
        ({"class": "bag", "x": 0, "y": 0, "w": 5}, 422, "Field required"),
    ],
)
def test_a_bad_box_is_refused_and_named(client_factory, detection_dir: Path, box, status, message) -> None:
    client = client_factory(project=detection_dir)
    res = _submit(client, 1, boxes=[_box("shirt", 1, 1, 4, 4), box])
    assert res.status_code == status, res.text
    assert message in res.text
    if status == 422 and isinstance(res.json()["detail"], list):  # the schema's error: its location names the box
        assert res.json()["detail"][0]["loc"][:3] == ["body", "boxes", 1]
    assert _events(detection_dir, 1) == []


def test_other_answers_and_non_finite_numbers_are_refused(client_factory, detection_dir: Path) -> None:
    client = client_factory(project=detection_dir)
    assert _submit(client, 1, label="bag").status_code == 422
    assert _submit(client, 1, labels=["bag"]).status_code == 422
    both = _submit(client, 1, labels=["bag"], boxes=[])
    assert both.status_code == 422 and "give labels or boxes" in both.text
    nan = client.post(
        "/api/labels",
        content=b'{"author": "ann", "image_id": 1, "boxes": [{"class": "bag", "x": NaN, "y": 0, "w": 1, "h": 1}]}',
        headers={"Content-Type": "application/json"},
    )
    assert nan.status_code == 422 and "finite" in nan.text
    many = [_box("bag", 0, 0, 1, 1)] * 501
    assert _submit(client, 1, boxes=many).status_code == 422
    assert _events(detection_dir, 1) == []


def test_a_classification_project_refuses_boxes(client_factory) -> None:
    client = client_factory()
    res = _submit(client, 1, boxes=[_box("bag", 0, 0, 5, 5)])
    assert res.status_code == 422


def test_proposals_are_the_predicted_boxes_above_the_threshold(client_factory, detection_dir: Path) -> None:
    queue = record_round(detection_dir, 2)
    predicted = [
        _box("bag", 2, 3, 10, 10, score=0.55),
        _box("shoe", 20, 5, 12, 30, score=0.91),
        _box("shirt", 40, 10, 6, 6, score=0.2),
    ]
    with open_project(detection_dir) as proj:
        proj.store.save_predictions(1, [(queue[0], predicted, 0.73)])
    client = client_factory(project=detection_dir)
    first, second = client.post("/api/next", json={"author": "ann", "n": 2}).json()["items"]
    assert first["image_id"] == queue[0] and (first["width"], first["height"]) == (64, 48)
    assert [(b["class"], b["score"]) for b in first["proposals"]] == [("shoe", 0.91), ("bag", 0.55)]
    assert first["proposals"][0] == {**predicted[1], "origin": None}
    assert [b["class"] for b in first["prediction"]["boxes"]] == ["bag", "shoe", "shirt"]  # the whole prediction
    assert (first["suggestion"]["confidence"], first["suggestion"]["round"]) == (0.73, 1)
    assert second["proposals"] is None and second["prediction"] is None

    settings = load_settings(detection_dir / "activelab.yaml")
    settings.labeling.proposal_threshold = 0.9
    save_settings(settings, detection_dir / "activelab.yaml")
    item = client_factory(project=detection_dir).get(f"/api/images/{queue[0]}").json()
    assert [b["class"] for b in item["proposals"]] == ["shoe"]


def test_the_published_schema_takes_boxes_only(client_factory, detection_dir: Path) -> None:
    schema = client_factory(project=detection_dir).get("/openapi.json").json()
    body = schema["components"]["schemas"]["LabelRequest"]
    answer, unsure = body["allOf"][1]["anyOf"]
    assert answer["required"] == ["boxes"] and answer["properties"]["boxes"] == {"type": "array"}
    assert answer["properties"]["label"] == answer["properties"]["labels"] == {"type": "null"}
    assert body["properties"]["label"]["type"] == body["properties"]["labels"]["type"] == "null"
    assert unsure["properties"]["boxes"] == {"type": "null"}
    box = schema["components"]["schemas"]["BoxIn"]
    assert box["required"] == ["class", "x", "y", "w", "h"] and box["additionalProperties"] is False
    assert box["properties"]["w"]["exclusiveMinimum"] == 0
    classic = client_factory().get("/openapi.json").json()["components"]["schemas"]["LabelRequest"]
    assert classic["properties"]["boxes"]["type"] == "null"
