"""Label Studio's ML backend API over one activelab project: ``activelab ls-backend PROJECT``.

Label Studio calls ``GET /health``, ``POST /setup`` (when the backend is
connected; it sends the labeling config), ``POST /predict`` (tasks in, one
prediction per task out) and ``POST /webhook`` (``ANNOTATION_CREATED`` /
``ANNOTATION_UPDATED`` / ``START_TRAINING``); ``POST /train`` takes the older
``{"annotations": [...]}`` body. Annotations become label events (annotator and
time kept, as in the file import) and wake the background trainer. A
prediction's ``score`` is the image's place in activelab's queue (1.0 = label
first), so sorting Label Studio's tasks by prediction score gives the
active-learning order; each result carries the model's confidence.

The project's task decides what a choice means: one class per image, or for a
multi-label project (``choice="multiple"``) the set of classes chosen, recorded as
one annotation and predicted as a multi-choice result. A detection project's
labeling config has ``RectangleLabels``: its annotations are rectangles (percents
of the image, turned into boxes in pixels) and its predictions one rectangle per
predicted box, each with the box's score.

Like the rest of ``server/``, this only calls the loop and the store: the
labeling config of each Label Studio project is kept in the store's service state.
"""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, HTTPException

from activelab.exceptions import ActivelabError, InputError, NotFoundError
from activelab.loop.formats._common import file_sha256
from activelab.loop.formats.labelstudio import (
    BOX_FROM_NAME,
    FROM_NAME,
    TO_NAME,
    ForeignLabel,
    annotation_label,
    image_reference,
    queue_scores,
    record_labels,
    rectangle_result,
    resolve_image,
)
from activelab.loop.project import Project
from activelab.loop.session import ActiveSession
from activelab.loop.trainer import BackgroundTrainer
from activelab.tasks import Payload, Task

STATE_KEY = "labelstudio"
MODEL_CLASS = "activelab"
LABEL_EVENTS = ("ANNOTATION_CREATED", "ANNOTATION_UPDATED")
TRAIN_EVENTS = ("START_TRAINING",)
JsonBody = Annotated[dict[str, Any], Body()]


