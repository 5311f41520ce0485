"""Token check and cross-site request protection, as one ASGI middleware.

- With a token configured, every request except ``/healthz`` needs it: header
  ``Authorization: Bearer <token>`` or the ``activelab_token`` cookie, which a page
  request with ``?token=<token>`` sets (HttpOnly, SameSite=Strict).
- State-changing API requests (POST/PUT/PATCH/DELETE) need the header
  ``X-Activelab-Client`` (a cross-site form or image cannot send a custom
  header without a CORS preflight, which this app never grants), and, when the
  browser sends ``Origin``, it must be this server.
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

CLIENT_HEADER = "x-activelab-client"
TOKEN_COOKIE = "activelab_token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}


class SecurityMiddleware(BaseHTTPMiddleware):
    def __init__(self, app, token: str | None) -> None:  # type: ignore[no-untyped-def]
        super().__init__(app)
        self.token = token

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        if self.token is not None and request.url.path != "/healthz":
            given = request.query_params.get("token")
            if given is not None and request.method == "GET" and not request.url.path.startswith("/api/"):
                if not hmac.compare_digest(given, self.token):
                    return JSONResponse({"detail": "wrong token"}, status_code=401)
                response = RedirectResponse(request.url.path, status_code=303)
                response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
                return response
            auth = request.headers.get("authorization", "")
            bearer = auth[7:] if auth.lower().startswith("bearer ") else None
            candidate = bearer or request.cookies.get(TOKEN_COOKIE) or ""
            if not hmac.compare_digest(candidate, self.token):
                return JSONResponse(
                    {"detail": "this server needs its token: open the URL printed by `activelab serve` "
                               "(…/?token=…) or send 'Authorization: Bearer <token>'"},
                    status_code=401,
                )
        if request.method in UNSAFE and request.url.path.startswith("/api/"):
            if CLIENT_HEADER not in request.headers:
                return JSONResponse(
                    {"detail": f"state-changing requests need the header '{CLIENT_HEADER}: 1' "
                               "(protection against cross-site requests)"},
                    status_code=403,
                )
            origin = request.headers.get("origin")
            if origin and urlsplit(origin).netloc != request.headers.get("host", ""):
                return JSONResponse({"detail": f"cross-site request from {origin} refused"}, status_code=403)
        return await call_next(request)
