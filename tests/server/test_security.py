"""Attacks on a real ``activelab serve`` process: Host names, tokens, cross-site requests, traversal, bodies.

One server for the module (``--no-trainer --no-similar-index``, a token, one
``--allowed-host``, a 10 kB body limit) on a free loopback port; requests go out through
``http.client``, which sends paths, Host headers and bodies exactly as written (no URL
normalisation). Every kind of response (page, API, static file, image, docs, error,
redirect, 401, 413) must carry the security headers.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from activelab.exceptions import InputError
from activelab.server import ServerSettings
from activelab.server.security import SECURITY_HEADERS

from .conftest import free_port, stop_process, wait_for

TOKEN = "test-token-0123456789abcdef"
ALLOWED = "labeling.example.org"
MAX_BODY = 10_000  # --max-body-mb 0.01
CLIENT = {"X-Activelab-Client": "1"}
NEEDS_TOKEN = (
    "this server needs its token: open the URL printed by `activelab serve` (…/?token=…) "
    "or send 'Authorization: Bearer <token>'"
)
WRONG_HOST = (
    "this server does not answer to that Host name; start it with "
    "`activelab serve --allowed-host NAME` to serve another name"
)
TOO_LARGE = "the request body is larger than 10,000 bytes, this server's limit (activelab serve --max-body-mb)"
NEEDS_CLIENT_HEADER = (
    "state-changing requests need the header 'x-activelab-client: 1' (protection against cross-site requests)"
)
FOREIGN_ORIGIN = "cross-site request refused: its Origin is not this server"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return json.loads(self.body)


@dataclass
class Server:
    port: int
    root: Path

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def request(
        self,
        method: str,
        target: str,
        *,
        host: str | None = None,
        body: bytes | Iterable[bytes] = b"",
        headers: dict[str, str | bytes] | None = None,
        auth: bool = True,
    ) -> Reply:
        """Send exactly this request line, Host and headers; a body iterable is sent chunked."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            conn.putheader("Host", self.host if host is None else host)
            if auth:
                conn.putheader("Authorization", f"Bearer {TOKEN}")
            for name, value in (headers or {}).items():
                conn.putheader(name, value)
            if isinstance(body, bytes):
                if body or method in {"POST", "PUT", "PATCH"}:
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body or None)
            else:
                conn.putheader("Transfer-Encoding", "chunked")
                conn.endheaders()
                for chunk in body:
                    conn.send(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                conn.send(b"0\r\n\r\n")
            res = conn.getresponse()
            return Reply(res.status, {k.lower(): v for k, v in res.getheaders()}, res.read())
        finally:
            conn.close()

    def post_json(self, target: str, payload: bytes, **kwargs: object) -> Reply:
        headers = {**CLIENT, "Content-Type": "application/json", **kwargs.pop("headers", {})}  # type: ignore[dict-item]
        return self.request("POST", target, body=payload, headers=headers, **kwargs)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def server(demo_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("security") / "project"
    shutil.copytree(demo_template, root)
    port = free_port()
    log = root.parent / "serve.log"
    cmd = [
        str(Path(sys.executable).parent / "activelab"),
        "serve",
        str(root),
        "--port",
        str(port),
        "--no-trainer",
        "--no-similar-index",
        "--token",
        TOKEN,
        "--allowed-host",
        ALLOWED,
        "--max-body-mb",
        str(MAX_BODY / 1e6),
    ]
    proc = subprocess.Popen(
        cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"}
    )
    srv = Server(port, root)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"activelab serve exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            return srv.request("GET", "/healthz", auth=False).status == 200
        except OSError:
            return False

    try:
        wait_for(up, timeout=60, interval=0.2)
        yield srv
    finally:
        stop_process(proc)


@pytest.fixture(scope="module")
def image_id(server: Server) -> int:
    res = server.post_json("/api/next", b'{"user": "mallory", "n": 1}')
    assert res.status == 200, res.body
    return int(res.json()["items"][0]["image_id"])  # type: ignore[index]


def assert_security_headers(reply: Reply) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert reply.headers.get(name.lower()) == value, (name, reply.status)


def test_only_the_host_names_it_serves_are_answered(server: Server) -> None:
    port = server.port
    for host in [
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        "LOCALHOST",
        f"[::1]:{port}",
        f"{ALLOWED}:{port}",
        "Labeling.Example.Org",
    ]:
        assert server.request("GET", "/api/stats", host=host).status == 200, host
    for host in [
        f"evil.example:{port}",
        "127.0.0.1.evil.example",
        f"localhost.evil.example:{port}",
        f"{ALLOWED}.evil.example",
        "testserver",
        "0.0.0.0",
        "",
    ]:
        res = server.request("GET", "/api/stats", host=host)
        assert (res.status, res.json()) == (400, {"detail": WRONG_HOST}), host
        assert_security_headers(res)
    # DNS rebinding: the attacker's page reaches 127.0.0.1 under its own name, with a matching Origin
    evil = f"evil.example:{port}"
    res = server.post_json(
        "/api/labels",
        b'{"user": "mallory", "image_id": 1, "label": "coat"}',
        host=evil,
        headers={"Origin": f"http://{evil}"},
    )
    assert res.status == 400
    assert server.request("GET", "/api/export?format=csv", host=evil).status == 400
    assert server.request("GET", "/healthz", host=evil, auth=False).status == 400


def test_every_token_variant_but_the_right_one_gets_401(server: Server) -> None:
    wrong: list[dict[str, str | bytes]] = [
        {},
        {"Authorization": "Bearer "},
        {"Authorization": f"Bearer {TOKEN[:-1]}"},  # a prefix
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Bearer {TOKEN.upper()}"},
        {"Authorization": "Bearer tøkén-with-ümlauts-0123456789".encode()},  # non-ASCII (UTF-8 bytes)
        {"Authorization": "Bearer \u00e9\u00e8".encode("latin-1")},  # non-ASCII (Latin-1 bytes)
        {"Cookie": "activelab_token=wrong-token-0123456789abcdef"},
        {"Cookie": f"activelab_token={TOKEN[:8]}"},
        {"Cookie": "activelab_token=caf\u00e9-\u20ac".encode()},
        {"Cookie": ""},
    ]
    for headers in wrong:
        res = server.request("GET", "/api/stats", headers=headers, auth=False)
        assert (res.status, res.json()) == (401, {"detail": NEEDS_TOKEN}), headers
        assert_security_headers(res)
    for query in ["", f"{TOKEN[:-1]}", "%C3%A9t%C3%A9-%E2%82%AC-0123456789", "%FF%FE", f"{TOKEN}%00"]:
        res = server.request("GET", f"/?token={query}", auth=False)
        assert res.status == 401, query
        assert res.json() == {"detail": "wrong token: open the URL printed by `activelab serve`"}
    assert server.request("GET", f"/api/stats?token={TOKEN}", auth=False).status == 401  # the API takes no ?token=
    assert server.request("GET", "/api/stats").status == 200
    assert server.request("GET", "/api/stats", headers={"Cookie": f"activelab_token={TOKEN}"}, auth=False).status == 200


def test_the_token_redirect_never_leaves_the_server(server: Server) -> None:
    cases = {
        f"//evil.example/?token={TOKEN}": "/evil.example/",
        f"///evil.example/x?token={TOKEN}": "/evil.example/x",
        f"/\\evil.example/?token={TOKEN}": "/%5Cevil.example/",
        f"/%5C%5Cevil.example/?token={TOKEN}": "/%5C%5Cevil.example/",
        f"/%2F%2Fevil.example/?token={TOKEN}": "/evil.example/",
        f"/%09/evil.example/?token={TOKEN}": "/%09/evil.example/",
        f"/review?user=ann&token={TOKEN}": "/review?user=ann",
        f"/?token={TOKEN}": "/",
    }
    for target, location in cases.items():
        res = server.request("GET", target, auth=False)
        assert (res.status, res.headers["location"]) == (303, location), target
        assert_security_headers(res)
    cookie = res.headers["set-cookie"]
    assert cookie.startswith(f"activelab_token={TOKEN};") and "HttpOnly" in cookie and "SameSite=strict" in cookie


def test_cross_site_writes_are_refused_and_store_nothing(server: Server, image_id: int) -> None:
    form = f"user=mallory&image_id={image_id}&label=coat".encode()
    boundary = "b0undary"
    multipart = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="user"\r\n\r\nmallory\r\n--{boundary}--\r\n'
    ).encode()
    label = json.dumps({"user": "mallory", "image_id": image_id, "label": "coat"}).encode()
    attacks: list[tuple[dict[str, str | bytes], bytes, str]] = [
        ({"Content-Type": "application/x-www-form-urlencoded"}, form, NEEDS_CLIENT_HEADER),
        ({"Content-Type": "text/plain"}, label, NEEDS_CLIENT_HEADER),
        ({"Content-Type": f"multipart/form-data; boundary={boundary}"}, multipart, NEEDS_CLIENT_HEADER),
        ({"Content-Type": "application/json"}, label, NEEDS_CLIENT_HEADER),
        ({**CLIENT, "Content-Type": "application/json", "Origin": "null"}, label, FOREIGN_ORIGIN),
        ({**CLIENT, "Content-Type": "application/json", "Origin": "http://evil.example"}, label, FOREIGN_ORIGIN),
        ({**CLIENT, "Content-Type": "application/json", "Origin": f"http://{ALLOWED}"}, label, FOREIGN_ORIGIN),
        (
            {**CLIENT, "Content-Type": "application/json", "Origin": f"https://127.0.0.1.evil.example:{server.port}"},
            label,
            FOREIGN_ORIGIN,
        ),
    ]
    for headers, body, detail in attacks:
        for target in ["/api/labels", "/api/classes", "/api/trainer/run"]:
            res = server.request("POST", target, body=body, headers=headers)
            assert (res.status, res.json()) == (403, {"detail": detail}), (target, headers)
    assert server.request("GET", f"/api/images/{image_id}").json()["history"] == []  # type: ignore[index]
    same_site = {**CLIENT, "Content-Type": "application/json", "Origin": f"http://127.0.0.1:{server.port}"}
    assert (
        server.request(
            "POST", "/api/skip", headers=same_site, body=json.dumps({"user": "mallory", "image_id": image_id}).encode()
        ).status
        == 200
    )


def test_traversal_reaches_no_file_outside_the_served_ones(server: Server) -> None:
    secrets = [b"activelab", b"sqlite", b"SQLite format 3", b"def create_app", b"root:"]
    attempts = {
        "/static/../app.py": 404,
        "/static/../../activelab.yaml": 404,
        "/static/%2e%2e/app.py": 404,
        "/static/%2e%2e/%2e%2e/%2e%2e/activelab.yaml": 404,
        "/static/..%2fapp.py": 404,
        "/static/..%5capp.py": 404,
        "/static/%5c..%5c..%5capp.py": 404,
        "/static/style.css%00.py": 404,
        "/static/%2fetc%2fpasswd": 404,
        "/static//etc/passwd": 404,
        "/docs/assets/../../app.py": 404,
        "/docs/assets/%2e%2e/core.py": 404,
        "/api/images/..%2f..%2factivelab.db/file": 404,
        "/api/images/1%00/file": 422,
        "/api/images/%2e%2e/file": 422,
        "/api/images/1/../../activelab.db": 404,
    }
    for target, status in attempts.items():
        res = server.request("GET", target)
        assert res.status == status, (target, res.status, res.body[:200])
        assert not any(s in res.body for s in secrets[2:]), target
        assert_security_headers(res)


def test_each_kind_of_response_has_its_content_type_and_the_security_headers(server: Server, image_id: int) -> None:
    kinds = {
        "/": "text/html; charset=utf-8",
        "/dashboard": "text/html; charset=utf-8",
        "/api/stats": "application/json",
        "/static/label.js": "text/javascript; charset=utf-8",
        "/static/style.css": "text/css; charset=utf-8",
        f"/api/images/{image_id}/file": "image/png",
        "/api/images/999999": "application/json",
        "/docs": "text/html; charset=utf-8",
        "/openapi.json": "application/json",
    }
    for target, content_type in kinds.items():
        res = server.request("GET", target)
        assert res.headers["content-type"] == content_type, target
        assert_security_headers(res)
    image = server.request("GET", f"/api/images/{image_id}/file")
    assert image.status == 200 and image.body.startswith(b"\x89PNG\r\n\x1a\n")
    for res in [
        server.request("GET", "/api/stats", auth=False),  # 401
        server.request("GET", f"/?token={TOKEN}", auth=False),  # 303
        server.request("GET", "/api/stats", host="evil.example"),  # 400
        server.request("GET", "/no-such-page"),  # 404
        server.request("DELETE", "/api/stats", headers=CLIENT),  # 405
        server.post_json("/api/labels", b'{"image_id": NaN}'),  # 422
        server.post_json("/api/labels", b"x" * (MAX_BODY + 1)),
    ]:  # 413
        assert res.status in {401, 303, 400, 404, 405, 422, 413}
        assert_security_headers(res)


def test_bodies_over_the_limit_get_413_unread(server: Server) -> None:
    # announced by Content-Length: refused from the headers alone (the body is never sent)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    conn.putrequest("POST", "/api/labels", skip_host=True)
    for name, value in {
        "Host": server.host,
        "Authorization": f"Bearer {TOKEN}",
        **CLIENT,
        "Content-Type": "application/json",
        "Content-Length": str(300 * 10**6),
    }.items():
        conn.putheader(name, value)
    conn.endheaders()
    res = conn.getresponse()
    assert (res.status, json.loads(res.read())) == (413, {"detail": TOO_LARGE})
    conn.close()
    # streamed in chunks without a length: refused once the count passes the limit
    chunks = (b"x" * 4096 for _ in range(4))
    for content_type in ["application/json", "text/plain"]:
        res = server.request("POST", "/api/labels", body=chunks, headers={**CLIENT, "Content-Type": content_type})
        assert (res.status, res.json()) == (413, {"detail": TOO_LARGE}), content_type
        chunks = (b"x" * 4096 for _ in range(4))
    label = json.dumps({"user": "m" * (MAX_BODY - 100), "image_id": 1, "label": "coat"}).encode()
    at_limit = label + b" " * (MAX_BODY - len(label))  # JSON allows trailing blanks
    assert server.post_json("/api/labels", at_limit).status == 422  # read and validated, not refused for size
    assert server.post_json("/api/labels", at_limit + b" ").status == 413


def test_non_json_numbers_and_lone_surrogates_get_422_with_short_error_bodies(server: Server, image_id: int) -> None:
    bodies = {
        b'{"user": "ann", "image_id": NaN, "label": "coat"}': "JSON decode error: NaN is not a JSON number; "
        "send a finite number",
        b'{"user": "ann", "image_id": 1e400, "label": "coat"}': "JSON decode error: the number 1e400 is out of "
        "range; send a finite number",
        b'{"user": "ann", "image_id": -Infinity, "label": "coat"}': "JSON decode error: -Infinity is not a JSON "
        "number; send a finite number",
        f'{{"user": "\\ud800", "image_id": {image_id}, "label": "coat"}}'.encode(): (
            "JSON decode error: a string holds an unpaired UTF-16 surrogate (e.g. \\ud800); send valid Unicode text"
        ),
        f'{{"user": "ann", "image_id": {image_id}, "label": "coat", "note": "\\udfff"}}'.encode(): (
            "JSON decode error: a string holds an unpaired UTF-16 surrogate (e.g. \\ud800); send valid Unicode text"
        ),
    }
    for body, msg in bodies.items():
        res = server.post_json("/api/labels", body)
        assert (res.status, res.json()) == (
            422,
            {"detail": [{"type": "json_invalid", "loc": ["body"], "msg": msg, "input": {}}]},
        ), body
    assert server.request("GET", f"/api/images/{image_id}").json()["history"] == []  # type: ignore[index]
    # a long invalid input is quoted as a 100-character excerpt, not echoed whole
    huge = "<" * 9_000
    res = server.post_json("/api/labels", json.dumps({"user": "ann", "image_id": huge, "label": "coat"}).encode())
    assert res.status == 422 and len(res.body) < 1_000
    (error,) = res.json()["detail"]  # type: ignore[index]
    assert error["loc"] == ["body", "image_id"] and error["input"] == "<" * 100 + "…"


def test_error_bodies_name_no_server_paths(server: Server) -> None:
    root = str(server.root.resolve())
    replies = [
        server.request("GET", "/api/images/999999"),
        server.request("GET", "/api/images/999999/file"),
        server.request("GET", "/api/images/999999/similar"),
        server.post_json("/api/labels", b'{"user": "ann", "image_id": 999999, "label": "coat"}'),
        server.post_json("/api/undo", b'{"user": "nobody-here"}'),
        server.request("GET", "/api/export?format=xlsx"),
        server.request("GET", "/static/missing.js"),
    ]
    assert [r.status for r in replies] == [404, 404, 404, 404, 404, 422, 404]
    detail = replies[0].json()["detail"]  # type: ignore[index]
    assert detail == "no image with id 999999 in sqlite:activelab.db"
    for reply in replies:
        text = reply.body.decode()
        assert root not in text and str(server.root.parent) not in text and "/tmp" not in text, text


def test_docs_work_offline_from_local_assets_under_the_csp(server: Server) -> None:
    page = server.request("GET", "/docs")
    assert page.status == 200
    html = page.body.decode()
    refs = re.findall(r'(?:src|href)="([^"]*)"', html)
    assert sorted(refs) == [
        "/docs/assets/favicon.png",
        "/docs/assets/swagger-ui-bundle.js",
        "/docs/assets/swagger-ui.css",
        "/docs/swagger-init.js",
    ]
    assert "http" not in html and "style=" not in html
    assert len(re.findall(r"<script\b", html)) == len(re.findall(r'<script src="[^"]+"></script>', html)) == 2
    types = {
        "/docs/assets/favicon.png": "image/png",
        "/docs/assets/swagger-ui-bundle.js": "text/javascript",
        "/docs/assets/swagger-ui.css": "text/css",
        "/docs/swagger-init.js": "text/javascript",
    }
    for ref, media in types.items():
        asset = server.request("GET", ref)
        assert asset.status == 200 and asset.headers["content-type"].split(";")[0] == media, ref
        assert len(asset.body) > 100 and b"cdn.jsdelivr" not in asset.body, ref
        assert_security_headers(asset)
    assert 'data-openapi-url="/openapi.json"' in html
    assert server.request("GET", "/redoc").status == 404
    assert server.request("GET", "/docs/assets/swagger-ui.css", auth=False).status == 401


@pytest.mark.parametrize("token", ["", "short", "fifteen-chars15", "with space 0123456789", "tøken-0123456789abcdef"])
def test_serve_refuses_empty_short_or_non_ascii_tokens(token: str, tmp_path: Path) -> None:
    from activelab.cli.main import app

    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--token", token])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: the access token (--token / ACTIVELAB_TOKEN)")
    with pytest.raises(InputError, match="access token"):
        ServerSettings(project=tmp_path, token=token)


