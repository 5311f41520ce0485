"""Request and response bodies of the REST API (they make the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: image ids are SQLite/PostgreSQL 64-bit integers: anything larger is refused with a 422, not a 500
MAX_ID = 2**63 - 1
ImageId = Annotated[int, Field(ge=1, le=MAX_ID, description="An image id (from /api/next, /api/queue...).")]

User = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@ -]+$",
             description="The labeler's name, recorded as the author of their labels.")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NextRequest(_Body):
    user: str = User
    n: int = Field(5, ge=1, le=50, description="How many images to lease.")
    mode: Literal["label", "review"] = "label"
    exclude: list[ImageId] = Field(default_factory=list, max_length=200,
                               description="Image ids the client already holds (not returned again).")


class Prediction(BaseModel):
    label: str
    confidence: float
    round: int


class LabelEventOut(BaseModel):
    event_id: int
    label: str | None
    author: str
    source: str
    round: int
    note: str | None
    created_at: str


class Item(BaseModel):
    image_id: int
    url: str
    width: int
    height: int
    split: str
    rank: int | None = Field(None, description="Position in the active-learning queue (0 = most informative).")
    origin: str = Field(description="queue, pool (after the queue), review, undo, or label_error (a likely "
                        "label error: in review mode, or mixed into label mode by serve --mix-review).")
    prediction: Prediction | None = None
    history: list[LabelEventOut] | None = None
    flag: dict[str, Any] | None = None
    label: str | None = None


class NextResponse(BaseModel):
    items: list[Item]
    lease_seconds: float


class LabelRequest(_Body):
    user: str = User
    image_id: ImageId
    label: str | None = Field(None, min_length=1, max_length=200,
                              description="A class name; null with unsure=true for 'not sure'.")
    unsure: bool = False
    note: str | None = Field(None, max_length=2000)
    review: bool = Field(False, description="Answer from review mode: resolves the image's review flags.")


class LabelResponse(BaseModel):
    event_id: int
    image_id: int
    label: str | None
    flagged: bool = Field(description="True when this label disagrees with another person's: flagged for review.")
    held_out: bool = Field(description="True when the image was held out as evaluation data.")


class UserRequest(_Body):
    user: str = User


class SkipRequest(_Body):
    user: str = User
    image_id: ImageId


class UndoResponse(BaseModel):
    undone_event_id: int
    undo_event_id: int
    restored_label: str | None
    item: Item


class ClassRequest(_Body):
    name: str = Field(min_length=1, max_length=200)


class ClassesResponse(BaseModel):
    classes: list[str]


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


class ProjectInfo(BaseModel):
    name: str
    classes: list[str]
    strategy: str
    model: str
    retrain_every: int
    lease_seconds: float
    holdout: dict[str, Any]


class ErrorMessage(BaseModel):
    """Every error response: ``detail`` is a message naming the problem and the fix, or, for a body
    or query that does not match this schema, FastAPI's list of ``{loc, msg, type}`` entries."""

    detail: str | list[dict[str, Any]]


#: error responses every API route may give (documented in the OpenAPI schema)
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorMessage, "description": "The body is not JSON."},
    401: {"model": ErrorMessage, "description": "The server needs its token."},
    403: {"model": ErrorMessage, "description": "Cross-site request refused (send `X-Activelab-Client: 1`)."},
    404: {"model": ErrorMessage, "description": "No such image (or nothing to undo)."},
    409: {"model": ErrorMessage, "description": "The store refused the change."},
    422: {"model": ErrorMessage, "description": "Invalid input; the message says which field and why."},
}


class Ok(BaseModel):
    ok: bool = True


class SimilarItem(Item):
    similarity: float = Field(description="Cosine similarity of the backbone embeddings (1 = identical).")


class SimilarResponse(BaseModel):
    image_id: int
    k: int
    items: list[SimilarItem] = Field(description="The most similar images, most similar first (the image itself left out).")
    index: dict[str, Any] | None = Field(None, description="The FAISS index searched: kind (flat or ivf) and size.")
