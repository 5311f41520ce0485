"""REST API routes: thin wrappers that validate, call :class:`LabelingService` and serialise."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from activelab.server import schemas as s
from activelab.server.service import LabelingService

router = APIRouter(prefix="/api", responses=s.ERROR_RESPONSES)


def get_service(request: Request) -> LabelingService:
    """The app's service (dependency injection; the app holds it, no module state)."""
    return request.app.state.service  # type: ignore[no-any-return]


Service = Annotated[LabelingService, Depends(get_service)]
Offset = Annotated[int, Query(ge=0, le=10_000_000)]
Limit = Annotated[int, Query(ge=1, le=200)]
ImageIdPath = Annotated[int, Path(ge=1, le=s.MAX_ID, description="An image id.")]
AuthorQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=s.MAX_NAME,
        pattern=s.USER_PATTERN,
        description="The asking labeler: `held_by` then names only someone else.",
    ),
]
OldAuthorQuery = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=s.MAX_NAME,
        pattern=s.USER_PATTERN,
        description="The old name of `author`, still accepted (`author` wins when both are given).",
    ),
]


@router.get("/project", response_model=s.ProjectInfo, tags=["project"])
def project_info(service: Service) -> dict[str, Any]:
    """Project name, classes (in shortcut order), strategy and labeling settings."""
    p = service.project.settings
    return {
        "name": p.name,
        "task": p.task,
        "answer": service.answer,
        "output": service.task.output,
        "proposal_threshold": p.labeling.proposal_threshold,
        "classes": service.store.class_names(),
        "strategy": p.active_learner.strategy,
        "model": p.model.name,
        "retrain_every": service.trainer.retrain_every,
        "lease_seconds": service.settings.lease_seconds,
        "holdout": service.holdout(),
        "allow_new_classes": p.labeling.allow_new_classes,
        "retired_classes": service.store.retired_classes(),
        "regions": service.region_settings(),
    }


@router.post("/classes", response_model=s.ClassesResponse, tags=["project"])
def add_class(body: s.ClassRequest, service: Service) -> dict[str, Any]:
    """Add a class (an existing name is left as it is, a retired one comes back); returns all classes.

    403 when the project's setting ``labeling.allow_new_classes`` is false.
    """
    return service.add_class(body.name)


@router.post("/classes/retire", response_model=s.ClassesResponse, tags=["project"])
def retire_class(body: s.RetireClassRequest, service: Service) -> dict[str, Any]:
    """Retire a class no image currently carries: it leaves the keys and the model; nothing is deleted.

    404 for an unknown class, 409 while images carry it. Adding the name again restores it.
    """
    return service.retire_class(body.name, body.who)


@router.post("/next", response_model=s.NextResponse, tags=["labeling"])
def next_items(body: s.NextRequest, service: Service) -> dict[str, Any]:
    """Lease the next images to a labeler: active-learning queue order (latest round), then the pool.

    Images leased to someone else (lease not expired), already labeled, or skipped
    by this author are never returned. ``mode=review`` returns images flagged for review
    with their label history instead (no leases). ``ranks`` gives the images in ``exclude``
    their rank in the queue as it is now.
    """
    batch = service.next_items(body.who, min(body.n, service.settings.max_items), mode=body.mode, exclude=body.exclude)
    return {**batch, "lease_seconds": service.settings.lease_seconds}


@router.post("/labels", response_model=s.LabelResponse, tags=["labeling"])
def submit_label(body: s.LabelRequest, service: Service) -> dict[str, Any]:
    """Record a label (or 'not sure' with ``unsure=true`` and no label); returns once it is stored.

    A single-label project takes ``label`` (a class name), a multi-label one ``labels`` (the classes
    present; ``[]`` says none of them), a detection one ``boxes`` (in image pixels, each with its
    ``origin``; ``[]`` says nothing here), a segmentation one ``mask`` (``{"png": base64}``: a PNG of the
    image's size, pixel value = class position, 255 = not labeled; stored content-addressed, the event
    holds its key): ``answer`` in GET /api/project says which. An image leased to another labeler may
    still be labeled (leases are advisory); 404 for a class the project lacks, 409 for a retired one, 422
    for the other project kind's field, a box that does not fit the image (the message names the box), or
    a mask of another size, with an unknown colour or value, truncated, or labeling no pixel.
    """
    note = body.note
    if body.unsure:
        note = "not sure" if not note else f"not sure: {note}"
    return service.submit(body.who, body.image_id, body.payload(), note=note, review=body.review)


@router.post("/undo", response_model=s.UndoResponse, tags=["labeling"])
def undo(body: s.UserRequest, service: Service) -> dict[str, Any]:
    """Undo the author's latest label: a new event restores the previous label; the image comes back to them."""
    return service.undo(body.who)


@router.post("/skip", response_model=s.Ok, tags=["labeling"])
def skip(body: s.SkipRequest, service: Service) -> dict[str, Any]:
    """Skip an image: its lease is released and it is not shown to this author again."""
    service.skip(body.who, body.image_id)
    return {"ok": True}


@router.get("/images/{image_id}", response_model=s.Item, tags=["images"])
def image_detail(
    image_id: ImageIdPath, service: Service, author: AuthorQuery = None, user: OldAuthorQuery = None
) -> dict[str, Any]:
    """One image: metadata, current label, label history, model prediction, who else holds it."""
    return service.image_detail(image_id, author or user)


