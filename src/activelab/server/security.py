"""Every request passes one ASGI middleware, :class:`SecurityMiddleware`, in this order:

1. ``Host`` must name a host this server serves (loopback names, the bound host, and
   ``--allowed-host``): else 400. A DNS-rebinding page reaches the server under its
   own name, so it is refused before anything else runs.
2. With a token configured, every request except ``/healthz`` needs it: header
   ``Authorization: Bearer <token>`` or the ``activelab_token`` cookie, which a page
   request with ``?token=<token>`` sets (HttpOnly, SameSite=Strict) before redirecting
   to the same local path. Tokens are compared as bytes, so any text gives 401, never 500.
3. State-changing API requests (POST/PUT/PATCH/DELETE) need the header
   ``X-Activelab-Client`` (a cross-site form or image cannot send a custom header
   without a CORS preflight, which this app never grants), and, when the browser
   sends ``Origin``, it must be this server: else 403.
4. Request bodies over ``max_body_bytes`` get 413: at once from ``Content-Length``,
   or as soon as a streamed body grows past the limit (never read whole).
5. JSON bodies must be strict JSON: ``NaN``, ``Infinity``, numbers beyond a float
   and lone UTF-16 surrogates get 422 before any route sees them.

Every response, from the app or from this middleware, carries :data:`SECURITY_HEADERS`.
"""

from __future__ import annotations

import hmac
import json
import math
import re
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from activelab.exceptions import InputError

CLIENT_HEADER = "x-activelab-client"
TOKEN_COOKIE = "activelab_token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
MIN_TOKEN_LENGTH = 16
#: the host names a loopback server always answers to (IPv6 literals in brackets, as in a Host header)
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
#: bind addresses that mean "every interface": they name no host a client would use
WILDCARD_BINDS = ("0.0.0.0", "::", "[::]")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: an absolute POSIX or Windows path of two or more parts (also inside sqlite:////... URLs); API routes excepted
_ABSOLUTE_PATH = re.compile(
    r"(?<![\w.~-])(?:\b[A-Za-z]:)?[/\\]+(?!(?:api|static|docs)/)"
    r"(?:[^\s'\"<>|/\\]+[/\\]+)+[^\s'\"<>|/\\,;:()]*"
)
#: characters left as they are when a path is put into a redirect's Location
_PATH_SAFE = "/:@!$&'()*+,;=-._~"


def check_token(token: str | None) -> None:
    """Refuse a token that would make authentication weak or unusable (``None`` means no token)."""
    if token is None:
        return
    if len(token) < MIN_TOKEN_LENGTH:
        raise InputError(
            f"the access token (--token / ACTIVELAB_TOKEN) has {len(token)} characters; it needs at least "
            f"{MIN_TOKEN_LENGTH}: leave it out on loopback, or generate one with "
            "`python -c 'import secrets; print(secrets.token_urlsafe(24))'`"
        )
    if not all("!" <= ch <= "~" for ch in token):
        raise InputError(
            "the access token (--token / ACTIVELAB_TOKEN) must be printable ASCII without spaces "
            "(it travels in a URL, a header and a cookie)"
        )


def normalise_host(name: str) -> str:
    """A host name as it appears in a ``Host`` header without its port: lower case, IPv6 in brackets."""
    clean = name.strip().lower()
    if ":" in clean and not clean.startswith("["):
        clean = f"[{clean}]"
    if not clean or any(ch in clean for ch in "/\\@ ") or clean.count("[") > 1:
        raise InputError(
            f"{name!r} is not a host name; give a name or address such as "
            "labeling.example.org or 192.0.2.7 (no scheme, path or port)"
        )
    return clean


def host_name(header: str) -> str:
    """The host part of a ``Host`` header (``[::1]:8000`` -> ``[::1]``, ``Example:80`` -> ``example``)."""
    value = header.strip().lower()
    if value.startswith("["):
        return value[: value.find("]") + 1] if "]" in value else value
    return value.rsplit(":", 1)[0] if ":" in value else value


def served_hosts(allowed_hosts: tuple[str, ...] = ()) -> frozenset[str]:
    """The host names a server answers to: loopback names plus ``allowed_hosts`` (wildcard binds left out)."""
    extra = {normalise_host(h) for h in allowed_hosts if h.strip().lower() not in WILDCARD_BINDS}
    return frozenset(LOOPBACK_NAMES) | extra


def same_token(given: str, token: str) -> bool:
    """Constant-time comparison of any text (non-ASCII included) with the token."""
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), token.encode("utf-8"))


def local_redirect(path: str, query: list[tuple[str, str]]) -> str:
    """A Location that stays on this server: percent-encoded path with one leading slash.

    ``//evil.example/`` would otherwise be read by the browser as another host.
    """
    target = "/" + quote(path, safe=_PATH_SAFE).lstrip("/")
    return target + (f"?{urlencode(query)}" if query else "")


def redact_paths(message: str) -> str:
    """``message`` with every absolute file path cut to its last part (``/srv/p/activelab.db`` -> ``activelab.db``).

    Error bodies go to any client; the server's folders are none of its business.
    """
    return _ABSOLUTE_PATH.sub(lambda m: _last_part(m.group(0)), message)


def _last_part(path: str) -> str:
    return next((part for part in reversed(re.split(r"[/\\]+", path)) if part), path)


