"""``activelab serve PROJECT``: the labeling web app (REST API, labeling page, dashboard, trainer)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated
from urllib.parse import quote

import typer

from activelab.cli.output import console, friendly_errors

DEFAULT_MAX_BODY_MB = 1.0
ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).")]


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the ``activelab`` CLI."""

    @app.command()
    @friendly_errors
    def serve(
        project: ProjectArg,
        host: Annotated[str, typer.Option(help="Interface to bind. Off loopback a token is required.")] = "127.0.0.1",
        port: Annotated[
            int, typer.Option(help="TCP port (env ACTIVELAB_PORT).", min=1, max=65535, envvar="ACTIVELAB_PORT")
        ] = 8000,
        token: Annotated[
            str | None,
            typer.Option(
                help="Access token, 16+ printable ASCII characters (generated when binding "
                "off loopback; env ACTIVELAB_TOKEN).",
                envvar="ACTIVELAB_TOKEN",
            ),
        ] = None,
        allowed_host: Annotated[
            list[str] | None,
            typer.Option(
                help="Another host name clients use to reach the server (repeatable). Requests whose Host header "
                "names anything but these, 127.0.0.1, localhost, [::1] and --host get 400."
            ),
        ] = None,
        max_body_mb: Annotated[
            float,
            typer.Option(
                help="Largest request body in MB (10^6 bytes); larger ones get 413 unread.",
                min=0.001,
            ),
        ] = DEFAULT_MAX_BODY_MB,
        lease_seconds: Annotated[
            float, typer.Option(help="How long an image shown to one labeler is kept from others.", min=5)
        ] = 600.0,
        retrain_every: Annotated[
            int | None, typer.Option(help="New labels between rounds (default: the project's setting).", min=1)
        ] = None,
        trainer: Annotated[bool, typer.Option(help="Run the background trainer.")] = True,
        similar_index: Annotated[
            bool,
            typer.Option(help="Build the similar-images index in the background at start (else on the first request)."),
        ] = True,
        mix_review: Annotated[
            bool,
            typer.Option(
                help="On the label page, interleave the likely label errors of the latest `activelab errors` "
                "ranking with new images by expected value (off: they wait on /review)."
            ),
        ] = False,
    ) -> None:
        """Serve the labeling page, dashboard and REST API; a background trainer re-ranks the queue."""
        run_server(
            project,
            host=host,
            port=port,
            token=token,
            lease_seconds=lease_seconds,
            retrain_every=retrain_every,
            trainer=trainer,
            mix_review=mix_review,
            allowed_hosts=tuple(allowed_host or ()),
            max_body_mb=max_body_mb,
            similar_index=similar_index,
        )


def run_server(
    project: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    lease_seconds: float = 600.0,
    retrain_every: int | None = None,
    trainer: bool = True,
    mix_review: bool = False,
    allowed_hosts: tuple[str, ...] = (),
    max_body_mb: float = DEFAULT_MAX_BODY_MB,
    similar_index: bool = True,
) -> None:
    """Start uvicorn on the project's app until interrupted (used by ``serve`` and ``demo``).

    The app answers to the loopback names, ``allowed_hosts`` and ``host`` itself (unless
    it is a wildcard such as 0.0.0.0, which names no host a client would use).
    """
    import uvicorn

    from activelab.server import ServerSettings, create_app
    from activelab.server.security import WILDCARD_BINDS
    from activelab.server.settings import LOOPBACK_HOSTS

    if host not in LOOPBACK_HOSTS and token is None:
        token = secrets.token_urlsafe(24)
    settings = ServerSettings(
        project=project,
        token=token,
        lease_seconds=lease_seconds,
        trainer=trainer,
        retrain_every=retrain_every,
        mix_review=mix_review,
        allowed_hosts=(*allowed_hosts, host),
        max_body_bytes=round(max_body_mb * 1_000_000),
        similar_index=similar_index,
    )
    web = create_app(settings)
    name = _public_name(host, allowed_hosts)
    shown = f"[{name}]" if ":" in name else name
    url = f"http://{shown}:{port}/" + (f"?token={quote(token, safe='')}" if token else "")
    console.print(
        f"labeling app for {project}: [bold]{url}[/]  (dashboard: /dashboard, API docs: /docs)", highlight=False
    )
    if host not in LOOPBACK_HOSTS:
        console.print("bound off loopback: every request needs the token above", highlight=False)
    if host in WILDCARD_BINDS and not allowed_hosts:
        console.print(
            f"bound to {host}: only requests to 127.0.0.1/localhost are answered; name the host or "
            "address clients use with --allowed-host",
            highlight=False,
        )
    uvicorn.run(web, host=host, port=port, log_level="warning")


def _public_name(host: str, allowed_hosts: tuple[str, ...]) -> str:
    """The host name to print in the URL: a wildcard bind (0.0.0.0, ::) names no host a client could use."""
    from activelab.server.security import WILDCARD_BINDS

    if host not in WILDCARD_BINDS:
        return host
    return allowed_hosts[0] if allowed_hosts else "127.0.0.1"