@router.get(
    "/images/{image_id}/file",
    tags=["images"],
    response_class=Response,
    responses={
        200: {
            "content": {media: {} for media in s.IMAGE_MEDIA_TYPES},
            "description": "The image's bytes, as imported.",
        },
        409: {"model": s.ErrorMessage, "description": "The file changed since it was imported."},
        415: {"model": s.ErrorMessage, "description": "Not a raster format browsers display."},
    },
)
def image_file(image_id: ImageIdPath, service: Service) -> Response:
    """The bytes of a stored image, by id, if they are still those imported (size and sha256 checked now).

    The media type is the format detected at import (PNG, JPEG, GIF, WebP, BMP), never the file name's.
    """
    data, media = service.image_file(image_id)
    return Response(
        data, media_type=media, headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    )


@router.get(
    "/images/{image_id}/regions",
    response_model=s.Regions,
    tags=["images"],
    responses={404: {"model": s.ErrorMessage, "description": "No such image, or not a segmentation project."}},
)
def image_regions(
    image_id: ImageIdPath,
    service: Service,
    method: Annotated[
        Literal["slic", "patch"] | None, Query(description="slic superpixels or square patches (default: the task's).")
    ] = None,
    size: Annotated[
        int | None, Query(ge=2, le=256, description="Pixels: about size^2 per superpixel, or the patches' side.")
    ] = None,
) -> dict[str, Any]:
    """The image cut into regions (segmentation projects): what a click fills on the labeling page, and what
    region rounds ask for. Run-length encoded region ids, row by row."""
    return service.regions(image_id, method, size)


@router.get(
    "/masks/{key}",
    tags=["images"],
    response_class=Response,
    responses={
        200: {"content": {"image/png": {}}, "description": "The mask's canonical PNG (VOC palette, 255 = void)."},
        404: {"model": s.ErrorMessage, "description": "No mask has this key."},
    },
)
def mask_file(
    key: Annotated[str, Path(pattern=s.MASK_KEY_PATTERN, description="A mask key: 64 lower-case hex digits.")],
    service: Service,
) -> Response:
    """A stored mask by its key (a label's, a prediction's, or the pixels a round asks for): a palette PNG whose
    pixel values are class positions (255: not labeled). Content-addressed, so it never changes."""
    return Response(
        service.mask_png(key),
        media_type="image/png",
        headers={"Cache-Control": "private, max-age=31536000, immutable", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/images/{image_id}/similar", response_model=s.SimilarResponse, tags=["images"])
def similar_images(
    image_id: ImageIdPath,
    service: Service,
    k: Annotated[int, Query(ge=1, le=100, description="How many similar images.")] = 12,
    author: AuthorQuery = None,
    user: OldAuthorQuery = None,
) -> dict[str, Any]:
    """The images most like this one over the whole project (FAISS over cached embeddings), most similar first.

    The index is built in the background (at start and when the images change); until it is ready the
    answer has no items and ``index.status`` is ``building``.
    """
    return service.similar(image_id, k, author or user)


@router.get("/queue", response_model=s.Page, tags=["labeling"])
def queue(service: Service, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    """The active-learning queue (latest round's selection not labeled yet), best first, one page."""
    return service.queue_page(offset, limit)


@router.get("/review", response_model=s.ReviewPage, tags=["review"])
def review(service: Service, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    """Open review flags (e.g. two labelers disagreed), oldest first, one page; ``waiting`` counts all
    that the review page serves (flagged images and likely label errors)."""
    return service.review_page(offset, limit)


@router.get("/stats", tags=["dashboard"])
def stats(service: Service) -> dict[str, Any]:
    """Dashboard numbers: counts per split and class, labels over time, learning curve, trainer status."""
    return service.stats()


@router.get(
    "/export",
    tags=["dashboard"],
    response_class=FileResponse,
    responses={200: {"content": {"text/csv": {}, "application/octet-stream": {}}}},
)
def export(service: Service, format: Literal["csv", "parquet"] = "csv", include_eval: bool = False) -> FileResponse:
    """Download the current labels (with source and author) as CSV or parquet."""
    path = service.export(format, include_eval)
    media = "text/csv" if format == "csv" else "application/octet-stream"
    return FileResponse(
        path, media_type=media, filename=path.name, background=BackgroundTask(_remove_tree, path.parent)
    )


def _remove_tree(folder: Any) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


@router.get("/trainer", response_model=s.TrainerStatus, tags=["trainer"])
def trainer_status(service: Service) -> dict[str, Any]:
    """The background trainer: idle / training round R, paused, last metrics, last error."""
    return service.trainer.status()


@router.post("/trainer/run", response_model=s.TrainerStatus, tags=["trainer"])
def trainer_run(service: Service) -> dict[str, Any]:
    """Ask for a round now (it runs in the background; poll the status)."""
    service.trainer.request_round()
    return service.trainer.status()


@router.post("/trainer/pause", response_model=s.TrainerStatus, tags=["trainer"])
def trainer_pause(service: Service) -> dict[str, Any]:
    """Stop retraining (a round in progress finishes and is saved); labeling goes on."""
    service.trainer.pause()
    return service.trainer.status()


@router.post("/trainer/resume", response_model=s.TrainerStatus, tags=["trainer"])
def trainer_resume(service: Service) -> dict[str, Any]:
    """Resume retraining every N labels."""
    service.trainer.resume()
    return service.trainer.status()