def strict_json_problem(body: bytes) -> str | None:
    """Why ``body`` is JSON that Python reads but no JSON value may be (None when fine or not JSON at all)."""
    try:
        value = json.loads(body, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotStrictJSON as exc:
        return str(exc)
    except (ValueError, RecursionError):
        return None  # not JSON: the route answers that itself
    return _lone_surrogate(value)


class _NotStrictJSON(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotStrictJSON(f"{name} is not a JSON number; send a finite number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotStrictJSON(f"the number {text[:40]} is out of range; send a finite number")
    return value


def _lone_surrogate(value: Any) -> str | None:
    """A message when any string (or key) in a parsed JSON value holds an unpaired UTF-16 surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return "a string holds an unpaired UTF-16 surrogate (e.g. \\ud800); send valid Unicode text"
    return None


class BodyTooLarge(HTTPException):
    """The request body grew past the limit while it streamed in (routes turn it into a 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _too_large_message(limit))


def _too_large_message(limit: int) -> str:
    return f"the request body is larger than {limit:,} bytes, this server's limit (activelab serve --max-body-mb)"


class SecurityMiddleware:
    """Host allow-list, token, cross-site and body checks, and security headers (see the module docstring)."""

    def __init__(
        self, app: ASGIApp, *, token: str | None, allowed_hosts: tuple[str, ...] = (), max_body_bytes: int = 1_000_000
    ) -> None:
        check_token(token)
        self.app = app
        self.token = token
        self.hosts = served_hosts(allowed_hosts)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        request = Request(scope)
        refusal = self._refusal(request)
        if refusal is None:
            receive = self._limited(receive)
            try:
                receive, refusal = await self._strict_json(request, receive)
                if refusal is None:
                    await self.app(scope, receive, send_with_headers)
                    return
            except BodyTooLarge:
                if started:
                    raise
                refusal = _error(413, _too_large_message(self.max_body_bytes))
        await refusal(scope, receive, send_with_headers)

    def _refusal(self, request: Request) -> Response | None:
        """The response that refuses this request before the app sees it, or None to let it in."""
        return (
            self._host_refusal(request)
            or self._token_refusal(request)
            or _cross_site_refusal(request)
            or self._size_refusal(request)
        )

    def _host_refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host")
        if host is not None and host_name(host) in self.hosts:
            return None
        return _error(
            400,
            "this server does not answer to that Host name; start it with "
            "`activelab serve --allowed-host NAME` to serve another name",
        )

    def _token_refusal(self, request: Request) -> Response | None:
        if self.token is None or request.scope["path"] == "/healthz":
            return None
        given = request.query_params.get("token")
        if given is not None and request.method == "GET" and not request.scope["path"].startswith("/api/"):
            return self._token_redirect(request, given)
        if same_token(_presented_token(request), self.token):
            return None
        return _error(
            401,
            "this server needs its token: open the URL printed by `activelab serve` "
            "(…/?token=…) or send 'Authorization: Bearer <token>'",
        )

    def _size_refusal(self, request: Request) -> Response | None:
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return _error(413, _too_large_message(self.max_body_bytes))
        return None

    def _token_redirect(self, request: Request, given: str) -> Response:
        """``?token=`` on a page: set the cookie and redirect to the same local path without the token."""
        assert self.token is not None
        if not same_token(given, self.token):
            return _error(401, "wrong token: open the URL printed by `activelab serve`")
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        response = RedirectResponse(local_redirect(request.scope["path"], rest), status_code=303)
        response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
        return response

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that raises :class:`BodyTooLarge` as soon as the body passes the limit."""
        total = 0

        async def receive_limited() -> Message:
            nonlocal total
            message = await receive()
            if message["type"] == "http.request":
                total += len(message.get("body", b""))
                if total > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        return receive_limited

    async def _strict_json(self, request: Request, receive: Receive) -> tuple[Receive, Response | None]:
        """Read a JSON body (already size-limited) and refuse what is not strict JSON; replay it otherwise."""
        if not _is_json(request.headers):
            return receive, None
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left: the app sees that next
                return _replay(b"".join(chunks), _then(message, receive)), None
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        problem = strict_json_problem(body)
        if problem is not None:
            detail = [{"type": "json_invalid", "loc": ["body"], "msg": f"JSON decode error: {problem}", "input": {}}]
            return _replay(body, receive), JSONResponse({"detail": detail}, status_code=422)
        return _replay(body, receive), None


def _cross_site_refusal(request: Request) -> Response | None:
    if request.method not in UNSAFE or not request.scope["path"].startswith("/api/"):
        return None
    if CLIENT_HEADER not in request.headers:
        return _error(
            403,
            f"state-changing requests need the header '{CLIENT_HEADER}: 1' (protection against cross-site requests)",
        )
    origin = request.headers.get("origin")
    if origin is not None and _origin_host(origin) != request.headers.get("host", "").strip().lower():
        return _error(403, "cross-site request refused: its Origin is not this server")
    return None


def _presented_token(request: Request) -> str:
    auth = request.headers.get("authorization", "")
    bearer = auth[7:] if auth.lower().startswith("bearer ") else None
    return bearer or request.cookies.get(TOKEN_COOKIE) or ""


def _origin_host(origin: str) -> str:
    """``host[:port]`` of an Origin header ("" for ``null`` or anything unparsable)."""
    try:
        return urlsplit(origin.strip()).netloc.lower()
    except ValueError:
        return ""


def _is_json(headers: Headers) -> bool:
    media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the app the body read already, then what the server sends next."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _then(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that returns ``first`` once, then what the server sends next."""
    pending: list[Message] = [first]

    async def then() -> Message:
        return pending.pop() if pending else await receive()

    return then


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)
