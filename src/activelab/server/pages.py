"""HTML pages: the labeling page (label and review mode) and the dashboard. They call only the API."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent


def make_router() -> APIRouter:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    router = APIRouter(include_in_schema=False)

    @router.get("/", response_class=HTMLResponse)
    def label_page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "label.html", {"mode": "label", "title": "Label"})

    @router.get("/review", response_class=HTMLResponse)
    def review_page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "label.html", {"mode": "review", "title": "Review"})

    @router.get("/dashboard", response_class=HTMLResponse)
    def dashboard_page(request: Request) -> HTMLResponse:
        return templates.TemplateResponse(request, "dashboard.html", {"title": "Dashboard"})

    return router
