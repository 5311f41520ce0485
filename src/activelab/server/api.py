"""REST API routes: thin wrappers that validate, call :class:`LabelingService` and serialise."""

from __future__ import annotations

import mimetypes
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from fastapi.responses import FileResponse
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


@router.get("/project", response_model=s.ProjectInfo, tags=["project"])
def project_info(service: Service) -> dict[str, Any]:
    """Project name, classes (in shortcut order), strategy and labeling settings."""
    p = service.project.settings
    return {"name": p.name, "classes": service.store.class_names(), "strategy": p.active_learner.strategy,
            "model": p.model.name, "retrain_every": service.trainer.retrain_every,
            "lease_seconds": service.settings.lease_seconds, "holdout": service.holdout()}


@router.post("/classes", response_model=s.ClassesResponse, tags=["project"])
def add_class(body: s.ClassRequest, service: Service) -> dict[str, Any]:
    """Add a class (an existing name is left as it is); returns all classes."""
    return {"classes": service.add_class(body.name)}


@router.post("/next", response_model=s.NextResponse, tags=["labeling"])
def next_items(body: s.NextRequest, service: Service) -> dict[str, Any]:
    """Lease the next images to a labeler: active-learning queue order (latest round), then the pool.

    Images leased to someone else (lease not expired), already labeled, or skipped
    by this user are never returned. ``mode=review`` returns images flagged for review
    with their label history instead (no leases).
    """
    items = service.next_items(body.user, min(body.n, service.settings.max_items), mode=body.mode,
                               exclude=body.exclude)
    return {"items": items, "lease_seconds": service.settings.lease_seconds}


@router.post("/labels", response_model=s.LabelResponse, tags=["labeling"])
def submit_label(body: s.LabelRequest, service: Service) -> dict[str, Any]:
    """Record a label (or 'not sure' with ``unsure=true`` and no label); returns once it is stored."""
    if body.unsure and body.label is not None:
        raise HTTPException(422, "give either a label or unsure=true, not both")
    if not body.unsure and body.label is None:
        raise HTTPException(422, "give a label (a class name) or unsure=true")
    note = body.note
    if body.unsure:
        note = "not sure" if not note else f"not sure: {note}"
    return service.submit(body.user, body.image_id, body.label, note=note, review=body.review)


@router.post("/undo", response_model=s.UndoResponse, tags=["labeling"])
def undo(body: s.UserRequest, service: Service) -> dict[str, Any]:
    """Undo the user's latest label: a new event restores the previous label; the image comes back to them."""
    return service.undo(body.user)


@router.post("/skip", response_model=s.Ok, tags=["labeling"])
def skip(body: s.SkipRequest, service: Service) -> dict[str, Any]:
    """Skip an image: its lease is released and it is not shown to this user again."""
    service.skip(body.user, body.image_id)
    return {"ok": True}


@router.get("/images/{image_id}", response_model=s.Item, tags=["images"])
def image_detail(image_id: ImageIdPath, service: Service) -> dict[str, Any]:
    """One image: metadata, current label, label history, model prediction."""
    return service.image_detail(image_id)


@router.get("/images/{image_id}/file", tags=["images"], response_class=FileResponse,
            responses={200: {"content": {"image/png": {}, "image/jpeg": {}}}, 404: {}})
def image_file(image_id: ImageIdPath, service: Service) -> FileResponse:
    """The image file of a stored image, by id (no path from the client is ever opened)."""
    path = service.image_path(image_id)
    if not path.is_file():
        raise HTTPException(404, f"the file of image {image_id} is missing ({path.name}); was it moved?")
    media = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return FileResponse(path, media_type=media, headers={"Cache-Control": "private, max-age=3600"})


@router.get("/images/{image_id}/similar", response_model=s.SimilarResponse, tags=["images"])
def similar_images(image_id: ImageIdPath, service: Service,
                   k: Annotated[int, Query(ge=1, le=100, description="How many similar images.")] = 12
                   ) -> dict[str, Any]:
    """The images most like this one over the whole project (FAISS over cached embeddings), most similar first."""
    return service.similar(image_id, k)


@router.get("/queue", response_model=s.Page, tags=["labeling"])
def queue(service: Service, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    """The active-learning queue (latest round's selection not labeled yet), best first, one page."""
    return service.queue_page(offset, limit)


@router.get("/review", response_model=s.Page, tags=["review"])
def review(service: Service, offset: Offset = 0, limit: Limit = 50) -> dict[str, Any]:
    """Open review flags (e.g. two labelers disagreed), oldest first, one page."""
    return service.review_page(offset, limit)


@router.get("/stats", tags=["dashboard"])
def stats(service: Service) -> dict[str, Any]:
    """Dashboard numbers: counts per split and class, labels over time, learning curve, trainer status."""
    return service.stats()


@router.get("/export", tags=["dashboard"], response_class=FileResponse,
            responses={200: {"content": {"text/csv": {}, "application/octet-stream": {}}}})
def export(service: Service, format: Literal["csv", "parquet"] = "csv", include_eval: bool = False
           ) -> FileResponse:
    """Download the current labels (with source and author) as CSV or parquet."""
    path = service.export(format, include_eval)
    media = "text/csv" if format == "csv" else "application/octet-stream"
    return FileResponse(path, media_type=media, filename=path.name,
                        background=BackgroundTask(_remove_tree, path.parent))


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