class LabelStudioBackend:
    """The ML backend's operations on one opened project; the routes only parse and call these."""

    def __init__(self, project: Project, trainer: BackgroundTrainer, *, images_root: Path) -> None:
        self.project = project
        self.trainer = trainer
        self.images_root = images_root
        self._model_lock = threading.Lock()
        self._model: tuple[int, Any] | None = None  # (round number, adapter): reloaded when a round finishes

    @property
    def store(self):  # type: ignore[no-untyped-def]
        return self.project.store

    @property
    def task(self) -> Task:
        """The project's task: what a Label Studio choice (or set of choices, or rectangles) is as an annotation."""
        return self.project.task()

    @property
    def boxes(self) -> bool:
        """Whether the project's annotations are boxes (Label Studio's ``RectangleLabels``)."""
        return self.task.output == "boxes"

    def model_version(self) -> str:
        number, _ = queue_scores(self.store)
        return f"activelab-round-{number}" if number is not None else "activelab-untrained"

    # ------------------------------------------------------------- setup
    def setup(self, ls_project: str, schema: str) -> dict[str, Any]:
        """Remember the labeling config's names for ``ls_project``; refuse choices that are not classes and
        a config whose ``choice`` mode is not the project's (several classes per image only for sets)."""
        names = config_names(schema)
        if names["boxes"] != self.boxes:
            control, kind = ("RectangleLabels", "boxes") if self.boxes else ("Choices", "classes")
            raise HTTPException(
                422, f"this project's annotations are {kind}; label with a <{control}> control and connect again"
            )
        sets = self.task.output == "sigmoid"  # independent classes: an image carries any number of them
        if names["multiple"] != sets:
            fix = 'add choice="multiple" to' if sets else 'remove choice="multiple" from'
            kind = "a set of classes" if sets else "one class"
            raise HTTPException(
                422,
                f"this project's label is {kind} per image; {fix} the labeling config's <Choices> and connect again",
            )
        unknown = sorted(set(names["choices"]) - set(self.store.class_names()))
        if unknown:
            raise HTTPException(
                422,
                f"the labeling config's choices {unknown} are not classes of this project; "
                "add them with `activelab classes add PROJECT <names>` and connect again",
            )
        state = self.store.service_state(STATE_KEY) or {}
        state[_project_key(ls_project)] = {k: names[k] for k in ("from_name", "to_name", "value")}
        self.store.set_service_state(STATE_KEY, state)
        return {"model_version": self.model_version()}

    def _names(self, ls_project: Any, label_config: str | None) -> dict[str, str]:
        if label_config:
            names = config_names(label_config)
            return {k: names[k] for k in ("from_name", "to_name", "value")}
        saved = (self.store.service_state(STATE_KEY) or {}).get(_project_key(ls_project))
        return saved or {"from_name": BOX_FROM_NAME if self.boxes else FROM_NAME, "to_name": TO_NAME, "value": "image"}

    # ----------------------------------------------------------- predict
    def predict(self, tasks: list[dict[str, Any]], ls_project: Any, label_config: str | None) -> list[dict[str, Any]]:
        """One prediction per task, in order: the class (a multi-label project: the predicted set, several
        choices), its confidence, and the queue priority as ``score``."""
        names = self._names(ls_project, label_config)
        number, priority = queue_scores(self.store)
        version = self.model_version()
        ids = [self._image_id(task, names["value"]) for task in tasks]
        known = [iid for iid in ids if iid is not None]
        stored = {iid: p for iid, p in self.store.latest_predictions(known).items() if p[2] == number}
        missing = [iid for iid in known if iid not in stored]
        fresh = self._model_predictions(missing, number) if missing and number is not None else {}
        sizes = {img.id: (img.width, img.height) for img in (self.store.get_image(i) for i in known)}
        out = []
        for iid in ids:
            guess = None if iid is None else (stored.get(iid) or fresh.get(iid))
            result = [] if iid is None or guess is None else self._results(guess, sizes[iid], names)
            out.append(
                {
                    "result": result,
                    "score": priority.get(iid, 0.0) if iid is not None else 0.0,
                    "model_version": version,
                }
            )
        return out

    def _results(
        self, guess: tuple[Payload, float], size: tuple[int, int], names: dict[str, str]
    ) -> list[dict[str, Any]]:
        """A prediction's results: one rectangle per predicted box (with its score), or one choices result."""
        payload, confidence = guess[0], guess[1]
        if self.boxes:
            return [
                rectangle_result(box, size, from_name=names["from_name"], to_name=names["to_name"]) for box in payload
            ]
        return [
            {
                "from_name": names["from_name"],
                "to_name": names["to_name"],
                "type": "choices",
                "value": {"choices": _choices(payload)},
                "score": confidence,
            }
        ]

    def _image_id(self, task: dict[str, Any], value_key: str) -> int | None:
        """The stored image a task shows: by ``data.activelab_id`` (our export), else by the file's content."""
        data = task.get("data") or {}
        iid = data.get("activelab_id")
        if isinstance(iid, int):
            try:
                return self.store.get_image(iid).id
            except NotFoundError:
                pass  # an id from another project: look the file up instead
        reference = image_reference(data, value_key)
        if reference is None:
            return None
        sha = file_sha256(resolve_image(reference, self.images_root))
        image = None if sha is None else self.store.find_image(sha)
        return None if image is None else image.id

    def _model_predictions(self, image_ids: list[int], number: int) -> dict[int, tuple[Payload, float]]:
        """The latest round's model on images it did not predict when the round ran (e.g. labeled ones)."""
        with self._model_lock:
            if self._model is None or self._model[0] != number:
                try:
                    self._model = (number, ActiveSession(self.project).latest_model())
                except ActivelabError:
                    return {}
            model = self._model[1]
        images = {img.id: img for img in (self.store.get_image(i) for i in image_ids)}
        probs = model.predict_proba([images[i].path for i in image_ids], keys=[images[i].sha256 for i in image_ids])
        return dict(zip(image_ids, self.task.decode(probs, model.classes)))

    # ---------------------------------------------------------- annotate
    def record(
        self,
        tasks_and_annotations: list[tuple[dict[str, Any], dict[str, Any]]],
        ls_project: Any,
        label_config: str | None,
    ) -> dict[str, int]:
        """Record annotations as label events and wake the trainer; counts of what happened.

        An annotation is skipped when its image is unknown, it names a class the project lacks, or
        the project's task refuses its choices (several classes in a single-label project) or its
        rectangles (a box outside the image).
        """
        value_key = self._names(ls_project, label_config)["value"]
        classes = self.store.class_names()
        wanted: dict[int, list[tuple[ForeignLabel, Payload]]] = defaultdict(list)
        skipped = 0
        for task, annotation in tasks_and_annotations:
            iid = self._image_id(task, value_key)
            try:
                label = annotation_label(annotation, boxes=self.boxes)
            except ActivelabError:
                label = None
            payload = None if iid is None or label is None else self._annotation(iid, label, classes)
            if iid is None or label is None or payload is None:
                skipped += 1
                continue
            wanted[iid].append((label, payload))
        # a person labeled it, in Label Studio
        added, conflicts = record_labels(self.store, wanted, source="human")
        if added:
            self.trainer.notify()
        return {"labels_added": added, "conflicts": conflicts, "skipped": skipped}

    def _annotation(self, image_id: int, label: ForeignLabel, classes: list[str]) -> Payload | None:
        """The validated annotation of ``label`` on the stored image (boxes in its pixels); None if it is not one."""
        if not set(label.choices) <= set(classes):
            return None
        image = self.store.get_image(image_id)
        size = (image.width, image.height)
        try:
            return self.task.validate(label.payload(self.task, size), classes, size=size)
        except InputError:
            return None

    def webhook(self, payload: dict[str, Any]) -> dict[str, Any]:
        action = payload.get("action")
        project = payload.get("project") or {}
        if action in LABEL_EVENTS:
            counts = self.record(
                [(payload.get("task") or {}, payload.get("annotation") or {})],
                project.get("id"),
                project.get("label_config"),
            )
            return {"status": "ok", **counts}
        if action in TRAIN_EVENTS:
            self.trainer.request_round()
            return {"status": "ok", "training": "requested"}
        return {"status": "ignored", "action": action}

    def train(self, body: dict[str, Any]) -> dict[str, Any]:
        """The older ``/train`` call: every annotation of the project, each with its ``task``; then a round."""
        pairs = [(a.get("task") or {}, a) for a in body.get("annotations") or [] if isinstance(a, dict)]
        counts = self.record(pairs, body.get("project"), body.get("label_config"))
        self.trainer.request_round()
        return {"status": "ok", "training": "requested", **counts}


