"""The Label Studio ML backend, driven with the request shapes Label Studio sends (label-studio-ml-backend's api.py).

A real Label Studio server is not started here (see docs/formats.md); every body
below is what Label Studio posts to an ML backend: /setup with the labeling
config, /predict with tasks, /webhook with an annotation event.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from activelab.loop.formats.labelstudio import label_config
from activelab.loop.project import Project, open_project
from activelab.loop.trainer import BackgroundTrainer
from activelab.server.ls_backend import LabelStudioBackend, create_ls_backend_app

from .conftest import TAGS, record_round

CONFIG = """<View><Image name="img" value="$photo"/>
<Choices name="kind" toName="img"><Choice value="bag"/><Choice value="dress"/></Choices></View>"""


@pytest.fixture
def project(project_dir: Path) -> Iterator[Project]:
    with open_project(project_dir) as proj:
        yield proj


@pytest.fixture
def backend(project: Project) -> LabelStudioBackend:
    trainer = BackgroundTrainer(project, retrain_every=1000)
    return LabelStudioBackend(project, trainer, images_root=project.root / "data")


@pytest.fixture
def client(backend: LabelStudioBackend) -> Iterator[TestClient]:
    with TestClient(create_ls_backend_app(backend)) as c:
        yield c


def _task(path: str, key: str = "photo") -> dict[str, object]:
    rel = Path(path).relative_to(Path(path).parents[1]).as_posix()
    return {"id": 7, "data": {key: f"/data/local-files/?d={rel}"}}


def _unlabeled(project: Project, n: int) -> list[int]:
    labeled = project.store.labeled_image_ids()
    return [img.id for img in project.store.images("pool") if img.id not in labeled][:n]


def test_health_and_setup_remember_the_config_names(client: TestClient, project: Project) -> None:
    health = client.get("/health").json()
    assert health["status"] == "UP" and health["model_version"] == "activelab-untrained"

    assert client.post("/setup", json={"project": "3.1700000000", "schema": CONFIG}).json() == {
        "model_version": "activelab-untrained"
    }
    assert project.store.service_state("labelstudio") == {
        "3": {"from_name": "kind", "to_name": "img", "value": "photo"}
    }
    bad = client.post("/setup", json={"project": "3.1", "schema": label_config(["bag", "unicorn"])})
    assert bad.status_code == 422 and "['unicorn']" in bad.json()["detail"]
    several = client.post("/setup", json={"project": "3.1", "schema": label_config(["bag"], multiple=True)})
    assert several.status_code == 422 and 'remove choice="multiple"' in several.json()["detail"]


def test_webhook_records_the_annotation_with_its_annotator_and_time(client: TestClient, project: Project) -> None:
    client.post("/setup", json={"project": "3.1700000000", "schema": CONFIG})
    iid = _unlabeled(project, 1)[0]
    image = project.store.get_image(iid)
    annotation = {
        "id": 11,
        "completed_by": {"id": 2, "email": "lee@example.org"},
        "created_at": "2025-05-01T08:00:00Z",
        "updated_at": "2025-05-01T08:05:00Z",
        "result": [{"from_name": "kind", "to_name": "img", "type": "choices", "value": {"choices": ["bag"]}}],
    }

    response = client.post(
        "/webhook",
        json={
            "action": "ANNOTATION_CREATED",
            "project": {"id": 3},
            "task": _task(image.path),
            "annotation": annotation,
        },
    )

    assert response.status_code == 201 and response.json()["labels_added"] == 1
    current = project.store.current_labels()[iid]
    assert (current.label, current.author, current.source, current.created_at.isoformat()) == (
        "bag",
        "lee@example.org",
        "human",
        "2025-05-01T08:05:00+00:00",
    )
    annotation["result"][0]["value"] = {"choices": ["dress"]}
    annotation["updated_at"] = "2025-05-01T09:00:00Z"
    client.post(
        "/webhook",
        json={
            "action": "ANNOTATION_UPDATED",
            "project": {"id": 3},
            "task": _task(image.path),
            "annotation": annotation,
        },
    )
    assert project.store.current_labels()[iid].label == "dress"
    assert (
        client.post("/webhook", json={"action": "PROJECT_UPDATED", "project": {"id": 3}}).json()["status"] == "ignored"
    )
    assert client.post("/webhook", json={"action": "START_TRAINING", "project": {"id": 3}}).status_code == 201
    assert project.store.service_state("trainer")["requested"] is True


def test_predict_gives_the_queue_order_as_score_after_a_round(
    client: TestClient, backend: LabelStudioBackend, project: Project
) -> None:
    task_ids = _unlabeled(project, 1)
    empty = client.post(
        "/predict", json={"tasks": [_task(project.store.get_image(task_ids[0]).path, "image")], "project": "3.1"}
    ).json()
    assert empty["results"] == [{"result": [], "score": 0.0, "model_version": "activelab-untrained"}]

    state = backend.trainer.run_once()
    assert state["last_error"] is None, state["last_error"]
    number = state["last_round"]
    queue = [iid for iid, _ in project.store.round_selection(number)]
    labeled = next(iter(project.store.current_labels("pool")))
    tasks = [{"data": {"image": "/data/upload/1/x.png", "activelab_id": iid}} for iid in (queue[0], queue[-1])]
    tasks.append(_task(project.store.get_image(labeled).path, "image"))

    body = client.post(
        "/predict", json={"tasks": tasks, "project": "3.1", "label_config": label_config(project.store.class_names())}
    ).json()

    first, last, known = body["results"]
    assert body["model_version"] == f"activelab-round-{number}"
    assert (first["score"], last["score"], known["score"]) == (1.0, 1 / len(queue), 0.0)
    stored = project.store.latest_predictions([queue[0]])[queue[0]]
    assert first["result"][0]["value"] == {"choices": [stored[0]]} and first["result"][0]["score"] == stored[1]
    assert first["result"][0]["from_name"] == "choice" and first["result"][0]["to_name"] == "image"
    (guess,) = known["result"]  # a labeled image: predicted by the saved model on request
    assert guess["value"]["choices"][0] in project.store.class_names() and 0 < guess["score"] <= 1


MULTI_CONFIG = """<View><Image name="img" value="$photo"/>
<Choices name="kind" toName="img" choice="multiple"><Choice value="bag"/><Choice value="shirt"/></Choices></View>"""


def _event(image_path: str, choices: list[str], when: str) -> dict[str, object]:
    annotation = {
        "id": 12,
        "completed_by": {"id": 3, "email": "kim@example.org"},
        "updated_at": when,
        "result": [{"from_name": "kind", "to_name": "img", "type": "choices", "value": {"choices": choices}}],
    }
    return {"action": "ANNOTATION_UPDATED", "project": {"id": 4}, "task": _task(image_path), "annotation": annotation}


def test_a_multilabel_project_records_and_predicts_sets(multilabel_dir: Path) -> None:
    queue = record_round(multilabel_dir, 3)
    with open_project(multilabel_dir) as proj:
        proj.store.save_predictions(1, [(queue[0], ["shirt", "bag"], 0.75), (queue[1], [], 0.875)])
        first, second = (proj.store.get_image(i).path for i in queue[:2])
        root = Path(first).parents[1]  # the webhook's tasks name the files under it (local-files URLs)
        backend = LabelStudioBackend(proj, BackgroundTrainer(proj, retrain_every=1000), images_root=root)
        with TestClient(create_ls_backend_app(backend)) as client:
            one = client.post("/setup", json={"project": "4.1", "schema": label_config(["bag", "shirt"])})
            assert one.status_code == 422 and 'add choice="multiple"' in one.json()["detail"]
            assert client.post("/setup", json={"project": "4.1700000000", "schema": MULTI_CONFIG}).status_code == 200
            res = client.post("/webhook", json=_event(first, ["shirt", "bag"], "2025-05-01T08:00:00Z")).json()
            assert (res["labels_added"], res["skipped"]) == (1, 0)
            assert client.post("/webhook", json=_event(second, [], "2025-05-01T08:01:00Z")).json()["labels_added"] == 1
            unknown = client.post("/webhook", json=_event(second, ["bag", "hat"], "2025-05-01T09:00:00Z")).json()
            assert (unknown["labels_added"], unknown["skipped"]) == (0, 1)
            current = proj.store.current_annotations()
            assert {i: (c.payload, c.author, c.source) for i, c in current.items()} == {
                queue[0]: (["bag", "shirt"], "kim@example.org", "human"),
                queue[1]: ([], "kim@example.org", "human"),
            }

            tasks = [{"data": {"photo": "/data/upload/1/x.png", "activelab_id": iid}} for iid in queue[:2]]
            body = client.post("/predict", json={"tasks": tasks, "project": "4.1700000000"}).json()
            assert [r["result"] for r in body["results"]] == [
                [
                    {
                        "from_name": "kind",
                        "to_name": "img",
                        "type": "choices",
                        "value": {"choices": ["bag", "shirt"]},
                        "score": 0.75,
                    }
                ],
                [{"from_name": "kind", "to_name": "img", "type": "choices", "value": {"choices": []}, "score": 0.875}],
            ]


def test_a_single_label_project_skips_several_choices(client: TestClient, project: Project) -> None:
    client.post("/setup", json={"project": "3.1700000000", "schema": CONFIG})
    image = project.store.get_image(_unlabeled(project, 1)[0])
    before = project.store.n_label_events()
    res = client.post("/webhook", json=_event(image.path, ["bag", "dress"], "2025-05-01T08:00:00Z")).json()
    assert (res["labels_added"], res["skipped"]) == (0, 1)
    assert project.store.n_label_events() == before


def test_a_multilabel_model_predicts_a_set_for_an_image_its_round_did_not(multilabel_dir: Path) -> None:
    answers = [["bag"], ["bag", "shirt"], ["sandal"], [], ["sneaker", "shirt"], ["shirt"]]
    with open_project(multilabel_dir) as proj:
        labeled = [img.id for img in proj.store.images("pool")][: len(answers)]
        proj.store.add_annotations(list(zip(labeled, answers)), author="ann", source="human")
        backend = LabelStudioBackend(proj, BackgroundTrainer(proj, retrain_every=1000), images_root=proj.root)
        state = backend.trainer.run_once()
        assert state["last_error"] is None, state["last_error"]
        assert labeled[0] not in proj.store.latest_predictions([labeled[0]])  # the round predicts the unlabeled
        with TestClient(create_ls_backend_app(backend)) as client:
            tasks = [{"data": {"image": "/data/upload/1/x.png", "activelab_id": labeled[0]}}]
            (result,) = client.post("/predict", json={"tasks": tasks, "project": "4.1"}).json()["results"]
    (guess,) = result["result"]
    assert guess["type"] == "choices" and set(guess["value"]["choices"]) <= set(TAGS)
    assert guess["value"]["choices"] == sorted(guess["value"]["choices"]) and 0.5 <= guess["score"] <= 1
