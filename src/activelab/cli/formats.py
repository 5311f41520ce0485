"""Other tools' formats in the CLI: ``import/export --format labelstudio|hf|fiftyone|coco|yolo|voc|voc-masks|
masks-table``, ``ls-backend``.

``main.py``'s ``import`` and ``export`` hand these format names to
:func:`import_other` / :func:`export_other`; the format modules are imported
only when used, so ``activelab --help`` stays fast. A segmentation project reads and
writes :data:`MASK_FORMATS` (``coco`` and ``labelstudio`` then mean their masks); any
other name is refused for it with the list of those that work.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from activelab.cli.output import console, friendly_errors

BOX_FORMATS = ("coco", "yolo", "voc")
#: a segmentation project's formats (activelab.loop.formats.masks.MASK_FORMATS, kept here so --help imports nothing)
MASK_FORMATS = ("voc-masks", "coco", "labelstudio", "masks-table")
_ONLY_MASKS = ("voc-masks", "masks-table")
IMPORT_FORMATS = ("labelstudio", "hf", "fiftyone", *BOX_FORMATS, *_ONLY_MASKS)
EXPORT_FORMATS = ("labelstudio", "hf-imagefolder", "fiftyone", *BOX_FORMATS, *_ONLY_MASKS)
ProjectArg = Annotated[Path, typer.Argument(help="Project folder (holds activelab.yaml).", show_default=False)]


def import_other(
    project: Path,
    source: Path,
    fmt: str,
    *,
    split: str,
    add_classes: bool,
    author: str | None,
    report: Path | None,
    images_root: Path | None = None,
    as_json: bool = False,
) -> None:
    """``activelab import --format labelstudio|hf|fiftyone|coco|yolo|voc|voc-masks|masks-table``: import, then one
    summary per part read."""
    from activelab.loop import formats
    from activelab.loop.ingest import default_report_path
    from activelab.loop.project import open_project

    with open_project(project) as proj:
        task = proj.task()
        common: dict[str, Any] = {
            "split": split,
            "add_classes": add_classes,
            "report_path": report or default_report_path(proj.root),
            "progress": True,
            "task": task,
        }
        if (task.output == "masks" and fmt != "labelstudio") or fmt in _ONLY_MASKS:
            results = [formats.import_masks(proj.store, source, fmt, images_root=images_root, author=author, **common)]
        elif fmt == "labelstudio":
            results = [formats.import_labelstudio(proj.store, source, images_root=images_root, **common)]
        elif fmt in BOX_FORMATS:
            results = [formats.import_boxes(proj.store, source, fmt, images_root=images_root, author=author, **common)]
        elif fmt == "hf":
            results = formats.import_hf(
                proj.store, source, media_dir=proj.root / "media" / source.name, author=author, **common
            )
        else:
            results = formats.import_fiftyone(proj.store, source, author=author, **common)
    if as_json:
        _print_json(
            [
                {
                    "seen": r.seen,
                    "added": r.added,
                    "labels_recorded": r.labeled,
                    "duplicates": r.duplicates,
                    "label_conflicts": r.label_conflicts,
                    "merged": r.merged,
                    "rejected": dict(r.rejected),
                    "new_classes": r.new_classes,
                    "report": str(r.report_path) if r.report_path else None,
                }
                for r in results
            ]
        )
        return
    for result in results:
        if result.new_classes:
            console.print(f"new classes: {', '.join(result.new_classes)}")
        console.print(result.summary(), highlight=False)
        console.print(f"per-file report: {result.report_path}", highlight=False)


def export_other(project: Path, out: Path, fmt: str, *, include_eval: bool, as_json: bool = False) -> None:
    """``activelab export --format labelstudio|hf-imagefolder|fiftyone|coco|yolo|voc|voc-masks|masks-table``."""
    from activelab.loop import formats
    from activelab.loop.project import open_project

    with open_project(project) as proj:
        task = proj.task()
        if (task.output == "masks" and fmt != "labelstudio") or fmt in _ONLY_MASKS:
            written = formats.export_masks(proj.store, out, fmt, task=task, include_eval=include_eval)
        elif fmt == "labelstudio":
            written = formats.export_labelstudio(proj.store, out, include_eval=include_eval, task=task)
        elif fmt in BOX_FORMATS:
            written = formats.export_boxes(proj.store, out, fmt, task=task, include_eval=include_eval)
        elif fmt == "hf-imagefolder":
            written = formats.export_hf_imagefolder(proj.store, out, include_eval=include_eval, task=task)
        else:
            written = formats.export_fiftyone(proj.store, out, include_eval=include_eval, task=task)
    if as_json:
        _print_json({"path": str(written), "format": fmt})
        return
    console.print(f"exported {fmt} to {written}", highlight=False, soft_wrap=True)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def register(app: typer.Typer) -> None:
    """Add the ``ls-backend`` command to the ``activelab`` CLI."""

    @app.command("ls-backend")
    @friendly_errors
    def ls_backend(
        project: ProjectArg,
        host: Annotated[str, typer.Option(help="Interface to bind (Label Studio must reach it).")] = "127.0.0.1",
        port: Annotated[
            int, typer.Option(help="TCP port (Label Studio's examples use 9090).", min=1, max=65535)
        ] = 9090,
        images_root: Annotated[
            Path | None,
            typer.Option(
                help="Where Label Studio's images are on this machine: its local-files document root or "
                "upload folder (default: the project folder)."
            ),
        ] = None,
        retrain_every: Annotated[
            int | None, typer.Option(help="New labels between rounds (default: the project's setting).", min=1)
        ] = None,
    ) -> None:
        """Serve Label Studio's ML backend API: predictions in active-learning order, training on annotations."""
        run_ls_backend(project, host=host, port=port, images_root=images_root, retrain_every=retrain_every)


def run_ls_backend(
    project: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 9090,
    images_root: Path | None = None,
    retrain_every: int | None = None,
) -> None:
    """Start uvicorn on the ML backend app with its background trainer until interrupted."""
    import uvicorn

    from activelab.loop.project import open_project
    from activelab.loop.trainer import BackgroundTrainer
    from activelab.server.ls_backend import LabelStudioBackend, create_ls_backend_app

    with open_project(project) as proj:
        trainer = BackgroundTrainer(proj, retrain_every=retrain_every or proj.settings.active_learner.retrain_every)
        trainer.recover()
        trainer.start()
        backend = LabelStudioBackend(proj, trainer, images_root=images_root or proj.root)
        shown = f"[{host}]" if ":" in host else host
        console.print(
            f"Label Studio ML backend for {project}: [bold]http://{shown}:{port}[/] "
            "(add it under Settings > Model in Label Studio)",
            highlight=False,
        )
        try:
            uvicorn.run(create_ls_backend_app(backend), host=host, port=port, log_level="warning")
        finally:
            trainer.stop(timeout=5)
