"""What the labeling and review pages show: queue ranks as they are now, one suggested class, the review count."""

from __future__ import annotations

from pathlib import Path

from activelab.loop.project import open_project

from .conftest import record_round, write_ranking


def _next(client, user: str, n: int, **extra) -> dict:
    res = client.post("/api/next", json={"user": user, "n": n, **extra})
    assert res.status_code == 200, res.text
    return res.json()


def _label(client, user: str, image_id: int, label: str, **extra) -> None:
    res = client.post("/api/labels", json={"user": user, "image_id": image_id, "label": label, **extra})
    assert res.status_code == 200, res.text


def _ranked(items: list[dict]) -> list[tuple[int, int | None]]:
    return [(i["image_id"], i["rank"]) for i in items]


def test_ranks_are_positions_in_the_queue_as_it_is_now(client_factory, project_dir: Path) -> None:
    q = record_round(project_dir, 10)
    client = client_factory()
    first = _next(client, "ann", 3)
    assert _ranked(first["items"]) == [(q[0], 0), (q[1], 1), (q[2], 2)]
    assert first["ranks"] == {} and first["queue_length"] == 10

    # ann labels the first: the images she holds move up, the new one is the queue's fourth image, now third
    _label(client, "ann", q[0], "coat")
    res = _next(client, "ann", 1, exclude=q[1:3])
    assert _ranked(res["items"]) == [(q[3], 2)]
    assert res["ranks"] == {str(q[1]): 0, str(q[2]): 1} and res["queue_length"] == 9

    # bob's labels count too; his live lease keeps q[5] from ann but it stays in the queue
    assert _ranked(_next(client, "bob", 2)["items"]) == [(q[4], 3), (q[5], 4)]
    _label(client, "bob", q[4], "bag")
    res = _next(client, "ann", 1, exclude=q[1:4])
    assert _ranked(res["items"]) == [(q[6], 4)]
    assert res["ranks"] == {str(q[1]): 0, str(q[2]): 1, str(q[3]): 2} and res["queue_length"] == 8

    # an image someone else labeled has left the queue: its rank is null
    _label(client, "bob", q[2], "bag")
    res = _next(client, "ann", 1, exclude=[q[1], q[2], q[3], q[6]])
    assert _ranked(res["items"]) == [(q[7], 4)]
    assert res["ranks"] == {str(q[1]): 0, str(q[2]): None, str(q[3]): 1, str(q[6]): 3}
    assert res["queue_length"] == 7

    review = _next(client, "ann", 1, mode="review", exclude=[q[1]])
    assert review["ranks"] == {} and review["queue_length"] is None


def test_the_suggested_class_is_the_rankings_for_a_label_error_else_the_prediction(
    client_factory, project_dir: Path
) -> None:
    with open_project(project_dir) as proj:
        current = proj.store.current_labels("pool")
    reviewed = min(current)
    given = current[reviewed].label
    q = record_round(project_dir, 3)
    with open_project(project_dir) as proj:
        proj.store.save_predictions(1, [(reviewed, "coat", 0.75), (q[0], "trouser", 0.5)])
    write_ranking(
        project_dir,
        {
            "image_id": [reviewed],
            "given_label": [given],
            "suggested_label": ["bag"],
            "score": [0.01],
            "is_issue": [True],
            "p_suggested": [0.875],
        },
    )
    client = client_factory()

    (item,) = _next(client, "rev", 5, mode="review")["items"]
    assert item["image_id"] == reviewed and item["origin"] == "label_error"
    assert item["prediction"] == {
        "label": "coat",
        "labels": None,
        "boxes": None,
        "mask": None,
        "confidence": 0.75,
        "round": 1,
    }  # the latest round's
    # what the banner names (flag details) and what the hint and the highlight use (suggestion) agree
    assert item["flag"]["details"]["suggested"] == "bag"
    assert item["suggestion"] == {
        "label": "bag",
        "labels": None,
        "boxes": None,
        "mask": None,
        "confidence": 0.875,
        "source": "label_errors",
        "round": None,
    }

    new = _next(client, "ann", 1)["items"][0]
    assert new["image_id"] == q[0]
    assert new["suggestion"] == {
        "label": "trouser",
        "labels": None,
        "boxes": None,
        "mask": None,
        "confidence": 0.5,
        "source": "prediction",
        "round": 1,
    }
    assert _next(client, "ann", 1, exclude=[q[0]])["items"][0]["suggestion"] is None  # no prediction yet


def test_the_review_count_is_what_the_review_page_serves(client_factory, project_dir: Path) -> None:
    client = client_factory()
    disputed = _next(client, "ann", 1)["items"][0]["image_id"]
    _label(client, "ann", disputed, "coat")
    _label(client, "bob", disputed, "shirt")  # disagreement: flagged
    with open_project(project_dir) as proj:
        current = proj.store.current_labels("pool")
    imported = sorted(i for i in current if i != disputed)[:4]
    write_ranking(
        project_dir,
        {
            "image_id": imported + [disputed],
            "given_label": [current[i].label for i in imported + [disputed]],
            "suggested_label": ["bag"] * 5,
            "score": [0.3, 0.1, 0.2, 0.9, 0.05],
            "is_issue": [True, True, True, False, True],
        },
    )

    # served: the flagged image, then the three label-error issues not flagged (the flagged one counts once)
    served = _next(client, "rev", 50, mode="review")["items"]
    assert [i["image_id"] for i in served] == [disputed, imported[1], imported[2], imported[0]]
    waiting = {"total": 4, "flagged": 1, "label_errors": 3}
    assert client.get("/api/stats").json()["review"] == waiting
    page = client.get("/api/review", params={"limit": 1}).json()
    assert page["waiting"] == waiting and page["total"] == 1  # total: open flags, as before

    _label(client, "rev", imported[1], "bag", review=True)
    _label(client, "rev", disputed, "shirt", review=True)
    assert client.get("/api/stats").json()["review"] == {"total": 2, "flagged": 0, "label_errors": 2}
