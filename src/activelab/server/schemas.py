"""Request and response bodies of the REST API (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    model_validator,
)

from activelab.data.images import RASTER_MEDIA_TYPES

#: the largest id the API takes: 2**53 - 1 is the largest integer every JSON client reads exactly
#: (an IEEE double; a larger bound is rounded in the OpenAPI schema). Store ids never get near it.
MAX_ID = 2**53 - 1


def _integral(value: Any) -> Any:
    """``3.0`` is the integer 3, as in JSON Schema; other floats, strings and booleans stay refused."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


#: integers in request bodies are strict (no "5", no true), but 5.0 counts, as JSON Schema's "integer" says
Integral = BeforeValidator(_integral)
ImageId = Annotated[int, Field(ge=1, le=MAX_ID, description="An image id (from /api/next, /api/queue...)."), Integral]

#: longest user or class name, in characters
MAX_NAME = 64
#: most class names in one multi-label answer
MAX_CLASSES = 1000
#: most boxes in one detection answer (a person draws tens; the detector proposes at most 100)
MAX_BOXES = 500
#: longest base64 text of a mask PNG in one segmentation answer (the server's body limit, --max-body-mb, is
#: usually the tighter one; a palette PNG of a 1024 x 1024 mask painted by hand is tens of kilobytes)
MAX_MASK_PNG_CHARS = 16_000_000
#: a mask's content address: the sha256 of its canonical PNG, lower-case hex
MASK_KEY_PATTERN = r"^[0-9a-f]{64}$"
#: code points no name may hold: Unicode categories Cc (controls), Cf (format: bidi overrides, zero-width
#: spaces, soft hyphen, tags), Zl and Zp (line and paragraph separators), as of Unicode 14 plus the Egyptian
#: format controls of Unicode 15. Written in the syntax Python ``re`` and Rust ``regex`` (pydantic,
#: jsonschema-rs) share, and small enough for test generators to negate quickly. Lone surrogates (Cs) are
#: refused before (not valid UTF-8); private-use characters (Co) are allowed: they are drawn, not interpreted.
UNPRINTABLE = (
    r"\u0000-\u001f\u007f-\u009f\u00ad\u0600-\u0605\u061c\u06dd\u070f\u0890-\u0891\u08e2"
    r"\u180e\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb"
    r"\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    r"\U000e0001\U000e0020-\U000e007f"
)
#: space separators (Unicode Zs): allowed inside a name, never at its start or end
SPACES = r"\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"


def name_pattern(refused: str = "") -> str:
    """A pattern for 1..MAX_NAME printable characters, none of ``refused``, no space at either end.

    The pattern is the whole rule (no extra validator), so the OpenAPI schema says exactly what the API takes.
    """
    inner = f"[^{UNPRINTABLE}{refused}]"
    edge = f"[^{UNPRINTABLE}{SPACES}{refused}]"
    return f"^{edge}(?:{inner}{{0,{MAX_NAME - 2}}}{edge})?$"


USER_PATTERN = name_pattern()
#: class names also refuse commas (they separate names in ``--classes``)
CLASS_PATTERN = name_pattern(",")
AuthorName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=USER_PATTERN,
        description="The labeler's name, recorded as the author of their labels: up to "
        f"{MAX_NAME} printable characters (any script), no control or format "
        "characters, no space at either end.",
    ),
]
ClassName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_NAME,
        pattern=CLASS_PATTERN,
        description=f"A class name: up to {MAX_NAME} printable characters, no comma, "
        "no control or format characters, no space at either end.",
    ),
]


class _Body(BaseModel):
    """A request body: unknown keys and loose types (``"5"`` for 5, ``0`` for false) are refused."""

    model_config = ConfigDict(extra="forbid", strict=True)


#: who acts: ``author``, or ``user``, its name before 0.x, still accepted; exactly one (as a schema, so clients see it)
AUTHOR_BRANCHES: list[dict[str, Any]] = [
    {"required": ["author"], "properties": {"author": {"type": "string"}, "user": {"type": "null"}}},
    {"required": ["user"], "properties": {"user": {"type": "string"}, "author": {"type": "null"}}},
]


