"""Helpers shared by the Chromium tests: the browser, the strict CSP, polling without eval."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def require_chromium() -> None:
    """Skip without Debian's Chromium; in CI its absence is a failure (the browser tests must run there)."""
    if CHROMIUM.exists():
        return
    if os.environ.get("CI"):
        pytest.fail(
            "Chromium is missing: apt-get install -y chromium (the browser tests must run in CI)", pytrace=False
        )
    pytest.skip("needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")


#: the policy the app serves (issue 12); added to page responses in tests only where the app sends none
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def with_csp(route) -> None:
    """Route handler: serve pages under the strict policy, the app's own header when it sends one."""
    if route.request.resource_type != "document":
        route.continue_()
        return
    response = route.fetch()
    headers = dict(response.headers)
    headers.setdefault("content-security-policy", CSP)
    route.fulfill(response=response, headers=headers)


def csp_violations(messages: list[str]) -> list[str]:
    """The console messages in which Chromium reports a blocked inline script, style or eval."""
    return [m for m in messages if "Content Security Policy" in m]


def wait_until(page, expression: str, timeout: float = 30_000) -> None:
    """Poll a JS expression from Python until it is truthy.

    ``page.wait_for_function`` evaluates its string with eval inside the page, which the
    app's Content-Security-Policy (script-src 'self') refuses; ``page.evaluate`` is not.
    """
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout / 1000:.0f} s: {expression}")
        page.wait_for_timeout(100)