def config_names(schema: str) -> dict[str, Any]:
    """The labeling control's name (``Choices``, else ``RectangleLabels``), its ``toName``, the image's data key,
    the class values of a config, whether it lets a person pick several of them (``choice="multiple"``) and
    whether it draws boxes."""
    try:
        root = ET.fromstring(schema)
    except ET.ParseError as exc:
        raise HTTPException(422, f"the labeling config is not valid XML ({exc})") from exc
    control = root.find(".//Choices")
    boxes = control is None
    if control is None:
        control = root.find(".//RectangleLabels")
    if control is None:
        raise HTTPException(
            422,
            "the labeling config has neither <Choices> nor <RectangleLabels>; "
            "activelab predicts image classes or boxes",
        )
    to_name = control.get("toName", TO_NAME)
    image = next((el for el in root.iter() if el.get("name") == to_name), None)
    value = (image.get("value", "$image") if image is not None else "$image").lstrip("$")
    return {
        "from_name": control.get("name", BOX_FROM_NAME if boxes else FROM_NAME),
        "to_name": to_name,
        "value": value,
        "choices": [c.get("value", "") for c in control.iter("Label" if boxes else "Choice")],
        "multiple": control.get("choice") == "multiple",
        "boxes": boxes,
    }


def _choices(payload: Payload) -> list[str]:
    """A predicted payload as a ``choices`` value: one class, or every class of a predicted set."""
    return [payload] if isinstance(payload, str) else list(payload)


def _project_key(ls_project: Any) -> str:
    """Label Studio sends ``"<id>.<created timestamp>"`` on setup and predict, the bare id in webhooks."""
    return str(ls_project).split(".", 1)[0]


def create_ls_backend_app(backend: LabelStudioBackend) -> FastAPI:
    """The FastAPI app Label Studio connects to as an ML backend."""
    app = FastAPI(title="activelab — Label Studio ML backend", docs_url=None, redoc_url=None)

    @app.get("/")
    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "UP", "model_class": MODEL_CLASS, "model_version": backend.model_version()}

    @app.post("/setup")
    def setup(body: JsonBody) -> dict[str, Any]:
        return backend.setup(str(body.get("project", "")), str(body.get("schema") or ""))

    @app.post("/predict")
    def predict(body: JsonBody) -> dict[str, Any]:
        tasks = body.get("tasks") or []
        if not isinstance(tasks, list):
            raise HTTPException(422, "'tasks' must be a list of Label Studio tasks")
        return {
            "results": backend.predict(tasks, body.get("project"), body.get("label_config")),
            "model_version": backend.model_version(),
        }

    @app.post("/webhook", status_code=201)
    def webhook(body: JsonBody) -> dict[str, Any]:
        return backend.webhook(body)

    @app.post("/train", status_code=201)
    def train(body: JsonBody) -> dict[str, Any]:
        return backend.train(body)

    @app.get("/metrics")
    def metrics() -> dict[str, Any]:
        return {}

    return app
