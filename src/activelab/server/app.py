"""The app factory: ``create_app(settings)`` builds one FastAPI app over one project."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from activelab.exceptions import (
    ActivelabError,
    ForbiddenError,
    InputError,
    NotFoundError,
    StoreError,
    UnsupportedMediaError,
)
from activelab.loop.project import open_project
from activelab.loop.session import ActiveSession
from activelab.loop.trainer import BackgroundTrainer, SessionFactory
from activelab.server import api, pages
from activelab.server.apidocs import add_docs
from activelab.server.schemas import ANSWER_FIELDS, label_request_branches
from activelab.server.security import SECURITY_HEADERS, SecurityMiddleware, redact_paths
from activelab.server.service import LabelingService
from activelab.server.settings import ServerSettings


def create_app(settings: ServerSettings, *, session_factory: SessionFactory = ActiveSession) -> FastAPI:
    """Open the project and build the app; the trainer thread runs while the app is served.

    ``session_factory(project)`` builds the :class:`ActiveSession` the trainer and the
    queue use (inject one with another model factory in tests or embedding code).
    """
    project = open_project(settings.project)
    retrain_every = settings.retrain_every or project.settings.active_learner.retrain_every
    trainer = BackgroundTrainer(
        project,
        retrain_every=retrain_every,
        poll_seconds=settings.trainer_poll_seconds,
        session_factory=session_factory,
    )
    service = LabelingService(project, settings, trainer)
    service.holdout()  # decide (once, persisted) whether human labels are held out for evaluation

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        trainer.recover()  # a round left "training" by a dead process becomes the last error
        if settings.trainer:
            trainer.start()
        service.start()  # the similar-images index is brought up to date in the background
        try:
            yield
        finally:
            service.stop()
            trainer.stop()
            project.close()

    app = FastAPI(
        title=f"activelab: {project.settings.name}",
        version=_version(),
        description="Label images in active-learning order while a background trainer re-ranks the queue. "
        "State-changing calls need the header `X-Activelab-Client: 1`.",
        lifespan=lifespan,
        docs_url=None,  # apidocs.add_docs serves /docs from local assets, under the CSP
        redoc_url=None,
    )
    app.state.service = service
    app.state.settings = settings
    app.add_middleware(
        SecurityMiddleware,
        token=settings.token,
        allowed_hosts=settings.allowed_hosts,
        max_body_bytes=settings.max_body_bytes,
    )
    app.include_router(api.router)
    app.include_router(pages.make_router())
    app.mount("/static", StaticFiles(directory=str(pages.HERE / "static")), name="static")
    add_docs(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    _add_error_handlers(app)
    _publish_label_body(app, service.answer)
    return app


def _publish_label_body(app: FastAPI, answer: str) -> None:
    """The OpenAPI schema of POST /api/labels says what this project's labels are: a class name (``label``),
    a set of class names (``labels``) or a list of boxes (``boxes``); the other fields may only be null, as
    the API treats them."""
    default = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            body = default()["components"]["schemas"]["LabelRequest"]
            body["allOf"][1]["anyOf"] = label_request_branches(answer)
            given, _ = ANSWER_FIELDS[answer]
            for unused, _ in ANSWER_FIELDS.values():
                if unused != given:
                    body["properties"][unused] = {"type": "null", "description": "Not used by this project's task."}
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]


#: the HTTP status of each error activelab raises on purpose (a subclass takes its parent's)
ERROR_STATUS: dict[type[ActivelabError], int] = {
    NotFoundError: 404,
    InputError: 422,
    StoreError: 409,
    ForbiddenError: 403,
    UnsupportedMediaError: 415,
}
#: how much of a rejected input a 422 quotes back
INPUT_EXCERPT_CHARS = 100


def _add_error_handlers(app: FastAPI) -> None:
    """JSON error bodies that name no server path, quote little input, and never fail to render."""

    async def activelab_error(_: Request, exc: Exception) -> JSONResponse:
        status = next(code for cls, code in ERROR_STATUS.items() if isinstance(exc, cls))
        return JSONResponse({"detail": redact_paths(str(exc))}, status_code=status)

    async def invalid_request(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": [short_error(e) for e in exc.errors()]}, status_code=422)

    async def server_error(_: Request, exc: Exception) -> JSONResponse:
        # Runs outside SecurityMiddleware (in Starlette's ServerErrorMiddleware): set its headers here.
        return JSONResponse(
            {"detail": "internal server error; the server's log has the details"},
            status_code=500,
            headers=SECURITY_HEADERS,
        )

    for cls in ERROR_STATUS:
        app.add_exception_handler(cls, activelab_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, server_error)


def short_error(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as JSON that always renders: its input cut to an excerpt, its context as text."""
    out: dict[str, Any] = {
        "type": error.get("type"),
        "loc": list(error.get("loc", ())),
        "msg": excerpt(str(error.get("msg", "")), 300),
    }
    if "input" in error:
        out["input"] = excerpt(error["input"], INPUT_EXCERPT_CHARS)
    if error.get("ctx"):
        out["ctx"] = {
            str(k): excerpt(v if isinstance(v, (int, float, str)) else str(v), INPUT_EXCERPT_CHARS)
            for k, v in error["ctx"].items()
        }
    return out


def excerpt(value: Any, limit: int) -> Any:
    """``value`` itself when its JSON is short and valid, else the start of its text, ending in "…"."""
    if not isinstance(value, str):
        try:
            text = json.dumps(value, ensure_ascii=False, allow_nan=False)
            text.encode("utf-8")
            if len(text) <= limit:
                return value
        except (TypeError, ValueError, RecursionError):  # NaN, inf, lone surrogates, objects, deep nesting
            text = _safe_repr(value)
        value = text
    text = value.encode("utf-8", "backslashreplace").decode("utf-8")  # a lone surrogate becomes \udXXX
    return text if len(text) <= limit else text[:limit] + "…"


def _safe_repr(value: Any) -> str:
    try:
        return repr(value)
    except RecursionError:
        return f"<{type(value).__name__} nested too deep>"


def _version() -> str:
    try:
        return version("activelab")
    except PackageNotFoundError:
        return "0"