def test_settings_normalise_allowed_hosts_and_refuse_paths(tmp_path: Path) -> None:
    settings = ServerSettings(project=tmp_path, allowed_hosts=("Labeling.Example.ORG", "::1", "fe80::2"))
    assert settings.allowed_hosts == ("labeling.example.org", "[::1]", "[fe80::2]")
    assert settings.max_body_bytes == 1_000_000
    for bad in ["http://evil.example", "a/b", "user@host", ""]:
        with pytest.raises(InputError, match="is not a host name"):
            ServerSettings(project=tmp_path, allowed_hosts=(bad,))
    with pytest.raises(InputError, match="max_body_bytes must be at least 1"):
        ServerSettings(project=tmp_path, max_body_bytes=0)


def test_the_default_body_limit_is_one_megabyte(client_factory) -> None:
    client = client_factory()
    res = client.post("/api/labels", content=b"x" * 1_000_001, headers={"Content-Type": "application/json"})
    assert res.status_code == 413
    res = client.post("/api/labels", content=(b"x" * 250_001 for _ in range(4)), headers={"Content-Type": "text/plain"})
    assert res.status_code == 413
    assert (
        client.post("/api/labels", content=b"x" * 1_000_000, headers={"Content-Type": "text/plain"}).status_code == 422
    )
