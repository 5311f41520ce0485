"""The app factory: ``create_app(settings)`` builds one FastAPI app over one project."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from activelab.exceptions import InputError, NotFoundError, StoreError
from activelab.loop.project import open_project
from activelab.loop.session import ActiveSession
from activelab.server import api, pages
from activelab.server.security import SecurityMiddleware
from activelab.server.service import LabelingService
from activelab.server.settings import ServerSettings
from activelab.server.trainer import BackgroundTrainer, SessionFactory


def create_app(settings: ServerSettings, *, session_factory: SessionFactory = ActiveSession) -> FastAPI:
    """Open the project and build the app; the trainer thread runs while the app is served.

    ``session_factory(project)`` builds the :class:`ActiveSession` the trainer and the
    queue use (inject one with another model factory in tests or embedding code).
    """
    project = open_project(settings.project)
    retrain_every = settings.retrain_every or project.settings.active_learner.retrain_every
    trainer = BackgroundTrainer(project, retrain_every=retrain_every, poll_seconds=settings.trainer_poll_seconds,
                                session_factory=session_factory)
    service = LabelingService(project, settings, trainer)
    service.holdout()  # decide (once, persisted) whether human labels are held out for evaluation

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        trainer.recover()  # a round left "training" by a dead process becomes the last error
        if settings.trainer:
            trainer.start()
        try:
            yield
        finally:
            trainer.stop()
            project.close()

    app = FastAPI(
        title=f"activelab: {project.settings.name}",
        version=_version(),
        description="Label images in active-learning order while a background trainer re-ranks the queue. "
                    "State-changing calls need the header `X-Activelab-Client: 1`.",
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.settings = settings
    app.add_middleware(SecurityMiddleware, token=settings.token)
    app.include_router(api.router)
    app.include_router(pages.make_router())
    app.mount("/static", StaticFiles(directory=str(pages.HERE / "static")), name="static")

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InputError)
    async def _bad_input(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(StoreError)
    async def _store_error(_: Request, exc: StoreError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=409)

    return app


def _version() -> str:
    try:
        return version("activelab")
    except PackageNotFoundError:
        return "0"