class _Authored(_Body):
    """A request made by a labeler, named by ``author`` (``user`` is its old name, still accepted)."""

    model_config = ConfigDict(json_schema_extra={"anyOf": AUTHOR_BRANCHES})
    author: AuthorName | None = None
    user: AuthorName | None = Field(None, description="The old name of `author`, still accepted.")

    @model_validator(mode="after")
    def _one_author(self) -> _Authored:
        if self.author is not None and self.user is not None:
            raise ValueError("give author (user is its old name), not both")
        if self.author is None and self.user is None:
            raise ValueError("give author: the labeler's name")
        return self

    @property
    def who(self) -> str:
        """The labeler's name, whichever field carried it."""
        name = self.author if self.author is not None else self.user
        assert name is not None  # checked by _one_author
        return name


class NextRequest(_Authored):
    n: Annotated[int, Field(ge=1, le=50, description="How many images to lease."), Integral] = 5
    mode: Literal["label", "review"] = "label"
    exclude: list[ImageId] = Field(
        default_factory=list, max_length=200, description="Image ids the client already holds (not returned again)."
    )


#: a set of class names in a multi-label project (the empty list: "none of these classes")
ClassSet = Annotated[
    list[ClassName],
    Field(max_length=MAX_CLASSES, description="Class names present in the image (multi-label projects); [] = none."),
]
_LABEL = "The class (single-label projects; null in the others)."
_LABELS = "The set of classes, sorted (multi-label projects; null in the others)."
_BOXES = "The boxes (detection projects; null in the others): image pixels, top-left origin; [] = nothing here."
#: a box coordinate or size in image pixels: a finite number (JSON has no NaN, some parsers still read it)
Pixels = Annotated[float, Field(allow_inf_nan=False)]
#: who made an answer's box: drawn by the person, a model proposal accepted as it was, or one they changed
BoxOrigin = Literal["drawn", "proposal", "edited"]
_ORIGIN = "drawn: drawn by the person; proposal: the model's box accepted unchanged; edited: a proposal changed."


class BoxIn(_Body):
    """One box of a detection answer, in image pixels (top-left origin)."""

    class_name: ClassName = Field(alias="class")
    x: Pixels = Field(description="Left edge, image pixels.")
    y: Pixels = Field(description="Top edge, image pixels.")
    w: Pixels = Field(gt=0, description="Width, image pixels.")
    h: Pixels = Field(gt=0, description="Height, image pixels.")
    origin: BoxOrigin | None = Field(None, description=_ORIGIN)

    def payload(self) -> dict[str, Any]:
        """The box as the task's payload entry (keys class, x, y, w, h, then origin when given)."""
        return self.model_dump(by_alias=True, exclude_none=True)


class Box(BaseModel):
    """One box as the API shows it: a stored answer's (with ``origin``) or a prediction's (with ``score``)."""

    class_name: str = Field(alias="class")
    x: float
    y: float
    w: float
    h: float
    score: float | None = Field(None, description="The model's confidence (predicted boxes only).")
    origin: BoxOrigin | None = Field(None, description=_ORIGIN)


_MASK = "The mask (segmentation projects; null in the others)."


class MaskIn(_Body):
    """A segmentation answer: a PNG of the image's size whose pixels are class positions (palette, grayscale,
    or RGB in the VOC colour map; 255 = not labeled), base64-encoded."""

    png: str = Field(
        min_length=1,
        max_length=MAX_MASK_PNG_CHARS,
        description="Base64 of a PNG the image's size: pixel value = class position (0..254), 255 = not labeled; "
        "an RGB(A) PNG is read through the VOC colour map.",
    )

    def payload(self) -> dict[str, Any]:
        return {"png": self.png}


class Mask(BaseModel):
    """A stored mask as the API shows it: the canonical payload and where to fetch its PNG."""

    mask: str = Field(description="The mask's key: sha256 of its canonical PNG.")
    width: int
    height: int
    labeled: int = Field(description="Pixels labeled (not 255).")
    url: str = Field(description="GET it: the canonical palette PNG (VOC colours, 255 = not labeled).")


