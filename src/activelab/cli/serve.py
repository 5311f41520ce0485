"""``activelab serve PROJECT``: the labeling web app (REST API, labeling page, dashboard, trainer)."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated

import typer

from activelab.cli.output import console, friendly_errors

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).")]


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command to the ``activelab`` CLI."""

    @app.command()
    @friendly_errors
    def serve(
        project: ProjectArg,
        host: Annotated[str, typer.Option(help="Interface to bind. Off loopback a token is required.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
        token: Annotated[
            str | None, typer.Option(help="Access token (generated when binding off loopback; env ACTIVELAB_TOKEN).",
                                        envvar="ACTIVELAB_TOKEN")
        ] = None,
        lease_seconds: Annotated[float, typer.Option(help="How long an image shown to one labeler is kept from others.",
                                                     min=5)] = 600.0,
        retrain_every: Annotated[
            int | None, typer.Option(help="New labels between rounds (default: the project's setting).", min=1)
        ] = None,
        trainer: Annotated[bool, typer.Option(help="Run the background trainer.")] = True,
        mix_review: Annotated[bool, typer.Option(
            help="On the label page, interleave the likely label errors of the latest `activelab errors` "
                 "ranking with new images by expected value (off: they wait on /review).")] = False,
    ) -> None:
        """Serve the labeling page, dashboard and REST API; a background trainer re-ranks the queue."""
        run_server(project, host=host, port=port, token=token, lease_seconds=lease_seconds,
                   retrain_every=retrain_every, trainer=trainer, mix_review=mix_review)


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
) -> None:
    """Start uvicorn on the project's app until interrupted (used by ``serve`` and ``demo``)."""
    import uvicorn

    from activelab.server import ServerSettings, create_app
    from activelab.server.settings import LOOPBACK_HOSTS

    if host not in LOOPBACK_HOSTS and token is None:
        token = secrets.token_urlsafe(24)
    settings = ServerSettings(project=project, token=token, lease_seconds=lease_seconds, trainer=trainer,
                              retrain_every=retrain_every, mix_review=mix_review)
    web = create_app(settings)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    console.print(f"labeling app for {project}: [bold]{url}[/]  (dashboard: /dashboard, API docs: /docs)",
                  highlight=False)
    if host not in LOOPBACK_HOSTS:
        console.print("bound off loopback: every request needs the token above", highlight=False)
    uvicorn.run(web, host=host, port=port, log_level="warning")
