"""The REST API on a multi-label project: sets of classes submitted, validated, undone, hinted and reviewed."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import httpx
import pandas as pd

from activelab.loop.project import open_project

from .conftest import CLIENT_HEADERS, TAGS, record_round


def _submit(client, image_id: int, author: str = "ann", **body):
    return client.post("/api/labels", json={"user": author, "image_id": image_id, **body})


def _annotations(root: Path) -> dict[int, list[str] | str]:
    with open_project(root) as proj:
        return {iid: a.payload for iid, a in proj.store.current_annotations().items()}


def test_project_says_labels_are_sets(client_factory, multilabel_dir: Path) -> None:
    info = client_factory(project=multilabel_dir).get("/api/project").json()
    assert (info["task"], info["answer"], info["classes"]) == ("multilabel", "classes", TAGS)


def test_a_set_of_classes_is_stored_sorted_and_an_empty_set_is_an_answer(client_factory, multilabel_dir: Path) -> None:
    client = client_factory(project=multilabel_dir)
    ids = [i["image_id"] for i in client.post("/api/next", json={"user": "ann", "n": 3}).json()["items"]]
    res = _submit(client, ids[0], labels=["shirt", "bag", "shirt"])
    assert res.status_code == 200, res.text
    body = res.json()
    assert (body["label"], body["labels"], body["flagged"], body["held_out"]) == (None, ["bag", "shirt"], False, False)
    assert _submit(client, ids[1], labels=[]).json()["labels"] == []
    assert _annotations(multilabel_dir) == {ids[0]: ["bag", "shirt"], ids[1]: []}
    detail = client.get(f"/api/images/{ids[0]}").json()
    assert (detail["label"], detail["labels"]) == (None, ["bag", "shirt"])
    assert [(e["label"], e["labels"], e["author"], e["source"]) for e in detail["history"]] == [
        (None, ["bag", "shirt"], "ann", "human")
    ]
    # "not sure" withdraws the set; the empty set stays an answer
    assert _submit(client, ids[1], unsure=True).json()["labels"] is None
    assert _annotations(multilabel_dir) == {ids[0]: ["bag", "shirt"]}


def test_multilabel_answers_are_validated_like_single_label_ones(client_factory, multilabel_dir: Path) -> None:
    client = client_factory(project=multilabel_dir)
    with open_project(multilabel_dir) as proj:
        proj.store.add_classes(["coat"])
        proj.store.retire_class("coat", author="lead")
    unknown = _submit(client, 1, labels=["bag", "hat"])
    assert unknown.status_code == 404 and unknown.json()["detail"].startswith("no class named 'hat'")
    retired = _submit(client, 1, labels=["coat"])
    assert retired.status_code == 409 and "class 'coat' is retired" in retired.json()["detail"]
    one_name = _submit(client, 1, label="bag")
    assert one_name.status_code == 422 and "a multi-label annotation is a list" in one_name.json()["detail"]
    both = _submit(client, 1, label="bag", labels=["bag"])
    assert both.status_code == 422 and "not both" in both.text
    assert _submit(client, 1, labels="bag").status_code == 422
    assert _annotations(multilabel_dir) == {}


def test_a_single_label_project_refuses_a_set(client_factory, project_dir: Path) -> None:
    res = _submit(client_factory(), 30, labels=["bag"])
    assert res.status_code == 422 and "a classification label is one class name" in res.json()["detail"]


def test_undo_restores_the_previous_set(client_factory, multilabel_dir: Path) -> None:
    client = client_factory(project=multilabel_dir)
    _submit(client, 2, labels=["sandal"])
    _submit(client, 2, labels=["sandal", "sneaker"])
    undone = client.post("/api/undo", json={"user": "ann"}).json()
    assert (undone["restored_label"], undone["restored_labels"], undone["item"]["image_id"]) == (None, ["sandal"], 2)
    assert _annotations(multilabel_dir) == {2: ["sandal"]}
    again = client.post("/api/undo", json={"user": "ann"}).json()
    assert (again["restored_label"], again["restored_labels"]) == (None, None)
    assert _annotations(multilabel_dir) == {}


def test_the_hint_is_the_predicted_set(client_factory, multilabel_dir: Path) -> None:
    queue = record_round(multilabel_dir, 3)
    with open_project(multilabel_dir) as proj:
        proj.store.save_predictions(1, [(queue[0], ["shirt", "bag"], 0.75), (queue[1], [], 0.9)])
    client = client_factory(project=multilabel_dir)
    items = client.post("/api/next", json={"user": "ann", "n": 3}).json()["items"]
    assert [i["image_id"] for i in items] == queue
    first, second, third = (i["suggestion"] for i in items)
    assert first == {
        "label": None,
        "labels": ["bag", "shirt"],
        "boxes": None,
        "mask": None,
        "confidence": 0.75,
        "source": "prediction",
        "round": 1,
    }
    assert (second["labels"], second["confidence"]) == ([], 0.9)
    assert third is None
    assert items[0]["prediction"] == {
        "label": None,
        "labels": ["bag", "shirt"],
        "boxes": None,
        "mask": None,
        "confidence": 0.75,
        "round": 1,
    }
    page = client.get("/api/queue").json()["items"]
    assert [p["prediction"] and p["prediction"]["labels"] for p in page] == [["bag", "shirt"], [], None]


def test_different_sets_from_two_labelers_are_flagged_and_reviewed(client_factory, multilabel_dir: Path) -> None:
    client = client_factory(project=multilabel_dir)
    assert _submit(client, 4, "ann", labels=["bag"]).json()["flagged"] is False
    assert _submit(client, 4, "bob", labels=["bag"]).json()["flagged"] is False  # the same set: no flag
    assert _submit(client, 4, "cy", labels=["bag", "shirt"]).json()["flagged"] is True
    review = client.post("/api/next", json={"user": "dee", "n": 5, "mode": "review"}).json()["items"]
    assert [i["image_id"] for i in review] == [4]
    assert review[0]["flag"]["reason"] == "disagreement"
    assert review[0]["flag"]["details"]["labels"] == {"bob": ["bag"], "cy": ["bag", "shirt"]}
    assert [e["labels"] for e in review[0]["history"]] == [["bag"], ["bag"], ["bag", "shirt"]]
    resolved = _submit(client, 4, "dee", labels=["bag", "shirt"], review=True)
    assert resolved.json()["flagged"] is False
    assert client.post("/api/next", json={"user": "dee", "n": 5, "mode": "review"}).json()["items"] == []
    assert _annotations(multilabel_dir) == {4: ["bag", "shirt"]}


def test_openapi_publishes_the_projects_form_of_a_label(client_factory, multilabel_dir: Path) -> None:
    multi = client_factory(project=multilabel_dir).get("/openapi.json").json()["components"]["schemas"]["LabelRequest"]
    assert multi["allOf"][1]["anyOf"][0]["required"] == ["labels"]
    assert multi["properties"]["label"] == {"type": "null", "description": "Not used by this project's task."}
    assert multi["properties"]["labels"]["anyOf"][0]["type"] == "array"
    single = client_factory().get("/openapi.json").json()["components"]["schemas"]["LabelRequest"]
    assert single["allOf"][1]["anyOf"][0]["required"] == ["label"]
    assert single["properties"]["labels"]["type"] == "null"


def test_a_trainer_round_on_sets_hints_predicted_sets(client_factory, multilabel_dir: Path) -> None:
    client = client_factory(project=multilabel_dir)
    ids = [i["image_id"] for i in client.post("/api/next", json={"user": "ann", "n": 6}).json()["items"]]
    answers = [["bag"], ["bag", "shirt"], ["sandal"], [], ["sneaker", "shirt"], ["shirt"]]
    for iid, labels in zip(ids, answers):
        assert _submit(client, iid, labels=labels).status_code == 200
    state = client.app.state.service.trainer.run_once()
    assert state["last_error"] is None and state["last_round"] is not None, state
    assert state["last_metrics"]["n_labeled"] == 6
    queue = client.get("/api/queue").json()
    assert queue["total"] == 6  # the other six pool images, ranked
    hints = [i["suggestion"] for i in client.post("/api/next", json={"user": "bob", "n": 6}).json()["items"]]
    assert all(h is not None and h["label"] is None and set(h["labels"]) <= set(TAGS) for h in hints), hints


def test_export_writes_the_sets(client_factory, multilabel_dir: Path) -> None:
    client = client_factory(project=multilabel_dir)
    _submit(client, 1, labels=["shirt", "bag"])
    _submit(client, 2, labels=[])
    res = client.get("/api/export", params={"format": "csv"})
    assert res.status_code == 200, res.text
    table = pd.read_csv(io.BytesIO(res.content), keep_default_na=False)
    labels = dict(zip(table["image_id"], table["label"]))
    assert (labels[1], labels[2]) == ("bag|shirt", "")


def test_label_dataframe_returns_sets_as_the_export_writes_them(sample: Path) -> None:
    from activelab.server import label_dataframe

    pool = pd.read_csv(sample / "pool.csv").head(3)
    df = pd.DataFrame({"filepath": [str(sample / p) for p in pool.filepath], "label": [["shirt", "bag"], None, None]})
    answers = iter([["sandal", "bag"], []])

    def label_the_rest(url: str) -> None:
        def work() -> None:
            with httpx.Client(base_url=url, headers=CLIENT_HEADERS, timeout=10) as client:
                for item in client.post("/api/next", json={"user": "ann", "n": 5}).json()["items"]:
                    res = client.post(
                        "/api/labels", json={"user": "ann", "image_id": item["image_id"], "labels": next(answers)}
                    )
                    assert res.status_code == 200, res.text

        threading.Thread(target=work, daemon=True).start()

    out = label_dataframe(df, TAGS, task="multilabel", on_ready=label_the_rest, timeout=120)
    assert list(out.label) == ["bag|shirt", "bag|sandal", ""]
    assert list(df.label) == [["shirt", "bag"], None, None]  # the input is not modified


def _record_rounds(root: Path, evals: list[tuple[int, dict[str, float]]]) -> None:
    """Finished rounds with these eval metrics, each at its number of labels (no training)."""
    with open_project(root) as proj:
        for n_labeled, scores in evals:
            number = proj.store.start_round(strategy="random", model="small_cnn", config={}, n_labeled=n_labeled)
            proj.store.finish_round(number, metrics={"eval": scores}, selection=[])


ROUND_EVALS = [
    (4, {"micro_f1": 0.5, "macro_f1": 0.25, "map": 0.625, "subset_accuracy": 0.125, "accuracy": 0.125}),
    (8, {"micro_f1": 0.75, "macro_f1": 0.5, "map": 0.875, "subset_accuracy": 0.25, "accuracy": 0.25}),
]


def test_stats_curve_reads_micro_f1_and_map_for_sets(client_factory, multilabel_dir: Path) -> None:
    _record_rounds(multilabel_dir, ROUND_EVALS)
    stats = client_factory(project=multilabel_dir).get("/api/stats").json()
    assert stats["curve_metrics"] == [{"key": "micro_f1", "name": "micro-F1"}, {"key": "map", "name": "mAP"}]
    assert stats["curve"] == [
        {"n_labeled": 4, "accuracy": 0.125, "micro_f1": 0.5, "map": 0.625, "agreement": None},
        {"n_labeled": 8, "accuracy": 0.25, "micro_f1": 0.75, "map": 0.875, "agreement": None},
    ]


def test_stats_curve_reads_accuracy_for_one_class(client_factory, project_dir: Path) -> None:
    _record_rounds(project_dir, [(20, {"accuracy": 0.5, "macro_f1": 0.375})])
    stats = client_factory().get("/api/stats").json()
    assert stats["curve_metrics"] == [{"key": "accuracy", "name": "accuracy"}]
    assert stats["curve"] == [{"n_labeled": 20, "accuracy": 0.5, "agreement": None}]


def test_dashboard_plots_micro_f1_and_map_under_the_csp(browser, multilabel_dir: Path) -> None:
    from activelab.server import ServerSettings

    from .browser import csp_violations, with_csp
    from .conftest import LiveServer

    _record_rounds(multilabel_dir, ROUND_EVALS)
    problems: list[str] = []
    with LiveServer(ServerSettings(project=multilabel_dir, trainer=False, similar_index=False)) as server:
        context = browser.new_context(viewport={"width": 1100, "height": 900})
        context.route("**/*", with_csp)
        page = context.new_page()
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("console", lambda m: problems.extend(csp_violations([m.text])))
        page.goto(server.url + "/dashboard?user=ann")
        page.wait_for_selector("#dashboard[data-ready='1']")
        titles = [t.text_content() for t in page.query_selector_all("#cards .card-title")]
        assert "Eval micro-F1" in titles and "Eval mAP" in titles and "Eval accuracy" not in titles
        values = {t: page.text_content(f"#cards .card:nth-child({titles.index(t) + 1}) .card-value") for t in titles}
        assert (values["Eval micro-F1"], values["Eval mAP"]) == ("75.0%", "87.5%")
        assert page.text_content("#curve-metrics") == "micro-F1 and mAP"
        assert len(page.query_selector_all("#chart-curve svg polyline")) == 2
        assert len(page.query_selector_all("#chart-curve svg circle")) == 4
        assert [t.text_content() for t in page.query_selector_all("#chart-curve svg .legend")] == ["micro-F1", "mAP"]
        context.close()
    assert problems == []