class Prediction(BaseModel):
    label: str | None = Field(description=_LABEL)
    labels: list[str] | None = Field(None, description=_LABELS)
    boxes: list[Box] | None = Field(None, description=_BOXES + " Each with its score.")
    mask: Mask | None = Field(None, description=_MASK + " The model's arg-max mask.")
    confidence: float
    round: int


class LabelEventOut(BaseModel):
    event_id: int
    label: str | None = Field(description=_LABEL + " Both null: the label was withdrawn.")
    labels: list[str] | None = Field(None, description=_LABELS)
    boxes: list[Box] | None = Field(None, description=_BOXES)
    mask: Mask | None = Field(None, description=_MASK)
    author: str
    source: str
    round: int
    note: str | None
    created_at: str


class Suggestion(BaseModel):
    """The class (or, multi-label, the set) the page proposes for an image: highlighted, named by the hint and
    the review banner alike; Enter accepts a single-label suggestion."""

    label: str | None = Field(description=_LABEL)
    labels: list[str] | None = Field(None, description=_LABELS)
    boxes: list[Box] | None = Field(None, description=_BOXES + " Each with its score.")
    mask: Mask | None = Field(None, description=_MASK + " The model's arg-max mask.")
    confidence: float | None = Field(description="The model's probability of the class (null when unknown).")
    source: Literal["prediction", "label_errors"] = Field(
        description="label_errors: the suggested class of the latest `activelab errors` ranking (out-of-fold), "
        "for an image reviewed as a likely label error; prediction: the latest round's prediction."
    )
    round: int | None = Field(description="The round of the prediction (null for label_errors).")


class Item(BaseModel):
    image_id: int
    url: str
    width: int
    height: int
    split: str
    rank: int | None = Field(
        None,
        description="Position in the active-learning queue when the item was "
        "fetched (0 = most informative; labeled images are not counted).",
    )
    origin: str = Field(
        description="queue, pool (after the queue), review, undo, or label_error (a likely "
        "label error: in review mode, or mixed into label mode by serve --mix-review)."
    )
    prediction: Prediction | None = None
    suggestion: Suggestion | None = None
    history: list[LabelEventOut] | None = None
    flag: dict[str, Any] | None = None
    label: str | None = Field(None, description="The current class (image detail and similar images).")
    labels: list[str] | None = Field(None, description="The current set of classes (multi-label projects).")
    boxes: list[Box] | None = Field(None, description="The current boxes (detection projects).")
    mask: Mask | None = Field(
        None,
        description="The current mask (segmentation projects): a new answer replaces it, so the page starts from it.",
    )
    proposals: list[Box] | None = Field(
        None,
        description="Detection projects: the latest prediction's boxes scoring at least the project's "
        "labeling.proposal_threshold, best first, for the page to offer as proposals (null without a prediction).",
    )
    held_by: str | None = Field(
        None,
        description="Another labeler holding a live lease on this image (null when "
        "nobody else does). Leases are advisory: you may still label it.",
    )
    asked: str | None = Field(
        None,
        description="Segmentation projects whose latest round asked for regions: the URL of a PNG of the image's "
        "size, 255 where pixels were asked for, 0 elsewhere (null: the whole image is asked).",
    )


class NextResponse(BaseModel):
    items: list[Item]
    ranks: dict[int, int | None] = Field(
        description="The current queue rank (0 = first) of each image in the "
        "request's `exclude`, null once it left the queue: ranks move up as "
        "images are labeled."
    )
    queue_length: int | None = Field(description="Images in the queue now (null in review mode).")
    lease_seconds: float


#: the body field that carries each kind of answer (``ProjectInfo.answer``) and its JSON type
ANSWER_FIELDS: dict[str, tuple[str, str]] = {
    "class": ("label", "string"),
    "classes": ("labels", "array"),
    "boxes": ("boxes", "array"),
    "mask": ("mask", "object"),
}


def label_request_branches(answer: str) -> list[dict[str, Any]]:
    """The ``anyOf`` of a label body: a class name (``answer="class"``), a set of class names (``"classes"``)
    or a list of boxes (``"boxes"``), or ``unsure: true`` and none. The app publishes its project's branch."""
    given, kind = ANSWER_FIELDS[answer]
    null = {"type": "null"}
    others = {name: null for name, _ in ANSWER_FIELDS.values() if name != given}
    return [
        {"required": [given], "properties": {given: {"type": kind}, **others, "unsure": {"const": False}}},
        {
            "required": ["unsure"],
            "properties": {"unsure": {"const": True}, **{name: null for name, _ in ANSWER_FIELDS.values()}},
        },
    ]


