"""``activelab pretrain PROJECT``: self-supervised features from the project's own pool images (resumable)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from activelab.cli.output import console, friendly_errors, print_json

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).", show_default=False)]
METHODS = ("simclr", "simsiam", "dino")  # activelab.models.integrations.lightly.METHODS, not imported: it loads torch


def register(app: typer.Typer) -> None:
    """Add the ``pretrain`` command to ``app``."""
    app.command("pretrain")(friendly_errors(pretrain))


def pretrain(
    project: ProjectArg,
    method: Annotated[
        str,
        typer.Option(
            "--method", help="simclr (Chen et al. 2020), simsiam (Chen & He 2021) or dino (Caron et al. 2021)."
        ),
    ] = "simclr",
    epochs: Annotated[
        int, typer.Option("--epochs", min=1, help="Epochs in all (a resumed run goes on up to it).")
    ] = 10,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2, help="Images per batch.")] = 64,
    lr: Annotated[
        float | None,
        typer.Option("--lr", help="Learning rate (default: 0.05 SGD; dino: 0.001 AdamW)."),
    ] = None,
    device: Annotated[
        str | None, typer.Option(help="cuda, mps or cpu (default: the project's, else automatic).")
    ] = None,
    restart: Annotated[
        bool, typer.Option("--restart", help="Start over instead of going on from the checkpoint.")
    ] = False,
    use: Annotated[
        bool, typer.Option("--use", help="Afterwards, set model.backbone_weights in activelab.yaml to the result.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (nothing else).")] = False,
) -> None:
    """Pretrain the project's backbone self-supervised on its pool images (never the eval images).

    Writes PROJECT/models/ssl/<model>-<method>.pt. Interrupt it at any time (Ctrl-C): finished
    epochs are kept in the checkpoint beside it and the same command goes on from there.
    """
    from activelab.exceptions import InputError

    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; use one of {', '.join(METHODS)}")
    if lr is not None and not lr > 0:
        raise InputError(f"--lr must be positive, got {lr}")
    from activelab.loop.input_size import resolve_input_size
    from activelab.loop.pretrain import pool_paths, pretrain_project, ssl_file, ssl_records, use_ssl_backbone
    from activelab.loop.project import open_project
    from activelab.loop.settings import ModelSettings
    from activelab.models.integrations.lightly import EpochDone, checkpoint_path

    if use and "backbone_weights" not in ModelSettings.model_fields:
        raise InputError("--use needs the model.backbone_weights setting, which this activelab does not have yet")

    with open_project(project) as proj:
        out = ssl_file(proj, method)
        ckpt = checkpoint_path(out)
        if not as_json:
            console.print(resolve_input_size(proj).describe(), highlight=False)
            going_on = "going on from its checkpoint" if ckpt.exists() and not restart else "from the start"
            console.print(
                f"{method} pretraining of {proj.settings.model.name} on {len(pool_paths(proj))} pool images, "
                f"{epochs} epochs, {going_on}",
                highlight=False,
            )

        def report(e: EpochDone) -> None:
            if not as_json:
                console.print(
                    f"epoch {e.epoch}/{e.epochs}: loss {e.loss:.4f} ({e.seconds:.0f} s so far)", highlight=False
                )

        try:
            weights = pretrain_project(
                proj,
                method=method,
                epochs=epochs,
                batch_size=batch_size,
                lr=lr,
                device=device,
                resume=not restart,
                progress=not as_json,
                on_epoch=report,
            )
        except KeyboardInterrupt:
            kept = f"finished epochs are kept in {ckpt}" if ckpt.exists() else "no epoch had finished"
            console.print(f"interrupted: {kept}; run the same command again to go on", highlight=False)
            raise typer.Exit(code=130) from None
        record = next(r for r in ssl_records(proj) if Path(r["path"]) == weights)
        used = use_ssl_backbone(proj, weights) if use else None
        if as_json:
            print_json({**record, "path": str(weights), "backbone_weights": used})
            return
        console.print(
            f"wrote {weights} ({record['epochs']} epochs on {record['images']} pool images, "
            f"{record['seconds']:.0f} s of training)",
            highlight=False,
        )
        if used:
            console.print(f"model.backbone_weights: {used} in activelab.yaml: the next round uses it", highlight=False)
        else:
            rel = weights.resolve().relative_to(proj.root.resolve()).as_posix()
            console.print(
                f"use it: set model.backbone_weights: {rel} in activelab.yaml (or run this again with --use), "
                f"or in Python: create_model({proj.settings.model.name!r}, backbone_weights={str(weights)!r})",
                highlight=False,
            )
