"""The REST API on a real demo project: labeling, leases, review, stats, export, trainer, restarts."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import text

from activelab.loop.project import open_project
from activelab.loop.session import ActiveSession
from activelab.loop.settings import load_settings, save_settings
from activelab.store import open_store, sqlite_url
from activelab.store import schema as t
from activelab.store.migrations import SCHEMA_VERSION, ensure_schema

from .conftest import wait_for


def _next(client, user: str, n: int = 5, **extra) -> list[dict]:
    res = client.post("/api/next", json={"user": user, "n": n, **extra})
    assert res.status_code == 200, res.text
    return res.json()["items"]


def _label(client, user: str, image_id: int, label: str | None = None, **extra) -> dict:
    body = {"user": user, "image_id": image_id, **extra}
    if label is not None:
        body["label"] = label
    res = client.post("/api/labels", json=body)
    assert res.status_code == 200, res.text
    return res.json()


def test_label_skip_unsure_undo_are_stored_as_events(client_factory, project_dir: Path) -> None:
    client = client_factory()
    items = _next(client, "ann", 4)
    assert len(items) == 4 and len({i["image_id"] for i in items}) == 4
    a, b, c, d = (i["image_id"] for i in items)
    assert client.get(items[0]["url"]).headers["content-type"] == "image/png"

    assert _label(client, "ann", a, "coat", note="sleeve cut off")["flagged"] is False
    unsure = _label(client, "ann", b, unsure=True)
    assert unsure["label"] is None
    assert client.post("/api/skip", json={"user": "ann", "image_id": c}).status_code == 200

    with open_project(project_dir) as proj:
        (ev,) = proj.store.label_history(a)
        assert (ev.label, ev.author, ev.source, ev.note) == ("coat", "ann", "human", "sleeve cut off")
        (ev,) = proj.store.label_history(b)
        assert ev.label is None and ev.note == "not sure"
        assert proj.store.label_history(c) == []  # a skip is not a label

    undone = client.post("/api/undo", json={"user": "ann"}).json()
    assert undone["item"]["image_id"] == b and undone["restored_label"] is None
    undone = client.post("/api/undo", json={"user": "ann"}).json()
    assert undone["item"]["image_id"] == a and undone["restored_label"] is None
    with open_project(project_dir) as proj:
        history = proj.store.label_history(a)
        assert [e.label for e in history] == ["coat", None]  # append-only: undo is a new event
        assert history[-1].note == f"undo of event {history[0].id}"
        assert a not in proj.store.current_labels()
    # the undone images come back to ann first; the skipped one never does
    again = [i["image_id"] for i in _next(client, "ann", 6)]
    assert again[:2] == sorted([a, b]) and c not in again and d in again
    assert client.post("/api/undo", json={"user": "bob"}).status_code == 404


def test_two_labelers_get_distinct_images_and_disagreement_is_flagged(client_factory, project_dir: Path) -> None:
    client = client_factory(lease_seconds=1.0)
    ann = [i["image_id"] for i in _next(client, "ann", 5)]
    bob = [i["image_id"] for i in _next(client, "bob", 5)]
    assert not set(ann) & set(bob), "a live lease is never handed to a second labeler"
    assert _next(client, "ann", 5, exclude=ann)[0]["image_id"] not in ann + bob

    _label(client, "ann", ann[0], "coat")
    time.sleep(1.2)  # leases expire: bob may now get ann's other images
    bob2 = [i["image_id"] for i in _next(client, "bob", 10)]
    assert set(ann[1:]) <= set(bob2) and ann[0] not in bob2

    res = _label(client, "bob", ann[0], "shirt")  # labeled by id anyway: both events are kept
    assert res["flagged"] is True
    assert _label(client, "carol", ann[0], "shirt")["flagged"] is True or True
    with open_project(project_dir) as proj:
        assert [(e.author, e.label) for e in proj.store.label_history(ann[0])][:2] == [
            ("ann", "coat"),
            ("bob", "shirt"),
        ]
    review = client.get("/api/review", params={"limit": 10}).json()
    assert review["total"] >= 1 and review["items"][0]["details"]["labels"] == {"ann": "coat", "bob": "shirt"}

    items = _next(client, "dora", 5, mode="review")
    assert items[0]["image_id"] == ann[0] and items[0]["origin"] == "review"
    assert [e["author"] for e in items[0]["history"]][:2] == ["ann", "bob"]
    _label(client, "dora", ann[0], "shirt", review=True)
    assert client.get("/api/review").json()["total"] == 0
    assert _next(client, "dora", 5, mode="review") == []
    with open_project(project_dir) as proj:
        cur = proj.store.current_labels()[ann[0]]
        assert (cur.label, cur.source, cur.author) == ("shirt", "review", "dora")


def test_concurrent_labelers_never_share_a_live_lease(client_factory, project_dir: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    client = client_factory()

    def work(user: str) -> list[int]:
        got = []
        for _ in range(3):
            items = _next(client, user, 4)
            for it in items:
                _label(client, user, it["image_id"], "bag")
                got.append(it["image_id"])
        return got

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(work, ["u1", "u2", "u3", "u4"]))
    everything = [i for r in results for i in r]
    assert len(everything) == 48 and len(set(everything)) == 48
    with open_project(project_dir) as proj:
        assert proj.store.n_label_events() == 220 + 48


def test_stats_export_classes_and_pages(client_factory) -> None:
    client = client_factory()
    items = _next(client, "ann", 3)
    for it, name in zip(items, ["coat", "coat", "bag"]):
        _label(client, "ann", it["image_id"], name)
    stats = client.get("/api/stats").json()
    assert stats["labeled"] == {"pool": 23, "eval": 200}
    assert stats["per_class"]["coat"]["pool"] == 4 and stats["per_class"]["bag"]["pool"] == 3
    assert stats["strategy"] == "auto" and stats["labels_over_time"][-1]["n"] == 3
    assert stats["trainer"]["state"] == "idle" and stats["holdout"]["enabled"] is False

    csv = client.get("/api/export", params={"format": "csv"})
    assert csv.status_code == 200 and "attachment" in csv.headers["content-disposition"]
    frame = pd.read_csv(io.StringIO(csv.text))
    assert len(frame) == 23 and set(frame[frame.author == "ann"].label) == {"coat", "bag"}
    assert len(pd.read_parquet(io.BytesIO(client.get("/api/export?format=parquet&include_eval=true").content))) == 223
    assert client.get("/api/export", params={"format": "exe"}).status_code == 422

    assert client.post("/api/classes", json={"name": "scarf"}).json()["classes"][-1] == "scarf"
    assert client.get("/api/project").json()["classes"][-1] == "scarf"
    assert client.get("/api/queue", params={"limit": 500}).status_code == 422  # pages, never the whole pool
    assert client.get("/api/images/999999/file").status_code == 404
    assert client.get("/api/images/abc/file").status_code == 422
    detail = client.get(f"/api/images/{items[0]['image_id']}").json()
    assert detail["label"] == "coat" and detail["history"][0]["author"] == "ann"


def test_input_validation_and_cross_site_protection(client_factory, project_dir: Path) -> None:
    client = client_factory()
    iid = _next(client, "ann", 1)[0]["image_id"]
    bad = [
        {"user": "ann", "image_id": iid},  # neither label nor unsure
        {"user": "ann", "image_id": iid, "label": "coat", "unsure": True},
        {"user": "", "image_id": iid, "label": "coat"},
        {"user": "ann\u202e", "image_id": iid, "label": "coat"},
        {"user": "ann", "image_id": iid, "label": "coat", "extra": 1},
    ]
    for body in bad:
        assert client.post("/api/labels", json=body).status_code == 422, body
    assert client.post("/api/labels", json={"user": "ann", "image_id": 10**6, "label": "coat"}).status_code == 404
    assert (
        client.post("/api/labels", json={"user": "ann", "image_id": iid, "label": "no-such-class"}).status_code == 404
    )  # a class the project lacks, like an image it lacks
    naked = client_factory(headers={})
    assert naked.post("/api/labels", json={"user": "ann", "image_id": iid, "label": "coat"}).status_code == 403
    assert (
        naked.post(
            "/api/labels",
            json={"user": "ann", "image_id": iid, "label": "coat"},
            headers={"X-Activelab-Client": "1", "Origin": "http://evil.example"},
        ).status_code
        == 403
    )
    with open_project(project_dir) as proj:
        assert proj.store.label_history(iid) == []

    locked = client_factory(token="s3cret-token-0123456789", headers={})
    assert locked.get("/api/stats").status_code == 401
    assert locked.get("/api/stats", headers={"Authorization": "Bearer s3cret-token-0123456789"}).status_code == 200
    page = locked.get("/?token=s3cret-token-0123456789", follow_redirects=False)
    assert page.status_code == 303 and "activelab_token" in page.headers["set-cookie"]
    assert locked.get("/api/stats").status_code == 200  # the cookie now carries the token

    schema = client.get("/openapi.json").json()
    for path in [
        "/api/next",
        "/api/labels",
        "/api/undo",
        "/api/skip",
        "/api/stats",
        "/api/export",
        "/api/trainer",
        "/api/queue",
        "/api/review",
        "/api/images/{image_id}/file",
    ]:
        assert path in schema["paths"], path


def test_trainer_runs_rounds_and_reranks_the_queue(client_factory, project_dir: Path) -> None:
    client = client_factory(trainer=True, retrain_every=5)
    first = wait_for(
        lambda: (s := client.get("/api/trainer").json())["last_round"] == 1 and s["state"] == "idle" and s, timeout=90
    )
    assert first["last_metrics"]["n_labeled"] == 20 and first["last_metrics"]["accuracy"] is not None
    queue1 = [i["image_id"] for i in client.get("/api/queue", params={"limit": 50}).json()["items"]]
    assert len(queue1) == 20
    items = _next(client, "ann", 5)
    assert [i["image_id"] for i in items] == queue1[:5]  # active-learning order
    assert all(i["prediction"] and i["prediction"]["round"] == 1 for i in items)  # the model's hint
    labels = ["t-shirt", "trouser", "pullover", "dress", "coat"]
    started = time.monotonic()
    for it, name in zip(items, labels):
        _label(client, "ann", it["image_id"], name)
    assert time.monotonic() - started < 5, "labeling never waits for the trainer"
    wait_for(lambda: client.get("/api/trainer").json()["last_round"] == 2, timeout=90)
    status = client.get("/api/trainer").json()
    assert status["last_metrics"]["n_labeled"] == 25 and status["last_error"] is None
    queue2 = [i["image_id"] for i in client.get("/api/queue").json()["items"]]
    with open_project(project_dir) as proj:
        assert queue2 == ActiveSession(proj).queue()
        assert [r.number for r in proj.store.rounds() if r.status == "done"] == [1, 2]
    assert queue2 != queue1[5:] and not set(queue2) & {i["image_id"] for i in items}
    stats = client.get("/api/stats").json()
    assert [p["n_labeled"] for p in stats["curve"]] == [20, 25]


def test_trainer_state_survives_restart(client_factory, project_dir: Path) -> None:
    client = client_factory()
    client.post("/api/trainer/pause")
    iid = _next(client, "ann", 1)[0]["image_id"]
    _label(client, "ann", iid, "bag")
    service = client.app.state.service
    service.trainer.run_once()  # a round in the caller's thread: same code the thread runs
    before = client.get("/api/trainer").json()
    assert before["paused"] and before["last_round"] == 1
    # simulate a crash in the middle of round 2: state says training, the round row is running
    with open_project(project_dir) as proj:
        proj.store.start_round(strategy="margin", model="small_cnn", config={}, n_labeled=21)
        state = proj.store.service_state("trainer")
        proj.store.set_service_state("trainer", {**state, "state": "training", "round": 2})

    again = client_factory()
    after = again.get("/api/trainer").json()
    assert after["paused"] and after["state"] == "idle" and after["last_round"] == 1
    assert after["last_metrics"] == before["last_metrics"]
    assert "round 2 was interrupted" in after["last_error"]
    with open_project(project_dir) as proj:
        assert [r.status for r in proj.store.rounds()] == ["done", "failed"]
    assert again.get(f"/api/images/{iid}").json()["label"] == "bag"
    again.post("/api/trainer/resume")
    assert again.get("/api/trainer").json()["paused"] is False


def test_held_out_labels_when_the_project_has_no_eval_split(tmp_path: Path, sample: Path, client_factory) -> None:
    from activelab.loop.ingest import import_images
    from activelab.loop.project import init_project

    from .conftest import fast_settings

    root = tmp_path / "noeval"
    with init_project(root, ["t-shirt", "trouser", "bag"]) as proj:
        pool = pd.read_csv(sample / "pool.csv")
        pool = pool[pool.label.isin(["t-shirt", "trouser", "bag"])].head(60)
        import_images(proj.store, pool.assign(filepath=[str(sample / p) for p in pool.filepath], label=None))
    fast_settings(root, eval_fraction=0.5)
    client = client_factory(project=root)
    assert client.get("/api/project").json()["holdout"]["enabled"] is True
    truth = dict(zip([str(sample / p) for p in pool.filepath], pool.label))
    held = []
    with open_project(root) as proj:
        paths = {img.id: img.path for img in proj.store.images()}
    for _ in range(4):
        for it in _next(client, "ann", 5):
            res = _label(client, "ann", it["image_id"], truth[paths[it["image_id"]]])
            held.append(res["held_out"])
    assert 3 <= sum(held) <= 17, held
    with open_project(root) as proj:
        session = ActiveSession(proj)
        train, evals = session.labeled_set("pool"), session.labeled_set("eval")
        assert len(train.image_ids) + len(evals.image_ids) == 20 and len(evals.image_ids) == sum(held)
        assert not set(train.image_ids) & set(evals.image_ids)  # never trained on
        result = session.run_round()
        assert result.metrics["eval"]["n"] == sum(held)


def test_a_version_1_store_is_upgraded(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "old.db")
    store = open_store(url)
    with store._write() as conn:  # make it look like a store written by schema version 1
        conn.execute(text("ALTER TABLE images DROP COLUMN format"))
        conn.execute(text("ALTER TABLE label_events DROP COLUMN annotation"))
        conn.execute(text("ALTER TABLE round_selections DROP COLUMN asked_mask"))
        for table in reversed(t.V2_TABLES + t.V3_TABLES):
            conn.execute(text(f"DROP TABLE {table.name}"))
        conn.execute(text("UPDATE meta SET value = '1' WHERE key = 'schema_version'"))
    store.close()
    store = open_store(url)
    with store._read() as conn:
        assert ensure_schema(conn, url, create=False) == SCHEMA_VERSION == 5
    store.set_service_state("trainer", {"state": "idle"})
    assert store.service_state("trainer") == {"state": "idle"}
    store.close()


@pytest.mark.parametrize("page", ["/", "/review", "/dashboard", "/static/label.js", "/docs"])
def test_pages_are_served(client_factory, page: str) -> None:
    assert client_factory().get(page).status_code == 200


def test_review_mode_serves_label_errors_until_reviewed(client_factory, project_dir: Path) -> None:
    from datetime import datetime, timezone

    from activelab.label_errors import ranking_path

    with open_project(project_dir) as proj:
        labeled = sorted(proj.store.current_labels("pool"))[:3]
        given = {iid: proj.store.current_labels()[iid].label for iid in labeled}
    ranking = ranking_path(project_dir)
    ranking.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(
        {
            "image_id": labeled,
            "given_label": [given[i] for i in labeled],
            "suggested_label": ["bag"] * 3,
            "score": [0.30, 0.05, 0.90],
            "is_issue": [True, True, False],
            "ranked_at": [datetime.now(timezone.utc).isoformat()] * 3,
        }
    ).to_csv(ranking, index=False)
    client = client_factory()
    items = _next(client, "rev", 5, mode="review")
    assert [i["image_id"] for i in items] == [labeled[1], labeled[0]]  # most likely wrong first, issues only
    assert items[0]["flag"]["reason"] == "label_error"
    assert items[0]["flag"]["details"] == {"given": given[labeled[1]], "suggested": "bag", "score": 0.05}
    _label(client, "rev", labeled[1], "bag", review=True)
    assert [i["image_id"] for i in _next(client, "rev", 5, mode="review")] == [labeled[0]]
    with open_project(project_dir) as proj:
        history = proj.store.label_history(labeled[1])
        assert [(e.label, e.source) for e in history][-1] == ("bag", "review")
        assert history[0].label == given[labeled[1]]


# ------------------------------------------------------------------ hardening (issue 12)
def _png_with_script(path: Path) -> Path:
    """A real PNG whose text chunk holds a script: dangerous if a browser ever reads it as HTML.

    The pixels depend on the file name, so each file is another image (not a duplicate)."""
    from PIL import Image as PILImage
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("comment", "<script>fetch('/api/stats')</script>")
    PILImage.new("RGB", (6, 4), (200, 10, sum(path.name.encode()) % 256)).save(path, format="PNG", pnginfo=info)
    return path


def _import(project_dir: Path, *paths: Path) -> list[int]:
    from activelab.loop.ingest import import_images

    with open_project(project_dir) as proj:
        import_images(proj.store, pd.DataFrame({"filepath": [str(p) for p in paths]}))
        by_path = {img.path: img.id for img in proj.store.images()}
    return [by_path[str(p)] for p in paths]


def test_image_files_are_served_as_their_imported_format_and_only_unchanged(
    client_factory, project_dir: Path, tmp_path: Path
) -> None:
    html = _png_with_script(tmp_path / "x.html")
    svg = _png_with_script(tmp_path / "y.svg")
    swapped = _png_with_script(tmp_path / "z.png")
    edited = _png_with_script(tmp_path / "w.png")
    html_id, svg_id, swapped_id, edited_id = _import(project_dir, html, svg, swapped, edited)
    client = client_factory()
    for iid, path in [(html_id, html), (svg_id, svg)]:
        res = client.get(f"/api/images/{iid}/file")
        assert res.status_code == 200 and res.headers["content-type"] == "image/png"
        assert res.headers["x-content-type-options"] == "nosniff" and res.content == path.read_bytes()

    swapped.unlink()
    swapped.symlink_to("/etc/passwd")  # replaced after import
    data = bytearray(edited.read_bytes())
    data[-20] ^= 0xFF  # same size, other bytes
    edited.write_bytes(bytes(data))
    for iid in (swapped_id, edited_id):
        res = client.get(f"/api/images/{iid}/file")
        assert res.status_code == 409 and "changed since it was imported" in res.json()["detail"]
        assert str(tmp_path) not in res.text and "root:" not in res.text
    edited.write_bytes(bytes(data) + b"\0")  # another size
    assert client.get(f"/api/images/{edited_id}/file").status_code == 409


def test_image_files_of_old_rows_and_of_non_raster_formats(client_factory, project_dir: Path, tmp_path: Path) -> None:
    from PIL import Image as PILImage

    png = _png_with_script(tmp_path / "old.txt")
    tiff = tmp_path / "t.tiff"
    PILImage.new("RGB", (5, 5)).save(tiff, format="TIFF")
    png_id, tiff_id = _import(project_dir, png, tiff)
    with open_project(project_dir) as proj:
        assert proj.store.get_image(tiff_id).format == "TIFF"
        with proj.store.engine.begin() as conn:  # a row imported before v3 stored formats
            conn.execute(text("UPDATE images SET format = NULL WHERE id = :i"), {"i": png_id})
    client = client_factory()
    assert client.get(f"/api/images/{png_id}/file").headers["content-type"] == "image/png"  # sniffed
    res = client.get(f"/api/images/{tiff_id}/file")
    assert res.status_code == 415 and "TIFF" in res.json()["detail"]


@pytest.mark.parametrize("name", ["José", "Zoë", "李雷", "Ann-Marie O'Neil", "<b>x</b>", "a" * 64])
def test_any_printable_labeler_name_is_the_author(client_factory, project_dir: Path, name: str) -> None:
    client = client_factory()
    iid = _next(client, name, 1)[0]["image_id"]
    _label(client, name, iid, "coat")
    with open_project(project_dir) as proj:
        assert proj.store.label_history(iid)[-1].author == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        " ann",
        "ann ",
        "\u00a0ann",
        "ann\n",
        "a\tb",
        "a\u202eb",
        "a\u200bb",
        "a\u2028b",
        "a\u0085b",
        "a\U000e0041b",
        "a" * 65,
    ],
)
def test_unprintable_or_padded_names_are_refused(client_factory, name: str) -> None:
    client = client_factory()
    assert client.post("/api/next", json={"user": name, "n": 1}).status_code == 422
    if name and len(name) <= 64:
        assert client.post("/api/classes", json={"name": name}).status_code == 422
    assert client.post("/api/classes", json={"name": "a,b"}).status_code == 422
    assert client.get("/api/project").json()["classes"][-1] == "ankle-boot"


def test_name_patterns_refuse_exactly_the_control_and_format_characters() -> None:
    import re
    import unicodedata

    from activelab.server.schemas import SPACES, UNPRINTABLE

    refused = re.compile(f"[{UNPRINTABLE}]")
    spaces = re.compile(f"[{SPACES}]")
    for cp in range(0x110000):
        ch, category = chr(cp), unicodedata.category(chr(cp))
        if category == "Cs":
            continue
        expected = category in ("Cc", "Cf", "Zl", "Zp") or 0x13430 <= cp <= 0x1343F  # Unicode 15's Cf
        assert bool(refused.match(ch)) == expected, (hex(cp), category)
        assert bool(spaces.match(ch)) == (category == "Zs"), hex(cp)


def test_classes_can_be_retired_and_adding_can_be_switched_off(client_factory, project_dir: Path) -> None:
    client = client_factory()
    assert client.post("/api/classes", json={"name": "Zoë's class"}).json()["classes"][-1] == "Zoë's class"
    res = client.post("/api/classes/retire", json={"name": "Zoë's class", "user": "José"})
    assert res.status_code == 200 and res.json() == {
        "classes": client.get("/api/project").json()["classes"],
        "retired_classes": ["Zoë's class"],
    }
    project = client.get("/api/project").json()
    assert "Zoë's class" not in project["classes"] and project["retired_classes"] == ["Zoë's class"]
    assert project["allow_new_classes"] is True
    iid = _next(client, "ann", 1)[0]["image_id"]
    assert client.post("/api/labels", json={"user": "ann", "image_id": iid, "label": "Zoë's class"}).status_code == 409
    assert client.post("/api/classes/retire", json={"name": "coat", "user": "ann"}).status_code == 409  # labeled
    assert client.post("/api/classes/retire", json={"name": "nope", "user": "ann"}).status_code == 404
    assert client.post("/api/classes", json={"name": "Zoë's class"}).json()["retired_classes"] == []  # restored
    with open_project(project_dir) as proj:
        events = proj.store.engine.connect().execute(text("SELECT action, author FROM class_events ORDER BY id")).all()
        assert [tuple(e) for e in events] == [("retire", "José"), ("restore", "activelab")]

    settings = load_settings(project_dir / "activelab.yaml")
    settings.labeling.allow_new_classes = False
    save_settings(settings, project_dir / "activelab.yaml")
    locked = client_factory()
    assert locked.get("/api/project").json()["allow_new_classes"] is False
    res = locked.post("/api/classes", json={"name": "junk"})
    assert res.status_code == 403 and "labeling.allow_new_classes" in res.json()["detail"]
    assert "junk" not in locked.get("/api/project").json()["classes"]


def test_leases_are_advisory_and_items_say_who_holds_them(client_factory, project_dir: Path) -> None:
    client = client_factory()
    iid = _next(client, "ann", 1)[0]["image_id"]
    assert _next(client, "ann", 1, exclude=[iid])[0]["held_by"] is None  # your own lease is not "held by"
    assert client.get(f"/api/images/{iid}", params={"user": "bob"}).json()["held_by"] == "ann"
    assert client.get(f"/api/images/{iid}", params={"user": "ann"}).json()["held_by"] is None
    assert client.get(f"/api/images/{iid}").json()["held_by"] == "ann"
    assert _label(client, "bob", iid, "coat")["event_id"] > 0  # bob may still label ann's image
    with open_project(project_dir) as proj:
        assert proj.store.label_history(iid)[-1].author == "bob"


def test_schema_bounds_are_exact_in_json(client_factory) -> None:
    from activelab.server.schemas import MAX_ID

    schema = client_factory().get("/openapi.json").json()

    def bounds(node):  # type: ignore[no-untyped-def]
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
                    yield value
                yield from bounds(value)
        elif isinstance(node, list):
            for value in node:
                yield from bounds(value)

    found = list(bounds(schema))
    # FastAPI writes body bounds as floats: every bound must be an integer a double holds exactly
    assert MAX_ID in found and all(b == int(b) and abs(int(b)) <= 2**53 - 1 for b in found), found
    assert schema["components"]["schemas"]["LabelRequest"]["allOf"]
    client = client_factory()
    for image_id, status in [(MAX_ID, 404), (MAX_ID + 1, 422), (2**63, 422)]:
        assert client.get(f"/api/images/{image_id}").status_code == status
        assert client.post("/api/skip", json={"user": "ann", "image_id": image_id}).status_code == status
    iid = _next(client, "ann", 1)[0]["image_id"]
    for extra in [{"label": "coat", "review": 0}, {"unsure": 1}, {"label": "coat", "unsure": "false"}]:
        assert client.post("/api/labels", json={"user": "ann", "image_id": iid, **extra}).status_code == 422, extra
    assert client.post("/api/labels", json={"user": "ann", "image_id": float(iid), "label": "coat"}).status_code == 200


def test_author_names_the_labeler_and_user_is_still_read(client_factory, project_dir: Path) -> None:
    client = client_factory()
    first, second, third = (i["image_id"] for i in _next(client, "ann", 3))
    assert client.post("/api/labels", json={"author": "ann", "image_id": first, "label": "coat"}).status_code == 200
    assert client.post("/api/labels", json={"user": "bob", "image_id": second, "label": "bag"}).status_code == 200
    both = client.post("/api/labels", json={"author": "ann", "user": "bob", "image_id": second, "label": "bag"})
    assert both.status_code == 422 and "not both" in both.text
    neither = client.post("/api/labels", json={"image_id": second, "label": "bag"})
    assert neither.status_code == 422 and "give author" in neither.text
    assert client.post("/api/undo", json={"author": "bob"}).json()["item"]["image_id"] == second
    held_by = {
        f"{key}={name}": client.get(f"/api/images/{third}", params={key: name}).json()["held_by"]
        for key, name in (("author", "ann"), ("author", "zed"), ("user", "ann"))
    }
    assert held_by == {"author=ann": None, "author=zed": "ann", "user=ann": None}
    with open_project(project_dir) as proj:
        assert [(e.author, e.label) for e in proj.store.label_history(first)] == [("ann", "coat")]
        assert [(e.author, e.label) for e in proj.store.label_history(second)] == [("bob", "bag"), ("bob", None)]