class LabelRequest(_Authored):
    """A label (``label``: a class name; multi-label projects: ``labels``, a list of class names; detection
    projects: ``boxes``; segmentation projects: ``mask``) or "not sure" (``unsure: true``, no label); exactly
    one of them."""

    model_config = ConfigDict(
        json_schema_extra={"allOf": [{"anyOf": AUTHOR_BRANCHES}, {"anyOf": label_request_branches("class")}]}
    )
    image_id: ImageId
    label: ClassName | None = Field(None, description="A class name; null or absent with unsure=true for 'not sure'.")
    labels: ClassSet | None = Field(
        None, description="Multi-label projects: the classes present, [] for none of them; null with unsure=true."
    )
    boxes: list[BoxIn] | None = Field(
        None,
        max_length=MAX_BOXES,
        description="Detection projects: the boxes in the image (inside it: up to 1 px over is clipped), "
        "[] for nothing here; null with unsure=true.",
    )
    mask: MaskIn | None = Field(
        None, description="Segmentation projects: the mask (`{png}`), 255 where not labeled; null with unsure=true."
    )
    unsure: StrictBool = False
    note: str | None = Field(None, max_length=2000)
    review: StrictBool = Field(False, description="Answer from review mode: resolves the image's review flags.")

    @model_validator(mode="after")
    def _label_or_unsure(self) -> LabelRequest:
        given = [name for name, _ in ANSWER_FIELDS.values() if getattr(self, name) is not None]
        if self.unsure and given:
            raise ValueError(f"give either {given[0]} or unsure=true, not both")
        if len(given) > 1:
            raise ValueError(f"give {given[0]} or {given[1]} (GET /api/project says which: answer), not both")
        if not self.unsure and not given:
            raise ValueError(
                "give a label (a class name; labels, a list, in multi-label projects; boxes in detection ones; "
                "mask in segmentation ones) or unsure=true"
            )
        return self

    def payload(self) -> str | list[str] | list[dict[str, Any]] | dict[str, Any] | None:
        """The answer as a task payload: the class name, the list of names, the list of boxes, the mask, or
        None for 'not sure'."""
        if self.boxes is not None:
            return [box.payload() for box in self.boxes]
        if self.mask is not None:
            return self.mask.payload()
        return self.label if self.label is not None else self.labels


class LabelResponse(BaseModel):
    event_id: int
    image_id: int
    label: str | None = Field(description=_LABEL)
    labels: list[str] | None = Field(None, description=_LABELS)
    boxes: list[Box] | None = Field(None, description=_BOXES)
    mask: Mask | None = Field(None, description=_MASK)
    flagged: bool = Field(description="True when this label disagrees with another person's: flagged for review.")
    held_out: bool = Field(description="True when the image was held out as evaluation data.")


class UserRequest(_Authored):
    pass


class SkipRequest(_Authored):
    image_id: ImageId


class UndoResponse(BaseModel):
    undone_event_id: int
    undo_event_id: int
    restored_label: str | None = Field(description="The class the image carries again (null: unlabeled now).")
    restored_labels: list[str] | None = Field(None, description="Multi-label: the set it carries again.")
    restored_boxes: list[Box] | None = Field(None, description="Detection: the boxes it carries again.")
    restored_mask: Mask | None = Field(None, description="Segmentation: the mask it carries again.")
    item: Item


class ClassRequest(_Body):
    name: ClassName


class RetireClassRequest(_Authored):
    name: ClassName


class ClassesResponse(BaseModel):
    classes: list[str] = Field(description="The active classes, in shortcut order.")
    retired_classes: list[str] = Field(description="Retired classes (kept in the store; adding one restores it).")


class TrainerStatus(BaseModel):
    model_config = ConfigDict(extra="allow")
    state: Literal["idle", "training"]
    round: int | None
    paused: bool
    requested: bool
    running: bool
    retrain_every: int
    last_round: int | None
    last_metrics: dict[str, Any] | None
    last_error: str | None
    updated_at: str


