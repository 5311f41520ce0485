"""``/docs``: Swagger UI served from this server, so it works offline and under the strict CSP.

FastAPI's own page loads Swagger UI from a CDN and starts it with an inline script; this
one takes the JS and CSS shipped in the ``fastapi-offline`` package (mounted under
:data:`ASSETS_URL`) and starts it from a script file. ReDoc is not offered: it injects
inline styles, which the Content-Security-Policy forbids.
"""

from __future__ import annotations

from html import escape
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
ASSETS_URL = "/docs/assets"
INIT_URL = "/docs/swagger-init.js"

#: starts Swagger UI on the page's #swagger-ui element; its data-openapi-url names the schema
INIT_SCRIPT = """\
"use strict";
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    dom_id: "#swagger-ui",
    layout: "BaseLayout",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    requestInterceptor: function (request) {
      request.headers["X-Activelab-Client"] = "1";  // "Try it out" passes the cross-site check
      return request;
    },
  });
});
"""


def assets_dir() -> Path:
    """The folder of Swagger UI's ``swagger-ui-bundle.js``, ``swagger-ui.css`` and ``favicon.png``."""
    return Path(str(files("fastapi_offline") / "static"))


def docs_page(title: str, root_path: str, openapi_url: str) -> str:
    """The HTML of the docs page: no inline script or style, the title escaped."""
    assets = f"{root_path}{ASSETS_URL}"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{escape(title)} - API docs</title>
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<link rel="icon" type="image/png" href="{assets}/favicon.png">
</head>
<body>
<div id="swagger-ui" data-openapi-url="{escape(root_path + openapi_url)}"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script src="{root_path}{INIT_URL}"></script>
</body>
</html>
"""


def add_docs(app: FastAPI) -> None:
    """Serve the docs page, its start script and Swagger UI's assets on ``app``."""
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get(DOCS_URL, include_in_schema=False)
    def swagger_ui(request: Request) -> HTMLResponse:
        return HTMLResponse(docs_page(title, request.scope.get("root_path", ""), openapi_url))

    @app.get(INIT_URL, include_in_schema=False)
    def swagger_init() -> Response:
        return Response(INIT_SCRIPT, media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=str(assets_dir())), name="docs-assets")
