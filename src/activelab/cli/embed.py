"""``activelab embed PROJECT``: embed every image into the project's embedding cache (resumable);
with ``--compare``, compare candidate representations on the labeled pool images instead."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from activelab.cli.output import console, friendly_errors, print_json, result_table
from activelab.exceptions import InputError

ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).", show_default=False)]


def register(app: typer.Typer) -> None:
    """Add the ``embed`` command to ``app``."""
    app.command("embed")(friendly_errors(embed))


def embed(
    project: ProjectArg,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per backbone forward pass.")] = 64,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=0, help="local: DataLoader worker processes; ray: embedding actors (at least 1)."
        ),
    ] = 0,
    backend: Annotated[str, typer.Option("--backend", help="Where the pass runs: local or ray.")] = "local",
    address: Annotated[
        str | None,
        typer.Option("--address", help="ray: the cluster to join ('auto', 'ray://head:10001'); default: a local Ray."),
    ] = None,
    gpus_per_worker: Annotated[
        float, typer.Option("--gpus-per-worker", min=0, help="ray: GPUs per embedding actor (0: CPU).")
    ] = 0.0,
    shard_size: Annotated[
        int, typer.Option("--shard-size", min=1, help="Images per cache shard (the unit an interrupted pass keeps).")
    ] = 1024,
    split: Annotated[list[str] | None, typer.Option("--split", help="pool and/or eval (default: both).")] = None,
    device: Annotated[
        str | None, typer.Option(help="cuda, mps or cpu (default: the project's, else automatic).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON (nothing else).")] = False,
    compare: Annotated[
        bool,
        typer.Option(
            "--compare",
            help="Instead of embedding everything, compare candidate representations (backbones, input sizes, "
            "raw pixels) on the labeled pool images and say which fits best (docs/representation.md).",
        ),
    ] = False,
    candidate: Annotated[
        list[str] | None,
        typer.Option("--candidate", help="--compare: one more candidate, NAME or NAME@SIZE (repeatable)."),
    ] = None,
) -> None:
    """Embed every pool and eval image with the project's backbone into PROJECT/cache/embeddings.

    Interrupt it at any time (Ctrl-C): finished shards are kept and the next run computes only what is missing.
    With --compare, score candidate representations on the labeled pool images (the eval split is never read).
    """
    from activelab.loop.embed import embed_project, embedding_model
    from activelab.loop.input_size import resolve_input_size
    from activelab.loop.project import open_project

    if candidate and not compare:
        raise InputError("--candidate is an option of --compare; add --compare")
    with open_project(project) as proj:
        if compare:
            _compare(proj, candidate or [], device=device, as_json=as_json)
            return
        input_size = resolve_input_size(proj)
        model = embedding_model(proj, device=device)
        if not as_json:
            console.print(input_size.describe(), highlight=False)
            where = model.device if backend == "local" else "ray"
            console.print(
                f"embedding with {model.name} on {backend} ({where}) into {model.cache.folder(model.model_id)}",
                highlight=False,
                soft_wrap=True,
            )
        done = [0]
        try:
            report = embed_project(
                proj,
                splits=tuple(split or ("pool", "eval")),
                backend=backend,
                batch_size=batch_size,
                workers=workers,
                shard_size=shard_size,
                address=address,
                gpus_per_worker=gpus_per_worker,
                progress=True,
                model=model,
                on_shard=lambda n: done.__setitem__(0, n),
            )
        except KeyboardInterrupt:
            console.print(
                f"interrupted: {done[0]} images embedded in this run are kept; run the same command again to go on",
                highlight=False,
            )
            raise typer.Exit(code=130) from None
        if as_json:
            print_json(report.to_dict())
            return
        console.print(
            f"{report.n_images} images: {report.n_cached} already cached, {report.n_computed} embedded "
            f"in {report.seconds:.1f} s ({report.images_per_second:.0f} images/s), "
            f"{report.n_failed} unreadable",
            highlight=False,
        )
        for path, reason in report.failed[:10]:
            console.print(f"  unreadable: {path}: {reason}", highlight=False)


def _compare(proj: Any, candidates: list[str], *, device: str | None, as_json: bool) -> None:
    """Run ``compare_project`` and print its table (or JSON)."""
    from activelab.loop.representation import CRITERIA_TEXT, Candidate, compare_project

    extra = [Candidate.parse(text) for text in candidates]
    choice = compare_project(proj, extra=extra, device=device, progress=not as_json)
    if as_json:
        print_json({**choice.to_dict(), "reason": choice.reason})
        return
    rows = [
        [c.candidate.label + (" *" if c.candidate == choice.chosen else ""), str(c.dim), f"{c.score:.3f}",
         f"{c.seconds:.1f}"]
        for c in choice.comparisons
    ]  # fmt: skip
    columns = [
        ("candidate", "left"),
        ("dim", "right"),
        (CRITERIA_TEXT[choice.criterion], "right"),
        ("seconds", "right"),
    ]
    console.print(result_table(f"representations on {choice.n_labels} labeled pool images (* chosen)", columns, rows))
    console.print(f"chosen: {choice.chosen.label} ({choice.reason})", highlight=False)