class Page(BaseModel):
    total: int
    offset: int
    limit: int
    items: list[dict[str, Any]]


class ReviewWaiting(BaseModel):
    total: int = Field(description="Images the review page serves now: flagged plus label errors.")
    flagged: int = Field(description="Images with an open review flag (e.g. labelers disagreed).")
    label_errors: int = Field(
        description="Likely label errors of the latest `activelab errors` ranking not "
        "reviewed since (flagged ones counted once, above)."
    )


class ReviewPage(Page):
    waiting: ReviewWaiting


class RegionSettings(BaseModel):
    method: Literal["slic", "patch"] = Field(description="slic: SLIC superpixels; patch: a grid of squares.")
    size: int = Field(description="slic: about size^2 pixels per region; patch: the squares' side.")


class Regions(BaseModel):
    """An image cut into regions (superpixels or patches), run-length encoded row by row."""

    image_id: int
    width: int
    height: int
    method: Literal["slic", "patch"]
    size: int
    n_regions: int = Field(description="Region ids are 0..n_regions-1.")
    runs: list[int] = Field(
        description="Pairs (region id, run length) over the pixels in row-major order; the lengths sum to "
        "width * height."
    )


class ProjectInfo(BaseModel):
    name: str
    task: str = Field(description="The project's task (activelab.tasks): what an annotation is.")
    answer: Literal["class", "classes", "boxes", "mask"] = Field(
        description="What a label is: one class (POST /api/labels takes `label`), a set of classes (`labels`), "
        "a list of boxes (`boxes`) or a mask (`mask`)."
    )
    output: str = Field(
        description="What the project's model outputs (softmax, sigmoid, boxes, masks): the page's widget."
    )
    proposal_threshold: float = Field(
        description="Detection: the score from which predicted boxes are offered as proposals "
        "(labeling.proposal_threshold)."
    )
    classes: list[str]
    strategy: str
    model: str
    retrain_every: int
    lease_seconds: float
    holdout: dict[str, Any]
    allow_new_classes: bool = Field(
        description="Whether POST /api/classes may add classes (project setting labeling.allow_new_classes)."
    )
    retired_classes: list[str] = Field(description="Classes retired from labeling (kept in the store).")
    regions: RegionSettings | None = Field(
        None, description="Segmentation: how the task cuts images into regions (GET /api/images/{id}/regions)."
    )


class ErrorMessage(BaseModel):
    """Every error response: ``detail`` is a message naming the problem and the fix, or, for a body
    or query that does not match this schema, FastAPI's list of ``{loc, msg, type}`` entries."""

    detail: str | list[dict[str, Any]]


#: error responses every API route may give (documented in the OpenAPI schema)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "The body is not JSON."},
    401: {"model": ErrorMessage, "description": "The server needs its token."},
    403: {
        "model": ErrorMessage,
        "description": "Cross-site request refused (send `X-Activelab-Client: 1`), "
        "or the project does not let the app add classes.",
    },
    404: {"model": ErrorMessage, "description": "No such image (or nothing to undo)."},
    409: {
        "model": ErrorMessage,
        "description": "The store refused the change, or an image file changed since it was imported.",
    },
    422: {"model": ErrorMessage, "description": "Invalid input; the message says which field and why."},
}


#: what GET /api/images/{id}/file may answer with: raster formats browsers display, never SVG or HTML
IMAGE_MEDIA_TYPES = sorted(set(RASTER_MEDIA_TYPES.values()))


class Ok(BaseModel):
    ok: bool = True


class SimilarItem(Item):
    similarity: float = Field(description="Cosine similarity of the backbone embeddings (1 = identical).")


class SimilarResponse(BaseModel):
    image_id: int
    k: int
    items: list[SimilarItem] = Field(
        description="The most similar images, most similar first (the image itself left out)."
    )
    index: dict[str, Any] = Field(
        description='The FAISS index: `{"status": "building"}` while it is built in the '
        'background (then `items` is empty: ask again), `{"status": "ready", "kind": '
        'flat|ivf, "size": N}` once searched, `{"status": "failed", "error": ...}`.'
    )
