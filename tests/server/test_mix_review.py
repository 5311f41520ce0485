"""``serve --mix-review``: the label page's queue interleaves likely label errors with new images by value."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from activelab.label_errors import ranking_path
from activelab.loop.project import open_project


def _next(client, user: str, n: int, **extra) -> list[dict]:
    res = client.post("/api/next", json={"user": user, "n": n, **extra})
    assert res.status_code == 200, res.text
    return res.json()["items"]


def _write_ranking(project_dir: Path, scores: list[float]) -> list[int]:
    """A ranking of the first labeled pool images with the given label-quality scores (all issues)."""
    with open_project(project_dir) as proj:
        current = proj.store.current_labels("pool")
    labeled = sorted(current)[: len(scores)]
    path = ranking_path(project_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "image_id": labeled,
            "given_label": [current[i].label for i in labeled],
            "suggested_label": ["bag"] * len(labeled),
            "score": scores,
            "is_issue": [True] * len(labeled),
            "ranked_at": [datetime.now(timezone.utc).isoformat()] * len(labeled),
        }
    ).to_csv(path, index=False)
    return labeled


def test_mix_review_interleaves_label_errors_by_value(client_factory, project_dir: Path) -> None:
    plain = client_factory()
    plain.app.state.service.trainer.run_once()  # round 1: a queue with the model's confidences
    likely_wrong, likely_right = _write_ranking(project_dir, [0.995, 0.001])[::-1]
    # off by default: label mode hands out new images only
    zed = _next(plain, "zed", 5)
    assert {i["origin"] for i in zed} <= {"queue", "pool"}

    client = client_factory(mix_review=True)
    queue = [i["image_id"] for i in client.get("/api/queue", params={"limit": 50}).json()["items"]]
    first = _next(client, "ann", 5)
    # value of a review item: 1 - 0.001 (almost surely wrong) beats every new image's 1 - confidence
    assert first[0]["image_id"] == likely_wrong and first[0]["origin"] == "label_error"
    assert first[0]["flag"]["reason"] == "label_error"
    assert first[0]["flag"]["details"]["score"] == 0.001 and first[0]["flag"]["details"]["suggested"] == "bag"
    assert [e["source"] for e in first[0]["history"]] == ["import"]  # the page shows the label history
    new = [i["image_id"] for i in first[1:]]
    free = [i for i in queue if i not in {z["image_id"] for z in zed}]  # zed's leases are live
    assert new == free[:4] and all(i["origin"] == "queue" for i in first[1:])  # new images keep queue order
    # the review item is leased like the others: bob does not get it while ann holds it
    assert likely_wrong not in [i["image_id"] for i in _next(client, "bob", 10)]

    # a plain label-mode answer (no review flag) to a mixed-in label error is still a review decision
    res = client.post("/api/labels", json={"user": "ann", "image_id": likely_wrong, "label": "bag"})
    assert res.status_code == 200 and res.json()["flagged"] is False
    with open_project(project_dir) as proj:
        history = proj.store.label_history(likely_wrong)
        assert [(e.label, e.source, e.author) for e in history][-1] == ("bag", "review", "ann")
        assert len(history) == 2  # the given label stays: append-only

    # the other review item (value 1 - 0.995) goes after every new image worth more than it
    held = new
    more = _next(client, "ann", 30, exclude=held)
    ids = [i["image_id"] for i in more]
    assert likely_wrong not in ids and likely_right in ids
    pos = ids.index(likely_right)
    conf = {i["image_id"]: i["prediction"]["confidence"] for i in more if i["prediction"]}
    assert all(1 - conf[i] >= 0.005 - 1e-9 for i in ids[:pos] if i in conf)
    assert all(1 - conf[i] < 0.005 for i in ids[pos + 1 :] if i in conf)
    assert not set(ids) & set(held)
    keep = more[pos]["flag"]["details"]["given"]
    res = client.post("/api/labels", json={"user": "ann", "image_id": likely_right, "label": keep, "review": True})
    assert res.status_code == 200
    with open_project(project_dir) as proj:
        assert proj.store.current_labels()[likely_right].source == "review"
    # both reviewed: the mix has nothing left to review, label mode is the plain queue again
    assert {i["origin"] for i in _next(client, "ann", 5, exclude=held + ids)} <= {"queue", "pool"}


def test_serve_has_a_mix_review_flag() -> None:
    from activelab.cli.main import app

    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--mix-review" in result.output
